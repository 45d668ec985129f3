"""`tangshi experiment optimizers`: the assignment's Part 6 (Adam against Adagrad), with AdamW and SGD,
measured so that it can conclude.

1. Learning-rate sweep (seed 0, `sweep_epochs`): each optimiser starts on three rungs of a
   1-3-10 ladder and the grid widens one rung towards its best until the best is strictly inside
   (a diverged rung counts as a bracket), at most MAX_GRID rungs.
2. Final comparison (`epochs`): each optimiser at its best rate, seeds 0..seeds-1, with the assignment's
   coupled weight decay 1e-4; Adam and Adagrad also with weight decay 0 (the control that
   separates the optimiser from coupled L2). Seed 0 of each records the root-mean-square update
   of every parameter at every step.
3. The report and plots (optimizer_plots.py) are rendered from the JSON alone (`--replot` renders
   them again), and every verdict is computed from the numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tangshi.data.prepare import require_prepared
from tangshi.errors import TangshiError
from tangshi.experiments import optimizer_extended
from tangshi.experiments.optimizer_plots import plot_final, plot_sweep, plot_updates
from tangshi.experiments.optimizer_verdicts import CONTROLS, ORIGINAL_WD, bottom_line, verdicts
from tangshi.experiments.report import (
    adopt_report,
    data_meta,
    fmt_summary,
    header_fields,
    read_report_json,
    render_header,
    replot_report,
    stage_report,
    summary,
    thin,
    trained_line,
)
from tangshi.experiments.study import RunSpec, Study
from tangshi.outputs import OutputFolder

LADDER = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
OPTIMIZERS = ("adam", "adagrad", "adamw", "sgd")
START = {"adam": 1e-2, "adagrad": 3e-2, "adamw": 1e-2, "sgd": 0.3}  # the middle rung of each first grid
MAX_GRID = 7
MOMENTUM = 0.9
NAMES = {
    "md": "optimizers.md",
    "json": "optimizers.json",
    "final": "optimizers_final.png",
    "sweep": "optimizers_sweep.png",
    "updates": "optimizers_updates.png",
    "rates": "optimizers_rates.png",
}
FORMAT = "tangshi-optimizers/2"


# The narrowed and completed study: the rate re-swept at the final budget (20 epochs) with no weight
# decay on a finer grid (about ×1.5–2 apart), and Adam given the schedules the comparison lacked:
# cosine (the project's own default) and 1/√t (the decay Adagrad's accumulator builds in).
FINE_GRID = {"adam": (1e-3, 2e-3, 3e-3, 5e-3, 1e-2), "adagrad": (1e-2, 2e-2, 3e-2, 5e-2, 0.1)}
# Adam's schedules: cosine's best rate came out at the top of (3e-3, 1e-2), so 2e-2 brackets it
SCHEDULED = {"cosine": (3e-3, 1e-2, 2e-2), "invsqrt": (3e-3, 1e-2)}


@dataclass(frozen=True)
class Budget:
    epochs: int = 20  # the final comparison
    sweep_epochs: int = 5
    seeds: int = 3
    batch_size: int = 128
    model: dict = field(default_factory=dict)  # ModelConfig overrides (the tiny model of --quick)
    fine: dict = field(default_factory=lambda: dict(FINE_GRID))  # the second part's constant rates
    scheduled: dict = field(default_factory=lambda: dict(SCHEDULED))  # and Adam's scheduled ones

    def __post_init__(self):
        if self.seeds < 1:
            raise TangshiError(f"--seeds must be at least 1, got {self.seeds}")


QUICK = Budget(
    epochs=2,
    sweep_epochs=1,
    seeds=2,
    batch_size=16,
    model=dict(embed_dim=16, hidden_dim=16),
    fine={"adam": (1e-2, 3e-2), "adagrad": (3e-2,)},
    scheduled={"cosine": (1e-2,), "invsqrt": (1e-2,)},
)


def names_for(backend: str) -> dict:
    return (
        NAMES if backend == "torch" else {k: v.replace("optimizers", f"optimizers-{backend}") for k, v in NAMES.items()}
    )


def _spec(
    kind: str, opt: str, lr: float, wd: float, epochs: int, seed: int, b: Budget, backend: str, probes=()
) -> RunSpec:
    train = dict(
        epochs=epochs,
        optimizer=opt,
        lr=lr,
        weight_decay=wd,
        momentum=MOMENTUM,
        seed=seed,
        batch_size=b.batch_size,
        backend=backend,
        amp=False,
    )
    return RunSpec(f"{kind}-{opt}-lr{lr:g}-wd{wd:g}-e{epochs}-s{seed}", dict(b.model), train, tuple(probes))


def extended_specs(b: Budget, backend: str = "torch") -> list[RunSpec]:
    """The fine constant-rate grid at `b.epochs`, weight decay 0, seed 0; then Adam with each schedule."""
    out = [_spec("fine", opt, lr, 0.0, b.epochs, 0, b, backend) for opt, lrs in b.fine.items() for lr in lrs]
    for schedule, lrs in b.scheduled.items():
        for lr in lrs:
            spec = _spec(f"sched-{schedule}", "adam", lr, 0.0, b.epochs, 0, b, backend)
            out.append(RunSpec(spec.name, spec.model, {**spec.train, "schedule": schedule}, spec.probes))
    # why Adagrad wins here: how each moves the embedding rows of frequent and rare characters, in the
    # steps where a character occurs and in those where it does not (study.Recorder's "rows" probe)
    rows_epochs = max(1, b.epochs // 4)
    for opt, lr in (("adam", 1e-2), ("adagrad", 3e-2)):
        out.append(_spec("rows", opt, lr, 0.0, rows_epochs, 0, b, backend, probes=("rows",)))
    # trained in the order the verdicts need them (a run takes ~20 min on 2 cores): the mechanism runs (short),
    # then each optimiser near its best rate with and without a schedule (cosine also at Adam's first-part
    # rate, 1e-2, where its constant run peaks at epoch 7 and then climbs), then the rest of the grid
    first = ["rows-", "fine-adam-lr0.003-", "sched-cosine-adam-lr0.003-", "fine-adagrad-lr0.03-"]
    first += ["sched-cosine-adam-lr0.01-", "fine-adam-lr0.005-", "sched-invsqrt-adam-lr0.003-", "fine-adagrad-lr0.02-"]
    return sorted(out, key=lambda s: next((i for i, p in enumerate(first) if s.name.startswith(p)), len(first)))


def _score(rec: dict | None) -> float:
    return math.inf if rec is None or rec["diverged"] else rec["best"]["dev_ppl"]


def sweep_state(opt: str, study: Study, b: Budget, backend: str) -> tuple[list[RunSpec], dict]:
    """The grid of `opt` as far as the records reach: its specs, and {lrs, best_lr, bracketed, done}."""
    i = LADDER.index(START[opt])
    grid = [i - 1, i, i + 1]
    while True:
        specs = [_spec("sweep", opt, LADDER[k], ORIGINAL_WD, b.sweep_epochs, 0, b, backend) for k in grid]
        recs = [study.recorded(s) for s in specs]
        if any(r is None for r in recs):
            return specs, {
                "lrs": [LADDER[k] for k in grid],
                "runs": [s.name for s, r in zip(specs, recs) if r],
                "done": False,
            }
        scores = [_score(r) for r in recs]
        best = min(range(len(grid)), key=lambda j: scores[j])
        inside = 0 < best < len(grid) - 1
        can_grow = len(grid) < MAX_GRID and math.isfinite(scores[best])
        if not inside and can_grow and best == 0 and grid[0] > 0:
            grid.insert(0, grid[0] - 1)
        elif not inside and can_grow and best == len(grid) - 1 and grid[-1] < len(LADDER) - 1:
            grid.append(grid[-1] + 1)
        else:
            return specs, {
                "lrs": [LADDER[k] for k in grid],
                "best_lr": LADDER[grid[best]],
                "bracketed": inside,
                "runs": [s.name for s in specs],
                "done": True,
            }


def final_specs(opt: str, lr: float, b: Budget, backend: str) -> list[dict]:
    """The final comparison's groups for `opt`: [{optimizer, lr, wd, specs}] (weight decay 1e-4, and 0 for CONTROLS)."""
    groups = []
    for wd in (ORIGINAL_WD, 0.0) if opt in CONTROLS else (ORIGINAL_WD,):
        specs = [
            _spec("final", opt, lr, wd, b.epochs, s, b, backend, probes=("updates",) if s == 0 else ())
            for s in range(b.seeds)
        ]
        groups.append({"optimizer": opt, "lr": lr, "wd": wd, "specs": specs})
    return groups


def _plan(study: Study, budget: Budget, backend: str) -> tuple[dict, list[dict], list[RunSpec]]:
    """The study as far as its records reach: every grid, the final groups of the grids that are
    done, and every run they need."""
    grids, groups, todo = {}, [], []
    for opt in OPTIMIZERS:
        specs, grids[opt] = sweep_state(opt, study, budget, backend)
        todo += specs
        if grids[opt]["done"]:
            groups += final_specs(opt, grids[opt]["best_lr"], budget, backend)
    finals = [s for g in groups for s in g["specs"]]
    return grids, groups, todo + finals + _not_repeats(study, finals, extended_specs(budget, backend))


def extended_plan(study: Study, budget: Budget, backend: str = "torch") -> list[RunSpec]:
    """The second part's runs still planned once the first part's finals are known (scripts/study_runs.py)."""
    finals = [s for g in _plan(study, budget, backend)[1] for s in g["specs"]]
    return _not_repeats(study, finals, extended_specs(budget, backend))


def _not_repeats(study: Study, finals: list[RunSpec], extended: list[RunSpec]) -> list[RunSpec]:
    """The second part's runs without those whose settings a final run already trained (the fine grid's
    cell at the final's rate: the report takes it from there); one already recorded is kept."""
    trained = [(s.model, s.train) for s in finals]
    return [s for s in extended if (s.model, s.train) not in trained or study.recorded(s) is not None]


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
    """Train what the study still needs (sweeps until bracketed, then the finals) and write the
    report; with `partial`, train nothing and report the runs finished so far; `adopt`: first take
    the runs an earlier report's JSON holds."""
    data_dir, out = require_prepared(data_dir), Path(out)  # fail before creating anything
    names = names_for(backend)
    earlier = _earlier_by_frequency([adopt, out / names["json"]], data_dir)  # read before it is replaced
    with OutputFolder(out, "reports", replace=replace, names=list(names.values()), sources=[data_dir]) as folder:
        header = header_fields(argv)
        assert work is not None, "run_study needs its work folder (the CLI passes default_work(...))"
        study = Study(work, data_dir, jobs=jobs, threads=threads, log=log, commit=header["commit"])
        if partial:  # read only: a study that is still training holds the work folder's lock
            grids, groups, todo = _plan(study, budget, backend)
        else:
            grids, groups, todo = _train_all(study, budget, backend, adopt, log)
        recorded = {s.name: study.recorded(s) for s in todo}
        header["trained"] = trained_line([study.trained(n) for n, r in recorded.items() if r is not None])
        doc = {
            "format": FORMAT,
            "backend": backend,
            "header": header,
            "data": str(data_dir),
            "data_meta": data_meta(data_dir),
            "budget": asdict(budget),
            "grids": grids,
            "finals": [
                {
                    **{k: v for k, v in g.items() if k != "specs"},
                    "runs": [s.name for s in g["specs"] if recorded[s.name] is not None],
                }
                for g in groups
            ],
            "runs": {n: _kept(r) for n, r in recorded.items() if r is not None},
            "missing": [n for n, r in recorded.items() if r is None],
            "state": optimizer_extended.state_sizes(data_dir, budget.model),
        }
        doc["by_frequency"] = optimizer_extended.by_frequency(doc, work, data_dir, earlier)
        doc["finals"] = [g for g in doc["finals"] if g["runs"]]
        write_report(folder, doc, names)
    return {"doc": doc, "report": str(folder.path / names["md"])}


def _train_all(study: Study, budget: Budget, backend: str, adopt: Path | None, log) -> tuple:
    """Take --adopt's runs, then sweep until every grid brackets its best, then train the final runs;
    returns the last plan (grids, groups, todo), every run of which is recorded."""
    with study:
        adopt_report(study, adopt, FORMAT, lambda: _plan(study, budget, backend)[2])
        while True:
            grids, groups, todo = _plan(study, budget, backend)
            missing = [s for s in todo if study.recorded(s) is None]
            if not missing:
                return grids, groups, todo
            log(f"training {len(missing)} run(s), {study.jobs} at a time")
            study.run(missing)


def _earlier_by_frequency(paths: list, data_dir: Path) -> list[dict]:
    """The by_frequency measurements of earlier report JSONs on the same data (--adopt's, then the one
    being replaced), for checkpoints that are no longer in the work folder; a file that cannot be read
    as such a report is passed over (the report being replaced may be anything --replace allows)."""
    out = []
    for path in paths:
        if path is None or not Path(path).is_file():
            continue
        try:
            rep = read_report_json(Path(path), FORMAT)
        except TangshiError:
            continue
        if rep.get("data_meta") == data_meta(data_dir) and isinstance(rep.get("by_frequency"), dict):
            out.append(rep["by_frequency"])
    return out


def _kept(rec: dict) -> dict:
    """A run's record as the report's JSON keeps it: per-epoch history, and thinned probes."""
    return {**rec, "probes": thin(rec.get("probes", {}))}


def replot(out: Path, backend: str = "torch") -> dict:
    return replot_report(out, names_for(backend), FORMAT, write_report)


def write_report(folder: OutputFolder, doc: dict, names: dict, rendered_again: bool = False) -> None:
    finals = _final_table(doc)
    stage_report(
        folder,
        doc,
        names,
        {
            "final": lambda p: plot_final(doc, finals, p, ORIGINAL_WD),
            "sweep": lambda p: plot_sweep(doc, p, LADDER),
            "updates": lambda p: plot_updates(doc, finals, p, ORIGINAL_WD),
            "rates": lambda p: optimizer_extended.plot_rates(doc, p),
        },
        render(doc, finals, names, rendered_again),
        rendered_again,
    )


# ---------------------------------------------------------------------------- the numbers
def _final_table(doc: dict) -> list[dict]:
    rows = []
    for g in doc["finals"]:
        recs = [doc["runs"][n] for n in g["runs"]]
        rows.append(
            {
                **g,
                "best": summary([_score(r) for r in recs]),
                "final": summary([math.inf if r["diverged"] else r["history"][-1]["dev_ppl"] for r in recs]),
                "epoch": summary([r["best"]["epoch"] for r in recs if r["best"]]),
                "wall_s": sum(r["wall_s"] for r in recs),
            }
        )
    return rows


def render(doc: dict, finals: list[dict], names: dict, rendered_again: bool = False) -> str:
    b = doc["budget"]
    title = f"Adam vs Adagrad (and AdamW, SGD) on the assignment's model, {doc['backend']} backend"
    model = (
        "the tiny model of --quick " + json.dumps(b["model"])
        if b["model"]
        else "the assignment's model (embedding 256, 1×LSTM 256, no ReLU, PAD masked)"
    )
    lines = [render_header(title, doc["header"], rendered_again), ""]
    lines += bottom_line(doc, finals)
    if doc.get("missing") or not all(g["done"] for g in doc["grids"].values()):
        lines.append(
            f"> **Incomplete** (`--partial`): {len(doc['runs'])} runs are finished and {len(doc['missing'])} "
            "runs of the plan so far are still to train (a sweep that is not finished may add more, and its "
            "optimiser's final runs are not planned yet). Every number and verdict below uses the finished "
            "runs only; the same command without `--partial` continues the study.\n"
        )
    lines.append(
        f"Data: `{doc['data']}` ({doc['data_meta']}). Every run: {model}, batch {b['batch_size']}, "
        f"constant learning rate, the same batch order for the same seed; SGD with momentum {MOMENTUM}.\n"
    )
    lines.append(
        f"**Budget.** Learning-rate sweeps: {b['sweep_epochs']} epoch{'s' if b['sweep_epochs'] != 1 else ''}, "
        "seed 0, weight decay 1e-4. "
        f"Final comparison: **{b['epochs']} epochs**, seeds 0–{b['seeds'] - 1}, each optimiser at the best "
        "rate of its sweep. Best dev perplexity = the lowest of the run's epochs.\n"
    )
    lines += _sweep_section(doc, names)
    lines += _final_section(doc, finals, names)
    lines.append("## Verdicts (computed from the tables above)\n")
    lines += verdicts(doc, finals)
    lines += optimizer_extended.section(doc, names)
    return "\n".join(lines) + "\n"


def _sweep_section(doc: dict, names: dict) -> list[str]:
    """The learning-rate sweeps: each optimiser's best dev perplexity at each rate, and its plot."""
    lines = ["## Learning-rate sweeps\n"]
    used = sorted({doc["runs"][n]["spec"]["train"]["lr"] for g in doc["grids"].values() for n in g.get("runs", [])})
    lines.append("Best dev perplexity of each sweep run; the best of each row in bold.\n")
    lines.append("| optimiser | " + " | ".join(f"lr {lr:g}" for lr in used) + " | best lr | strictly inside the grid |")
    lines.append("|---|" + "---|" * (len(used) + 2))
    for opt, g in doc["grids"].items():
        by_lr = {doc["runs"][n]["spec"]["train"]["lr"]: doc["runs"][n] for n in g.get("runs", [])}
        cells = []
        for lr in used:
            rec = by_lr.get(lr)
            cells.append(
                ""
                if rec is None
                else "diverged"
                if rec["diverged"]
                else (
                    f"**{rec['best']['dev_ppl']:.1f}**" if lr == g.get("best_lr") else f"{rec['best']['dev_ppl']:.1f}"
                )
            )
        best = f"{g['best_lr']:g}" if "best_lr" in g else "-"
        inside = "not finished" if not g["done"] else "yes" if g["bracketed"] else "**no**"
        lines.append(f"| {opt} | " + " | ".join(cells) + f" | {best} | {inside} |")
    lines.append(f"\n![every sweep run]({names['sweep']})\n")
    return lines


def _final_section(doc: dict, finals: list[dict], names: dict) -> list[str]:
    """The final comparison: each group's dev perplexity over its seeds, and the plots."""
    lines = [f"## Final comparison ({doc['budget']['epochs']} epochs)\n"]
    lines.append("Dev perplexity as mean ± standard deviation (min–max) over the seeds.\n")
    lines.append(
        "| optimiser | lr | weight decay | best dev ppl | last-epoch dev ppl | best epoch (mean) | wall s (all seeds) |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for r in finals:
        lines.append(
            f"| {r['optimizer']} | {r['lr']:g} | {r['wd']:g} | {fmt_summary(r['best'])} | "
            f"{fmt_summary(r['final'])} | {r['epoch']['mean']:.1f} | {r['wall_s']:.0f} |"
        )
    lines.append(f"\n![final comparison]({names['final']})\n")
    lines.append(f"![update size]({names['updates']})\n")
    lines.append(
        "The update plot is the root-mean-square change of each parameter tensor in each step (seed 0, weight "
        "decay 1e-4), measured on the weights themselves: the step an optimiser actually takes.\n"
    )
    return lines
