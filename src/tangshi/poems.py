"""One request → poems: script conversion, the form constraint, decoding, output records."""

from __future__ import annotations

import re

from .errors import TangshiError
from .generate import DecodeOptions, decode
from .model import PoetryLM
from .script import to_simplified, to_vocab_script
from .vocab import Vocab

FORM_NAMES = ("wujue", "qijue", "wulv", "qilv", "free")
_LINE = re.compile(r"[^，。]+[，。]?")


def split_lines(text: str) -> list[str]:
    """A poem's lines, each with its closing mark."""
    return _LINE.findall(text)


def write_poems(model: PoetryLM, vocab: Vocab, opts: DecodeOptions, n: int = 1, form: str = "free",
                start: str = "", acrostic: str | None = None, rhyme: bool | None = None, tone: str = "off",
                no_repeat: bool | None = None, script: str = "traditional") -> dict:
    if form not in FORM_NAMES:
        raise TangshiError(f"unknown form {form!r} (choose from {', '.join(FORM_NAMES)})")
    in_vocab = vocab.__contains__
    start = to_vocab_script(start or "", in_vocab)
    acrostic = to_vocab_script(acrostic, in_vocab) if acrostic else None
    no_repeat = True if no_repeat is None else no_repeat
    constraint = None
    if opts.strategy == "seed":
        if form != "free" or acrostic:
            raise TangshiError("--strategy seed writes the seed's free-form text; use another strategy for forms")
        if len(start) != 1:
            raise TangshiError("--strategy seed needs exactly one --start character, as in the seed")
    elif form != "free" or acrostic:
        from .constraints import build_constraint

        constraint = build_constraint(vocab, form, start=start, acrostic=acrostic,
                                      rhyme=(form != "free") if rhyme is None else rhyme,
                                      tone=tone, no_repeat=no_repeat)
    texts = decode(model, vocab, n, opts, start=start, constraint=constraint)
    poems = []
    for text in texts:
        shown = to_simplified(text) if script == "simplified" else text
        poems.append({"text": shown, "lines": split_lines(shown)})
    return {"poems": poems, "form": form, "strategy": opts.strategy, "seed": opts.seed, "script": script}
