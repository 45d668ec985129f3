"""torch.profiler tables of one LSTM layer, forward + backward, at the bench's shape
(batch 128, 64 steps, 256 → 256, fp32): tangshi's kernel (hand-written BPTT) and torch.nn.LSTM.

    python scripts/profile_layer.py [--threads 1] [--rows 12]
"""

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from tangshi.model.kernels import detect
from tangshi.model.recurrence import OriginalLSTMLayer

B, T, E, H = 128, 64, 256, 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(B, T, E, requires_grad=True)
    ours = OriginalLSTMLayer(E, H)
    for p in ours.parameters():
        torch.nn.init.uniform_(p, -0.1, 0.1)
    nn_lstm = torch.nn.LSTM(E, H, batch_first=True)
    runs = {
        "tangshi": lambda: ours(x, mode="fused", lib=detect().on(x.device))[0].sum().backward(),
        "nn.LSTM": lambda: nn_lstm(x)[0].sum().backward(),
    }
    for name, fn in runs.items():
        for _ in range(3):
            fn()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                fn()
        print(f"## {name}: median {sorted(times)[2]:.1f} ms per forward + backward ({args.threads} thread(s))")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
