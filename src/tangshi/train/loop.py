"""The training loop, one for both backends: epochs, evaluation, checkpoints, metrics.jsonl,
early stop, lineage and the curves. It knows nothing of how a step is computed: a backend
(`torch_backend.TorchBackend`, `numpy_backend.NumpyBackend`) builds its optimiser and runs one step, and
the loop asks it for the model to evaluate and the optimiser state to save.

Determinism: the model is initialised from `seed`; epoch e shuffles with a generator seeded
from (seed, e), and a backend with random training ops (dropout) reseeds them from (seed, e) too,
so `--resume` from the checkpoint of epoch e reaches exactly the weights of an uninterrupted run.

How a run starts (from scratch, resumed, or from another checkpoint's weights) is decided before
the loop, in `train.start`; the loop receives the result, a `Begun`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from tangshi.data.batches import batch_indices, make_batch
from tangshi.data.splits import Split, open_prepared, titled_splits
from tangshi.data.vocab import Vocab
from tangshi.model import checkpoint as ckpt
from tangshi.model.lm import PoetryLM
from tangshi.outputs import command_line
from tangshi.train.config import EPOCH_SEED_STRIDE, TrainConfig
from tangshi.train.evaluate import evaluate
from tangshi.train.runs import RunFolder, check_finite_loss, checkpoint_name
from tangshi.train.start import Begun, Start, begin, require_device

PROGRESS_EVERY = 20  # steps between progress-bar updates and finiteness checks (each waits for the device)


class Backend(Protocol):
    """One way of computing a training step (see torch_backend.TorchBackend, numpy_backend.NumpyBackend)."""

    name: str  # "torch" or "numpy": recorded in the checkpoints

    def prepare(self, begun: Begun, steps_per_epoch: int, log) -> None: ...  # optimiser, schedule, hooks
    def n_params(self) -> int: ...
    def begin_epoch(self, epoch: int) -> None: ...
    def zero_loss(self): ...  # what the epoch's summed loss starts from (a device tensor or a float)
    def step(self, x: torch.Tensor, y: torch.Tensor, global_step: int): ...  # one step; its mean loss
    def end_epoch(self, dev_ppl: float) -> None: ...
    def lr(self) -> float: ...
    def eval_model(self) -> PoetryLM: ...
    def optimizer_state(self) -> tuple[dict, dict, dict]: ...  # tensors, optimiser JSON, trainer.json extras


class Trainer:
    """The loop. `fit(begun)` trains from where `begun` stands to `cfg.epochs` and returns
    {"best", "history", "out"}. `stop_after_epoch` simulates an interruption (tests)."""

    def __init__(
        self,
        run: RunFolder,
        backend: Backend,
        vocab: Vocab,
        data_dir: Path,
        data_meta: dict,
        train_split: Split,
        dev_split: Split,
        *,
        progress: bool = True,
        log=print,
        keep_epoch_checkpoints: bool = True,
        stop_after_epoch: int | None = None,
    ):
        self.run, self.backend, self.vocab = run, backend, vocab
        self.data_dir, self.data_meta = data_dir, data_meta
        self.train_split, self.dev_split = train_split, dev_split
        self.progress, self.log = progress, log
        self.keep_epochs, self.stop_after_epoch = keep_epoch_checkpoints, stop_after_epoch

    def fit(self, begun: Begun) -> dict:
        cfg, history, b = begun.cfg, begun.history, self.backend
        self.model_config = begun.model.config
        steps_per_epoch = len(
            batch_indices(len(self.train_split.inputs), cfg.batch_size, torch.Generator().manual_seed(0))
        )
        if cfg.max_steps:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
        b.prepare(begun, steps_per_epoch, self.log)
        self.run.require_room(b.n_params())
        if begun.source is not None:  # the log and the links agree with the checkpoint resumed from
            self.run.resumed(begun.source, history)
        meta = self._train_meta(begun)
        best = min(history, key=lambda h: h["dev_ppl"]) if history else None
        bad_epochs = history[-1]["epoch"] - best["epoch"] if best is not None else 0  # None: no history
        # wall-clock seconds since training began (steps, evaluation, checkpoints), carried across --resume
        run_t0 = time.perf_counter() - (history[-1].get("wall_seconds", 0.0) if history else 0.0)
        global_step = (begun.start_epoch - 1) * steps_per_epoch
        for epoch in range(begun.start_epoch, cfg.epochs + 1):
            row, global_step = self._epoch(epoch, cfg, steps_per_epoch, global_step, history)
            row["wall_seconds"] = round(time.perf_counter() - run_t0, 2)
            improved = end_epoch(
                self.run,
                history,
                row,
                b.eval_model(),
                self.vocab,
                {**meta, "epoch": epoch},
                b.optimizer_state(),
                self.keep_epochs,
                self.log,
            )
            best = min(history, key=lambda h: h["dev_ppl"])
            bad_epochs = 0 if improved else bad_epochs + 1
            if self.stop_after_epoch is not None and epoch >= self.stop_after_epoch:
                break
            if cfg.early_stop and bad_epochs >= cfg.early_stop:
                self.log(
                    f"early stop: no better dev perplexity for {bad_epochs} epochs (best {best['dev_ppl']:.2f} "
                    f"at epoch {best['epoch']})"
                )
                break
        if history:
            assert best is not None  # the best row of a history that is not empty
            tag = f" [{b.name}]" if b.name != "torch" else ""
            self.run.write_curves(
                lambda f: _plot(
                    history, f, f"{self.run.path.name}{tag}: best dev ppl {best['dev_ppl']:.2f} (epoch {best['epoch']})"
                )
            )
        return {"best": best, "history": history, "out": str(self.run.path)}

    def _epoch(self, epoch: int, cfg: TrainConfig, steps_per_epoch: int, global_step: int, history: list):
        b, s = self.backend, self.train_split
        gen = torch.Generator().manual_seed(cfg.seed * EPOCH_SEED_STRIDE + epoch)
        b.begin_epoch(epoch)
        batches = batch_indices(len(s.inputs), cfg.batch_size, gen, shuffle=True, lengths=s.lengths, bucket=cfg.bucket)[
            :steps_per_epoch
        ]
        t0 = time.perf_counter()
        tot_loss, tot_tok, n_steps = b.zero_loss(), 0, 0
        tag = f" [{b.name}]" if b.name != "torch" else ""
        bar = tqdm(
            batches, desc=f"epoch {epoch}/{cfg.epochs}{tag}", disable=not self.progress, leave=False, unit="step"
        )
        trim = cfg.bucket and not self.model_config.pad_in_loss
        for idx in bar:
            x, y = make_batch(s.inputs, s.targets, s.lengths, idx, trim=trim)
            real = int((y != self.vocab.pad_id).sum())  # counted on the host, before any copy
            global_step += 1
            # summed where the loss lives: reading a device loss every step would make the host wait
            tot_loss += b.step(x, y, global_step) * real
            tot_tok += real
            n_steps += 1
            if n_steps % PROGRESS_EVERY == 0 or n_steps == len(batches):
                total = float(tot_loss)
                check_finite_loss(total, "train loss", epoch, cfg.lr, history)
                if self.progress:
                    bar.set_postfix(
                        loss=f"{total / max(tot_tok, 1):.3f}",
                        tok_s=f"{tot_tok / max(time.perf_counter() - t0, 1e-9):,.0f}",
                    )
        tot_loss = float(tot_loss)  # waits for the last step
        check_finite_loss(tot_loss, "train loss", epoch, cfg.lr, history)
        train_time = time.perf_counter() - t0
        dev = evaluate(b.eval_model(), self.dev_split, cfg.device, amp=False)
        check_finite_loss(dev["dev_nll"], "dev loss", epoch, cfg.lr, history)
        b.end_epoch(dev["dev_ppl"])
        row = {
            "epoch": epoch,
            "train_loss": tot_loss / max(tot_tok, 1),
            **dev,
            "lr": b.lr(),
            "epoch_seconds": round(train_time, 2),
            "real_tokens_per_s": round(tot_tok / max(train_time, 1e-9)),
            "steps": n_steps,
        }
        if b.name != "torch":
            row["backend"] = b.name
        return row, global_step

    def _train_meta(self, begun: Begun) -> dict:
        """The training record each checkpoint carries: data, config, command, resumes, lineage."""
        command = command_line()
        meta = {
            "data": str(self.data_dir),
            "data_meta": self.data_meta,
            "config": asdict(begun.cfg),
            "command": command,
        }
        if self.backend.name != "torch":
            meta["backend"] = self.backend.name
        if begun.source is not None:  # the run is still the one its first command started; resumes listed after
            assert begun.meta is not None  # a resumed run's records (start._resume)
            meta.update(
                command=begun.meta["command"],
                resumes=begun.meta["resumes"] + [{"after_epoch": begun.start_epoch - 1, "command": command}],
            )
        records = begun.meta or {}
        if records.get("init_from"):
            meta["init_from"] = records["init_from"]
        return meta


def fit(
    backend,
    data_dir: Path,
    out_dir: Path,
    model_over: dict | None,
    cfg: TrainConfig,
    *,
    start: Start,
    progress: bool = True,
    log=print,
    keep_epoch_checkpoints: bool = True,
    stop_after_epoch: int | None = None,
    resume_epochs: int | None = None,
    replace: bool = False,
    resume_check=None,
) -> dict:
    """Open the data and the run folder, find where the run starts, and run the loop with `backend`."""
    require_device(cfg.device)
    vocab, meta, train_split, dev_split = open_prepared(data_dir)
    data_dir = Path(data_dir)
    with RunFolder(out_dir, replace=replace, resume=start.mode == "resume", sources=(data_dir, start.path)) as run:
        begun = begin(
            run, start, vocab, data_dir, model_over, cfg, backend.name, resume_epochs, resume_check, log, data_meta=meta
        )
        if begun.model.config.titles:  # the same poems, each read after its title (data/batches.py)
            train_split, dev_split = titled_splits(data_dir, vocab)
        trainer = Trainer(
            run,
            backend,
            vocab,
            data_dir,
            meta,
            train_split,
            dev_split,
            progress=progress,
            log=log,
            keep_epoch_checkpoints=keep_epoch_checkpoints,
            stop_after_epoch=stop_after_epoch,
        )
        return trainer.fit(begun)


def end_epoch(
    run: RunFolder,
    history: list[dict],
    row: dict,
    model: PoetryLM,
    vocab: Vocab,
    train_meta: dict,
    optimizer_state: tuple[dict, dict, dict],
    keep_epoch_checkpoints: bool = True,
    log=print,
) -> bool:
    """Shared by both backends: log the epoch, write its checkpoint (the assignment-named folder, with
    optimiser state) and move `last` (and `best`) onto it, then rewrite metrics.jsonl.
    Returns whether this epoch has the best dev perplexity so far."""
    improved = not history or row["dev_ppl"] < min(h["dev_ppl"] for h in history)
    history.append(row)
    tag = f" [{row['backend']}]" if "backend" in row else ""
    log(
        f"epoch {row['epoch']:3d}{tag} | train loss {row['train_loss']:.4f} | dev loss {row['dev_nll']:.4f} "
        f"| dev ppl {row['dev_ppl']:.2f} | assignment's loss (PAD counted) {row['original_loss']:.4f} "
        f"| assignment's 2**loss ppl {row['original_ppl']:.2f} | {row['real_tokens_per_s']:,} tok/s "
        f"| {row['epoch_seconds']:.1f}s"
    )
    best = min(history, key=lambda h: h["dev_ppl"])
    meta = {**train_meta, "best_epoch": best["epoch"]}
    tensors, opt_json, trainer_extra = optimizer_state
    trainer_state = {"epoch": row["epoch"], "optimizer": opt_json, "history": history, **trainer_extra}
    run.save_epoch(
        checkpoint_name(row["epoch"], row["original_loss"]),
        lambda folder: ckpt.write_checkpoint(
            folder, model, vocab, train_meta=meta, metrics=row, optimizer_state=(tensors, trainer_state)
        ),
        improved=improved,
        keep_epochs=keep_epoch_checkpoints,
    )
    run.write_metrics(history)
    return improved


def _plot(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], marker=".")
    a.set_xlabel("epoch")
    a.set_ylabel("train loss (mean NLL, nats)")
    a.set_title("train loss")
    b.plot(ep, [h["dev_ppl"] for h in history], marker=".", color="C1")
    b.set_xlabel("epoch")
    b.set_ylabel("dev perplexity")
    b.set_title("dev perplexity (PAD excluded)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
