"""`tangshi train --backend numpy`: the same model, batches and checkpoints, trained by the NumPy twin.

The NumPy backend starts from the very weights the PyTorch backend would
(the same seeded initialisation), visits the same batches in the same order,
and writes checkpoints in the same format, so either backend's checkpoint
generates with `tangshi generate` and continues training in the other
(`--init-from`). Dev metrics are computed by the shared `train.evaluate` on the
loaded weights, so both backends are scored by one piece of code.

PyTorch-only options (rejected here with a clear error): dropout of any kind,
DropConnect, learning-rate schedules, bf16. Gradient clipping is supported.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from . import numpy_lstm as nl
from .batches import batch_indices, make_batch
from .errors import TangshiError
from .model import DROPOUT_FIELDS, ModelConfig, PoetryLM
from .runs import RunFolder, check_finite_loss
from .train import (EPOCH_SEED_STRIDE, TrainConfig, _plot, _with_overrides, check_resume_options, end_epoch, evaluate,
                    open_prepared, saved_train_config)
from .vocab import Vocab

NUMPY_OPTIMIZERS = {"adam": nl.Adam, "adamw": nl.AdamW, "adagrad": nl.Adagrad, "sgd": nl.SGD}
TORCH_ONLY = DROPOUT_FIELDS  # the NumPy twin trains without dropout


def make_optimizer(params: dict, cfg: TrainConfig):
    cls = NUMPY_OPTIMIZERS[cfg.optimizer]
    if cfg.optimizer == "sgd":
        return cls(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def check_numpy_options(model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    used = [k for k in TORCH_ONLY if getattr(model_cfg, k)]
    if used:
        raise TangshiError(f"--backend numpy does not support {', '.join(used)} (PyTorch backend only)")
    if cfg.schedule != "constant":
        raise TangshiError("--backend numpy supports only --schedule constant")
    if cfg.amp:
        raise TangshiError("--backend numpy trains in fp32; drop --amp")


def params_to_model(params: dict[str, np.ndarray], model_cfg: ModelConfig) -> PoetryLM:
    model = PoetryLM(model_cfg)
    model.load_canonical_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in params.items()})
    return model


def model_to_params(model: PoetryLM) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy().copy() for k, v in model.canonical_state_dict().items()}


def clip_grads(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ semantics: scale all grads by max_norm/(norm+1e-6) when norm > max_norm."""
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in grads.values():
            g *= coef
    return norm


def train_numpy(data_dir: Path, out_dir: Path, model_over: dict | None = None, cfg: TrainConfig = TrainConfig(),
                resume: bool = False, progress: bool = True, log=print, init_from: Path | None = None,
                stop_after_epoch: int | None = None, on_step=None, replace: bool = False,
                keep_epoch_checkpoints: bool = True, resume_check: tuple[dict, dict] | None = None) -> dict:
    """Train with the NumPy twin. `on_step(step, params, grads, optimizer)` is called with
    step 0 (grads None) before training and after every optimiser step, for the experiments.
    The run folder follows the same policy as the PyTorch backend's (runs.RunFolder)."""
    if resume and init_from is not None:
        raise TangshiError("--resume continues the run's own weights; it cannot be combined with --init-from")
    vocab, meta, train_split, dev_split = open_prepared(data_dir)
    data_dir = Path(data_dir)
    with RunFolder(out_dir, replace=replace, resume=resume, sources=(data_dir, init_from)) as run:
        return _train_numpy(run, data_dir, vocab, meta, train_split, dev_split, model_over, cfg, resume=resume,
                            progress=progress, log=log, init_from=init_from, stop_after_epoch=stop_after_epoch,
                            on_step=on_step, keep_epoch_checkpoints=keep_epoch_checkpoints,
                            resume_check=resume_check)


def _train_numpy(run: RunFolder, data_dir: Path, vocab: Vocab, meta: dict, train_split, dev_split,
                 model_over: dict | None, cfg: TrainConfig, *, resume: bool, progress: bool, log,
                 init_from: Path | None, stop_after_epoch: int | None, on_step, keep_epoch_checkpoints: bool,
                 resume_check) -> dict:
    out_dir = run.path
    history: list[dict] = []
    start_epoch = 1
    if resume or init_from is not None:
        src = run.latest() if resume else Path(init_from)
        if src is None:
            raise TangshiError(f"nothing to resume in {out_dir}: it holds no complete checkpoint with optimiser state")
        model, ck_vocab, ck_meta = ckpt.load_checkpoint(src)
        if ck_vocab != vocab:
            raise TangshiError(f"{src} was trained on a different vocabulary than {data_dir}")
        if resume:
            cfg = saved_train_config(ck_meta, src)
            if resume_check is not None:
                check_resume_options(src, model.config, cfg, *resume_check)
                cfg = replace(cfg, epochs=resume_check[1].get("epochs", cfg.epochs))  # constant lr: may extend
        else:  # the same rules as the PyTorch backend: widen to larger sizes, refuse other changes
            torch.manual_seed(cfg.seed)
            model = _with_overrides(model, model_over or {}, src)
        model_cfg = model.config
    else:
        torch.manual_seed(cfg.seed)  # the same initial weights as the PyTorch backend
        model_cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, **(model_over or {}))
        model = PoetryLM(model_cfg)
    check_numpy_options(model_cfg, cfg)
    params = model_to_params(model)
    opt = make_optimizer(params, cfg)
    if resume:
        tensors, state = ckpt.load_optimizer_state(src)
        if state.get("backend") != "numpy":
            raise TangshiError(f"{src} holds PyTorch optimiser state; use --init-from to continue its weights in NumPy")
        opt.load_state_dict({**state["optimizer"], "tensors": {k: v.numpy() for k, v in tensors.items()}})
        history = state["history"]
        start_epoch = state["epoch"] + 1

    run.require_room(sum(v.size for v in params.values()))
    if resume:
        run.resumed(src, history)
    best = min(history, key=lambda h: h["dev_ppl"]) if history else None
    steps_per_epoch = len(batch_indices(len(train_split.inputs), cfg.batch_size, torch.Generator().manual_seed(0)))
    if cfg.max_steps:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
    pad = vocab.pad_id
    ws = nl.Workspace() if hasattr(nl, "Workspace") else None
    global_step = (start_epoch - 1) * steps_per_epoch
    if on_step is not None and global_step == 0:
        on_step(0, params, None, opt)
    for epoch in range(start_epoch, cfg.epochs + 1):
        gen = torch.Generator().manual_seed(cfg.seed * EPOCH_SEED_STRIDE + epoch)
        batches = batch_indices(len(train_split.inputs), cfg.batch_size, gen, shuffle=True,
                                lengths=train_split.lengths, bucket=cfg.bucket)[:steps_per_epoch]
        t0 = time.perf_counter()
        tot_loss, tot_tok = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs} [numpy]", disable=not progress, leave=False, unit="step")
        for idx in bar:
            x, y = make_batch(train_split.inputs, train_split.targets, train_split.lengths, idx,
                              trim=cfg.bucket and not model_cfg.pad_in_loss)
            x, y = x.numpy(), y.numpy()
            if model_cfg.pad_in_loss:
                raise TangshiError("--backend numpy masks PAD in the loss; drop --pad-in-loss")
            loss, cache = nl.forward(params, model_cfg, x, y, pad, **({"workspace": ws} if ws is not None else {}))
            grads = nl.backward(cache)
            if cfg.clip > 0:
                clip_grads(grads, cfg.clip)
            opt.step(grads)
            global_step += 1
            if on_step is not None:
                on_step(global_step, params, grads, opt)
            real = int((y != pad).sum())
            check_finite_loss(float(loss), "train loss", epoch, cfg.lr, history)
            tot_loss += float(loss) * real
            tot_tok += real
            bar.set_postfix(loss=f"{float(loss):.3f}", tok_s=f"{tot_tok / max(time.perf_counter() - t0, 1e-9):,.0f}")
        train_time = time.perf_counter() - t0
        model = params_to_model(params, model_cfg)
        dev = evaluate(model, dev_split)
        check_finite_loss(dev["dev_nll"], "dev loss", epoch, cfg.lr, history)
        row = {"epoch": epoch, "train_loss": tot_loss / max(tot_tok, 1), **dev, "lr": cfg.lr,
               "epoch_seconds": round(train_time, 2), "real_tokens_per_s": round(tot_tok / max(train_time, 1e-9)),
               "steps": len(batches), "backend": "numpy"}
        sd = opt.state_dict()
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.pop("tensors").items()}
        end_epoch(run, history, row, model, vocab,
                  {"data": str(data_dir), "data_meta": meta, "config": asdict(cfg), "epoch": epoch, "backend": "numpy"},
                  optimizer_state=(tensors, sd), trainer_extra={"backend": "numpy"},
                  keep_epoch_checkpoints=keep_epoch_checkpoints, log=log)
        best = min(history, key=lambda h: h["dev_ppl"])
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    if history:
        run.write_curves(lambda f: _plot(history, f, f"{out_dir.name} [numpy]: best dev ppl {best['dev_ppl']:.2f} "
                                                     f"(epoch {best['epoch']})"))
    return {"best": best, "history": history, "out": str(out_dir)}
