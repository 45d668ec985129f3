"""Train the optimiser study's extended runs (experiments/optimizers.py: extended_specs) in its work
folder, resumably, without writing the report: `python scripts/optimizer_runs.py DATA [WORK] [--quick]`.
A run cut short continues from its last epoch when this is started again."""

import subprocess
import sys
from pathlib import Path

from tangshi.experiments.optimizers import QUICK, Budget, extended_specs
from tangshi.experiments.study import Study, default_work


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    data = Path(args[0])
    work = Path(args[1]) if len(args) > 1 else default_work("optimizers", "torch", quick)
    plan = extended_specs(QUICK if quick else Budget())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with Study(work, data, jobs=1, threads=1, log=lambda m: print(m, flush=True), commit=commit or None) as study:
        todo = [s.name for s in plan if study.recorded(s) is None]
        print(f"{len(plan)} runs planned, {len(todo)} to train: {', '.join(todo)}", flush=True)
        study.run(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
