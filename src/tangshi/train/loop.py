"""The training loop, one for both backends: epochs, evaluation, checkpoints, metrics.jsonl,
early stop, lineage and the curves. It knows nothing of how a step is computed: a backend
(`train.TorchBackend`, `numpy_train.NumpyBackend`) builds its optimiser and runs one step, and
the loop asks it for the model to evaluate and the optimiser state to save.

Determinism: the model is initialised from `seed`; epoch e shuffles with a generator seeded
from (seed, e), and a backend with random training ops (dropout) reseeds them from (seed, e) too,
so `--resume` from the checkpoint of epoch e reaches exactly the weights of an uninterrupted run.

How a run starts is one value, `Start`: from scratch, by resuming its own newest checkpoint, or
from another checkpoint's weights (`--init-from`, widened when the sizes asked for are larger).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import json

import torch
from tqdm import tqdm

from tangshi.model import checkpoint as ckpt
from tangshi.data.batches import batch_indices, make_batch
from tangshi.errors import TangshiError
from tangshi.model.spec import param_shapes
from tangshi.machine import memory_available
from tangshi.outputs import command_line
from tangshi.model.lm import DROPOUT_FIELDS, ModelConfig, PoetryLM, widen
from tangshi.train.runs import RunFolder, check_finite_loss, checkpoint_name
from tangshi.data.splits import Split, open_prepared
from tangshi.train.evaluate import evaluate
from tangshi.train.config import EPOCH_SEED_STRIDE, TrainConfig, check_resume_options, check_same_data, require_device, saved_train_config
from tangshi.data.vocab import Vocab

PROGRESS_EVERY = 20  # steps between progress-bar updates and finiteness checks (each waits for the device)


@dataclass(frozen=True)
class Start:
    """How a run begins: "scratch", "resume" (this run's newest complete checkpoint) or "init"
    (the weights of the checkpoint at `path`, a fresh optimiser)."""

    mode: str = "scratch"
    path: Path | None = None

    @classmethod
    def of(cls, resume: bool = False, init_from: Path | str | None = None) -> "Start":
        if resume and init_from is not None:
            raise TangshiError("--resume continues the run's own weights; it cannot be combined with --init-from")
        if resume:
            return cls("resume")
        return cls("init", Path(init_from)) if init_from is not None else cls()


@dataclass
class Begun:
    """What `begin` found: the model to train and where its run stands."""

    model: PoetryLM
    cfg: TrainConfig
    history: list
    start_epoch: int = 1
    optimizer_state: tuple | None = None  # (tensors, trainer.json) of a resumed run
    source: Path | None = None  # the checkpoint resumed from
    meta: dict | None = None  # what the run's records say of its command, resumes and lineage


def begin(run: RunFolder, start: Start, vocab: Vocab, data_dir: Path, model_over: dict | None, cfg: TrainConfig,
          backend: str, resume_epochs: int | None = None, resume_check=None, log=print,
          data_meta: dict | None = None) -> Begun:
    """The model and state a run starts from, for either backend; every refusal is one line."""
    model_over = model_over or {}
    if start.mode == "resume":
        last = run.latest()
        if last is None:
            raise TangshiError(f"nothing to resume in {run.path}: it holds no complete checkpoint with optimiser state")
        model, ck_vocab, ck_meta = ckpt.load_checkpoint(last)
        _same_vocab(ck_vocab, vocab, last, data_dir)
        if data_meta is not None:
            check_same_data(ck_meta["train"].get("data_meta") or {}, data_meta, ck_meta["train"].get("data"), data_dir)
        saved = saved_train_config(ck_meta, last)
        if resume_check is not None:
            check_resume_options(last, model.config, saved, *resume_check)
        epochs = saved.epochs
        if resume_epochs is not None and resume_epochs != epochs:
            if saved.schedule not in ("constant", "plateau"):
                raise TangshiError(f"a {saved.schedule} schedule is fixed to its {epochs} epochs; resume without --epochs")
            epochs = resume_epochs
        tensors, state = ckpt.load_optimizer_state(last)
        if (state.get("backend") or "torch") != backend:
            other = "NumPy" if backend == "torch" else "PyTorch"
            raise TangshiError(f"{last} holds {other} optimiser state; resume it with --backend "
                               f"{'numpy' if backend == 'torch' else 'torch'}, or start from its weights with --init-from")
        train = ck_meta["train"]
        meta = {"command": train.get("command"), "resumes": list(train.get("resumes", [])),
                "init_from": train.get("init_from")}
        return Begun(model.train(), replace(saved, epochs=epochs, device=cfg.device), state["history"],
                     state["epoch"] + 1, (tensors, state), last, meta)
    if start.mode == "init":
        model, ck_vocab, init_meta = ckpt.load_checkpoint(start.path)
        _same_vocab(ck_vocab, vocab, start.path, data_dir)
        source_cfg = model.config
        check_memory(replace(source_cfg, **{k: model_over[k] for k in ("embed_dim", "hidden_dim") if k in model_over}))
        torch.manual_seed(cfg.seed)  # after loading, before widening, which draws the new units' weights
        model = _with_overrides(model, model_over, start.path)
        lineage = init_lineage(start.path, init_meta)
        if (model.config.embed_dim, model.config.hidden_dim) != (source_cfg.embed_dim, source_cfg.hidden_dim):
            lineage["widened_from"] = {"embed_dim": source_cfg.embed_dim, "hidden_dim": source_cfg.hidden_dim}
            log(f"widened {source_cfg.embed_dim}/{source_cfg.hidden_dim} -> {model.config.embed_dim}/"
                f"{model.config.hidden_dim} (embed/hidden); the new model computes the same function")
        return Begun(model.train(), cfg, [], meta={"init_from": lineage})
    model_cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, **model_over)
    check_memory(model_cfg)
    torch.manual_seed(cfg.seed)  # the same initial weights for both backends
    return Begun(PoetryLM(model_cfg).train(), cfg, [], meta={})


# training holds each weight about five times in fp32: the weight, its gradient, two Adam moments,
# and room for the activations and copies of a step
TRAINING_COPIES = 5


def check_memory(model_cfg: ModelConfig) -> None:
    """Refuse, before allocating, a model that cannot be trained in this machine's memory."""
    n = sum(math.prod(s) for s in param_shapes(model_cfg).values())
    need, free = TRAINING_COPIES * 4 * n, memory_available()
    if free is not None and need > free:
        raise TangshiError(f"a model of {n:,} parameters needs about {need / 1e9:.1f} GB to train, but only "
                           f"{free / 1e9:.1f} GB of memory is available; choose a smaller --embed-dim/--hidden-dim")


def saved_data_dir(out_dir: Path) -> Path | None:
    """The prepared folder a run trained on, as its newest checkpoint records it (for --resume
    without --data)."""
    last = RunFolder(out_dir).latest() if Path(out_dir).is_dir() else None
    if last is None:
        return None
    data = ckpt.read_config(last).get("train", {}).get("data")
    return Path(data) if data else None


def _same_vocab(ck_vocab: Vocab, vocab: Vocab, path: Path, data_dir: Path) -> None:
    if ck_vocab != vocab:
        raise TangshiError(f"{path} was trained on a different vocabulary than {data_dir}")


class Backend(Protocol):
    """One way of computing a training step (see train.TorchBackend, numpy_train.NumpyBackend)."""

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

    def __init__(self, run: RunFolder, backend: Backend, vocab: Vocab, data_dir: Path, data_meta: dict,
                 train_split: Split, dev_split: Split, *, progress: bool = True, log=print,
                 keep_epoch_checkpoints: bool = True, stop_after_epoch: int | None = None):
        self.run, self.backend, self.vocab = run, backend, vocab
        self.data_dir, self.data_meta = data_dir, data_meta
        self.train_split, self.dev_split = train_split, dev_split
        self.progress, self.log = progress, log
        self.keep_epochs, self.stop_after_epoch = keep_epoch_checkpoints, stop_after_epoch

    def fit(self, begun: Begun) -> dict:
        cfg, history, b = begun.cfg, begun.history, self.backend
        self.model_config = begun.model.config
        steps_per_epoch = len(batch_indices(len(self.train_split.inputs), cfg.batch_size, torch.Generator().manual_seed(0)))
        if cfg.max_steps:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
        b.prepare(begun, steps_per_epoch, self.log)
        self.run.require_room(b.n_params())
        if begun.source is not None:  # the log and the links agree with the checkpoint resumed from
            self.run.resumed(begun.source, history)
        meta = self._train_meta(begun)
        best = min(history, key=lambda h: h["dev_ppl"]) if history else None
        bad_epochs = history[-1]["epoch"] - best["epoch"] if history else 0
        # wall-clock seconds since training began (steps, evaluation, checkpoints), carried across --resume
        run_t0 = time.perf_counter() - (history[-1].get("wall_seconds", 0.0) if history else 0.0)
        global_step = (begun.start_epoch - 1) * steps_per_epoch
        for epoch in range(begun.start_epoch, cfg.epochs + 1):
            row, global_step = self._epoch(epoch, cfg, steps_per_epoch, global_step, history)
            row["wall_seconds"] = round(time.perf_counter() - run_t0, 2)
            improved = end_epoch(self.run, history, row, b.eval_model(), self.vocab, {**meta, "epoch": epoch},
                                 b.optimizer_state(), self.keep_epochs, self.log)
            best = min(history, key=lambda h: h["dev_ppl"])
            bad_epochs = 0 if improved else bad_epochs + 1
            if self.stop_after_epoch is not None and epoch >= self.stop_after_epoch:
                break
            if cfg.early_stop and bad_epochs >= cfg.early_stop:
                self.log(f"early stop: no better dev perplexity for {bad_epochs} epochs (best {best['dev_ppl']:.2f} "
                         f"at epoch {best['epoch']})")
                break
        if history:
            tag = f" [{b.name}]" if b.name != "torch" else ""
            self.run.write_curves(lambda f: _plot(history, f, f"{self.run.path.name}{tag}: best dev ppl "
                                                              f"{best['dev_ppl']:.2f} (epoch {best['epoch']})"))
        return {"best": best, "history": history, "out": str(self.run.path)}

    def _epoch(self, epoch: int, cfg: TrainConfig, steps_per_epoch: int, global_step: int, history: list):
        b, s = self.backend, self.train_split
        gen = torch.Generator().manual_seed(cfg.seed * EPOCH_SEED_STRIDE + epoch)
        b.begin_epoch(epoch)
        batches = batch_indices(len(s.inputs), cfg.batch_size, gen, shuffle=True, lengths=s.lengths,
                                bucket=cfg.bucket)[:steps_per_epoch]
        t0 = time.perf_counter()
        tot_loss, tot_tok, n_steps = b.zero_loss(), 0, 0
        tag = f" [{b.name}]" if b.name != "torch" else ""
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}{tag}", disable=not self.progress, leave=False, unit="step")
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
                    bar.set_postfix(loss=f"{total / max(tot_tok, 1):.3f}",
                                    tok_s=f"{tot_tok / max(time.perf_counter() - t0, 1e-9):,.0f}")
        tot_loss = float(tot_loss)  # waits for the last step
        check_finite_loss(tot_loss, "train loss", epoch, cfg.lr, history)
        train_time = time.perf_counter() - t0
        dev = evaluate(b.eval_model(), self.dev_split, cfg.device, amp=False)
        check_finite_loss(dev["dev_nll"], "dev loss", epoch, cfg.lr, history)
        b.end_epoch(dev["dev_ppl"])
        row = {"epoch": epoch, "train_loss": tot_loss / max(tot_tok, 1), **dev, "lr": b.lr(),
               "epoch_seconds": round(train_time, 2), "real_tokens_per_s": round(tot_tok / max(train_time, 1e-9)),
               "steps": n_steps}
        if b.name != "torch":
            row["backend"] = b.name
        return row, global_step

    def _train_meta(self, begun: Begun) -> dict:
        """The training record each checkpoint carries: data, config, command, resumes, lineage."""
        command = command_line()
        meta = {"data": str(self.data_dir), "data_meta": self.data_meta, "config": asdict(begun.cfg),
                "command": command}
        if self.backend.name != "torch":
            meta["backend"] = self.backend.name
        if begun.source is not None:  # the run is still the one its first command started; resumes listed after
            meta.update(command=begun.meta["command"], resumes=begun.meta["resumes"] + [
                {"after_epoch": begun.start_epoch - 1, "command": command}])
        if (begun.meta or {}).get("init_from"):
            meta["init_from"] = begun.meta["init_from"]
        return meta


def fit(backend, data_dir: Path, out_dir: Path, model_over: dict | None, cfg: TrainConfig, *, start: Start,
        progress: bool = True, log=print, keep_epoch_checkpoints: bool = True, stop_after_epoch: int | None = None,
        resume_epochs: int | None = None, replace: bool = False, resume_check=None) -> dict:
    """Open the data and the run folder, find where the run starts, and run the loop with `backend`."""
    require_device(cfg.device)
    vocab, meta, train_split, dev_split = open_prepared(data_dir)
    data_dir = Path(data_dir)
    with RunFolder(out_dir, replace=replace, resume=start.mode == "resume", sources=(data_dir, start.path)) as run:
        begun = begin(run, start, vocab, data_dir, model_over, cfg, backend.name, resume_epochs, resume_check, log,
                      data_meta=meta)
        trainer = Trainer(run, backend, vocab, data_dir, meta, train_split, dev_split, progress=progress, log=log,
                          keep_epoch_checkpoints=keep_epoch_checkpoints, stop_after_epoch=stop_after_epoch)
        return trainer.fit(begun)


def end_epoch(run: RunFolder, history: list[dict], row: dict, model: PoetryLM, vocab: Vocab, train_meta: dict,
              optimizer_state: tuple[dict, dict, dict], keep_epoch_checkpoints: bool = True, log=print) -> bool:
    """Shared by both backends: log the epoch, write its checkpoint (the seed-named folder, with
    optimiser state) and move `last` (and `best`) onto it, then rewrite metrics.jsonl.
    Returns whether this epoch has the best dev perplexity so far."""
    improved = not history or row["dev_ppl"] < min(h["dev_ppl"] for h in history)
    history.append(row)
    tag = f" [{row['backend']}]" if "backend" in row else ""
    log(f"epoch {row['epoch']:3d}{tag} | train loss {row['train_loss']:.4f} | dev loss {row['dev_nll']:.4f} "
        f"| dev ppl {row['dev_ppl']:.2f} | seed's loss (PAD counted) {row['seed_loss']:.4f} "
        f"| seed's 2**loss ppl {row['seed_ppl']:.2f} | {row['real_tokens_per_s']:,} tok/s | {row['epoch_seconds']:.1f}s")
    best = min(history, key=lambda h: h["dev_ppl"])
    meta = {**train_meta, "best_epoch": best["epoch"]}
    tensors, opt_json, trainer_extra = optimizer_state
    trainer_state = {"epoch": row["epoch"], "optimizer": opt_json, "history": history, **trainer_extra}
    run.save_epoch(checkpoint_name(row["epoch"], row["seed_loss"]),
                   lambda folder: ckpt.write_checkpoint(folder, model, vocab, train_meta=meta, metrics=row,
                                                        optimizer_state=(tensors, trainer_state)),
                   improved=improved, keep_epochs=keep_epoch_checkpoints)
    run.write_metrics(history)
    return improved


def _plot(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], marker=".")
    a.set_xlabel("epoch"); a.set_ylabel("train loss (mean NLL, nats)"); a.set_title("train loss")
    b.plot(ep, [h["dev_ppl"] for h in history], marker=".", color="C1")
    b.set_xlabel("epoch"); b.set_ylabel("dev perplexity"); b.set_title("dev perplexity (PAD excluded)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# model options that --init-from may change: they act in training only, not on the weights' shapes
TRAINING_ONLY_MODEL_FIELDS = (*DROPOUT_FIELDS, "fused", "fused_head")


def _with_overrides(model: PoetryLM, model_over: dict, source: Path) -> PoetryLM:
    """Apply the training-only model options of this run to weights loaded with --init-from;
    any other option that differs from the checkpoint's is an error, not silently ignored."""
    cfg = model.config
    sizes = {k: model_over[k] for k in ("embed_dim", "hidden_dim") if model_over.get(k, getattr(cfg, k)) != getattr(cfg, k)}
    if sizes:  # a larger model started from a smaller one: widened so that it computes the same function
        model = widen(model, sizes.get("embed_dim", cfg.embed_dim), sizes.get("hidden_dim", cfg.hidden_dim))
        cfg = model.config
    clash = {k: v for k, v in model_over.items() if k not in TRAINING_ONLY_MODEL_FIELDS and getattr(cfg, k, v) != v}
    if clash:
        raise TangshiError(f"--init-from {source}: its model has " + ", ".join(
            f"{k}={getattr(cfg, k)!r}" for k in clash) + f", not {', '.join(f'{k}={v!r}' for k, v in clash.items())}")
    changes = {k: v for k, v in model_over.items() if k in TRAINING_ONLY_MODEL_FIELDS}
    if not changes:
        return model
    new = PoetryLM(replace(cfg, **changes))
    new.load_canonical_state_dict(model.canonical_state_dict())
    return new


def init_lineage(source: Path, meta: dict) -> dict:
    """What a run started from (--init-from): the source run's command, epochs, training seconds
    and dev perplexity, and the source's own lineage, so a model card can tell the whole story."""
    tmeta = meta.get("train", {})
    history = []
    for f in (source / ckpt.TRAINER, source.parent / "metrics.jsonl"):  # last/ has trainer.json; best/ its run's log
        try:
            text = f.read_text(encoding="utf-8")
            history = (json.loads(text).get("history", []) if f.suffix == ".json"
                       else [json.loads(line) for line in text.splitlines() if line.strip()])
            break
        except (OSError, ValueError, AttributeError):
            continue
    epoch = meta.get("metrics", {}).get("epoch")
    if epoch is not None:  # the weights are those of this epoch: later epochs did not lead to them
        history = [h for h in history if h.get("epoch", 0) <= epoch]
    return {"path": str(source), "command": tmeta.get("command"), "config": tmeta.get("config"),
            "epochs": len(history), "train_seconds": round(sum(h.get("epoch_seconds", 0) for h in history), 1),
            "dev_ppl": meta.get("metrics", {}).get("dev_ppl"), "history": history,
            "resumes": tmeta.get("resumes") or [], "init_from": tmeta.get("init_from")}


