"""The small random problem the gradient checks run on: a tiny model (`SmallConfig`) with random
float64 weights and a batch with PAD tails and one interior PAD target (`small_problem`).

No torch in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tangshi.model.spec import param_shapes

PAD_ID = 0


@dataclass(frozen=True)
class SmallConfig:
    vocab_size: int = 11
    embed_dim: int = 6
    hidden_dim: int = 6
    num_layers: int = 2
    tie_weights: bool = False
    relu_logits: bool = False


def small_problem(seed: int = 0, config: Any = None, B: int = 3, T: int = 7):
    """(config, params float64, inputs, targets) with PAD tails and one interior PAD target."""
    config = config or SmallConfig()
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0.0, 0.5, size=s) for k, s in param_shapes(config).items()}
    seq = rng.integers(1, config.vocab_size, size=(B, T + 1))
    lengths = [T, T - 2, T - 4][:B] + [T] * max(0, B - 3)
    for b, n in enumerate(lengths):
        seq[b, n + 1 :] = PAD_ID
    inputs, targets = seq[:, :-1].copy(), seq[:, 1:].copy()
    targets[0, 2] = PAD_ID  # a PAD target in the middle of a row: skipped by the loss only
    return config, params, inputs, targets
