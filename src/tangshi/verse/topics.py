"""What a title's characters say about its poem's characters, learned from titled poems.

A poem titled 送友人 uses 別, 君, 歸, 酒 more than poems do in general; one titled 秋夜 uses 霜, 月, 蟲.
No lexicon is needed. A title's keys are its distinct characters and its distinct pairs of adjacent
characters (送友人: 送, 友, 人, 送友, 友人), since a pair says more than its characters apart (秋夜 is
not 秋 and 夜; 友人 is a friend, where 人 alone is anyone). Over the training poems, count for each key t
of the titles and each character c of the poems the poems whose title holds t and whose text holds c,
and keep the pairs seen at least ``min_count`` times whose pointwise mutual information is positive:

    pmi(t, c) = log( n(t, c) · N / (n(t) · n(c)) )

with N the poems, n(t) those whose title holds t and n(c) those whose text holds c (each counted once
per poem). A generic title character (詩, 首, 作) meets every poem alike, so its pairs fall below zero
and drop out. For each key the ``top`` pairs are kept. (The pairs of adjacent characters were added
when, on dev titles 201–400, they raised the topic fidelity at the default weight from 1.29× to 1.42×
and cost the model's own log-probability less: docs/reader.md.)

The decoder (`tangshi generate --title T --topic W`) adds W · min(Σ_{keys t of T} pmi(t, c), CAP) to the
log-probability of each character c at every free step, as the 對仗 table adds its pmi in the middle
couplets (`verse/parallel.py`). `tangshi experiment titles` measures what it does.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from importlib import resources

from tangshi.errors import TangshiError

TOPICS_FILE = "topics.json"
TOPICS_FORMAT = "tangshi-topics/2"  # /2: the keys include pairs of adjacent characters
MIN_COUNT = 3
TOP = 30  # pairs kept for each key
CAP = 3.0  # a character's summed pmi is capped here, so that a long title does not drown the model
TOPIC_WEIGHT = 1.0  # the decoder's default weight (docs/reader.md: how it was chosen)
MAX_WEIGHT = 10.0
MARKS = "，。"


def check_weight(weight) -> float:
    """A topic weight: a number from 0 (off) to MAX_WEIGHT."""
    ok = isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0 <= weight <= MAX_WEIGHT
    if not ok:
        raise TangshiError(f"--topic must be a number from 0 to {MAX_WEIGHT:g}, got {weight!r}")
    return float(weight)


def keys(title: str) -> set[str]:
    """A title's keys: its distinct characters and its distinct pairs of adjacent characters."""
    return set(title) | {title[i : i + 2] for i in range(len(title) - 1)}


def learn(poems: list[str], titles: list[str], *, min_count: int = MIN_COUNT, top: int = TOP) -> dict:
    """The table (JSON-ready): ``pmi`` maps a title key → {poem character: pmi rounded to 0.01}."""
    n_title: Counter[str] = Counter()
    n_text: Counter[str] = Counter()
    n_pair: Counter[tuple[str, str]] = Counter()
    for poem, title in zip(poems, titles, strict=True):
        heads, chars = keys(title), {ch for ch in poem if ch not in MARKS}
        n_title.update(heads)
        n_text.update(chars)
        n_pair.update((t, c) for t in heads for c in chars)
    n = len(poems)
    by_title: dict[str, list[tuple[float, str]]] = {}
    for (t, c), k in n_pair.items():
        if k >= min_count:
            value = math.log(k * n / (n_title[t] * n_text[c]))
            if value > 0:
                by_title.setdefault(t, []).append((value, c))
    pmi = {t: {c: round(v, 2) for v, c in sorted(pairs, reverse=True)[:top]} for t, pairs in sorted(by_title.items())}
    return {"format": TOPICS_FORMAT, "poems": n, "min_count": min_count, "top": top, "pmi": pmi}


def bias(table: dict, title: str, weight: float) -> dict[str, float]:
    """character → weight · min(Σ over the title's keys of their pmi with it, CAP)."""
    total: Counter = Counter()
    for t in keys(title):
        total.update(table["pmi"].get(t, {}))
    return {c: weight * min(v, CAP) for c, v in total.items()} if weight else {}


_TABLE: dict | None = None


def bundled() -> dict:
    """The table shipped in the package (learned by `tangshi data topics`)."""
    global _TABLE
    if _TABLE is None:
        text = resources.files("tangshi.verse").joinpath(TOPICS_FILE).read_text(encoding="utf-8")
        table = json.loads(text)
        if table.get("format") != TOPICS_FORMAT:
            raise TangshiError(f"{TOPICS_FILE}: not a {TOPICS_FORMAT} table")
        _TABLE = table
    return _TABLE
