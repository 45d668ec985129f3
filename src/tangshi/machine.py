"""What machine this is, for reports, model cards and the bench (read once, in one place), and how
many threads a small decoding job should use on it now."""

from __future__ import annotations

import functools
import os
import platform

import torch

SMALL_BATCH = 8  # batches up to this size decode on one CPU thread (see `threads_for`)


def memory_available() -> int | None:
    """Bytes of memory available to a new process (/proc/meminfo MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_flags() -> dict[str, bool]:
    """The CPU features the speed of a step depends on, as PyTorch sees them (AMX and AVX512-BF16
    make bf16 matrix products fast; without them bf16 is emulated and slower)."""
    probes = {
        "amx": "_is_amx_tile_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "avx512": "_is_avx512_supported",
        "avx512_vnni": "_is_vnni_supported",
        "avx2": "_is_avx2_supported",
    }
    return {name: bool(getattr(torch.cpu, probe, lambda: False)()) for name, probe in probes.items()}


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows, else 'unknown CPU'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@functools.cache
def cpu_identity() -> str:
    """The CPU's model name and its full feature-flag line (Linux): what code built with
    -march=native may depend on (model/kernels/__init__.py keys its cache by it)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line.strip() for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{cpu_name()}\n{flags or platform.machine()}"


def _cpu_saturated() -> bool:
    """The 1-minute load average already fills every core (e.g. training runs beside us)."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except (AttributeError, OSError):  # no load average on this platform
        return False


class threads_for:
    """Decode on one CPU thread when intra-op parallelism can only cost: small
    batches (a batch-1 step is ~20 tiny ops) and a machine whose cores are all
    busy, where every OpenMP barrier waits for a descheduled thread (measured on
    a 2-core machine beside two training runs: 1,000 五絕 6.3 s on 2 threads,
    2.9 s on 1). Restores the previous setting."""

    def __init__(self, batch: int, device: torch.device):
        self.before = torch.get_num_threads()
        self.single = device.type == "cpu" and self.before > 1 and (batch <= SMALL_BATCH or _cpu_saturated())

    def __enter__(self):
        if self.single:
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.single:
            torch.set_num_threads(self.before)
        return False
