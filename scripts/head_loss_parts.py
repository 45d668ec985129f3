"""The training loss's output layer (`HeadNLL`) at the bench's shape, its elementwise work compiled
(csrc/head_nll.c) against the same equations as PyTorch ops, alternating in one process.

    python scripts/head_loss_parts.py [--threads 1] [--rounds 10]

N = 5,903 real positions (a median bucketed batch of the 10k split), H = 256, V = 5,359.
Prints the median forward and forward + backward time of each path.
"""

import argparse
import statistics
import time

import torch

from tangshi.model import kernels
from tangshi.model.head_loss import HeadNLL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ks = kernels.detect()
    if not ks.compiled:
        raise SystemExit(f"the compiled kernels are not built here: {ks.why}")
    torch.manual_seed(0)
    N, H, V = 5903, 256, 5359
    h = (torch.randn(N, H) * 0.5).requires_grad_()
    w = (torch.randn(V, H) * 0.05).requires_grad_()
    b = torch.zeros(V, requires_grad=True)
    t = torch.randint(0, V, (N,))
    fwd, both = {True: [], False: []}, {True: [], False: []}
    for i in range(args.rounds + 2):
        for compiled in (True, False):
            t0 = time.perf_counter()
            loss = HeadNLL.apply(h, w, b, t, False, ks.lib if compiled else None)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            if i >= 2:  # two warm-up rounds
                fwd[compiled].append(t1 - t0)
                both[compiled].append(t2 - t0)
    for compiled in (True, False):
        print(
            f"{'compiled (csrc/head_nll.c)' if compiled else 'PyTorch ops':27s} forward "
            f"{statistics.median(fwd[compiled]) * 1e3:5.0f} ms, forward + backward "
            f"{statistics.median(both[compiled]) * 1e3:5.0f} ms ({args.threads} thread(s), median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
