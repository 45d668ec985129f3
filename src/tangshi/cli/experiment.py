"""`tangshi experiment`: its options, and the dispatch to the experiment modules."""

from __future__ import annotations

from pathlib import Path

from tangshi.cli.common import MAX_THREADS, PREPARED_DEFAULT, THREADS_HELP, add_all, resolve_checkpoint, set_threads
from tangshi.errors import TangshiError, check_number

# `tangshi experiment`'s options: (flags, argparse keywords)
EXPERIMENT_OPTIONS = [
    (
        "which",
        dict(
            choices=("optimizers", "init", "backprop", "distance", "titles"),
            help="which experiment (backprop: the assignment's three gradient errors, in training on a memory "
            "task; distance: ‖δh_t‖ and ‖δC_t‖ against distance on real poems; titles: a titled model's dev "
            "perplexity with and without titles, and how much its poems share with the real poem of the title)",
        ),
    ),
    ("--checkpoint", dict(help="distance, titles: the model (default: the bundled one)")),
    ("--data", dict(default=str(PREPARED_DEFAULT), help=f"prepared folder (default {PREPARED_DEFAULT})")),
    ("--out", dict(default="reports", help="folder of the report files (default reports)")),
    (
        "--epochs",
        dict(
            type=int,
            help="optimizers/init: epochs of the final comparison (default 20; 2 with --quick); "
            "backprop: training steps of each run (default 6000; 100 with --quick)",
        ),
    ),
    (
        "--short-epochs",
        dict(
            type=int,
            help="optimizers: epochs of each learning-rate sweep run; init: epochs of "
            "the SGD and ReLU variants (default 5; 1 with --quick)",
        ),
    ),
    (
        "--seeds",
        dict(
            type=int,
            help="optimizers: seeds of each final setting; backprop: seeds of each gradient and lag "
            "(default 3; 2 with --quick)",
        ),
    ),
    ("--backend", dict(default="torch", choices=("torch", "numpy"), help="which implementation trains")),
    ("--quick", dict(action="store_true", help="tiny model and budget: seconds, for tests")),
    (
        "--work",
        dict(
            help="optimizers/init: the folder of the study's training runs, kept so that the same "
            "command started again continues where it stopped (default runs/experiments/WHICH)"
        ),
    ),
    (
        "--jobs",
        dict(
            type=int,
            default=1,
            help="optimizers/init: runs trained side by side, each with threads/jobs threads (default 1)",
        ),
    ),
    (
        "--replot",
        dict(
            action="store_true",
            help="optimizers/init/backprop: render the report and plots again from the report's JSON in OUT, "
            "without training",
        ),
    ),
    (
        "--adopt",
        dict(
            metavar="REPORT_JSON",
            help="optimizers/init: first take into the work folder the runs an earlier report's JSON holds "
            "(same settings only), so that a study moved to another machine does not train them again",
        ),
    ),
    (
        "--partial",
        dict(
            action="store_true",
            help="optimizers/init: train nothing; write the report from the "
            "study's runs finished so far, marked incomplete",
        ),
    ),
    ("--threads", dict(type=int, help=THREADS_HELP)),
    ("--replace", dict(action="store_true", help="replace this experiment's earlier report files in OUT")),
]


def experiment_parser(sub) -> None:
    x = sub.add_parser(
        "experiment", help="reproducible reports: optimisers, initialisation, the assignment's BPTT errors"
    )
    add_all(x, EXPERIMENT_OPTIONS)
    x.set_defaults(func=cmd_experiment)


def cmd_experiment(args) -> int:
    set_threads(args.threads)
    for opt, value, lo in (
        ("--epochs", args.epochs, 1),
        ("--short-epochs", args.short_epochs, 1),
        ("--seeds", args.seeds, 1),
        ("--jobs", args.jobs, 1),
    ):
        if value is not None:
            check_number(opt, value, lo, 100_000 if opt != "--jobs" else MAX_THREADS, integer=True)
    if args.which in ("distance", "backprop", "titles"):
        res = _lesson_experiment(args)
    else:
        res = _study_experiment(args)
    print(f"wrote {res['report']}")
    return 0


def _lesson_experiment(args) -> dict:
    if args.which == "titles":
        from tangshi.experiments.titles import N_TITLES, run_titles

        return run_titles(
            resolve_checkpoint(args.checkpoint),
            Path(args.data),
            Path(args.out),
            n_titles=10 if args.quick else N_TITLES,
            argv=args.argv,
            replace=args.replace,
        )
    if args.which == "distance":
        from tangshi.experiments.distance import run_distance

        return run_distance(
            resolve_checkpoint(args.checkpoint),
            Path(args.data),
            Path(args.out),
            argv=args.argv,
            replace=args.replace,
            n_poems=10 if args.quick else 100,
        )
    from tangshi.experiments import backprop

    if args.replot:
        return backprop.replot(Path(args.out))
    return backprop.run_backprop(
        Path(args.out),
        backprop.Task(steps=args.epochs or (100 if args.quick else backprop.Task.steps)),
        seeds=args.seeds or (2 if args.quick else 3),
        lags=backprop.QUICK_LAGS if args.quick else backprop.LAGS,
        argv=args.argv,
        replace_files=args.replace,
    )


def _study_experiment(args) -> dict:
    from dataclasses import replace

    from tangshi.experiments import init as init_study
    from tangshi.experiments import optimizers as optimizer_study
    from tangshi.experiments.study import default_work

    study = optimizer_study if args.which == "optimizers" else init_study
    if args.replot:
        return study.replot(Path(args.out), backend=args.backend)
    budget = study.QUICK if args.quick else study.Budget()
    short = "sweep_epochs" if args.which == "optimizers" else "variant_epochs"
    over = {k: v for k, v in (("epochs", args.epochs), (short, args.short_epochs)) if v is not None}
    if args.seeds is not None:
        if args.which != "optimizers":
            raise TangshiError("--seeds applies to the optimizers experiment only")
        over["seeds"] = args.seeds
    if args.adopt and args.partial:
        raise TangshiError("--adopt writes runs into the work folder and --partial writes nothing there: give one")
    work = Path(args.work) if args.work else default_work(args.which, args.backend, args.quick)
    return study.run_study(
        Path(args.data),
        Path(args.out),
        replace(budget, **over),
        backend=args.backend,
        argv=args.argv,
        work=work,
        jobs=args.jobs,
        threads=args.threads,
        replace=args.replace,
        partial=args.partial,
        adopt=Path(args.adopt) if args.adopt else None,
    )
