"""The worked example with two units (H = 2) and two inputs (D = 2), so that every transpose shows:
δh_{t−1} = Σ_g W_ghᵀ δz_{g,t} (10) multiplies by the transpose of W_gh, and the weight gradients are
outer products, δW_gx = Σ_t δz_{g,t} x_tᵀ (16). Two steps, E = ½ ‖h_2 − y‖² at the last step only.

`tangshi gradcheck --worked-example 2` prints, for every entry of every weight, three numbers side by
side: the gradient by the derivation (`reference_lstm.LstmLayer`), a central finite difference of E,
and the gradient the assignment's code computes (its errors 1–3 of docs/lstm-backprop.md together: no
cell-state path, input weights from the last step only, b_i and b_o set to δz_f's sum). It also shows
what (10) gives without the transpose, which a student who writes W_gh δz instead of W_ghᵀ δz gets.
"""

from __future__ import annotations

import numpy as np

from tangshi.lesson.reference_lstm import GATES, LstmLayer
from tangshi.lesson.worked_example import BACKWARD_ROWS, FORWARD_ROWS, step_table

# rows = units of the gate (H), columns = units of h_{t−1} (W_·h) or inputs (W_·x); all entries distinct
WEIGHTS = {
    "f": ([[0.5, -0.2], [0.3, 0.4]], [[0.4, 0.1], [-0.3, 0.2]], [0.3, 0.1]),
    "i": ([[-0.3, 0.6], [0.2, 0.1]], [[0.6, -0.4], [0.5, 0.3]], [0.2, -0.1]),
    "c": ([[0.8, 0.3], [-0.6, 0.5]], [[-0.5, 0.7], [0.4, -0.2]], [0.2, 0.05]),
    "o": ([[0.2, -0.5], [0.7, 0.3]], [[0.7, 0.2], [-0.1, 0.6]], [-0.1, 0.15]),
}
INPUTS = ([1.0, -0.5], [-2.0, 0.8])  # x_1, x_2
TARGET = [0.5, -0.3]  # y
FD_STEP = 1e-6
H = D = 2
T = 2


def _layer() -> LstmLayer:
    layer = LstmLayer(D, H)
    for g, (wh, wx, b) in WEIGHTS.items():
        layer.W_h[g][:], layer.W_x[g][:], layer.b[g][:, 0] = np.array(wh), np.array(wx), np.array(b)
    return layer


def _xs() -> list[np.ndarray]:
    return [np.array(x).reshape(D, 1) for x in INPUTS]


def _loss(layer: LstmLayer) -> float:
    h = layer.forward(_xs())
    return 0.5 * float(((h[-1][:, 0] - np.array(TARGET)) ** 2).sum())


def _backward(cell_path: bool) -> LstmLayer:
    layer = _layer()
    h = layer.forward(_xs())
    layer.calc_delta([np.zeros((H, 1)), h[-1] - np.array(TARGET).reshape(H, 1)], cell_path=cell_path)
    layer.calc_gradient()
    return layer


def _assignments(layer_wrong: LstmLayer) -> dict[str, np.ndarray]:
    """The assignment's gradients: computed on its BPTT without the cell path (error 1), then its input
    weights from the last step only (error 2) and b_i, b_o set to δz_f's sum (error 3)."""
    d, out = layer_wrong.delta, {}
    for g in GATES:
        out[f"W_{g}h"] = layer_wrong.W_h_grad[g]
        out[f"W_{g}x"] = d[g][T] @ layer_wrong.x[T].T  # error 2: δz_{g,T} x_Tᵀ, not the sum over t
        out[f"b_{g}"] = layer_wrong.b_grad["f" if g in ("i", "o") else g]  # error 3
    return out


def _fd(name: str, r: int, c: int) -> float:
    g, kind = name[2], name[3] if name.startswith("W_") else "b"  # W_fh → f, h; b_f → f, b
    out = []
    for sign in (1, -1):
        layer = _layer()
        table = {"h": layer.W_h, "x": layer.W_x, "b": layer.b}[kind]
        table[g][r, c] += sign * FD_STEP
        out.append(_loss(layer))
    return (out[0] - out[1]) / (2 * FD_STEP)


def run_worked_example_h2() -> dict:
    """Forward, BPTT, the gradients three ways, and (10) with and without the transpose, as plain lists."""
    right, wrong = _backward(True), _backward(False)
    ours = {f"W_{g}h": right.W_h_grad[g] for g in GATES} | {f"W_{g}x": right.W_x_grad[g] for g in GATES}
    ours |= {f"b_{g}": right.b_grad[g] for g in GATES}
    theirs = _assignments(wrong)
    gradients: list[dict] = []
    for name, grad in ours.items():
        for r in range(grad.shape[0]):
            for c in range(grad.shape[1]):
                gradients.append(
                    {
                        "name": f"{name}[{r + 1},{c + 1}]" if grad.shape[1] > 1 else f"{name}[{r + 1}]",
                        "analytic": float(grad[r, c]),
                        "finite_difference": _fd(name, r, c),
                        "assignment": float(theirs[name][r, c]),
                    }
                )
    vec = lambda a: [float(v) + 0.0 for v in a[:, 0]]  # noqa: E731
    steps = [
        {
            "t": t,
            **{k: vec(getattr(right, k)[t]) for k in ("f", "i", "o", "C", "h")},
            "c~": vec(right.c[t]),
            "dh": vec(right.dh[t]),
            "dC": vec(right.dC[t]),
            **{f"dz_{g}": vec(right.delta[g][t]) for g in GATES},
        }
        for t in (1, 2)
    ]
    transposed = sum(right.W_h[g].T @ right.delta[g][2] for g in GATES)  # (10) at t = 1, nothing from above
    plain = sum(right.W_h[g] @ right.delta[g][2] for g in GATES)
    return {
        "weights": WEIGHTS,
        "inputs": INPUTS,
        "target": TARGET,
        "loss": _loss(_layer()),
        "steps": steps,
        "dh_1": {"with_transpose": vec(transposed), "without_transpose": vec(plain)},
        "gradients": gradients,
        "max_abs_diff": max(abs(r["analytic"] - r["finite_difference"]) for r in gradients),
        "assignment_wrong": sum(abs(r["assignment"] - r["analytic"]) > 1e-9 for r in gradients),
    }


def format_worked_example_h2(res: dict) -> str:
    def v2(x) -> str:
        return f"[{x[0]:+.5f} {x[1]:+.5f}]"

    x1, x2 = res["inputs"]
    lines = [
        "Worked example: H = 2, D = 2, T = 2, E = ½ ‖h_2 − y‖²; docs/lstm-backprop.md, 'Two units'",
        f"x_1 = {x1}, x_2 = {x2}, y = {res['target']}, h_0 = C_0 = 0; weights in lesson/worked_example_h2.py",
        "",
        "forward             t = 1                  t = 2",
    ]
    cell = lambda x: " " + v2(x)  # noqa: E731
    lines += step_table(res["steps"], FORWARD_ROWS, cell, 7)
    lines += [f"  E = ½ ‖h_2 − y‖² = {res['loss']:.6f}", "", "backward (BPTT)     t = 1                  t = 2"]
    lines += step_table(res["steps"], BACKWARD_ROWS, cell, 7)
    d = res["dh_1"]
    lines += [
        "",
        f"(10) δh_1 = Σ_g W_ghᵀ δz_g,2 = {v2(d['with_transpose'])}; without the transpose, Σ_g W_gh δz_g,2 = "
        f"{v2(d['without_transpose'])}",
        "",
        "gradient        derivation   finite diff.  the assignment's code",
    ]
    for r in res["gradients"]:
        flag = "" if abs(r["assignment"] - r["analytic"]) <= 1e-9 else "  ✗"
        lines.append(
            f"  {r['name']:<11} {r['analytic']:>12.8f} {r['finite_difference']:>12.8f} {r['assignment']:>12.8f}{flag}"
        )
    n = len(res["gradients"])
    lines.append(
        f"largest difference derivation − finite diff. {res['max_abs_diff']:.1e} (central, step {FD_STEP:g}); "
        f"the assignment's code is wrong in {res['assignment_wrong']} of {n} entries (✗)"
    )
    return "\n".join(lines)
