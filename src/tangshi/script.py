"""Traditional ↔ simplified characters through OpenCC (the model and the rhyme table are traditional)."""

from __future__ import annotations

from functools import lru_cache



@lru_cache(maxsize=None)
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    return _converter("t2s").convert(text)


def to_traditional(text: str) -> str:
    return _converter("s2t").convert(text)
