"""The two composed constraints the decoder uses, and the factory that picks one.

`FormConstraint` (a regulated form) is the layout — exactly `lines` lines of `chars_per_line`
Han characters, '，' after odd lines and '。' after even ones, then `<EOS>`, and only `<EOS>`
after it — plus the forced characters (start text, acrostic) and a list of rules: rhyme, tones,
no repeats. `FreeConstraint` forbids `<START>`, `<PAD>` and `<OOV>`, forces the start text, and
(no_repeat) adds the clause rule. Neither ever reaches a dead end: every mask row allows at least
one token. Impossible requests raise `TangshiError` at construction, before anything is generated.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from tangshi import prosody
from tangshi.errors import TangshiError
from tangshi.prosody import Form
from tangshi.text import CLAUSE_SEPARATORS, COMMA, PERIOD

from .base import Constrained, MaskTable, Row, Rule, device_of
from .forced import parse_acrostic, parse_free_start, parse_start
from .layout import positions
from .repeat import ClauseNoRepeat, LineNoRepeat
from .rhyme import Rhyme
from .tables import T_PING, T_ZE, vocab_tables
from .tones import TONE_MODES, Tones, check_tone_options


class FormConstraint(Constrained):
    """Masks for one regulated form.

    Args:
        itos: index → token (vocabulary order).
        special_ids: ``SpecialIds``, a mapping, an object with ``eos_id``... attributes, or ``None``.
        form: ``'wujue'``, ``'qijue'``, ``'wulv'``, ``'qilv'`` or a ``Form``.
        start: text the poem must begin with (≤ one line, optionally with its '，').
        acrostic: one character per line, forced at each line's start (藏头诗).
        rhyme: force the even lines to end in one 平水韻 平聲 group (rhyme.py).
        tone: ``'off'``, ``'loose'`` (bias only) or ``'strict'`` (masked) (tones.py).
        no_repeat: no line equal to an earlier one; no rhyme character twice (repeat.py).
        tone_penalty: the log-prob penalty of ``loose`` mode.

    Characters of ``start``/``acrostic`` missing from the vocabulary are tried once more in
    their traditional form; the normalised texts are ``self.start`` and ``self.acrostic``.
    """

    def __init__(self, itos: Sequence[str], special_ids, form: str | Form, *, start: str = "",
                 acrostic: str | None = None, rhyme: bool = True, tone: str = "off", no_repeat: bool = True,
                 tone_penalty: float = 2.0):
        super().__init__(itos, special_ids)
        f = prosody.get_form(form)
        if f is None:
            raise TangshiError("form 'free' has no line structure; use FreeConstraint / make_constraint")
        if f.chars_per_line not in (5, 7):
            raise TangshiError(f"form {f.name!r} needs 5- or 7-character lines")
        check_tone_options(tone, tone_penalty)
        self.form, self.rhyme, self.tone, self.no_repeat = f, bool(rhyme), tone, bool(no_repeat)
        self.tone_penalty = float(tone_penalty)
        label = f.label or f.name
        for p in (COMMA, PERIOD):
            if p not in self.stoi:
                raise TangshiError(f"the vocabulary has no '{p}'; it cannot write a {label}")
        self.tables = tables = vocab_tables(tuple(self.itos), frozenset(self._special_set))
        self._check_enough_characters(label)
        self._positions = positions(f, self.rhyme)
        self._eos_t = len(self._positions)
        self.max_len = self._eos_t + 1
        rules = [Rhyme(tables, f, self.no_repeat, label)] if self.rhyme else []
        tones = Tones(tables, f, tone, tone_penalty) if tone != "off" else None
        rules += [tones] if tones else []
        rules += [LineNoRepeat(self.rhyme)] if self.no_repeat else []
        self.rules = tuple(rules)
        self._active()
        self._forced, self.start = parse_start(self, start, label, self.stoi[COMMA])
        self.acrostic = parse_acrostic(self, acrostic, label, self._forced, self.start)
        if tone == "strict":
            tones.check_forced(self._forced, self._positions, self.itos)
        self._kid_eos = self._masks.id(("E",), lambda: self.onehot(self.special.eos))
        self._kid_punct = [self._masks.id(("P", f.punct(k)), functools.partial(self.onehot, self.stoi[f.punct(k)]))
                           for k in range(f.lines)]
        self._kid_forced = {t: self._masks.id(("F", tok), functools.partial(self.onehot, tok))
                            for t, tok in self._forced.items()}
        self._bias_rows = MaskTable(self.V, dtype=np.float32) if tone == "loose" else None
        if self._bias_rows is not None:
            self._bias_zero = self._bias_rows.id(None, lambda: np.zeros(self.V, dtype=np.float32))

    def _check_enough_characters(self, label: str) -> None:
        han, tcode = self.tables.han, self.tables.tcode
        need = self.form.lines if self.no_repeat else 1
        if int(han.sum()) < need:
            raise TangshiError(f"the vocabulary has only {int(han.sum())} Chinese characters; too few for a {label}")
        if self.tone == "strict":
            for bit, name in ((T_PING, prosody.PING), (T_ZE, prosody.ZE)):
                cnt = int((han & ((tcode & bit) != 0)).sum())
                if cnt < need:
                    raise TangshiError(f"the vocabulary has only {cnt} {name}-tone characters; too few for strict "
                                       f"tones in a {label}")

    # ---- rows
    def _allowed(self, r: Row):
        t = r.t
        if t >= self._eos_t:
            return self._kid_eos, ()
        pos = self._positions[t]
        if pos.punct:
            return self._kid_punct[pos.line], ()
        kid = self._kid_forced.get(t)
        if kid is not None:
            return kid, ()
        parts = r.parts
        key = tuple([rule.limit(pos, r, parts[i]) for i, rule in self._limiting])
        kid = self._masks.ids.get(key)
        if kid is None:
            kid = self._masks.id(key, functools.partial(self._build, key))
        excl = ()
        for i, rule in self._excluding:
            excl += rule.exclude(pos, r, parts[i])
        return kid, excl

    def _build(self, key) -> np.ndarray:
        """The Han characters every limiting rule allows (the key holds each one's limit, None: any)."""
        row = self.tables.han.copy()
        for (_, rule), k in zip(self._limiting, key):
            if k is not None:
                row &= rule.factor(k)
        return row

    def _active(self) -> None:
        """The rules that limit and those that exclude (a rule that does neither is not asked)."""
        def acting(method: str) -> list:
            return [(i, rule) for i, rule in enumerate(self.rules) if getattr(type(rule), method) is not getattr(Rule, method)]

        self._limiting, self._excluding = acting("limit"), acting("exclude")

    def _step(self, r: Row, tok: int) -> Row:
        t = r.t
        if t >= self._eos_t:
            return Row(t + 1, (), True, r.parts)
        pos = self._positions[t]
        return Row(t + 1, () if pos.punct else r.line + (tok,), False, self._advance_parts(pos, r, tok))

    # ---- loose tones
    def _bias_id(self, r: Row) -> int:
        t = r.t
        if t >= self._eos_t or t in self._kid_forced:
            return self._bias_zero
        pos = self._positions[t]
        keys = tuple(rule.penalty(pos, part) for rule, part in zip(self.rules, r.parts))
        if all(k is None for k in keys):
            return self._bias_zero
        return self._bias_rows.id(keys, functools.partial(self._build_bias, keys))

    def _build_bias(self, keys) -> np.ndarray:
        row = np.zeros(self.V, dtype=np.float32)
        for rule, k in zip(self.rules, keys):
            if k is not None:
                row += rule.penalty_row(k)
        return row

    def bias(self, x, device=None) -> torch.Tensor | None:
        """Tone ``loose``: (B, V) with ``-tone_penalty`` on Han characters whose tone fits none of
        the best patterns so far at checked positions, 0 elsewhere.  ``None`` for ``off``/``strict``."""
        if self._bias_rows is None:
            return None
        st = self._as_state(x)
        dev = device_of(device)
        ids = [self._bias_id(r) for r in st.rows]
        return self._bias_rows.tensor(dev)[torch.tensor(ids, dtype=torch.long, device=dev)]


class FreeConstraint(Constrained):
    """No form: forbid ``<START>``, ``<PAD>``, ``<OOV>``; force ``start``; with ``no_repeat`` the
    clause rule (repeat.ClauseNoRepeat). ``max_len`` is ``None`` (the decoder's own limit applies)."""

    def __init__(self, itos: Sequence[str], special_ids, *, start: str = "", no_repeat: bool = True):
        super().__init__(itos, special_ids)
        self.form, self.no_repeat = None, bool(no_repeat)
        sp = self.special
        base = np.ones(self.V, dtype=np.bool_)
        base[[sp.start, sp.pad, sp.oov]] = False
        self._sep = [i for i, tok in enumerate(self.itos) if tok in CLAUSE_SEPARATORS and i not in self._special_set]
        nosep = base.copy()
        nosep[self._sep] = False
        rep = nosep.copy()
        rep[sp.eos] = False
        if not rep.any():
            raise TangshiError("the vocabulary has no characters to write with")
        self._sep_set = set(self._sep)
        self.rules = (ClauseNoRepeat(self._sep, rep, nosep),) if self.no_repeat else ()
        self._kid_base = self._masks.id(("A",), lambda: base)
        self._kid_eos = self._masks.id(("E",), lambda: self.onehot(sp.eos))
        forced, self.start = parse_free_start(self, start)
        self.acrostic = None
        self._kid_forced = [self._masks.id(("F", tok), functools.partial(self.onehot, tok)) for tok in forced]

    def _allowed(self, r: Row):
        if r.done:
            return self._kid_eos, ()
        if r.t < len(self._kid_forced):
            return self._kid_forced[r.t], ()
        for rule, part in zip(self.rules, r.parts):
            key = rule.limit(None, r, part)
            if key is not None:
                return self._masks.id(("C", key), functools.partial(rule.factor, key)), ()
        return self._kid_base, ()

    def _step(self, r: Row, tok: int) -> Row:
        if tok == self.special.eos:
            return Row(r.t + 1, (), True, r.parts)
        line = () if tok in self._sep_set else r.line + (tok,)
        return Row(r.t + 1, line, False, self._advance_parts(None, r, tok))


def make_constraint(itos: Sequence[str], special_ids=None, form: str | Form | None = "wujue", *, start: str = "",
                    acrostic: str | None = None, rhyme: bool = True, tone: str = "off", no_repeat: bool = True,
                    tone_penalty: float = 2.0) -> FormConstraint | FreeConstraint:
    """A ``FormConstraint`` for a regulated form, a ``FreeConstraint`` for ``'free'``/``None``
    (where ``rhyme`` is ignored; an acrostic or a tone mode other than ``'off'`` raises)."""
    f = prosody.get_form(form)
    if f is None:
        if acrostic and "".join(acrostic.split()):
            raise TangshiError("an acrostic needs a form with a fixed number of lines, not 'free'")
        if tone not in TONE_MODES:
            raise TangshiError(f"unknown tone mode {tone!r}; choose one of {', '.join(TONE_MODES)}")
        if tone != "off":
            raise TangshiError(f"tone '{tone}' needs a regulated form (wujue, qijue, wulv, qilv), not 'free'")
        return FreeConstraint(itos, special_ids, start=start, no_repeat=no_repeat)
    return FormConstraint(itos, special_ids, f, start=start, acrostic=acrostic, rhyme=rhyme, tone=tone,
                          no_repeat=no_repeat, tone_penalty=tone_penalty)


def build_constraint(vocab, form: str | Form | None, **options) -> FormConstraint | FreeConstraint:
    """:func:`make_constraint` for a ``tangshi.vocab.Vocab``-like object (``.itos`` and
    ``eos_id``/``oov_id``/``start_id``/``pad_id``; or a plain ``itos`` list)."""
    itos = list(getattr(vocab, "itos", vocab))
    special = vocab if hasattr(vocab, "eos_id") else None
    return make_constraint(itos, special, form, **options)
