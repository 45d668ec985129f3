"""Decoding-time constraints: boolean masks over the vocabulary, one row per sample.

Constraints are part of decoding, not retries: at every step the decoder asks which tokens are
allowed next, gives the others probability 0, and every allowed token keeps its relative model
probability. The decoder (decode/search.py) uses three calls::

    c = build_constraint(vocab, "qijue", start="春", rhyme=True, tone="strict")   # may raise TangshiError
    state = c.new_state(batch_size)
    for _ in range(c.max_steps):              # tokens of a finished poem, <EOS> included
        allowed = c.mask(state)               # (B, V) bool
        bias = c.bias(state)                  # (B, V) float penalties (tone 'loose'), or None
        ...                                   # masked_fill(~allowed, -inf) (+ bias), sample `tok`
        c.advance(state, tok)
        if c.finished(state):
            break

``state.select(indices)`` reorders rows for beam search. ``mask``/``bias`` also accept the plain
prefixes (``list[list[int]]``, replayed through a cache: ``replay``), and ``apply(logits, state)``
does the masking for a caller holding logits; the decoder itself needs neither.

One concern per module:

* ``base``: special ids, the row state, the mask table, ``Constrained`` (the API above, composing
  a list of rules; each rule has the interface ``base.Rule``).
* ``tables``: prosody compiled into vocabulary tables (Han ids, tones, rhyme groups).
* ``layout``: what each position of a regulated poem is (``Position``).
* ``forced``: the start text and the acrostic.
* ``rhyme``, ``tones``, ``repeat``: the rules.
* ``forms``: ``FormConstraint`` and ``FreeConstraint``, composed from the above, and the factory.
"""

from .base import DecodeState, SpecialIds
from .forms import FormConstraint, FreeConstraint, build_constraint, make_constraint
from .tones import TONE_MODES

__all__ = [
    "DecodeState",
    "SpecialIds",
    "FormConstraint",
    "FreeConstraint",
    "build_constraint",
    "make_constraint",
    "TONE_MODES",
]
