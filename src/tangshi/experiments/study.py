"""A study: many training runs on one prepared split, run in one work folder that survives
interruption. `tangshi experiment optimizers|init` are studies.

- Each run is a `RunSpec`: a name that spells out its settings, the model options, the
  training options and the probes its per-step hook records.
- The run's folder `WORK/NAME` is an ordinary training run with a checkpoint every epoch. A
  run cut short is continued from its newest checkpoint (`train --resume`), which reaches the
  weights of an uninterrupted run, so killing a study and starting it again loses at most the
  epoch each run was in.
- Probes go to `WORK/NAME.probes.json` at the end of every epoch, before the epoch's checkpoint,
  so they always cover the checkpointed steps; a resumed run records the steps after its
  checkpoint again (the same numbers: the run is deterministic).
- A finished run's record (spec, per-epoch history, probes, wall time, diverged or not) is
  `WORK/NAME.json`. A study started again reads it and does not train that run again; a record
  whose spec differs from the one asked for is refused.
- `jobs` runs train side by side in worker processes, each with threads // jobs torch threads.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from tangshi.data.prepare import read_split
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError, read_json
from tangshi.files import oserrors_named, write_atomic
from tangshi.model.lm import ModelConfig, PoetryLM
from tangshi.outputs import OutputFolder
from tangshi.train.config import TrainConfig
from tangshi.train.loop import fit
from tangshi.train.numpy_backend import NumpyBackend
from tangshi.train.runs import TrainingDiverged, latest_checkpoint
from tangshi.train.start import Start
from tangshi.train.torch_backend import TorchBackend

# steps at which the "symmetry" and "grads" probes are taken (those within the run)
ROW_BUCKETS = ("top 50", "51-500", "501-2000", "rarer")  # characters by training frequency rank
ROW_EDGES = (50, 500, 2000)
PROBE_STEPS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
SYMMETRY_TOL = 1e-12  # two hidden units are "the same" when all their weights agree this closely


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study. `model`: ModelConfig overrides; `train`: TrainConfig fields;
    `probes`: what the per-step hook records (see Recorder)."""

    name: str
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    probes: tuple = ()

    def as_json(self) -> dict:
        return {"name": self.name, "model": dict(self.model), "train": dict(self.train), "probes": list(self.probes)}


# ---------------------------------------------------------------------------- what the probes measure
def hidden_unit_signatures(state: dict, hidden: int) -> torch.Tensor:
    """(H, K) one row per hidden unit j of layer 0 (canonical weights): its four gate columns of
    weight_ih and weight_hh, its row of weight_hh, its four biases and its head column. Units with
    equal rows are interchangeable: the network cannot tell them apart, and gradient descent
    keeps them equal."""
    H, sd = hidden, state
    w_ih, w_hh, b = sd["lstm.0.weight_ih"], sd["lstm.0.weight_hh"], sd["lstm.0.bias"]
    head = sd.get("head.weight", sd["embedding.weight"])
    parts = []
    for gate in range(4):
        cols = slice(gate * H, (gate + 1) * H)
        parts += [w_ih[:, cols].t(), w_hh[:, cols].t(), b[cols][:, None]]
    parts += [w_hh, head.t()]
    return torch.cat(parts, dim=1).double()


def distinct_units(state: dict, hidden: int, tol: float = SYMMETRY_TOL) -> int:
    """The number of groups of hidden units whose weights all agree within `tol`."""
    sig = hidden_unit_signatures(state, hidden)
    reps: list[torch.Tensor] = []
    for row in sig:
        if not any(float((row - r).abs().max()) <= tol for r in reps):
            reps.append(row)
    return len(reps)


class Probe:
    """What a study's per-step hook sees, the same on both backends: the canonical weights, the
    hidden width and the gradient norm of each parameter."""

    def __init__(self, backend: str, model=None, params=None, grads=None, hidden=None):
        self.backend, self.model, self.params, self.grads, self.hidden = backend, model, params, grads, hidden

    def canonical(self) -> dict[str, torch.Tensor]:
        if self.backend == "numpy":
            return {k: torch.from_numpy(v) for k, v in self.params.items()}
        return self.model.canonical_state_dict()

    def hidden_dim(self) -> int:
        return self.hidden if self.backend == "numpy" else self.model.config.hidden_dim

    def grad_norms(self) -> dict[str, float]:
        """Per canonical parameter (layout-free names on both backends)."""
        if self.backend == "numpy":
            return {k: float(np.sqrt(np.vdot(g, g))) for k, g in (self.grads or {}).items()}
        return {n: float(p.grad.norm()) if p.grad is not None else 0.0 for n, p in self.model.named_parameters()}


class Recorder:
    """The per-step hook of one run: records each probe by step, and writes them to `path`.

    symmetry: distinct hidden units; grads: gradient norm of each parameter; moved: the largest
    change of each parameter since step 0 (these three at PROBE_STEPS and at every epoch's end);
    updates: the root-mean-square change of each parameter in every step; rows (torch backend,
    needs `buckets`, each vocabulary id's training-frequency bucket): per bucket and epoch, the
    mean change of an embedding row in a step where its character occurs in the batch (its gradient
    row is not zero) and in a step where it does not. `initial()` rebuilds the step-0 weights of a
    run resumed in another process."""

    def __init__(self, probes: tuple, path: Path | None, initial=None, buckets=None):
        self.probes, self.path, self.initial = tuple(probes), path and Path(path), initial
        self.buckets = buckets
        self._emb: tuple[int, torch.Tensor] | None = None
        self._rows: dict[str, list[float]] = {}
        self._masks: list[torch.Tensor] | None = None
        self.records: dict[int, dict] = {int(k): v for k, v in (_read_json(self.path, {}) if self.path else {}).items()}
        self._prev: tuple[int, dict] | None = None
        self._start: dict | None = None
        self._last: tuple[int, Probe] | None = None

    def __call__(self, step: int, probe: Probe) -> None:
        self._last = (step, probe)
        if step in PROBE_STEPS:
            self._snapshot(step, probe)
        if "updates" in self.probes:  # root-mean-square change of each parameter in this step
            now = _copy(probe.canonical())
            if self._prev is not None and self._prev[0] == step - 1:
                self._add(
                    step, update_rms={k: float((v - self._prev[1][k]).pow(2).mean().sqrt()) for k, v in now.items()}
                )
            self._prev = (step, now)
        if "rows" in self.probes:
            self._row_updates(step, probe)

    def _row_updates(self, step: int, probe: Probe) -> None:
        emb = probe.model.embedding.weight
        now = emb.detach().to(torch.float64, copy=True)
        if self._masks is None:  # each bucket's rows, built once, where the weights are
            self._masks = [torch.as_tensor(self.buckets == b, device=emb.device) for b in range(len(ROW_BUCKETS))]
        if self._emb is not None and self._emb[0] == step - 1 and emb.grad is not None:
            moved = (now - self._emb[1]).norm(dim=1)  # (V,) each row's change in this step
            present = emb.grad.detach().abs().sum(dim=1) > 0
            for inb, name in zip(self._masks, ROW_BUCKETS):
                acc = self._rows.setdefault(name, [0.0, 0, 0.0, 0])  # present sum, count, absent sum, count
                here, away = inb & present, inb & ~present
                acc[0] += float(moved[here].sum())
                acc[1] += int(here.sum())
                acc[2] += float(moved[away].sum())
                acc[3] += int(away.sum())
        self._emb = (step, now)

    def _snapshot(self, step: int, probe: Probe) -> None:
        if "symmetry" in self.probes:
            self._add(step, distinct_units=distinct_units(probe.canonical(), probe.hidden_dim()))
        if "grads" in self.probes and step > 0:
            self._add(step, grad_norms=probe.grad_norms())
        if "moved" in self.probes:
            if self._start is None:
                self._start = _copy(probe.canonical()) if step == 0 else self.initial()
            self._add(
                step, moved={k: float((v.double() - self._start[k]).abs().max()) for k, v in probe.canonical().items()}
            )

    def _add(self, step: int, **rec) -> None:
        self.records[step] = {**self.records.get(step, {}), **rec}

    def end_epoch(self) -> None:
        if self._last is not None and self._last[0] not in PROBE_STEPS:
            self._snapshot(*self._last)
        if self._rows and self._last is not None:
            self._add(
                self._last[0],
                rows={
                    k: {
                        "present": a[0] / max(a[1], 1),
                        "absent": a[2] / max(a[3], 1),
                        "present_rows": a[1],
                        "absent_rows": a[3],
                    }
                    for k, a in self._rows.items()
                },
            )
            self._rows = {}
        self.flush()

    def flush(self) -> None:
        if self.probes:
            assert self.path is not None, "a Recorder with probes to write needs a path"
            write_atomic(self.path, json.dumps({str(k): v for k, v in sorted(self.records.items())}))


def _copy(state: dict) -> dict:
    return {k: v.detach().double().clone() for k, v in state.items()}


def frequency_buckets(data_dir: Path) -> np.ndarray:
    """(V,) each vocabulary id's bucket of ROW_BUCKETS by its character's rank in the training split
    (the specials and unseen ids in the last)."""
    vocab = Vocab.load(Path(data_dir) / "vocab.json")
    counts = np.zeros(len(vocab), dtype=np.int64)
    for poem in read_split(Path(data_dir), "train"):
        for ch in poem:
            counts[vocab.stoi.get(ch, vocab.oov_id)] += 1
    rank = np.empty(len(vocab), dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(vocab))
    out = np.searchsorted(np.array(ROW_EDGES), rank, side="right")
    out[counts == 0] = len(ROW_BUCKETS) - 1
    return out


def initial_state(data_dir: Path, model_over: dict, seed: int) -> dict:
    """The canonical weights a run from scratch starts with (trainer.begin seeds, then builds)."""
    vocab = Vocab.load(Path(data_dir) / "vocab.json")
    torch.manual_seed(seed)
    return _copy(PoetryLM(ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, **model_over)).canonical_state_dict())


class _FlushingBackend:
    """A training backend whose probes are written at the end of every epoch, before its checkpoint."""

    def __init__(self, inner, recorder: Recorder):
        self._inner, self._recorder = inner, recorder

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def end_epoch(self, dev_ppl: float) -> None:
        self._inner.end_epoch(dev_ppl)
        self._recorder.end_epoch()


# ---------------------------------------------------------------------------- one run (in a worker)
def train_run(spec: dict, work: str, data_dir: str, threads: int | None = None, quiet: bool = False) -> dict:
    """Train (or continue) one run of a study; returns its record. Runs in a worker process."""
    if threads:
        torch.set_num_threads(threads)
    name, work_dir = spec["name"], Path(work)
    cfg = TrainConfig(**spec["train"])
    recorder = Recorder(
        tuple(spec["probes"]),
        work_dir / f"{name}.probes.json",
        initial=lambda: initial_state(Path(data_dir), spec["model"], cfg.seed),
        buckets=frequency_buckets(Path(data_dir)) if "rows" in spec["probes"] else None,
    )
    run_dir = work_dir / name
    resumable = run_dir.is_dir() and latest_checkpoint(run_dir) is not None
    inner = _probed_backend(cfg.backend, spec, recorder)
    log = (lambda *a: None) if quiet else (lambda msg, *a: print(f"[{name}] {msg}", flush=True))
    t0 = time.perf_counter()
    with threadpool_limits(limits=threads):
        try:
            res = fit(
                _FlushingBackend(inner, recorder) if spec["probes"] else inner,
                Path(data_dir),
                run_dir,
                spec["model"],
                cfg,
                start=Start.of(resume=resumable),
                progress=False,
                log=log,
                keep_epoch_checkpoints=False,
                replace=run_dir.exists() and not resumable,
            )
            hist, diverged = res["history"], False
        except TrainingDiverged as e:  # a sweep records a diverged run instead of stopping
            hist, diverged = (
                e.history + [{"epoch": e.epoch, "train_loss": math.nan, "dev_nll": math.inf, "dev_ppl": math.inf}],
                True,
            )
    recorder.flush()
    wall = hist[-1].get("wall_seconds") if hist and not diverged else None
    return {
        "spec": spec,
        "history": hist,
        "diverged": diverged,
        "probes": {str(k): v for k, v in sorted(recorder.records.items())},
        "best": min(hist, key=lambda h: h["dev_ppl"]) if hist else None,
        "wall_s": round(wall if wall is not None else time.perf_counter() - t0, 1),
    }


def _probed_backend(backend: str, spec: dict, recorder: Recorder):
    """The training backend of the run, its per-step hook feeding `recorder`."""
    if backend == "numpy":
        hidden = spec["model"].get("hidden_dim", 256)
        return NumpyBackend(
            lambda step, params, grads, opt: recorder(step, Probe("numpy", params=params, grads=grads, hidden=hidden))
        )
    return TorchBackend(lambda step, model, opt: recorder(step, Probe("torch", model=model)))


def _read_json(path: Path, default):
    """A record or probe file of the study (errors.read_json), `default` if there is none yet."""
    if not Path(path).exists():
        return default
    try:
        return read_json(path, "study record")
    except TangshiError as e:
        raise TangshiError(f"{e}; remove it to record that run again") from None


# ---------------------------------------------------------------------------- the study
class Study:
    """The work folder of one study: its finished runs, and the runs still to train.

    with Study(work, data_dir, jobs=2) as s:
        results = s.run([RunSpec(...), ...])   # trains what is not yet recorded
    """

    def __init__(
        self,
        work: Path,
        data_dir: Path,
        jobs: int = 1,
        threads: int | None = None,
        log=print,
        commit: str | None = None,
    ):
        self.work, self.data_dir, self.jobs, self.log = Path(work), Path(data_dir), jobs, log
        self.commit = commit  # kept in each new record: the code that trained the run
        self.threads = max(1, (threads or torch.get_num_threads()) // jobs)
        self.folder = OutputFolder(self.work, "study", resume=True, sources=[data_dir], option="--work")
        self.results: dict[str, dict] = {}

    def __enter__(self) -> Study:
        self.folder.open()
        return self

    def __exit__(self, *exc):
        self.folder.close()
        return False

    def recorded(self, spec: RunSpec) -> dict | None:
        """The record of a finished run, None if it has none; a record of other settings is refused."""
        if spec.name in self.results:
            return self.results[spec.name]
        rec = _read_json(self.work / f"{spec.name}.json", None)
        if rec is None:
            return None
        if rec.get("spec") != spec.as_json():
            raise TangshiError(
                f"{self.work / (spec.name + '.json')} records other settings than this study asks for; "
                "choose another --work"
            )
        self.results[spec.name] = rec
        return rec

    def run(self, specs: list[RunSpec]) -> dict[str, dict]:
        """Train every run of `specs` not yet recorded (`jobs` at a time); returns all their records."""
        todo = [s for s in specs if self.recorded(s) is None]
        first: dict[str, RunSpec] = {}  # each name once, with its first spec
        for s in todo:
            first.setdefault(s.name, s)
        todo = list(first.values())
        for s in todo:  # listed before any worker writes there, so a crash never leaves an unlisted entry
            self.folder._list([s.name, f"{s.name}.json", f"{s.name}.probes.json"])
        if self.jobs == 1 or len(todo) <= 1:
            for s in todo:
                self._finish(s, train_run(s.as_json(), str(self.work), str(self.data_dir), self.threads))
        elif todo:
            with ProcessPoolExecutor(max_workers=min(self.jobs, len(todo)), mp_context=get_context("spawn")) as pool:
                futures = {
                    pool.submit(train_run, s.as_json(), str(self.work), str(self.data_dir), self.threads): s
                    for s in todo
                }
                for f in as_completed(futures):
                    self._finish(futures[f], f.result())
        return {s.name: self.results[s.name] for s in specs}

    def adopt(self, report: dict, source: str, specs: list[RunSpec]) -> list[str]:
        """Take into the work folder each run of `specs` that a report's JSON holds and this folder has
        no record of, as the report kept it (its probes thinned) and marked with where it came from:
        a study moved to another machine goes on from its report instead of training its runs again.
        A run the report holds with other settings than its spec is left out. Returns the names taken."""
        taken = []
        for spec in specs:
            rec = report["runs"].get(spec.name)
            if rec is None or rec.get("spec") != spec.as_json() or self.recorded(spec) is not None:
                continue
            header = report.get("header", {})
            where = f"{source} (written {header.get('date', '?')}; {header.get('hardware', 'hardware not recorded')})"
            first = rec.get("trained", {}).get("adopted_from", where)  # a run adopted twice keeps its first source
            rec = {**rec, "trained": {"finished": header.get("date"), **rec.get("trained", {}), "adopted_from": first}}
            self.folder._list([f"{spec.name}.json"])
            with oserrors_named(self.work):
                write_atomic(self.work / f"{spec.name}.json", json.dumps(rec, indent=None))
            self.results[spec.name] = rec
            taken.append(spec.name)
        return taken

    def trained(self, name: str) -> dict:
        """When and by which commit a recorded run finished: from its record, or, for a record written
        before records kept it, the commit unknown (None) and the record file's time."""
        rec = self.results.get(name) or {}
        if "trained" in rec:
            return rec["trained"]
        stamp = datetime.fromtimestamp((self.work / f"{name}.json").stat().st_mtime, UTC)
        return {"commit": None, "finished": f"{stamp:%Y-%m-%d %H:%M} UTC"}

    def _finish(self, spec: RunSpec, rec: dict) -> None:
        rec["trained"] = {"commit": self.commit, "finished": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"}
        with oserrors_named(self.work):
            write_atomic(self.work / f"{spec.name}.json", json.dumps(rec, indent=None))
        self.results[spec.name] = rec
        best = rec["best"]
        what = "diverged" if rec["diverged"] else f"best dev ppl {best['dev_ppl']:.2f} at epoch {best['epoch']}"
        self.log(f"{spec.name}: {what} ({rec['wall_s']:.0f} s)")


def default_work(which: str, backend: str, quick: bool) -> Path:
    """Where a study keeps its runs unless --work says otherwise: under runs/ (git-ignored)."""
    tag = "-quick" if quick else ""
    suffix = "" if backend == "torch" else f"-{backend}"
    return Path("runs") / "experiments" / f"{which}{suffix}{tag}"
