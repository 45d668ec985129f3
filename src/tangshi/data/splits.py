"""Prepared data as tensors (`Split`), checked: what training, `tangshi eval`, the bundled model and
the bench all read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from tangshi.data.batches import encode_poems
from tangshi.data.prepare import read_meta, read_split, read_titles, require_prepared
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError, check_number

UNTITLED_SHARE = 0.2  # of the training poems a titled model sees without their title, so it still writes without one
UNTITLED_SEED = 0


@dataclass
class Split:
    inputs: torch.Tensor  # (N, 64), or (N, 89) with titles
    targets: torch.Tensor  # (N, 64), or (N, 89) with titles
    lengths: torch.Tensor  # (N,) steps up to <EOS> (the real target tokens when untitled)
    pad_id: int | None = None  # given, real_tokens counts the targets that are not <PAD>

    def head(self, n: int) -> Split:
        """The first `n` poems (n >= 1)."""
        check_number("--limit", n, 1, 1 << 40, integer=True)
        return Split(self.inputs[:n], self.targets[:n], self.lengths[:n], self.pad_id)

    @property
    def real_tokens(self) -> int:
        """Target tokens that carry loss: every step up to <EOS> but a title's."""
        if self.pad_id is None:
            return int(self.lengths.sum())
        return int((self.targets != self.pad_id).sum())


def load_split(data_dir: Path, split: str, vocab: Vocab, titled: bool = False) -> Split:
    """A prepared split (`titled`: each poem read after its title, from titles.json)."""
    poems = read_split(data_dir, split)
    titles = read_titles(data_dir, split, len(poems)) if titled else None
    return encode_split(poems, vocab, Path(data_dir) / f"{split}.txt", titles)


def encode_split(poems: list[str], vocab: Vocab, source: Path | str, titles: list[str] | None = None) -> Split:
    """Poems (with their titles, for a titled model) → a Split; a poem too long for the model's
    window is one clear error naming the file."""
    try:
        return Split(*encode_poems(poems, vocab, titles=titles), pad_id=vocab.pad_id)
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


def titled_splits(data_dir: Path, vocab: Vocab) -> tuple[Split, Split]:
    """The prepared splits as a titled model reads them: every dev poem with its title; a fixed
    `UNTITLED_SHARE` of the training poems (drawn with `UNTITLED_SEED`) without theirs."""
    out = []
    for name in ("train", "dev"):
        poems = read_split(data_dir, name)
        titles = read_titles(data_dir, name, len(poems))
        if name == "train":
            rng = random.Random(UNTITLED_SEED)
            titles = [t if rng.random() >= UNTITLED_SHARE else "" for t in titles]
        out.append(encode_split(poems, vocab, Path(data_dir) / f"{name}.txt", titles))
    return out[0], out[1]
