"""Where one 七言律诗's decoding time goes, each part timed inside the loop (not alone), and what the
output layer's product does to the calls that follow it. One thread, the bundled model, sampling.

    python scripts/decode_parts.py [--poems 20] [--precision int8|fp32]

Part 1 wraps `PoetryLM.step`, the products inside it, the gate arithmetic, sampling (`_choose`) and
the constraint's `mask`/`advance` with timers and decodes `--poems` poems after 3 warm-up ones.
Part 2 times the gate arithmetic and one h weight_hh product alone, then each right after the output
layer's product (or a 3.5 MB fill), which streams through L2 first.
"""

import argparse
import collections
import functools
import time

import torch

import tangshi.decode.search as G
import tangshi.model.lm as M
import tangshi.model.step_weights as SW
from tangshi.decode.poems import write_poems
from tangshi.decode.search import DecodeOptions
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint

TOTAL, CALLS = collections.Counter(), collections.Counter()


def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TOTAL[name] += time.perf_counter() - t0
            CALLS[name] += 1

    return wrapper


def in_the_loop(model, vocab, precision: str, poems: int) -> None:
    G._choose = timed("sampling (_choose)", G._choose)
    M.PoetryLM.step = timed("PoetryLM.step", M.PoetryLM.step)
    M.cell = timed("  gate arithmetic (cell)", M.cell)
    SW.StepWeights.token_gates = timed("  x weight_ih + b (token_gates)", SW.StepWeights.token_gates)
    SW.StepWeights.hidden_gates = timed("  h weight_hh alone (hidden_gates)", SW.StepWeights.hidden_gates)
    SW.StepWeights.logits_and_next = timed("  the head (logits_and_next)", SW.StepWeights.logits_and_next)
    SW.StepWeights.cell_and_head = timed(
        "  gate arithmetic + the head, one call (cell_and_head)", SW.StepWeights.cell_and_head
    )
    decode_batch = G._decode_batch

    def wrapped(model, vocab, n, opts, c, device, gen):
        if not getattr(c, "_timed", False):  # a form's constraint is built once and reused
            c._timed = True
            c.mask, c.advance = timed("constraint mask", c.mask), timed("constraint advance", c.advance)
        return decode_batch(model, vocab, n, opts, c, device, gen)

    G._decode_batch = wrapped
    for i in range(3):
        write_poems(
            model,
            vocab,
            DecodeOptions(strategy="sample", temperature=0.8, top_p=0.9, seed=i, precision=precision),
            n=1,
            form="qilv",
        )
    TOTAL.clear()
    CALLS.clear()
    t0 = time.perf_counter()
    for i in range(poems):
        write_poems(
            model,
            vocab,
            DecodeOptions(strategy="sample", temperature=0.8, top_p=0.9, seed=100 + i, precision=precision),
            n=1,
            form="qilv",
        )
    whole = (time.perf_counter() - t0) / poems * 1e3
    print(f"## {precision}: {whole:.1f} ms per 七言律诗 over {poems} poems, each part timed inside the loop")
    print("| part | ms per poem | calls per poem | µs per call |\n|---|---|---|---|")
    for name in TOTAL:
        print(
            f"| {name} | {TOTAL[name] / poems * 1e3:.2f} | {CALLS[name] / poems:.1f} | "
            f"{TOTAL[name] / CALLS[name] * 1e6:.1f} |"
        )
    G._decode_batch = decode_batch


def after_the_head(model) -> None:
    w = SW.step_weights(model, "int8")
    H = model.config.hidden_dim
    h, c, xz = torch.randn(1, H) * 0.3, torch.randn(1, H), torch.randn(1, 4 * H)
    head, hh = w.packed[-1], w.packed[0][1]
    fill = torch.empty(3_500_000, dtype=torch.uint8)

    def per_call(fn, before=None, n=500):
        total = 0.0
        for i in range(n + 20):
            if before:
                before()
            t0 = time.perf_counter()
            fn()
            if i >= 20:
                total += time.perf_counter() - t0
        return total / n * 1e6

    gates = lambda: SW.cell(torch.randn(1, 4 * H), xz, c)  # noqa: E731
    product = lambda: hh(h)  # noqa: E731
    print("\n## alone, and right after the output layer's product (µs per call)")
    print("| call | alone | after the head | after a 3.5 MB fill |\n|---|---|---|---|")
    for name, fn in (("gate arithmetic (stepweights.cell)", gates), ("h weight_hh, int8 (1 MB)", product)):
        print(
            f"| {name} | {per_call(fn):.1f} | {per_call(fn, lambda: head(h)):.1f} | "
            f"{per_call(fn, lambda: fill.fill_(1)):.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poems", type=int, default=20)
    ap.add_argument("--precision", default="int8", choices=["fp32", "int8"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, vocab, _ = load_checkpoint(bundled_model_path())
    in_the_loop(model, vocab, args.precision, args.poems)
    after_the_head(model)


if __name__ == "__main__":
    main()
