"""Prepared data as tensors (`Split`), checked: what training, `tangshi eval`, the bundled model and
the bench all read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tangshi.data.batches import encode_poems
from tangshi.data.prepare import read_meta, read_split, require_prepared
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError, check_number


@dataclass
class Split:
    inputs: torch.Tensor  # (N, 64)
    targets: torch.Tensor  # (N, 64)
    lengths: torch.Tensor  # (N,) real target tokens

    def head(self, n: int) -> Split:
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
        raise TangshiError(
            f"{data_dir / 'vocab.json'} does not cover {data_dir / 'train.txt'}: {len(missing)} "
            f"characters are missing (e.g. {''.join(missing[:5])}); run `tangshi data prepare` again"
        )
    train, dev = (encode_split(poems[n], vocab, data_dir / f"{n}.txt") for n in ("train", "dev"))
    return vocab, meta, train, dev
