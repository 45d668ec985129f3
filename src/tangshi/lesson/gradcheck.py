"""Gradient check of the NumPy LSTM (tangshi.numpy_lstm) against finite differences and PyTorch.

`run_gradcheck(seed)` builds a small random model in float64 and reports, for every
parameter,
  * fd_rel_err: the largest element-wise relative error of the analytic gradient
    against central finite differences (every element is checked),
  * torch_abs_diff: the largest absolute difference from PyTorch autograd on a
    reference forward written with plain torch ops,
  * torch_nn_abs_diff: the same against torch.nn.Embedding + torch.nn.LSTM (weights
    transposed into nn.LSTM's layout) + F.linear,
then runs each NumPy optimiser next to its torch.optim twin for 10 steps, checks the
assignment-notation LSTM (lesson/reference_lstm.py) and the fp32 training kernel (`LSTMRecurrence`,
both its PyTorch-ops path and its compiled cell; lesson/kernel_check.py) against float64 autograd,
and measures what the assignment's three gradient errors cost (lesson/gradient_errors.py).
`format_gradcheck(result)` renders it.  The small problem: lesson/small_problem.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tangshi.lesson import numpy_lstm as nl
from tangshi.lesson import numpy_optim as nopt
from tangshi.lesson import reference_lstm
from tangshi.lesson.gradcheck_text import format_gradcheck  # noqa: F401  (the report's text, re-exported)
from tangshi.lesson.gradient_errors import assignment_errors
from tangshi.lesson.kernel_check import check_training_kernel
from tangshi.lesson.small_problem import PAD_ID, SmallConfig, small_problem

TOLERANCES = {
    "fd_rel_err": 1e-6,
    "torch_abs_diff": 1e-9,
    "optimizer_abs_diff": 1e-12,
    "twin_abs_diff": 1e-10,
    "kernel_rel_err": 1e-5,
}  # the training kernel is fp32 (machine epsilon ≈ 1.2e-7): ~80 ulps of headroom
FD_STEP = 1e-3  # step of the five-point stencil
# Element-wise relative error |a - n| / max(|a|, |n|, FD_FLOOR): for gradient elements
# below FD_FLOOR (e.g. exact zeros: embedding rows of unused ids) the comparison becomes
# absolute, |a - n| < FD_FLOOR * tolerance = 1e-11, well above the ~1e-12 FD round-off.
FD_FLOOR = 1e-5
FD_VARIANT_ELEMENTS = 40  # random elements per parameter checked in the extra configurations
REFERENCE_FD_ELEMENTS = 12  # the same for the assignment-notation LSTM (a Python loop per element: slow)


# ----------------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------------


def _loss(params, config, inputs, targets):
    return nl.forward(params, config, inputs, targets, PAD_ID)[0]


def _relu_pattern(params, config, inputs, targets):
    """Which logits are > 0 at the real positions (None without relu_logits)."""
    if not getattr(config, "relu_logits", False):
        return None
    return nl.logits(params, config, inputs)[targets != PAD_ID] > 0


def fd_rel_errors(
    params, config, inputs, targets, grads, max_elements: int | None = None, seed: int = 0, names=None, loss_fn=None
):
    """Largest element-wise relative error per parameter, and how many elements were skipped.

    Numerical derivative: the five-point central stencil
    (-E(w+2Δ) + 8 E(w+Δ) - 8 E(w-Δ) + E(w-2Δ)) / 12Δ with Δ = FD_STEP (truncation error
    O(Δ^4), round-off ~1e-16 / Δ: about 1e-12 absolute here).  Every element is checked,
    or a random subset of `max_elements` per parameter when given.  With relu_logits an
    element whose stencil moves any logit across 0 (a kink, where the loss is not
    differentiable) is skipped and counted.
    `names` limits the check to those parameters; `loss_fn(params, config, inputs, targets)` is the
    loss differentiated (default: the fast twin's).
    Returns ({name: max rel err}, {name: skipped count}).
    """
    rng = np.random.default_rng(seed)
    loss_fn = loss_fn or _loss
    base_pattern = _relu_pattern(params, config, inputs, targets)
    out, skipped = {}, {}
    for name, p in params.items():
        if names is not None and name not in names:
            continue
        flat = p.reshape(-1)
        idx = np.arange(flat.size)
        if max_elements is not None and flat.size > max_elements:
            idx = np.sort(rng.choice(flat.size, size=max_elements, replace=False))
        num = np.empty(idx.size)
        keep = np.ones(idx.size, dtype=bool)
        for j, k in enumerate(idx):
            orig = flat[k]
            losses = []
            for s in (2.0, 1.0, -1.0, -2.0):
                flat[k] = orig + s * FD_STEP
                losses.append(loss_fn(params, config, inputs, targets))
                if base_pattern is not None and not np.array_equal(
                    _relu_pattern(params, config, inputs, targets), base_pattern
                ):
                    keep[j] = False
            flat[k] = orig
            num[j] = (-losses[0] + 8.0 * losses[1] - 8.0 * losses[2] + losses[3]) / (12.0 * FD_STEP)
        a = grads[name].reshape(-1)[idx][keep]
        num = num[keep]
        denom = np.maximum(np.maximum(np.abs(a), np.abs(num)), FD_FLOOR)
        out[name] = float(np.max(np.abs(a - num) / denom)) if a.size else 0.0
        skipped[name] = int(np.count_nonzero(~keep))
    return out, skipped


# ----------------------------------------------------------------------------------
# PyTorch references
# ----------------------------------------------------------------------------------


def torch_reference_logits(params_t: dict, config: Any, inputs) -> torch.Tensor:
    """The one plain-torch reference of the model, in the canonical (x @ W) layout and the Part 1
    equations, with no kernel and no trick: (B, T, V) logits (ReLU'd with the assignment's bug on).
    gradcheck and the tests compare every implementation against it."""
    H, L = config.hidden_dim, config.num_layers
    inp = torch.as_tensor(inputs)
    B, T = inp.shape
    x = params_t["embedding.weight"][inp]  # (B, T, D)
    for l in range(L):
        weight_ih, weight_hh = params_t[f"lstm.{l}.weight_ih"], params_t[f"lstm.{l}.weight_hh"]
        b = params_t[f"lstm.{l}.bias"]
        h = x.new_zeros(B, H)
        C = x.new_zeros(B, H)
        outs = []
        for t in range(T):
            z = x[:, t] @ weight_ih + h @ weight_hh + b
            i, f, g, o = z.chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            C = f * C + i * g
            h = o * torch.tanh(C)
            outs.append(h)
        x = torch.stack(outs, dim=1)  # (B, T, H)
    W_head = params_t["embedding.weight"] if getattr(config, "tie_weights", False) else params_t["head.weight"]
    logits = x @ W_head.T + params_t["head.bias"]
    return torch.relu(logits) if getattr(config, "relu_logits", False) else logits


def torch_reference(params_t: dict, config: Any, inputs: np.ndarray, targets: np.ndarray, pad_id: int = PAD_ID):
    """The reference's loss: mean NLL over the targets that are not PAD."""
    logp = torch.log_softmax(torch_reference_logits(params_t, config, inputs), dim=-1)
    return F.nll_loss(logp.reshape(-1, config.vocab_size), torch.as_tensor(targets).reshape(-1), ignore_index=pad_id)


def torch_reference_logprobs(params: dict, config: Any, inputs: np.ndarray) -> np.ndarray:
    """(B, T, V) log-probs from the plain-torch reference (dtype follows params)."""
    with torch.no_grad():
        pt = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
        return torch.log_softmax(torch_reference_logits(pt, config, inputs), dim=-1).numpy()


def _build_nn(params: dict, config: Any):
    V, D, H, L = config.vocab_size, config.embed_dim, config.hidden_dim, config.num_layers
    dtype = torch.float64 if params["embedding.weight"].dtype == np.float64 else torch.float32
    emb = torch.nn.Embedding(V, D).to(dtype)
    lstm = torch.nn.LSTM(D, H, num_layers=L, batch_first=True).to(dtype)
    head_b = torch.nn.Parameter(torch.tensor(params["head.bias"], dtype=dtype))
    head_w = None
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(params["embedding.weight"]))
        for l in range(L):
            getattr(lstm, f"weight_ih_l{l}").copy_(torch.from_numpy(params[f"lstm.{l}.weight_ih"].T.copy()))
            getattr(lstm, f"weight_hh_l{l}").copy_(torch.from_numpy(params[f"lstm.{l}.weight_hh"].T.copy()))
            getattr(lstm, f"bias_ih_l{l}").copy_(torch.from_numpy(params[f"lstm.{l}.bias"]))
            getattr(lstm, f"bias_hh_l{l}").zero_()
    if not getattr(config, "tie_weights", False):
        head_w = torch.nn.Parameter(torch.tensor(params["head.weight"], dtype=dtype))
    return emb, lstm, head_w, head_b


def torch_nn_grads(params: dict, config: Any, inputs, targets, pad_id: int = PAD_ID):
    """Loss and gradients from nn.Embedding + nn.LSTM + F.linear, mapped back to the canonical layout."""
    emb, lstm, head_w, head_b = _build_nn(params, config)
    out, _ = lstm(emb(torch.as_tensor(inputs)))
    logits = F.linear(out, emb.weight if head_w is None else head_w, head_b)
    if getattr(config, "relu_logits", False):
        logits = torch.relu(logits)
    logp = torch.log_softmax(logits, dim=-1)
    loss = F.nll_loss(logp.reshape(-1, config.vocab_size), torch.as_tensor(targets).reshape(-1), ignore_index=pad_id)
    loss.backward()
    loss = loss.detach()
    g = {"embedding.weight": emb.weight.grad.numpy()}
    for l in range(config.num_layers):
        g[f"lstm.{l}.weight_ih"] = getattr(lstm, f"weight_ih_l{l}").grad.numpy().T
        g[f"lstm.{l}.weight_hh"] = getattr(lstm, f"weight_hh_l{l}").grad.numpy().T
        g[f"lstm.{l}.bias"] = getattr(lstm, f"bias_ih_l{l}").grad.numpy()
    if head_w is not None:
        g["head.weight"] = head_w.grad.numpy()
    g["head.bias"] = head_b.grad.numpy()
    return float(loss), g


def torch_nn_logprobs(params: dict, config: Any, inputs) -> np.ndarray:
    emb, lstm, head_w, head_b = _build_nn(params, config)
    with torch.no_grad():
        out, _ = lstm(emb(torch.as_tensor(inputs)))
        logits = F.linear(out, emb.weight if head_w is None else head_w, head_b)
        if getattr(config, "relu_logits", False):
            logits = torch.relu(logits)
        return torch.log_softmax(logits, dim=-1).numpy()


def torch_grads(params: dict, config: Any, inputs, targets, pad_id: int = PAD_ID):
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    loss = torch_reference(pt, config, inputs, targets, pad_id)
    loss.backward()
    grads: dict[str, np.ndarray] = {}
    for k, v in pt.items():
        assert v.grad is not None, f"the loss does not use {k}"
        grads[k] = v.grad.numpy()
    return float(loss.detach()), grads


def _max_abs(a: dict, b: dict) -> dict[str, float]:
    return {k: float(np.max(np.abs(a[k] - b[k]))) for k in a}


# ----------------------------------------------------------------------------------
# optimisers
# ----------------------------------------------------------------------------------

OPTIMIZER_CASES = {
    "SGD(momentum=0.9, weight_decay=0.01)": (
        lambda p: nopt.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
    ),
    "SGD(nesterov, dampening=0)": (
        lambda p: nopt.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    ),
    "Adam(weight_decay=0.01)": (
        lambda p: nopt.Adam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01),
    ),
    "AdamW(weight_decay=0.1)": (
        lambda p: nopt.AdamW(p, lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ),
    "Adagrad(weight_decay=0.01, initial_accumulator_value=0.1)": (
        lambda p: nopt.Adagrad(p, lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1),
        lambda p: torch.optim.Adagrad(p, lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1),
    ),
}


def compare_optimizer(make_np, make_torch, params, config, inputs, targets, steps: int = 10) -> float:
    """Run both optimisers `steps` times on the same params and (NumPy-model) gradients.

    Returns the largest |w_numpy - w_torch| (w: any weight) seen after any step."""
    p_np = {k: v.copy() for k, v in params.items()}
    p_t = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    opt_np = make_np(p_np)
    opt_t = make_torch(list(p_t.values()))
    worst = 0.0
    for _ in range(steps):
        _, grads = nl.loss_and_grads(p_np, config, inputs, targets, PAD_ID)
        for k, p in p_t.items():
            p.grad = torch.from_numpy(grads[k].copy())
        opt_t.step()
        opt_np.step(grads)
        worst = max(worst, max(float(np.max(np.abs(p_np[k] - p_t[k].detach().numpy()))) for k in p_np))
    return worst


# ----------------------------------------------------------------------------------
# the whole check
# ----------------------------------------------------------------------------------


def _check_config(config, seed, max_elements=None):
    config, params, inputs, targets = small_problem(seed, config)
    loss, grads = nl.loss_and_grads(params, config, inputs, targets, PAD_ID)
    t_loss, t_grads = torch_grads(params, config, inputs, targets)
    nn_loss, nn_grads = torch_nn_grads(params, config, inputs, targets)
    fd, skipped = fd_rel_errors(params, config, inputs, targets, grads, max_elements, seed)
    td, nd = _max_abs(grads, t_grads), _max_abs(grads, nn_grads)
    per = {k: {"fd_rel_err": fd[k], "torch_abs_diff": td[k], "torch_nn_abs_diff": nd[k]} for k in grads}
    for k, n in skipped.items():
        if n:
            per[k]["fd_skipped_at_relu_kinks"] = n
    return per, {"loss": loss, "torch_loss_abs_diff": abs(loss - t_loss), "torch_nn_loss_abs_diff": abs(loss - nn_loss)}


INIT_LOSS_SLACK = 0.10  # the loss at initialisation within 10% of ln V (uniform predictions)


def run_gradcheck(seed: int = 0) -> dict:
    """Check every gradient and optimiser; see the module docstring.  result["ok"] says all passed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    try:
        return _run_gradcheck(seed)
    finally:
        torch.set_num_threads(threads)


def check_reference(config, seed: int, max_elements: int | None = None) -> dict:
    """The assignment-notation LSTM (lesson/reference_lstm.py): its gradients against finite differences of
    its own loss, and its loss and gradients against the fast twin's on the same weights."""
    _, params, inputs, targets = small_problem(seed, config)
    loss, grads = reference_lstm.loss_and_grads(params, config, inputs, targets, PAD_ID)
    twin_loss, twin = nl.loss_and_grads(params, config, inputs, targets, PAD_ID)

    def ref_loss(p, c, x, y):
        return reference_lstm.loss_and_grads(p, c, x, y, PAD_ID)[0]

    fd, _ = fd_rel_errors(params, config, inputs, targets, grads, max_elements, seed, loss_fn=ref_loss)
    return {
        "fd_rel_err": max(fd.values()),
        "twin_abs_diff": max(float(np.abs(grads[k] - twin[k]).max()) for k in grads),
        "twin_loss_abs_diff": abs(loss - twin_loss),
    }


def _run_gradcheck(seed: int) -> dict:
    base = SmallConfig()
    per, info = _check_config(base, seed)
    reference = {
        "2 layers": check_reference(base, seed, REFERENCE_FD_ELEMENTS),
        "tied+relu, 1 layer": check_reference(
            SmallConfig(num_layers=1, tie_weights=True, relu_logits=True), seed + 1, REFERENCE_FD_ELEMENTS
        ),
    }
    variants = _check_variants(seed)
    _, params, inputs, targets = small_problem(seed, base)
    optimizers = {
        name: compare_optimizer(mk_np, mk_t, params, base, inputs, targets)
        for name, (mk_np, mk_t) in OPTIMIZER_CASES.items()
    }
    kernel = check_training_kernel(seed)
    ln_v = math.log(base.vocab_size)
    init = {
        "loss": info["loss"],
        "ln_V": ln_v,
        "slack": INIT_LOSS_SLACK,
        "ok": abs(info["loss"] - ln_v) <= INIT_LOSS_SLACK * ln_v,
    }
    ok = _passed(TOLERANCES, per, info, variants, optimizers, reference, kernel) and init["ok"]
    return {
        "ok": bool(ok),
        "seed": seed,
        "model": _model_info(base, inputs, targets),
        "loss": info,
        "init_loss": init,
        "params": per,
        "variants": variants,
        "reference_lstm": reference,
        "training_kernel": kernel,
        "optimizers": optimizers,
        "assignment_errors": assignment_errors(params, base, inputs, targets),
        "tolerances": dict(TOLERANCES),
    }


def _check_variants(seed: int) -> dict:
    """The other configurations, each on FD_VARIANT_ELEMENTS random elements per parameter: the worst
    parameter's errors."""
    variants = {}
    for name, cfg in {
        "tied+relu, 1 layer": SmallConfig(num_layers=1, tie_weights=True, relu_logits=True),
        "tied, 2 layers": SmallConfig(tie_weights=True),
        "relu, 3 layers, D != H": SmallConfig(embed_dim=5, num_layers=3, relu_logits=True),
    }.items():
        vp, vi = _check_config(cfg, seed + 1, FD_VARIANT_ELEMENTS)
        variants[name] = {
            "fd_rel_err": max(v["fd_rel_err"] for v in vp.values()),
            "torch_abs_diff": max(max(v["torch_abs_diff"], v["torch_nn_abs_diff"]) for v in vp.values()),
            "loss_abs_diff": max(vi["torch_loss_abs_diff"], vi["torch_nn_loss_abs_diff"]),
            "fd_elements_skipped_at_relu_kinks": sum(v.get("fd_skipped_at_relu_kinks", 0) for v in vp.values()),
        }
    return variants


def _passed(tol: dict, per, info, variants, optimizers, reference, kernel) -> bool:
    """Every number within its tolerance."""
    return all(v.get("rel_err", 0.0) < tol["kernel_rel_err"] for v in kernel.values()) and (
        all(v["fd_rel_err"] < tol["fd_rel_err"] for v in per.values())
        and all(max(v["torch_abs_diff"], v["torch_nn_abs_diff"]) < tol["torch_abs_diff"] for v in per.values())
        and max(info["torch_loss_abs_diff"], info["torch_nn_loss_abs_diff"]) < tol["torch_abs_diff"]
        and all(
            v["fd_rel_err"] < tol["fd_rel_err"]
            and v["torch_abs_diff"] < tol["torch_abs_diff"]
            and v["loss_abs_diff"] < tol["torch_abs_diff"]
            for v in variants.values()
        )
        and all(v < tol["optimizer_abs_diff"] for v in optimizers.values())
        and all(
            r["fd_rel_err"] < tol["fd_rel_err"]
            and max(r["twin_abs_diff"], r["twin_loss_abs_diff"]) < tol["twin_abs_diff"]
            for r in reference.values()
        )
    )


def _model_info(config, inputs, targets) -> dict:
    return {
        "config": {
            k: getattr(config, k)
            for k in ("vocab_size", "embed_dim", "hidden_dim", "num_layers", "tie_weights", "relu_logits")
        },
        "batch": list(inputs.shape),
        "real_targets": int(np.count_nonzero(targets != PAD_ID)),
        "dtype": "float64",
        "fd_step": FD_STEP,
        "fd_floor": FD_FLOOR,
    }
