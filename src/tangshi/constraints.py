"""Decoding-time constraints: boolean masks over the vocabulary, one row per sample.

Constraints are part of decoding, not retries: at every step the decoder asks
which tokens are allowed next, sets the others to ``-inf`` and renormalises, so
the allowed tokens keep their relative model probabilities::

    c = make_constraint(itos, special_ids, "wujue", start="床前", rhyme=True,
                        tone="strict", no_repeat=True)     # validates, may raise TangshiError
    state = c.new_state(batch_size)
    for _ in range(c.max_len):                   # max_len: tokens incl. <EOS>
        logits = model_step(...) / temperature   # (B, V), last position only
        logits = c.apply(logits, state)          # masked_fill(~mask, -inf) (+ tone bias)
        tok = torch.multinomial(logits.softmax(-1), 1).squeeze(1)
        c.advance(state, tok)
        if c.finished(state):
            break

``mask(x)`` / ``bias(x)`` / ``apply(logits, x)`` accept either a ``DecodeState`` or
the plain prefixes (``list[list[int]]``, the ids generated so far, a leading
``<START>`` is skipped, ``<EOS>`` may be left out); prefixes are replayed
through a cache, so passing the growing prefixes every step is also cheap::

    c = build_constraint(vocab, "qijue", rhyme=True, tone="loose")   # a tangshi.vocab.Vocab
    prefixes = [[] for _ in range(B)]
    for _ in range(c.max_steps):                 # == c.max_len
        allowed = c.mask(prefixes)               # (B, V) bool
        bias = c.bias(prefixes)                  # (B, V) float, or None
        ...                                      # masked_fill, sample, append to prefixes

For beam search reorder a state with ``state.select(indices)`` (rows are
immutable, so this is cheap), or just pass the reordered prefixes.

Rules of ``FormConstraint`` (a regulated form; line k is 1-based):

* Layout: exactly ``form.lines`` lines of ``form.chars_per_line`` characters.
  Inside a line only Han characters are allowed (never specials, never
  punctuation); at the end of line k exactly '，' (k odd) or '。' (k even) is
  forced; right after the final '。' ``<EOS>`` is forced; after ``<EOS>`` only
  ``<EOS>`` (a finished row keeps emitting it; ``<PAD>`` is also accepted by
  ``advance``).
* ``start``: the first characters are forced to the start text (at most one
  line, optionally followed by its '，').  ``acrostic``: line k's first
  character is forced to ``acrostic[k-1]``.
* ``rhyme``: the rhyme positions are the last characters of lines 2, 4, 6, 8
  (line 1 is not a rhyme position).  The first one may be any character of a
  *viable* 平聲 group (one with enough in-vocabulary characters to finish the
  poem even after excluding repeats: ``n_rhymes + lines - 1`` with
  ``no_repeat``, else 1); each later one must share a group with all earlier
  rhyme characters (the set of consistent groups is intersected with the
  chosen character's groups, which handles 多音字).
* ``tone``: the patterns of :func:`tangshi.prosody.tone_patterns`.  ``strict``
  masks the 2nd, 4th, 6th and last character of each line: a character is
  allowed when its tone fits at least one pattern still consistent with the
  poem so far (so line 1's 2nd character picks 平起/仄起 and line 1's last
  character picks 首句入韻 or not); 多音字 fit both tones, characters missing
  from the rhyme table fit neither.  ``loose`` masks nothing but ``bias``
  returns ``-tone_penalty`` for characters that fit none of the best-matching
  patterns so far (the decoder adds it to the logits).  ``off``: nothing.
* ``no_repeat``: a line's last character is masked when it would make the line
  equal to an earlier line of the poem; a rhyme character is never used twice.

``FreeConstraint`` (form ``free``) only forbids ``<START>``, ``<PAD>`` and
``<OOV>``, forces the start text, and with ``no_repeat`` forbids the clause
separators (，。？！；) and ``<EOS>`` while the current clause equals an earlier
clause, and a separator right after a separator (an empty clause).

Neither ever reaches a dead end: every mask row allows at least one token.
Impossible requests (bad acrostic or start text, characters missing from the
vocabulary, a rhyme no group can satisfy, ...) raise ``TangshiError`` at
construction, before anything is generated.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tangshi import prosody
from tangshi.errors import TangshiError
from tangshi.prosody import PING, ZE, Form
from tangshi.text import CLAUSE_SEPARATORS, COMMA, PERIOD, is_han, known_form

TONE_MODES = ("off", "loose", "strict")

_T_PING = 1  # tone code bits
_T_ZE = 2


# ----------------------------------------------------------------- special ids


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the four special tokens."""

    eos: int
    oov: int
    start: int
    pad: int

    TOKENS = {"eos": "<EOS>", "oov": "<OOV>", "start": "<START>", "pad": "<PAD>"}

    @classmethod
    def from_itos(cls, itos: Sequence[str]) -> "SpecialIds":
        """Find ``<EOS>``, ``<OOV>``, ``<START>``, ``<PAD>`` in ``itos``."""
        pos = {tok: i for i, tok in enumerate(itos)}
        missing = [t for t in cls.TOKENS.values() if t not in pos]
        if missing:
            raise TangshiError(f"vocabulary lacks the special tokens {', '.join(missing)}")
        return cls(**{k: pos[t] for k, t in cls.TOKENS.items()})

    @classmethod
    def coerce(cls, special_ids, itos: Sequence[str]) -> "SpecialIds":
        """Accept a ``SpecialIds``, ``None`` (look them up in ``itos``), a mapping
        keyed by ``eos/oov/start/pad`` (or ``eos_id``..., or the token strings), or
        an object with ``eos_id``/``eos`` ... attributes."""
        if isinstance(special_ids, cls):
            out = special_ids
        elif special_ids is None:
            out = cls.from_itos(itos)
        else:
            vals = {}
            for k, tok in cls.TOKENS.items():
                v = None
                if isinstance(special_ids, Mapping):
                    for name in (k, f"{k}_id", tok, k.upper()):
                        if name in special_ids:
                            v = special_ids[name]
                            break
                else:
                    for name in (f"{k}_id", k):
                        if hasattr(special_ids, name):
                            v = getattr(special_ids, name)
                            break
                if v is None:
                    raise ValueError(f"special_ids has no id for {tok}")
                vals[k] = int(v)
            out = cls(**vals)
        for k, tok in cls.TOKENS.items():
            i = getattr(out, k)
            if not 0 <= i < len(itos):
                raise ValueError(f"special id {k}={i} is outside the vocabulary (size {len(itos)})")
        return out


# -------------------------------------------------------------------- state


class DecodeState:
    """Per-row constraint state for a batch; ``rows`` are immutable snapshots."""

    __slots__ = ("rows", "_last_mask")

    def __init__(self, rows: list):
        self.rows = rows
        self._last_mask = None  # the mask computed for exactly these rows, if any

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, indices) -> "DecodeState":
        """A new state with rows ``indices`` (e.g. beam reordering); rows may repeat."""
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        return DecodeState([self.rows[int(i)] for i in indices])

    @property
    def done(self) -> list[bool]:
        """Per row: ``<EOS>`` has been emitted."""
        return [r.done for r in self.rows]


# ------------------------------------------------------------------ base class


class _MaskTable:
    """Lazily built table of distinct mask rows, indexed by small ints."""

    def __init__(self, V: int, dtype=np.bool_):
        self.V = V
        self.dtype = dtype
        self.ids: dict = {}
        self.rows: list[np.ndarray] = []
        self._dev: dict = {}

    def id(self, key, build) -> int:
        i = self.ids.get(key)
        if i is None:
            i = len(self.rows)
            row = np.ascontiguousarray(build(), dtype=self.dtype)
            assert row.shape == (self.V,)
            self.rows.append(row)
            self.ids[key] = i
        return i

    def tensor(self, device) -> torch.Tensor:
        key = str(device)
        cached = self._dev.get(key)
        if cached is None or cached[1] != len(self.rows):
            t = torch.from_numpy(np.stack(self.rows)).to(device)
            cached = (t, len(self.rows))
            self._dev[key] = cached
        return cached[0]


def _device_of(device):
    return torch.device("cpu") if device is None else torch.device(device)


class _Constraint:
    """Shared machinery: vocabulary analysis, mask table, prefix replay."""

    max_len: int | None = None

    @property
    def max_steps(self) -> int | None:
        """Alias of ``max_len``: decoding steps needed, ``<EOS>`` included (``None`` for free form)."""
        return self.max_len

    def __init__(self, itos: Sequence[str], special_ids):
        self.itos = list(itos)
        self.V = len(self.itos)
        if self.V == 0:
            raise TangshiError("the vocabulary is empty")
        self.special = SpecialIds.coerce(special_ids, self.itos)
        sp = self.special
        self._special_set = {sp.eos, sp.oov, sp.start, sp.pad}
        self.stoi: dict[str, int] = {}
        for i, tok in enumerate(self.itos):
            if i not in self._special_set:
                self.stoi.setdefault(tok, i)
        self._masks = _MaskTable(self.V)
        self._prefix_cache: dict[tuple, object] = {}

    # ---- vocabulary helpers
    def _token_id(self, ch: str, what: str) -> tuple[int, str]:
        """Id of ``ch``; falls back to its OpenCC s2t form; raises if missing."""
        known = known_form(ch, self.stoi)
        if known is not None:
            return self.stoi[known], known
        raise TangshiError(f"character '{ch}' in the {what} is not in the model's vocabulary")

    def _onehot(self, i: int) -> np.ndarray:
        row = np.zeros(self.V, dtype=np.bool_)
        row[i] = True
        return row

    # ---- to implement
    def _initial_row(self):
        raise NotImplementedError

    def _allowed(self, r) -> tuple[int, tuple]:
        """(mask id, excluded token ids) for row ``r``."""
        raise NotImplementedError

    def _step(self, r, tok: int):
        raise NotImplementedError

    def _bias_id(self, r) -> int | None:
        return None

    # ---- public API
    def new_state(self, batch_size: int) -> DecodeState:
        """A fresh state for ``batch_size`` rows (nothing generated yet)."""
        r0 = self._initial_row()
        return DecodeState([r0] * int(batch_size))

    def replay(self, prefixes: Sequence[Sequence[int]]) -> DecodeState:
        """The state after each prefix (ids generated so far; a leading ``<START>``
        is skipped).  Raises ``ValueError`` if a prefix breaks the constraint."""
        cache = self._prefix_cache
        if len(cache) > 200_000:
            cache.clear()
        rows = []
        start_id = self.special.start
        for p in prefixes:
            if isinstance(p, torch.Tensor):
                p = p.tolist()
            tp = tuple(p)
            if tp and type(tp[0]) is not int:
                tp = tuple(int(x) for x in tp)  # numpy ints etc.
            if tp and tp[0] == start_id:
                tp = tp[1:]
            r = cache.get(tp)
            if r is None:
                # longest cached ancestor, then advance
                cut = len(tp)
                base = None
                while cut > 0:
                    cut -= 1
                    base = cache.get(tp[:cut])
                    if base is not None:
                        break
                if base is None:
                    base, cut = self._initial_row(), 0
                r = base
                for n in range(cut, len(tp)):
                    r = self._checked_step(r, tp[n])
                    cache[tp[: n + 1]] = r
            rows.append(r)
        return DecodeState(rows)

    def _as_state(self, x) -> DecodeState:
        return x if isinstance(x, DecodeState) else self.replay(x)

    def _checked_step(self, r, tok: int):
        if r.done:
            if tok in (self.special.eos, self.special.pad):
                return r
            shown = repr(self.itos[tok]) if 0 <= tok < self.V else "out of range"
            raise ValueError(f"token {tok} ({shown}) given after <EOS>; only <EOS>/<PAD> may follow")
        mid, excl = self._allowed(r)
        if not (0 <= tok < self.V) or not self._masks.rows[mid][tok] or tok in excl:
            shown = repr(self.itos[tok]) if 0 <= tok < self.V else "out of range"
            raise ValueError(f"token {tok} ({shown}) is masked at this step; sample through mask()")
        return self._step(r, tok)

    def advance(self, state: DecodeState, tokens) -> DecodeState:
        """Record the sampled ``tokens`` (one id per row: tensor or list) in
        ``state`` (updated in place and returned).  Raises ``ValueError`` for a
        token the mask forbade."""
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.reshape(-1).tolist()
        else:
            tokens = [int(t) for t in tokens]
        if len(tokens) != len(state.rows):
            raise ValueError(f"got {len(tokens)} tokens for {len(state.rows)} rows")
        rows = state.rows
        m = state._last_mask
        state._last_mask = None
        if m is not None and m.shape[0] == len(rows):
            # validate all rows in one gather against the mask they were sampled from
            tok_t = torch.tensor(tokens, dtype=torch.long, device=m.device)
            bad_rows = []
            if bool(((tok_t < 0) | (tok_t >= self.V)).any()):
                bad_rows = [b for b, t in enumerate(tokens) if not 0 <= t < self.V]
            elif not bool(m.gather(1, tok_t[:, None]).all()):
                bad_rows = (~m.gather(1, tok_t[:, None])).nonzero()[:, 0].tolist()
            for b in bad_rows:
                if not rows[b].done or tokens[b] not in (self.special.eos, self.special.pad):
                    self._checked_step(rows[b], int(tokens[b]))  # raises with a message
            step = self._step
            for b, tok in enumerate(tokens):
                r = rows[b]
                if not r.done:
                    rows[b] = step(r, tok)
            return state
        for b, tok in enumerate(tokens):
            rows[b] = self._checked_step(rows[b], int(tok))
        return state

    def mask(self, x, device=None) -> torch.Tensor:
        """(B, V) bool: True where the token is allowed next for each row."""
        st = self._as_state(x)
        ids = []
        ex_r: list[int] = []
        ex_c: list[int] = []
        for b, r in enumerate(st.rows):
            mid, excl = self._allowed(r)
            ids.append(mid)
            if excl:
                ex_r.extend([b] * len(excl))
                ex_c.extend(excl)
        dev = _device_of(device)
        table = self._masks.tensor(dev)
        m = table[torch.tensor(ids, dtype=torch.long, device=dev)]
        if ex_r:
            m[torch.tensor(ex_r, device=dev), torch.tensor(ex_c, device=dev)] = False
        st._last_mask = m
        return m

    def bias(self, x, device=None) -> torch.Tensor | None:
        """(B, V) float log-prob penalties to add to the logits (tone ``loose``),
        or ``None`` when this constraint has none."""
        return None

    def apply(self, logits: torch.Tensor, x) -> torch.Tensor:
        """``logits.masked_fill(~mask, -inf)`` plus ``bias`` if any (not in place).

        Apply temperature before calling this; softmax of the result gives the
        model's probabilities renormalised over the allowed tokens."""
        if logits.dim() != 2 or logits.shape[1] != self.V:
            raise ValueError(f"logits must be (B, {self.V}), got {tuple(logits.shape)}")
        st = self._as_state(x)
        if logits.shape[0] != len(st):
            raise ValueError(f"logits have {logits.shape[0]} rows, state has {len(st)}")
        out = logits.masked_fill(~self.mask(st, logits.device), float("-inf"))
        b = self.bias(st, logits.device)
        if b is not None:
            out = out + b.to(out.dtype)
        return out

    def finished(self, state: DecodeState) -> bool:
        """All rows have emitted ``<EOS>``."""
        return all(r.done for r in state.rows)


# -------------------------------------------------------------- form constraint


class _FRow:
    """Immutable row state of a FormConstraint."""

    __slots__ = ("t", "line", "seen", "S", "used", "pat", "mism", "done")

    def __init__(self, t, line, seen, S, used, pat, mism, done=False):
        self.t = t  # tokens consumed
        self.line = line  # tuple of ids of the current (unfinished) line
        self.seen = seen  # dict: finished line minus last char -> tuple of last chars
        self.S = S  # bitmask of still-consistent rhyme groups
        self.used = used  # tuple of rhyme chars used
        self.pat = pat  # bitmask of tone patterns consistent (strict) / best (loose)
        self.mism = mism  # tuple of mismatch counts per pattern (loose)
        self.done = done


def _pattern_codes(patterns) -> list[list[list[int]]]:
    code = {prosody.EITHER: 0, PING: _T_PING, ZE: _T_ZE}
    L = len(patterns[0].lines)
    n = len(patterns[0].lines[0])
    return [[[code[p.lines[k][j]] for p in patterns] for j in range(n)] for k in range(L)]


class FormConstraint(_Constraint):
    """Masks for one regulated form; see the module docstring for the rules.

    Args:
        itos: index → token (vocabulary order).
        special_ids: ``SpecialIds``, a mapping, an object with ``eos_id``...
            attributes, or ``None`` to find ``<EOS>``... in ``itos``.
        form: ``'wujue'``, ``'qijue'``, ``'wulv'``, ``'qilv'`` or a ``Form``.
        start: text the poem must begin with (≤ one line, optionally with its '，').
        acrostic: one character per line, forced at each line's start (藏头诗).
        rhyme: force the even lines to end in one 平水韻 平聲 group.
        tone: ``'off'``, ``'loose'`` (bias only) or ``'strict'`` (masked).
        no_repeat: no line equal to an earlier one; no rhyme character twice.
        tone_penalty: the log-prob penalty of ``loose`` mode.

    Characters of ``start``/``acrostic`` missing from the vocabulary are tried
    once more after OpenCC s2t (simplified → traditional); the normalised texts
    are ``self.start`` and ``self.acrostic``.
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
    ):
        super().__init__(itos, special_ids)
        f = prosody.get_form(form)
        if f is None:
            raise TangshiError("form 'free' has no line structure; use FreeConstraint / make_constraint")
        if f.chars_per_line not in (5, 7):
            raise TangshiError(f"form {f.name!r} needs 5- or 7-character lines")
        if tone not in TONE_MODES:
            raise TangshiError(f"unknown tone mode {tone!r}; choose one of {', '.join(TONE_MODES)}")
        if not (isinstance(tone_penalty, (int, float)) and math.isfinite(tone_penalty) and tone_penalty > 0):
            raise TangshiError(f"tone penalty must be a positive number, got {tone_penalty!r}")
        self.form = f
        self.rhyme = bool(rhyme)
        self.tone = tone
        self.no_repeat = bool(no_repeat)
        self.tone_penalty = float(tone_penalty)
        L, n = f.lines, f.chars_per_line
        self._L, self._n, self._n1 = L, n, n + 1
        self._eos_t = L * (n + 1)
        self.max_len = self._eos_t + 1
        label = f.label or f.name

        # ---- vocabulary analysis
        for p in (COMMA, PERIOD):
            if p not in self.stoi:
                raise TangshiError(f"the vocabulary has no '{p}'; it cannot write a {label}")
        self._punct_id = {COMMA: self.stoi[COMMA], PERIOD: self.stoi[PERIOD]}
        table = prosody.rhyme_table()
        gidx = {g: i for i, g in enumerate(table.groups)}
        han = np.zeros(self.V, dtype=np.bool_)
        tcode = np.zeros(self.V, dtype=np.int64)
        gmask = np.zeros(self.V, dtype=np.int64)
        for i, tok in enumerate(self.itos):
            if i in self._special_set or not is_han(tok):
                continue
            han[i] = True
            ts = prosody.tones(tok)
            tcode[i] = (_T_PING if PING in ts else 0) | (_T_ZE if ZE in ts else 0)
            m = 0
            for g in prosody.rhyme_groups(tok):
                m |= 1 << gidx[g]
            gmask[i] = m
        self._han, self._tcode_np = han, tcode
        self._tcode = tcode.tolist()
        need_plain = L if self.no_repeat else 1
        if int(han.sum()) < need_plain:
            raise TangshiError(f"the vocabulary has only {int(han.sum())} Chinese characters; too few for a {label}")
        if tone == "strict":
            for bit, name in ((_T_PING, PING), (_T_ZE, ZE)):
                cnt = int((han & ((tcode & bit) != 0)).sum())
                if cnt < need_plain:
                    raise TangshiError(
                        f"the vocabulary has only {cnt} {name}-tone characters; too few for strict tones in a {label}"
                    )

        # ---- rhyme groups
        self._viable = 0
        if self.rhyme:
            need = f.n_rhymes + L - 1 if self.no_repeat else 1
            counts = {g: 0 for g in range(len(table.groups))}
            for m in gmask[han].tolist():
                gi = 0
                while m:
                    if m & 1:
                        counts[gi] += 1
                    m >>= 1
                    gi += 1
            for g, c in counts.items():
                if c >= need:
                    self._viable |= 1 << g
            if not self._viable:
                best = max(counts.values()) if counts else 0
                raise TangshiError(
                    f"no 平水韻 rhyme group has {need} characters in the vocabulary (the largest has {best}); "
                    f"cannot rhyme the {f.n_rhymes} rhyme positions of a {label}"
                    + (" without repeats (try no_repeat=False)" if self.no_repeat else "")
                )
        self._gmask_np = gmask & self._viable
        self._gmask = self._gmask_np.tolist()

        # ---- tone patterns
        self._patterns = prosody.tone_patterns(f)
        P = len(self._patterns)
        self._all_pat = (1 << P) - 1
        codes = _pattern_codes(self._patterns)
        self._checked = set(prosody.checked_positions(n))
        # need[k][j][patmask] -> tone requirement code (None = any), compat[k][j][tcode] -> patmask
        self._need = [[None] * n for _ in range(L)]
        self._compat = [[None] * n for _ in range(L)]
        for k in range(L):
            for j in range(n):
                cs = codes[k][j]
                need_tbl = [None] * (1 << P)
                for pm in range(1, 1 << P):
                    req = 0
                    anyok = False
                    for pi in range(P):
                        if pm >> pi & 1:
                            if cs[pi] == 0:
                                anyok = True
                            req |= cs[pi]
                    need_tbl[pm] = None if anyok else req
                self._need[k][j] = need_tbl
                self._compat[k][j] = [
                    sum(1 << pi for pi in range(P) if cs[pi] == 0 or cs[pi] & tc) for tc in range(4)
                ]

        # ---- start text and acrostic
        self.start, self.acrostic = "", None
        self._forced: dict[int, int] = {}
        self._parse_start(start, label)
        self._parse_acrostic(acrostic, label)
        if self.tone == "strict":
            self._check_start_tones()

        # common mask ids
        self._kid_eos = self._masks.id(("E",), lambda: self._onehot(self.special.eos))
        self._kid_punct = [
            self._masks.id(("P", f.punct(k)), functools.partial(self._onehot, self._punct_id[f.punct(k)]))
            for k in range(L)
        ]
        self._kid_forced = {
            t: self._masks.id(("F", tok), functools.partial(self._onehot, tok)) for t, tok in self._forced.items()
        }
        self._info = self._position_info()
        self._bias_rows = _MaskTable(self.V, dtype=np.float32) if tone == "loose" else None
        self._bias_zero = (
            self._bias_rows.id(None, lambda: np.zeros(self.V, dtype=np.float32)) if self._bias_rows else None
        )

    # ---- validation helpers
    def _parse_start(self, start: str | None, label: str) -> None:
        text = "".join((start or "").split())
        if not text:
            return
        n = self._n
        if len(text) > n + 1 or (len(text) == n + 1 and is_han(text[n])):
            raise TangshiError(f"start text '{text}' is longer than the first line ({n} characters) of a {label}")
        out = []
        for i, ch in enumerate(text):
            if i == n:
                if ch != COMMA:
                    raise TangshiError(f"start text '{text}': the first line must end with '，', not '{ch}'")
                self._forced[i] = self._punct_id[COMMA]
                out.append(ch)
                continue
            if prosody.is_punct(ch):
                raise TangshiError(
                    f"start text '{text}' has punctuation '{ch}' at position {i + 1}; "
                    f"a {label} line has {n} characters before its '，'"
                )
            if not is_han(ch):
                raise TangshiError(f"start text '{text}' contains '{ch}', which is not a Chinese character")
            tok, norm = self._token_id(ch, f"start text '{text}'")
            self._forced[i] = tok
            out.append(norm)
        self.start = "".join(out)

    def _parse_acrostic(self, acrostic: str | None, label: str) -> None:
        text = "".join((acrostic or "").split())
        if not text:
            return
        L, n1 = self._L, self._n1
        if len(text) != L:
            raise TangshiError(
                f"acrostic '{text}' has {len(text)} characters but a {label} has {L} lines"
            )
        out = []
        for k, ch in enumerate(text):
            if not is_han(ch):
                raise TangshiError(f"acrostic '{text}' contains '{ch}', which is not a Chinese character")
            tok, norm = self._token_id(ch, f"acrostic '{text}'")
            t = k * n1
            if t in self._forced and self._forced[t] != tok:
                raise TangshiError(
                    f"start text '{self.start}' begins with '{self.itos[self._forced[t]]}' "
                    f"but the acrostic needs '{norm}'"
                )
            self._forced[t] = tok
            out.append(norm)
        self.acrostic = "".join(out)

    def _check_start_tones(self) -> None:
        pat = self._all_pat
        for t in sorted(self._forced):
            k, j = divmod(t, self._n1)
            if j == self._n or j not in self._checked:
                continue
            tok = self._forced[t]
            new = pat & self._compat[k][j][self._tcode[tok]]
            if not new:
                ch = self.itos[tok]
                ts = "".join(sorted(prosody.tones(ch))) or "unknown"
                raise TangshiError(
                    f"character '{ch}' (tone {ts}) at line {k + 1}, position {j + 1} of the start text "
                    f"fits no strict tone pattern; use tone='loose' or another start"
                )
            pat = new

    # ---- rows
    def _initial_row(self):
        return _FRow(0, (), {}, self._viable, (), self._all_pat, (0,) * len(self._patterns))

    def _build_han(self, tone_req, S):
        row = self._han.copy()
        if tone_req is not None:
            if tone_req == (_T_PING | _T_ZE):
                row &= self._tcode_np != 0
            else:
                row &= (self._tcode_np & tone_req) != 0
        if S is not None:
            row &= (self._gmask_np & S) != 0
        return row

    def _position_info(self) -> list[tuple]:
        """Per token position t < eos: (is_punct, k, last, rhyme_pos, compat row,
        strict need row, loose need row, forced mask id)."""
        info = []
        n = self._n
        for t in range(self._eos_t):
            k, j = divmod(t, self._n1)
            if j == n:
                info.append((True, k, False, False, None, None, None, None))
                continue
            last = j == n - 1
            checked = j in self._checked
            compat = self._compat[k][j] if checked and self.tone != "off" else None
            need = self._need[k][j] if checked and self.tone == "strict" else None
            need_loose = self._need[k][j] if checked and self.tone == "loose" else None
            info.append(
                (False, k, last, self.rhyme and last and k % 2 == 1, compat, need, need_loose, self._kid_forced.get(t))
            )
        return info

    def _allowed(self, r: _FRow):
        t = r.t
        if t >= self._eos_t:
            return self._kid_eos, ()
        is_punct, k, last, rhyme_pos, _compat, need, _nl, forced = self._info[t]
        if is_punct:
            return self._kid_punct[k], ()
        if forced is not None:
            return forced, ()
        tone_req = need[r.pat] if need is not None else None
        S = r.S if rhyme_pos else None
        key = ("H", tone_req, S)
        kid = self._masks.ids.get(key)
        if kid is None:
            kid = self._masks.id(key, functools.partial(self._build_han, tone_req, S))
        excl = ()
        if last and self.no_repeat:
            excl = r.seen.get(r.line, ())
            if rhyme_pos and r.used:
                excl = excl + r.used
        return kid, excl

    def _step(self, r: _FRow, tok: int) -> _FRow:
        t = r.t
        if t >= self._eos_t:
            return _FRow(t + 1, (), r.seen, r.S, r.used, r.pat, r.mism, True)
        is_punct, k, last, rhyme_pos, compat, _need, _nl, _forced = self._info[t]
        if is_punct:  # the line is complete
            seen = r.seen
            if self.no_repeat:
                head, tail = r.line[:-1], r.line[-1]
                seen = dict(seen)
                seen[head] = seen.get(head, ()) + (tail,)
            return _FRow(t + 1, (), seen, r.S, r.used, r.pat, r.mism)
        S, used, pat, mism = r.S, r.used, r.pat, r.mism
        if rhyme_pos:
            S = S & self._gmask[tok]
            used = used + (tok,)
        if compat is not None:
            ok = compat[self._tcode[tok]]
            if self.tone == "strict":
                pat = pat & ok
            elif ok != self._all_pat:
                mism = tuple(m if ok >> pi & 1 else m + 1 for pi, m in enumerate(mism))
                lo = min(mism)
                pat = sum(1 << pi for pi, m in enumerate(mism) if m == lo)
        return _FRow(t + 1, r.line + (tok,), r.seen, S, used, pat, mism)

    # ---- loose-tone bias
    def _build_bias(self, tone_req):
        fits = self._build_han(tone_req, None)
        row = np.zeros(self.V, dtype=np.float32)
        row[self._han & ~fits] = -self.tone_penalty
        return row

    def _bias_id(self, r: _FRow) -> int:
        t = r.t
        if t >= self._eos_t:
            return self._bias_zero
        need = self._info[t][6]
        if need is None or self._info[t][7] is not None:
            return self._bias_zero
        req = need[r.pat]
        if req is None:
            return self._bias_zero
        kid = self._bias_rows.ids.get(req)
        if kid is None:
            kid = self._bias_rows.id(req, functools.partial(self._build_bias, req))
        return kid

    def bias(self, x, device=None) -> torch.Tensor | None:
        """Tone ``loose``: (B, V) with ``-tone_penalty`` on Han characters whose
        tone fits none of the best patterns so far at checked positions, 0
        elsewhere.  ``None`` for tone ``off``/``strict``."""
        if self._bias_rows is None:
            return None
        st = self._as_state(x)
        ids = [self._bias_id(r) for r in st.rows]
        dev = _device_of(device)
        return self._bias_rows.tensor(dev)[torch.tensor(ids, dtype=torch.long, device=dev)]

    def describe(self) -> str:
        """One line summarising the request (for logs)."""
        parts = [self.form.label or self.form.name, f"rhyme={'on' if self.rhyme else 'off'}", f"tone={self.tone}"]
        if self.start:
            parts.append(f"start={self.start}")
        if self.acrostic:
            parts.append(f"acrostic={self.acrostic}")
        parts.append(f"no_repeat={'on' if self.no_repeat else 'off'}")
        return ", ".join(parts)


# -------------------------------------------------------------- free constraint


class _Row:
    __slots__ = ("t", "clause", "seen", "done")

    def __init__(self, t, clause, seen, done=False):
        self.t = t
        self.clause = clause  # tuple of ids since the last separator
        self.seen = seen  # frozenset of finished clauses (tuples)
        self.done = done


class FreeConstraint(_Constraint):
    """No form: forbid ``<START>``, ``<PAD>``, ``<OOV>``; force ``start``; with
    ``no_repeat`` forbid separators (，。？！；) and ``<EOS>`` while the current
    clause equals an earlier one, and a separator right after a separator
    (an empty clause).  ``max_len`` is ``None`` (the decoder's own
    limit applies)."""

    def __init__(self, itos: Sequence[str], special_ids, *, start: str = "", no_repeat: bool = True):
        super().__init__(itos, special_ids)
        self.form = None
        self.no_repeat = bool(no_repeat)
        sp = self.special
        base = np.ones(self.V, dtype=np.bool_)
        base[[sp.start, sp.pad, sp.oov]] = False
        self._sep = [i for i, tok in enumerate(self.itos) if tok in CLAUSE_SEPARATORS and i not in self._special_set]
        rep = base.copy()
        rep[self._sep] = False
        rep[sp.eos] = False
        if not rep.any():
            raise TangshiError("the vocabulary has no characters to write with")
        self._kid_base = self._masks.id(("A",), lambda: base)
        self._kid_rep = self._masks.id(("R",), lambda: rep)
        nosep = base.copy()
        nosep[self._sep] = False
        self._kid_nosep = self._masks.id(("S",), lambda: nosep)
        self._kid_eos = self._masks.id(("E",), lambda: self._onehot(sp.eos))
        self._sep_set = set(self._sep)
        text = "".join((start or "").split())
        forced, out = [], []
        for ch in text:
            tok, norm = self._token_id(ch, f"start text '{text}'")
            forced.append(tok)
            out.append(norm)
        self.start = "".join(out)
        self.acrostic = None
        self._kid_forced = [self._masks.id(("F", tok), functools.partial(self._onehot, tok)) for tok in forced]

    def _initial_row(self):
        return _Row(0, (), frozenset())

    def _allowed(self, r: _Row):
        if r.done:
            return self._kid_eos, ()
        if r.t < len(self._kid_forced):
            return self._kid_forced[r.t], ()
        if self.no_repeat and r.clause and r.clause in r.seen:
            return self._kid_rep, ()
        if self.no_repeat and r.t > 0 and not r.clause:  # right after a separator: no empty clause
            return self._kid_nosep, ()
        return self._kid_base, ()

    def _step(self, r: _Row, tok: int) -> _Row:
        if tok == self.special.eos:
            return _Row(r.t + 1, (), r.seen, True)
        if tok in self._sep_set:
            seen = r.seen | {r.clause} if (self.no_repeat and r.clause) else r.seen
            return _Row(r.t + 1, (), seen)
        return _Row(r.t + 1, r.clause + (tok,), r.seen)

    def describe(self) -> str:
        s = "free form"
        if self.start:
            s += f", start={self.start}"
        return s + f", no_repeat={'on' if self.no_repeat else 'off'}"


# ------------------------------------------------------------------- factory


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
) -> FormConstraint | FreeConstraint:
    """A ``FormConstraint`` for a regulated form, a ``FreeConstraint`` for
    ``'free'``/``None`` (where ``rhyme`` is ignored; an acrostic or a tone mode
    other than ``'off'`` raises ``TangshiError``)."""
    f = prosody.get_form(form)
    if f is None:
        if acrostic and "".join(acrostic.split()):
            raise TangshiError("an acrostic needs a form with a fixed number of lines, not 'free'")
        if tone not in TONE_MODES:
            raise TangshiError(f"unknown tone mode {tone!r}; choose one of {', '.join(TONE_MODES)}")
        if tone != "off":
            raise TangshiError(f"tone '{tone}' needs a regulated form (wujue, qijue, wulv, qilv), not 'free'")
        return FreeConstraint(itos, special_ids, start=start, no_repeat=no_repeat)
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
    )


def build_constraint(vocab, form: str | Form | None, **options) -> FormConstraint | FreeConstraint:
    """:func:`make_constraint` for a ``tangshi.vocab.Vocab``-like object (``.itos``
    and ``eos_id``/``oov_id``/``start_id``/``pad_id``; or a plain ``itos`` list);
    `options` are make_constraint's keywords."""
    itos = list(getattr(vocab, "itos", vocab))
    special = vocab if hasattr(vocab, "eos_id") else None
    return make_constraint(itos, special, form, **options)
