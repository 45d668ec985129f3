"""Time one poem at a time, as `tangshi bench`'s gen_qilv row does, many times: the median, the
fastest and the slowest of N poems after three warm-up ones (one thread, the bundled model).

    python scripts/poems_loop.py [N] [--form qilv]
"""

import argparse
import time

import torch

from tangshi.decode.poems import write_poems
from tangshi.decode.search import DecodeOptions
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=100)
    ap.add_argument("--form", default="qilv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, vocab, _ = load_checkpoint(bundled_model_path())
    opts = DecodeOptions(strategy="sample", temperature=0.8, top_p=0.9, seed=0)
    for _ in range(3):
        write_poems(model, vocab, opts, n=1, form=args.form)
    ts = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        write_poems(model, vocab, opts, n=1, form=args.form)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    print(
        f"median {ts[len(ts) // 2] * 1e3:.1f} ms min {ts[0] * 1e3:.1f} max {ts[-1] * 1e3:.1f} "
        f"({args.n} poems, {args.form})"
    )


if __name__ == "__main__":
    main()
