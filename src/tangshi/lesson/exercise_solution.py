"""The reference solution of lesson/exercises.py, written plainly from the equations of
docs/lstm-backprop.md. `tangshi gradcheck --exercise` on this file passes; on the stubs it fails."""

import numpy as np

GATES = ("f", "i", "c", "o")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def step_forward(params, x_t, h_prev, C_prev):
    W_h, W_x, b = params["W_h"], params["W_x"], params["b"]
    z = {g: W_h[g] @ h_prev + W_x[g] @ x_t + b[g] for g in GATES}  # eq (2)
    f, i, o = _sigmoid(z["f"]), _sigmoid(z["i"]), _sigmoid(z["o"])  # eq (3)
    c = np.tanh(z["c"])
    C = f * C_prev + i * c  # eq (4)
    h = o * np.tanh(C)  # eq (5)
    return h, C, {"f": f, "i": i, "c": c, "o": o, "C": C, "C_prev": C_prev}


def step_backward(dh_t, dC_next, f_next, cache):
    f, i, c, o, C, C_prev = (cache[k] for k in ("f", "i", "c", "o", "C", "C_prev"))
    tanhC = np.tanh(C)
    dz = {"o": dh_t * tanhC * o * (1 - o)}  # eq (11)
    dC = dh_t * o * (1 - tanhC**2) + dC_next * f_next  # eq (12)
    dz["f"] = dC * C_prev * f * (1 - f)  # eq (13)
    dz["i"] = dC * c * i * (1 - i)  # eq (14)
    dz["c"] = dC * i * (1 - c**2)  # eq (15)
    return dz, dC


def bptt(params, xs, dh_above):
    H = params["b"]["f"].shape[0]
    hs, caches = [np.zeros((H, 1))], []
    C = np.zeros((H, 1))
    for x in xs:
        h, C, cache = step_forward(params, x, hs[-1], C)
        hs.append(h)
        caches.append(cache)
    grads = {k: {g: np.zeros_like(params[k][g]) for g in GATES} for k in ("W_h", "W_x", "b")}
    dxs = [None] * len(xs)
    dz_next = {g: np.zeros((H, 1)) for g in GATES}
    dC_next, f_next = np.zeros((H, 1)), np.zeros((H, 1))
    for t in range(len(xs) - 1, -1, -1):
        dh = dh_above[t] + sum(params["W_h"][g].T @ dz_next[g] for g in GATES)  # eq (10)
        dz, dC = step_backward(dh, dC_next, f_next, caches[t])
        for g in GATES:
            grads["W_x"][g] += dz[g] @ xs[t].T  # eq (16)
            grads["W_h"][g] += dz[g] @ hs[t].T  # eq (17): hs[t] is h_{t−1}
            grads["b"][g] += dz[g]  # eq (18)
        dxs[t] = sum(params["W_x"][g].T @ dz[g] for g in GATES)  # eq (19)
        dz_next, dC_next, f_next = dz, dC, caches[t]["f"]
    grads["x"] = dxs
    return grads
