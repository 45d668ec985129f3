"""The weights `PoetryLM.step` reads while decoding, in the precision it decodes with.

- ``fp32``: the canonical weights, with transposed contiguous copies for batch-1 matrix-vector
  products (each weight read once per step).
- ``int8``: fbgemm's dynamic quantisation (`torch.ops.quantized.linear_dynamic`): every weight
  matrix int8 with one scale per output row (symmetric), the activations quantised per call to
  7-bit unsigned (fbgemm's `reduce_range`, which keeps its int16 pair sums from saturating) with
  their own range, the products accumulated in int32. The embedding and the hidden state are
  quantised separately, so each keeps its own range. One batch-1 step reads a quarter of the
  bytes of fp32; decoding a poem is bound by those bytes. One row, on a CPU with AVX-512 VNNI,
  takes the compiled csrc/gemv_int8.c instead: the same int8 weights, the activations 8-bit
  symmetric (`Int8Linear`).

PyTorch 2.13 marks its quantised tensor types deprecated (pytorch/pytorch#184982); tangshi pins
2.13, and `--precision fp32` needs none of them.

The weights are built once per model and precision and cached on the model; the cache notices
when a parameter changes (`Tensor._version`), so a model trained further decodes with its new
weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from tangshi.errors import TangshiError
from tangshi.model import kernels
from tangshi.model.spec import head_weight_name

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


class Int8Linear:
    """y = x Wᵀ + b with W (out, in) int8, one symmetric scale per output row, for the decoding step.

    A batch goes through fbgemm's dynamic kernel (`linear_dynamic`: x quantised per call to 7 bits).
    One row, where the compiled kernels are built for a CPU with AVX-512 VNNI, goes through
    csrc/gemv_int8.c: the same int8 weights, x quantised per call to 8 bits (symmetric), int32 sums;
    about 0.8× fbgemm's time for the 6,837 × 512 output layer, 0.55× for a 2,048 × 512 weight_hh. That
    path needs `in` to be a multiple of 8 and otherwise falls back to fbgemm too."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, lib=None):
        # copies: the layouts are built later, from the weights as they are now (a parameter may change)
        self.weight = weight.detach().float().clone(memory_format=torch.contiguous_format)
        self.bias = None if bias is None else bias.detach().float().clone()
        self.N, self.K = self.weight.shape
        self.lib = lib  # the compiled kernels (`kernels.Kernels.lib`), or None: fbgemm for every row
        self._q = self._fbgemm = None  # each built at its first use (a poem needs only one layout)
        self._row: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | Literal[False] | None = None  # likewise

    @property
    def q(self):
        """The int8 weight (a per-channel quantised tensor): one symmetric scale per output row."""
        if self._q is None:
            w = self.weight
            scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
            with warnings.catch_warnings():  # torch 2.13 announces the quantised tensor types' removal (pinned)
                warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated")
                self._q = torch.quantize_per_channel(w, scale, torch.zeros(w.size(0), dtype=torch.long), 0, torch.qint8)
        return self._q

    @property
    def fbgemm(self):
        """fbgemm's packed weight, for a batch."""
        if self._fbgemm is None:
            self._fbgemm = torch.ops.quantized.linear_prepack(self.q, self.bias)
        return self._fbgemm

    @property
    def row(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | Literal[False]:
        """(weights [N/16][K/4][16][4], row sums, scales) for csrc/gemv_int8.c, or False where that
        kernel is not built for this CPU or K is not a multiple of 8."""
        lib = self.lib
        if lib is None:
            return False  # not built, or switched off
        if self._row is None:
            self._row = False
            if lib.gemv_int8_available() and self.K % 8 == 0:
                n16 = -(-self.N // 16)
                wp = torch.zeros(n16 * 16, self.K, dtype=torch.int8)
                wp[: self.N] = self.q.int_repr()
                sp = torch.zeros(n16 * 16)
                sp[: self.N] = self.q.q_per_channel_scales().float()
                # one 64-byte load holds 4 columns of 16 rows (csrc/gemv_int8.c)
                self._row = (
                    wp.view(n16, 16, self.K // 4, 4).permute(0, 2, 1, 3).contiguous(),
                    wp.sum(dim=1, dtype=torch.int32),
                    sp,
                )
        return self._row

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        row = self.row if x.size(0) == 1 else False
        if not row:
            return torch.ops.quantized.linear_dynamic(x.contiguous(), self.fbgemm, True)
        w, rowsum, scale = row
        lib = self.lib
        x = x.float().contiguous()
        y = torch.empty(1, self.N)
        q = torch.empty(self.K, dtype=torch.uint8)
        lib.gemv_int8(
            self.N,
            self.K,
            w.data_ptr(),
            rowsum.data_ptr(),
            scale.data_ptr(),
            None if self.bias is None else self.bias.data_ptr(),
            x.data_ptr(),
            y.data_ptr(),
            q.data_ptr(),
        )
        return y

    def after_cell(self, hz: torch.Tensor, xz: torch.Tensor, c_prev: torch.Tensor):
        """One row: `cell(hz + xz, C_{t−1})`, then this product of its h_t, in one compiled call
        (csrc/gemv_int8.c's `lstm_step_row_int8`: the same two functions, so the same values).
        hz = h_{t−1} weight_hh and xz = x_t weight_ih + b (1, 4H), C_{t−1} (1, H), all read only.
        Returns (y (1, N), C_t, h_t), new tensors; None where the one-row kernel is not built."""
        row = self.row
        if not row:
            return None
        w, rowsum, scale = row
        H = c_prev.shape[1]
        buf = torch.empty(1, self.N + 7 * H + self.K // 4 + 1)  # y, C_t, h_t, then scratch: 5H floats, K bytes
        p, f = buf.data_ptr(), buf.element_size()
        self.lib.lstm_step_row_int8(
            H,
            hz.data_ptr(),
            xz.data_ptr(),
            c_prev.data_ptr(),
            p + (self.N + 2 * H) * f,
            p + self.N * f,
            p + (self.N + H) * f,
            self.N,
            w.data_ptr(),
            rowsum.data_ptr(),
            scale.data_ptr(),
            None if self.bias is None else self.bias.data_ptr(),
            p,
            p + (self.N + 7 * H) * f,
        )
        return buf.split_with_sizes([self.N, H, H, buf.shape[1] - self.N - 2 * H], dim=1)[:3]  # C, not Tensor.split


@dataclass(frozen=True)
class StepWeights:
    """Per layer, x weight_ih + b (`input_gates`; for the first layer `token_gates` of the token ids) and
    h weight_hh (`hidden_gates`), whose sum is z (B, 4H); `logits(h)` the head.

    The first layer's x weight_ih + b depends on the token alone, so for one row it is computed once per
    token, exactly as it would be each time, and kept (`xz_rows`: at most V rows of 4H floats, 56 MB
    for the bundled model if every character were used): a poem's step reads weight_hh and the head only.
    """

    emb: torch.Tensor  # (V, E) fp32: the input rows are looked up, not multiplied
    layers: list  # per layer: weight_ih (in, 4H), weight_hh (H, 4H), bias (4H,), fp32
    gemv: list  # fp32: per layer weight_ihᵀ (4H, in), weight_hhᵀ (4H, H), contiguous, for one row
    head_w: torch.Tensor  # (V, H) fp32: the embedding when tied
    head_b: torch.Tensor  # (V,)
    precision: str = "fp32"
    packed: tuple = ()  # int8: per layer (weight_ihᵀ with the bias, weight_hhᵀ), then the head with its bias
    xz_rows: dict = field(default_factory=dict, compare=False)  # token id → its (1, 4H) x weight_ih + b, layer 0
    head_and_hh: Int8Linear | None = None  # int8, one row: [head; last layer's W_hhᵀ], both read h_t
    lib: Any = None  # the compiled kernels the model runs with (`Runtime.kernels`), or None

    @classmethod
    def of(cls, model, precision: str = "fp32") -> StepWeights:
        """Built from the canonical weights, so from any kernel."""
        check_precision(precision, model.head.bias.device)
        cfg = model.config
        sd = {k: v.float() for k, v in model.canonical_state_dict().items()}
        layers = [
            (sd[f"lstm.{l}.weight_ih"], sd[f"lstm.{l}.weight_hh"], sd[f"lstm.{l}.bias"]) for l in range(cfg.num_layers)
        ]
        head_w, head_b = sd[head_weight_name(cfg)], sd["head.bias"]
        lib = model.runtime.kernels.on(head_b.device)
        if precision == "int8":
            packed = tuple((Int8Linear(w_ih.t(), b, lib), Int8Linear(w_hh.t(), None, lib)) for w_ih, w_hh, b in layers)
            both = Int8Linear(
                torch.cat([head_w, layers[-1][1].t()]), torch.cat([head_b, torch.zeros(4 * cfg.hidden_dim)]), lib
            )
            return cls(
                sd["embedding.weight"],
                layers,
                [],
                head_w,
                head_b,
                precision,
                packed + (Int8Linear(head_w, head_b, lib),),
                head_and_hh=both,
                lib=lib,
            )
        return cls(
            sd["embedding.weight"],
            layers,
            [(w_ih.t().contiguous(), w_hh.t().contiguous()) for w_ih, w_hh, _ in layers],
            head_w,
            head_b,
            lib=lib,
        )

    def input_gates(self, l: int, x: torch.Tensor) -> torch.Tensor:
        """x weight_ih + b (B, 4H) of layer l's input x (B, in): a new tensor."""
        if self.precision == "int8":
            return self.packed[l][0](x)
        w_ih, _, b = self.layers[l]
        if x.size(0) == 1:
            return torch.mv(self.gemv[l][0], x[0]).add_(b)[None]
        return torch.addmm(b, x, w_ih)

    def token_gates(self, ids: torch.Tensor) -> torch.Tensor:
        """The first layer's x weight_ih + b (B, 4H) for token ids (B,); for one row the kept row of that
        token (read-only: never write into it)."""
        if ids.size(0) != 1:
            return self.input_gates(0, self.emb.index_select(0, ids))
        tok = ids.item()
        row = self.xz_rows.get(tok)
        if row is None:
            row = self.xz_rows[tok] = self.input_gates(0, self.emb[tok : tok + 1])
        return row

    def hidden_gates(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """h weight_hh (B, 4H) of layer l: a new tensor."""
        if self.precision == "int8":
            return self.packed[l][1](h)
        if h.size(0) == 1:
            return torch.mv(self.gemv[l][1], h[0])[None]
        return torch.mm(h, self.layers[l][1])

    def logits_and_next(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The head's logits (B, V) of the last layer's h_t and, where one product gives both (int8,
        one row, the compiled kernel), that layer's h_t weight_hh (B, 4H) for the next step, else None.
        The rows of weight_hh ride on the head's product: h_t is quantised once, as each would quantise
        it, so the values are those of the two separate products."""
        if self.head_and_hh is not None and h.size(0) == 1 and self.head_and_hh.row:  # built at the first row
            return self._logits_and_hz(self.head_and_hh(h))
        return self.logits(h), None

    def _logits_and_hz(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`head_and_hh`'s output (1, V + 4H) as (logits, h_t weight_hh): two views."""
        V = self.head_b.shape[0]
        logits, hz = y.split_with_sizes([V, y.shape[1] - V], dim=1)
        return logits, hz

    def cell_and_head(self, hz: torch.Tensor, xz: torch.Tensor, c_prev: torch.Tensor):
        """The last layer's `cell` and `logits_and_next` in one compiled call (int8, one row, where
        the one-row kernel is built): (h_t, C_t, logits, h_t weight_hh), the values of the two calls;
        else None. hz, xz (1, 4H) and C_{t−1} (1, H) are read only."""
        if self.head_and_hh is None or hz.size(0) != 1:
            return None
        got = self.head_and_hh.after_cell(hz.contiguous(), xz.contiguous(), c_prev.contiguous())
        if got is None:
            return None
        y, c, h = got
        return (h, c, *self._logits_and_hz(y))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.precision == "int8":
            return self.packed[-1](h)
        if h.size(0) == 1:
            return torch.mv(self.head_w, h[0]).add_(self.head_b)[None]
        return torch.nn.functional.linear(h, self.head_w, self.head_b)


def cell(a: torch.Tensor, xz: torch.Tensor, c_prev: torch.Tensor, lib=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's gate arithmetic (eval): a = h_{t−1} weight_hh (B, 4H, overwritten: the gates or z) plus
    xz = x_t weight_ih + b (read only) is z_t; returns h_t and C_t (B, H), new tensors:
        i, f, o = σ(z), c̃ = tanh(z);  C_t = f ⊙ C_{t−1} + i ⊙ c̃;  h_t = o ⊙ tanh(C_t)
    On the CPU in the training forward's compiled pass (csrc/lstm_cell.c) where `lib`, the compiled
    kernels, is given, else as PyTorch ops."""
    B, H = c_prev.shape
    if lib is not None and a.device.type == "cpu":
        c_prev = c_prev.contiguous()
        h, c, tc = torch.empty(B, H), torch.empty(B, H), torch.empty(B, H)
        lib.lstm_cell_forward(
            B, H, a.data_ptr(), xz.contiguous().data_ptr(), c_prev.data_ptr(), c.data_ptr(), tc.data_ptr(), h.data_ptr()
        )
        return h, c
    return kernels.cell_ops(a.add_(xz), c_prev)


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
    each (never written in place), perhaps the last layer's h_t weight_hh already computed, and the
    weights the steps read."""

    weights: StepWeights
    h: list
    c: list
    hz: torch.Tensor | None = None  # the last layer's h_t weight_hh, when the head's product gave it too

    @classmethod
    def start(cls, weights: StepWeights, batch: int) -> StepState:
        zeros = torch.zeros(batch, weights.layers[0][1].shape[0], device=weights.head_b.device)
        return cls(weights, [zeros] * len(weights.layers), [zeros] * len(weights.layers))

    def hidden_gates(self, l: int) -> torch.Tensor:
        """h_t weight_hh of layer l for the next step: a new tensor (the cell overwrites it)."""
        if l == len(self.h) - 1 and self.hz is not None:
            return self.hz.clone()
        return self.weights.hidden_gates(l, self.h[l])

    def select(self, rows: torch.Tensor) -> StepState:
        """Keep (and repeat) rows: beam reordering."""
        return StepState(
            self.weights,
            [h.index_select(0, rows) for h in self.h],
            [c.index_select(0, rows) for c in self.c],
            None if self.hz is None else self.hz.index_select(0, rows),
        )
