"""Exercises: the LSTM's forward step, backward step and BPTT, in the notation of docs/lstm-backprop.md.

Fill in the three functions below, then grade them:

    tangshi gradcheck --write-exercise my_lstm.py     # a copy of this file to work in
    tangshi gradcheck --exercise my_lstm.py           # grades it; exit 0 when all three pass

Shapes, as in the assignment's Part 1 (column vectors, one sequence): H is the state width, D the
input width. `params` holds one matrix per gate g in "f", "i", "c", "o" (forget, input, candidate
c̃, output): params["W_h"][g] (H, H), params["W_x"][g] (H, D), params["b"][g] (H, 1). x_t is (D, 1);
h_t and C_t are (H, 1). NumPy only; float64.

The grader compares each function with the reference LSTM (lesson/reference_lstm.py) on random
problems, and the gradients of `bptt` with finite differences of the loss E = Σ_t dh_above[t]ᵀ h_t
(whose ε_t, the part of δh_t = ∂E/∂h_t that arrives from above, is dh_above[t]).
"""

import numpy as np


def step_forward(params, x_t, h_prev, C_prev):
    """One time step, eqs (2)–(5): the four gates, then C_t = f_t ⊙ C_{t−1} + i_t ⊙ c̃_t and
    h_t = o_t ⊙ tanh(C_t). Returns (h_t, C_t, cache): `cache` is whatever step_backward needs."""
    raise NotImplementedError("step_forward: eqs (2)–(5)")


def step_backward(dh_t, dC_next, f_next, cache):
    """One step back, eqs (11)–(15). dh_t: δh_t = ∂E/∂h_t, every path included; dC_next and f_next:
    δC_{t+1} and f_{t+1} (zeros after the last step). Returns (dz, dC_t): dz[g] = δz_{g,t}, the
    gradient at gate g's pre-activation (H, 1), and δC_t (H, 1)."""
    raise NotImplementedError("step_backward: eqs (11)–(15)")


def bptt(params, xs, dh_above):
    """Forward over xs = [x_1 … x_T], then back through time, eqs (10)–(19). dh_above[t−1] is ε_t, the
    part of δh_t = ∂E/∂h_t that arrives from outside the recurrence. Returns grads with grads["W_h"][g],
    grads["W_x"][g], grads["b"][g] (summed over t, shaped as params) and grads["x"], the list ∂E/∂x_t
    (D, 1) for t = 1 … T."""
    raise NotImplementedError("bptt: eqs (10)–(19)")


_ = np  # the stubs use NumPy once filled in
