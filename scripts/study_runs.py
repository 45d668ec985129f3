"""Train a study's extended runs (experiments/init.py or experiments/optimizers.py: extended_specs)
in the study's work folder, resumably, without writing the report:

    python scripts/study_runs.py init|optimizers DATA [WORK] [--quick] [--adopt REPORT_JSON] [--jobs N]

N runs train side by side (default 1), one torch thread each. A run cut short continues from its
last epoch when this is started again; `tangshi experiment init|optimizers` reads the same folder.
--adopt first takes the runs of the whole study (first part included) that an earlier report's JSON
holds (`tangshi experiment ... --adopt`)."""

import subprocess
import sys
from pathlib import Path

from tangshi.experiments import init, optimizers
from tangshi.experiments.report import adopt_report
from tangshi.experiments.study import Study, default_work

STUDIES = {"init": init, "optimizers": optimizers}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    if argv and argv[-1] in ("--adopt", "--jobs"):
        print(f"{argv[-1]} needs a value", file=sys.stderr)
        return 2
    adopt = argv[argv.index("--adopt") + 1] if "--adopt" in argv else None
    jobs = argv[argv.index("--jobs") + 1] if "--jobs" in argv else "1"
    if not jobs.isdigit() or int(jobs) < 1:
        print(f"--jobs must be a whole number of at least 1, got {jobs!r}", file=sys.stderr)
        return 2
    flags = ("--quick", "--adopt", adopt) + (("--jobs", jobs) if "--jobs" in argv else ())
    args = [a for a in argv if a not in flags]
    if len(args) < 2 or args[0] not in STUDIES:
        print(
            "usage: python scripts/study_runs.py init|optimizers DATA [WORK] [--quick] "
            "[--adopt REPORT_JSON] [--jobs N]",
            file=sys.stderr,
        )
        return 2
    study_module, data = STUDIES[args[0]], Path(args[1])
    work = Path(args[2]) if len(args) > 2 else default_work(args[0], "torch", quick)
    budget = study_module.QUICK if quick else study_module.Budget()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with Study(
        work, data, jobs=int(jobs), threads=int(jobs), log=lambda m: print(m, flush=True), commit=commit or None
    ) as study:
        if adopt:
            whole = (
                (lambda: optimizers._plan(study, budget, "torch")[2])
                if study_module is optimizers
                else (lambda: init.specs(budget, "torch") + init.extended_specs(budget))
            )
            adopt_report(study, Path(adopt), study_module.FORMAT, whole)
        plan = optimizers.extended_plan(study, budget) if study_module is optimizers else init.extended_specs(budget)
        todo = [s.name for s in plan if study.recorded(s) is None]
        print(f"{len(plan)} runs planned, {len(todo)} to train: {', '.join(todo)}", flush=True)
        study.run(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
