"""The assignment's three gradient errors, reproduced on the NumPy twin (numpy_lstm.py).

`assignment_gradients` gives the twin's gradients, correct or with one of the errors; `assignment_errors`
measures how far each error moves them. gradcheck reports the measure; `tangshi experiment backprop`
trains with each error.

No torch in this module.
"""

from __future__ import annotations

import numpy as np

from tangshi.lesson import numpy_lstm as nl
from tangshi.lesson.small_problem import PAD_ID


def _rel(bad: np.ndarray, good: np.ndarray) -> float:
    return float(np.linalg.norm(bad - good) / np.linalg.norm(good))


ASSIGNMENT_ERRORS = ("no_cell_state_path", "input_weights_last_step_only", "bias_i_o_set_to_delta_f")


def assignment_gradients(params, config, inputs, targets, error: str | None = None, pad_id: int = PAD_ID):
    """(loss, gradients) of the fast twin, correct (`error=None`) or with one of the assignment's three
    errors: (1) δC_{t−1} without the cell-state path δC_t ⊙ f_t; (2) the input weights' gradient from
    each sequence's last time step only; (3) the gradients of b_i and b_o set to b_f's."""
    loss, cache = nl.forward(params, config, inputs, targets, pad_id)
    if error == "no_cell_state_path":
        return loss, nl._backward(cache, cell_path=False)
    grads = nl._backward(cache, keep_dz=True)
    dzs = grads.pop("_dz")
    H = config.hidden_dim
    if error == "input_weights_last_step_only":
        pk = cache["pack"]
        lengths = pk.alive.sum(axis=0)  # (B,) live length per sorted row
        last_rows = np.array([pk.off[n - 1] + r for r, n in enumerate(lengths) if n > 0])
        for l in range(config.num_layers):
            grads[f"lstm.{l}.weight_ih"] = cache["layers"][l]["x"][last_rows].T @ dzs[l][last_rows]
    elif error == "bias_i_o_set_to_delta_f":
        for l in range(config.num_layers):
            db = grads[f"lstm.{l}.bias"] = grads[f"lstm.{l}.bias"].copy()
            db[0:H] = db[H : 2 * H]
            db[3 * H : 4 * H] = db[H : 2 * H]
    elif error is not None:
        raise ValueError(f"unknown error {error!r} (one of {', '.join(ASSIGNMENT_ERRORS)})")
    return loss, grads


def assignment_errors(params, config, inputs, targets) -> dict[str, dict[str, float]]:
    """Relative error ||dW_seed - dW|| / ||dW|| (the assignment's gradient against the correct one) per
    affected parameter, for the assignment's three gradient bugs."""
    H = config.hidden_dim
    _, good = assignment_gradients(params, config, inputs, targets)
    out: dict[str, dict[str, float]] = {}
    for error in ASSIGNMENT_ERRORS:
        _, bad = assignment_gradients(params, config, inputs, targets, error)
        out[error] = {k: _rel(bad[k], good[k]) for k in good if not np.array_equal(bad[k], good[k])}
    bad = assignment_gradients(params, config, inputs, targets, "bias_i_o_set_to_delta_f")[1]
    by_gate: dict[str, float] = {}
    for l in range(config.num_layers):  # and the two gates the third error hits, separately
        b, g = bad[f"lstm.{l}.bias"], good[f"lstm.{l}.bias"]
        by_gate |= {
            f"lstm.{l}.bias": _rel(b, g),
            f"lstm.{l}.bias[i]": _rel(b[0:H], g[0:H]),
            f"lstm.{l}.bias[o]": _rel(b[3 * H :], g[3 * H :]),
        }
    out["bias_i_o_set_to_delta_f"] = by_gate
    return out
