"""The dev metrics: perplexity over a prepared split, through the model's forward pass
(`evaluate`) or through the decoding step in a given precision (`evaluate_steps`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tangshi.data.splits import Split
from tangshi.errors import TangshiError
from tangshi.machine import threads_for
from tangshi.model.lm import PoetryLM

EVAL_BATCH = 256  # poems per forward pass


@torch.no_grad()
def evaluate(model: PoetryLM, split: Split, device="cpu", amp: bool = False) -> dict:
    """Dev metrics over all 64 positions of every poem.

    dev_nll  = mean −ln p over real target tokens (characters + <EOS>, PAD excluded)
    dev_ppl  = exp(dev_nll)
    original_loss = the assignment's NLLLoss: mean −ln p over all positions, PAD targets included
    original_ppl  = the assignment's figure 2**original_loss (base 2 applied to a natural-log loss)
    """
    was_training = model.training
    model.eval()
    pad = model.config.pad_id
    nll_real = nll_all = 0.0
    n_real = n_all = 0
    for start in range(0, len(split.inputs), EVAL_BATCH):
        x = split.inputs[start : start + EVAL_BATCH].to(device)
        y = split.targets[start : start + EVAL_BATCH].to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = model(x)
        nll = F.nll_loss(F.log_softmax(logits.float(), -1).flatten(0, 1), y.flatten(), reduction="none")
        real = (y != pad).flatten()
        nll_real += float(nll[real].double().sum())
        n_real += int(real.sum())
        nll_all += float(nll.double().sum())
        n_all += nll.numel()
    model.train(was_training)
    if n_real == 0:
        raise TangshiError("no dev poems to evaluate: the split is empty")
    dev_nll = nll_real / n_real
    original_loss = nll_all / max(n_all, 1)
    return {
        "dev_nll": dev_nll,
        "dev_ppl": math.exp(dev_nll),
        "original_loss": original_loss,
        "original_ppl": 2.0**original_loss,
        "tokens": n_real,
    }


@torch.no_grad()
def evaluate_steps(model: PoetryLM, split: Split, precision: str, device="cpu", batch: int | None = None) -> dict:
    """dev_nll and dev_ppl as `evaluate` computes them, but through the decoding step
    (`PoetryLM.step`, one token at a time) in `precision`: the perplexity of what decoding reads.
    `batch` poems per step (default EVAL_BATCH); 1 takes the one-row path a single poem takes."""
    batch = batch or EVAL_BATCH
    was_training = model.training
    model.eval()
    pad = model.config.pad_id
    nll_real, n_real = 0.0, 0
    with threads_for(batch, torch.device(device)):  # a small batch: one thread, as decoding runs it
        for start in range(0, len(split.inputs), batch):
            x = split.inputs[start : start + batch].to(device)
            y = split.targets[start : start + batch].to(device)
            state = None
            for t in range(int(split.lengths[start : start + batch].max())):
                logits, state = model.step(x[:, t], state, precision=precision)
                real = y[:, t] != pad
                nll = F.cross_entropy(logits.float()[real], y[real, t], reduction="sum")
                nll_real += float(nll.double())
                n_real += int(real.sum())
    model.train(was_training)
    if n_real == 0:
        raise TangshiError("no dev poems to evaluate: the split is empty")
    return {
        "dev_nll": nll_real / n_real,
        "dev_ppl": math.exp(nll_real / n_real),
        "tokens": n_real,
        "precision": precision,
    }
