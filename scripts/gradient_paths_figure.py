#!/usr/bin/env python3
"""Draws docs/gradient-paths.png: how far a gradient travels back along each path of the LSTM, on
random matrices (H = 64, seed 0). Left, the path through h_{t−1} alone: each step multiplies δh by
W_ghᵀ diag(σ′(z)), so its size changes by about ρ·σ̄′ per step (ρ the scale of W_gh, σ̄′ ≈ 0.2 for
σ′ of pre-activations N(0, 1)): it vanishes for ρ·σ̄′ < 1 and explodes above. Right, the cell-state
path: each step multiplies δC by f (element-wise), so it keeps f^k after k steps: a forget gate near
1 carries the gradient far. Usage: python scripts/gradient_paths_figure.py [OUT.png]"""

import sys

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "docs/gradient-paths.png"
H, K = 64, 40
rng = np.random.default_rng(0)


def sigma_prime(z):
    sig = 1 / (1 + np.exp(-z))
    return sig * (1 - sig)


fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for rho, color in ((2, "#888"), (4, "#1f77b4"), (5, "#2ca02c"), (8, "#d62728"), (16, "#9467bd")):
    W = rng.normal(0, rho / np.sqrt(H), (H, H))  # spectral radius about rho
    d = rng.normal(0, 1, (H, 1))
    norms = [1.0]
    delta = d / np.linalg.norm(d)
    for _ in range(K):
        delta = W.T @ (delta * sigma_prime(rng.normal(0, 1, (H, 1))))  # one step back along the h-path
        norms.append(float(np.linalg.norm(delta)))
    left.semilogy(range(K + 1), norms, color=color, label=f"$W_{{gh}}$ scale $\\rho$ = {rho}")
left.axhline(1.0, color="#bbb", lw=0.8)
left.set_title("through $h_{t-1}$ only: $\\prod W_{gh}^\\top\\,\\mathrm{diag}(\\sigma')$", fontsize=11)
left.set_xlabel("steps back k")
left.set_ylabel("$\\|\\delta\\|$ after k steps / at the start")
left.legend(fontsize=8, loc="lower left")
for f, color in ((0.5, "#d62728"), (0.8, "#ff7f0e"), (0.95, "#2ca02c"), (0.99, "#1f77b4")):
    right.semilogy(range(K + 1), [f**k for k in range(K + 1)], color=color, label=f"forget gate f = {f}")
right.axhline(1.0, color="#bbb", lw=0.8)
right.set_title("the cell-state path: $\\prod f_t$ (eq 12)", fontsize=11)
right.set_xlabel("steps back k")
right.legend(fontsize=8, loc="lower left")
fig.tight_layout()
fig.savefig(OUT, dpi=110)
print(f"wrote {OUT}")
