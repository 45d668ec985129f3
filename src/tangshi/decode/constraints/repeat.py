"""No repeats inside a poem.

Regulated forms (`LineNoRepeat`): a line's last character is excluded when it would make the line
equal to an earlier line, and (with rhyme) a rhyme character is never used twice. Free form
(`ClauseNoRepeat`): while the current clause equals an earlier clause, the clause separators
(，。？！；) and `<EOS>` are excluded; right after a separator, another separator is (no empty clause)."""

from __future__ import annotations

import numpy as np

from .base import Rule


class LineNoRepeat(Rule):
    """Part of the row state: (finished lines as {line minus its last char: last chars}, rhyme chars used)."""

    def __init__(self, rhyme: bool, forced_rhymes: tuple = ()):
        self.rhyme, self.forced_rhymes = rhyme, forced_rhymes  # rhyme characters the request fixes

    def initial(self):
        return ({}, self.forced_rhymes)

    def exclude(self, pos, row, part) -> tuple:
        if not pos.last:
            return ()
        seen, used = part
        excl = seen.get(row.line, ())
        return excl + used if pos.rhyme and used else excl

    def advance(self, pos, row, part, tok: int):
        seen, used = part
        if pos.punct:  # the line is complete
            seen = dict(seen)
            seen[row.line[:-1]] = seen.get(row.line[:-1], ()) + (row.line[-1],)
            return (seen, used)
        if pos.rhyme or pos.first_end:  # line 1's end too: when it rhymes, no rhyme line repeats it
            return (seen, used + (tok,))
        return part


class ClauseNoRepeat(Rule):
    """Part of the row state: the finished clauses (a frozenset of id tuples). The current clause
    is the row's `line`."""

    def __init__(self, separators: list[int], repeat_row: np.ndarray, nosep_row: np.ndarray):
        self.separators = set(separators)
        self.rows = {"R": repeat_row, "S": nosep_row}

    def initial(self):
        return frozenset()

    def limit(self, pos, row, seen):
        if row.line and row.line in seen:
            return ("R",)  # the clause repeats an earlier one: it may not end here
        if row.t > 0 and not row.line:
            return ("S",)  # right after a separator
        return None

    def factor(self, key) -> np.ndarray:
        return self.rows[key[0]]

    def advance(self, pos, row, seen, tok: int):
        return seen | {row.line} if tok in self.separators and row.line else seen


class CharBudget(Rule):
    """Characters used as Tang poets use them (verse/habits.py): never three times; a second use
    only within the form's repeat budget (its *extra uses*, 疊字 included); a character right after
    itself (疊字) only where poets double it: a character they double, at a place of the line where
    they do. What the user gives (start, acrostic) is counted but never refused; keywords count once
    placed. Part of the row state: (ids used once, ids used twice or more, extra uses so far).

    `soft`: when these exclusions would leave nothing at a position that other rules narrow to a few
    characters (a rhyme group nearly spent), they are dropped there (base.Constrained._ruled)."""

    soft = True

    def __init__(self, habits, itos, chars_per_line: int, budget: int, forced: dict[int, int]):
        self.budget, self.n, self.forced = budget, chars_per_line, forced
        self.doubles = frozenset(i for i, ch in enumerate(itos) if ch in habits.doubling_chars)
        self.places = habits.doubling_positions.get(chars_per_line, frozenset())
        counts: dict[int, int] = {}
        for tok in forced.values():
            counts[tok] = counts.get(tok, 0) + 1
        self.start = (
            tuple(k for k, c in counts.items() if c == 1),
            tuple(k for k, c in counts.items() if c >= 2),
            0,  # the user's own repeats are not taken from the budget
        )

    def initial(self):
        return self.start

    def exclude(self, pos, row, part) -> tuple:
        once, twice, extra = part
        out = twice + once if extra >= self.budget else twice
        if row.line:
            prev = row.line[-1]
            if prev in once and extra < self.budget and prev in self.doubles and pos.char - 1 in self.places:
                return out  # a 疊字 where poets put one
            if prev in once and extra < self.budget:
                return out + (prev,)
        return out

    def advance(self, pos, row, part, tok: int):
        if pos.punct or pos.t in self.forced:
            return part
        once, twice, extra = part
        if tok in twice:
            return part
        if tok in once:
            return tuple(k for k in once if k != tok), twice + (tok,), extra + 1
        return once + (tok,), twice, extra
