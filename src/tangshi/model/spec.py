"""The LSTM language model's parameters, defined once, without torch or NumPy.

Both implementations read their names and shapes from here: `model.PoetryLM` (PyTorch,
whatever LSTM kernel runs it) saves and loads exactly these tensors
(`canonical_state_dict`), and the NumPy twin (`numpy_lstm`) computes with them. A
checkpoint of either therefore loads into the other.

    embedding.weight   (V, E)
    lstm.{l}.weight_ih (in_l, 4H)   in_0 = E, in_l = H above
    lstm.{l}.weight_hh (H, 4H)
    lstm.{l}.bias      (4H,)
    head.weight        (V, H)       absent when tied to the embedding (E == H)
    head.bias          (V,)

The four gate blocks of every 4H axis are in the order i, f, c̃ (called g), o, the assignment's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

GATES = ("i", "f", "g", "o")  # the order of the four H-wide blocks of a 4H axis

# the name older tangshi gave the course assignment's recipe, LSTM loop and decoding procedure: still read
OLD_NAMES = {"seed": "original"}


class Dims(NamedTuple):
    V: int  # vocabulary size (characters + the four specials)
    E: int  # embedding width
    H: int  # hidden width
    L: int  # LSTM layers
    tie: bool  # head.weight is embedding.weight
    relu: bool  # the assignment's ReLU on the logits


def dims(config: Any) -> Dims:
    """The sizes of any config-like object (model.ModelConfig, or a plain namespace)."""
    V, E, H, L = (int(getattr(config, k)) for k in ("vocab_size", "embed_dim", "hidden_dim", "num_layers"))
    tie = bool(getattr(config, "tie_weights", False))
    relu = bool(getattr(config, "relu_logits", False))
    if min(V, E, H, L) < 1:
        raise ValueError(f"vocab_size, embed_dim, hidden_dim, num_layers must be >= 1, got {V}, {E}, {H}, {L}")
    if tie and E != H:
        raise ValueError(f"tie_weights needs embed_dim == hidden_dim, got {E} != {H}")
    return Dims(V, E, H, L, tie, relu)


def param_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """The canonical parameter names and shapes, in canonical order."""
    d = dims(config)
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (d.V, d.E)}
    for l in range(d.L):
        in_l = d.E if l == 0 else d.H
        shapes[f"lstm.{l}.weight_ih"] = (in_l, 4 * d.H)
        shapes[f"lstm.{l}.weight_hh"] = (d.H, 4 * d.H)
        shapes[f"lstm.{l}.bias"] = (4 * d.H,)
    if not d.tie:
        shapes["head.weight"] = (d.V, d.H)
    shapes["head.bias"] = (d.V,)
    return shapes


def head_weight_name(config: Any) -> str:
    """The (V, H) matrix the output layer reads: the embedding when tied."""
    return "embedding.weight" if dims(config).tie else "head.weight"
