"""Traditional ↔ simplified characters through OpenCC (the model and the rhyme table are traditional)."""

from __future__ import annotations

from functools import lru_cache

from .errors import TangshiError


@lru_cache(maxsize=None)
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    return _converter("t2s").convert(text)


def to_traditional(text: str) -> str:
    return _converter("s2t").convert(text)


def to_vocab_script(text: str, in_vocab) -> str:
    """Return `text` as the vocabulary spells it: unchanged when every character is known,
    else converted simplified → traditional. A character still unknown gets a clear error."""
    if all(in_vocab(ch) for ch in text):
        return text
    converted = to_traditional(text)
    for orig, ch in zip(text, converted):
        if not in_vocab(ch):
            shown = orig if orig == ch else f"{orig} (traditional {ch})"
            raise TangshiError(f"character {shown} is not in the model's vocabulary")
    return converted
