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
    for r in finals:
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
            marker=".",
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


def plot_sweep(doc: dict, path, ladder: tuple) -> None:
    """Dev perplexity over epochs of every sweep run, one panel per optimiser; each rung of the
    learning-rate `ladder` has its own line style and marker."""
    plt = pyplot()
    opts = list(doc["grids"])
    fig, axes = plt.subplots(1, len(opts), figsize=(3.6 * len(opts), 4.2), sharey=True, squeeze=False)
    for ax, opt in zip(axes[0], opts):
        for name in doc["grids"][opt].get("runs", []):
            rec = doc["runs"][name]
            h = [x for x in rec["history"] if math.isfinite(x["dev_ppl"])]
            lr = rec["spec"]["train"]["lr"]
            k = ladder.index(lr) if lr in ladder else 0  # each rung its own line style and marker, in every panel
            ax.plot(
                [x["epoch"] for x in h],
                [x["dev_ppl"] for x in h],
                linestyle=("-", "--", ":", "-.")[k % 4],
                color=COLOURS[opt],
                marker="os^"[k % 3],
                ms=4,
                label=f"lr {lr:g}" + (" (diverged)" if rec["diverged"] else ""),
            )
        ax.set_title(opt)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        plain_log_ticks(ax, "y")
        if ax.lines:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, ncol=2)
    axes[0][0].set_ylabel("dev perplexity")
    fig.suptitle(f"learning-rate sweeps ({doc['budget']['sweep_epochs']} epochs, seed 0)")
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
