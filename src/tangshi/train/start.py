"""How a training run starts, decided before the loop runs: from scratch, by resuming the run's
own newest checkpoint (its options checked against the saved ones), or from another checkpoint's
weights (`--init-from`, widened when the sizes asked for are larger, with the source's lineage).
The result is one value, `Begun`, that the loop (`train.loop`) trains from.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError
from tangshi.machine import memory_available
from tangshi.model import checkpoint as ckpt
from tangshi.model.lm import DROPOUT_FIELDS, ModelConfig, PoetryLM, Runtime, widen
from tangshi.model.spec import param_shapes
from tangshi.train.config import TrainConfig, check_device, check_resume_options, check_same_data, saved_train_config
from tangshi.train.runs import RunFolder


@dataclass(frozen=True)
class Start:
    """How a run begins: "scratch", "resume" (this run's newest complete checkpoint) or "init"
    (the weights of the checkpoint at `path`, a fresh optimiser)."""

    mode: str = "scratch"
    path: Path | None = None

    @classmethod
    def of(cls, resume: bool = False, init_from: Path | str | None = None) -> Start:
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


def begin(
    run: RunFolder,
    start: Start,
    vocab: Vocab,
    data_dir: Path,
    model_over: dict | None,
    cfg: TrainConfig,
    backend: str,
    resume_epochs: int | None = None,
    resume_check=None,
    log=print,
    data_meta: dict | None = None,
) -> Begun:
    """The model and state a run starts from, for either backend; every refusal is one line."""
    model_over = model_over or {}
    if start.mode == "resume":
        return _resume(run, vocab, data_dir, cfg, backend, resume_epochs, resume_check, data_meta)
    if start.mode == "init":
        assert start.path is not None
        return _init_from(start.path, vocab, data_dir, model_over, cfg, log)
    model_cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, **model_over)
    check_memory(model_cfg)
    torch.manual_seed(cfg.seed)  # the same initial weights for both backends
    return Begun(PoetryLM(model_cfg, runtime_of(cfg)).train(), cfg, [], meta={})


def _resume(run, vocab, data_dir, cfg, backend, resume_epochs, resume_check, data_meta) -> Begun:
    """The run's newest complete checkpoint, its saved options, optimiser state and history, checked
    against what the command gave (options, data, backend)."""
    last = run.latest()
    if last is None:
        raise TangshiError(f"nothing to resume in {run.path}: it holds no complete checkpoint with optimiser state")
    saved = saved_train_config(ckpt.read_config(last), last)
    model, ck_vocab, ck_meta = ckpt.load_checkpoint(last, runtime=runtime_of(saved))  # the run's own kernel
    _same_vocab(ck_vocab, vocab, last, data_dir)
    if data_meta is not None:
        check_same_data(ck_meta["train"].get("data_meta") or {}, data_meta, ck_meta["train"].get("data"), data_dir)
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
        raise TangshiError(
            f"{last} holds {other} optimiser state; resume it with --backend "
            f"{'numpy' if backend == 'torch' else 'torch'}, or start from its weights with --init-from"
        )
    train = ck_meta["train"]
    meta = {
        "command": train.get("command"),
        "resumes": list(train.get("resumes", [])),
        "init_from": train.get("init_from"),
    }
    cfg = replace(saved, epochs=epochs, device=cfg.device)
    return Begun(model.train(), cfg, state["history"], state["epoch"] + 1, (tensors, state), last, meta)


def _init_from(source: Path, vocab, data_dir, model_over: dict, cfg: TrainConfig, log) -> Begun:
    """Another checkpoint's weights (widened if larger sizes are asked for), a fresh optimiser, and
    the source's lineage."""
    model, ck_vocab, init_meta = ckpt.load_checkpoint(source, runtime=runtime_of(cfg))
    _same_vocab(ck_vocab, vocab, source, data_dir)
    source_cfg = model.config
    check_memory(replace(source_cfg, **{k: model_over[k] for k in ("embed_dim", "hidden_dim") if k in model_over}))
    torch.manual_seed(cfg.seed)  # after loading, before widening, which draws the new units' weights
    model = _with_overrides(model, model_over, source)
    lineage = init_lineage(source, init_meta)
    if (model.config.embed_dim, model.config.hidden_dim) != (source_cfg.embed_dim, source_cfg.hidden_dim):
        lineage["widened_from"] = {"embed_dim": source_cfg.embed_dim, "hidden_dim": source_cfg.hidden_dim}
        log(
            f"widened {source_cfg.embed_dim}/{source_cfg.hidden_dim} -> {model.config.embed_dim}/"
            f"{model.config.hidden_dim} (embed/hidden); the new model computes the same function"
        )
    return Begun(model.train(), cfg, [], meta={"init_from": lineage})


def runtime_of(cfg: TrainConfig) -> Runtime:
    """How the model runs in a training run: its kernel options."""
    return Runtime(impl=cfg.impl, fused=cfg.fused)


def require_device(device: str) -> None:
    """--device names a device this machine has."""
    check_device(device)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise TangshiError(f"--device {device} asked for, but no CUDA device is available")


# training holds each weight about five times in fp32: the weight, its gradient, two Adam moments,
# and room for the activations and copies of a step
TRAINING_COPIES = 5


def check_memory(model_cfg: ModelConfig) -> None:
    """Refuse, before allocating, a model that cannot be trained in this machine's memory."""
    n = sum(math.prod(s) for s in param_shapes(model_cfg).values())
    need, free = TRAINING_COPIES * 4 * n, memory_available()
    if free is not None and need > free:
        raise TangshiError(
            f"a model of {n:,} parameters needs about {need / 1e9:.1f} GB to train, but only "
            f"{free / 1e9:.1f} GB of memory is available; choose a smaller --embed-dim/--hidden-dim"
        )


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


# model options that --init-from may change: they act in training only, not on the weights' shapes
# what a run started from another checkpoint's weights may change: the regularisers, and whether it
# learns to read titles (the weights' shapes are the same)
TRAINING_ONLY_MODEL_FIELDS = (*DROPOUT_FIELDS, "titles")


def _with_overrides(model: PoetryLM, model_over: dict, source: Path) -> PoetryLM:
    """Apply the training-only model options of this run to weights loaded with --init-from;
    any other option that differs from the checkpoint's is an error, not silently ignored."""
    cfg = model.config
    sizes = {
        k: model_over[k] for k in ("embed_dim", "hidden_dim") if model_over.get(k, getattr(cfg, k)) != getattr(cfg, k)
    }
    if sizes:  # a larger model started from a smaller one: widened so that it computes the same function
        model = widen(model, sizes.get("embed_dim", cfg.embed_dim), sizes.get("hidden_dim", cfg.hidden_dim))
        cfg = model.config
    clash = {k: v for k, v in model_over.items() if k not in TRAINING_ONLY_MODEL_FIELDS and getattr(cfg, k, v) != v}
    if clash:
        raise TangshiError(
            f"--init-from {source}: its model has "
            + ", ".join(f"{k}={getattr(cfg, k)!r}" for k in clash)
            + f", not {', '.join(f'{k}={v!r}' for k, v in clash.items())}"
        )
    changes = {k: v for k, v in model_over.items() if k in TRAINING_ONLY_MODEL_FIELDS}
    if not changes:
        return model
    new = PoetryLM(replace(cfg, **changes), model.runtime)
    new.load_canonical_state_dict(model.canonical_state_dict())
    return new


def init_lineage(source: Path, meta: dict) -> dict:
    """What a run started from (--init-from): the source run's command, epochs, training seconds
    and dev perplexity, and the source's own lineage, so a model card can tell the whole story."""
    tmeta = meta.get("train", {})
    history: list[dict] = []
    for f in (source / ckpt.TRAINER, source.parent / "metrics.jsonl"):  # last/ has trainer.json; best/ its run's log
        try:
            text = f.read_text(encoding="utf-8")
            history = (
                json.loads(text).get("history", [])
                if f.suffix == ".json"
                else [json.loads(line) for line in text.splitlines() if line.strip()]
            )
            break
        except (OSError, ValueError, AttributeError):
            continue
    if not history:  # an exported model keeps its run's record in its config.json (model/bundled.py)
        history = list(tmeta.get("history") or [])
    epoch = meta.get("metrics", {}).get("epoch")
    if epoch is not None:  # the weights are those of this epoch: later epochs did not lead to them
        history = [h for h in history if h.get("epoch", 0) <= epoch]
    return {
        "path": str(source),
        "command": tmeta.get("command"),
        "config": tmeta.get("config"),
        "epochs": len(history),
        "train_seconds": round(sum(h.get("epoch_seconds", 0) for h in history), 1),
        "dev_ppl": meta.get("metrics", {}).get("dev_ppl"),
        "history": history,
        "resumes": tmeta.get("resumes") or [],
        "init_from": tmeta.get("init_from"),
    }
