"""What every `tangshi` subcommand's parser and handler share: defaults, help texts, the
threads option, JSON output and the checkpoint a command reads."""

from __future__ import annotations

import json
from pathlib import Path

from tangshi.errors import check_number

PREPARED_DEFAULT = Path("data/prepared/10000-seed0")
MAX_THREADS = 1024
REPLACE_HELP = (
    "replace the earlier output of this command in the folder (only the files tangshi wrote there "
    "are removed; a folder holding anything else is still refused)"
)
JSON_HELP = "print the result as JSON"
THREADS_HELP = "CPU threads for torch and for NumPy's BLAS (default: their own choice; 1 is faster on a busy machine)"
_BLAS_LIMIT: list[object] = []  # the threadpoolctl limit set by --threads, kept for the life of the command


def print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=1))


def set_threads(n: int | None) -> None:
    if n is not None:  # torch, threadpoolctl and the model room load here, not at import: see cli/commands.py
        import torch
        from threadpoolctl import threadpool_limits

        check_number("--threads", n, 1, MAX_THREADS, integer=True)
        torch.set_num_threads(n)
        _BLAS_LIMIT[:] = [threadpool_limits(limits=n, user_api="blas")]  # the NumPy twin's products too


def resolve_checkpoint(path: str | None) -> Path:
    from tangshi.model.bundled import bundled_model_path

    if path:
        return Path(path)
    return bundled_model_path()


def add_all(parser, specs) -> None:
    for flags, kw in specs:
        parser.add_argument(*((flags,) if isinstance(flags, str) else flags), **kw)
