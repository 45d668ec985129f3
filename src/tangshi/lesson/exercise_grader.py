"""Grades lesson/exercises.py as a student fills it in (`tangshi gradcheck --exercise FILE`).

Each function is run on random problems (float64, H = 3, D = 2, T = 4, seeds 0–2) and compared with
the reference LSTM (lesson/reference_lstm.py, the assignment's LstmLayer corrected): step_forward
with its h_t and C_t at t = 2; step_backward with its δz_{g,1} and δC_1, given its δh_1, δC_2 and
f_2; bptt with its gradients, and those with central finite differences of E = Σ_t dh_above[t]ᵀ h_t.
A function that raises, returns the wrong shape or differs by more than TOL fails with one line
saying where."""

from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path
from types import ModuleType

import numpy as np

from tangshi.errors import TangshiError
from tangshi.lesson.reference_lstm import GATES, LstmLayer

TOL = 1e-7  # float64: the reference and a correct solution agree to ~1e-15; finite differences to ~1e-9
FD_EPS = 1e-6
H, D, T = 3, 2, 4


def load_exercise(path: Path) -> ModuleType:
    """The student's file as a module; one clear error for a missing or broken file."""
    path = Path(path)
    if not path.is_file():
        raise TangshiError(f"exercise file not found: {path} (tangshi gradcheck --write-exercise {path} makes one)")
    spec = importlib.util.spec_from_file_location("tangshi_exercise", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 — any error in the student's file is reported, one line
        raise TangshiError(f"cannot load {path}: {type(e).__name__}: {e}") from None
    missing = [n for n in ("step_forward", "step_backward", "bptt") if not callable(getattr(module, n, None))]
    if missing:
        raise TangshiError(f"{path} defines no {', '.join(missing)}")
    return module


def _problem(seed: int):
    rng = np.random.default_rng(seed)
    params = {
        "W_h": {g: rng.normal(0, 0.5, (H, H)) for g in GATES},
        "W_x": {g: rng.normal(0, 0.5, (H, D)) for g in GATES},
        "b": {g: rng.normal(0, 0.5, (H, 1)) for g in GATES},
    }
    xs = [rng.normal(0, 1, (D, 1)) for _ in range(T)]
    dh_above = [rng.normal(0, 1, (H, 1)) for _ in range(T)]
    ref = LstmLayer(D, H)
    ref.W_h, ref.W_x, ref.b = (
        {g: params["W_h"][g].copy() for g in GATES},
        {g: params["W_x"][g].copy() for g in GATES},
        {g: params["b"][g].copy() for g in GATES},
    )
    ref.forward(xs)
    ref.calc_delta(dh_above)
    ref.calc_gradient()
    return params, xs, dh_above, ref


def _close(name: str, got, want) -> str | None:
    got = np.asarray(got, dtype=np.float64) if got is not None else None
    if got is None or got.shape != want.shape:
        return f"{name} has shape {None if got is None else got.shape}, expected {want.shape}"
    err = float(np.max(np.abs(got - want)))
    return None if err <= TOL else f"{name} differs from the reference by {err:.2e} (tolerance {TOL:g})"


def _check_forward(m, params, xs, ref) -> str | None:
    h1, C1, _ = m.step_forward(params, xs[0], np.zeros((H, 1)), np.zeros((H, 1)))
    h2, C2, _ = m.step_forward(params, xs[1], ref.h[1], ref.C[1])
    return (
        _close("h_1", h1, ref.h[1])
        or _close("C_1", C1, ref.C[1])
        or _close("h_2", h2, ref.h[2])
        or _close("C_2", C2, ref.C[2])
    )


def _check_backward(m, params, xs, ref) -> str | None:
    try:
        _, _, cache = m.step_forward(params, xs[0], np.zeros((H, 1)), np.zeros((H, 1)))
    except NotImplementedError:
        return "needs step_forward first (its cache is step_backward's input)"
    dz, dC = m.step_backward(ref.dh[1], ref.dC[2], ref.f[2], cache)
    for g in GATES:
        why = _close(f"δz_{g},1", dz.get(g) if isinstance(dz, dict) else None, ref.delta[g][1])
        if why:
            return why
    return _close("δC_1", dC, ref.dC[1])


def _loss(m, params, xs, dh_above) -> float:
    H_ = params["b"]["f"].shape[0]
    h, C, total = np.zeros((H_, 1)), np.zeros((H_, 1)), 0.0
    for x, d in zip(xs, dh_above):
        h, C, _ = m.step_forward(params, x, h, C)
        total += float((d * h).sum())
    return total


def _check_bptt(m, params, xs, dh_above, ref) -> str | None:
    grads = m.bptt(params, xs, dh_above)
    want = {"W_h": ref.W_h_grad, "W_x": ref.W_x_grad, "b": ref.b_grad}
    for k in ("W_h", "W_x", "b"):
        for g in GATES:
            why = _close(f"grads['{k}']['{g}']", grads[k][g], want[k][g])
            if why:
                return why
    dxs = ref.calc_gradient()
    for t, (got, w) in enumerate(zip(grads["x"], dxs), start=1):
        why = _close(f"grads['x'][{t - 1}] (∂E/∂x_{t})", got, w)
        if why:
            return why
    from tangshi.lesson import exercise_solution as sol  # finite differences of the loss, forward only

    for k in ("W_h", "W_x", "b"):
        for g in GATES:
            p = params[k][g]
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + FD_EPS
                up = _loss(sol, params, xs, dh_above)
                p[idx] = old - FD_EPS
                down = _loss(sol, params, xs, dh_above)
                p[idx] = old
                fd = (up - down) / (2 * FD_EPS)
                if abs(fd - grads[k][g][idx]) > 1e-6:
                    return f"grads['{k}']['{g}']{list(idx)} is {grads[k][g][idx]:.6g}, finite differences say {fd:.6g}"
    return None


def grade(module: ModuleType, seeds=(0, 1, 2)) -> list[dict]:
    """One row per exercise: {"name", "ok", "why"}."""
    checks = {
        "step_forward": lambda p, xs, d, ref: _check_forward(module, p, xs, ref),
        "step_backward": lambda p, xs, d, ref: _check_backward(module, p, xs, ref),
        "bptt": lambda p, xs, d, ref: _check_bptt(module, p, xs, d, ref),
    }
    rows = []
    for name, check in checks.items():
        why = None
        for seed in seeds:
            params, xs, dh_above, ref = _problem(seed)
            try:
                why = check(params, xs, dh_above, ref)
            except NotImplementedError as e:
                why = f"not written yet ({e})"
            except Exception as e:  # noqa: BLE001 — the student's error, shown where it happened
                where = traceback.extract_tb(e.__traceback__)[-1]
                why = f"{type(e).__name__}: {e} (line {where.lineno} of {Path(where.filename).name})"
            if why:
                why = f"seed {seed}: {why}"
                break
        rows.append({"name": name, "ok": why is None, "why": why})
    return rows


def format_grades(rows: list[dict], path: str) -> str:
    lines = [f"exercises in {path}:"]
    for r in rows:
        lines.append(f"  {r['name']:<14} {'pass' if r['ok'] else 'FAIL: ' + r['why']}")
    passed = sum(r["ok"] for r in rows)
    lines.append(f"{passed} of {len(rows)} pass")
    return "\n".join(lines)
