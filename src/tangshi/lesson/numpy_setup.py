"""What the NumPy twin's forward and backward passes (numpy_lstm.py) stand on.

Fresh parameters (`init_params`) and the checks of parameters and batches; the packed layout of a
batch (`Packing`, described in numpy_lstm's docstring); reusable buffers (`Workspace`); and the
BLAS thread limit its time loops run under (`blas_threads`).

No torch in this module.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from tangshi.model.spec import Dims, param_shapes

__all__ = [
    "INIT_SCHEMES",
    "init_params",
    "check_params",
    "check_batch",
    "param_names",
    "Packing",
    "pack",
    "packed",
    "Workspace",
    "buffer",
    "blas_threads",
]

INIT_SCHEMES = ("xavier", "zeros", "uniform1e-4")


# --------------------------------------------------------------------------------------
# Parameters and batches
# --------------------------------------------------------------------------------------


def init_params(config: Any, rng: Any = 0, scheme: str = "xavier", dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Fresh parameters.

    scheme "xavier": Xavier/Glorot-uniform U(+-sqrt(6 / (fan_in + fan_out))) for every
    matrix, zeros for every vector; "zeros": everything 0; "uniform1e-4": everything
    U(+-1e-4).  `rng` is a numpy Generator or a seed.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    dtype = np.dtype(dtype)
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(config).items():
        if scheme == "zeros":
            a = np.zeros(shape)
        elif scheme == "uniform1e-4":
            a = rng.uniform(-1e-4, 1e-4, size=shape)
        elif len(shape) == 2:
            bound = float(np.sqrt(6.0 / (shape[0] + shape[1])))
            a = rng.uniform(-bound, bound, size=shape)
        else:
            a = np.zeros(shape)
        params[name] = np.ascontiguousarray(a, dtype=dtype)
    return params


def check_params(params: Mapping[str, np.ndarray], d: Dims, config: Any) -> np.dtype:
    """The parameters' common dtype; ValueError unless their names, shapes and dtype fit the config."""
    expected = param_shapes(config)
    missing = [k for k in expected if k not in params]
    extra = [k for k in params if k not in expected]
    if missing or extra:
        raise ValueError(f"parameter names do not match the config: missing {missing}, unexpected {extra}")
    dtype = params["embedding.weight"].dtype
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"parameters must be float32 or float64, got {dtype}")
    for k, shape in expected.items():
        a = params[k]
        if a.shape != shape or a.dtype != dtype:
            raise ValueError(f"{k}: expected {shape} {dtype}, got {a.shape} {a.dtype}")
    return dtype


def check_batch(inputs: Any, targets: Any | None, V: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, targets) as int64 arrays (B, T); ValueError for a batch the model cannot read."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or not np.issubdtype(inputs.dtype, np.integer):
        raise ValueError(f"inputs must be an integer array (B, T), got {inputs.dtype} {inputs.shape}")
    if inputs.size and (inputs.min() < 0 or inputs.max() >= V):
        raise ValueError(f"input ids must lie in [0, {V}), got [{inputs.min()}, {inputs.max()}]")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.shape != inputs.shape or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(
                f"targets must be an integer array of shape {inputs.shape}, got {targets.dtype} {targets.shape}"
            )
    return inputs.astype(np.int64, copy=False), (None if targets is None else targets.astype(np.int64, copy=False))


def param_names(d: Dims) -> list[str]:
    """The parameters' names in their canonical order."""
    names = ["embedding.weight"]
    for l in range(d.L):
        names += [f"lstm.{l}.weight_ih", f"lstm.{l}.weight_hh", f"lstm.{l}.bias"]
    if not d.tie:
        names.append("head.weight")
    names.append("head.bias")
    return names


# --------------------------------------------------------------------------------------
# The packed layout
# --------------------------------------------------------------------------------------


class Packing(NamedTuple):
    order: np.ndarray  # (B,) batch rows sorted by live length, longest first
    bs: list  # bs[t] = number of rows alive at step t (non-increasing)
    off: list  # off[t] = first packed row of step t; off[T] = P
    alive: np.ndarray  # (T, B) bool, in sorted-row order; True where packed


def pack(lengths: np.ndarray) -> Packing:
    """Packing for rows of the given live lengths (a row is alive at steps t < length)."""
    order = np.argsort(-lengths, kind="stable")
    sorted_len = lengths[order]
    T = int(sorted_len[0]) if len(sorted_len) else 0
    steps = np.arange(T)
    alive = steps[:, None] < sorted_len[None, :]  # (T, B)
    bs = alive.sum(axis=1).tolist()
    off = [0]
    for n in bs:
        off.append(off[-1] + n)
    return Packing(order, bs, off, alive)


def packed(a: np.ndarray, pk: Packing) -> np.ndarray:
    """(B, T') array -> (P,) in packed order."""
    T = len(pk.bs)
    return a[pk.order, :T].T[pk.alive]


# --------------------------------------------------------------------------------------
# Reusable buffers
# --------------------------------------------------------------------------------------


class Workspace:
    """Reusable buffers for forward()/backward() in a training loop.

    Without one every step allocates its big arrays afresh (the (N, V) logits alone are
    ~100 MB at batch 128 x 64), and the kernel zero-fills their pages on first touch:
    ~5% of a step.  With `forward(..., workspace=ws)` the arrays live in `ws` and are
    reused; a cache made with a workspace is valid until the next forward() with it.
    The gradients backward() returns are always fresh arrays.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        size = int(np.prod(shape))
        dtype = np.dtype(dtype)
        buf = self._bufs.get(key)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = np.empty(size + size // 4, dtype)  # headroom: the packed size varies by batch
            self._bufs[key] = buf
        return buf[:size].reshape(shape)

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._bufs.values())


def buffer(ws: Workspace | None, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array: the workspace's buffer `key`, or a fresh one without a workspace."""
    return np.empty(shape, dtype) if ws is None else ws.get(key, shape, dtype)


# --------------------------------------------------------------------------------------
# BLAS threads
# --------------------------------------------------------------------------------------


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_threads(n: int | None):
    """Context manager: run the enclosed NumPy BLAS calls with `n` threads (None: unchanged)."""
    if n is None:
        return contextlib.nullcontext()
    return _controller().limit(limits=n, user_api="blas")
