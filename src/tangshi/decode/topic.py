"""The title's words as a bias on the vocabulary (the table: verse/topics.py), added by the decoder
at every free step beside the constraints' own bias."""

from __future__ import annotations

import functools

import torch

from tangshi.data.vocab import Vocab


@functools.lru_cache(maxsize=256)
def topic_vector(vocab: Vocab, title: str, weight: float) -> torch.Tensor | None:
    """(1, V): the title's words' bias (verse/topics.py) on the vocabulary; None without a title or weight."""
    from tangshi.verse import topics

    words = topics.bias(topics.bundled(), title, weight) if title and weight else {}
    if not words:
        return None
    out = torch.zeros(1, len(vocab))
    for ch, v in words.items():
        if ch in vocab:
            out[0, vocab.stoi[ch]] = v
    return out


def with_topic(bias: torch.Tensor | None, topic: torch.Tensor | None, rows: int) -> torch.Tensor | None:
    """A step's bias (B, V) with the title's words added; the topic alone, or the bias alone, when one is None."""
    if topic is None:
        return bias
    return topic.expand(rows, -1) if bias is None else bias + topic
