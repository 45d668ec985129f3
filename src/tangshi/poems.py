"""One request → poems: script conversion, the constraint, decoding, output records."""

from __future__ import annotations

import functools
import re

from . import prosody
from .errors import TangshiError
from .generate import DecodeOptions, decode
from .model import PoetryLM
from .script import to_simplified, to_traditional
from .vocab import Vocab

FORM_NAMES = ("wujue", "qijue", "wulv", "qilv", "free")
_LINE = re.compile(r"[^，。]+[，。]?")


def split_lines(text: str) -> list[str]:
    """A poem's lines, each with its closing mark."""
    return _LINE.findall(text)


def to_vocab_text(text: str, vocab: Vocab, what: str) -> str:
    """`text` as the vocabulary spells it (whitespace dropped): unchanged when every
    character is known; otherwise converted simplified → traditional (OpenCC, with
    its phrase context), keeping a character as typed where only the typed form is
    known. A character known in neither form is a clear error."""
    text = "".join((text or "").split())
    if all(ch in vocab for ch in text):
        return text
    converted = to_traditional(text)
    if len(converted) != len(text):  # OpenCC maps character to character; never expected
        converted = "".join(to_traditional(ch) for ch in text)
    out = []
    for orig, ch in zip(text, converted):
        if ch in vocab:
            out.append(ch)
        elif orig in vocab:
            out.append(orig)
        else:
            shown = f"'{orig}'" if orig == ch else f"'{orig}' (traditional '{ch}')"
            raise TangshiError(f"character {shown} in the {what} is not in the model's vocabulary")
    return "".join(out)


@functools.lru_cache(maxsize=64)
def _constraint(vocab: Vocab, form: str, start: str, acrostic: str | None, rhyme: bool, tone: str,
                no_repeat: bool):
    """The request's constraint, built once per process (its vocabulary analysis
    takes ~20 ms for V ≈ 5,400; the object holds no per-poem state)."""
    from .constraints import build_constraint

    return build_constraint(vocab, form, start=start, acrostic=acrostic, rhyme=rhyme, tone=tone,
                            no_repeat=no_repeat)


def _record(text: str, form: str, script: str) -> dict:
    """One poem's output record; prosody fields are computed on the traditional text."""
    shown = to_simplified(text) if script == "simplified" else text
    rec = {"text": shown, "lines": split_lines(shown), "form": form}
    f = prosody.get_form(form)
    if f is not None:
        rec["valid_form"] = prosody.check_form(text, f)
        ends = prosody.rhyme_chars(text, f)
        groups = prosody.shared_groups(ends) if ends else frozenset()
        order = prosody.rhyme_table().groups
        # the 平水韻 group all rhyme positions share (the first in table order if several do)
        rec["rhyme_group"] = min(groups, key=order.index) if groups else None
        best = prosody.best_pattern(text, f)
        rec["tone_pattern"] = best[0].name if best else None
        rec["tone_conformance"] = round(best[1], 4) if best else None
    return rec


def write_poems(model: PoetryLM, vocab: Vocab, opts: DecodeOptions, n: int = 1, form: str = "free",
                start: str = "", acrostic: str | None = None, rhyme: bool | None = None, tone: str = "off",
                no_repeat: bool | None = None, script: str = "traditional") -> dict:
    """Write `n` poems for one request.

    form: wujue | qijue | wulv | qilv | free. start: the poem begins with it;
    acrostic: line k begins with its k-th character; rhyme (default on for the
    four forms): even lines end in one 平水韻 平聲 group; tone: strict | loose | off;
    no_repeat (default on): no clause repeats inside a poem. Simplified input is
    accepted (converted to traditional); `script='simplified'` converts the output.
    Impossible requests raise `TangshiError` before anything is generated.
    `opts.strategy == 'seed'` runs the seed's own procedure (free form, one start
    character, no constraint).
    """
    if form not in FORM_NAMES:
        raise TangshiError(f"unknown form {form!r} (choose from {', '.join(FORM_NAMES)})")
    if script not in ("traditional", "simplified"):
        raise TangshiError(f"unknown script {script!r} (choose from traditional, simplified)")
    if n < 1:
        raise TangshiError(f"the number of poems must be at least 1, got {n}")
    start = to_vocab_text(start, vocab, "start text")
    acrostic = to_vocab_text(acrostic, vocab, "acrostic") or None
    no_repeat = True if no_repeat is None else bool(no_repeat)
    rhyme = (form != "free") if rhyme is None else bool(rhyme)
    constraint = None
    if opts.strategy == "seed":
        if form != "free" or acrostic:
            raise TangshiError("--strategy seed writes the seed's free-form text; use another strategy for forms")
        if len(start) != 1:
            raise TangshiError("--strategy seed needs exactly one --start character, as in the seed")
    else:
        constraint = _constraint(vocab, form, start, acrostic, rhyme and form != "free", tone, no_repeat)
    texts = decode(model, vocab, n, opts, start=start, constraint=constraint)
    poems = [_record(t, form, script) for t in texts]
    return {"poems": poems, "form": form, "strategy": opts.strategy, "seed": opts.seed, "script": script}
