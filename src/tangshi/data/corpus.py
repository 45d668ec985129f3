"""chinese-poetry JSON → cleaned poems → length filter → deterministic sample → split.

Cleaning rules (the assignment's, made exact):

1. A poem is its ``paragraphs`` joined with nothing between them.
2. ASCII punctuation is first mapped to its full-width form (``,`` → ``，`` …),
   so that annotations written with ASCII brackets are caught as well.
3. Everything inside （）() [] {} 《》 【】 〖〗 is deleted, brackets included.
   Nested or unbalanced brackets are handled by deleting from an opening bracket
   to its matching closing one; an unmatched closing bracket is simply dropped.
4. A poem that still contains ``□`` (a lost character) is dropped rather than
   stitched together.
5. Sentence-final ``？`` and ``！`` become ``。``; the clause separators ``；`` ``：``
   ``、`` become ``，``. This keeps each line's end marked, which the forms rely
   on, and keeps the vocabulary to the two marks the poems mostly use.
6. Every other character that is neither a Han character nor ``，``/``。`` is
   deleted (digits, Latin letters, quotes, spaces, other symbols).
7. Runs of punctuation collapse to the last mark; a poem never starts with one.

A poem's title is cleaned by `clean_title`: brackets and their text deleted as above, a last part
that only numbers the poem in its set (``宮詞百首 八十三`` → ``宮詞百首``) dropped, every character but
Han characters deleted, at most ``TITLE_MAX`` characters kept.

A poem is kept when its cleaned length (punctuation included) is between
``MIN_CHARS`` and ``MAX_CHARS``: with ``<START>`` prepended (inputs) or
``<EOS>`` appended (targets) it then fills at most ``SEQ_LEN`` = 64 positions.
Exact duplicates (after cleaning) are dropped too, so that no dev poem is also
a training poem.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tangshi.errors import TangshiError, read_json
from tangshi.outputs import require_complete
from tangshi.text import ASCII_TO_FULL, HAN_CLASS, LINE_MARKS, TO_LINE_MARKS

MIN_CHARS = 10  # the assignment's lower bound on a poem's length
MAX_CHARS = 63  # 63 characters + <EOS> = 64 = the assignment's sequence length
SAMPLE_SIZE = 10_000  # the assignment samples 10,000 poems
TRAIN_FRACTION = 0.8  # 80% train / 20% dev
TITLE_MAX = 24  # characters of a title the model reads (99% of the corpus's titles are ≤ 34, half ≤ 6)
LOST_CHAR = "□"
FILE_GLOB = "poet.tang.*.json"

_BRACKETS = {"（": "）", "(": ")", "[": "]", "{": "}", "《": "》", "【": "】", "〖": "〗"}
_CLOSERS = set(_BRACKETS.values())
# everything but Han characters (text.HAN_RANGES) and the two line marks
_NOT_KEPT = re.compile(f"[^{HAN_CLASS}{LINE_MARKS}]")
_PUNCT_RUN = re.compile(f"[{LINE_MARKS}]+")
_NOT_HAN = re.compile(f"[^{HAN_CLASS}]")
# the last space-separated part of a title when it only numbers the poem in its set: 八十三, 第十五拍, 其二
_SET_NUMBER = re.compile(r"\s+[第其]?[一二三四五六七八九十百〇零]+[首拍]?$")


def strip_brackets(text: str) -> str:
    """Delete every bracketed span, brackets included (nesting-aware)."""
    out: list[str] = []
    stack: list[str] = []
    for ch in text:
        if ch in _BRACKETS:
            stack.append(_BRACKETS[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        elif ch in _CLOSERS:
            continue  # an unmatched closer: drop it, keep the text around it
        elif not stack:
            out.append(ch)
    return "".join(out)


def clean_poem(paragraphs: list[str]) -> str | None:
    """Apply the cleaning rules; return None when the poem has a lost character."""
    text = "".join(paragraphs).translate(ASCII_TO_FULL)
    text = strip_brackets(text)
    if LOST_CHAR in text:
        return None
    text = text.translate(TO_LINE_MARKS)
    text = _NOT_KEPT.sub("", text)
    text = _PUNCT_RUN.sub(lambda m: m.group(0)[-1], text)
    return text.lstrip("，。")


def clean_title(title: object) -> str:
    """A poem's title as the model reads it (see the module's docstring); "" when nothing is left."""
    if not isinstance(title, str):
        return ""
    text = strip_brackets(title.translate(ASCII_TO_FULL)).strip()
    text = _SET_NUMBER.sub("", text)
    return _NOT_HAN.sub("", text)[:TITLE_MAX]


@dataclass
class CorpusStats:
    poems_read: int = 0
    files: int = 0
    dropped: Counter = field(default_factory=Counter)
    in_range: int = 0
    titles: dict[str, str] = field(default_factory=dict)  # each kept poem → its cleaned title


def list_source_files(source: Path) -> list[Path]:
    source = Path(source)
    if not source.exists():
        raise TangshiError(f"data folder not found: {source} (run `tangshi data fetch` first)")
    if not source.is_dir():
        raise TangshiError(f"not a folder: {source}")
    files = sorted(source.glob(FILE_GLOB), key=_file_order)
    if not files:
        raise TangshiError(f"no {FILE_GLOB} files in {source} (run `tangshi data fetch` first)")
    return files


def _file_order(path: Path) -> int:
    m = re.search(r"\.(\d+)\.json$", path.name)
    return int(m.group(1)) if m else -1


def read_raw(path: Path) -> list[dict]:
    data = read_json(path, "JSON")
    if not isinstance(data, list):
        raise TangshiError(f"{path}: expected a JSON list of poems, got {type(data).__name__}")
    return data


def corpus_poems(source: Path) -> list[str]:
    """Every poem of the folder cleaned (`clean_poem`) and de-duplicated, every length kept; a poem
    with a lost character or a malformed entry is left out."""
    seen: dict[str, None] = {}
    for path in list_source_files(Path(source)):
        for item in read_raw(path):
            paragraphs = item.get("paragraphs") if isinstance(item, dict) else None
            if isinstance(paragraphs, list) and all(isinstance(x, str) for x in paragraphs):
                text = clean_poem(paragraphs)
                if text:
                    seen.setdefault(text, None)
    return list(seen)


def load_poems(source: Path) -> tuple[list[str], CorpusStats]:
    """Read every poem file in `source`, clean, filter by length and de-duplicate.

    Returns the kept poems in file order and the counts of what was dropped and why.
    """
    require_complete(Path(source), "tangshi data fetch")
    stats = CorpusStats()
    kept: list[str] = []
    seen: set[str] = set()
    for path in list_source_files(source):
        stats.files += 1
        for item in read_raw(path):
            stats.poems_read += 1
            paragraphs = item.get("paragraphs") if isinstance(item, dict) else None
            if not isinstance(paragraphs, list) or not all(isinstance(p, str) for p in paragraphs):
                stats.dropped["malformed"] += 1
                continue
            text = clean_poem(paragraphs)
            if text is None:
                stats.dropped["lost_character"] += 1
            elif len(text) < MIN_CHARS:
                stats.dropped["too_short"] += 1
            elif len(text) > MAX_CHARS:
                stats.dropped["too_long"] += 1
            elif text in seen:
                stats.dropped["duplicate"] += 1
            else:
                seen.add(text)
                kept.append(text)
                stats.titles[text] = clean_title(item.get("title"))
    stats.in_range = len(kept)
    return kept, stats


def sample_and_split(
    poems: list[str], n: int | None, seed: int, train_fraction: float = TRAIN_FRACTION
) -> tuple[list[str], list[str]]:
    """Deterministically sample `n` poems (all when n is None) and split train/dev."""
    rng = random.Random(seed)
    if n is None:
        chosen = list(poems)
        rng.shuffle(chosen)
    else:
        if n > len(poems):
            raise TangshiError(f"asked for {n} poems but only {len(poems)} are in range")
        chosen = rng.sample(poems, n)
    n_train = round(len(chosen) * train_fraction)
    return chosen[:n_train], chosen[n_train:]


def corpus_split(source: Path, seed: int = 0) -> tuple[list[str], list[str]]:
    """Every poem of `source` (`corpus_poems`: every length, so the 七律 that the 10–63-character
    range leaves out are in), shuffled with `seed` and split train/dev as `sample_and_split` does.
    What tangshi learns from the corpus besides the model (verse/habits.py) learns from the train
    part and is checked on the dev part."""
    return sample_and_split(corpus_poems(Path(source)), None, seed)


def parse_poems_arg(value: str) -> int | None:
    """`--poems 10000` or `--poems all`."""
    if value == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise TangshiError(f"--poems must be a number or 'all', got {value!r}") from None
    if n < 2:
        raise TangshiError(f"--poems must be at least 2, got {n}")
    return n
