"""The lesson's numbers: the worked example (H = 1, T = 2) against values computed here by hand
with `math`, and the distance study's δh_t, δC_t against torch autograd on the same weights."""

import math

import numpy as np
import pytest
import torch

from tangshi.cli.main import main
from tangshi.experiments.distance import poem_deltas
from tangshi.lesson.worked_example import INPUTS, TARGET, WEIGHTS, run_worked_example


def sig(z):
    return 1 / (1 + math.exp(-z))


def test_worked_example_by_hand(capsys):
    res = run_worked_example()
    (wfh, wfx, bf), (wih, wix, bi), (wch, wcx, bc), (woh, wox, bo) = (WEIGHTS[g] for g in "fico")
    h, C, hs, Cs, gates = 0.0, 0.0, [0.0], [0.0], []
    for x in INPUTS:  # the forward pass, written out
        f, i = sig(wfh * h + wfx * x + bf), sig(wih * h + wix * x + bi)
        c, o = math.tanh(wch * h + wcx * x + bc), sig(woh * h + wox * x + bo)
        C = f * C + i * c
        h = o * math.tanh(C)
        hs.append(h)
        Cs.append(C)
        gates.append((f, i, c, o))
    for step, (f, i, c, o), C, h in zip(res["steps"], gates, Cs[1:], hs[1:]):
        assert (step["f"], step["i"], step["c~"], step["o"], step["C"], step["h"]) == pytest.approx(
            (f, i, c, o, C, h), abs=1e-12
        )
    # backward, written out: step 2 has only the loss; step 1 gets δh through W_·h and δC through f_2
    (f1, i1, c1, o1), (f2, i2, c2, o2) = gates
    dh2 = hs[2] - TARGET
    dC2 = dh2 * o2 * (1 - math.tanh(Cs[2]) ** 2)
    dz2 = {
        "o": dh2 * math.tanh(Cs[2]) * o2 * (1 - o2),
        "f": dC2 * Cs[1] * f2 * (1 - f2),
        "i": dC2 * c2 * i2 * (1 - i2),
        "c": dC2 * i2 * (1 - c2**2),
    }
    dh1 = wfh * dz2["f"] + wih * dz2["i"] + wch * dz2["c"] + woh * dz2["o"]
    dC1 = dh1 * o1 * (1 - math.tanh(Cs[1]) ** 2) + dC2 * f2
    s1, s2 = res["steps"]
    assert (s2["dh"], s2["dC"], s1["dh"], s1["dC"]) == pytest.approx((dh2, dC2, dh1, dC1), abs=1e-12)
    assert s1["dz_f"] == 0.0  # C_0 = 0
    assert res["loss"] == pytest.approx(0.5 * (hs[2] - TARGET) ** 2, abs=1e-15)
    assert len(res["gradients"]) == 12 and res["max_abs_diff"] < 1e-9
    assert main(["gradcheck", "--worked-example"]) == 0
    out = capsys.readouterr().out
    assert "δC_t" in out and f"{dC1:.6f}" in out and "largest difference" in out


def test_distance_deltas_are_autograds():
    rng = np.random.default_rng(0)
    V, D, H, T = 13, 5, 6, 9
    params = {
        "embedding.weight": rng.normal(size=(V, D)),
        "lstm.0.weight_ih": rng.normal(size=(D, 4 * H)) * 0.5,
        "lstm.0.weight_hh": rng.normal(size=(H, 4 * H)) * 0.5,
        "lstm.0.bias": rng.normal(size=4 * H) * 0.1,
        "head.weight": rng.normal(size=(V, H)),
        "head.bias": rng.normal(size=V),
    }

    class Config:
        num_layers, tie_weights = 1, False

    ids, eos = list(rng.integers(0, V, size=T)), 3
    dh, dC = poem_deltas(params, Config, ids, eos, cell_path=True)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    h, c = torch.zeros(H, dtype=torch.float64), torch.zeros(H, dtype=torch.float64)
    hs, cs = [], []
    for i in ids:  # torch.nn.LSTM's equations (i, f, g, o blocks), each state kept for its gradient
        z = t["embedding.weight"][i] @ t["lstm.0.weight_ih"] + h @ t["lstm.0.weight_hh"] + t["lstm.0.bias"]
        zi, zf, zg, zo = z.split(H)
        c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zg)
        h = torch.sigmoid(zo) * torch.tanh(c)
        c.retain_grad()
        h.retain_grad()
        hs.append(h)
        cs.append(c)
    loss = -torch.log_softmax(t["head.weight"] @ h + t["head.bias"], 0)[eos]
    loss.backward()
    assert np.allclose(dh, [x.grad.norm().item() for x in hs], rtol=1e-10)
    assert np.allclose(dC, [x.grad.norm().item() for x in cs], rtol=1e-10)
    dh_original, _ = poem_deltas(params, Config, ids, eos, cell_path=False)
    assert dh_original[-1] == pytest.approx(dh[-1]) and not np.allclose(dh_original[:-2], dh[:-2])


def test_distance_needs_long_poems(tiny_prepared, capsys):
    assert main(["experiment", "distance", "--data", str(tiny_prepared), "--out", "unused-distance"]) == 2
    assert "has 40 characters the model knows" in capsys.readouterr().err


def test_worked_example_with_two_units_against_autograd(capsys):
    """H = 2: the derivation's gradients equal torch autograd's on the same weights (written out here with
    torch, row vectors as the code's columns); the assignment's column is its three errors, recomputed here."""
    from tangshi.lesson import worked_example_h2 as w2

    res = w2.run_worked_example_h2()
    W = {g: [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in w2.WEIGHTS[g]] for g in "fico"}
    h = C = torch.zeros(2, dtype=torch.float64)
    for x in w2.INPUTS:
        x = torch.tensor(x, dtype=torch.float64)
        z = {g: W[g][0] @ h + W[g][1] @ x + W[g][2] for g in "fico"}  # W_gh h_{t−1} + W_gx x_t + b_g
        C = torch.sigmoid(z["f"]) * C + torch.sigmoid(z["i"]) * torch.tanh(z["c"])
        h = torch.sigmoid(z["o"]) * torch.tanh(C)
    loss = 0.5 * ((h - torch.tensor(w2.TARGET, dtype=torch.float64)) ** 2).sum()
    loss.backward()
    assert res["loss"] == pytest.approx(float(loss.detach()), abs=1e-14)
    rows = {r["name"]: r for r in res["gradients"]}
    for g in "fico":
        for kind, tensor in zip(("h", "x", "b"), W[g]):
            grad = tensor.grad.reshape(2, -1)
            for r in range(2):
                for c in range(grad.shape[1]):
                    name = f"b_{g}[{r + 1}]" if kind == "b" else f"W_{g}{kind}[{r + 1},{c + 1}]"
                    assert rows[name]["analytic"] == pytest.approx(float(grad[r, c]), abs=1e-12), name
    # the assignment's code: input weights from the last step only (δz_{g,2} x_2ᵀ, δz_{g,2} unchanged by the
    # cell path at the last step), and b_i, b_o given b_f's gradient (δz_f,1 = 0 as C_0 = 0, so b_f is right)
    s2 = res["steps"][1]
    for g in "fico":
        outer = np.outer(s2[f"dz_{g}"], w2.INPUTS[1])
        for r in range(2):
            for c in range(2):
                assert rows[f"W_{g}x[{r + 1},{c + 1}]"]["assignment"] == pytest.approx(outer[r, c], abs=1e-12)
    for g in "io":
        for r in (1, 2):
            assert rows[f"b_{g}[{r}]"]["assignment"] == rows[f"b_f[{r}]"]["analytic"]
    assert rows["W_cx[1,1]"]["analytic"] < 0 < rows["W_cx[1,1]"]["assignment"]  # the sign flips
    # (10) needs the transpose: without it δh_1 is another vector
    assert res["dh_1"]["with_transpose"] == pytest.approx(res["steps"][0]["dh"], abs=1e-15)
    assert max(abs(a - b) for a, b in zip(res["dh_1"]["with_transpose"], res["dh_1"]["without_transpose"])) > 1e-3
    assert main(["gradcheck", "--worked-example", "2"]) == 0
    out = capsys.readouterr().out
    assert "W_cx[1,1]" in out and "✗" in out and f"wrong in {res['assignment_wrong']} of 40" in out
