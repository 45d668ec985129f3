"""Tones (平仄) of regulated verse, by the patterns of `prosody.tone_patterns` (一三五不论，二四六分明).

`strict` masks the checked positions (2, 4, 6 and the last of each line): a character is allowed
when its tone fits at least one pattern still consistent with the poem so far, so line 1's 2nd
character picks 平起/仄起 and its last picks 首句入韻 or not; 多音字 fit both tones, characters
missing from the rhyme table fit neither. `loose` masks nothing but penalises (`penalty`) the
characters that fit none of the best-matching patterns so far. The rule's part of the row state is
(the bit mask of patterns consistent / best so far, the mismatch count of each pattern)."""

from __future__ import annotations

import math

import numpy as np

from tangshi.errors import TangshiError
from tangshi.verse import prosody
from tangshi.verse.prosody import PING, ZE

from .base import Rule
from .tables import T_PING, T_ZE, VocabTables, tone_filter

TONE_MODES = ("off", "loose", "strict")
_CODE = {prosody.EITHER: 0, PING: T_PING, ZE: T_ZE}


def check_tone_options(tone: str, tone_penalty: float) -> None:
    if tone not in TONE_MODES:
        raise TangshiError(f"unknown tone mode {tone!r}; choose one of {', '.join(TONE_MODES)}")
    if not (isinstance(tone_penalty, (int, float)) and math.isfinite(tone_penalty) and tone_penalty > 0):
        raise TangshiError(f"tone penalty must be a positive number, got {tone_penalty!r}")


class Tones(Rule):
    def __init__(self, tables: VocabTables, form, mode: str, penalty: float, forced: dict[int, int] | None = None):
        self.tables, self.mode, self.tone_penalty = tables, mode, float(penalty)
        self.tcode = tables.tcode_list  # the tones verse uses; a given character's are the table's (`given`)
        self.given = {t: int(tables.tcode_all[tok]) for t, tok in (forced or {}).items()}
        patterns = prosody.tone_patterns(form)
        P = self.n_patterns = len(patterns)
        self.all_pat = self.fixed_patterns = (1 << P) - 1  # fixed_patterns: those the forced characters fit
        # need[k][j][pattern mask] → the tone required there (None: any); compat[k][j][tone code] → patterns it fits
        self.need: list[list[list[int | None]]] = []
        self.compat: list[list[list[int]]] = []
        for k in range(form.lines):
            need_k: list[list[int | None]] = []
            compat_k: list[list[int]] = []
            for j in range(form.chars_per_line):
                codes = [_CODE[p.lines[k][j]] for p in patterns]
                need_k.append([None, *(self._requirement(codes, pm) for pm in range(1, 1 << P))])
                compat_k.append(
                    [sum(1 << pi for pi in range(P) if codes[pi] == 0 or codes[pi] & tc) for tc in range(4)]
                )
            self.need.append(need_k)
            self.compat.append(compat_k)

    def _requirement(self, codes: list[int], pm: int) -> int | None:
        req = 0
        for pi, code in enumerate(codes):
            if pm >> pi & 1:
                if code == 0:
                    return None
                req |= code
        return req

    def initial(self):
        return (self.fixed_patterns, (0,) * self.n_patterns)

    def limit(self, pos, row, part):
        if self.mode != "strict" or not pos.checked:
            return None
        req = self.need[pos.line][pos.char][part[0]]
        return None if req is None else ("T", req)

    def factor(self, key) -> np.ndarray:
        return tone_filter(self.tables, key[1])

    def penalty(self, pos, part):
        if self.mode != "loose" or not pos.checked:
            return None
        req = self.need[pos.line][pos.char][part[0]]
        return None if req is None else ("T", req)

    def penalty_row(self, key) -> np.ndarray:
        han = self.tables.han
        row = np.zeros(len(han), dtype=np.float32)
        row[han & ~(han & tone_filter(self.tables, key[1]))] = -self.tone_penalty
        return row

    def advance(self, pos, row, part, tok: int):
        if not pos.checked or pos.punct:
            return part
        pat, mism = part
        ok = self.compat[pos.line][pos.char][self.given.get(pos.t, self.tcode[tok])]
        if self.mode == "strict":
            return (pat & ok, mism)
        if ok == self.all_pat:
            return part
        mism = tuple(m if ok >> pi & 1 else m + 1 for pi, m in enumerate(mism))
        lo = min(mism)
        return (sum(1 << pi for pi, m in enumerate(mism) if m == lo), mism)

    def check_forced(self, forced: dict[int, int], positions, itos) -> None:
        """Strict tones: the patterns every forced character fits, wherever it stands, become the
        rule's initial ones (so no generated character contradicts a later forced one); a start
        text or acrostic whose characters fit no pattern is refused now."""
        pat = self.all_pat
        for t in sorted(forced):
            pos = positions[t]
            if pos.punct or not pos.checked:
                continue
            tok = forced[t]
            new = pat & self.compat[pos.line][pos.char][int(self.tables.tcode_all[tok])]
            if not new:
                ts = "".join(sorted(prosody.tones(itos[tok]))) or "unknown"
                raise TangshiError(
                    f"character '{itos[tok]}' (tone {ts}) at line {pos.line + 1}, position "
                    f"{pos.char + 1} fits no strict tone pattern together with the other given "
                    "characters; use --tone loose or other characters"
                )
            pat = new
        self.fixed_patterns = pat
