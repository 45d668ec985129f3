"""Why an initialisation trains or not, measured at step 0 (no training): the assignment's own reason
("the variance of the activations"), tested directly.

For each initialisation, one batch of real training poems goes through the freshly built model
(the assignment's model: embedding, one LSTM layer, head), and at every step t the gates'
pre-activations z_{g,t} = x_t W_gx + h_{t−1} W_gh + b_g and the hidden state h_t are kept. Reported
per init: the spread (standard deviation) of each gate's pre-activation, the share of gate values
saturated (|z| > 3: σ′ < 0.05, so almost no gradient passes), and the variance of h_t through time.

The variance argument it checks: U(±a) has variance a²/3, so Xavier's a = √(6 / (n_in + n_out))
gives Var W = 2 / (n_in + n_out); at t = 1 (h_0 = 0, b = 0) a unit's pre-activation z = x W has
variance ‖x‖² · Var W over the draws of W. Xavier applied to the stacked (D, 4H) matrix uses
n_out = 4H (bound 0.068 for D = H = 256), not H per gate (0.108).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tangshi.data.splits import open_prepared
from tangshi.model.lm import ModelConfig, PoetryLM
from tangshi.model.spec import INITS

SATURATED = 3.0  # |z| beyond this: σ′(z) < 0.05
GATE_NAMES = ("i", "f", "c", "o")  # the canonical (·, 4H) layout's order


def xavier_bound(n_in: int, n_out: int) -> float:
    """Xavier/Glorot's uniform bound a: U(±a) has variance a²/3 = 2 / (n_in + n_out)."""
    return math.sqrt(6.0 / (n_in + n_out))


@torch.no_grad()
def step0(model: PoetryLM, ids: torch.Tensor) -> dict:
    """The gates' pre-activations and the hidden states of layer 0 over `ids` (B, T), step by step
    with the canonical weights (weight_ih (D, 4H), weight_hh (H, 4H), bias (4H,))."""
    sd = model.canonical_state_dict()
    w_ih, w_hh, b = sd["lstm.0.weight_ih"].double(), sd["lstm.0.weight_hh"].double(), sd["lstm.0.bias"].double()
    x = sd["embedding.weight"].double()[ids]  # (B, T, D)
    B, T, _ = x.shape
    H = w_hh.shape[0]
    h = torch.zeros(B, H, dtype=torch.float64)
    c = torch.zeros(B, H, dtype=torch.float64)
    zs, hs = [], []
    for t in range(T):
        z = x[:, t] @ w_ih + h @ w_hh + b  # (B, 4H)
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        zs.append(z)
        hs.append(h)
    return {"z": torch.stack(zs, 1), "h": torch.stack(hs, 1), "x": x}  # (B, T, 4H), (B, T, H), (B, T, D)


HIST_EDGES = [0.0] + [10.0 ** (k / 4) for k in range(-24, 5)]  # |z|: one bin below 1e-6, then 4 a decade to 10


def summarise(run: dict) -> dict:
    """Per gate the pre-activation's standard deviation and saturated share; h_t's variance by t;
    the share of all gate pre-activations in each bin of |z| (HIST_EDGES, the last open above)."""
    z, h = run["z"], run["h"]
    H = h.shape[-1]
    gates = {}
    for k, name in enumerate(GATE_NAMES):
        zg = z[..., k * H : (k + 1) * H]
        gates[name] = {"std": float(zg.std()), "saturated": float((zg.abs() > SATURATED).double().mean())}
    edges = torch.tensor(HIST_EDGES[1:], dtype=torch.float64)
    counts = torch.bincount(torch.bucketize(z.abs().flatten(), edges), minlength=len(HIST_EDGES))
    hist = [float(c) / z.numel() for c in counts]
    return {"gates": gates, "h_var": [float(v) for v in h.var(dim=(0, 2))], "hist": hist}


def measure(data_dir: Path, schemes=INITS, seed: int = 0, batch: int = 128, model_over: dict | None = None) -> dict:
    """The step-0 summary of each initialisation on the first `batch` training poems of `data_dir`
    (the assignment's model, or `model_over`'s sizes), with the embedding's standard deviation."""
    vocab, _, train, _ = open_prepared(Path(data_dir))
    ids = train.inputs[:batch]
    out = {}
    for scheme in schemes:
        torch.manual_seed(seed)
        cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, **{**(model_over or {}), "init": scheme})
        model = PoetryLM(cfg)
        out[scheme] = {
            **summarise(step0(model, ids)),
            "embed_std": float(model.embedding.weight.detach().double().std()),
        }
    return out
