"""tangshi's training step against the same step with torch.nn.LSTM, alternating batch by batch in
one process, so that both see the same moments of a machine whose speed drifts.

    python scripts/step_pair.py [--data data/prepared/10000-seed0] [--threads 1]

The bench's shape (batch 128, bucketed batches, embedding and hidden 256, Adam lr 0.01, weight decay
1e-4, fp32): two warm-up steps each, then 20 timed steps each. Prints each kernel's median ms and
the per-batch ratio nn / tangshi (above 1: tangshi is faster).
"""

import argparse
import statistics
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
    ap.add_argument("--data", default="data/prepared/10000-seed0")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = Path(args.data)
    vocab = Vocab.load(d / "vocab.json")
    split = load_split(d, "train", vocab)
    order = batch_indices(len(split.inputs), 128, torch.Generator().manual_seed(0), lengths=split.lengths, bucket=True)[
        :12
    ]
    batches = [make_batch(split.inputs, split.targets, split.lengths, i) for i in order]
    steps = {}
    for impl in ("tangshi", "nn"):
        cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=256, hidden_dim=256)
        torch.manual_seed(0)
        model = PoetryLM(cfg, Runtime(impl=impl)).train()
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
        steps[impl] = TrainStep(model, opt, amp=False, mode="eager", batch_size=128)
        for x, y in batches[:2]:
            steps[impl](x, y)
    times = {k: [] for k in steps}
    for x, y in batches[2:] * 2:
        for k, step in steps.items():
            t0 = time.perf_counter()
            step(x, y)
            times[k].append(time.perf_counter() - t0)
    ratio = [a / b for a, b in zip(times["nn"], times["tangshi"])]
    print(
        f"tangshi {statistics.median(times['tangshi']) * 1e3:.0f} ms, "
        f"nn.LSTM {statistics.median(times['nn']) * 1e3:.0f} ms per step ({args.threads} thread(s), "
        f"medians of {len(ratio)}); nn / tangshi per batch: median "
        f"{statistics.median(ratio):.3f}, range {min(ratio):.2f}–{max(ratio):.2f}"
    )


if __name__ == "__main__":
    main()
