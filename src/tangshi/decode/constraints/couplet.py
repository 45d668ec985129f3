"""Couplets (对联): the model reads the 上联 and its '，' (forced), then writes the 下联 under rules.

* Layout: the 下联 has the 上联's length and its punctuation at the same places, then '。'.
* `Opposition` (tone 'strict'): at the checked positions of each clause (2, 4, 6 and the last,
  as in regulated verse) the 下联's character has a tone opposite to the 上联's: a 平-only
  character faces one that can be read 仄, a 仄-only one a character that can be read 平, a
  多音字 any character of known tone; where the 上联's character is missing from the 平水韻 table
  there is nothing to oppose. The convention that the 上联 ends in 仄 and the 下联 in 平 follows
  from this when the 上联 keeps it; a 上联 ending in 平 gets a 下联 ending in 仄.
* `Mirror`: no character of the 上联 is used, and the 下联 repeats a character exactly where the
  上联 does (重字 mirrored: a 上联 AA gets a 下联 BB at the same place); elsewhere its characters
  are all different.

The LSTM's own parallelism (it has read every 律诗's middle couplets) does the rest."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from tangshi.errors import TangshiError
from tangshi.text import COMMA, PERIOD, as_corpus_marks, is_han
from tangshi.verse import prosody
from tangshi.verse.parallel import check_weight
from tangshi.verse.prosody import PING, ZE

from .base import Constrained, Row, Rule, device_of, ids_row
from .layout import Position
from .parallel import Parallel
from .tables import T_PING, T_ZE, tone_filter, vocab_tables

COUPLET_MARKS = COMMA  # what separates the clauses of a 上联, once its marks are the corpus's (；：、 → ，)
MAX_COUPLET_CHARS = 30  # a 上联 and its 下联 fit the 63 characters the model was trained on
COUPLET_TONES = ("strict", "off")


def opposite_tone(first: frozenset) -> int | None:
    """The tone code a 下联 character needs opposite a 上联 character of tones `first` (None: any)."""
    if first == {PING}:
        return T_ZE
    if first == {ZE}:
        return T_PING
    return (T_PING | T_ZE) if first else None


def parse_first(text: str) -> tuple[str, list[int | None]]:
    """A 上联 → (its text without a closing mark, the layout: per position the index of the
    clause's character (0-based), or None for a mark). Raises TangshiError with the reason."""
    raw = as_corpus_marks("".join((text or "").split()))
    body = raw.rstrip(COUPLET_MARKS + PERIOD)
    if not body:
        raise TangshiError("the 上联 is empty; give its Chinese characters, e.g. tangshi couplet 白日依山盡")
    for ch in body:
        if not is_han(ch) and ch not in COUPLET_MARKS:
            kind = "a mark a 上联 cannot hold inside it" if prosody.is_punct(ch) else "not a Chinese character"
            raise TangshiError(f"上联 '{raw}' contains '{ch}', which is {kind}")
    n_han = sum(is_han(ch) for ch in body)
    if n_han < 2:
        raise TangshiError(f"上联 '{raw}' has {n_han} character; a couplet needs at least 2")
    if n_han > MAX_COUPLET_CHARS:
        raise TangshiError(
            f"上联 '{raw}' has {n_han} characters; at most {MAX_COUPLET_CHARS} (the model was "
            "trained on poems of at most 63)"
        )
    layout: list[int | None] = []
    j = 0
    for i, ch in enumerate(body):
        if is_han(ch):
            layout.append(j)
            j += 1
        elif j == 0:
            raise TangshiError(f"上联 '{raw}' has an empty clause before the '{ch}' at position {i + 1}")
        else:
            layout.append(None)
            j = 0
    return body, layout


class Opposition(Rule):
    """Strict tones: the requirement at each 下联 position (by token position), None where free."""

    def __init__(self, tables, need: dict[int, int]):
        self.tables, self.need = tables, need

    def limit(self, pos, row, part):
        req = self.need.get(pos.t)
        return None if req is None else ("T", req)

    def factor(self, key) -> np.ndarray:
        return tone_filter(self.tables, key[1])


class Mirror(Rule):
    """Part of the row state: the 下联's characters so far. `link[t]` is the earlier token position
    whose character a position repeats; `banned` the 上联's character ids."""

    def __init__(self, V: int, link: dict[int, int], banned: tuple[int, ...]):
        self.V, self.link, self.banned = V, link, banned

    def initial(self):
        return {}

    def limit(self, pos, row, chars: dict):
        t = self.link.get(pos.t)
        return None if t is None else ("=", chars[t])

    def factor(self, key) -> np.ndarray:
        return ids_row(self.V, (key[1],))

    def exclude(self, pos, row, chars: dict) -> tuple:
        return () if pos.t in self.link else self.banned + tuple(chars.values())

    def advance(self, pos, row, chars: dict, tok: int):
        if pos is None or pos.punct:
            return chars
        return {**chars, pos.t: tok}


class CoupletConstraint(Constrained):
    """Masks for the 下联 of `first` (the 上联, simplified accepted: an unknown character is tried
    in its traditional form). `tone`: 'strict' (opposed at the checked positions) or 'off'."""

    def __init__(self, itos: Sequence[str], special_ids, first: str, tone: str = "strict", parallel: float = 0.0):
        super().__init__(itos, special_ids)
        parallel = check_weight(parallel)
        if tone not in COUPLET_TONES:
            raise TangshiError(f"unknown tone mode {tone!r} for a couplet; choose one of {', '.join(COUPLET_TONES)}")
        body, layout = parse_first(first)
        for mark in {ch for ch in body if not is_han(ch)} | {COMMA, PERIOD}:
            if mark not in self.stoi:
                raise TangshiError(f"the vocabulary has no '{mark}'; it cannot write this couplet")
        ids, norm = [], []
        for ch in body:
            tok, known = self.token_id(ch, f"上联 '{body}'") if is_han(ch) else (self.stoi[ch], ch)
            ids.append(tok)
            norm.append(known)
        self.first, self.tone, self.form = "".join(norm), tone, None
        self.start, self.acrostic = self.first + COMMA, None
        self.tables = tables = vocab_tables(tuple(self.itos), frozenset(self._special_set))
        m = len(ids)
        self._forced = ids + [self.stoi[COMMA]]
        clause_len = self._clause_lengths(layout)
        self._positions: dict[int, Position] = {}
        need: dict[int, int] = {}
        link: dict[int, int] = {}
        first_at: dict[int, int] = {}  # 上联 character id → the first 下联 position facing it
        for i, (tok, j) in enumerate(zip(ids, layout)):
            t = m + 1 + i
            if j is None:
                self._positions[t] = Position(t, 1, 0, True, False, False, False)
                continue
            n = clause_len[i]
            checked = j in prosody.checked_positions(n)
            self._positions[t] = Position(t, 1, j, False, j == n - 1, False, checked)
            if tok in first_at:
                link[t] = first_at[tok]
            else:
                first_at[tok] = t
            req = opposite_tone(prosody.tones(self.itos[tok]))
            if checked and req is not None and tone == "strict":
                need[link.get(t, t)] = req  # the whole group is opposed at its first position
        self._eos_t = m + 1 + m + 1  # 上联, '，', 下联, '。'
        self.max_len = self._eos_t + 1
        han_ids = tuple(dict.fromkeys(tok for tok, j in zip(ids, layout) if j is not None))
        rules: list = ([Opposition(tables, need)] if need else []) + [Mirror(self.V, link, han_ids)]
        self._parallel = None
        if parallel > 0:  # each 下联 character leans to the partners of the 上联 character it faces
            facing = {
                m + 1 + i: tok for i, (tok, j) in enumerate(zip(ids, layout)) if j is not None and m + 1 + i not in link
            }
            self._parallel = (len(rules), Parallel(self.itos, self.stoi, parallel, facing=facing))
            rules.append(self._parallel[1])
        self._use_rules(rules, tables.han)

    def bias(self, x, device=None) -> torch.Tensor | None:
        """對仗 (``parallel`` > 0): (B, V) with the learned partners' weights at each 下联 place."""
        if self._parallel is None:
            return None
        st = self._as_state(x)
        i, rule = self._parallel
        entries = []
        for b, r in enumerate(st.rows):
            pos = self._positions.get(r.t)
            e = None if pos is None else rule.entries(pos, r.parts[i])
            entries.append(None if e is None else (b, *e))
        return self._with_entries(None, entries, len(st.rows), device_of(device))

    def _kid(self, tok: int) -> int:
        return self._masks.id(("F", tok), functools.partial(self.onehot, tok))

    @staticmethod
    def _clause_lengths(layout: list[int | None]) -> list[int]:
        """Per position: the length of its clause."""
        out, start = [0] * len(layout), 0
        for i in range(len(layout) + 1):
            if i == len(layout) or layout[i] is None:
                for k in range(start, i):
                    out[k] = i - start
                start = i + 1
        return out

    def second(self, text: str) -> str:
        """The 下联 of a decoded text (the 上联, '，', the 下联, '。')."""
        return text[len(self.start) :].removesuffix(PERIOD)

    def _allowed(self, r: Row):
        t = r.t
        if t < len(self._forced):
            return self._kid(self._forced[t]), ()
        if t == self._eos_t - 1:
            return self._kid(self.stoi[PERIOD]), ()
        if t >= self._eos_t:
            return self._kid(self.special.eos), ()
        pos = self._positions[t]
        if pos.punct:
            return self._kid(self._forced[t - len(self._forced)]), ()
        return self._ruled(pos, r)

    def _step(self, r: Row, tok: int) -> Row:
        t = r.t
        if t >= self._eos_t:
            return Row(t + 1, (), True, r.parts)
        return Row(t + 1, (), False, self._advance_parts(self._positions.get(t), r, tok))
