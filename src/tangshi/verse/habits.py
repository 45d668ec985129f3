"""Habits of Tang regulated verse that the rhyme table does not hold, learned from the corpus.

``learn(poems)`` counts, over the poems that have one of the four forms exactly:

* **疊字** (a character twice in a row inside a line, 悠悠, 蕭蕭): which characters poets double
  (``min_count`` times or more) and at which places of a line (``positions[n]``: the index of the
  pair's first character in an n-character line, kept when it holds at least ``min_position_share``
  of that line length's 疊字).  Elsewhere a doubled character is the filler a reader hears.
* **Repeats**: per form, a poem's *extra uses* (characters minus distinct characters, 疊字
  included) and the ``repeat_budget``, the smallest count that at least ``budget_quantile`` of the
  real poems stay within.  No real poem needs a character three times often (2–4%).

* **Places**: where in a line each character stands. A character with at least
  ``min_place_uses`` uses in lines of that length keeps the places holding at least
  ``min_place_share`` of them (兮 in a 七言 line: only the 4th); a keyword goes only there.
* **Readings** (verse/readings.py): which readings of a 多音字 verse uses at rhyme and 平仄 slots.
* **對仗** (verse/parallel.py): which characters stand opposite which in the middle couplets of 律詩.

``tangshi data habits`` writes the table from the train part (80%, split seed 0) of every poem of the
corpus (data.corpus.corpus_split; the dev part is left for checking it); the package bundles it as ``habits.json`` and
``habits()`` reads it. The decoder's repeat rule (decode/constraints/repeat.py) and its vocabulary
tables (decode/constraints/tables.py) keep to it.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from importlib import resources

from tangshi.errors import TangshiError
from tangshi.verse import parallel, prosody, readings
from tangshi.verse.parallel import Pairs
from tangshi.verse.readings import Readings

FORMS = tuple(prosody.FORMS)  # wujue, qijue, wulv, qilv
MIN_COUNT = 3  # a character doubled at least this often in the real poems may be doubled
MIN_POSITION_SHARE = 0.05  # a place in the line holding at least this share of the 疊字
BUDGET_QUANTILE = 0.75  # the repeat budget: three in four real poems stay within it
NOT_DOUBLED = "囗"  # the corpus's other mark of a lost character (囗囗 stands for two lost ones)
HABITS_FILE = "habits.json"
MIN_PLACE_SHARE = 0.05  # a place in the line holding at least this share of a character's uses
MIN_PLACE_USES = 20  # below this many uses in lines of a length, a character may stand anywhere in them


def extra_uses(lines: list[str]) -> int:
    """Characters minus distinct characters: 0 when no character comes twice."""
    chars = "".join(lines)
    return len(chars) - len(set(chars))


def doublings(lines: list[str]) -> list[tuple[int, str]]:
    """(index of the pair's first character in its line, the character) of every 疊字."""
    return [(j, ln[j]) for ln in lines for j in range(len(ln) - 1) if ln[j] == ln[j + 1]]


def _quantile_budget(counts: Counter, n: int, q: float) -> int:
    seen = 0
    for k in sorted(counts):
        seen += counts[k]
        if seen >= q * n:
            return k
    return max(counts, default=0)


def learn(
    poems: list[str],
    *,
    min_count: int = MIN_COUNT,
    min_position_share: float = MIN_POSITION_SHARE,
    budget_quantile: float = BUDGET_QUANTILE,
) -> dict:
    """The habits table (a JSON-ready dict) of ``poems``; only poems with one of the four forms count."""
    chars: Counter = Counter()
    places: dict[int, Counter] = {5: Counter(), 7: Counter()}
    extras: dict[str, Counter] = {f: Counter() for f in FORMS}
    n_form: Counter = Counter()
    at: dict[int, dict[str, Counter]] = {5: {}, 7: {}}
    for _, shape, lines in prosody.in_form(poems):
        n_form[shape.name] += 1
        for line in lines:
            for j, ch in enumerate(line):
                at[len(line)].setdefault(ch, Counter())[j] += 1
        extras[shape.name][extra_uses(lines)] += 1
        for j, ch in doublings(lines):
            if ch != NOT_DOUBLED:
                chars[ch] += 1
                places[shape.chars_per_line][j] += 1
    positions = {}
    for n, c in places.items():
        total = sum(c.values())
        positions[str(n)] = sorted(j for j, v in c.items() if total and v / total >= min_position_share)
    return {
        "poems": {f: n_form[f] for f in FORMS},
        "doubling": {
            "chars": "".join(
                sorted((ch for ch, v in chars.items() if v >= min_count), key=lambda ch: (-chars[ch], ch))
            ),
            "min_count": min_count,
            "positions": positions,
            "position_counts": {str(n): {str(j): c[j] for j in sorted(c)} for n, c in places.items()},
            "min_position_share": min_position_share,
        },
        "repeat_budget": {f: _quantile_budget(extras[f], n_form[f], budget_quantile) for f in FORMS if n_form[f]},
        "budget_quantile": budget_quantile,
        "extra_uses": {f: {str(k): extras[f][k] for k in sorted(extras[f])} for f in FORMS},
        "places": {
            "min_share": MIN_PLACE_SHARE,
            "min_uses": MIN_PLACE_USES,
            **{str(n): _places(c, n) for n, c in at.items()},
        },
        "readings": readings.learn(poems),
        "parallel": parallel.learn(poems),
    }


def _places(uses: dict[str, Counter], n: int) -> dict[str, str]:
    """character → the places (0-based, as digits) it keeps in an n-character line, for the characters
    with enough uses that some place holds under MIN_PLACE_SHARE of them."""
    out = {}
    for ch in sorted(uses):
        c = uses[ch]
        total = sum(c.values())
        keep = [j for j in range(n) if c[j] / total >= MIN_PLACE_SHARE] if total >= MIN_PLACE_USES else []
        if total >= MIN_PLACE_USES and len(keep) < n:
            out[ch] = "".join(map(str, keep))
    return out


@dataclass(frozen=True)
class Habits:
    """The bundled table, read for decoding."""

    doubling_chars: frozenset[str]
    doubling_positions: dict[int, frozenset[int]]  # line length → indices of a pair's first character
    repeat_budget: dict[str, int]  # form name → extra uses allowed
    readings: Readings
    pairs: Pairs
    places: dict[int, dict[str, frozenset[int]]]  # line length → character → places it keeps

    @classmethod
    def from_table(cls, table: dict) -> Habits:
        try:
            d = table["doubling"]
            return cls(
                frozenset(d["chars"]),
                {int(n): frozenset(int(j) for j in js) for n, js in d["positions"].items()},
                {str(f): int(k) for f, k in table["repeat_budget"].items()},
                Readings.from_table(table["readings"]),
                Pairs({str(k): float(v) for k, v in table["parallel"]["pairs"].items()}),
                {
                    n: {str(ch): frozenset(int(j) for j in js) for ch, js in table["places"][str(n)].items()}
                    for n in (5, 7)
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TangshiError(f"the habits table is malformed ({type(e).__name__}: {e})") from None

    def may_place(self, ch: str, j: int, chars_per_line: int) -> bool:
        """Whether the corpus puts ``ch`` at index ``j`` of a line that long (often enough)."""
        keep = self.places.get(chars_per_line, {}).get(ch)
        return keep is None or j in keep

    def may_double(self, ch: str, j: int, chars_per_line: int) -> bool:
        """A 疊字 of ``ch`` whose first character stands at index ``j`` of its line."""
        return ch in self.doubling_chars and j in self.doubling_positions.get(chars_per_line, ())


@functools.lru_cache(maxsize=1)
def habits() -> Habits:
    """The table bundled with the package (written by ``tangshi data habits``)."""
    text = resources.files("tangshi.verse").joinpath(HABITS_FILE).read_text(encoding="utf-8")
    return Habits.from_table(json.loads(text))
