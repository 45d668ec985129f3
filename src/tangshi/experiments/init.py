"""`tangshi experiment init`: the assignment's Part 5 (why all-zero weights fail and Xavier works),
with arms that tell "symmetric" from "stuck".

Five initialisations: zeros; a constant 0.01 (every unit the same, but not zero: symmetric, not
stuck); U(±1e-4), the assignment's NumPy init; Xavier, the assignment's PyTorch init; PyTorch's defaults.
Each is trained with the assignment's recipe (Adam 0.01, weight decay 1e-4, no ReLU) for `epochs`,
and for `variant_epochs` with the assignment's ReLU on the logits. Every run records distinct hidden
units, the gradient norm of each parameter and how far each parameter moved, over steps. The
verdicts are computed from those numbers (init_verdicts.py). The second part (init_extended.py):
the step-0 mechanism, and seeds 0–2 of the arms a verdict rests on with the per-tensor arms.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tangshi.data.prepare import require_prepared
from tangshi.experiments import init_extended
from tangshi.experiments.init_verdicts import LABELS, n_epochs, pick, variant_name, verdicts
from tangshi.experiments.report import (
    COLOURS,
    adopt_report,
    data_meta,
    header_fields,
    plain_log_ticks,
    pyplot,
    render_header,
    replot_report,
    stage_report,
    trained_line,
    unigram_perplexity,
)
from tangshi.experiments.study import SYMMETRY_TOL, RunSpec, Study
from tangshi.model.spec import STUDY_INITS
from tangshi.outputs import OutputFolder

ARMS = ("zeros", "constant", "uniform1e-4", "xavier", "torch")
# the first: the assignment's recipe; the second, its ReLU on the logits. Plain SGD (lr 1, 5 epochs,
# untuned) was a variant until its claims were found to rest on a rate no one tuned: dropped.
VARIANTS = (("adam", False), ("adam", True))
LR = {"adam": 0.01}  # the assignment's
NAMES = {
    "md": "init.md",
    "json": "init.json",
    "curves": "init_curves.png",
    "step0": "init_step0.png",
    "grads": "init_grads.png",
}
FORMAT = "tangshi-init/2"
TRAINS = 0.95  # a run "trains" when its best dev perplexity is more than 5% below the unigram perplexity


@dataclass(frozen=True)
class Budget:
    epochs: int = 20  # the five arms with the assignment's recipe
    variant_epochs: int = 5  # the assignment's ReLU
    batch_size: int = 128
    model: dict = field(default_factory=dict)


QUICK = Budget(epochs=2, variant_epochs=1, batch_size=16, model=dict(embed_dim=16, hidden_dim=16))


def names_for(backend: str) -> dict:
    return NAMES if backend == "torch" else {k: v.replace("init", f"init-{backend}", 1) for k, v in NAMES.items()}


def specs(b: Budget, backend: str) -> list[RunSpec]:
    out = []
    for k, (opt, relu) in enumerate(VARIANTS):
        if relu and backend == "numpy":
            continue
        epochs = b.epochs if k == 0 else b.variant_epochs
        for arm in ARMS:
            train = dict(
                epochs=epochs,
                optimizer=opt,
                lr=LR[opt],
                weight_decay=1e-4,
                momentum=0.0,
                seed=0,
                batch_size=b.batch_size,
                backend=backend,
                amp=False,
            )
            model = {**b.model, "init": arm, "relu_logits": relu}
            out.append(
                RunSpec(f"{arm}-{opt}{'-relu' if relu else ''}-e{epochs}", model, train, ("symmetry", "grads", "moved"))
            )
    return out


# The arms the mechanism rests on, each with 3 seeds: which tensor's init explains PyTorch's lead
# (the embedding N(0,1), ~50× Xavier's std on a 5,359×256 table) and whether Xavier's fails; and
# two one-seed arms on gates (a forget-gate bias of 1, orthogonal W_hh). Trained under the same work
# folder as the five arms above (seed 0 runs keep their names).
SEEDED_ARMS = ("torch", "xavier", "uniform1e-4", "xavier_normal_embed", "torch_xavier_embed")
GATE_ARMS = ("xavier_forget1", "xavier_orthogonal")
SEEDS = (0, 1, 2)


def extended_specs(b: Budget, backend: str = "torch") -> list[RunSpec]:
    """The assignment's recipe (Adam 0.01, wd 1e-4, no ReLU, `b.epochs`) for the seeded and gate
    arms, seed 0 of every arm first, so the runs a verdict needs first finish first."""
    out = []
    for seed in SEEDS:
        for arm in SEEDED_ARMS + (GATE_ARMS if seed == 0 else ()):
            train = dict(
                epochs=b.epochs,
                optimizer="adam",
                lr=LR["adam"],
                weight_decay=1e-4,
                momentum=0.0,
                seed=seed,
                batch_size=b.batch_size,
                backend=backend,
                amp=False,
            )
            name = f"{arm}-adam-e{b.epochs}" + (f"-s{seed}" if seed else "")
            out.append(
                RunSpec(name, {**b.model, "init": arm, "relu_logits": False}, train, ("symmetry", "grads", "moved"))
            )
    return out


def run_study(
    data_dir: Path,
    out: Path,
    budget: Budget = Budget(),
    backend: str = "torch",
    argv: list[str] | None = None,
    work: Path | None = None,
    jobs: int = 1,
    threads: int | None = None,
    log=print,
    replace: bool = False,
    partial: bool = False,
    adopt: Path | None = None,
) -> dict:
    """Train the runs not yet recorded and write the report; with `partial`, train nothing and
    report the runs finished so far; `adopt`: first take the runs an earlier report's JSON holds."""
    data_dir, out = require_prepared(data_dir), Path(out)  # fail before creating anything
    names = names_for(backend)
    with OutputFolder(out, "reports", replace=replace, names=list(names.values()), sources=[data_dir]) as folder:
        first = specs(budget, backend)
        plan = first + [s for s in extended_specs(budget, backend) if s.name not in {f.name for f in first}]
        header = header_fields(argv)
        assert work is not None, "run_study needs its work folder (the CLI passes default_work(...))"
        study = Study(work, data_dir, jobs=jobs, threads=threads, log=log, commit=header["commit"])
        if not partial:  # read only with partial: a study that is still training holds the work folder's lock
            with study:
                adopt_report(study, adopt, FORMAT, lambda: plan)
                missing = [s for s in plan if study.recorded(s) is None]
                if missing:
                    log(f"training {len(missing)} run(s), {study.jobs} at a time")
                study.run(plan)
        recorded = {s.name: study.recorded(s) for s in plan}
        header["trained"] = trained_line([study.trained(n) for n, r in recorded.items() if r is not None])
        doc = {
            "format": FORMAT,
            "backend": backend,
            "header": header,
            "data": str(data_dir),
            "data_meta": data_meta(data_dir),
            "budget": asdict(budget),
            "unigram_ppl": unigram_perplexity(data_dir),
            "runs": {n: r for n, r in recorded.items() if r is not None},
            "missing": [n for n, r in recorded.items() if r is None],
            "mechanism": init_extended.mechanism(data_dir, (*ARMS, *STUDY_INITS), budget.model),
        }
        write_report(folder, doc, names)
    return {"doc": doc, "report": str(folder.path / names["md"])}


def replot(out: Path, backend: str = "torch") -> dict:
    return replot_report(out, names_for(backend), FORMAT, write_report)


def write_report(folder: OutputFolder, doc: dict, names: dict, rendered_again: bool = False) -> None:
    table = facts(doc)
    stage_report(
        folder,
        doc,
        names,
        {
            "curves": lambda p: _plot_curves(doc, table, p),
            "step0": lambda p: init_extended.plot_step0(doc, p),
            "grads": lambda p: _plot_grads(doc, table, p),
        },
        render(doc, table, names, rendered_again),
        rendered_again,
    )


# ---------------------------------------------------------------------------- the numbers
def facts(doc: dict) -> list[dict]:
    """One row per run of the first part (the five arms, seed 0): what its probes and history say."""
    rows = []
    for name, rec in doc["runs"].items():
        spec = rec["spec"]
        if spec["model"]["init"] not in ARMS or spec["train"].get("seed", 0) != 0:
            continue  # the second part's (init_extended.py)
        probes = {int(k): v for k, v in rec["probes"].items()}
        units = {s: v["distinct_units"] for s, v in sorted(probes.items()) if "distinct_units" in v}
        last = max(probes) if probes else 0
        moved = probes.get(last, {}).get("moved", {})
        step1 = probes.get(1, {}).get("grad_norms", {})
        best = math.inf if rec["diverged"] else rec["best"]["dev_ppl"]
        rows.append(
            {
                "name": name,
                "arm": spec["model"]["init"],
                "optimizer": spec["train"]["optimizer"],
                "relu": spec["model"]["relu_logits"],
                "epochs": spec["train"]["epochs"],
                "best": best,
                "best_epoch": rec["best"]["epoch"] if rec["best"] else None,
                "units": units,
                "units_end": units[max(units)] if units else None,
                "moved": moved,
                "step1": step1,
                "still": sorted(k for k, v in moved.items() if v == 0),
                "diverged": rec["diverged"],
                "trains": best < TRAINS * doc["unigram_ppl"],
                "wall_s": rec["wall_s"],
            }
        )
    return rows


# ---------------------------------------------------------------------------- the report
def bottom_line(doc: dict, table: list[dict]) -> list[str]:
    """Three sentences for a reader in a hurry, from the numbers, scoped to the seeds and budget."""
    main = pick(table)  # the assignment's recipe, by arm
    random = sorted((r for a, r in main.items() if a not in ("zeros", "constant")), key=lambda r: r["best"])
    if not random:
        return []
    seeds = sorted({doc["runs"][r["name"]]["spec"]["train"].get("seed", 0) for r in main.values()})
    order = " < ".join(f"{LABELS[r['arm']]} {r['best']:.2f}" for r in random)
    last = sum(r["best_epoch"] == r["epochs"] for r in random)
    zeros = main.get("zeros")
    first = (
        f"With all-zero weights only the output bias moves, so the model learns character frequencies and "
        f"nothing else (best dev perplexity {zeros['best']:.2f}; the unigram's is {doc['unigram_ppl']:.2f}). "
        if zeros
        else ""
    )
    recipe = f"With the assignment's recipe ({random[0]['epochs']} epochs, Adam 0.01"
    still = f"{last} of {len(random)} were still improving at their last epoch"
    if any(len(r) > 1 for r in init_extended.seeded(doc, doc["budget"]["epochs"]).values()):
        seeds_run = init_extended.bottom(doc, f"{recipe}), over", f"; on seed 0, {still}")
        return [f"**Bottom line.** {first}{seeds_run}", ""]
    swapped = init_extended.bottom(doc)  # one seed: what swapping the embedding's init did, if run
    return [
        f"**Bottom line.** {first}{recipe}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}), "
        f"the random inits rank {order} (best dev perplexity), and {still}."
        " One seed: a ranking, not yet a verdict; the study's reruns (3 seeds, and arms that change only "
        "the embedding's init) test what the lead comes from." + (f" {swapped}" if swapped else ""),
        "",
    ]


def render(doc: dict, table: list[dict], names: dict, rendered_again: bool = False) -> str:
    b = doc["budget"]
    model = (
        "the tiny model of --quick " + json.dumps(b["model"])
        if b["model"]
        else "the assignment's model (embedding 256, 1×LSTM 256, PAD masked)"
    )
    lines = [
        render_header(
            f"Initialisation: zeros, constant, U(±1e-4), Xavier, PyTorch's default ({doc['backend']} backend)",
            doc["header"],
            rendered_again,
        ),
        "",
    ]
    lines += bottom_line(doc, table)
    if doc.get("missing"):
        lines.append(
            f"> **Incomplete** (`--partial`): {len(doc['runs'])} of {len(doc['runs']) + len(doc['missing'])} "
            f"runs are finished; still to train: {', '.join(doc['missing'])}. Every number and verdict below "
            "uses the finished runs only; the same command without `--partial` continues the study.\n"
        )
    lines.append(
        f"Data: `{doc['data']}` ({doc['data_meta']}). Every run: {model}, batch {b['batch_size']}, "
        "weight decay 1e-4, seed 0 unless its table names the seed; only the initialisation, the seed and the "
        "variant differ.\n"
    )
    lines.append(
        f"**Budget.** The assignment's recipe (Adam lr 0.01, no ReLU): **{b['epochs']} epochs** for each arm. "
        f"Variants, {n_epochs(b['variant_epochs'])} each (enough to show symmetry): "
        + (", ".join(variant_name(o, r) for o, r in _variants(table) if (o, r) != ("adam", False)) or "none")
        + " (the ReLU: the assignment's, on the logits)"
        + (" (the NumPy backend runs no ReLU variant)" if doc["backend"] == "numpy" else "")
        + ".\n"
    )
    lines.append(
        f"Distinct units = groups of hidden units whose weights (gate columns of weight_ih and weight_hh, row "
        f"of weight_hh, biases, head column) agree within {SYMMETRY_TOL:g}. Unigram perplexity of the dev "
        f"set (training-set character frequencies): **{doc['unigram_ppl']:.2f}**.\n"
    )
    lines += _runs_table(table)
    lines.append(_units_sentence(table))
    lines.append(f"\n![curves]({names['curves']})\n\n![gradient norms]({names['grads']})\n")
    lines += _step1_grads_table(table)
    lines.append("\n## Verdicts (computed from the numbers above)\n")
    said = verdicts(doc, table)
    lines += [v + init_extended.seed_order(doc) if v.startswith("3. ") else v for v in said]
    lines += init_extended.section(doc, names)
    return "\n".join(lines) + "\n"


def _runs_table(table: list[dict]) -> list[str]:
    """One row per run: its best dev perplexity, distinct units over steps, the parameters that never moved."""
    shown = (0, 1, 10, 100)
    lines = [
        "| init | variant | epochs | best dev ppl | distinct units at step "
        + " / ".join(map(str, shown))
        + " / the run's last step | parameters that never moved | wall s |"
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for r in table:
        u = " / ".join(str(r["units"].get(s, "-")) for s in shown) + f" / {r['units_end']}"
        best = "diverged" if r["diverged"] else f"{r['best']:.2f}"
        lines.append(
            f"| {LABELS[r['arm']]} | {variant_name(r['optimizer'], r['relu'])} | {r['epochs']} | {best} | "
            f"{u} | {', '.join(r['still']) or '-'} | {r['wall_s']:.0f} |"
        )
    return lines


def _units_sentence(table: list[dict]) -> str:
    """What the distinct-units column shows, in words (a plot of it drew flat lines)."""
    groups: dict[int | str, list[dict]] = {}
    for r in table:
        counts = set(r["units"].values())
        key = counts.pop() if len(counts) == 1 else "the count changes" if counts else "not recorded"
        groups.setdefault(key, []).append(r)
    parts = []
    for key, rows in sorted(groups.items(), key=lambda kv: (isinstance(kv[0], str), str(kv[0]).zfill(9))):
        names = ", ".join(sorted({f"{LABELS[r['arm']]} ({variant_name(r['optimizer'], r['relu'])})" for r in rows}))
        parts.append(f"{names}: " + (f"{key} at every recorded step" if isinstance(key, int) else key))
    return "\nDistinct units over the steps, from the table: " + "; ".join(parts) + ".\n"


def _step1_grads_table(table: list[dict]) -> list[str]:
    """The gradient norm of each parameter at step 1, one column per arm (the assignment's recipe)."""
    orig = pick(table)
    if not orig:
        return []
    params = list(next(iter(orig.values()))["step1"])
    lines = ["## Gradient norm of each parameter at step 1 (the assignment's recipe)\n"]
    lines.append("| parameter | " + " | ".join(LABELS[a] for a in orig) + " |")
    lines.append("|---|" + "---|" * len(orig))
    for p in params:
        lines.append(f"| {p} | " + " | ".join(f"{orig[a]['step1'].get(p, 0):.3g}" for a in orig) + " |")
    return lines


def _variants(table):
    """The variants the table's runs have (a report of an older plan may have others), the recipe first."""
    found = {(r["optimizer"], r["relu"]) for r in table}
    return sorted(found, key=lambda v: (v != ("adam", False), v[1], v[0]))


def _grid(plt, n, title, sharey=False):
    n = max(1, n)
    fig, axes = plt.subplots(1, n, figsize=(3.9 * n, 3.9), squeeze=False, sharey=sharey)
    fig.suptitle(title)
    return fig, axes[0]


def _finish(fig, axes, path, plt):
    handles, labels = axes[0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, 0))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(doc, table, path):
    plt = pyplot()
    vs = _variants(table)
    fig, axes = _grid(plt, len(vs), "dev perplexity by initialisation (dotted: unigram)")
    for ax, (opt, relu) in zip(axes, vs):
        for r in table:
            if (r["optimizer"], r["relu"]) != (opt, relu):
                continue
            h = [x for x in doc["runs"][r["name"]]["history"] if math.isfinite(x["dev_ppl"])]
            ax.plot(
                [x["epoch"] for x in h],
                [x["dev_ppl"] for x in h],
                color=COLOURS[r["arm"]],
                marker=".",
                label=LABELS[r["arm"]],
            )
        ax.axhline(doc["unigram_ppl"], color="k", ls=":", lw=1)
        ax.set_title(variant_name(opt, relu))
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        plain_log_ticks(ax, "y")
    axes[0].set_ylabel("dev perplexity")
    _finish(fig, axes, path, plt)


def _plot_grads(doc, table, path):
    plt = pyplot()
    orig = pick(table)
    params = list(next(iter(orig.values()))["step1"]) if orig else []
    cols = min(3, max(1, len(params)))
    rows = max(1, math.ceil(len(params) / cols))
    fig, grid = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.3 * rows), squeeze=False)
    fig.suptitle("gradient norm per parameter over steps (the assignment's recipe; zero norms not drawn)")
    axes = list(grid.flat)
    for ax in axes[len(params) :]:
        ax.axis("off")
    for ax, p in zip(axes, params):
        for arm, r in orig.items():
            pts = [
                (s, v["grad_norms"][p])
                for s, v in sorted((int(k), v) for k, v in doc["runs"][r["name"]]["probes"].items())
                if "grad_norms" in v and v["grad_norms"].get(p, 0) > 0
            ]
            ax.plot([s for s, _ in pts], [g for _, g in pts], color=COLOURS[arm], marker=".", label=LABELS[arm])
        ax.set_title(p, fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        plain_log_ticks(ax, "x")
    for ax in grid[:, 0]:
        ax.set_ylabel("‖gradient‖")
    if not params:
        axes[0].text(
            0.5, 0.5, "no run with the assignment's recipe is finished yet", ha="center", transform=axes[0].transAxes
        )
    _finish(fig, axes, path, plt)
