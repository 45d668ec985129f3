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

from tangshi.errors import TangshiError
from tangshi.text import CLAUSE_SEPARATORS, COMMA, PERIOD
from tangshi.verse import prosody
from tangshi.verse.habits import habits
from tangshi.verse.parallel import check_weight
from tangshi.verse.prosody import Form

from .base import Constrained, MaskTable, Row, Rule, device_of
from .forced import parse_acrostic, parse_free_start, parse_keywords, parse_start, parse_template, template_form
from .keywords import FreeKeywords, Keywords
from .layout import positions
from .parallel import Parallel
from .repeat import CharBudget, ClauseNoRepeat, LineNoRepeat
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
        no_repeat: no line equal to an earlier one, no rhyme character twice, and characters
            repeated only as Tang poets repeat them (repeat.py, verse/habits.py).
        tone_penalty: the log-prob penalty of ``loose`` mode.

    Characters of ``start``/``acrostic`` missing from the vocabulary are tried once more in
    their traditional form; the normalised texts are ``self.start`` and ``self.acrostic``.
    """

    def __init__(
        self,
        itos: Sequence[str],
        special_ids,
        form: str | Form,
        *,
        start: str = "",
        acrostic: str | None = None,
        rhyme: bool = True,
        tone: str = "off",
        no_repeat: bool = True,
        tone_penalty: float = 2.0,
        at: int = 1,
        keywords: str | None = None,
        rhyme_group: str | None = None,
        parallel: float = 0.0,
        template: str | None = None,
    ):
        super().__init__(itos, special_ids)
        self.parallel = check_weight(parallel)
        f = self._check_options(form, tone, tone_penalty, rhyme, rhyme_group)
        self.form, self.rhyme, self.tone, self.no_repeat = f, bool(rhyme), tone, bool(no_repeat)
        self.tone_penalty = float(tone_penalty)
        label = f.label or f.name
        self.tables = vocab_tables(tuple(self.itos), frozenset(self._special_set))
        self._check_enough_characters(label)
        self._positions = layout = positions(f, self.rhyme)
        self._eos_t = len(layout)
        self.max_len = self._eos_t + 1
        self.template = None
        if template is not None:
            if start or acrostic:
                raise TangshiError(
                    "--template holds the whole poem: write the start text or the acrostic's characters into it "
                    "instead of giving --start or --acrostic"
                )
            self._forced, self.template = parse_template(self, template, label, layout)
            self.start = ""
        else:
            self._forced, self.start = parse_start(self, start, label, layout)
        self.acrostic = parse_acrostic(self, acrostic, label, self._forced, self.start, at)
        self.at = at if self.acrostic else None
        self._use_rules(self._rules(label, rhyme_group, keywords), self.tables.han)
        self._mask_ids()

    def _check_options(self, form, tone: str, tone_penalty: float, rhyme: bool, rhyme_group: str | None) -> Form:
        f = prosody.get_form(form)
        if f is None:
            raise TangshiError("form 'free' has no line structure; use FreeConstraint / make_constraint")
        if f.chars_per_line not in (5, 7):
            raise TangshiError(f"form {f.name!r} needs 5- or 7-character lines")
        check_tone_options(tone, tone_penalty)
        for p in (COMMA, PERIOD):
            if p not in self.stoi:
                raise TangshiError(f"the vocabulary has no '{p}'; it cannot write a {f.label or f.name}")
        if rhyme_group is not None and not rhyme:
            raise TangshiError("--rhyme-group chooses the rhyme of a rhymed poem; it cannot be given with --no-rhyme")
        return f

    def _rules(self, label: str, rhyme_group: str | None, keywords: str | None) -> list:
        """The rules this poem keeps, in the order they compose: rhyme, tones, no repeats, keywords."""
        f, tables, forced, layout, tone = self.form, self.tables, self._forced, self._positions, self.tone
        rules: list = []
        group = None
        if self.rhyme:
            group = prosody.find_rhyme_group(rhyme_group) if rhyme_group is not None else None
            rules.append(Rhyme(tables, f, self.no_repeat, label, forced, layout, self.itos, group))
        self.rhyme_group = group
        tones = Tones(tables, f, tone, self.tone_penalty, forced) if tone != "off" else None
        if tones is not None and tone == "strict":
            tones.check_forced(forced, layout, self.itos)
        rules += [tones] if tones else []
        used = tuple(forced[p.t] for p in layout if (p.rhyme or p.first_end) and p.t in forced)
        budget = habits().repeat_budget.get(f.name)
        if self.no_repeat:
            rules.append(LineNoRepeat(self.rhyme, used))
            if budget is not None:
                rules.append(CharBudget(habits(), self.itos, f.chars_per_line, budget, forced))
        kw_ids, self.keywords = parse_keywords(self, keywords)
        if kw_ids:
            strict = (rules.index(tones), tones) if tones is not None and tone == "strict" else None
            rhyme = (0, rules[0]) if self.rhyme else None
            rules.append(Keywords(self, kw_ids, self.keywords, label, forced, layout, tones=strict, rhyme=rhyme))
        self._parallel = None
        if self.parallel > 0 and f.lines == 8:  # the middle couplets: lines 3–4 and 5–6
            self._parallel = (
                len(rules),
                Parallel(self.itos, self.stoi, self.parallel, frozenset({2, 4}), frozenset(forced)),
            )
            rules.append(self._parallel[1])
        return rules

    def _mask_ids(self) -> None:
        """The one-row masks every poem of the form uses: <EOS>, each line's mark, each forced token."""
        f = self.form
        self._kid_eos = self._masks.id(("E",), lambda: self.onehot(self.special.eos))
        self._kid_punct = [
            self._masks.id(("P", f.punct(k)), functools.partial(self.onehot, self.stoi[f.punct(k)]))
            for k in range(f.lines)
        ]
        self._kid_forced = {
            t: self._masks.id(("F", tok), functools.partial(self.onehot, tok)) for t, tok in self._forced.items()
        }
        self._bias_rows = MaskTable(self.V, dtype=np.float32) if self.tone == "loose" else None
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
                    raise TangshiError(
                        f"the vocabulary has only {cnt} {name}-tone characters; too few for strict tones in a {label}"
                    )

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
        return self._ruled(pos, r)

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
        assert self._bias_rows is not None  # bias() calls this only with tone 'loose', which has the table
        return self._bias_rows.id(keys, functools.partial(self._build_bias, keys))

    def _build_bias(self, keys) -> np.ndarray:
        row = np.zeros(self.V, dtype=np.float32)
        for rule, k in zip(self.rules, keys):
            if k is not None:
                row += rule.penalty_row(k)
        return row

    def bias(self, x, device=None) -> torch.Tensor | None:
        """(B, V) log-probability terms, or ``None`` where none applies: tone ``loose`` puts
        ``-tone_penalty`` on Han characters whose tone fits none of the best patterns so far at
        checked positions; 對仗 (``parallel`` > 0, a 律詩) adds its weights in the second line of each
        middle couplet (parallel.py)."""
        if self._bias_rows is None and self._parallel is None:
            return None
        st = self._as_state(x)
        dev = device_of(device)
        out = None
        if self._bias_rows is not None:
            ids = [self._bias_id(r) for r in st.rows]
            out = self._bias_rows.tensor(dev)[torch.tensor(ids, dtype=torch.long, device=dev)]
        if self._parallel is not None:
            i, rule = self._parallel
            entries = [
                None if r.t >= self._eos_t else _row_entry(b, rule.entries(self._positions[r.t], r.parts[i]))
                for b, r in enumerate(st.rows)
            ]
            out = self._with_entries(out, entries, len(st.rows), dev)
        return out


def _row_entry(b: int, entry):
    return None if entry is None else (b, *entry)


class FreeConstraint(Constrained):
    """No form: forbid ``<START>``, ``<PAD>``, ``<OOV>``; force ``start``; with ``no_repeat`` the
    clause rule (repeat.ClauseNoRepeat); with ``keywords`` the free-form keyword rule, which needs
    the decoder's length bound ``max_chars``. ``max_len`` is ``None`` (the decoder's limit applies)."""

    def __init__(
        self,
        itos: Sequence[str],
        special_ids,
        *,
        start: str = "",
        no_repeat: bool = True,
        keywords: str | None = None,
        max_chars: int = 63,
    ):
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
        forced, self.start = parse_free_start(self, start)
        kw_ids, self.keywords = parse_keywords(self, keywords)
        rules: list[Rule] = [ClauseNoRepeat(self._sep, rep, nosep)] if self.no_repeat else []
        if kw_ids:
            rules.append(FreeKeywords(self.V, sp.eos, kw_ids, forced, max_chars, self.keywords))
        self._use_rules(rules, base)
        self._kid_eos = self._masks.id(("E",), lambda: self.onehot(sp.eos))
        self.acrostic = self.at = self.rhyme_group = None
        self._kid_forced = [self._masks.id(("F", tok), functools.partial(self.onehot, tok)) for tok in forced]

    def _allowed(self, r: Row):
        if r.done:
            return self._kid_eos, ()
        if r.t < len(self._kid_forced):
            return self._kid_forced[r.t], ()
        return self._ruled(None, r)

    def _step(self, r: Row, tok: int) -> Row:
        if tok == self.special.eos:
            return Row(r.t + 1, (), True, r.parts)
        line = () if tok in self._sep_set else r.line + (tok,)
        return Row(r.t + 1, line, False, self._advance_parts(None, r, tok))


def make_constraint(
    itos: Sequence[str],
    special_ids=None,
    form: str | Form | None = "wujue",
    *,
    start: str = "",
    acrostic: str | None = None,
    rhyme: bool = True,
    tone: str = "off",
    no_repeat: bool = True,
    tone_penalty: float = 2.0,
    at: int = 1,
    keywords: str | None = None,
    rhyme_group: str | None = None,
    max_chars: int = 63,
    parallel: float = 0.0,
    template: str | None = None,
) -> FormConstraint | FreeConstraint:
    """A ``FormConstraint`` for a regulated form, a ``FreeConstraint`` for ``'free'``/``None``
    (where ``rhyme`` is ignored; an acrostic, a rhyme group or a tone mode other than ``'off'``
    raises). ``max_chars`` is free form's length bound (the decoder's), which keywords need."""
    f = prosody.get_form(form)
    if f is None and template is not None:  # the template's shape is the form
        f = prosody.get_form(template_form(template))
    if f is None:
        if acrostic and "".join(acrostic.split()):
            raise TangshiError("an acrostic needs a form with a fixed number of lines, not 'free'")
        if rhyme_group is not None:
            raise TangshiError("--rhyme-group needs a regulated form (wujue, qijue, wulv, qilv), not 'free'")
        if tone not in TONE_MODES:
            raise TangshiError(f"unknown tone mode {tone!r}; choose one of {', '.join(TONE_MODES)}")
        if tone != "off":
            raise TangshiError(f"tone '{tone}' needs a regulated form (wujue, qijue, wulv, qilv), not 'free'")
        return FreeConstraint(
            itos, special_ids, start=start, no_repeat=no_repeat, keywords=keywords, max_chars=max_chars
        )
    return FormConstraint(
        itos,
        special_ids,
        f,
        start=start,
        acrostic=acrostic,
        rhyme=rhyme,
        tone=tone,
        no_repeat=no_repeat,
        tone_penalty=tone_penalty,
        at=at,
        keywords=keywords,
        rhyme_group=rhyme_group,
        parallel=parallel,
        template=template,
    )


def build_constraint(vocab, form: str | Form | None, **options) -> FormConstraint | FreeConstraint:
    """:func:`make_constraint` for a ``tangshi.vocab.Vocab``-like object (``.itos`` and
    ``eos_id``/``oov_id``/``start_id``/``pad_id``; or a plain ``itos`` list)."""
    itos = list(getattr(vocab, "itos", vocab))
    special = vocab if hasattr(vocab, "eos_id") else None
    return make_constraint(itos, special, form, **options)
