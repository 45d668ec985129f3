"""Poems → (input, target) id tensors, padding, and batch order.

input  = <START> c_1 … c_n            padded with <PAD> to SEQ_LEN
target = c_1 … c_n <EOS>              padded with <PAD> to SEQ_LEN

Batches can be length-bucketed: each batch is cut to its longest poem instead
of always 64 steps, which is exact (PAD targets carry no loss and a causal LSTM
never looks right) and saves the time steps of padding.
"""

from __future__ import annotations

import torch

from tangshi.data.vocab import Vocab

SEQ_LEN = 64  # the assignment's sequence length: <START> + 63 characters


def encode_poems(
    poems: list[str], vocab: Vocab, seq_len: int = SEQ_LEN
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return inputs (N, seq_len), targets (N, seq_len) as int64 and lengths (N,).

    `lengths` counts the real target tokens of each poem (its characters + <EOS>).
    """
    n = len(poems)
    inputs = torch.full((n, seq_len), vocab.pad_id, dtype=torch.long)
    targets = torch.full((n, seq_len), vocab.pad_id, dtype=torch.long)
    lengths = torch.empty(n, dtype=torch.long)
    for row, poem in enumerate(poems):
        ids = vocab.encode(poem)
        if len(ids) + 1 > seq_len:
            raise ValueError(f"poem of {len(ids)} characters does not fit seq_len {seq_len}")
        k = len(ids)
        inputs[row, 0] = vocab.start_id
        inputs[row, 1 : k + 1] = torch.tensor(ids, dtype=torch.long)
        targets[row, :k] = torch.tensor(ids, dtype=torch.long)
        targets[row, k] = vocab.eos_id
        lengths[row] = k + 1
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
