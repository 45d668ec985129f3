"""The training loop: batches → model → optimiser → per-epoch dev metrics → checkpoints.

Determinism: the model is initialised from `seed`; epoch e shuffles with a
generator seeded from (seed, e) and reseeds torch's RNG (dropout) from
(seed, e), so `--resume` from the checkpoint of epoch e reaches exactly the
weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint as ckpt
from .batches import batch_indices, encode_poems, make_batch
from .data import read_meta, read_split, require_prepared
from .errors import TangshiError, check_number
from .graphstep import TrainStep, graph_capturable_optimizer
from .model import DROPOUT_FIELDS, ModelConfig, PoetryLM, widen
from .runs import RunFolder, check_finite_loss, checkpoint_name
from .vocab import Vocab

OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd")
SCHEDULES = ("constant", "onecycle", "cosine", "plateau")
BACKENDS = ("torch", "numpy")
# ranges an option is checked against: generous, but a value outside is a typo, not a recipe
MAX_EPOCHS, MAX_BATCH, MAX_LR, MAX_WEIGHT_DECAY = 100_000, 65_536, 10.0, 10.0
MAX_CLIP = 1e9
MAX_SEED = 2**32 - 1  # what numpy's and torch's generators both accept
EVAL_BATCH = 256
EPOCH_SEED_STRIDE = 1_000_003  # keeps (seed, epoch) streams apart
LOG2E = 1.0 / math.log(2.0)
PROGRESS_EVERY = 20  # steps between progress-bar updates (each one waits for the device)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.01
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    schedule: str = "constant"
    warmup: float = 0.05  # cosine: share of steps spent warming up
    plateau_patience: int = 1
    plateau_factor: float = 0.5
    clip: float = 0.0  # gradient-norm clipping (0 = off)
    early_stop: int = 0  # stop after this many epochs without a better dev perplexity (0 = off)
    seed: int = 0
    bucket: bool = True  # length-bucketed, trimmed batches
    amp: bool | None = None  # bf16 autocast for the big matrix products; None = where it is fast (CUDA, CPU with AMX/AVX512-BF16)
    device: str = "cpu"
    cuda_graph: bool | None = None  # replay the whole step from CUDA graphs; None = on with CUDA where it applies
    graph_len_multiple: int = 8  # graphed batches are padded to a multiple of this length (one graph per length)
    backend: str = "torch"
    max_steps: int = 0  # stop each epoch after this many steps (0 = all): smoke tests only

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise TangshiError(f"unknown optimizer {self.optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            raise TangshiError(f"unknown schedule {self.schedule!r} (choose from {', '.join(SCHEDULES)})")
        if self.backend not in BACKENDS:
            raise TangshiError(f"unknown backend {self.backend!r} (choose from {', '.join(BACKENDS)})")
        check_number("--epochs", self.epochs, 1, MAX_EPOCHS, integer=True)
        check_number("--batch-size", self.batch_size, 1, MAX_BATCH, integer=True)
        check_number("--lr", self.lr, 0, MAX_LR, lo_open=True)
        check_number("--weight-decay", self.weight_decay, 0, MAX_WEIGHT_DECAY)
        check_number("--momentum", self.momentum, 0, 1, hi_open=True)
        check_number("--warmup", self.warmup, 0, 1)
        check_number("--plateau-patience", self.plateau_patience, 0, MAX_EPOCHS, integer=True)
        check_number("--plateau-factor", self.plateau_factor, 0, 1, lo_open=True, hi_open=True)
        check_number("--clip", self.clip, 0, MAX_CLIP)
        check_number("--early-stop", self.early_stop, 0, MAX_EPOCHS, integer=True)
        check_number("--seed", self.seed, 0, MAX_SEED, integer=True)
        check_number("--max-steps", self.max_steps, 0, 1 << 40, integer=True)
        check_number("graph_len_multiple", self.graph_len_multiple, 1, 64, integer=True)
        check_device(self.device)


# Presets: (model overrides, train overrides). `seed` is the seed's recipe exactly.
PRESETS = {
    "seed": (dict(relu_logits=True, pad_in_loss=True, tie_weights=False),
             dict(optimizer="adam", lr=0.01, weight_decay=1e-4, epochs=50, schedule="constant", clip=0.0, bucket=False)),
    # the best measured recipe on the 10k split (docs/training.md, run F2)
    "default": (dict(tie_weights=True, init="torch", dropout_embed=0.2, dropout_output=0.4, weight_drop=0.3),
                dict(optimizer="adamw", lr=3e-3, weight_decay=0.1, batch_size=32, epochs=40, schedule="cosine",
                     warmup=0.05, clip=1.0)),
    # the first tuned recipe, kept so that the first bundled model's two stages can be rerun as recorded
    "awd-v1": (dict(tie_weights=True, dropout_embed=0.2, dropout_output=0.3, weight_drop=0.2),
               dict(optimizer="adamw", lr=3e-3, weight_decay=0.01, epochs=50, schedule="onecycle", clip=1.0)),
}


def check_device(device: str) -> None:
    """--device: cpu, cuda or cuda:N (one line for anything else; availability is checked when training starts)."""
    try:
        kind = torch.device(device).type if isinstance(device, str) else None
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise TangshiError(f"--device must be cpu, cuda or cuda:N, got {device!r}")


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 matrix products beat fp32 on CUDA and on CPUs with AMX or AVX512-BF16; elsewhere
    they are emulated and slower (measured 2.5x slower on an AVX512 CPU without them)."""
    if device.type == "cuda":
        return True
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, tensor_lr: bool = False) -> torch.optim.Optimizer:
    """tensor_lr (the graphed step): Adam/AdamW read lr from a tensor, which the scheduler fills in
    place, and on CUDA keep their step count on the device too (capturable), so a replayed graph
    sees the schedule. On CPU (where the tests run the same step without capture) lr alone is a tensor."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        if tensor_lr:
            dev = params[0].device
            extra = dict(capturable=True) if dev.type == "cuda" else dict(foreach=False)
            return cls(params, lr=torch.tensor(cfg.lr, device=dev), weight_decay=cfg.weight_decay, **extra)
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def use_cuda_graphs(cfg: TrainConfig, device: torch.device, on_step=None) -> bool:
    """--cuda-graph: asked for → it must be possible (one clear error if not); not said → on where it applies."""
    if cfg.cuda_graph is False:
        return False
    reasons = []
    if device.type != "cuda":
        reasons.append("it needs --device cuda")
    if cfg.optimizer not in ("adam", "adamw"):
        reasons.append(f"the {cfg.optimizer} optimiser does not keep its state on the GPU (adam, adamw do)")
    if cfg.schedule == "onecycle":  # it cycles Adam's beta1, a Python number that a graph would freeze
        reasons.append("one-cycle moves Adam's beta1, which a captured step would keep fixed")
    if on_step is not None:
        reasons.append("a per-step hook reads the model between steps")
    if cfg.cuda_graph and reasons:
        if cfg.optimizer not in ("adam", "adamw"):
            graph_capturable_optimizer(cfg.optimizer)
        raise TangshiError("--cuda-graph: " + "; ".join(reasons))
    return not reasons


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Returns (scheduler or None, 'step' | 'epoch')."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total), "step"
    if cfg.schedule == "cosine":
        warm = max(1, int(cfg.warmup * total))
        return torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-2, end_factor=1.0, total_iters=warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warm))], milestones=[warm]), "step"
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience), "epoch"
    return None, "step"


@dataclass
class Split:
    inputs: torch.Tensor  # (N, 64)
    targets: torch.Tensor  # (N, 64)
    lengths: torch.Tensor  # (N,) real target tokens

    @property
    def real_tokens(self) -> int:
        return int(self.lengths.sum())


def load_split(data_dir: Path, split: str, vocab: Vocab) -> Split:
    return Split(*encode_poems(read_split(data_dir, split), vocab))


@torch.no_grad()
def evaluate(model: PoetryLM, split: Split, device="cpu", amp: bool = False) -> dict:
    """Dev metrics over all 64 positions of every poem.

    dev_nll  = mean −ln p over real target tokens (characters + <EOS>, PAD excluded)
    dev_ppl  = exp(dev_nll)
    seed_loss = the seed's NLLLoss: mean −ln p over all positions, PAD targets included
    seed_ppl  = the seed's figure 2**seed_loss (base 2 applied to a natural-log loss)
    """
    was_training = model.training
    model.eval()
    pad = model.config.pad_id
    nll_real = nll_all = 0.0
    n_real = n_all = 0
    for start in range(0, len(split.inputs), EVAL_BATCH):
        x = split.inputs[start : start + EVAL_BATCH].to(device)
        y = split.targets[start : start + EVAL_BATCH].to(device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = model(x)
        nll = F.nll_loss(F.log_softmax(logits.float(), -1).flatten(0, 1), y.flatten(), reduction="none")
        real = (y != pad).flatten()
        nll_real += float(nll[real].double().sum())
        n_real += int(real.sum())
        nll_all += float(nll.double().sum())
        n_all += nll.numel()
    model.train(was_training)
    if n_real == 0:
        raise TangshiError("no dev poems to evaluate: the split is empty")
    dev_nll = nll_real / n_real
    seed_loss = nll_all / max(n_all, 1)
    return {"dev_nll": dev_nll, "dev_ppl": math.exp(dev_nll), "seed_loss": seed_loss,
            "seed_ppl": 2.0 ** seed_loss, "tokens": n_real}


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


def train(data_dir: Path, out_dir: Path, model_over: dict | None = None, cfg: TrainConfig = TrainConfig(),
          resume: bool = False, progress: bool = True, log=print, keep_epoch_checkpoints: bool = True,
          stop_after_epoch: int | None = None, resume_epochs: int | None = None,
          init_from: Path | None = None, on_step=None, step_mode: str | None = None, replace: bool = False,
          resume_check: tuple[dict, dict] | None = None) -> dict:
    """Train and checkpoint. Returns {"best": {...}, "history": [...], "out": ...}.

    With `resume`, the options stored in OUT/last are used; only `cfg.device` is taken
    from the call, and `resume_epochs` (when given) extends a constant or plateau
    schedule. `stop_after_epoch` simulates an interruption. `on_step(step, model, optimizer)`
    is called after every optimiser step (step counts from 1; gradients are still in place).
    `step_mode` ("eager", "static", "graph"; see graphstep.TrainStep) overrides the choice made from
    `cfg.cuda_graph` and the device: "static" runs the graphed step's code without capture, on any device.
    `out_dir` is opened under the output policy (runs.RunFolder): a folder holding an earlier run
    needs `resume` or `replace`. `resume_check` = (model options, training options) the command
    gave; with `resume`, any that differs from the run's saved config is refused.
    """
    if resume and init_from is not None:
        raise TangshiError("--resume continues the run's own weights; it cannot be combined with --init-from")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TangshiError("--device cuda asked for, but no CUDA device is available")
    vocab, meta, train_split, dev_split = open_prepared(data_dir)
    data_dir = Path(data_dir)
    with RunFolder(out_dir, replace=replace, resume=resume, sources=(data_dir, init_from)) as run:
        return _train(run, data_dir, vocab, meta, train_split, dev_split, device, model_over, cfg, resume=resume,
                      progress=progress, log=log, keep_epoch_checkpoints=keep_epoch_checkpoints,
                      stop_after_epoch=stop_after_epoch, resume_epochs=resume_epochs, init_from=init_from,
                      on_step=on_step, step_mode=step_mode, resume_check=resume_check)


def open_prepared(data_dir: Path) -> tuple[Vocab, dict, Split, Split]:
    """A prepared folder's vocabulary, meta and splits, checked: both splits hold poems, and the
    vocabulary covers every training character (else training would learn <OOV>)."""
    data_dir = require_prepared(data_dir)
    vocab = Vocab.load(data_dir / "vocab.json")
    meta = read_meta(data_dir)
    poems = {name: read_split(data_dir, name) for name in ("train", "dev")}
    for name, lines in poems.items():
        if not lines:
            raise TangshiError(f"{data_dir / (name + '.txt')} holds no poems; run `tangshi data prepare` again")
    missing = sorted({ch for p in poems["train"] for ch in p if ch not in vocab})
    if missing:
        raise TangshiError(f"{data_dir / 'vocab.json'} does not cover {data_dir / 'train.txt'}: {len(missing)} "
                           f"characters are missing (e.g. {''.join(missing[:5])}); run `tangshi data prepare` again")
    return vocab, meta, *(Split(*encode_poems(poems[n], vocab)) for n in ("train", "dev"))


def _train(run: RunFolder, data_dir: Path, vocab: Vocab, meta: dict, train_split: Split, dev_split: Split,
           device: torch.device, model_over: dict | None, cfg: TrainConfig, *, resume: bool, progress: bool, log,
           keep_epoch_checkpoints: bool, stop_after_epoch: int | None, resume_epochs: int | None,
           init_from: Path | None, on_step, step_mode: str | None, resume_check) -> dict:
    out_dir = run.path

    history: list[dict] = []
    start_epoch = 1
    lineage = None
    if resume:
        last = run.latest()
        if last is None:
            raise TangshiError(f"nothing to resume in {out_dir}: it holds no complete checkpoint with optimiser state")
        model, ck_vocab, ck_meta = ckpt.load_checkpoint(last)
        if ck_vocab != vocab:
            raise TangshiError(f"{last} was trained on a different vocabulary than {data_dir}")
        saved_cfg = saved_train_config(ck_meta, last)
        if resume_check is not None:
            check_resume_options(last, model.config, saved_cfg, *resume_check)
        epochs = saved_cfg.epochs
        if resume_epochs is not None and resume_epochs != epochs:
            if saved_cfg.schedule not in ("constant", "plateau"):
                raise TangshiError(f"a {saved_cfg.schedule} schedule is fixed to its {epochs} epochs; "
                                   "resume without --epochs")
            epochs = resume_epochs
        cfg = replace(saved_cfg, epochs=epochs, device=cfg.device)
        model.train()
        opt_tensors, trainer_state = ckpt.load_optimizer_state(last)
        if trainer_state.get("backend") == "numpy":
            raise TangshiError(f"{last} holds NumPy optimiser state; resume it with --backend numpy, "
                               "or start from its weights with --init-from")
        history = trainer_state["history"]
        start_epoch = trainer_state["epoch"] + 1
        lineage = ck_meta["train"].get("init_from")
        started_with = ck_meta["train"].get("command")
        resumes = list(ck_meta["train"].get("resumes", []))
    elif init_from is not None:  # start from another run's weights (either backend), fresh optimiser
        model, ck_vocab, init_meta = ckpt.load_checkpoint(init_from)
        if ck_vocab != vocab:
            raise TangshiError(f"{init_from} was trained on a different vocabulary than {data_dir}")
        torch.manual_seed(cfg.seed)  # before widening, which draws the new units' weights
        source_cfg = model.config
        model = _with_overrides(model, model_over or {}, init_from)
        lineage = init_lineage(Path(init_from), init_meta)
        if (model.config.embed_dim, model.config.hidden_dim) != (source_cfg.embed_dim, source_cfg.hidden_dim):
            lineage["widened_from"] = {"embed_dim": source_cfg.embed_dim, "hidden_dim": source_cfg.hidden_dim}
            log(f"widened {source_cfg.embed_dim}/{source_cfg.hidden_dim} -> {model.config.embed_dim}/"
                f"{model.config.hidden_dim} (embed/hidden); the new model computes the same function")
    else:
        torch.manual_seed(cfg.seed)
        model_cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, **(model_over or {}))
        model = PoetryLM(model_cfg)
    model.to(device).train()
    if step_mode is None:
        step_mode = "graph" if use_cuda_graphs(cfg, device, on_step) else "eager"
    elif step_mode != "eager":
        graph_capturable_optimizer(cfg.optimizer)
    graphs = step_mode != "eager"
    optimizer = build_optimizer(model, cfg, tensor_lr=graphs)
    steps_per_epoch = len(batch_indices(len(train_split.inputs), cfg.batch_size, torch.Generator().manual_seed(0)))
    if cfg.max_steps:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
    scheduler, sched_unit = build_scheduler(optimizer, cfg, steps_per_epoch)
    if resume:
        ckpt.optimizer_from_flat(optimizer, opt_tensors, trainer_state["optimizer"])
        if scheduler is not None and trainer_state.get("scheduler") is not None:
            scheduler.load_state_dict(trainer_state["scheduler"])
        if graphs:  # the saved lr is a number; the graphed step's optimiser reads it from a tensor
            for group in optimizer.param_groups:
                group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32, device=device).clone()

    run.require_room(sum(p.numel() for p in model.parameters()))
    best = min(history, key=lambda h: h["dev_ppl"]) if history else None
    if resume:  # the log and the links agree with the checkpoint resumed from, whatever happened before
        run.resumed(last, history)
    command = "tangshi " + " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "tangshi" else None
    train_meta_base = {"data": str(data_dir), "data_meta": meta, "config": asdict(cfg), "command": command}
    if resume:  # the run is still the one its first command started; the resumes are listed after it
        train_meta_base.update(command=started_with, resumes=resumes + [{"after_epoch": start_epoch - 1,
                                                                          "command": command}])
    if lineage:
        train_meta_base["init_from"] = lineage
    amp = bf16_is_fast(device) if cfg.amp is None else cfg.amp
    bad_epochs = history[-1]["epoch"] - best["epoch"] if history else 0
    # wall-clock seconds since training began (steps, evaluation, checkpoints), carried across --resume
    run_t0 = time.perf_counter() - (history[-1].get("wall_seconds", 0.0) if history else 0.0)

    step = TrainStep(model, optimizer, clip=cfg.clip, amp=amp, mode=step_mode,
                     batch_size=cfg.batch_size, len_multiple=cfg.graph_len_multiple)
    if step_mode == "graph":
        log(f"CUDA graphs: the step is captured once per batch shape (lengths padded to a multiple of "
            f"{cfg.graph_len_multiple}) and replayed")
    global_step = (start_epoch - 1) * steps_per_epoch
    if on_step is not None and global_step == 0:
        on_step(0, model, optimizer)
    for epoch in range(start_epoch, cfg.epochs + 1):
        gen = torch.Generator().manual_seed(cfg.seed * EPOCH_SEED_STRIDE + epoch)
        torch.manual_seed(cfg.seed * EPOCH_SEED_STRIDE + epoch)
        batches = batch_indices(len(train_split.inputs), cfg.batch_size, gen, shuffle=True,
                                lengths=train_split.lengths, bucket=cfg.bucket)[:steps_per_epoch]
        t0 = time.perf_counter()
        # the loss is summed on the device: reading it every step would make the host wait for the GPU
        tot_loss = torch.zeros((), dtype=torch.float64, device=device)
        tot_tok, n_steps = 0, 0
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False, unit="step")
        for idx in bar:
            x, y = make_batch(train_split.inputs, train_split.targets, train_split.lengths, idx,
                              trim=cfg.bucket and not model.config.pad_in_loss)
            real = int((y != vocab.pad_id).sum())  # counted on the host, before the copy
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = step(x, y)
            tot_loss += loss.double() * real  # before the next step: a graph's loss is overwritten by its next replay
            global_step += 1
            if on_step is not None:
                on_step(global_step, model, optimizer)
            if scheduler is not None and sched_unit == "step":
                scheduler.step()
            tot_tok += real
            n_steps += 1
            if n_steps % PROGRESS_EVERY == 0 and not bool(torch.isfinite(tot_loss)):
                check_finite_loss(float(tot_loss), "train loss", epoch, cfg.lr, history)
            if progress and (n_steps % PROGRESS_EVERY == 0 or n_steps == len(batches)):
                elapsed = time.perf_counter() - t0
                bar.set_postfix(loss=f"{float(tot_loss) / max(tot_tok, 1):.3f}", tok_s=f"{tot_tok / max(elapsed, 1e-9):,.0f}")
        tot_loss = float(tot_loss)  # waits for the last step
        check_finite_loss(tot_loss, "train loss", epoch, cfg.lr, history)
        train_time = time.perf_counter() - t0
        dev = evaluate(model, dev_split, device, amp=False)
        check_finite_loss(dev["dev_nll"], "dev loss", epoch, cfg.lr, history)
        if scheduler is not None and sched_unit == "epoch":
            scheduler.step(dev["dev_ppl"])
        row = {"epoch": epoch, "train_loss": tot_loss / max(tot_tok, 1), **dev,
               "lr": float(optimizer.param_groups[0]["lr"]), "epoch_seconds": round(train_time, 2),
               "real_tokens_per_s": round(tot_tok / max(train_time, 1e-9)), "steps": n_steps,
               "wall_seconds": round(time.perf_counter() - run_t0, 2)}
        improved = end_epoch(run, history, row, model, vocab, {**train_meta_base, "epoch": epoch},
                             optimizer_state=ckpt.optimizer_to_flat(optimizer),
                             trainer_extra={"scheduler": scheduler.state_dict() if scheduler is not None else None},
                             keep_epoch_checkpoints=keep_epoch_checkpoints, log=log)
        best = min(history, key=lambda h: h["dev_ppl"])
        bad_epochs = 0 if improved else bad_epochs + 1
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        if cfg.early_stop and bad_epochs >= cfg.early_stop:
            log(f"early stop: no better dev perplexity for {bad_epochs} epochs (best {best['dev_ppl']:.2f} at epoch {best['epoch']})")
            break

    if history:
        run.write_curves(lambda f: _plot(history, f, f"{out_dir.name}: best dev ppl {best['dev_ppl']:.2f} "
                                                     f"(epoch {best['epoch']})"))
    return {"best": best, "history": history, "out": str(out_dir)}


def end_epoch(run: RunFolder, history: list[dict], row: dict, model: PoetryLM, vocab: Vocab, train_meta: dict,
              optimizer_state: tuple[dict, dict], trainer_extra: dict | None = None,
              keep_epoch_checkpoints: bool = True, log=print) -> bool:
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
    tensors, opt_json = optimizer_state
    trainer_state = {"epoch": row["epoch"], "optimizer": opt_json, "history": history, **(trainer_extra or {})}
    run.save_epoch(checkpoint_name(row["epoch"], row["seed_loss"]),
                   lambda folder: ckpt.write_checkpoint(folder, model, vocab, train_meta=meta, metrics=row,
                                                        optimizer_state=(tensors, trainer_state)),
                   improved=improved, keep_epochs=keep_epoch_checkpoints)
    run.write_metrics(history)
    return improved


def given_options(preset: str | None, model_args: dict, train_args: dict) -> tuple[dict, dict]:
    """The model and training options a command asked for: the preset's, then the explicit ones
    (explicit options win; None means not given)."""
    model_over, train_over = {}, {}
    if preset is not None:
        if preset not in PRESETS:
            raise TangshiError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        model_over, train_over = dict(PRESETS[preset][0]), dict(PRESETS[preset][1])
    model_over.update({k: v for k, v in model_args.items() if v is not None})
    train_over.update({k: v for k, v in train_args.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    return model_over, {k: v for k, v in train_over.items() if k in known}


def config_from_preset(preset: str | None, model_args: dict, train_args: dict) -> tuple[dict, TrainConfig]:
    """Merge a preset with explicit options (explicit options win; None means not given)."""
    model_over, train_over = given_options(preset, model_args, train_args)
    return model_over, TrainConfig(**train_over)


# what a resumed run may change: where it runs, and (constant or plateau schedules) how long
RESUME_MAY_CHANGE = ("device", "cuda_graph", "epochs")


def check_resume_options(source: Path, model_cfg: ModelConfig, saved: TrainConfig, model_over: dict,
                         train_over: dict) -> None:
    """--resume continues the run as it was configured: an option given with it that differs from
    the saved one is refused, not silently ignored."""
    clash = [(k, v, getattr(model_cfg, k)) for k, v in model_over.items()
             if hasattr(model_cfg, k) and getattr(model_cfg, k) != v]
    clash += [(k, v, getattr(saved, k)) for k, v in train_over.items()
              if k not in RESUME_MAY_CHANGE and hasattr(saved, k) and getattr(saved, k) != v]
    if clash:
        k, v, was = clash[0]
        more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
        raise TangshiError(f"--resume: --{k.replace('_', '-')} {v} conflicts with the run's saved {k}={was!r}{more} "
                           f"in {source}; a resumed run keeps its own options (only --epochs, --device and "
                           "--cuda-graph may change); drop the option or start a new run")


def saved_train_config(meta: dict, source: Path) -> TrainConfig:
    try:
        return TrainConfig(**meta["train"]["config"])
    except (KeyError, TypeError) as e:
        raise TangshiError(f"{source / ckpt.CONFIG} holds no usable training config ({e}); "
                           "continue from its weights with --init-from instead") from None
