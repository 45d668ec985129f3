"""Evaluation metrics for generated poems.

``score_poems(poems, form, training_clauses)`` returns a dict:

* ``n`` — number of poems.
* ``form_validity`` — share of poems that exactly match the form
  (:func:`tangshi.prosody.check_form`: line count, line lengths, '，'/'。'
  alternating).  With form ``None``/``'free'`` each poem's form is inferred
  from its clause count and lengths (:func:`tangshi.prosody.infer_form`) and the
  share of poems that exactly match a regulated form is reported.
* ``rhyme_rate`` — share of poems whose rhyme positions (last characters of the
  2nd, 4th, ... clauses; at least two) share one 平水韻 平聲 group
  (:func:`tangshi.prosody.rhyme_ok`, with the given or inferred form).
* ``tone_conformance`` — mean of :func:`tangshi.prosody.tone_conformance` over
  the poems that have the (given or inferred) form's line structure; ``None``
  if none does.
* ``distinct_1`` / ``distinct_2`` — unique characters / all characters and
  unique character bigrams / all bigrams, over the whole set; bigrams never
  cross a clause boundary; punctuation and whitespace excluded.
* ``repeated_clause_rate`` — share of clauses equal to an earlier clause of
  the same poem.
* ``copy_rate`` — share of generated clauses of at least 4 characters that
  occur verbatim as a clause of the training corpus; ``None`` when
  ``training_clauses`` is ``None`` (or no clause is long enough).
* ``mean_chars`` — mean number of Han characters per poem.

Rates with an empty denominator are ``None``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from tangshi.errors import TangshiError
from tangshi.text import CLAUSE_SEPARATORS, is_han
from tangshi.verse import prosody

COPY_MIN_CHARS = 4
_SPLIT = re.compile(f"[{CLAUSE_SEPARATORS}]")

METRIC_KEYS = (
    "n",
    "form_validity",
    "rhyme_rate",
    "tone_conformance",
    "distinct_1",
    "distinct_2",
    "repeated_clause_rate",
    "copy_rate",
    "mean_chars",
)

_LABELS = {
    "n": "poems",
    "form_validity": "form validity",
    "rhyme_rate": "rhyme rate (平水韻)",
    "tone_conformance": "tone conformance (平仄)",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "repeated_clause_rate": "repeated clauses",
    "copy_rate": "copied clauses (≥4 chars)",
    "mean_chars": "characters per poem",
}


def clauses(text: str) -> list[str]:
    """Split on ，。？！； (whitespace and other punctuation removed); empty clauses dropped."""
    out = []
    for part in _SPLIT.split(text):
        c = "".join(ch for ch in part if not ch.isspace() and not prosody.is_punct(ch))
        if c:
            out.append(c)
    return out


def training_clause_set(poems: Iterable[str], min_chars: int = COPY_MIN_CHARS) -> set[str]:
    """All clauses of at least ``min_chars`` characters in the training poems."""
    out: set[str] = set()
    for p in poems:
        out.update(c for c in clauses(p) if len(c) >= min_chars)
    return out


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def score_poems(
    poems: list[str],
    form: str | prosody.Form | None = None,
    training_clauses: set[str] | None = None,
) -> dict:
    """Score ``poems`` (see the module docstring for each key)."""
    f = prosody.get_form(form)
    n = len(poems)
    valid = rhymed = 0
    tone_sum, tone_n = 0.0, 0
    chars: set[str] = set()
    n_chars = 0
    bigrams: set[str] = set()
    n_bigrams = 0
    n_clauses = repeated = 0
    copy_num = copy_den = 0
    han_total = 0
    for poem in poems:
        pf = f if f is not None else prosody.infer_form(poem)
        if pf is not None and prosody.check_form(poem, pf):
            valid += 1
        if prosody.rhyme_ok(poem, pf):
            rhymed += 1
        if pf is not None:
            tc = prosody.tone_conformance(poem, pf)
            if tc is not None:
                tone_sum += tc
                tone_n += 1
        seen = set()
        for c in clauses(poem):
            n_clauses += 1
            if c in seen:
                repeated += 1
            seen.add(c)
            chars.update(c)
            n_chars += len(c)
            bg = [c[i : i + 2] for i in range(len(c) - 1)]
            bigrams.update(bg)
            n_bigrams += len(bg)
            if training_clauses is not None and len(c) >= COPY_MIN_CHARS:
                copy_den += 1
                copy_num += c in training_clauses
        han_total += sum(is_han(ch) for ch in poem)
    return {
        "n": n,
        "form_validity": _ratio(valid, n),
        "rhyme_rate": _ratio(rhymed, n),
        "tone_conformance": _ratio(tone_sum, tone_n),
        "distinct_1": _ratio(len(chars), n_chars),
        "distinct_2": _ratio(len(bigrams), n_bigrams),
        "repeated_clause_rate": _ratio(repeated, n_clauses),
        "copy_rate": None if training_clauses is None else _ratio(copy_num, copy_den),
        "mean_chars": _ratio(han_total, n),
    }


def _fmt(key: str, v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if key == "n" or isinstance(v, int):
        return str(v)
    if key == "mean_chars":
        return f"{v:.1f}"
    return f"{v:.3f}"


def format_metrics(d: dict, title: str | None = None) -> str:
    """A two-column text table of a ``score_poems`` dict (``None`` shown as '—')."""
    keys: list[str] = [k for k in METRIC_KEYS if k in d] + [k for k in d if k not in METRIC_KEYS]
    labels = {k: _LABELS.get(k, k) for k in keys}
    width = max((_display_width(labels[k]) for k in keys), default=0)
    lines = [title] if title else []
    for k in keys:
        lab = labels[k]
        pad = " " * (width - _display_width(lab))
        lines.append(f"{lab}{pad}  {_fmt(k, d[k])}")
    return "\n".join(lines)


def _display_width(s: str) -> int:

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


# ---------------------------------------------------------------------------- couplets
COUPLET_KEYS = ("n", "layout_rate", "tone_opposition", "shared_char_rate", "mirror_rate", "ends_ping_rate")
_LABELS.update(
    {
        "layout_rate": "same length and marks",
        "tone_opposition": "平仄 opposed (checked positions)",
        "shared_char_rate": "couplets sharing a character",
        "mirror_rate": "repeats mirrored",
        "ends_ping_rate": "下联 ends in 平 (上联 in 仄)",
        "keyword_coverage": "all keywords present",
        "hidden_coverage": "hidden characters in place",
        "start_kept": "start text kept",
    }
)


def _layout(text: str) -> list[str | None]:
    """Per position: None for a Chinese character, the mark itself otherwise."""
    return [None if is_han(ch) else ch for ch in text]


def split_couplet(text: str) -> tuple[str, str] | None:
    """'上联，下联。' → (上联, 下联): the clauses split in half (an odd clause count: None)."""
    parts = re.findall(f"[^{CLAUSE_SEPARATORS}、：]+[{CLAUSE_SEPARATORS}、：]?", "".join(text.split()))
    if len(parts) < 2 or len(parts) % 2:
        return None
    half = len(parts) // 2
    return "".join(parts[:half])[:-1], "".join(parts[half:]).rstrip("。")


def score_couplet(first: str, second: str) -> dict:
    """One couplet: same layout; at each clause's checked positions (2, 4, 6, last) whether the
    tones are opposed (both characters in the 平水韻 table and not both of one single tone; a
    多音字 can be read either way); the 下联's characters also in the 上联; whether the repeat
    pattern is mirrored (positions i, j repeat in one iff in the other); whether the 下联 ends in
    a character that can be read 平, and the 上联 in one that can be read 仄 (the convention)."""
    layout_ok = _layout(first) == _layout(second)
    opposed = checked = 0
    if layout_ok:
        for a_clause, b_clause in zip(clauses(first), clauses(second)):
            for j in prosody.checked_positions(len(a_clause)):
                ta, tb = prosody.tones(a_clause[j]), prosody.tones(b_clause[j])
                if ta and tb:
                    checked += 1
                    opposed += not (len(ta) == len(tb) == 1 and ta == tb)
    a = [c for c in first if is_han(c)]
    b = [c for c in second if is_han(c)]
    mirrored = len(a) == len(b) and all((a[i] == a[j]) == (b[i] == b[j]) for j in range(len(a)) for i in range(j))
    return {
        "layout_ok": layout_ok,
        "opposed": opposed,
        "checked": checked,
        "shared": sorted(set(a) & set(b)),
        "mirrored": mirrored,
        "ends_ping": bool(b) and prosody.PING in prosody.tones(b[-1]),
        "first_ends_ze": bool(a) and prosody.ZE in prosody.tones(a[-1]),
    }


def score_couplets(pairs: list[tuple[str, str]]) -> dict:
    """Couplets (上联, 下联): the share of each property of `score_couplet`; tone opposition is
    pooled over every checked position whose two characters are in the table; the 平 ending is
    counted over the couplets whose 上联 ends in a character read only 仄 (the convention)."""
    rows = [score_couplet(a, b) for a, b in pairs]
    n = len(rows)
    conventional = [r for (a, _), r in zip(pairs, rows) if a and prosody.tones(a[-1]) == {prosody.ZE}]
    return {
        "n": n,
        "layout_rate": _ratio(sum(r["layout_ok"] for r in rows), n),
        "tone_opposition": _ratio(sum(r["opposed"] for r in rows), sum(r["checked"] for r in rows)),
        "shared_char_rate": _ratio(sum(bool(r["shared"]) for r in rows), n),
        "mirror_rate": _ratio(sum(r["mirrored"] for r in rows), n),
        # the convention, where the 上联 keeps it (ends in a character read only 仄)
        "ends_ping_rate": _ratio(sum(r["ends_ping"] for r in conventional), len(conventional)),
    }


# ---------------------------------------------------------------------------- requested characters
def coverage(
    poems: list[str], keywords: str | None = None, acrostic: str | None = None, at: int = 1, start: str | None = None
) -> dict:
    """The share of poems that hold every keyword, that have the acrostic's k-th character at
    position `at` of line k (1 = first, -1 = last) for every line, and that begin with `start`;
    only the requested ones are returned."""
    n = len(poems)
    out = {}
    if acrostic and (isinstance(at, bool) or not isinstance(at, int) or at == 0 or abs(at) > 7):
        raise TangshiError(f"--at must be a position 1..7 or -7..-1 in a line (1 = first, -1 = last), got {at!r}")
    if keywords:
        out["keyword_coverage"] = _ratio(sum(all(k in p for k in keywords) for p in poems), n)
    if acrostic:

        def hidden(p: str) -> bool:
            bodies = clauses(p)
            return len(bodies) == len(acrostic) and all(
                len(b) >= abs(at) and b[at - 1 if at > 0 else at] == ch for b, ch in zip(bodies, acrostic)
            )

        out["hidden_coverage"] = _ratio(sum(hidden(p) for p in poems), n)
    if start:
        out["start_kept"] = _ratio(sum(p.replace(" ", "").startswith(start) for p in poems), n)
    return out
