"""Minor page faults and wall time per training step at the bench's shape (batch 128, bucketed
batches of the 10k split, 256/256, Adam), one thread: how much fresh memory a step touches.

    python scripts/step_faults.py [tangshi|nn|seed] [--data data/prepared/10000-seed0]
"""

import argparse
import resource
import time
from pathlib import Path

import torch

from tangshi.data.batches import batch_indices, make_batch
from tangshi.data.splits import load_split
from tangshi.data.vocab import Vocab
from tangshi.model.lm import ModelConfig, PoetryLM, Runtime
from tangshi.train.graph_step import TrainStep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("impl", nargs="?", default="tangshi", choices=["tangshi", "nn", "seed"])
    ap.add_argument("--data", default="data/prepared/10000-seed0")
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = Path(args.data)
    vocab = Vocab.load(d / "vocab.json")
    split = load_split(d, "train", vocab)
    idx = batch_indices(len(split.inputs), 128, torch.Generator().manual_seed(0), lengths=split.lengths, bucket=True)[
        :12
    ]
    batches = [make_batch(split.inputs, split.targets, split.lengths, i) for i in idx]
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=256, hidden_dim=256)
    model = PoetryLM(cfg, Runtime(impl=args.impl)).train()
    step = TrainStep(
        model, torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4), amp=False, mode="eager", batch_size=128
    )
    for x, y in batches[:4]:  # warm-up: the allocator's thresholds settle
        step(x, y)
    f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for x, y in batches[4:]:
        step(x, y)
    n = len(batches) - 4
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n
    print(f"{args.impl}: {faults:,.0f} minor page faults and {(time.perf_counter() - t0) / n * 1e3:.0f} ms per step")


if __name__ == "__main__":
    main()
