"""The NumPy twin's optimisers: SGD (momentum, Nesterov), Adam, AdamW and Adagrad, with
`torch.optim`'s semantics (checked step for step against it by `tangshi gradcheck`). No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------
# Optimisers (torch.optim semantics, single-tensor code path)
# --------------------------------------------------------------------------------------


class _Optimizer:
    """Base: holds the param dict (updated in place) and per-parameter state buffers."""

    kind = ""
    hyper_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()
    weight_decay: float  # set by every optimiser's __init__

    def __init__(self, params: Mapping[str, np.ndarray]):
        self.params = params
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {b: {} for b in self.buffer_names}
        self._scratch: dict[tuple, np.ndarray] = {}

    def _tmp(self, p: np.ndarray, k: int = 0) -> np.ndarray:
        """Scratch array shaped like p (one flat buffer per slot, shared by all params)."""
        key = (k, p.dtype.str)
        buf = self._scratch.get(key)
        if buf is None or buf.size < p.size:
            buf = self._scratch[key] = np.empty(max(q.size for q in self.params.values()), p.dtype)
        return buf[: p.size].reshape(p.shape)

    def _decayed(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """g + weight_decay * p (torch: grad.add(param, alpha=weight_decay)), without touching g."""
        if self.weight_decay == 0:
            return g
        out = self._tmp(p, 1)
        np.multiply(p, self.weight_decay, out=out)
        out += g
        return out

    def _grad(self, grads: Mapping[str, np.ndarray], name: str) -> np.ndarray:
        if name not in grads:
            raise KeyError(f"no gradient for parameter {name!r}")
        g = grads[name]
        if g.shape != self.params[name].shape:
            raise ValueError(f"gradient {name}: shape {g.shape} != parameter shape {self.params[name].shape}")
        return g

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        self.steps += 1
        for name, p in self.params.items():
            self._update(name, p, self._grad(grads, name))

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def hyperparams(self) -> dict[str, Any]:
        out = {}
        for k in self.hyper_names:
            v = getattr(self, k)
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def state_dict(self) -> dict[str, Any]:
        """{"type", "steps", "hyperparams": {numbers}, "tensors": {"<buffer>/<param>": array}}.

        "tensors" is a flat str -> ndarray dict (ready for safetensors); the rest is JSON-able.
        """
        tensors = {f"{b}/{name}": arr.copy() for b, bufs in self.state.items() for name, arr in bufs.items()}
        return {"type": self.kind, "steps": self.steps, "hyperparams": self.hyperparams(), "tensors": tensors}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        if sd.get("type") != self.kind:
            raise ValueError(f"optimizer state is for {sd.get('type')!r}, not {self.kind!r}")
        for k, v in sd.get("hyperparams", {}).items():
            if k not in self.hyper_names:
                raise ValueError(f"unknown {self.kind} hyperparameter {k!r}")
            setattr(self, k, tuple(v) if isinstance(v, (list, tuple)) else v)
        state: dict[str, dict[str, np.ndarray]] = {b: {} for b in self.buffer_names}
        for key, arr in sd.get("tensors", {}).items():
            b, _, name = key.partition("/")
            if b not in state or name not in self.params:
                raise ValueError(f"unexpected optimizer tensor {key!r}")
            p = self.params[name]
            arr = np.asarray(arr)
            if arr.shape != p.shape:
                raise ValueError(f"optimizer tensor {key}: shape {arr.shape} != {p.shape}")
            state[b][name] = np.array(arr, dtype=p.dtype, copy=True)
        self.state = state
        self.steps = int(sd.get("steps", 0))


class SGD(_Optimizer):
    """torch.optim.SGD: g += wd p; buf = g (first step) else momentum buf + (1-dampening) g;
    g = g + momentum buf (nesterov) or buf; p -= lr g."""

    kind = "SGD"
    hyper_names = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    buffer_names = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(params)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.lr, self.momentum, self.dampening = float(lr), float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def _update(self, name, p, g):
        g = self._decayed(p, g)
        tmp = self._tmp(p)
        if self.momentum != 0:
            bufs = self.state["momentum_buffer"]
            buf = bufs.get(name)
            if buf is None:
                buf = bufs[name] = np.array(g, dtype=p.dtype, copy=True)
            else:
                buf *= self.momentum
                np.multiply(g, 1.0 - self.dampening, out=tmp)
                buf += tmp
            if self.nesterov:
                np.multiply(buf, self.momentum, out=tmp)
                tmp += g
                g = tmp
            else:
                g = buf
        np.multiply(g, self.lr, out=tmp)
        p -= tmp


class Adam(_Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient)."""

    kind = "Adam"
    hyper_names = ("lr", "betas", "eps", "weight_decay")
    buffer_names = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params)
        self.lr, self.betas, self.eps, self.weight_decay = (
            float(lr),
            (float(betas[0]), float(betas[1])),
            float(eps),
            float(weight_decay),
        )

    def _update(self, name, p, g):
        beta1, beta2 = self.betas
        if self.decoupled:
            p *= 1.0 - self.lr * self.weight_decay  # AdamW: decoupled decay first
        else:
            g = self._decayed(p, g)
        m = self.state["exp_avg"].get(name)
        if m is None:
            m = self.state["exp_avg"][name] = np.zeros_like(p)
            self.state["exp_avg_sq"][name] = np.zeros_like(p)
        v = self.state["exp_avg_sq"][name]
        tmp = self._tmp(p)
        np.subtract(g, m, out=tmp)  # torch: exp_avg.lerp_(grad, 1 - beta1)
        tmp *= 1.0 - beta1
        m += tmp
        np.multiply(g, g, out=tmp)  # torch: exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        tmp *= 1.0 - beta2
        v *= beta2
        v += tmp
        step = self.steps
        bias_correction1 = 1.0 - beta1**step
        bias_correction2 = 1.0 - beta2**step
        step_size = self.lr / bias_correction1
        denom = tmp
        np.sqrt(v, out=denom)
        denom /= bias_correction2**0.5
        denom += self.eps
        np.divide(m, denom, out=denom)
        denom *= step_size
        p -= denom


class AdamW(Adam):
    """torch.optim.AdamW: p *= 1 - lr wd, then the Adam step without L2 in the gradient."""

    kind = "AdamW"
    decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)


class Adagrad(_Optimizer):
    """torch.optim.Adagrad: g += wd p; G += g^2; p -= clr g / (sqrt(G) + eps),
    clr = lr / (1 + (step - 1) lr_decay)."""

    kind = "Adagrad"
    hyper_names = ("lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value")
    buffer_names = ("sum",)

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        eps: float = 1e-10,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        lr_decay: float = 0.0,
    ):
        super().__init__(params)
        self.lr, self.lr_decay, self.eps = float(lr), float(lr_decay), float(eps)
        self.weight_decay, self.initial_accumulator_value = float(weight_decay), float(initial_accumulator_value)
        for name, p in params.items():
            self.state["sum"][name] = np.full_like(p, self.initial_accumulator_value)

    def _clr(self, step: int) -> float:
        return self.lr / (1.0 + (max(step, 1) - 1) * self.lr_decay)

    def _update(self, name, p, g):
        g = self._decayed(p, g)
        clr = self._clr(self.steps)
        G = self.state["sum"][name]
        tmp = self._tmp(p)
        np.multiply(g, g, out=tmp)
        G += tmp
        np.sqrt(G, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= clr
        p -= tmp

    def effective_step_size(self) -> float:
        """Median over all parameter elements of clr / (sqrt(G) + eps)."""
        clr = self._clr(self.steps)
        vals = np.concatenate(
            [(clr / (np.sqrt(G.astype(np.float64)) + self.eps)).ravel() for G in self.state["sum"].values()]
        )
        return float(np.median(vals))
