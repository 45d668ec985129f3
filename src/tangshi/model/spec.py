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

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from tangshi.errors import TangshiError, option

GATES = ("i", "f", "g", "o")  # the order of the four H-wide blocks of a 4H axis

# the name older tangshi gave the course assignment's recipe, LSTM loop and decoding procedure: still read
OLD_NAMES = {"seed": "original"}


class Dims(NamedTuple):
    V: int  # vocabulary size (characters + the four specials)
    D: int  # embedding width (D, as in docs/lstm-backprop.md, where E is the loss)
    H: int  # hidden width
    L: int  # LSTM layers
    tie: bool  # head.weight is embedding.weight
    relu: bool  # the assignment's ReLU on the logits


def dims(config: Any) -> Dims:
    """The sizes of any config-like object (model.ModelConfig, or a plain namespace)."""
    V, D, H, L = (int(getattr(config, k)) for k in ("vocab_size", "embed_dim", "hidden_dim", "num_layers"))
    tie = bool(getattr(config, "tie_weights", False))
    relu = bool(getattr(config, "relu_logits", False))
    if min(V, D, H, L) < 1:
        raise ValueError(f"vocab_size, embed_dim, hidden_dim, num_layers must be >= 1, got {V}, {D}, {H}, {L}")
    if tie and D != H:
        raise ValueError(f"tie_weights needs embed_dim == hidden_dim, got {D} != {H}")
    return Dims(V, D, H, L, tie, relu)


def param_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """The canonical parameter names and shapes, in canonical order."""
    d = dims(config)
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (d.V, d.D)}
    for l in range(d.L):
        in_l = d.D if l == 0 else d.H
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


# ---------------------------------------------------------------------------- the model's config
IMPLS = ("tangshi", "original", "nn")
# the per-tensor and per-gate arms of the initialisation study (experiments/init.py)
STUDY_INITS = ("xavier_normal_embed", "torch_xavier_embed", "xavier_forget1", "xavier_orthogonal")
INITS: tuple[str, ...] = ("xavier", "zeros", "constant", "uniform1e-4", "torch", *STUDY_INITS)
# the training-only regularisers: they change no weight's shape, and act only while training
DROPOUT_FIELDS = ("dropout_embed", "dropout_chars", "dropout_hidden", "dropout_output", "weight_drop")
# bounds that keep a typo from asking for terabytes: far above any size this model is trained at
MAX_DIM, MAX_LAYERS, MAX_VOCAB = 16384, 16, 1 << 20


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    pad_id: int
    embed_dim: int = option(256, "embedding width E")
    hidden_dim: int = option(256, "LSTM width H")
    num_layers: int = option(1, "stacked LSTM layers")
    relu_logits: bool = option(False, "the assignment's ReLU on the logits (off by default: it caps the model)")
    pad_in_loss: bool = option(False, "the assignment's loss with PAD targets counted (off by default)")
    tie_weights: bool = option(False, "the output layer shares the embedding matrix (E == H)")
    dropout_embed: float = option(0.0, "locked (variational) dropout on the embeddings")
    dropout_chars: float = option(
        0.0, "embedding dropout: whole characters (embedding rows) dropped per batch, AWD-LSTM style"
    )
    dropout_hidden: float = option(0.0, "locked dropout between LSTM layers")
    dropout_output: float = option(0.0, "locked dropout on the last LSTM output")
    weight_drop: float = option(0.0, "DropConnect on weight_hh (AWD-LSTM)")
    titles: bool = option(
        False,
        "trained on <START> title <START> poem (data/batches.py): the model writes on a title (generate --title) "
        "and, as before, without one",
    )
    init: str = option(
        "xavier",
        "initialisation: xavier (the assignment's), zeros, constant (every weight 0.01), "
        "uniform1e-4 (the assignment's NumPy U(±1e-4)), torch (PyTorch's defaults); the study's arms: "
        "xavier_normal_embed (Xavier, the embedding N(0,1)), torch_xavier_embed (PyTorch's, the embedding "
        "Xavier), xavier_forget1 (Xavier, forget-gate bias 1), xavier_orthogonal (Xavier, each gate's W_hh orthogonal)",
        choices=INITS,
    )

    def __post_init__(self):
        if self.init not in INITS:
            raise TangshiError(f"unknown init {self.init!r} (choose from {', '.join(INITS)})")
        if self.tie_weights and self.embed_dim != self.hidden_dim:
            raise TangshiError(f"tied weights need embed_dim == hidden_dim, got {self.embed_dim} and {self.hidden_dim}")
        for name in DROPOUT_FIELDS:
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise TangshiError(f"--{name.replace('_', '-')} must be in [0, 1), got {p}")
        for name, top in (
            ("embed_dim", MAX_DIM),
            ("hidden_dim", MAX_DIM),
            ("num_layers", MAX_LAYERS),
            ("vocab_size", MAX_VOCAB),
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
                raise TangshiError(f"--{name.replace('_', '-')} must be a whole number from 1 to {top}, got {v}")
        if not isinstance(self.pad_id, int) or not 0 <= self.pad_id < self.vocab_size:
            raise TangshiError(f"pad_id must be a vocabulary id, got {self.pad_id}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> ModelConfig:
        """A stored config; the run-time keys older checkpoints stored with it (impl, fused,
        fused_head: see `Runtime.from_json`) are left to the runtime."""
        obj = {k: v for k, v in obj.items() if k not in RUNTIME_KEYS}
        known = {f.name for f in fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise TangshiError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**obj)


RUNTIME_KEYS = ("impl", "fused", "fused_head")  # stored in ModelConfig by older checkpoints
