"""What a reader of Tang verse hears first, measured beside the real poems of the same form.

``reader_scores(poems, form, keywords)`` returns a dict (``None`` where the denominator is empty).
A poem's *lines* are its clauses (split on ，。？！；) with only their Han characters kept; the
*structured* poems are those whose lines have the form's shape (:func:`prosody.infer_form` gives
``form``; with no form, each poem's inferred form); the *rhymed* poems are the structured ones whose
rhyme positions (the even lines' last characters) share a 平水韻 平聲 group
(:func:`prosody.shared_groups`; a poem rhymed in 仄 has none).  A *平 character* is one the table
gives only the 平 tone (a 多音字 that can be read 仄 is not one: a reader may hear it 仄).

* ``n`` — poems.
* ``triple_char_rate`` — share of poems in which one Han character occurs three or more times.
* ``doubled_char_rate`` — share of poems with a 疊字: one character twice in a row within a line.
* ``distinct_char_ratio`` — mean over poems of distinct Han characters / Han characters.
* ``first_unrhymed_ping_rate`` — among rhymed poems, the share whose first line ends on a 平
  character that is in none of the groups the even lines share (heard as a broken rhyme).
* ``first_rhyme_consistency`` — among rhymed poems whose first line ends on a 平 character, the
  share whose first line rhymes in a group the even lines share.  It and the rate above add up
  to the rhymed poems ending line 1 on a 平 character: consistency = 1 − unrhymed / that share.
* ``repeated_rhyme_char_rate`` — among structured poems, the share in which one character stands at
  two rhyme positions: the even lines' last characters, and line 1's last character when it rhymes
  in a group they share.
* ``rare_rhyme_rate`` — among rhymed poems, the share whose even lines share a group only through a
  reading verse rarely uses (verse/readings.py: 平 as pián in 先, 還 in 先): with the readings verse
  uses, their last characters share no group.
* ``parallel_mean`` — the mean 對仗 score (verse/parallel.py: the share of places whose two
  characters are a pair learned from real middle couplets) of the middle couplets (lines 3–4, 5–6)
  of the 8-line structured poems, or of the two lines of a couplet (a poem of two lines).
* With keywords (their Han characters, each counted once): ``keyword_poems`` — poems that hold at
  least two distinct keywords (one, when one keyword is given); over those poems,
  ``keywords_per_line`` — mean number of distinct keywords in a line that holds one, and
  ``keyword_crowded_rate`` — share of them with two or more distinct keywords in one line.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from tangshi.text import is_han, split_clauses
from tangshi.verse import prosody
from tangshi.verse.habits import extra_uses, habits

READER_KEYS = (
    "n",
    "triple_char_rate",
    "doubled_char_rate",
    "first_unrhymed_ping_rate",
    "distinct_char_ratio",
    "repeated_rhyme_char_rate",
    "first_rhyme_consistency",
    "rare_rhyme_rate",
    "parallel_mean",
    "keyword_poems",
    "keywords_per_line",
    "keyword_crowded_rate",
)
_COUNTS = ("n", "keyword_poems")  # counts: no ratio of generated to real
READER_LABELS = {
    "n": "poems",
    "triple_char_rate": "a character 3+ times",
    "doubled_char_rate": "a character twice in a row (疊字)",
    "first_unrhymed_ping_rate": "line 1 ends on an unrhymed 平",
    "distinct_char_ratio": "distinct / characters (mean)",
    "repeated_rhyme_char_rate": "a rhyme character repeated",
    "first_rhyme_consistency": "首句 rhymes, when it ends on 平",
    "rare_rhyme_rate": "a rhyme on a rare reading",
    "parallel_mean": "對仗 score (middle couplets)",
    "keyword_poems": "poems with 2+ keywords",
    "keywords_per_line": "keywords per line holding one",
    "keyword_crowded_rate": "2+ keywords in one line",
}


def han_lines(poem: str) -> list[str]:
    """The poem's clauses with only their Han characters; empty clauses dropped."""
    lines = ("".join(c for c in body if is_han(c)) for body, _ in split_clauses(poem))
    return [ln for ln in lines if ln]


def has_triple(lines: list[str]) -> bool:
    """One character three or more times in the poem."""
    counts = Counter(c for ln in lines for c in ln)
    return bool(counts) and max(counts.values()) >= 3


def has_doubled(lines: list[str]) -> bool:
    """A 疊字: one character twice in a row inside a line (never across a line break)."""
    return any(ln[i] == ln[i + 1] for ln in lines for i in range(len(ln) - 1))


def distinct_ratio(lines: list[str]) -> float | None:
    """Distinct characters / characters of the poem; ``None`` for a poem with none."""
    chars = "".join(lines)
    return len(set(chars)) / len(chars) if chars else None


def is_ping_only(ch: str) -> bool:
    """A 平 character: the table gives it the 平 tone and no other."""
    return prosody.tones(ch) == frozenset({prosody.PING})


def first_line_rhymes(lines: list[str]) -> bool | None:
    """Whether line 1's last character is in a group the even lines share; ``None`` when the even
    lines share no 平聲 group (or there are fewer than two of them)."""
    ends = [lines[i][-1] for i in range(1, len(lines), 2)]
    groups = prosody.shared_groups(ends) if len(ends) >= 2 else frozenset()
    if not groups:
        return None
    return bool(prosody.rhyme_groups(lines[0][-1]) & groups)


def rhyme_positions(lines: list[str]) -> list[str]:
    """The even lines' last characters, with line 1's first when it rhymes in their group."""
    ends = [lines[i][-1] for i in range(1, len(lines), 2)]
    return ([lines[0][-1]] if first_line_rhymes(lines) else []) + ends


def keywords_in_lines(lines: list[str], keywords: str) -> list[int]:
    """Per line, how many distinct keywords it holds."""
    keys = set(keywords)
    return [len(keys & set(ln)) for ln in lines]


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _structured(lines: list[str], form: prosody.Form | None) -> bool:
    shape = prosody.infer_form("，".join(lines) + "。")
    return shape is not None and (form is None or shape == form)


def _rhyme_counts(all_lines: list[list[str]], form: prosody.Form | None) -> dict[str, float | None]:
    structured = [ls for ls in all_lines if _structured(ls, form)]
    rhymed = [(ls, r) for ls in structured if (r := first_line_rhymes(ls)) is not None]
    ping = [r for ls, r in rhymed if is_ping_only(ls[0][-1])]
    repeated = sum(len(set(p)) < len(p) for p in map(rhyme_positions, structured))
    rare = sum(_rare_rhyme(ls) for ls, _ in rhymed)
    return {
        "first_unrhymed_ping_rate": _ratio(sum(not r for r in ping), len(rhymed)),
        "repeated_rhyme_char_rate": _ratio(repeated, len(structured)),
        "first_rhyme_consistency": _ratio(sum(ping), len(ping)),
        "rare_rhyme_rate": _ratio(rare, len(rhymed)),
    }


def couplets_of(lines: list[str]) -> list[tuple[str, str]]:
    """The couplets whose 對仗 is scored: lines 3–4 and 5–6 of eight lines, or the two lines of two."""
    if len(lines) == 8:
        return [(lines[2], lines[3]), (lines[4], lines[5])]
    return [(lines[0], lines[1])] if len(lines) == 2 else []


def _parallel_scores(all_lines: list[list[str]], form: prosody.Form | None) -> float | None:
    """The mean 對仗 score over the poems' scored couplets (``None`` when none has any); a form
    without middle couplets (絶句) is not scored."""
    if form is not None and form.lines != 8:
        return None
    pairs = habits().pairs
    scores = [
        s
        for ls in all_lines
        if form is None or _structured(ls, form)
        for a, b in couplets_of(ls)
        if (s := pairs.score(a, b)) is not None
    ]
    return _ratio(sum(scores), len(scores))


RANK_PARALLEL = 0.5  # nats of mean log-probability one whole 對仗 score is worth when ranking
RANK_EXTRA_USE = 0.1  # nats one extra use of a character (a repeat) costs when ranking


def reader_terms(text: str) -> dict[str, float]:
    """What ranking adds to the model's mean log-probability for one poem or couplet:
    ``parallel`` — its 對仗 score (the mean over :func:`couplets_of`; 0 for a 絶句 or free verse) and
    ``extra_uses`` — characters minus distinct characters (verse/habits.extra_uses)."""
    lines = han_lines(text)
    pairs = habits().pairs
    scores = [s for a, b in couplets_of(lines) if (s := pairs.score(a, b)) is not None]
    return {"parallel": sum(scores) / len(scores) if scores else 0.0, "extra_uses": float(extra_uses(lines))}


def reader_score(text: str, log_prob: float) -> float:
    """The ranking score of `--candidates`: the model's mean log-probability per token, plus
    RANK_PARALLEL × the 對仗 score, minus RANK_EXTRA_USE × the extra uses (docs/reader.md)."""
    t = reader_terms(text)
    return log_prob + RANK_PARALLEL * t["parallel"] - RANK_EXTRA_USE * t["extra_uses"]


def _rare_rhyme(lines: list[str]) -> bool:
    """The even lines' ends share a group in the table but none with the readings verse uses."""
    return not habits().readings.shared_groups(ln[-1] for ln in lines[1::2])


def _keyword_counts(all_lines: list[list[str]], keywords: str) -> dict[str, float | None]:
    keys = "".join(dict.fromkeys(c for c in keywords if is_han(c)))
    per_poem = [keywords_in_lines(ls, keys) for ls in all_lines]
    need = min(2, len(keys))
    held = [counts for ls, counts in zip(all_lines, per_poem) if need and len(set(keys) & set("".join(ls))) >= need]
    holding = [k for counts in held for k in counts if k]
    return {
        "keyword_poems": len(held),
        "keywords_per_line": _ratio(sum(holding), len(holding)),
        "keyword_crowded_rate": _ratio(sum(max(counts) >= 2 for counts in held), len(held)),
    }


def reader_scores(poems: list[str], form: str | prosody.Form | None = None, keywords: str | None = None) -> dict:
    """Score ``poems`` as a reader hears them (see the module docstring for each key)."""
    f = prosody.get_form(form)
    all_lines = [han_lines(p) for p in poems]
    ratios = [r for r in map(distinct_ratio, all_lines) if r is not None]
    out: dict[str, float | int | None] = {
        "n": len(poems),
        "triple_char_rate": _ratio(sum(map(has_triple, all_lines)), len(poems)),
        "doubled_char_rate": _ratio(sum(map(has_doubled, all_lines)), len(poems)),
        "distinct_char_ratio": _ratio(sum(ratios), len(ratios)),
        **_rhyme_counts(all_lines, f),
    }
    par = _parallel_scores(all_lines, f)
    if par is not None:
        out["parallel_mean"] = par
    if keywords:
        out.update(_keyword_counts(all_lines, keywords))
    return out


def poems_of_form(poems: list[str], form: str | prosody.Form) -> list[str]:
    """The poems that have exactly the form (:func:`prosody.check_form`)."""
    f = prosody.get_form(form)
    return [p for p in poems if prosody.check_form(p, f)]


def reader_ratio(generated: dict, real: dict) -> dict:
    """Generated / real for each rate both sides have (``None`` where the real one is 0 or absent)."""
    out: dict[str, float | None] = {}
    for k, g in generated.items():
        r = real.get(k)
        if k not in _COUNTS:
            out[k] = None if g is None or not r else g / r
    return out


def _cell(key: str, v) -> str:
    if v is None:
        return "—"
    return str(v) if key in _COUNTS else f"{v:.3f}"


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def format_reader(generated: dict, real: dict | None, title: str | None = None) -> str:
    """The table: one row per key of ``generated``; columns generated, real and generated / real."""
    ratio = reader_ratio(generated, real) if real else {}
    keys = [k for k in READER_KEYS if k in generated]
    labels = {k: READER_LABELS[k] for k in keys}
    width = max(_width(v) for v in labels.values())
    head = "".ljust(width) + f"  {'generated':>9}"
    if real:
        head += f"  {'real':>9}  {'ratio':>6}"
    lines = ([title] if title else []) + [head]
    for k in keys:
        row = labels[k] + " " * (width - _width(labels[k])) + f"  {_cell(k, generated[k]):>9}"
        if real:
            row += f"  {_cell(k, real.get(k)):>9}  {'' if k in _COUNTS else _cell('', ratio.get(k)):>6}"
        lines.append(row)
    return "\n".join(lines)
