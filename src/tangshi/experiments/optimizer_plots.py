"""The plots of `tangshi experiment optimizers` (optimizers.py), drawn from the report's JSON alone:
the final comparison, the learning-rate sweeps and the size of each optimiser's step.
"""

from __future__ import annotations

import math

from tangshi.experiments.report import COLOURS, plain_log_ticks, pyplot


def plot_final(doc: dict, finals: list[dict], path, original_wd: float) -> None:
    """Dev perplexity over epochs of each final group: mean over its seeds, band = min–max; solid at
    the assignment's weight decay `original_wd`, dashed at 0."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for k, r in enumerate(finals):
        hists = [doc["runs"][n]["history"] for n in r["runs"] if not doc["runs"][n]["diverged"]]
        if not hists:
            continue
        n = min(len(h) for h in hists)
        ep = list(range(1, n + 1))
        vals = [[h[e]["dev_ppl"] for h in hists] for e in range(n)]
        style = "-" if r["wd"] == original_wd else "--"
        ax.plot(
            ep,
            [sum(v) / len(v) for v in vals],
            style,
            color=COLOURS[r["optimizer"]],
            marker="o^sDv*"[k % 6],  # a marker per group: curves that coincide (Adam wd 0, AdamW) stay visible
            ms=4,
            markevery=max(1, n // 8),
            lw=1.6 if style == "-" else 1.2,
            label=f"{r['optimizer']} lr {r['lr']:g}, wd {r['wd']:g}",
        )
        ax.fill_between(ep, [min(v) for v in vals], [max(v) for v in vals], color=COLOURS[r["optimizer"]], alpha=0.15)
    if not ax.lines:  # a partial report before any final run is finished
        ax.axis("off")
        ax.text(0.5, 0.5, "no final run is finished yet", ha="center", va="center", transform=ax.transAxes)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev perplexity")
    ax.set_yscale("log")
    ax.set_title(f"each optimiser at its best rate: mean of {doc['budget']['seeds']} seeds, band = min–max")
    ax.grid(alpha=0.3, which="both")
    plain_log_ticks(ax, "y")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SWEEP_CEILING = 2000.0  # a run worse than this (or diverged) is drawn at the top edge, not stretching the axis


def plot_sweep(doc: dict, path, ladder: tuple) -> None:
    """Best dev perplexity against the learning rate, one line per optimiser (log–log): each rung of
    its sweep is a point; a diverged run, or one worse than SWEEP_CEILING, is drawn as a triangle at
    the top edge so that it does not squash the curves that matter."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for opt in doc["grids"]:
        pts: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        for name in doc["grids"][opt].get("runs", []):
            rec = doc["runs"][name]
            lr = rec["spec"]["train"]["lr"]
            best = math.inf if rec["diverged"] or not rec["best"] else rec["best"]["dev_ppl"]
            (pts if best <= SWEEP_CEILING else off).append((lr, best))
        pts.sort()
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], "-o", color=COLOURS[opt], ms=5, label=opt)
        if off:
            ax.plot([x for x, _ in off], [SWEEP_CEILING] * len(off), "^", color=COLOURS[opt], ms=8, clip_on=False)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(top=SWEEP_CEILING)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("best dev perplexity")
    ax.grid(alpha=0.3, which="both")
    plain_log_ticks(ax, "y")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(
        f"learning-rate sweeps ({doc['budget']['sweep_epochs']} epochs, seed 0); ▲ at the top: diverged or "
        f"worse than {SWEEP_CEILING:g}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_updates(doc: dict, finals: list[dict], path, original_wd: float) -> None:
    """The root-mean-square update of each parameter per step, seed 0 of each final group at the
    assignment's weight decay `original_wd`, one panel per parameter."""
    plt = pyplot()
    rows = [r for r in finals if r["wd"] == original_wd]
    series = {}
    for r in rows:
        rec = doc["runs"][r["runs"][0]]
        pts = sorted((int(k), v["update_rms"]) for k, v in rec.get("probes", {}).items() if "update_rms" in v)
        if pts:
            series[r["optimizer"]] = (r["lr"], pts)
    params = sorted({p for _, pts in series.values() for p in pts[0][1]})
    if not params:  # a partial report before any final run is finished
        fig, ax = plt.subplots(figsize=(8, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no final run (seed 0) is finished yet: no update sizes to draw", ha="center", va="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    cols = min(3, len(params))
    nrow = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(4.2 * cols, 3.2 * nrow), squeeze=False, sharex=True)
    for ax, p in zip(axes.flat, params):
        for opt, (lr, pts) in series.items():
            xs = [s for s, v in pts if v.get(p, 0) > 0]
            ax.plot(xs, [v[p] for s, v in pts if v.get(p, 0) > 0], color=COLOURS[opt], lw=1, label=f"{opt} lr {lr:g}")
        ax.set_title(p, fontsize=9)
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        plain_log_ticks(ax, "x")
    for ax in axes.flat[len(params) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("RMS update per step")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), fontsize=8, bbox_to_anchor=(0.5, 0))
    fig.suptitle("the step each optimiser takes, per parameter (seed 0)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
