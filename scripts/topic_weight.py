"""How the default --topic weight was chosen: on dev titles 201–400 (the report, reports/titles.md, uses
titles 1–200), for each weight, the overlap ratio of `tangshi experiment titles` and the model's mean
log-probability per token of the poems it wrote (each read after its title).

    python scripts/topic_weight.py [WEIGHT ...]      (default 0 0.5 0.7 1; the bundled model)
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from tangshi.decode.search import mean_log_prob
from tangshi.experiments import titles as T
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint

DATA = Path("data/prepared/all-seed0")


def main(weights: list[float]) -> None:
    model, vocab, _ = load_checkpoint(bundled_model_path())
    pairs = T.chosen(DATA, vocab, 400)[200:]
    real = [p for _, p in pairs]
    pairings = [T.partners([T.shape(p) for p in real], seed) for seed in T.PAIR_SEEDS]
    for w in weights:
        written = T.write(model, vocab, pairs, True, w)
        f = T.fidelity(real, written, pairings)
        lp = statistics.mean(
            statistics.mean(mean_log_prob(model, vocab, ts, title)) for ts, (title, _) in zip(written, pairs)
        )
        print(f"--topic {w:g}: overlap {f['own']:.3f} / {f['random']:.3f} = {f['ratio']:.2f}x, mean log-prob {lp:.3f}")


if __name__ == "__main__":
    main([float(a) for a in sys.argv[1:]] or [0.0, 0.5, 0.7, 1.0])
