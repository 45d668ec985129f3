"""The weights `PoetryLM.step` reads while decoding, in the precision it decodes with.

- ``fp32``: the canonical weights, with transposed contiguous copies for batch-1 matrix-vector
  products (each weight read once per step).
- ``int8``: fbgemm's dynamic quantisation (`torch.ops.quantized.linear_dynamic`): every weight
  matrix int8 with one scale per output row (symmetric), the activations quantised per call to
  7-bit unsigned (fbgemm's `reduce_range`, which keeps its int16 pair sums from saturating) with
  their own range, the products accumulated in int32. The embedding and the hidden state are
  quantised separately, so each keeps its own range. One batch-1 step reads a quarter of the
  bytes of fp32; decoding a poem is bound by those bytes.

PyTorch 2.13 marks its quantised tensor types deprecated (pytorch/pytorch#184982); tangshi pins
2.13, and `--precision fp32` needs none of them.

The weights are built once per model and precision and cached on the model; the cache notices
when a parameter changes (`Tensor._version`), so a model trained further decodes with its new
weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .errors import TangshiError
from .lstm_spec import head_weight_name

PRECISIONS = ("fp32", "int8")
_CACHE = "_tangshi_step_weights"


def int8_available() -> bool:
    """fbgemm, the x86 engine of PyTorch's quantised kernels (VNNI on AVX-512 CPUs)."""
    return "fbgemm" in torch.backends.quantized.supported_engines


def default_precision(device) -> str:
    """int8 on x86 CPUs (fbgemm); fp32 on CUDA and where fbgemm is missing."""
    return "int8" if torch.device(device).type == "cpu" and int8_available() else "fp32"


def check_precision(precision: str, device="cpu") -> None:
    if precision not in PRECISIONS:
        raise TangshiError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and (torch.device(device).type != "cpu" or not int8_available()):
        raise TangshiError("--precision int8 needs a CPU with PyTorch's fbgemm kernels (x86); use --precision fp32")


def _pack(weight: torch.Tensor, bias: torch.Tensor | None):
    """(out, in) fp32 → fbgemm's packed int8 weight, one symmetric scale per output row."""
    w = weight.detach().float().contiguous()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    with warnings.catch_warnings():  # torch 2.13 announces the quantised tensor types' removal (pinned here)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated")
        q = torch.quantize_per_channel(w, scale, torch.zeros(w.size(0), dtype=torch.long), 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None if bias is None else bias.detach().float().contiguous())


def _int8_linear(x: torch.Tensor, packed) -> torch.Tensor:
    return torch.ops.quantized.linear_dynamic(x.contiguous(), packed, True)


@dataclass(frozen=True)
class StepWeights:
    """Per layer, `gates(l, x, h)` gives z = x W_ih + h W_hh + b (B, 4H); `logits(h)` the head."""

    emb: torch.Tensor  # (V, E) fp32: the input rows are looked up, not multiplied
    layers: list  # per layer: weight_ih (in, 4H), weight_hh (H, 4H), bias (4H,), fp32
    gemv: list  # fp32: per layer weight_ihᵀ (4H, in), weight_hhᵀ (4H, H), contiguous, for one row
    head_w: torch.Tensor  # (V, H) fp32: the embedding when tied
    head_b: torch.Tensor  # (V,)
    precision: str = "fp32"
    packed: tuple = ()  # int8: per layer (weight_ihᵀ with the bias, weight_hhᵀ), then the head with its bias

    @classmethod
    def of(cls, model, precision: str = "fp32") -> "StepWeights":
        """Built from the canonical weights, so from any kernel."""
        check_precision(precision, model.head.bias.device)
        cfg = model.config
        sd = {k: v.float() for k, v in model.canonical_state_dict().items()}
        layers = [(sd[f"lstm.{l}.weight_ih"], sd[f"lstm.{l}.weight_hh"], sd[f"lstm.{l}.bias"])
                  for l in range(cfg.num_layers)]
        head_w, head_b = sd[head_weight_name(cfg)], sd["head.bias"]
        if precision == "int8":
            packed = tuple((_pack(w_ih.t(), b), _pack(w_hh.t(), None)) for w_ih, w_hh, b in layers)
            return cls(sd["embedding.weight"], layers, [], head_w, head_b, precision, packed + (_pack(head_w, head_b),))
        return cls(sd["embedding.weight"], layers, [(w_ih.t().contiguous(), w_hh.t().contiguous())
                                                   for w_ih, w_hh, _ in layers], head_w, head_b)

    def gates(self, l: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.precision == "int8":
            p_ih, p_hh = self.packed[l]
            return _int8_linear(x, p_ih).add_(_int8_linear(h, p_hh))
        w_ih, w_hh, b = self.layers[l]
        if x.size(0) == 1:
            w_ih_t, w_hh_t = self.gemv[l]
            return torch.mv(w_ih_t, x[0]).add_(torch.mv(w_hh_t, h[0])).add_(b)[None]
        return torch.addmm(b, x, w_ih).addmm_(h, w_hh)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.precision == "int8":
            return _int8_linear(h, self.packed[-1])
        if h.size(0) == 1:
            return torch.mv(self.head_w, h[0]).add_(self.head_b)[None]
        return torch.nn.functional.linear(h, self.head_w, self.head_b)


def step_weights(model, precision: str = "fp32") -> StepWeights:
    """The model's StepWeights in `precision`, built once and rebuilt only when a parameter changed."""
    key = tuple((p.data_ptr(), p._version) for p in model.parameters())
    cache = model.__dict__.setdefault(_CACHE, {})
    hit = cache.get(precision)
    if hit is None or hit[0] != key:
        hit = cache[precision] = (key, StepWeights.of(model, precision))
    return hit[1]


@dataclass(frozen=True)
class StepState:
    """What `PoetryLM.step` carries from one call to the next: h_t and C_t of every layer, (B, H)
    each (never written in place), and the weights the steps read."""

    weights: StepWeights
    h: list
    c: list

    @classmethod
    def start(cls, weights: StepWeights, batch: int) -> "StepState":
        zeros = torch.zeros(batch, weights.layers[0][1].shape[0], device=weights.head_b.device)
        return cls(weights, [zeros] * len(weights.layers), [zeros] * len(weights.layers))

    def select(self, rows: torch.Tensor) -> "StepState":
        """Keep (and repeat) rows: beam reordering."""
        return StepState(self.weights, [h.index_select(0, rows) for h in self.h],
                         [c.index_select(0, rows) for c in self.c])
