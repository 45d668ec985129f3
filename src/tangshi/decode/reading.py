"""Reading poems back, for `tangshi metrics`: the JSON `tangshi generate --json` and `tangshi couplet
--json` print (with the request's fields, so the metrics can check them), a JSON list, plain text,
standard input; and the training poems of a prepared folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tangshi.data.prepare import read_split
from tangshi.errors import TangshiError, read_text
from tangshi.text import FORM_NAMES, split_clauses, unicode_problem

HEADER_OPTIONS = (
    "start",
    "acrostic",
    "at",
    "keywords",
    "rhyme_group",
    "candidates",
    "template",
    "revise",
    "title",
)  # shown when given


def parse_poems(text: str, source: str = "input") -> tuple[list[str], dict]:
    """Poems from text: the JSON `tangshi generate --json` or `tangshi couplet --json` prints (or
    a JSON list of poems / of {"text": ...}), or plain text with one poem per line. The layout
    `tangshi generate` prints without --json (one verse line per line, a blank
    line between poems) is recognised when every line is a single clause.
    Returns (poems, header): the header holds the form (None if not stated), the script, and the
    request's fields of HEADER_OPTIONS the JSON states. A UTF-8 byte-order mark
    (as some editors write) is ignored."""
    text = text.lstrip("\ufeff")
    if text.lstrip().startswith(("{", "[")):
        return _parse_json_poems(text, source)
    lines = [ln.strip() for ln in text.splitlines()]
    if _verse_layout(lines):
        poems, block = [], []
        for ln in lines + [""]:
            if ln:
                block.append(ln)
            elif block:
                poems.append("".join(block))
                block = []
    else:
        poems = [ln for ln in lines if ln]
    if not poems:
        raise TangshiError(f"no poems in {source}")
    return poems, {"form": None, "script": "traditional"}


def _verse_layout(lines: list[str]) -> bool:
    """Every non-blank line is one clause, and each ends with its mark unless it closes its block."""
    if sum(1 for ln in lines if ln) < 2:
        return False
    for i, ln in enumerate(lines):
        if not ln:
            continue
        parts = split_clauses(ln)
        if len(parts) != 1:
            return False
        last_in_block = i + 1 == len(lines) or not lines[i + 1]
        if not parts[0][1] and not last_in_block:
            return False
    return True


def _parse_json_poems(text: str, source: str) -> tuple[list[str], dict]:

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise TangshiError(f"malformed JSON in {source}: {e.msg} (line {e.lineno}, column {e.colno})") from None
    header: dict[str, object] = {"form": None, "script": "traditional"}
    items = obj
    if isinstance(obj, dict):
        items = obj.get("poems", obj.get("couplets"))
        for k, kind in (
            ("form", str),
            ("script", str),
            *((k, int if k in ("at", "candidates") else str) for k in HEADER_OPTIONS),
        ):
            v = obj.get(k, header.get(k))
            if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
                raise TangshiError(
                    f"{source} states {k!r} as {v!r}, which is not {'an integer' if kind is int else 'text'}"
                )
            header[k] = v
        if header["form"] is not None and header["form"] not in FORM_NAMES:
            raise TangshiError(f"{source} states an unknown form {header['form']!r}")
    expected = (
        'the JSON that tangshi generate --json or tangshi couplet --json prints ({"poems": [{"text": ...}, ...]})'
    )
    if not isinstance(items, list):
        raise TangshiError(f"{source} is not {expected}")
    poems = []
    for i, item in enumerate(items):
        t = item.get("text") if isinstance(item, dict) else item
        if not isinstance(t, str):
            raise TangshiError(f"poem {i + 1} in {source} has no text; expected {expected}")
        poems.append(t)
    if not poems:
        raise TangshiError(f"no poems in {source}")
    return poems, header


def read_poems(path: str) -> tuple[list[str], dict, str]:
    """`parse_poems` on a file, or standard input for '-'. Returns (poems, header, source name)."""

    if path == "-":
        return (*parse_poems(_read_stdin(), "standard input"), "standard input")
    p = Path(path)
    if p.is_dir():
        raise TangshiError(f"{p} is a folder; give a file of poems")
    if p.exists() and not p.is_file():
        raise TangshiError(
            f"{p} is not a regular file (a device, a pipe or a socket); give a file of poems, or - for standard input"
        )
    if not p.is_file():
        raise TangshiError(f"poems file not found: {p}")
    return (*parse_poems(read_text(p), str(p)), str(p))


def _read_stdin() -> str:
    """Standard input, decoded as a file is: its bytes as UTF-8, not as the locale would (which lets
    bad bytes through as lone surrogates); a text stream without bytes (a test's) is checked the same."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        text = sys.stdin.read()
        if unicode_problem(text) is not None:
            raise TangshiError("standard input is not UTF-8 text")
        return text
    try:
        return buffer.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TangshiError("standard input is not UTF-8 text") from None


def training_poems(data_dir) -> list[str]:
    """The training poems of a prepared folder (train.txt, one poem per line)."""

    if not (Path(data_dir) / "train.txt").is_file():
        raise TangshiError(
            f"training poems not found: {Path(data_dir) / 'train.txt'} (a folder made by tangshi data prepare)"
        )
    return read_split(data_dir, "train")
