"""Keywords: every given character appears somewhere in the poem.

The decoder writes freely while the keywords still missing can be placed in the free positions
that remain; at a position where that would no longer be so, only the missing keywords are
allowed (the decoder "forces one when the remaining slots run out"). The rule's part of the row
state is the frozenset of keyword ids still missing.

Placement is judged *conservatively*, so decoding never reaches a dead end: a keyword fits a
later position only if it fits it under every tone pattern (strict tones) and every rhyme group
(a rhyme position) that is still possible now. Patterns and groups only narrow as the poem is
written, so a placement that is possible now stays possible. Whether the missing keywords fit
the remaining positions is a bipartite matching (keywords ↔ positions), memoised per state.
A request whose keywords cannot all be placed at the start is refused before decoding.

With no more keywords than lines, each keyword goes to a line of its own, as a poet places one image
to a line: the matching is then keywords ↔ lines (a line fits a keyword when one of its free
positions does), a line that holds a keyword takes no other, and a keyword is allowed at a position
only if the others can still each find a line of their own. The rule's part is then (missing, the
lines holding a keyword).

A keyword goes only to a place in its line where the corpus puts that character (verse/habits.py's
places: 兮 only 4th in a 七言 line); when the request cannot be met so, that rule is dropped first,
then the one-to-a-line rule.
"""

from __future__ import annotations

import numpy as np

from tangshi.errors import TangshiError
from tangshi.verse.habits import habits

from .base import Rule, ids_row
from .tables import T_ZE


class Keywords(Rule):
    """Regulated forms. `tones` and `rhyme` are the poem's rules (or None) with their indices in
    the rule list, so that the state of the patterns and groups can be read off a row."""

    def __init__(
        self,
        c,
        keywords: tuple[int, ...],
        text: str,
        label: str,
        forced: dict[int, int],
        layout,
        tones=None,
        rhyme=None,
    ):
        self.V, self.itos = c.V, c.itos
        self.gmask = c.tables.gmask.tolist()
        self.tcode = c.tables.tcode_list
        self.tones = tones  # (index, Tones rule) when tones are strict, else None
        self.rhyme = rhyme  # (index, Rhyme rule) or None
        self.slots = [p for p in layout if not p.punct and p.t not in forced]
        self.places = True  # keywords only where the corpus puts them (dropped below when that cannot be)
        learned = habits()  # per place in the line: the keywords the corpus does not put there, looked up once
        self._off_place = [
            tuple(k for k in sorted(set(keywords)) if not learned.may_place(c.itos[k], j, c.form.chars_per_line))
            for j in range(c.form.chars_per_line)
        ]
        self.start_missing = frozenset(keywords) - set(forced.values())
        self._memo: dict = {}
        P = tones[1].fixed_patterns if tones else 0
        S = rhyme[1].initial_groups if rhyme else 0
        lines = {p.line for p in layout}
        self.per_line = 1 < len(set(keywords)) <= len(lines)
        self.all_keywords = tuple(sorted(set(keywords)))
        held = frozenset(p.line for p in layout if p.t in forced and forced[p.t] in keywords)
        self.start_held = held if self.per_line else frozenset()
        if not self._feasible(self.start_missing, 0, P, S, self.start_held if self.per_line else None):
            self.places = False  # the corpus's places cannot hold them all: any place, then
            self._memo.clear()
        if self.per_line and not self._feasible(self.start_missing, 0, P, S, self.start_held):
            self.per_line, self.start_held = False, frozenset()  # one to a line cannot be: anywhere, then
        if not self._feasible(self.start_missing, 0, P, S):
            raise TangshiError(self._why(text, label, P, S))

    def _why(self, text: str, label: str, P: int, S: int) -> str:
        missing = self.start_missing
        if len(missing) > len(self.slots):
            return (
                f"keywords '{text}': {len(missing)} characters to place but a {label} has only "
                f"{len(self.slots)} free positions"
            )
        for k in sorted(missing):
            if not any(self._fits(k, p, P, S) for p in self.slots):
                rhyme = any(p.rhyme for p in self.slots)
                tone = any(not p.rhyme for p in self.slots)
                why = " and ".join(
                    (
                        ["its tone fits none of the free positions whose tone is fixed (try --tone loose)"]
                        if tone
                        else []
                    )
                    + (["it is not in the rhyme group(s) still possible for the free rhyme positions"] if rhyme else [])
                )
                return f"keyword '{self.itos[k]}' fits no free position of this {label}: {why}"
        return (
            f"keywords '{text}' cannot all be placed in this {label} under its rhyme and tone rules "
            "(try fewer keywords or --tone loose)"
        )

    def _fits(self, k: int, pos, P: int, S: int) -> bool:
        if self.places and not self._placed_ok(k, pos):
            return False
        if pos.rhyme and self.rhyme is not None and (not S or S & self.gmask[k] != S):
            return False
        roomy = self.rhyme[1].roomy if self.rhyme is not None else 0
        if pos.first_end and self.rhyme is not None and not self.tcode[k] & T_ZE and S & self.gmask[k] & roomy != S:
            return False  # line 1's end: a 仄 reading, or a rhyme in every group still possible
        if pos.checked and self.tones is not None:
            ok = self.tones[1].compat[pos.line][pos.char][self.tcode[k]]
            if P & ~ok:
                return False
        return True

    def _feasible(self, missing: frozenset, t: int, P: int, S: int, held: frozenset | None = None) -> bool:
        """Can every id in `missing` take its own free position at or after token position `t`? With
        `held` (one keyword to a line), its own line, among the lines not in `held`."""
        if not missing:
            return True
        key = (missing, t, P, S, held)
        hit = self._memo.get(key)
        if hit is None:
            slots = [p for p in self.slots if p.t >= t and (held is None or p.line not in held)]
            if held is None:
                options = [[i for i, p in enumerate(slots) if self._fits(k, p, P, S)] for k in missing]
            else:
                options = [sorted({p.line for p in slots if self._fits(k, p, P, S)}) for k in missing]
            hit = len(missing) <= len(slots) and _matches_all(options)
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _state(self, row) -> tuple[int, int]:
        P = row.parts[self.tones[0]][0] if self.tones else 0
        S = row.parts[self.rhyme[0]] if self.rhyme else 0
        return P, S

    def initial(self):
        return (self.start_missing, self.start_held)

    def _held(self, held: frozenset, line: int | None = None) -> frozenset | None:
        if not self.per_line:
            return None
        return held if line is None else held | {line}

    def limit(self, pos, row, part):
        missing, held = part
        if not missing:
            return None
        P, S = self._state(row)
        if self._feasible(missing, pos.t + 1, P, S, self._held(held)):
            return None
        only = frozenset(
            k
            for k in missing
            if self._fits(k, pos, P, S) and self._feasible(missing - {k}, pos.t + 1, P, S, self._held(held, pos.line))
        )
        return ("K", only)

    def factor(self, key) -> np.ndarray:
        return ids_row(self.V, key[1])

    def exclude(self, pos, row, part) -> tuple:
        """A keyword (placed or again) nowhere the corpus does not put it; and, one keyword to a line: none in a
        line that holds one (a placed one again included), and none that would leave a missing
        keyword without a line of its own."""
        missing, held = part
        off_place = self._off_place[pos.char] if self.places else ()
        if not self.per_line:
            return off_place
        if pos.line in held:
            return self.all_keywords
        P, S = self._state(row)
        after = self._held(held, pos.line)
        return off_place + tuple(
            k for k in self.all_keywords if not self._feasible(missing - {k}, pos.t + 1, P, S, after)
        )

    def _placed_ok(self, k: int, pos) -> bool:
        return k not in self._off_place[pos.char]

    def advance(self, pos, row, part, tok: int):
        missing, held = part
        if self.per_line and tok in self.all_keywords:  # placed, or placed again: the line holds one
            return (missing - {tok}, held | {pos.line})
        return (missing - {tok}, held) if tok in missing else part


class FreeKeywords(Rule):
    """Free form: `<EOS>` is excluded while keywords are missing, and once the characters left
    before the length bound (`max_chars`) are as many as the missing keywords, only those are
    allowed."""

    def __init__(self, V: int, eos: int, keywords: tuple[int, ...], forced: list[int], max_chars: int, text: str):
        self.V, self.eos, self.max_chars = V, eos, max_chars
        self.start_missing = frozenset(keywords) - set(forced)
        if len(self.start_missing) > max_chars - len(forced):
            raise TangshiError(
                f"keywords '{text}': {len(self.start_missing)} characters to place but a free-form poem "
                f"has room for only {max_chars - len(forced)} more after the start text"
            )

    def initial(self) -> frozenset:
        return self.start_missing

    def limit(self, pos, row, missing: frozenset):
        return ("K", missing) if missing and self.max_chars - row.t <= len(missing) else None

    def factor(self, key) -> np.ndarray:
        return ids_row(self.V, key[1])

    def exclude(self, pos, row, missing: frozenset) -> tuple:
        return (self.eos,) if missing else ()

    def advance(self, pos, row, missing: frozenset, tok: int) -> frozenset:
        return missing - {tok} if tok in missing else missing


def _matches_all(options: list[list[int]]) -> bool:
    """Bipartite matching (Kuhn's augmenting paths): can each item take its own option?"""
    owner: dict[int, int] = {}

    def place(i: int, seen: set) -> bool:
        for s in options[i]:
            if s in seen:
                continue
            seen.add(s)
            if s not in owner or place(owner[s], seen):
                owner[s] = i
                return True
        return False

    return all(place(i, set()) for i in sorted(range(len(options)), key=lambda i: len(options[i])))
