"""What tangshi's mark on a folder says: the kinds of output (`KINDS`), how a folder an older
tangshi wrote before the mark is recognised by its contents, the mark itself (`read_marker`), and
the checks a reader makes (`require_complete`) before it trusts a folder."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tangshi.errors import TangshiError
from tangshi.files import (
    TMP_PREFIX,
    describe_oserror,
    foreign_inside,
)

MARKER = ".tangshi-output.json"
LOCK = ".tangshi-lock"
MARKER_FORMAT = "tangshi-output/1"
# temporary names an older tangshi gave a run's entries while replacing them: .NAME.tmp-XXXX, .NAME.old-PID
LEGACY_TMP = re.compile(r"^\.(last|best|poetry-gen-epoch\d+-loss[-0-9.naninf]+)\.(tmp|old)-[A-Za-z0-9_]+$")
# entries in a folder that are tangshi's own bookkeeping, never the user's content
INTERNAL = (MARKER, LOCK)


def human_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# ---------------------------------------------------------------------------- the kinds of output
@dataclass(frozen=True)
class Kind:
    name: str  # as the mark records it
    what: str  # in messages: "a prepared data folder"
    thing: str  # one output of the kind: "prepared split"
    whole: bool  # True: one output per folder, replaced as a whole; False: several outputs side by side
    legacy: Callable[[Path, list[str]], bool] | None = None  # an unmarked folder from before the mark
    dir_files: tuple[str, ...] = ()  # files tangshi writes inside a folder entry (checkpoints)


def _json_ok(path: Path, key: str | None = None) -> bool:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and (key is None or key in obj)


def _is_checkpoint(path: Path) -> bool:
    try:
        return (
            json.loads((path / "config.json").read_text(encoding="utf-8"))
            .get("format", "")
            .startswith("tangshi-checkpoint/")
        )
    except (OSError, ValueError, AttributeError):
        return False


CHECKPOINT_FILES = ("model.safetensors", "config.json", "vocab.json", "optimizer.safetensors", "trainer.json")
RUN_NAME = re.compile(r"^(last|best|metrics\.jsonl|curves\.png|poetry-gen-epoch\d+-loss[-0-9.naninf]+)$")


def _legacy_run(path: Path, entries: list[str]) -> bool:
    if not entries or not all(RUN_NAME.match(n) or LEGACY_TMP.match(n) for n in entries):
        return False
    dirs = [n for n in entries if (path / n).is_dir() and not LEGACY_TMP.match(n)]
    return bool(dirs) and all(_is_checkpoint(path / n) and not foreign_inside(path / n, CHECKPOINT_FILES) for n in dirs)


def _legacy_model(path: Path, entries: list[str]) -> bool:
    return set(entries) <= {"model.safetensors", "config.json", "vocab.json", "MODEL_CARD.md"} and _is_checkpoint(path)


def _legacy_prepared(path: Path, entries: list[str]) -> bool:
    return (
        set(entries) <= {"train.txt", "dev.txt", "vocab.json", "meta.json"}
        and _json_ok(path / "meta.json", "poems_read")
        and _json_ok(path / "vocab.json")
    )


KINDS = {
    k.name: k
    for k in (
        Kind("poems", "a folder of fetched poems", "copy of the poems", True),  # data.fetch recognises its own
        Kind("prepared", "a prepared data folder", "prepared split", True, _legacy_prepared),
        Kind("model", "an exported model", "exported model", True, _legacy_model),
        Kind("run", "a training run", "training run", True, _legacy_run, CHECKPOINT_FILES),
        Kind("reports", "a reports folder", "report", False),
        Kind(
            "study", "an experiment's work folder", "study", False
        ),  # runs side by side, continued (experiments/study.py)
    )
}


# ---------------------------------------------------------------------------- the mark
def read_marker(path: Path) -> dict | None:
    """The folder's mark, None if it has none; a mark that cannot be read is a clear error."""
    f = Path(path) / MARKER
    try:
        text = f.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as e:
        raise TangshiError(describe_oserror(e, f, verb="cannot read")) from None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if (
        not isinstance(obj, dict)
        or obj.get("format") != MARKER_FORMAT
        or not isinstance(obj.get("kind"), str)
        or not isinstance(obj.get("entries"), list)
        or not all(_plain_name(n) for n in obj["entries"])
        or not _undo_name(obj.get("undo", TMP_PREFIX))
    ):
        raise TangshiError(f"{f} is damaged; remove it only if everything in {path} may be treated as not tangshi's")
    return obj


def _plain_name(n) -> bool:
    """An entry of the mark names something directly inside the folder, nothing else."""
    return (
        isinstance(n, str)
        and n not in ("", ".", "..")
        and "/" not in n
        and "\0" not in n
        and not n.startswith(TMP_PREFIX)
        and n not in INTERNAL
    )


def _undo_name(n) -> bool:
    """The undo folder a mark names is one of tangshi's temporary entries directly inside the folder."""
    return isinstance(n, str) and n.startswith(TMP_PREFIX) and "/" not in n and "\0" not in n


def undo_folder(path: Path, mark: dict | None) -> Path | None:
    """The undo folder of a replacement a killed process left half-done, None if there is none."""
    if not mark or mark.get("state") != "writing" or "undo" not in mark:
        return None
    undo = Path(path) / mark["undo"]
    return undo if undo.is_dir() and not undo.is_symlink() and (undo / MARKER).is_file() else None


def settled_mark(path: Path) -> dict | None:
    """The folder's mark as it is once a replacement a killed process left half-done is undone."""
    mark = read_marker(path)
    undo = undo_folder(path, mark)
    return (read_marker(undo) or mark) if undo is not None else mark


def foreign_message(files: list[Path], why: str) -> str:
    shown = ", ".join(str(f) for f in files[:3]) + (f" (+{len(files) - 3} more)" if len(files) > 3 else "")
    it = "it" if len(files) == 1 else "them"
    return (
        f"{shown} {'was' if len(files) == 1 else 'were'} not written by tangshi, and {why} would remove {it}; "
        f"nothing was changed: move {it} out and run again"
    )


def require_complete(path: Path, command: str) -> None:
    """Refuse to read a folder whose mark says a write into it did not finish."""
    mark = read_marker(path)
    if mark is not None and mark.get("state") != "complete":
        raise TangshiError(
            f"{path} was left half-written by an interrupted `{mark.get('command') or command}`; "
            f"run it again with --replace"
        )


def command_line() -> str | None:
    """The command line as typed, when the process is the tangshi command (`tangshi …` or
    `python -m tangshi …`), else None (a test, a script): for marks and training records."""
    prog = Path(sys.argv[0])
    ours = prog.name == "tangshi" or (prog.name == "__main__.py" and prog.parent.name == "tangshi")
    return "tangshi " + " ".join(sys.argv[1:]) if ours else None


def overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def user_entries(path: Path) -> list[str]:
    """The folder's entries less tangshi's bookkeeping (the mark, the lock, temporary entries)."""
    return sorted(n for n in os.listdir(path) if n not in INTERNAL and not n.startswith(TMP_PREFIX))


# ---------------------------------------------------------------------------- the folder
