"""對仗: the second line of each middle couplet of a 律詩 (and the 下联 of a couplet) leans toward the
characters that stand opposite the first line's, as learned from real middle couplets
(verse/parallel.py). A soft preference, not a mask: at place j of the second line, every learned
partner b of the first line's character a there gets ``weight · pmi(a, b)`` added to its
log-probability (after the temperature, as loose tones' penalty is).

The rule's part of the row state is the first line's tokens so far (a tuple), kept while its
second line is written."""

from __future__ import annotations

import numpy as np

from tangshi.verse.habits import habits

from .base import Rule


class Parallel(Rule):
    def __init__(
        self,
        itos,
        stoi: dict[str, int],
        weight: float,
        first_lines: frozenset[int] = frozenset(),
        given=frozenset(),
        facing: dict[int, int] | None = None,
    ):
        """``first_lines``: the lines (0-based) whose next line answers them; ``given``: the token
        positions the user fixed (never biased: they are forced); ``facing`` (a couplet): token
        position → the id of the 上联 character it faces, in place of the lines."""
        self.itos, self.stoi, self.weight = itos, stoi, float(weight)
        self.first_lines, self.given, self.facing = first_lines, given, facing
        self._partners: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.pairs = habits().pairs

    def initial(self):
        return ()

    def advance(self, pos, row, part, tok: int):
        if pos is None or pos.punct:
            return part
        if pos.line in self.first_lines:
            return (*part, tok) if pos.char > 0 else (tok,)
        return part

    def partners(self, tok: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, weights) of the learned partners of token `tok` that the vocabulary holds."""
        got = self._partners.get(tok)
        if got is None:
            pairs = [(self.stoi[b], v) for b, v in self.pairs.partners.get(self.itos[tok], ()) if b in self.stoi]
            ids = np.array([i for i, _ in pairs], dtype=np.int64)
            w = np.array([v for _, v in pairs], dtype=np.float32) * self.weight
            got = self._partners[tok] = (ids, w)
        return got

    def entries(self, pos, part) -> tuple[np.ndarray, np.ndarray] | None:
        """The bias at `pos` for a row whose part is `part`, as (ids, values); None where none."""
        if pos is None or pos.punct or pos.t in self.given:
            return None
        if self.facing is not None:
            tok = self.facing.get(pos.t)
            return None if tok is None else self.partners(tok)
        if pos.line - 1 not in self.first_lines or pos.char >= len(part):
            return None
        return self.partners(part[pos.char])
