"""What machine this is, for reports, model cards and the bench (read once, in one place)."""

from __future__ import annotations

import functools
import platform


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


@functools.lru_cache(maxsize=None)
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
