"""A worked example of the LSTM backward pass small enough to check by hand: one unit (H = 1), one
input (D = 1), two steps (T = 2), the loss E = ½ (h_2 − y)² at the last step only.

`tangshi gradcheck --worked-example` prints every number of the forward pass, of BPTT (δh_t, δC_t and
the gates' δz) and the twelve weight gradients, each next to a central finite difference of E, so a
student can follow docs/lstm-backprop.md with a calculator. It runs `reference_lstm.LstmLayer`, the
same code the derivation points into, on these weights; nothing here re-derives anything.
"""

from __future__ import annotations

import unicodedata
from typing import TypedDict

import numpy as np

from tangshi.lesson.reference_lstm import GATES, LstmLayer

# chosen so that every gate is clearly between 0 and 1 and no number is a coincidence
WEIGHTS = {  # gate: (W_·h, W_·x, b_·)
    "f": (0.5, 0.4, 0.3),
    "i": (-0.3, 0.6, 0.2),
    "c": (0.8, -0.5, 0.2),
    "o": (0.2, 0.7, -0.1),
}
INPUTS = (1.0, -2.0)  # x_1, x_2
TARGET = 0.5  # y
FD_STEP = 1e-6


class _Gradient(TypedDict):
    """One row of the gradient table: a weight's analytic gradient beside its finite difference."""

    name: str
    analytic: float
    finite_difference: float


def _layer() -> LstmLayer:
    layer = LstmLayer(1, 1)
    for g, (wh, wx, b) in WEIGHTS.items():
        layer.W_h[g][0, 0], layer.W_x[g][0, 0], layer.b[g][0, 0] = wh, wx, b
    return layer


def _loss(layer: LstmLayer) -> float:
    h = layer.forward([np.array([[x]]) for x in INPUTS])
    return 0.5 * float(h[-1][0, 0] - TARGET) ** 2


def run_worked_example() -> dict:
    """Forward, backward and finite differences of the example, as plain numbers."""
    layer = _layer()
    E = _loss(layer)
    h2 = float(layer.h[2][0, 0])
    layer.calc_delta([np.zeros((1, 1)), np.array([[h2 - TARGET]])])  # ∂E/∂h_1 from above = 0, ∂E/∂h_2 = h_2 − y
    layer.calc_gradient()
    v = lambda a: float(a[0, 0]) + 0.0  # noqa: E731  (+ 0.0: no "-0.0" where δz_f_1 is exactly 0, as C_0 = 0)
    steps = []
    for t in (1, 2):
        steps.append(
            {
                "t": t,
                "x": INPUTS[t - 1],
                "f": v(layer.f[t]),
                "i": v(layer.i[t]),
                "c~": v(layer.c[t]),
                "o": v(layer.o[t]),
                "C": v(layer.C[t]),
                "h": v(layer.h[t]),
                "dh": v(layer.dh[t]),
                "dC": v(layer.dC[t]),
                **{f"dz_{g}": v(layer.delta[g][t]) for g in GATES},
            }
        )
    grads: list[_Gradient] = []
    for g in GATES:
        for kind, analytic in (("h", layer.W_h_grad[g]), ("x", layer.W_x_grad[g]), ("b", layer.b_grad[g])):
            name = f"b_{g}" if kind == "b" else f"W_{g}{kind}"
            grads.append({"name": name, "analytic": v(analytic), "finite_difference": _fd(g, kind)})
    return {
        "weights": WEIGHTS,
        "inputs": INPUTS,
        "target": TARGET,
        "loss": E,
        "steps": steps,
        "gradients": grads,
        "max_abs_diff": max(abs(r["analytic"] - r["finite_difference"]) for r in grads),
    }


def _fd(g: str, kind: str) -> float:
    out = []
    for sign in (1, -1):
        layer = _layer()
        table = {"h": layer.W_h, "x": layer.W_x, "b": layer.b}[kind]
        table[g][0, 0] += sign * FD_STEP
        out.append(_loss(layer))
    return (out[0] - out[1]) / (2 * FD_STEP)


def _label(text: str, width: int = 10) -> str:
    shown = sum(not unicodedata.combining(ch) for ch in text)  # c̃ is two code points, one column
    return text + " " * (width - shown)


FORWARD_ROWS = (("f", "f_t"), ("i", "i_t"), ("c~", "c̃_t"), ("o", "o_t"), ("C", "C_t"), ("h", "h_t"))
BACKWARD_ROWS = (("dh", "δh_t"), ("dC", "δC_t"), *((f"dz_{g}", f"δz_{g}") for g in GATES))


def step_table(steps: list[dict], rows, cell, width: int = 10) -> list[str]:
    """One line per row of `rows` (key, label): the label, then `cell` of t = 1 and of t = 2."""
    s1, s2 = steps
    return [f"  {_label(label, width)} {cell(s1[key])} {cell(s2[key])}" for key, label in rows]


def format_worked_example(res: dict) -> str:
    w = res["weights"]
    lines = [
        "Worked example: H = 1, D = 1, T = 2, E = ½ (h_2 − y)²; docs/lstm-backprop.md, 'A worked example'",
        "weights (W_·h, W_·x, b_·): " + "; ".join(f"{g}: {w[g][0]:+}, {w[g][1]:+}, {w[g][2]:+}" for g in GATES),
        f"x_1 = {res['inputs'][0]:+}, x_2 = {res['inputs'][1]:+}, y = {res['target']}, h_0 = C_0 = 0",
        "",
        "forward           t = 1        t = 2",
    ]
    cell = lambda x: f"{x:>12.6f}"  # noqa: E731
    lines += step_table(res["steps"], FORWARD_ROWS, cell)
    lines += [f"  E = ½ (h_2 − y)² = {res['loss']:.6f}", "", "backward (BPTT)   t = 1        t = 2"]
    lines += step_table(res["steps"], BACKWARD_ROWS, cell)
    lines += ["", "gradient      analytic     finite diff."]
    for r in res["gradients"]:
        lines.append(f"  {r['name']:<8} {r['analytic']:>12.8f} {r['finite_difference']:>12.8f}")
    lines.append(f"largest difference {res['max_abs_diff']:.1e} (central differences, step {FD_STEP:g})")
    return "\n".join(lines)
