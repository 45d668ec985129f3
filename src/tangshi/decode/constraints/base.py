"""The machinery every constraint shares: special ids, the per-row state, the mask table, and
`Constrained`, which composes a list of rules into the decoder's masks.

A rule is a small object with one interface (`Rule`). The decoder never sees rules: it asks the
composed constraint for `mask(state)` (which tokens may come next, per row), `bias(state)`
(log-probability penalties, or None) and `advance(state, tokens)`; each rule contributes a factor
to the mask, tokens to exclude, a penalty, and its own part of the row's state.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tangshi.errors import TangshiError
from tangshi.text import known_form


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the four special tokens."""

    eos: int
    oov: int
    start: int
    pad: int

    TOKENS = {"eos": "<EOS>", "oov": "<OOV>", "start": "<START>", "pad": "<PAD>"}

    @classmethod
    def from_itos(cls, itos: Sequence[str]) -> SpecialIds:
        """Find ``<EOS>``, ``<OOV>``, ``<START>``, ``<PAD>`` in ``itos``."""
        pos = {tok: i for i, tok in enumerate(itos)}
        missing = [t for t in cls.TOKENS.values() if t not in pos]
        if missing:
            raise TangshiError(f"vocabulary lacks the special tokens {', '.join(missing)}")
        return cls(**{k: pos[t] for k, t in cls.TOKENS.items()})

    @classmethod
    def coerce(cls, special_ids, itos: Sequence[str]) -> SpecialIds:
        """Accept a ``SpecialIds``, ``None`` (look them up in ``itos``), a mapping
        keyed by ``eos/oov/start/pad`` (or ``eos_id``..., or the token strings), or
        an object with ``eos_id``/``eos`` ... attributes."""
        if isinstance(special_ids, cls):
            out = special_ids
        elif special_ids is None:
            out = cls.from_itos(itos)
        else:
            out = cls(**{k: int(cls._lookup(special_ids, k, tok)) for k, tok in cls.TOKENS.items()})
        for k in cls.TOKENS:
            i = getattr(out, k)
            if not 0 <= i < len(itos):
                raise ValueError(f"special id {k}={i} is outside the vocabulary (size {len(itos)})")
        return out

    @staticmethod
    def _lookup(special_ids, k: str, tok: str):
        names = (k, f"{k}_id", tok, k.upper()) if isinstance(special_ids, Mapping) else (f"{k}_id", k)
        for name in names:
            if isinstance(special_ids, Mapping) and name in special_ids:
                return special_ids[name]
            if not isinstance(special_ids, Mapping) and hasattr(special_ids, name):
                return getattr(special_ids, name)
        raise ValueError(f"special_ids has no id for {tok}")


class Row:
    """One row's state, immutable: tokens consumed `t`, the current line's ids, whether `<EOS>`
    has been emitted, and each rule's own part (`parts[i]` belongs to rule i)."""

    __slots__ = ("t", "line", "done", "parts")

    def __init__(self, t: int, line: tuple, done: bool, parts: tuple):
        self.t, self.line, self.done, self.parts = t, line, done, parts


class DecodeState:
    """Per-row constraint state for a batch; ``rows`` are immutable snapshots."""

    __slots__ = ("rows", "_last_mask")

    def __init__(self, rows: list):
        self.rows = rows
        self._last_mask: torch.Tensor | None = None  # the mask computed for exactly these rows, if any

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, indices) -> DecodeState:
        """A new state with rows ``indices`` (e.g. beam reordering); rows may repeat."""
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        return DecodeState([self.rows[int(i)] for i in indices])

    @property
    def done(self) -> list[bool]:
        """Per row: ``<EOS>`` has been emitted."""
        return [r.done for r in self.rows]


class MaskTable:
    """Lazily built table of distinct mask rows, each built once and indexed by a small int.
    Safe to share between threads (`tangshi serve` decodes several requests at once with one
    cached constraint): a row is added, and the stacked tensor rebuilt, under a lock."""

    def __init__(self, V: int, dtype=np.bool_):
        self.V, self.dtype = V, dtype
        self.ids: dict = {}
        self.rows: list[np.ndarray] = []
        self._dev: dict = {}
        self._lock = threading.Lock()

    def id(self, key, build) -> int:
        i = self.ids.get(key)
        if i is None:
            with self._lock:
                i = self.ids.get(key)
                if i is None:
                    row = np.ascontiguousarray(build(), dtype=self.dtype)
                    assert row.shape == (self.V,)
                    i = len(self.rows)
                    self.rows.append(row)
                    self.ids[key] = i
        return i

    def tensor(self, device) -> torch.Tensor:
        key = str(device)
        cached = self._dev.get(key)
        if cached is None or cached[1] != len(self.rows):
            with self._lock:
                n = len(self.rows)
                cached = (torch.from_numpy(np.stack(self.rows[:n])).to(device), n)
                self._dev[key] = cached
        return cached[0]


def ids_row(V: int, ids) -> np.ndarray:
    """The (V,) boolean row allowing exactly `ids`."""
    row = np.zeros(V, dtype=np.bool_)
    row[list(ids)] = True
    return row


class Rule:
    """One rule of a constraint. At each position `pos` of the layout (layout.Position; None in
    free form) a rule may limit the characters allowed (`limit` returns a hashable key,
    `factor(key)` the boolean row of the vocabulary it allows; masks are cached by key), exclude a
    few token ids for this row (`exclude`), and penalise some (`penalty` returns a key,
    `penalty_row(key)` the float row). `advance` gives the rule's new part of the row's state after
    a token; `part` is that part now. The defaults do nothing. A `soft` rule's exclusions give way
    where they would leave no token (the hard rules alone never do)."""

    soft = False

    def initial(self) -> Any:
        return None

    def limit(self, pos, row: Row, part) -> Hashable | None:
        return None

    def factor(self, key) -> np.ndarray:
        raise NotImplementedError

    def exclude(self, pos, row: Row, part) -> tuple:
        return ()

    def penalty(self, pos, part) -> Hashable | None:
        return None

    def penalty_row(self, key) -> np.ndarray:
        raise NotImplementedError

    def advance(self, pos, row: Row, part, tok: int) -> Any:
        return part


def device_of(device):
    return torch.device("cpu") if device is None else torch.device(device)


class Constrained:
    """The decoder-facing API, shared by FormConstraint and FreeConstraint: vocabulary analysis,
    the mask table, prefix replay, and masks composed from the rules. A subclass sets `rules`
    and implements `_allowed(row) -> (mask id, excluded ids)`, `_position(row)` and `_step`."""

    max_len: int | None = None
    rules: tuple = ()

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
        self._masks = MaskTable(self.V)
        self._prefix_cache: dict[tuple[int, ...], Row] = {}

    # ---- helpers for the rules
    def token_id(self, ch: str, what: str) -> tuple[int, str]:
        """Id of ``ch``; falls back to its traditional form; raises if missing."""
        known = known_form(ch, self.stoi)
        if known is not None:
            return self.stoi[known], known
        raise TangshiError(f"character '{ch}' in the {what} is not in the model's vocabulary")

    def onehot(self, i: int) -> np.ndarray:
        return ids_row(self.V, (i,))

    def _initial_row(self) -> Row:
        return Row(0, (), False, tuple(rule.initial() for rule in self.rules))

    def _allowed(self, r: Row) -> tuple[int, tuple]:
        raise NotImplementedError

    # ---- the rules composed: the mask at a position no layout or forced character decides
    def _use_rules(self, rules, base_row: np.ndarray) -> None:
        """Set the rules, the row every rule's limit narrows, and which rules limit and which
        exclude (a rule that does neither is not asked)."""

        def acting(method: str) -> list:
            return [
                (i, rule)
                for i, rule in enumerate(self.rules)
                if getattr(type(rule), method) is not getattr(Rule, method)
            ]

        self.rules, self._base_row = tuple(rules), base_row
        self._limiting = acting("limit")
        self._excluding = [(i, r) for i, r in acting("exclude") if not r.soft]
        self._avoiding = [(i, r) for i, r in acting("exclude") if r.soft]
        self._allowed_count: dict[int, int] = {}

    def _ruled(self, pos, r: Row) -> tuple[int, tuple]:
        """(mask id, excluded ids) at `pos`: the base row narrowed by every limiting rule (cached
        by the rules' keys), and the ids the excluding rules remove for this row."""
        parts = r.parts
        key = tuple([rule.limit(pos, r, parts[i]) for i, rule in self._limiting])
        kid = self._masks.ids.get(key)
        if kid is None:
            kid = self._masks.id(key, functools.partial(self._build, key))
        excl: tuple = ()
        for i, rule in self._excluding:
            excl += rule.exclude(pos, r, parts[i])
        for i, rule in self._avoiding:
            avoid = rule.exclude(pos, r, parts[i])
            if avoid and self._leaves_some(kid, excl + avoid):
                excl += avoid
        return kid, excl

    def _leaves_some(self, kid: int, excl: tuple) -> bool:
        """Whether mask row `kid` allows a token outside `excl`."""
        n = self._allowed_count.get(kid)
        if n is None:
            n = self._allowed_count[kid] = int(np.count_nonzero(self._masks.rows[kid]))
        if n > len(excl):
            return True
        row = self._masks.rows[kid]
        return bool(np.count_nonzero(row) - np.count_nonzero(row[list(set(excl))]))

    def _build(self, key) -> np.ndarray:
        row = self._base_row.copy()
        for (_, rule), k in zip(self._limiting, key):
            if k is not None:
                row &= rule.factor(k)
        return row

    def _step(self, r: Row, tok: int) -> Row:
        raise NotImplementedError

    def _advance_parts(self, pos, r: Row, tok: int) -> tuple:
        return tuple(rule.advance(pos, r, part, tok) for rule, part in zip(self.rules, r.parts))

    # ---- the decoder's API
    def new_state(self, batch_size: int) -> DecodeState:
        """A fresh state for ``batch_size`` rows (nothing generated yet)."""
        return DecodeState([self._initial_row()] * int(batch_size))

    def replay(self, prefixes: Sequence[Sequence[int]]) -> DecodeState:
        """The state after each prefix (ids generated so far; a leading ``<START>``
        is skipped).  Raises ``ValueError`` if a prefix breaks the constraint."""
        cache = self._prefix_cache
        if len(cache) > 200_000:
            cache.clear()
        rows = []
        for p in prefixes:
            tp = tuple(int(x) for x in (p.tolist() if isinstance(p, torch.Tensor) else p))
            if tp and tp[0] == self.special.start:
                tp = tp[1:]
            r = cache.get(tp)
            if r is None:
                cut = len(tp)  # the longest cached ancestor, then advance from it
                base = None
                while cut > 0 and base is None:
                    cut -= 1
                    base = cache.get(tp[:cut])
                r, cut = (base, cut) if base is not None else (self._initial_row(), 0)
                for n in range(cut, len(tp)):
                    r = self._checked_step(r, tp[n])
                    cache[tp[: n + 1]] = r
            rows.append(r)
        return DecodeState(rows)

    def _as_state(self, x) -> DecodeState:
        return x if isinstance(x, DecodeState) else self.replay(x)

    def _checked_step(self, r: Row, tok: int) -> Row:
        shown = repr(self.itos[tok]) if 0 <= tok < self.V else "out of range"
        if r.done:
            if tok in (self.special.eos, self.special.pad):
                return r
            raise ValueError(f"token {tok} ({shown}) given after <EOS>; only <EOS>/<PAD> may follow")
        mid, excl = self._allowed(r)
        if not (0 <= tok < self.V) or not self._masks.rows[mid][tok] or tok in excl:
            raise ValueError(f"token {tok} ({shown}) is masked at this step; sample through mask()")
        return self._step(r, tok)

    def advance(self, state: DecodeState, tokens) -> DecodeState:
        """Record the sampled ``tokens`` (one id per row: tensor or list) in
        ``state`` (updated in place and returned).  Raises ``ValueError`` for a
        token the mask forbade."""
        tokens = tokens.reshape(-1).tolist() if isinstance(tokens, torch.Tensor) else [int(t) for t in tokens]
        if len(tokens) != len(state.rows):
            raise ValueError(f"got {len(tokens)} tokens for {len(state.rows)} rows")
        rows, m = state.rows, state._last_mask
        state._last_mask = None
        if m is None or m.shape[0] != len(rows):
            for b, tok in enumerate(tokens):
                rows[b] = self._checked_step(rows[b], int(tok))
            return state
        # validate all rows against the mask they were sampled from, in one gather
        bad_rows = [b for b, t in enumerate(tokens) if not 0 <= t < self.V]
        if not bad_rows:
            if m.device.type == "cpu" and len(tokens) == 1:  # one poem: one lookup (~60 steps a poem)
                bad_rows = [] if m.numpy()[0, tokens[0]] else [0]
            elif m.device.type == "cpu":  # NumPy: a few µs, where torch's small calls cost tens
                bad_rows = np.flatnonzero(~m.numpy()[np.arange(len(tokens)), tokens]).tolist()
            else:
                ok = m.gather(1, torch.tensor(tokens, dtype=torch.long, device=m.device)[:, None])
                bad_rows = [] if bool(ok.all()) else (~ok).nonzero()[:, 0].tolist()
        for b in bad_rows:
            if not rows[b].done or tokens[b] not in (self.special.eos, self.special.pad):
                self._checked_step(rows[b], int(tokens[b]))  # raises with a message
        for b, tok in enumerate(tokens):
            if not rows[b].done:
                rows[b] = self._step(rows[b], tok)
        return state

    def mask(self, x, device=None) -> torch.Tensor:
        """(B, V) bool: True where the token is allowed next for each row."""
        st = self._as_state(x)
        ids: list[int] = []
        ex_r: list[int] = []
        ex_c: list[int] = []
        for b, r in enumerate(st.rows):
            mid, excl = self._allowed(r)
            ids.append(mid)
            if excl:
                ex_r.extend([b] * len(excl))
                ex_c.extend(excl)
        dev = device_of(device)
        table = self._masks.tensor(dev)
        if dev.type == "cpu":  # NumPy's indexing: no per-call tensors to build
            mn = table.numpy()[ids]
            if ex_r:
                mn[ex_r, ex_c] = False
            m = torch.from_numpy(mn)
        else:
            m = table[torch.tensor(ids, dtype=torch.long, device=dev)]
            if ex_r:
                m[torch.tensor(ex_r, device=dev), torch.tensor(ex_c, device=dev)] = False
        st._last_mask = m
        return m

    def bias(self, x, device=None) -> torch.Tensor | None:
        """(B, V) float log-prob penalties to add to the logits, or ``None`` when no rule has any."""
        return None

    def _with_entries(self, out: torch.Tensor | None, entries: list, n: int, device) -> torch.Tensor | None:
        """`out` (or zeros when None) with each (row, ids, values) of `entries` added; `out` itself
        is never written (it may be a cached table's rows)."""
        entries = [e for e in entries if e is not None and len(e[1])]
        if not entries:
            return out
        out = torch.zeros(n, self.V, device=device) if out is None else out.clone()
        rows = np.concatenate([np.full(len(ids), b) for b, ids, _ in entries])
        cols = np.concatenate([ids for _, ids, _ in entries])
        vals = np.concatenate([values for _, _, values in entries])
        index = (torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device))
        out.index_put_(index, torch.from_numpy(vals).to(device=device, dtype=out.dtype), accumulate=True)
        return out  # one scatter for the whole batch (a row's ids are distinct, so each element gets one add)

    def apply(self, logits: torch.Tensor, x) -> torch.Tensor:
        """``logits.masked_fill(~mask, -inf)`` plus ``bias`` if any (not in place); for callers
        that hold logits (the decoder itself uses mask and bias). Apply temperature first."""
        if logits.dim() != 2 or logits.shape[1] != self.V:
            raise ValueError(f"logits must be (B, {self.V}), got {tuple(logits.shape)}")
        st = self._as_state(x)
        if logits.shape[0] != len(st):
            raise ValueError(f"logits have {logits.shape[0]} rows, state has {len(st)}")
        out = logits.masked_fill(~self.mask(st, logits.device), float("-inf"))
        b = self.bias(st, logits.device)
        return out if b is None else out + b.to(out.dtype)

    def finished(self, state: DecodeState) -> bool:
        """All rows have emitted ``<EOS>``."""
        return all(r.done for r in state.rows)
