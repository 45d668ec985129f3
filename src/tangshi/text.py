"""Text rules every module shares, defined once: Han characters, clauses and lines, the two
scripts, and the form names.

No torch, no model: corpus cleaning, prosody, constraints, metrics and output records all read
these, so a rule changed here changes everywhere at once.
"""

from __future__ import annotations

import re
from collections.abc import Container
from functools import cache

# Han characters: CJK Unified Ideographs and Extension A, the compatibility blocks, the
# supplementary planes (Extensions B–H, where many rare Tang characters live) and 〇.
HAN_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x323AF),
    (0x2F800, 0x2FA1F),
    (0x3007, 0x3007),
)
HAN_CLASS = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in HAN_RANGES)  # inside a regex [...]
_HAN = re.compile(f"[{HAN_CLASS}]")


def unicode_problem(text: str) -> str | None:
    """Why `text` is not valid Unicode text (a lone surrogate: what Python makes of bytes that are
    not UTF-8 in an argument, a file or a JSON escape), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"it is not valid UTF-8 text (a lone surrogate at character {e.start + 1})"
    return None


COMMA = "，"
PERIOD = "。"
ASCII_TO_FULL = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "：", "(": "（", ")": "）"})
TO_LINE_MARKS = str.maketrans({"？": "。", "！": "。", "；": "，", "：": "，", "、": "，"})  # as the corpus is cleaned
CLAUSE_SEPARATORS = "，。？！；"  # what ends a clause in any text a user gives
LINE_MARKS = COMMA + PERIOD  # what ends a line of a cleaned or generated poem
_CLAUSE_SPLIT = re.compile(f"([{CLAUSE_SEPARATORS}])")
_LINE = re.compile(f"[^{LINE_MARKS}]+[{LINE_MARKS}]?")

FREE = "free"
FORM_NAMES = ("wujue", "qijue", "wulv", "qilv", FREE)  # 五絕, 七絕, 五律, 七律, free (prosody.FORMS)


def is_han(ch: str) -> bool:
    """True for a single Han character (any of HAN_RANGES)."""
    return len(ch) == 1 and _HAN.match(ch) is not None


def split_clauses(text: str) -> list[tuple[str, str]]:
    """Split a poem into ``(clause, terminator)`` pairs.

    Whitespace is dropped; a clause ends at any of ``，。？！；``.  Trailing text
    without a terminator gives a pair with terminator ``''``; empty clauses
    (e.g. '。。') are kept as ``('', '。')`` so that punctuation errors stay visible.
    """
    text = "".join(text.split())
    parts = _CLAUSE_SPLIT.split(text)
    out: list[tuple[str, str]] = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
    if parts and parts[-1]:
        out.append((parts[-1], ""))
    return out


def split_lines(text: str) -> list[str]:
    """A cleaned or generated poem's lines, each with its closing '，' or '。'."""
    return _LINE.findall(text)


@cache
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """Traditional → simplified (OpenCC t2s)."""
    return _converter("t2s").convert(text)


def to_traditional(text: str) -> str:
    """Simplified → traditional (OpenCC s2t). The model, the corpus and the rhyme table are traditional."""
    return _converter("s2t").convert(text)


def known_form(ch: str, known: Container[str]) -> str | None:
    """`ch` as `known` spells it: `ch` itself if known, else its traditional form when that is one
    known character (a simplified character typed by the user), else None."""
    if ch in known:
        return ch
    alt = to_traditional(ch)
    return alt if len(alt) == 1 and alt in known else None


def as_corpus_marks(text: str) -> str:
    """A user's marks as the cleaned corpus writes them: ASCII marks made full-width, then
    ？！ → 。 and ；：、 → ， (corpus.clean_poem does the same to the poems)."""
    return text.translate(ASCII_TO_FULL).translate(TO_LINE_MARKS)
