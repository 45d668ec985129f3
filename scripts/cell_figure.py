#!/usr/bin/env python3
"""Draws docs/lstm-cell.png: one LSTM step, forward in black, and the two paths the gradient takes
back to step t−1 in colour: through the cell state (δC_t ⊙ f_t, blue) and through h_{t−1} (every
gate's W_·hᵀ δz_t, orange), with ε_t, the gradient arriving at h_t from above (green), and the
derivative factors σ′ and tanh′ each δz picks up. Usage: python scripts/cell_figure.py [OUT.png]"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "docs/lstm-cell.png"
fig, ax = plt.subplots(figsize=(10, 5.6))
ax.set_xlim(0, 10)
ax.set_ylim(0, 6.2)
ax.axis("off")


def box(x, y, text, w=0.9, h=0.55, color="#f3eee2"):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=color, ec="#555"))
    ax.text(x, y, text, ha="center", va="center", fontsize=11)


def arrow(a, b, color="black", style="-|>", lw=1.4, rad=0.0, ls="-"):
    ax.add_patch(
        FancyArrowPatch(
            a,
            b,
            arrowstyle=style,
            mutation_scale=12,
            color=color,
            lw=lw,
            linestyle=ls,
            connectionstyle=f"arc3,rad={rad}",
        )
    )


ax.add_patch(FancyBboxPatch((1.6, 0.9), 6.8, 4.3, boxstyle="round,pad=0.1", fc="#fbf8f1", ec="#999"))
ax.text(8.3, 1.05, "step t", ha="right", fontsize=10, color="#777")
# inputs
ax.text(0.5, 4.6, "$C_{t-1}$", fontsize=13, ha="center")
ax.text(0.5, 1.6, "$h_{t-1}$", fontsize=13, ha="center")
ax.text(3.0, 0.25, "$x_t$", fontsize=13, ha="center")
ax.text(9.5, 4.6, "$C_t$", fontsize=13, ha="center")
ax.text(9.5, 1.6, "$h_t$", fontsize=13, ha="center")
# the gates
for x, g in ((2.6, "$f_t=\\sigma$"), (3.8, "$i_t=\\sigma$"), (5.0, "$\\tilde c_t=\\tanh$"), (6.2, "$o_t=\\sigma$")):
    box(x, 2.3, g, w=1.05)
    arrow((x, 1.6), (x, 2.0))
ax.plot([0.9, 6.2], [1.6, 1.6], color="black", lw=1.4)
arrow((3.0, 0.45), (3.0, 1.55), style="-")
ax.text(4.4, 1.25, "$z_t = W_{\\cdot h} h_{t-1} + W_{\\cdot x} x_t + b_\\cdot$  (eq 2)", fontsize=9, color="#555")
# the cell line
box(2.6, 4.6, "$\\odot$", w=0.5)
box(5.0, 4.6, "$+$", w=0.5)
box(5.0, 3.5, "$\\odot$", w=0.5)
box(7.4, 3.5, "tanh", w=0.7)
box(7.4, 2.3, "$\\odot$", w=0.5)
arrow((0.9, 4.6), (2.35, 4.6))
arrow((2.85, 4.6), (4.75, 4.6))
arrow((5.25, 4.6), (9.1, 4.6))
arrow((2.6, 2.58), (2.6, 4.35))
arrow((3.8, 2.58), (4.8, 3.35))
arrow((5.0, 2.58), (5.0, 3.25))
arrow((5.0, 3.75), (5.0, 4.35))
arrow((7.4, 4.6), (7.4, 3.75))
arrow((7.4, 3.25), (7.4, 2.55))
arrow((6.72, 2.3), (7.15, 2.3))
arrow((7.4, 2.05), (7.4, 1.6), style="-")
arrow((7.4, 1.6), (9.1, 1.6))
ax.text(6.6, 4.85, "$C_t = f_t \\odot C_{t-1} + i_t \\odot \\tilde c_t$  (eq 4)", fontsize=9, color="#555")
ax.text(7.6, 1.8, "$h_t = o_t \\odot \\tanh C_t$  (eq 5)", fontsize=9, color="#555")
# backward paths
arrow((9.1, 5.55), (0.9, 5.55), color="#1f6fb4", lw=2.2)
ax.text(
    5.0,
    5.75,
    "cell-state path: $\\delta C_{t-1} {+}{=} \\delta C_t \\odot f_t$  (eq 12) — the assignment dropped it",
    ha="center",
    fontsize=10,
    color="#1f6fb4",
)
arrow((7.4, 1.0), (0.9, 1.0), color="#d9730d", lw=2.2)
ax.text(
    5.6,
    0.68,
    "through $h_{t-1}$: $\\delta h_{t-1} {+}{=} \\sum_g W_{gh}^\\top\\, \\delta z_{g,t}$  (eq 10)",
    ha="center",
    fontsize=10,
    color="#d9730d",
)
# from above: the output layer's (or the layer above's) share of δh_t
arrow((9.5, 3.1), (9.5, 1.85), color="#2e8b57", lw=2.0)
ax.text(9.55, 3.25, "$\\varepsilon_t = W_{head}^\\top \\delta s_t$", fontsize=10, color="#2e8b57", ha="center")
ax.text(9.55, 2.95, "(from above)", fontsize=8, color="#2e8b57", ha="center")
# the derivative factors, at each gate's pre-activation
for x, d in ((2.6, "$\\sigma'$"), (3.8, "$\\sigma'$"), (5.0, "$\\tanh'$"), (6.2, "$\\sigma'$")):
    ax.text(x + 0.42, 1.88, d, fontsize=8, color="#d9730d")
ax.text(
    2.0,
    0.05,
    "each $\\delta z_{g,t}$ carries its gate's $\\sigma' = \\sigma(1-\\sigma) \\leq \\frac{1}{4}$ "
    "(or $\\tanh' \\leq 1$): eqs (11)–(15)",
    fontsize=9,
    color="#d9730d",
)
fig.tight_layout()
fig.savefig(OUT, dpi=110)
print("wrote", OUT)
