"""Characters forced at given positions: the start text (any number of whole lines and a partial
one: a continuation), the acrostic (line k's character at position N: 藏头 N = 1, 藏尾 N = -1),
a template (the whole poem with holes: any character anywhere), and the parsing of keywords. A
forced position allows exactly its token; the other rules are not
asked there, but they see every forced token before decoding starts (a forced rhyme character
narrows the rhyme groups, a forced character at a checked position the tone patterns), so no
generated character can contradict one that is forced later."""

from __future__ import annotations

from tangshi.errors import TangshiError
from tangshi.text import CLAUSE_SEPARATORS, as_corpus_marks, is_han, split_clauses
from tangshi.verse import prosody


def _line_text(k: int) -> str:
    return f"line {k + 1}"


def parse_start(c, start: str | None, label: str, layout) -> tuple[dict[int, int], str]:
    """Start text of a regulated form → ({t: id}, normalised text). The text may hold any number
    of whole lines, each closed by the form's mark ('，' after odd lines, '。' after even ones),
    and then part of the next line. `c` is the constraint (its vocabulary lookups), `layout` the
    form's positions (layout.positions)."""
    text = as_corpus_marks("".join((start or "").split()))
    forced: dict[int, int] = {}
    if not text:
        return forced, ""
    n = c.form.chars_per_line
    if len(text) > len(layout):
        raise TangshiError(
            f"start text '{text}' is longer than a whole {label} ({c.form.lines} lines of {n} "
            "characters, each closed by its mark)"
        )
    out = []
    for i, ch in enumerate(text):
        pos = layout[i]
        if pos.punct:
            mark = c.form.punct(pos.line)
            if ch != mark:
                if prosody.is_punct(ch):
                    raise TangshiError(
                        f"start text '{text}': {_line_text(pos.line)} of a {label} must end with '{mark}', not '{ch}'"
                    )
                raise TangshiError(
                    f"start text '{text}': {_line_text(pos.line)} is longer than {n} characters; "
                    f"a {label} line has {n} characters and then '{mark}'"
                )
            forced[i] = c.stoi[mark]
            out.append(ch)
            continue
        if prosody.is_punct(ch):
            raise TangshiError(
                f"start text '{text}' has '{ch}' after {pos.char} characters of "
                f"{_line_text(pos.line)}; a {label} line has {n} characters before its mark"
            )
        if not is_han(ch):
            raise TangshiError(f"start text '{text}' contains '{ch}', which is not a Chinese character")
        tok, norm = c.token_id(ch, f"start text '{text}'")
        forced[i] = tok
        out.append(norm)
    return forced, "".join(out)


def acrostic_column(at: int, n: int, label: str) -> int:
    """The 0-based position in the line of `--at N` (1 = first, -1 = last)."""
    if isinstance(at, bool) or not isinstance(at, int) or at == 0 or not -n <= at <= n:
        raise TangshiError(
            f"--at must be a position 1..{n} or -{n}..-1 of a {label} line (1 = first, -1 = last), got {at!r}"
        )
    return at - 1 if at > 0 else n + at


def parse_acrostic(c, acrostic: str | None, label: str, forced: dict[int, int], start: str, at: int = 1) -> str | None:
    """Add the acrostic's characters to `forced` (line k's character at position `at`); returns
    the normalised text."""
    text = "".join((acrostic or "").split())
    if not text:
        return None
    L, n = c.form.lines, c.form.chars_per_line
    j = acrostic_column(at, n, label)
    if len(text) != L:
        raise TangshiError(f"acrostic '{text}' has {len(text)} characters but a {label} has {L} lines")
    out = []
    for k, ch in enumerate(text):
        if not is_han(ch):
            raise TangshiError(f"acrostic '{text}' contains '{ch}', which is not a Chinese character")
        tok, norm = c.token_id(ch, f"acrostic '{text}'")
        t = k * (n + 1) + j
        if t in forced and forced[t] != tok:
            raise TangshiError(
                f"start text '{start}' has '{c.itos[forced[t]]}' at {_line_text(k)}, position "
                f"{j + 1}, but the acrostic needs '{norm}' there"
            )
        forced[t] = tok
        out.append(norm)
    return "".join(out)


def parse_keywords(c, keywords: str | None) -> tuple[tuple[int, ...], str]:
    """Keywords: Chinese characters, each of which must appear in the poem (repeats count once)
    → (ids in order, normalised text)."""
    text = "".join((keywords or "").split())
    ids, out = [], []
    for ch in text:
        if not is_han(ch):
            raise TangshiError(f"keywords '{text}' contain '{ch}', which is not a Chinese character")
        tok, norm = c.token_id(ch, f"keywords '{text}'")
        if tok not in ids:
            ids.append(tok)
            out.append(norm)
    return tuple(ids), "".join(out)


def parse_free_start(c, start: str | None) -> tuple[list[int], str]:
    """Start text of free form: any characters the vocabulary knows → (ids, normalised text). A
    clause may not be empty (a mark at the start, or two marks in a row)."""
    text = as_corpus_marks("".join((start or "").split()))
    for i, ch in enumerate(text):
        if ch in CLAUSE_SEPARATORS and (i == 0 or text[i - 1] in CLAUSE_SEPARATORS):
            raise TangshiError(
                f"start text '{text}' has an empty clause: '{ch}' at position {i + 1} follows "
                + ("nothing" if i == 0 else "another mark")
            )
    ids, out = [], []
    for ch in text:
        tok, norm = c.token_id(ch, f"start text '{text}'")
        ids.append(tok)
        out.append(norm)
    return ids, "".join(out)


HOLES = "□＿_"  # an open character in a template (□ U+25A1, ＿ U+FF3F, or ASCII _)
SHOWN = 40  # a template quoted in an error: at most this many characters


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN else text[:SHOWN] + f"…({len(text)} characters)"


def template_shape(template: str) -> tuple[int, int]:
    """(lines, characters per line) of a template: its clauses split at its marks. Raises for a
    template whose clauses differ in length, is empty, or ends without a mark."""
    text = as_corpus_marks("".join((template or "").split()))
    if not text:
        raise TangshiError("--template is empty: give the poem with □ (or ＿) for each open character")
    for ch in text:
        if not (is_han(ch) or ch in HOLES or ch in CLAUSE_SEPARATORS):
            raise TangshiError(
                f"template '{_shown(text)}' holds '{ch}', which is neither a Chinese character nor a hole (□ or ＿)"
            )
    parts = split_clauses(text)
    if parts[-1][1] == "":
        raise TangshiError(f"template '{_shown(text)}' must end with its last line's mark (，or 。)")
    lengths = {len(body) for body, _ in parts}
    if len(lengths) != 1 or 0 in lengths:
        raise TangshiError(
            f"template '{_shown(text)}': its lines have {'/'.join(str(len(b)) for b, _ in parts[:8])}"
            f"{'/…' if len(parts) > 8 else ''} characters; "
            "every line of a form has the same number"
        )
    return len(parts), lengths.pop()


def template_form(template: str) -> str:
    """The form whose shape the template has (wujue, qijue, wulv, qilv)."""
    lines, n = template_shape(template)
    for name, form in prosody.FORMS.items():
        if form.lines == lines and form.chars_per_line == n:
            return name
    raise TangshiError(
        f"a template of {lines} lines of {n} characters is none of the forms (4 or 8 lines of 5 or 7 characters)"
    )


def parse_template(c, template: str, label: str, layout) -> tuple[dict[int, int], str]:
    """A template (the poem with holes) → ({t: id} of its fixed characters and marks, the template
    normalised: its characters in the vocabulary's form, □ for each hole)."""
    lines, n = template_shape(template)
    form = c.form
    if (lines, n) != (form.lines, form.chars_per_line):
        raise TangshiError(
            f"the template has {lines} lines of {n} characters but a {label} has {form.lines} lines of "
            f"{form.chars_per_line}"
        )
    text = as_corpus_marks("".join(template.split()))
    forced: dict[int, int] = {}
    out = []
    for t, (pos, ch) in enumerate(zip(layout, text)):
        if pos.punct:
            mark = form.punct(pos.line)
            forced[t] = c.stoi[mark]
            out.append(mark)
        elif ch in HOLES:
            out.append("□")
        else:  # a Han character: template_shape has refused anything else
            tok, norm = c.token_id(ch, f"template '{_shown(text)}'")
            forced[t] = tok
            out.append(norm)
    return forced, "".join(out)


def open_lines(template: str, lines: str) -> str:
    """The template with the characters of `lines` (1-based line numbers, e.g. "3" or "3,4") made
    holes: the lines to write again, the rest kept."""
    n_lines, n = template_shape(template)
    try:
        wanted = sorted({int(x) for x in str(lines).replace("，", ",").split(",") if x.strip()})
    except ValueError:
        raise TangshiError(f"--revise takes line numbers such as 3 or 3,4, got {lines!r}") from None
    if not wanted or not all(1 <= k <= n_lines for k in wanted):
        raise TangshiError(f"--revise takes line numbers from 1 to {n_lines} (the template's lines), got {lines!r}")
    text = as_corpus_marks("".join(template.split()))
    return "".join("□" if not prosody.is_punct(ch) and t // (n + 1) + 1 in wanted else ch for t, ch in enumerate(text))
