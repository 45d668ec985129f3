"""對仗, learned from the corpus: which characters stand opposite which in the middle couplets of 律詩.

The two middle couplets of a 律詩 (lines 3–4 and 5–6) are parallel: the character at each place of
the second line answers the one at the same place of the first (山/水, 紅/綠, 三/萬, 去/來). No tagger
is needed to learn this: count, over the middle couplets of the real 律詩, how often each pair of
characters stands at the same place (in either order), and keep the pairs seen at least
``min_count`` times whose pointwise mutual information is positive (they face each other more often
than their frequencies alone would make them):

    pmi(a, b) = log( n(a, b) · N / (n(a) · n(b)) )

over the symmetric table of places (a pair counted in both orders): n(a, b) the places where a and b
face each other, n(a) the places a stands at (either side) and N twice the places.

A couplet's **parallelism** is the share of its places whose two characters are such a pair. On
the held-out part of the corpus it tells real middle couplets from the same first lines given a
random second line (``auc``); ``tangshi data habits`` records both figures in the table.
"""

from __future__ import annotations

import math
import random
from collections import Counter

from tangshi.errors import TangshiError
from tangshi.verse import prosody

MIN_COUNT = 2  # a pair seen once is as likely chance as 對仗
POEM_WEIGHT = 0.7  # the decoder's default weight in a 律詩 (docs/reader.md: how it was chosen)
COUPLET_WEIGHT = 0.7  # the same for the 下联 of `tangshi couplet`
MAX_WEIGHT = 10.0
LV_FORMS = ("wulv", "qilv")
SHUFFLE_SEED = 0


def check_weight(weight) -> float:
    """A 對仗 weight: a number from 0 (off) to MAX_WEIGHT."""
    ok = isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0 <= weight <= MAX_WEIGHT
    if not ok:
        raise TangshiError(f"--parallel must be a number from 0 to {MAX_WEIGHT:g}, got {weight!r}")
    return float(weight)


def middle_couplets(poems: list[str]) -> list[tuple[str, str]]:
    """(line 3, line 4) and (line 5, line 6) of every poem that is exactly a 五律 or 七律."""
    out = []
    for _, form, lines in prosody.in_form(poems):
        if form.name in LV_FORMS:
            out += [(lines[2], lines[3]), (lines[4], lines[5])]
    return out


def pair_key(a: str, b: str) -> str:
    """The table's key of an unordered pair: its two characters in code-point order."""
    return a + b if a <= b else b + a


def learn(poems: list[str], *, min_count: int = MIN_COUNT) -> dict:
    """The pair table (JSON-ready): ``pairs`` maps ``pair_key`` → pmi rounded to 0.01."""
    pairs: Counter = Counter()
    couplets = middle_couplets(poems)
    for first, second in couplets:
        for a, b in zip(first, second):
            pairs[pair_key(a, b)] += 1
    single: Counter = Counter()
    for key, n in pairs.items():  # both orders: n(a) counts a's pairs whichever side it stood on
        single[key[0]] += n
        single[key[1]] += n
    total = 2 * sum(pairs.values())
    kept = {}
    for key, n in sorted(pairs.items()):
        if n < min_count:
            continue
        a, b = key[0], key[1]
        both = n if a != b else 2 * n  # the symmetric count: (a, b) and (b, a) are one cell each, (a, a) holds both
        pmi = math.log(both * total / (single[a] * single[b]))
        if pmi > 0:
            kept[key] = round(pmi, 2)
    return {"min_count": min_count, "couplets": len(couplets), "pairs": kept}


class Pairs:
    """The learned pairs, read for scoring and decoding."""

    def __init__(self, pairs: dict[str, float]):
        self.pmi = pairs
        partners: dict[str, list[tuple[str, float]]] = {}
        for key, v in pairs.items():
            a, b = key[0], key[1]
            partners.setdefault(a, []).append((b, v))
            if a != b:
                partners.setdefault(b, []).append((a, v))
        self.partners = partners

    def __contains__(self, ab: tuple[str, str]) -> bool:
        return pair_key(*ab) in self.pmi

    def score(self, first: str, second: str) -> float | None:
        """The couplet's parallelism: the share of places whose characters are a learned pair."""
        n = min(len(first), len(second))
        if n == 0:
            return None
        return sum((a, b) in self for a, b in zip(first, second)) / n


def shuffled(couplets: list[tuple[str, str]], seed: int = SHUFFLE_SEED) -> list[tuple[str, str]]:
    """Each first line with the second line of another couplet of the same length (a derangement
    within each length, drawn with ``seed``)."""
    rng = random.Random(seed)
    by_len: dict[int, list[int]] = {}
    for i, (first, _) in enumerate(couplets):
        by_len.setdefault(len(first), []).append(i)
    out = list(couplets)
    for idx in by_len.values():
        if len(idx) < 2:
            continue
        rng.shuffle(idx)
        shift = idx[1:] + idx[:1]  # a cyclic shift of a shuffled order never maps a couplet to itself
        for i, j in zip(idx, shift):
            out[i] = (couplets[i][0], couplets[j][1])
    return out


def auc(positive: list[float], negative: list[float]) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    if not positive or not negative:
        raise ValueError("auc needs scores on both sides")
    ranked = sorted([(v, 1) for v in positive] + [(v, 0) for v in negative])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + 1 + j) / 2  # the mean of ranks i+1 … j
        rank_sum += mid * sum(lab for _, lab in ranked[i:j])
        i = j
    n1, n0 = len(positive), len(negative)
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def check(pairs: Pairs, poems: list[str]) -> dict:
    """On held-out poems: the mean parallelism of real middle couplets and of shuffled ones, and the
    AUC that tells them apart."""
    real = middle_couplets(poems)
    if not real:
        return {"couplets": 0}
    pos = [pairs.score(a, b) or 0.0 for a, b in real]
    neg = [pairs.score(a, b) or 0.0 for a, b in shuffled(real)]
    return {
        "couplets": len(real),
        "real_mean": round(sum(pos) / len(pos), 4),
        "shuffled_mean": round(sum(neg) / len(neg), 4),
        "auc": round(auc(pos, neg), 4),
    }
