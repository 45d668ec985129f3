"""Where one 七言律诗's decoding time goes: median wall time over 9 poems, then a cProfile table
of 5 more, for each precision. One thread, the bundled model, sampling (temperature 0.8, top-p 0.9).

    python scripts/profile_decoding.py [--precision fp32 int8] [--rows 12]
"""

import argparse
import cProfile
import io
import pstats
import time

import torch

from tangshi.decode.poems import write_poems
from tangshi.decode.search import DecodeOptions
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, vocab, _ = load_checkpoint(bundled_model_path())
    for prec in args.precision:
        opts = DecodeOptions(strategy="sample", temperature=0.8, top_p=0.9, seed=0, precision=prec)
        poem = lambda: write_poems(model, vocab, opts, n=1, form="qilv")
        for _ in range(2):
            poem()
        times = []
        for _ in range(9):
            t0 = time.perf_counter()
            poem()
            times.append((time.perf_counter() - t0) * 1e3)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            poem()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.rows)
        print(f"## {prec}: median {sorted(times)[4]:.1f} ms per 七言律诗 (min {min(times):.1f}, max {max(times):.1f})")
        print("\n".join(l for l in out.getvalue().splitlines() if l.strip() and not l.startswith("   Ordered")))
        print()


if __name__ == "__main__":
    main()
