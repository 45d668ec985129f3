"""tangshi's compiled kernels, built at first use: the LSTM step's gate arithmetic as one pass
(csrc/lstm_cell.c), the training loss's softmax and NLL on each chunk of the output layer
(csrc/head_nll.c), and for decoding one poem the sampling of one row (csrc/sampling.c) and the
int8 matrix-vector product (csrc/gemv_int8.c, where the CPU has AVX-512 VNNI).

`LSTMRecurrence` (model/lm.py) runs a time step as a matrix product plus about eleven small
elementwise kernels in each direction; on a CPU those kernels' launches and memory passes cost more
than their arithmetic, which is why `torch.nn.LSTM` (mkldnn, one fused kernel per step) was faster.
This module compiles the same equations, fused, with the machine's C compiler:

    cc -O3 -march=native -fno-trapping-math -fopenmp -shared -fPIC

so that they vectorise for the CPU at hand, and loads the result with ctypes. The library is
cached in ``$XDG_CACHE_HOME/tangshi`` (default ``~/.cache/tangshi``; a folder that another user can
write is never used) under a name that hashes the source, the compiler, its flags and the CPU's
model and flags, so a home directory shared by different machines never loads code built for
another CPU. A build takes about a second.

Where there is no compiler, the build fails, or ``TANGSHI_FUSED_CELL=0`` is set, `detect()` gives
no library: the recurrence runs the same equations as PyTorch ops and decoding samples in NumPy;
its `why` says which and why.
The matrix products stay in PyTorch (in bf16 under autocast); the gate arithmetic here is fp32
either way. CUDA never uses it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from tangshi.machine import cpu_identity

SOURCES = tuple(
    Path(__file__).with_name("csrc") / name for name in ("lstm_cell.c", "head_nll.c", "sampling.c", "gemv_int8.c")
)
HEADERS = (Path(__file__).with_name("csrc") / "common.h",)  # included by the sources: part of the cache key
FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC")
ENV = "TANGSHI_FUSED_CELL"  # 0 turns the fused cell off
BUILD_TIMEOUT_S = 120
LIBRARY = "tangshi-kernels"  # the shared library: the four sources' kernels, one file

_lock = threading.Lock()
_state: dict = {}  # "kernels": the Kernels of this process, once detected


def cell_ops(z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gate arithmetic as PyTorch ops (autograd flows through them): z (B, 4H) = (i, f, c̃, o)
    pre-activations, C_{t−1} (B, H) → h_t, C_t. What csrc/lstm_cell.c's forward computes."""
    i, f, g, o = z.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return o * torch.tanh(c), c


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "tangshi"


def _private(folder: Path) -> bool:
    """Only this user can write the folder (a library loaded from it runs as this user)."""
    st = folder.stat()
    return (not hasattr(os, "getuid") or st.st_uid == os.getuid()) and not st.st_mode & 0o022


def _build(cc: str, again: bool = False) -> Path:
    """The cached library for this source, compiler and CPU, compiled if missing (or `again`)."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    key = hashlib.sha256(
        "\0".join(
            [*(src.read_text() for src in SOURCES + HEADERS), cc, version, " ".join(FLAGS), cpu_identity()]
        ).encode()
    ).hexdigest()[:16]
    for folder in (_cache_dir(), Path(tempfile.gettempdir()) / f"tangshi-{os.getuid()}"):
        lib = folder / f"{LIBRARY}-{key}.so"
        tmp = folder / f".{LIBRARY}-{key}.{os.getpid()}.so"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(folder):
                continue  # someone else could plant a library there
            if lib.exists() and not again:
                return lib
            res = subprocess.run(
                [cc, *FLAGS, "-o", str(tmp), *map(str, SOURCES)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
            if res.returncode != 0:
                raise RuntimeError(f"{Path(cc).name} failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
            os.replace(tmp, lib)  # atomic: a concurrent build or a reader never sees half a file
            return lib
        except OSError:
            continue  # not writable (or full): try the next folder
        finally:
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)  # no half-built file is left behind
    raise RuntimeError("no cache folder that only this user can write, for the compiled cell")


def declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """The C signatures of the library's functions (csrc/*.c), for ctypes."""
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.lstm_cell_forward.argtypes = [i64, i64, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.lstm_cell_forward.restype = None
    lib.lstm_cell_backward.argtypes = [i64, i64, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr]
    lib.lstm_cell_backward.restype = None
    lib.head_nll_rows.argtypes = [i64, i64, ptr, ptr, ptr, ctypes.c_int32, i64]
    lib.head_nll_rows.restype = ctypes.c_double
    lib.sample_prepare.argtypes = [i64, ptr, ptr, ptr, ctypes.c_float]
    lib.sample_prepare.restype = None
    lib.sample_row.argtypes = [i64, ptr, i64, ctypes.c_int32, ctypes.c_float, ctypes.c_float, ptr]
    lib.sample_row.restype = i64
    lib.gemv_int8_available.argtypes = []
    lib.gemv_int8_available.restype = ctypes.c_int32
    lib.gemv_int8.argtypes = [i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.gemv_int8.restype = None
    lib.lstm_step_row_int8.argtypes = [i64, ptr, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.lstm_step_row_int8.restype = None
    return lib


def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(ENV, "1") == "0":
        return None, f"off ({ENV}=0)"
    if platform.system() != "Linux" and platform.system() != "Darwin":
        return None, f"not built on {platform.system()}"
    cc = _compiler()
    if cc is None:
        return None, "no C compiler (cc/gcc) on PATH"
    try:
        path = _build(cc)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:  # a cached file that does not load (damaged, or cut short by a full disk): build it again
            path = _build(cc, again=True)
            lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        return None, f"build failed: {e}"
    declare(lib)
    return lib, f"compiled ({Path(cc).name} {' '.join(FLAGS[:3])}): {path}"


@dataclass(frozen=True)
class Kernels:
    """Which compiled kernels this process runs, and why not where it runs none: chosen once, at
    start-up (`detect`), and handed to whatever computes (the model's recurrence, the training
    loss, the decoding step, the sampler), which never asks again. `Kernels.off(why)` runs the same
    equations as PyTorch ops (the fallback, and the reference the compiled kernels are tested against)."""

    lib: ctypes.CDLL | None
    why: str

    @property
    def compiled(self) -> bool:
        return self.lib is not None

    def on(self, device: torch.device | str) -> ctypes.CDLL | None:
        """The library for work on `device`: the kernels are CPU code."""
        return self.lib if torch.device(device).type == "cpu" else None

    @classmethod
    def off(cls, why: str = "off (PyTorch ops asked for)") -> Kernels:
        return cls(None, why)


def detect() -> Kernels:
    """This machine's kernels: built (or found in the cache) and loaded at the first call, then the
    same object for the life of the process. None are used where there is no compiler, the build
    fails, or TANGSHI_FUSED_CELL=0 is set; `why` says which."""
    if "kernels" not in _state:
        with _lock:
            if "kernels" not in _state:
                _state["kernels"] = Kernels(*_load())
    return _state["kernels"]
