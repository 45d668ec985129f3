"""The assignment's character LSTM language model, and interchangeable LSTM kernels.

embedding (V, E) → L × LSTM (weight_ih (in, 4H), weight_hh (H, 4H), bias (4H),
gates i, f, g, o) → linear head (V, H) → [ReLU, the assignment's bug, optional] →
log-softmax → NLL over real target tokens.

Forward equations (the assignment's Part 1 notation; docs/lstm-backprop.md):

    z_t  = x_t weight_ih + h_{t-1} weight_hh + b                     (B, 4H)
    i_t  = σ(z_i)   f_t = σ(z_f)   c̃_t = tanh(z_g)   o_t = σ(z_o)
    C_t  = f_t ⊙ C_{t-1} + i_t ⊙ c̃_t
    h_t  = o_t ⊙ tanh(C_t)

Three interchangeable kernels compute the same function (`Runtime.impl`: how the model runs, not
what it is, so it is not part of `ModelConfig` or a checkpoint):

* ``tangshi`` (default): the input projection of all time steps is one matrix
  product; the time loop and its gate arithmetic run inside one
  `torch.autograd.Function` whose backward is the hand-derived BPTT (the same
  equations as `lesson/numpy_lstm.py`), so autograd records 2 nodes per layer instead
  of ~12 per time step. ``fused=False`` runs the same loop with plain autograd.
* ``original``: the assignment's loop as written: ``x_t @ weight_ih`` inside the loop.
* ``nn``: `torch.nn.LSTM` (cuDNN on a GPU), for comparison.

Parameters are always saved in one canonical layout (`canonical_state_dict`),
whatever the kernel, so a checkpoint of one loads into the others and into the
NumPy twin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from tangshi.errors import TangshiError
from tangshi.model.head_loss import HeadNLL
from tangshi.model.kernels import Kernels, detect
from tangshi.model.recurrence import OriginalLSTMLayer
from tangshi.model.spec import (  # noqa: F401  (the model's config, read from here by its users)
    DROPOUT_FIELDS,
    IMPLS,
    INITS,
    MAX_DIM,
    MAX_LAYERS,
    MAX_VOCAB,
    OLD_NAMES,
    RUNTIME_KEYS,
    ModelConfig,
    param_shapes,
)
from tangshi.model.step_weights import StepState, cell, step_weights

CONSTANT_INIT = 0.01  # "constant": every weight and bias this value (symmetric, but not stuck like all-zero)
ORIGINAL_UNIFORM_SCALE = 1e-4  # the assignment's NumPy init draws U(-1e-4, 1e-4)


@dataclass(frozen=True)
class Runtime:
    """How a model runs, not what it is: the LSTM kernel, whether the own kernel's time loop is the
    hand-written BPTT Function, whether the training loss is the fused head, and the compiled
    kernels (chosen once per process, `kernels.detect`). Checkpoints do not store it; every kernel
    computes the same function from the same canonical weights."""

    impl: str = "tangshi"  # tangshi (own, hand-written BPTT), original (the assignment's loop as written), nn
    fused: bool = True  # tangshi kernel: the BPTT autograd.Function (False: the same loop, plain autograd)
    fused_head: bool = True  # head + log-softmax + NLL in one chunked Function (training loss only)
    kernels: Kernels = field(default_factory=detect, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "impl", OLD_NAMES.get(self.impl, self.impl))
        if self.impl not in IMPLS:
            raise TangshiError(f"unknown LSTM implementation {self.impl!r} (choose from {', '.join(IMPLS)})")

    @classmethod
    def from_json(cls, obj: dict) -> Runtime:
        """The run-time choices an older config.json stored in its model config, as defaults."""
        return cls(**{k: obj[k] for k in RUNTIME_KEYS if k in obj})


def lookup(weight: torch.Tensor, ids: torch.Tensor, graph_safe: bool | None = None) -> torch.Tensor:
    """Embedding rows for ids (…) → (…, E). On CUDA (graph_safe, the default there) this is
    index_select, whose backward is index_add_: F.embedding's CUDA backward sorts the ids and reads
    a count back to the host once a batch has more than 3,072–4,096 of them, which a CUDA graph
    cannot capture. Same values, same gradients up to the order of the sums."""
    if graph_safe is None:
        graph_safe = ids.is_cuda
    if graph_safe:
        return weight.index_select(0, ids.reshape(-1)).view(*ids.shape, weight.size(1))
    return F.embedding(ids, weight)


def char_dropout(weight: torch.Tensor, ids: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """AWD-LSTM's embedding dropout: each character (row of the embedding) is dropped with
    probability p for the whole batch, so every occurrence of it reads a zero vector; the rows
    kept are scaled by 1/(1 − p). The head (tied or not) still sees the full matrix."""
    if not training or p == 0.0:
        return lookup(weight, ids)
    mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
    return lookup(weight * mask, ids)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout: one mask per sequence, shared over time. x (B, T, D)."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - p) / (1 - p)
    return x * mask


class PoetryLM(nn.Module):
    def __init__(self, config: ModelConfig, runtime: Runtime | None = None):
        super().__init__()
        self.config = config
        self.runtime = runtime = runtime or Runtime()
        cfg = config
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.lstm: nn.LSTM | nn.ModuleList  # nn.LSTM for impl "nn", else one OriginalLSTMLayer per layer
        if runtime.impl == "nn":
            self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, num_layers=cfg.num_layers, batch_first=True)
        else:
            self.lstm = nn.ModuleList(
                OriginalLSTMLayer(cfg.embed_dim if l == 0 else cfg.hidden_dim, cfg.hidden_dim)
                for l in range(cfg.num_layers)
            )
        self.head = nn.Linear(cfg.hidden_dim, cfg.vocab_size)
        if cfg.tie_weights:
            self.head.weight = self.embedding.weight  # the same tensor
        self.reset_parameters(cfg.init)

    @property
    def lstm_layers(self) -> Sequence[OriginalLSTMLayer]:
        """`lstm`'s layers, for the kernels other than "nn" (tangshi, original)."""
        assert isinstance(self.lstm, nn.ModuleList)
        # cast: __init__ fills the ModuleList with OriginalLSTMLayer only; torch types its items as Module
        return cast("Sequence[OriginalLSTMLayer]", self.lstm)

    # -- initialisation ------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, scheme: str = "xavier") -> None:
        """xavier: Xavier-uniform matrices, zero vectors (the assignment's Part 2);
        zeros: everything 0; constant: everything CONSTANT_INIT; uniform1e-4: the assignment's NumPy U(±1e-4);
        torch: PyTorch's own defaults for nn.Embedding/nn.LSTM/nn.Linear. The initialisation study's
        arms change one tensor or gate of xavier or torch: xavier_normal_embed (the embedding N(0,1), as
        torch's), torch_xavier_embed (the embedding Xavier), xavier_forget1 (the forget gate's bias 1),
        xavier_orthogonal (each gate's block of weight_hh orthogonal)."""
        base = {"xavier_normal_embed": "xavier", "torch_xavier_embed": "torch"}.get(scheme, scheme)
        base = "xavier" if base in ("xavier_forget1", "xavier_orthogonal") else base
        for name, p in self.named_parameters():
            if base == "zeros":
                p.zero_()
            elif base == "constant":
                p.fill_(CONSTANT_INIT)
            elif base == "uniform1e-4":
                p.uniform_(-ORIGINAL_UNIFORM_SCALE, ORIGINAL_UNIFORM_SCALE)
            elif base == "xavier":
                if p.dim() >= 2:
                    nn.init.xavier_uniform_(p)
                else:
                    p.zero_()
            elif base == "torch":
                if name == "embedding.weight":
                    nn.init.normal_(p)  # nn.Embedding's default
                else:  # nn.LSTM's and nn.Linear's defaults: U(±1/√fan_in)
                    bound = 1.0 / math.sqrt(self.config.hidden_dim)
                    p.uniform_(-bound, bound)
        emb = self.embedding.weight
        if scheme == "xavier_normal_embed":
            nn.init.normal_(emb)
        elif scheme == "torch_xavier_embed":
            nn.init.xavier_uniform_(emb)
        elif scheme in ("xavier_forget1", "xavier_orthogonal"):
            H = self.config.hidden_dim
            for name, p in self.named_parameters():
                if not name.startswith("lstm."):
                    continue
                gates_last = name.endswith("weight_hh") or name.endswith(".bias")  # (H, 4H) / (4H,): own layers
                if scheme == "xavier_forget1" and "bias" in name and "bias_hh" not in name:
                    p[H : 2 * H] = 1.0  # (i, f, c̃, o): the forget gate's block; nn.LSTM's bias_ih only
                if scheme == "xavier_orthogonal" and "weight_hh" in name:
                    for g in range(4):
                        block = p[:, g * H : (g + 1) * H] if gates_last else p[g * H : (g + 1) * H]
                        block.copy_(nn.init.orthogonal_(torch.empty(H, H)))

    # -- the body --------------------------------------------------------------
    def hidden(self, ids: torch.Tensor, state=None):
        """ids (B, T) → last-layer hidden states (B, T, H) and the final state."""
        cfg = self.config
        x = char_dropout(self.embedding.weight, ids, cfg.dropout_chars, self.training)  # (B, T, E)
        x = locked_dropout(x, cfg.dropout_embed, self.training)
        rt = self.runtime
        if rt.impl == "nn":
            if self.training and cfg.weight_drop > 0:  # DropConnect: the library kernel runs on dropped weight_hh
                dropped = {
                    f"weight_hh_l{l}": F.dropout(getattr(self.lstm, f"weight_hh_l{l}"), cfg.weight_drop)
                    for l in range(cfg.num_layers)
                }
                h, new_state = torch.func.functional_call(self.lstm, dropped, (x, state))
            else:
                h, new_state = self.lstm(x, state)
            return locked_dropout(h, cfg.dropout_output, self.training), new_state
        new_state = []
        mode = "original" if rt.impl == "original" else ("fused" if rt.fused else "plain")
        lib = rt.kernels.on(x.device)
        layers = self.lstm_layers
        for l, layer in enumerate(layers):
            w_hh: torch.Tensor = layer.weight_hh
            if self.training and cfg.weight_drop > 0:
                w_hh = F.dropout(w_hh, cfg.weight_drop, training=True)  # DropConnect on weight_hh
            x, s = layer(x, None if state is None else state[l], mode=mode, weight_hh=w_hh, lib=lib)
            new_state.append(s)
            if l < len(layers) - 1:
                x = locked_dropout(x, cfg.dropout_hidden, self.training)
        return locked_dropout(x, cfg.dropout_output, self.training), new_state

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(…, H) → (…, V) fp32 logits (ReLU'd if the assignment's bug is switched on)."""
        out = self.head(h).float()
        return F.relu(out) if self.config.relu_logits else out

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None, state=None):
        """ids (B, T) → (logits, loss).

        Without targets: logits (B, T, V) of every position, loss None.
        With targets: the loss is the mean NLL over real (non-PAD) targets, and
        only those positions go through the head (≈40% of positions are PAD);
        logits are then (N_real, V), or None with the fused head (`HeadNLL`),
        which never materialises them separately. With ``pad_in_loss`` (the assignment's recipe) every
        position counts and logits are (B, T, V).
        """
        h, _ = self.hidden(ids, state)
        if targets is None:
            return self.logits(h), None
        if self.config.pad_in_loss:
            logits = self.logits(h)
            loss = F.nll_loss(F.log_softmax(logits, -1).flatten(0, 1), targets.flatten())
            return logits, loss
        real = targets != self.config.pad_id  # (B, T)
        if self.runtime.fused_head and not torch.is_autocast_enabled(h.device.type):
            loss = HeadNLL.apply(
                h[real],
                self.head.weight,
                self.head.bias,
                targets[real],
                self.config.relu_logits,
                self.runtime.kernels.on(h.device),
            )
            return None, loss
        logits = self.logits(h[real])  # (N_real, V)
        loss = F.nll_loss(F.log_softmax(logits, -1), targets[real])
        return logits, loss

    # -- generation ----------------------------------------------------------------
    def step(self, ids: torch.Tensor, state: StepState | None = None, logits: bool = True, precision: str = "fp32"):
        """One decoding step, the only one: ids (B,) long → (logits (B, V) fp32 of the next token, or
        None when `logits` is False, and the new state). The state (every layer's h_t and C_t) is
        carried between calls, never re-run; `state=None` starts from h_0 = C_0 = 0.

        Eval semantics (no dropout) and the same equations as `forward`, computed from the
        canonical weights, so every kernel (tangshi, original, nn) decodes alike:
            z_t = x_t weight_ih + b + h_{t−1} weight_hh;  i, f, o = σ(·), c̃ = tanh(·)
            C_t = f ⊙ C_{t−1} + i ⊙ c̃;  h_t = o ⊙ tanh(C_t);  logits = h W_headᵀ + b_head
        For one row the products are matrix-vector products, which read each weight once: about
        a tenth of the fixed cost of running `forward` on one token, which matters for one poem
        (≈ 60 steps of batch 1); the first layer's x_t weight_ih + b is then computed once per token and
        kept, and the gate arithmetic is the training forward's compiled pass. `logits=False` skips
        the output layer for a step whose next token is forced anyway. `precision` (fp32 or int8,
        model/step_weights.py) applies to a new state. No autograd: a caller outside `torch.no_grad()` gets
        one (the decoders are already inside one, and a decorator's context costs µs per step)."""
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.step(ids, state, logits, precision)
        if state is None:
            state = StepState.start(step_weights(self, precision), ids.size(0))
        w = state.weights
        h_new: list[torch.Tensor] = []
        c_new: list[torch.Tensor] = []
        last = len(w.layers) - 1
        out = hz = None
        for l in range(len(w.layers)):
            xz = w.token_gates(ids) if l == 0 else w.input_gates(l, h_new[-1])  # x_t weight_ih + b
            fused = w.cell_and_head(state.hz, xz, state.c[l]) if l == last and logits and state.hz is not None else None
            if fused is not None:  # one row, int8: the cell and the head in one compiled call, the same values
                h, c, out, hz = fused
            else:
                h, c = cell(state.hidden_gates(l), xz, state.c[l], w.lib)  # h_t, C_t (model/step_weights.py)
            h_new.append(h)
            c_new.append(c)
        if not logits:
            return None, StepState(w, h_new, c_new)
        if out is None:
            out, hz = w.logits_and_next(h_new[-1])  # and h_t weight_hh, where one product gives both
        return (out.relu_() if self.config.relu_logits else out), StepState(w, h_new, c_new, hz)

    # -- the canonical parameter layout ----------------------------------------------
    def canonical_state_dict(self) -> dict[str, torch.Tensor]:
        """Parameters in the assignment's layout, independent of the kernel:
        embedding.weight (V, E); lstm.{l}.weight_ih (in, 4H); lstm.{l}.weight_hh (H, 4H);
        lstm.{l}.bias (4H); head.weight (V, H) unless tied; head.bias (V)."""
        out = {"embedding.weight": self.embedding.weight.detach()}
        for l in range(self.config.num_layers):
            if self.runtime.impl == "nn":
                out[f"lstm.{l}.weight_ih"] = getattr(self.lstm, f"weight_ih_l{l}").detach().t()
                out[f"lstm.{l}.weight_hh"] = getattr(self.lstm, f"weight_hh_l{l}").detach().t()
                out[f"lstm.{l}.bias"] = (
                    getattr(self.lstm, f"bias_ih_l{l}") + getattr(self.lstm, f"bias_hh_l{l}")
                ).detach()
            else:
                layer = self.lstm_layers[l]
                out[f"lstm.{l}.weight_ih"] = layer.weight_ih.detach()
                out[f"lstm.{l}.weight_hh"] = layer.weight_hh.detach()
                out[f"lstm.{l}.bias"] = layer.bias.detach()
        if not self.config.tie_weights:
            out["head.weight"] = self.head.weight.detach()
        out["head.bias"] = self.head.bias.detach()
        return {k: v.contiguous() for k, v in out.items()}

    @torch.no_grad()
    def load_canonical_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        expected = set(canonical_shapes(self.config))
        missing, unexpected = expected - set(sd), set(sd) - expected
        if missing or unexpected:
            raise TangshiError(
                f"checkpoint weights do not match the config (missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)})"
            )
        for k, shape in canonical_shapes(self.config).items():
            if tuple(sd[k].shape) != shape:
                raise TangshiError(f"checkpoint weight {k} has shape {tuple(sd[k].shape)}, config says {shape}")
        self.embedding.weight.copy_(sd["embedding.weight"])
        for l in range(self.config.num_layers):
            w_ih, w_hh, b = sd[f"lstm.{l}.weight_ih"], sd[f"lstm.{l}.weight_hh"], sd[f"lstm.{l}.bias"]
            if self.runtime.impl == "nn":
                getattr(self.lstm, f"weight_ih_l{l}").copy_(w_ih.t())
                getattr(self.lstm, f"weight_hh_l{l}").copy_(w_hh.t())
                getattr(self.lstm, f"bias_ih_l{l}").copy_(b)
                getattr(self.lstm, f"bias_hh_l{l}").zero_()
            else:
                layer = self.lstm_layers[l]
                layer.weight_ih.copy_(w_ih)
                layer.weight_hh.copy_(w_hh)
                layer.bias.copy_(b)
        if not self.config.tie_weights:
            self.head.weight.copy_(sd["head.weight"])
        self.head.bias.copy_(sd["head.bias"])


@torch.no_grad()
def widen(model: PoetryLM, embed_dim: int, hidden_dim: int) -> PoetryLM:
    """A wider copy of `model` that computes exactly the same function (Net2Net's idea, Chen et al.
    2016, done here by zeroing rather than by splitting units), so training a larger model can
    start from a trained smaller one. The new entries are:

    - embedding columns E0..E1 (and untied head columns H0..H1): zero, so the new input features
      are 0 and the new units' outputs do not reach the logits;
    - weights from a new input or new hidden unit into an old unit's gates: zero;
    - every weight and bias of a new unit: freshly drawn by the model's own init (global RNG).

    Gradients reach all the zeros at once (each is a product of an old signal and a new one),
    so the new capacity starts learning on the first step.
    """
    cfg = model.config
    if embed_dim < cfg.embed_dim or hidden_dim < cfg.hidden_dim:
        raise TangshiError(
            f"a model can only be widened: it has embed_dim {cfg.embed_dim}, hidden_dim "
            f"{cfg.hidden_dim}; asked for {embed_dim}, {hidden_dim}"
        )
    new = PoetryLM(replace(cfg, embed_dim=embed_dim, hidden_dim=hidden_dim), model.runtime)
    old, out = model.canonical_state_dict(), {k: v.clone() for k, v in new.canonical_state_dict().items()}
    E0, H0, H1 = cfg.embed_dim, cfg.hidden_dim, hidden_dim
    emb = torch.zeros_like(out["embedding.weight"])
    emb[:, :E0] = old["embedding.weight"]
    out["embedding.weight"] = emb
    if not cfg.tie_weights:
        head = torch.zeros_like(out["head.weight"])
        head[:, :H0] = old["head.weight"]
        out["head.weight"] = head
    out["head.bias"] = old["head.bias"].clone()
    old_units = torch.cat([torch.arange(k * H1, k * H1 + H0) for k in range(4)])  # i, f, g, o blocks
    for l in range(cfg.num_layers):
        for name, n_in in (("weight_ih", E0 if l == 0 else H0), ("weight_hh", H0)):
            w = out[f"lstm.{l}.{name}"]
            w[:, old_units] = 0.0
            w[:n_in, old_units] = old[f"lstm.{l}.{name}"]
        out[f"lstm.{l}.bias"][old_units] = old[f"lstm.{l}.bias"]
    new.load_canonical_state_dict(out)
    return new


def canonical_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The canonical names and shapes, defined once for both implementations (model/spec.py)."""
    return param_shapes(cfg)
