"""The form layout: what each token position of a regulated poem is."""

from __future__ import annotations

from dataclasses import dataclass

from tangshi.verse import prosody
from tangshi.verse.prosody import Form


@dataclass(frozen=True)
class Position:
    """Token position `t` of a poem in `form` (lines and characters 0-based)."""

    t: int
    line: int  # k: the line
    char: int  # j: the character in its line (== chars_per_line for the closing mark)
    punct: bool  # the line's closing '，' or '。'
    last: bool  # the line's last character
    rhyme: bool  # a rhyme position (the last character of lines 2, 4, 6, 8), when rhyme is on
    checked: bool  # a position whose tone regulated verse checks (2, 4, 6 and the last)
    first_end: bool = False  # line 1's last character, when rhyme is on: it rhymes or ends on 仄


def positions(form: Form, rhyme: bool) -> list[Position]:
    """Every position before `<EOS>`: lines × (characters + the closing mark)."""
    n = form.chars_per_line
    checked = set(prosody.checked_positions(n))
    out = []
    for t in range(form.lines * (n + 1)):
        k, j = divmod(t, n + 1)
        last = j == n - 1
        rhymes = rhyme and last and form.is_rhyme_line(k)
        out.append(Position(t, k, j, j == n, last, rhymes, j in checked, rhyme and last and k == 0 and not rhymes))
    return out
