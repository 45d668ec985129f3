"""The LSTM of the course assignment's Part 1, in its own notation: the assignment's `LstmLayer`, corrected.

Column vectors, one sequence, an explicit loop over t, and one weight matrix per gate and input, as
the assignment writes them (no packing, no buffers, no tricks): for t = 1 … T, with h_0 = C_0 = 0,

    f_t = σ(W_fh h_{t−1} + W_fx x_t + b_f)        forget gate          (H, 1)
    i_t = σ(W_ih h_{t−1} + W_ix x_t + b_i)        input gate           (H, 1)
    c̃_t = tanh(W_ch h_{t−1} + W_cx x_t + b_c)     candidate cell       (H, 1)
    o_t = σ(W_oh h_{t−1} + W_ox x_t + b_o)        output gate          (H, 1)
    C_t = f_t ⊙ C_{t−1} + i_t ⊙ c̃_t                                    (H, 1)
    h_t = o_t ⊙ tanh(C_t)                                               (H, 1)

The backward pass takes ε_t, the part of δh_t = ∂E/∂h_t that arrives from above (the output layer, or
the layer above), and runs BPTT with both paths back in time: through h_{t−1} (every gate's W_gh) and
through C_{t−1} (δC_t ⊙ f_t), the path the assignment's code forgot. Method names are the assignment's:
`forward`, `calc_delta`, `calc_gradient`, `update`. Lines carry the equation tags of docs/lstm-backprop.md.

The fast twin (lesson/numpy_lstm.py) computes the same equations for a whole batch at once, with the four
gates side by side in one (·, 4H) matrix; `tangshi gradcheck` checks that both give the same loss and
gradients, and this one against finite differences.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

GATES = ("f", "i", "c", "o")  # forget, input, candidate (c̃), output: the assignment's order
CANONICAL_BLOCK = {"i": 0, "f": 1, "c": 2, "o": 3}  # their blocks in the canonical (·, 4H) layout (lstm_spec)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _sum(terms: Iterable[np.ndarray]) -> np.ndarray:
    """The builtin sum, 0 + a_1 + a_2 + …, of at least one array: an array (the stubs can only say
    `ndarray | Literal[0]`, the value of an empty sum)."""
    total = sum(terms)
    assert isinstance(total, np.ndarray), "a sum over no time steps"
    return total


class LstmLayer:
    """One LSTM layer over one sequence of column vectors x_1 … x_T, each (D, 1)."""

    # Indexed by t, 1-based as in the derivation: h and C are lists from h[0] = h_0 and C[0] = C_0; what has
    # no t = 0 (x_t, the gates, the deltas) is a dict keyed by t, so x[t] is x_t and delta[g][t] is δz_{g,t}.
    x: dict[int, np.ndarray]
    h: list[np.ndarray]
    C: list[np.ndarray]
    f: dict[int, np.ndarray]
    i: dict[int, np.ndarray]
    c: dict[int, np.ndarray]
    o: dict[int, np.ndarray]
    delta: dict[str, dict[int, np.ndarray]]
    dh: dict[int, np.ndarray]
    dC: dict[int, np.ndarray]

    def __init__(self, input_width: int, state_width: int, dtype=np.float64):
        D, H = input_width, state_width  # D the input width, as in the derivation (E is the loss)
        self.D, self.H = D, H
        self.W_h = {g: np.zeros((H, H), dtype) for g in GATES}  # W_fh, W_ih, W_ch, W_oh
        self.W_x = {g: np.zeros((H, D), dtype) for g in GATES}  # W_fx, W_ix, W_cx, W_ox
        self.b = {g: np.zeros((H, 1), dtype) for g in GATES}  # b_f, b_i, b_c, b_o

    @classmethod
    def from_canonical(cls, weight_ih: np.ndarray, weight_hh: np.ndarray, bias: np.ndarray) -> LstmLayer:
        """From the canonical row-vector weights: weight_ih (D, 4H), weight_hh (H, 4H), bias (4H,)."""
        H = weight_hh.shape[0]
        layer = cls(weight_ih.shape[0], H, weight_ih.dtype)
        for g, k in CANONICAL_BLOCK.items():
            cols = slice(k * H, (k + 1) * H)
            layer.W_x[g] = weight_ih[:, cols].T.copy()  # x weight_ih (row vectors) = (weight_ihᵀ x) (columns)
            layer.W_h[g] = weight_hh[:, cols].T.copy()
            layer.b[g] = bias[cols].reshape(H, 1).copy()
        return layer

    # ---- forward
    def forward(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """xs: x_1 … x_T, each (D, 1). Returns h_1 … h_T and keeps every intermediate for the backward."""
        H = self.H
        self.x = dict(enumerate(xs, start=1))  # 1-based, as in the derivation: x[t] is x_t
        self.h = [np.zeros((H, 1))]  # h[0] = h_0 = 0
        self.C = [np.zeros((H, 1))]  # C[0] = C_0 = 0
        self.f, self.i, self.c, self.o = {}, {}, {}, {}
        for t in range(1, len(self.x) + 1):
            x, h_prev = self.x[t], self.h[t - 1]
            self.f[t] = sigmoid(self.W_h["f"] @ h_prev + self.W_x["f"] @ x + self.b["f"])  # eq (2), (3) f_t
            self.i[t] = sigmoid(self.W_h["i"] @ h_prev + self.W_x["i"] @ x + self.b["i"])  # eq (2), (3) i_t
            self.c[t] = np.tanh(self.W_h["c"] @ h_prev + self.W_x["c"] @ x + self.b["c"])  # eq (2), (3) c~_t
            self.o[t] = sigmoid(self.W_h["o"] @ h_prev + self.W_x["o"] @ x + self.b["o"])  # eq (2), (3) o_t
            self.C.append(self.f[t] * self.C[t - 1] + self.i[t] * self.c[t])  # eq (4) C_t
            self.h.append(self.o[t] * np.tanh(self.C[t]))  # eq (5) h_t
        return self.h[1:]

    # ---- backward
    def calc_delta(self, dh_above: list[np.ndarray], cell_path: bool = True) -> None:
        """BPTT. dh_above[t−1] = ε_t, the part of δh_t from outside the recurrence (t = 1 … T). Leaves, for every t,
        the gates' pre-activation deltas δz_f, δz_i, δz_c, δz_o (each (H, 1)) in self.delta[g][t].
        `cell_path=False` drops δC_{t+1} ⊙ f_{t+1}: the assignment's first error, for comparison only."""
        T, H = len(self.x), self.H
        self.delta = {g: {T + 1: np.zeros((H, 1))} for g in GATES}  # nothing comes back from after the end
        self.dh, self.dC = {}, {}  # δh_t and δC_t, kept for the lesson's figures
        dC_next, f_next = np.zeros((H, 1)), np.zeros((H, 1))
        for t in range(T, 0, -1):
            # δh_t: from above, plus the recurrent path through every gate of step t+1
            dh = dh_above[t - 1] + sum(self.W_h[g].T @ self.delta[g][t + 1] for g in GATES)  # eq (10) delta_t
            tanhC = np.tanh(self.C[t])
            do = dh * tanhC * self.o[t] * (1 - self.o[t])  # eq (11) dz_o
            dC = dh * self.o[t] * (1 - tanhC**2)  # eq (12) part from h_t
            if cell_path:
                dC = dC + dC_next * f_next  # eq (12) cell-state path from C_{t+1}
            df = dC * self.C[t - 1] * self.f[t] * (1 - self.f[t])  # eq (13) dz_f (C_0 = 0)
            di = dC * self.c[t] * self.i[t] * (1 - self.i[t])  # eq (14) dz_i
            dc = dC * self.i[t] * (1 - self.c[t] ** 2)  # eq (15) dz_c
            for g, d in zip(GATES, (df, di, dc, do)):
                self.delta[g][t] = d
            self.dh[t], self.dC[t] = dh, dC
            dC_next, f_next = dC, self.f[t]

    def calc_gradient(self) -> list[np.ndarray]:
        """The gradients of every weight and bias, summed over t, and ∂E/∂x_t (each (D, 1)) for the
        layer below or the embedding."""
        T = len(self.x)
        d = self.delta
        self.W_h_grad = {g: _sum(d[g][t] @ self.h[t - 1].T for t in range(1, T + 1)) for g in GATES}  # eq (17)
        self.W_x_grad = {g: _sum(d[g][t] @ self.x[t].T for t in range(1, T + 1)) for g in GATES}  # eq (16)
        self.b_grad = {g: _sum(d[g][t] for t in range(1, T + 1)) for g in GATES}  # eq (18)
        return [sum(self.W_x[g].T @ d[g][t] for g in GATES) for t in range(1, T + 1)]  # eq (19) dE/dx_t

    def update(self, learning_rate: float) -> None:
        """Plain gradient descent, as the assignment's `update`."""
        for g in GATES:
            self.W_h[g] -= learning_rate * self.W_h_grad[g]
            self.W_x[g] -= learning_rate * self.W_x_grad[g]
            self.b[g] -= learning_rate * self.b_grad[g]

    def canonical_grads(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The gradients in the canonical layout: (weight_ih (D, 4H), weight_hh (H, 4H), bias (4H,))."""
        H = self.H
        g_ih, g_hh, g_b = np.zeros((self.D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)
        for g, k in CANONICAL_BLOCK.items():
            cols = slice(k * H, (k + 1) * H)
            g_ih[:, cols], g_hh[:, cols], g_b[cols] = self.W_x_grad[g].T, self.W_h_grad[g].T, self.b_grad[g][:, 0]
        return g_ih, g_hh, g_b


def loss_and_grads(
    params: dict, config, inputs: np.ndarray, targets: np.ndarray, pad_id: int, cell_path: bool = True
) -> tuple[float, dict]:
    """The whole model (embedding → LstmLayer × L → output layer → softmax → mean NLL over the
    targets that are not PAD), one sequence at a time, in the canonical parameter names."""
    V, L = config.vocab_size, config.num_layers
    tied, relu = getattr(config, "tie_weights", False), getattr(config, "relu_logits", False)
    W_head = params["embedding.weight"] if tied else params["head.weight"]  # (V, H)
    b_head = params["head.bias"].reshape(V, 1)
    N = int(np.count_nonzero(targets != pad_id))
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    loss = 0.0
    for ids, tgts in zip(inputs, targets):
        xs = [params["embedding.weight"][i].reshape(-1, 1) for i in ids]  # eq (1) x_t = Emb[id_t]
        layers = []
        for l in range(L):
            layer = LstmLayer.from_canonical(
                params[f"lstm.{l}.weight_ih"], params[f"lstm.{l}.weight_hh"], params[f"lstm.{l}.bias"]
            )
            xs = layer.forward(xs)  # eq (1) the next layer's x_t is this layer's h_t
            layers.append(layer)
        dh = []
        for h, y in zip(xs, tgts):
            s = W_head @ h + b_head  # eq (6) s_t
            a = np.maximum(s, 0.0) if relu else s  # eq (6') a_t
            p = np.exp(a - a.max())
            p /= p.sum()  # eq (7) p_t = softmax(a_t)
            ds = np.zeros_like(s)
            if y != pad_id:
                loss -= float(np.log(p[y, 0])) / N  # eq (7) E
                ds = p.copy()
                ds[y, 0] -= 1.0
                ds /= N  # eq (8) dE/da_t
                if relu:
                    ds *= s > 0  # eq (8')
            grads["embedding.weight" if tied else "head.weight"] += ds @ h.T  # eq (9) dE/dW_head; tied: eq (21)
            grads["head.bias"] += ds[:, 0]  # eq (9) dE/db_head
            dh.append(W_head.T @ ds)  # eq (10) the head's part of delta_t
        for l in range(L - 1, -1, -1):
            layers[l].calc_delta(dh, cell_path=cell_path)
            dh = layers[l].calc_gradient()  # the layer below's dE/dh_t, or the embedding's dE/dx_t
            g_ih, g_hh, g_b = layers[l].canonical_grads()
            grads[f"lstm.{l}.weight_ih"] += g_ih
            grads[f"lstm.{l}.weight_hh"] += g_hh
            grads[f"lstm.{l}.bias"] += g_b
        for i, dx in zip(ids, dh):
            grads["embedding.weight"][i] += dx[:, 0]  # eq (20) scatter-add by id
    return loss, grads
