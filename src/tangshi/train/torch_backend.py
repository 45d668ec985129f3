"""`tangshi train` on the PyTorch backend: the optimiser, the learning-rate schedule and the
step (eager, or replayed from CUDA graphs), plugged into the one training loop (train/loop.py).

`train()` is the entry point of both backends' callers: the CLI, the experiments and the tests.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tangshi.errors import TangshiError
from tangshi.model import checkpoint as ckpt
from tangshi.model.lm import PoetryLM
from tangshi.train.config import EPOCH_SEED_STRIDE, TrainConfig
from tangshi.train.graph_step import TrainStep, graph_capturable_optimizer
from tangshi.train.loop import fit
from tangshi.train.start import Begun, Start


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
            lr = torch.tensor(cfg.lr, device=dev)
            if dev.type == "cuda":
                return cls(params, lr=lr, weight_decay=cfg.weight_decay, capturable=True)
            return cls(params, lr=lr, weight_decay=cfg.weight_decay, foreach=False)
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
        return torch.optim.lr_scheduler.SequentialLR(
            opt,
            [
                torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-2, end_factor=1.0, total_iters=warm),
                torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warm)),
            ],
            milestones=[warm],
        ), "step"
    if cfg.schedule == "invsqrt":  # 1/√t by the step, t counted in epochs: 1 / √(1 + step / steps_per_epoch)
        per_epoch = max(1, steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (1.0 + step / per_epoch) ** -0.5), "step"
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        ), "epoch"
    return None, "step"


class TorchBackend:
    """The PyTorch step: `TrainStep` (eager, or static/graph for CUDA graphs) with an Adam/AdamW/
    Adagrad/SGD optimiser and its schedule. `on_step(step, model, optimizer)` is called after
    every optimiser step (and with step 0 before the first), gradients still in place.
    `step_mode` ("eager", "static", "graph"; see graphstep.TrainStep) overrides the choice made
    from `cfg.cuda_graph` and the device: "static" runs the graphed step's code without capture."""

    name = "torch"

    def __init__(self, on_step=None, step_mode: str | None = None):
        self.on_step, self.step_mode = on_step, step_mode

    def prepare(self, begun: Begun, steps_per_epoch: int, log) -> None:
        cfg, device = begun.cfg, torch.device(begun.cfg.device)
        self.cfg, self.device = cfg, device
        self.model = model = begun.model.to(device).train()
        mode = self.step_mode
        if mode is None:
            mode = "graph" if use_cuda_graphs(cfg, device, self.on_step) else "eager"
        elif mode != "eager":
            graph_capturable_optimizer(cfg.optimizer)
        graphs = mode != "eager"
        self.optimizer = build_optimizer(model, cfg, tensor_lr=graphs)
        self.scheduler, self.sched_unit = build_scheduler(self.optimizer, cfg, steps_per_epoch)
        if begun.optimizer_state is not None:
            tensors, state = begun.optimizer_state
            ckpt.optimizer_from_flat(self.optimizer, tensors, state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if graphs:  # the saved lr is a number; the graphed step's optimiser reads it from a tensor
                for group in self.optimizer.param_groups:
                    group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32, device=device).clone()
        amp = bf16_is_fast(device) if cfg.amp is None else cfg.amp
        self.train_step = TrainStep(
            model,
            self.optimizer,
            clip=cfg.clip,
            amp=amp,
            mode=mode,
            batch_size=cfg.batch_size,
            len_multiple=cfg.graph_len_multiple,
        )
        if mode == "graph":
            log(
                f"CUDA graphs: the step is captured once per batch shape (lengths padded to a multiple of "
                f"{cfg.graph_len_multiple}) and replayed"
            )
        if device.type == "cpu" and model.runtime.impl == "tangshi":
            log(f"LSTM gate arithmetic: {model.runtime.kernels.why}")
        if self.on_step is not None and begun.start_epoch == 1:
            self.on_step(0, model, self.optimizer)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def begin_epoch(self, epoch: int) -> None:
        torch.manual_seed(self.cfg.seed * EPOCH_SEED_STRIDE + epoch)  # dropout masks: the same after a resume

    def zero_loss(self):
        return torch.zeros((), dtype=torch.float64, device=self.device)

    def step(self, x: torch.Tensor, y: torch.Tensor, global_step: int):
        loss = self.train_step(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
        loss = loss.double()  # taken now: a graph's loss is overwritten by its next replay
        if self.on_step is not None:
            self.on_step(global_step, self.model, self.optimizer)
        if self.scheduler is not None and self.sched_unit == "step":
            self.scheduler.step()
        return loss

    def end_epoch(self, dev_ppl: float) -> None:
        if self.scheduler is not None and self.sched_unit == "epoch":
            self.scheduler.step(dev_ppl)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def eval_model(self) -> PoetryLM:
        return self.model

    def optimizer_state(self) -> tuple[dict, dict, dict]:
        tensors, state = ckpt.optimizer_to_flat(self.optimizer)
        return tensors, state, {"scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}


def train(
    data_dir: Path,
    out_dir: Path,
    model_over: dict | None = None,
    cfg: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    log=print,
    keep_epoch_checkpoints: bool = True,
    stop_after_epoch: int | None = None,
    resume_epochs: int | None = None,
    init_from: Path | None = None,
    on_step=None,
    step_mode: str | None = None,
    replace: bool = False,
    resume_check: tuple[dict, dict] | None = None,
) -> dict:
    """Train on the PyTorch backend and checkpoint. Returns {"best": {...}, "history": [...], "out": ...}.

    With `resume`, the options stored in the run's newest checkpoint are used; only `cfg.device`
    is taken from the call, and `resume_epochs` (when given) extends a constant or plateau
    schedule. `resume_check` = (model options, training options) the command gave; with `resume`,
    any that differs from the saved config is refused. `init_from`: start from that checkpoint's
    weights (either backend) with a fresh optimiser. `stop_after_epoch` simulates an interruption.
    `out_dir` is opened under the output policy (runs.RunFolder): a folder holding an earlier run
    needs `resume` or `replace`. See TorchBackend for `on_step` and `step_mode`.
    """
    return fit(
        TorchBackend(on_step, step_mode),
        data_dir,
        out_dir,
        model_over,
        cfg or TrainConfig(),
        start=Start.of(resume, init_from),
        progress=progress,
        log=log,
        keep_epoch_checkpoints=keep_epoch_checkpoints,
        stop_after_epoch=stop_after_epoch,
        resume_epochs=resume_epochs,
        replace=replace,
        resume_check=resume_check,
    )
