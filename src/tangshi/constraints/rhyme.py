"""Rhyme: the even lines end in one 平水韻 平聲 group.

The first rhyme character may be any character of a *viable* group (one with enough characters
in the vocabulary to finish the poem, repeats excluded when `no_repeat`); each later one must
share a group with all earlier ones: the set of consistent groups (a bit mask, the rule's part of
the row state) is intersected with each chosen character's groups, which handles 多音字."""

from __future__ import annotations

import numpy as np

from tangshi.errors import TangshiError

from .base import Rule
from .tables import VocabTables


class Rhyme(Rule):
    def __init__(self, tables: VocabTables, form, no_repeat: bool, label: str):
        need = form.n_rhymes + form.lines - 1 if no_repeat else 1
        counts = [0] * tables.n_groups
        for m in tables.gmask[tables.han].tolist():
            g = 0
            while m:
                if m & 1:
                    counts[g] += 1
                m >>= 1
                g += 1
        self.viable = sum(1 << g for g, c in enumerate(counts) if c >= need)
        if not self.viable:
            raise TangshiError(
                f"no 平水韻 rhyme group has {need} characters in the vocabulary (the largest has "
                f"{max(counts) if counts else 0}); cannot rhyme the {form.n_rhymes} rhyme positions of a {label}"
                + (" without repeats (allow them with --no-no-repeat)" if no_repeat else ""))
        self.gmask_np = tables.gmask & self.viable  # (V,) each id's viable groups
        self.gmask = self.gmask_np.tolist()

    def initial(self) -> int:
        return self.viable  # S: the groups still consistent with every rhyme so far

    def limit(self, pos, row, S: int):
        return ("S", S) if pos.rhyme else None

    def factor(self, key) -> np.ndarray:
        return (self.gmask_np & key[1]) != 0

    def advance(self, pos, row, S: int, tok: int) -> int:
        return S & self.gmask[tok] if pos.rhyme else S
