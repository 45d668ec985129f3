"""Characters forced at given positions: the start text and the acrostic (藏头: line k's first
character). A forced position allows exactly its token; the other rules are not asked there,
but still see the token go by (a forced rhyme character narrows the rhyme groups)."""

from __future__ import annotations

from tangshi import prosody
from tangshi.errors import TangshiError
from tangshi.text import COMMA, is_han


def parse_start(c, start: str | None, label: str, comma_id: int) -> tuple[dict[int, int], str]:
    """Start text of a regulated form (≤ one line, optionally with its '，') → ({t: id}, normalised text).
    `c` is the constraint (its vocabulary lookups)."""
    text = "".join((start or "").split())
    forced: dict[int, int] = {}
    if not text:
        return forced, ""
    n = c.form.chars_per_line
    if len(text) > n + 1 or (len(text) == n + 1 and is_han(text[n])):
        raise TangshiError(f"start text '{text}' is longer than the first line ({n} characters) of a {label}")
    out = []
    for i, ch in enumerate(text):
        if i == n:
            if ch != COMMA:
                raise TangshiError(f"start text '{text}': the first line must end with '，', not '{ch}'")
            forced[i] = comma_id
            out.append(ch)
            continue
        if prosody.is_punct(ch):
            raise TangshiError(f"start text '{text}' has punctuation '{ch}' at position {i + 1}; "
                               f"a {label} line has {n} characters before its '，'")
        if not is_han(ch):
            raise TangshiError(f"start text '{text}' contains '{ch}', which is not a Chinese character")
        tok, norm = c.token_id(ch, f"start text '{text}'")
        forced[i] = tok
        out.append(norm)
    return forced, "".join(out)


def parse_acrostic(c, acrostic: str | None, label: str, forced: dict[int, int], start: str) -> str | None:
    """Add the acrostic's heads to `forced` (line k's first position); returns the normalised text."""
    text = "".join((acrostic or "").split())
    if not text:
        return None
    L, n1 = c.form.lines, c.form.chars_per_line + 1
    if len(text) != L:
        raise TangshiError(f"acrostic '{text}' has {len(text)} characters but a {label} has {L} lines")
    out = []
    for k, ch in enumerate(text):
        if not is_han(ch):
            raise TangshiError(f"acrostic '{text}' contains '{ch}', which is not a Chinese character")
        tok, norm = c.token_id(ch, f"acrostic '{text}'")
        t = k * n1
        if t in forced and forced[t] != tok:
            raise TangshiError(f"start text '{start}' begins with '{c.itos[forced[t]]}' but the acrostic needs '{norm}'")
        forced[t] = tok
        out.append(norm)
    return "".join(out)


def parse_free_start(c, start: str | None) -> tuple[list[int], str]:
    """Start text of free form: any characters the vocabulary knows → (ids, normalised text)."""
    text = "".join((start or "").split())
    ids, out = [], []
    for ch in text:
        tok, norm = c.token_id(ch, f"start text '{text}'")
        ids.append(tok)
        out.append(norm)
    return ids, "".join(out)
