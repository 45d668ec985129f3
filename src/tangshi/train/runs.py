"""A training run's folder: epoch checkpoints, the `last` and `best` links, the metrics log.

    RUN/.tangshi-output.json            the mark (outputs.py): kind "run", every entry written here
    RUN/.tangshi-lock                   held (flock) while a process trains into RUN
    RUN/poetry-gen-epoch{N}-loss{L}/    one folder per epoch, the assignment's naming
                                        (L: the assignment's PAD-counted dev loss)
    RUN/last -> poetry-gen-epoch…       the newest epoch; its folder alone keeps the optimiser state
    RUN/best -> poetry-gen-epoch…       the epoch with the lowest dev perplexity
    RUN/metrics.jsonl                   one row per epoch, rewritten from the newest checkpoint's history
    RUN/curves.png

Why a kill at any instant loses nothing: an epoch's checkpoint is written into a temporary
folder and renamed to its own new name; only then do `last` and `best` move, each with one
`os.replace` of a link, and only after that is the previous epoch's optimiser state dropped.
Whatever step a process dies at, some complete checkpoint with optimiser state exists, and
`latest()` finds the newest one without trusting the links (tests/test_reliability.py kills a
save at every filesystem operation in turn).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

from tangshi.errors import TangshiError
from tangshi.files import oserrors_named
from tangshi.model import checkpoint as ckpt
from tangshi.outputs import OutputFolder

LAST, BEST, METRICS, CURVES = "last", "best", "metrics.jsonl", "curves.png"
RESUMABLE = (ckpt.WEIGHTS, ckpt.CONFIG, ckpt.VOCAB, ckpt.OPTIM, ckpt.TRAINER)
# free space asked for before training: the new epoch folder, beside the previous one, with room to spare
FREE_SPACE_FACTOR = 3


def checkpoint_name(epoch: int, loss: float) -> str:
    """The assignment's naming: poetry-gen-epoch{N}-loss{L:.6f}."""
    return f"poetry-gen-epoch{epoch}-loss{loss:.6f}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint in a run folder that training can resume from, whatever
    the links say; None if it holds none."""
    best_epoch, found = -1, None
    names = [n for n in os.listdir(run_dir) if not n.startswith(".")]
    for n in sorted(names):
        d = Path(run_dir) / n
        if d.is_symlink() or not d.is_dir() or not all((d / f).is_file() for f in RESUMABLE):
            continue  # links are followed through their folders; legacy `last` is a real folder
        try:
            epoch = int(json.loads((d / ckpt.TRAINER).read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if epoch > best_epoch:
            best_epoch, found = epoch, d
    return found


class RunFolder:
    """The output folder of one training run (see the module docstring)."""

    def __init__(self, path: Path, *, replace: bool = False, resume: bool = False, sources: tuple = ()):
        self.path = Path(path)
        self.out = OutputFolder(
            self.path,
            "run",
            replace=replace,
            resume=resume,
            sources=sources,  # data, --init-from
            names=(LAST, BEST, METRICS, CURVES),
        )
        self._replacing = replace  # the earlier run goes when this one writes its first epoch

    def __enter__(self) -> RunFolder:
        self.out.open()
        return self

    def __exit__(self, *exc):
        self.out.close()
        return False

    # -- reading
    def _target(self, link: str) -> str | None:
        p = self.path / link
        return os.readlink(p) if p.is_symlink() else None

    def latest(self) -> Path | None:
        """The newest complete checkpoint that training can resume from, whatever the links say."""
        return latest_checkpoint(self.path)

    # -- writing
    def save_epoch(self, name: str, write: Callable[[Path], None], *, improved: bool, keep_epochs: bool) -> None:
        """Write the epoch's checkpoint (`write(folder)` fills it, optimiser state included), move
        `last` (and `best` if `improved`) onto it, then drop what the previous epoch no longer needs.
        Plan, check, then act: every entry this save replaces or removes is checked first (a file
        tangshi did not write, anywhere inside, is refused with one line and nothing changes).
        With --replace, the earlier run's entries go only now, once this run has passed every check
        and trained an epoch, and under an undo record: until the new epoch, `last` and `best` are
        in place, a failure (or a kill, at the next open) puts the earlier run back as it was."""
        earlier = list(self.out.earlier) if self._replacing else []
        prev_last, prev_best = (None, None) if earlier else (self._target(LAST), self._target(BEST))
        best = name if improved else prev_best
        drop = [] if keep_epochs else sorted({n for n in (prev_last, prev_best) if n is not None} - {name, best})
        self.out.require_removable(earlier, "--replace")
        self.out.require_removable(drop, "dropping an earlier epoch (--no-epoch-checkpoints)")
        if name not in earlier:
            self.out.require_removable([name], f"writing {name} again")
        with self.out.replacing(earlier) if earlier else contextlib.nullcontext():
            with self.out.new_dir(name) as tmp:
                write(tmp)
            self.out.point(LAST, name)
            if improved:
                self.out.point(BEST, name)
        self._replacing = False
        if drop:  # only the folders a link points at stay
            self.out.forget(drop, "dropping an earlier epoch (--no-epoch-checkpoints)")
        if prev_last and prev_last != name and (self.path / prev_last).is_dir():
            with oserrors_named(self.path / prev_last):  # a kept epoch is weights only, as the assignment's were
                (self.path / prev_last / ckpt.OPTIM).unlink(missing_ok=True)

    def resumed(self, last: Path, history: list[dict]) -> None:
        """Before training resumes from `last`: the links and metrics.jsonl are made to agree with
        it, so no row of an epoch that `last` does not know survives, and none is repeated."""
        if last.parent == self.path and self._target(LAST) != last.name and last.name != LAST:
            self.out.point(LAST, last.name)
        if history:
            b = min(history, key=lambda h: h["dev_ppl"])
            # cast: every row this trainer (or an older one) wrote has one of the two losses
            loss = cast(float, b.get("original_loss", b.get("seed_loss")))  # older runs: seed_loss
            name = checkpoint_name(b["epoch"], loss)
            if (self.path / name).is_dir() and self._target(BEST) != name:
                self.out.point(BEST, name)
        self.write_metrics(history)

    def write_metrics(self, history: list[dict]) -> None:
        self.out.write_file(METRICS, "".join(json.dumps(row) + "\n" for row in history))

    def write_curves(self, plot: Callable[[Path], None]) -> None:
        self.out.write_with(CURVES, plot)

    def require_room(self, n_params: int) -> None:
        """A checkpoint holds the weights and two Adam moments (fp32): refuse to start training
        that could not write its first epoch."""
        self.out.require_free(FREE_SPACE_FACTOR * 3 * 4 * n_params, "a checkpoint of this model")


class TrainingDiverged(TangshiError):
    """The loss became NaN or infinite; `epoch` is where, `history` the finished epochs before it."""

    def __init__(self, message: str, epoch: int, history: list[dict]):
        super().__init__(message)
        self.epoch, self.history = epoch, list(history)


def check_finite_loss(value: float, what: str, epoch: int, lr: float, history: list[dict]) -> None:
    """A loss that is NaN or infinite ends training before anything is written for the epoch."""
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: the {what} is {value} (lr {lr:g}); nothing "
            "was saved for this epoch and best is unchanged; lower --lr or add --clip",
            epoch,
            history,
        )
