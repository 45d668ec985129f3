"""Prepared data as tensors, and the dev metrics: what training, `tangshi eval`, the bundled
model and the bench all read, without the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .batches import encode_poems
from .data import read_meta, read_split, require_prepared
from .errors import TangshiError, check_number
from .machine import threads_for
from .model import PoetryLM
from .vocab import Vocab

EVAL_BATCH = 256


@dataclass
class Split:
    inputs: torch.Tensor  # (N, 64)
    targets: torch.Tensor  # (N, 64)
    lengths: torch.Tensor  # (N,) real target tokens

    def head(self, n: int) -> "Split":
        """The first `n` poems (n >= 1)."""
        check_number("--limit", n, 1, 1 << 40, integer=True)
        return Split(self.inputs[:n], self.targets[:n], self.lengths[:n])

    @property
    def real_tokens(self) -> int:
        return int(self.lengths.sum())


def load_split(data_dir: Path, split: str, vocab: Vocab) -> Split:
    return encode_split(read_split(data_dir, split), vocab, Path(data_dir) / f"{split}.txt")


def encode_split(poems: list[str], vocab: Vocab, source: Path | str) -> Split:
    """Poems → a Split; a poem too long for the model's window is one clear error naming the file."""
    try:
        return Split(*encode_poems(poems, vocab))
    except ValueError as e:
        raise TangshiError(f"{source}: {e} (poems are 10–63 characters; run `tangshi data prepare` again)") from None


@torch.no_grad()
def evaluate(model: PoetryLM, split: Split, device="cpu", amp: bool = False) -> dict:
    """Dev metrics over all 64 positions of every poem.

    dev_nll  = mean −ln p over real target tokens (characters + <EOS>, PAD excluded)
    dev_ppl  = exp(dev_nll)
    seed_loss = the seed's NLLLoss: mean −ln p over all positions, PAD targets included
    seed_ppl  = the seed's figure 2**seed_loss (base 2 applied to a natural-log loss)
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
    seed_loss = nll_all / max(n_all, 1)
    return {"dev_nll": dev_nll, "dev_ppl": math.exp(dev_nll), "seed_loss": seed_loss,
            "seed_ppl": 2.0 ** seed_loss, "tokens": n_real}


def open_prepared(data_dir: Path) -> tuple[Vocab, dict, Split, Split]:
    """A prepared folder's vocabulary, meta and splits, checked: both splits hold poems, and the
    vocabulary covers every training character (else training would learn <OOV>)."""
    data_dir = require_prepared(data_dir)
    vocab = Vocab.load(data_dir / "vocab.json")
    meta = read_meta(data_dir)
    poems = {name: read_split(data_dir, name) for name in ("train", "dev")}
    for name, lines in poems.items():
        if not lines:
            raise TangshiError(f"{data_dir / (name + '.txt')} holds no poems; run `tangshi data prepare` again")
    missing = sorted({ch for p in poems["train"] for ch in p if ch not in vocab})
    if missing:
        raise TangshiError(f"{data_dir / 'vocab.json'} does not cover {data_dir / 'train.txt'}: {len(missing)} "
                           f"characters are missing (e.g. {''.join(missing[:5])}); run `tangshi data prepare` again")
    return vocab, meta, *(encode_split(poems[n], vocab, data_dir / f"{n}.txt") for n in ("train", "dev"))


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
    return {"dev_nll": nll_real / n_real, "dev_ppl": math.exp(nll_real / n_real), "tokens": n_real,
            "precision": precision}
