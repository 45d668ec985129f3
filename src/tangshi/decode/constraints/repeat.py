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
        if pos.rhyme:
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
