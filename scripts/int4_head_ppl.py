"""What a 4-bit output layer would cost the bundled model: dev perplexity (the training forward,
fp32) with the output layer's weights fake-quantised (rounded to b bits, symmetric, one scale per group
of g weights along a row, then used in fp32; a tied embedding keeps its fp32 values as the input
side), against the model as it is.

    python scripts/int4_head_ppl.py [--source ../shared/chinese-poetry/quantangshi]

Prints one line per setting: int8 per row (what int8 decoding stores), int4 per row, per 64, per 32.
"""

import argparse
from pathlib import Path

import torch

from tangshi.model.bundled import bundled_model_path, rebuild_dev_split
from tangshi.model.checkpoint import load_checkpoint
from tangshi.train.evaluate import evaluate


def fake_quant(w: torch.Tensor, group: int, bits: int) -> torch.Tensor:
    qmax = 2 ** (bits - 1) - 1
    V, K = w.shape
    wg = w.reshape(V, K // group, group)
    scale = (wg.abs().amax(-1, keepdim=True) / qmax).clamp_min(1e-12)
    return (torch.round(wg / scale).clamp(-qmax, qmax) * scale).reshape(V, K)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="../shared/chinese-poetry/quantangshi")
    args = ap.parse_args()
    model, vocab, meta = load_checkpoint(bundled_model_path())
    split = rebuild_dev_split(meta, vocab, source=Path(args.source))
    print(f"fp32: dev perplexity {evaluate(model, split)['dev_ppl']:.3f}", flush=True)
    w0, b = model.head.weight.detach().clone(), model.head.bias.detach()
    relu = model.config.relu_logits
    K = w0.shape[1]
    for bits, group in ((8, K), (4, K), (4, 64), (4, 32)):
        wq = fake_quant(w0, group, bits)
        # the output layer only: with tied weights the embedding stays as it is (decoding reads it in fp32)
        model.logits = lambda h, wq=wq: (lambda s: s.relu() if relu else s)(
            torch.nn.functional.linear(h, wq, b).float()
        )
        where = "per row" if group == K else f"per {group} weights"
        print(f"int{bits} head, one scale {where}: dev perplexity {evaluate(model, split)['dev_ppl']:.3f}", flush=True)


if __name__ == "__main__":
    main()
