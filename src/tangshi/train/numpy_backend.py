"""`tangshi train --backend numpy`: the same model, batches and checkpoints, trained by the NumPy twin.

The NumPy backend starts from the very weights the PyTorch backend would
(the same seeded initialisation), visits the same batches in the same order,
and writes checkpoints in the same format, so either backend's checkpoint
generates with `tangshi generate` and continues training in the other
(`--init-from`). Dev metrics are computed by the shared `splits.evaluate` on the
loaded weights, so both backends are scored by one piece of code.

PyTorch-only options (rejected here with a clear error): dropout of any kind,
DropConnect, learning-rate schedules, bf16. Gradient clipping is supported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tangshi.errors import TangshiError
from tangshi.lesson import numpy_lstm as nl
from tangshi.lesson import numpy_optim as nopt
from tangshi.model.lm import DROPOUT_FIELDS, ModelConfig, PoetryLM
from tangshi.train.config import TrainConfig
from tangshi.train.loop import fit
from tangshi.train.start import Start

NUMPY_OPTIMIZERS = {"adam": nopt.Adam, "adamw": nopt.AdamW, "adagrad": nopt.Adagrad, "sgd": nopt.SGD}
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
    if model_cfg.pad_in_loss:
        raise TangshiError("--backend numpy masks PAD in the loss; drop --pad-in-loss")
    if torch.device(cfg.device).type != "cpu":
        raise TangshiError("--backend numpy runs on the CPU; drop --device")


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


class NumpyBackend:
    """The NumPy twin's step: `numpy_lstm.forward` + the hand-written `backward`, clipping, and a
    NumPy optimiser, on the model's canonical weights. `on_step(step, params, grads, optimizer)`
    is called with step 0 (grads None) before training and after every optimiser step."""

    name = "numpy"

    def __init__(self, on_step=None):
        self.on_step = on_step
        self._model = None

    def prepare(self, begun, steps_per_epoch: int, log) -> None:
        self.cfg, self.model_cfg = begun.cfg, begun.model.config
        check_numpy_options(self.model_cfg, self.cfg)
        self.params = model_to_params(begun.model)
        self.opt = make_optimizer(self.params, self.cfg)
        if begun.optimizer_state is not None:
            tensors, state = begun.optimizer_state
            self.opt.load_state_dict({**state["optimizer"], "tensors": {k: v.numpy() for k, v in tensors.items()}})
        self.workspace = nl.Workspace()
        self.pad = begun.model.config.pad_id
        if self.on_step is not None and begun.start_epoch == 1:
            self.on_step(0, self.params, None, self.opt)

    def n_params(self) -> int:
        return sum(v.size for v in self.params.values())

    def begin_epoch(self, epoch: int) -> None:
        pass  # nothing random in a NumPy step

    def zero_loss(self) -> float:
        return 0.0

    def step(self, x: torch.Tensor, y: torch.Tensor, global_step: int) -> float:
        loss, cache = nl.forward(self.params, self.model_cfg, x.numpy(), y.numpy(), self.pad, workspace=self.workspace)
        grads = nl.backward(cache)
        if self.cfg.clip > 0:
            clip_grads(grads, self.cfg.clip)
        self.opt.step(grads)
        self._model = None  # the weights moved
        if self.on_step is not None:
            self.on_step(global_step, self.params, grads, self.opt)
        return float(loss)

    def end_epoch(self, dev_ppl: float) -> None:
        pass  # constant learning rate

    def lr(self) -> float:
        return self.cfg.lr

    def eval_model(self) -> PoetryLM:
        """The weights as a PyTorch model, so that both backends are scored by one `evaluate`."""
        if self._model is None:
            self._model = params_to_model(self.params, self.model_cfg)
        return self._model

    def optimizer_state(self) -> tuple[dict, dict, dict]:
        sd = self.opt.state_dict()
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.pop("tensors").items()}
        return tensors, sd, {"backend": "numpy"}


def train_numpy(
    data_dir: Path,
    out_dir: Path,
    model_over: dict | None = None,
    cfg: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    log=print,
    init_from: Path | None = None,
    stop_after_epoch: int | None = None,
    on_step=None,
    replace: bool = False,
    keep_epoch_checkpoints: bool = True,
    resume_check: tuple[dict, dict] | None = None,
    resume_epochs: int | None = None,
) -> dict:
    """Train with the NumPy twin: the same loop, folder, checkpoints and options as the PyTorch
    backend (train.train), with NumpyBackend's step."""
    return fit(
        NumpyBackend(on_step),
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
