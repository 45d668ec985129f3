"""Poems → (input, target) id tensors, padding, and batch order.

input  = <START> c_1 … c_n            padded with <PAD> to SEQ_LEN
target = c_1 … c_n <EOS>              padded with <PAD> to SEQ_LEN

A titled model (trained with `--titles`) reads the poem's title first, between two <START>s;
the title's positions carry no loss (their targets are <PAD>), so the model learns the poem given
its title and never learns to write titles:

input  = <START> t_1 … t_m <START> c_1 … c_n
target = <PAD> …  <PAD>  c_1   c_2 … <EOS>       (m + 1 <PAD>s)

A poem with an empty title is encoded as an untitled one.

Batches can be length-bucketed: each batch is cut to its longest poem instead
of always 64 steps, which is exact (PAD targets carry no loss and a causal LSTM
never looks right) and saves the time steps of padding.
"""

from __future__ import annotations

import torch

from tangshi.data.corpus import TITLE_MAX
from tangshi.data.vocab import Vocab

SEQ_LEN = 64  # the assignment's sequence length: <START> + 63 characters
TITLED_SEQ_LEN = SEQ_LEN + TITLE_MAX + 1  # <START> title <START> + 63 characters


def title_prefix(title: str, vocab: Vocab) -> list[int]:
    """What a titled model reads before the poem: <START> alone without a title, else
    <START> title <START> (characters outside the vocabulary left out)."""
    ids = [vocab.stoi[ch] for ch in title[:TITLE_MAX] if ch in vocab]
    return [vocab.start_id] + (ids + [vocab.start_id] if ids else [])


def encode_poems(
    poems: list[str], vocab: Vocab, seq_len: int | None = None, titles: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return inputs (N, seq_len), targets (N, seq_len) as int64 and lengths (N,).

    `lengths` counts each row's steps up to its <EOS>: the poem's characters + <EOS>, and the
    title's prefix with `titles` (one per poem, "" for none).
    """
    seq_len = seq_len or (TITLED_SEQ_LEN if titles is not None else SEQ_LEN)
    n = len(poems)
    inputs = torch.full((n, seq_len), vocab.pad_id, dtype=torch.long)
    targets = torch.full((n, seq_len), vocab.pad_id, dtype=torch.long)
    lengths = torch.empty(n, dtype=torch.long)
    for row, (poem, title) in enumerate(zip(poems, titles if titles is not None else [""] * n, strict=True)):
        prefix, ids = title_prefix(title, vocab), vocab.encode(poem)  # prefix: <START> [title <START>]
        k, m = len(ids), len(prefix)
        if m + k > seq_len:
            with_title = f" with a title of {m - 2}" if m > 1 else ""
            raise ValueError(f"poem of {k} characters{with_title} does not fit seq_len {seq_len}")
        inputs[row, : m + k] = torch.tensor(prefix + ids, dtype=torch.long)
        targets[row, m - 1 : m + k] = torch.tensor(ids + [vocab.eos_id], dtype=torch.long)
        lengths[row] = m + k
    return inputs, targets, lengths


def batch_indices(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    shuffle: bool = True,
    lengths: torch.Tensor | None = None,
    bucket: bool = False,
) -> list[torch.Tensor]:
    """Index lists for one epoch.

    Without `bucket`: a random permutation cut into batches (the assignment's order).
    With `bucket`: the permutation is cut into chunks of 50 batches, each chunk
    is sorted by length and cut into batches, and the batches are shuffled, so
    poems of similar length share a batch while the order stays random.
    """
    perm = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if not bucket or lengths is None:
        return list(perm.split(batch_size))
    chunk = batch_size * 50
    batches = []
    for part in perm.split(chunk):
        order = torch.argsort(lengths[part], stable=True)
        batches.extend(part[order].split(batch_size))
    if shuffle:
        shuffle_order = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffle_order]
    return batches


def make_batch(
    inputs: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor, idx: torch.Tensor, trim: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather one batch; with `trim`, cut the time axis to the batch's longest poem."""
    x, y = inputs[idx], targets[idx]
    if trim:
        t = int(lengths[idx].max())
        x, y = x[:, :t], y[:, :t]
    return x, y
