"""The NumPy LSTM (tangshi.numpy_lstm): gradients, optimisers, agreement with PyTorch."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tangshi.lesson import gradcheck as gc
from tangshi.lesson import numpy_lstm as nl
from tangshi.lesson import numpy_optim as nopt

ROOT = Path(__file__).resolve().parents[1]
PAD = gc.PAD_ID


Cfg = gc.SmallConfig


def problem(cfg=Cfg(), seed=0, B=3, T=7):
    return gc.small_problem(seed, cfg, B, T)


# ------------------------------------------------------------------ finite differences


def test_finite_differences_every_element_of_every_parameter():
    cfg, params, inputs, targets = problem(Cfg(), seed=3, T=7)
    assert inputs.shape[1] >= 5 and (targets == PAD).any(axis=1).sum() >= 2  # padded rows
    loss, grads = nl.loss_and_grads(params, cfg, inputs, targets, PAD)
    errs, skipped = gc.fd_rel_errors(params, cfg, inputs, targets, grads)
    assert set(errs) == set(params) and "embedding.weight" in errs
    assert not any(skipped.values())
    bad = {k: v for k, v in errs.items() if not v < 1e-6}
    assert not bad, bad


def test_finite_differences_tied_relu_one_layer():
    cfg, params, inputs, targets = problem(Cfg(num_layers=1, tie_weights=True, relu_logits=True), seed=4)
    loss, grads = nl.loss_and_grads(params, cfg, inputs, targets, PAD)
    errs, skipped = gc.fd_rel_errors(params, cfg, inputs, targets, grads, max_elements=30, seed=4)
    assert "head.weight" not in errs
    assert sum(skipped.values()) < 10
    bad = {k: v for k, v in errs.items() if not v < 1e-6}
    assert not bad, bad


def test_finite_differences_catch_a_wrong_gradient():
    """The check itself can fail: a gradient off by 1e-4 in one element is flagged."""
    cfg, params, inputs, targets = problem(Cfg(num_layers=1), seed=5)
    loss, grads = nl.loss_and_grads(params, cfg, inputs, targets, PAD)
    grads["lstm.0.weight_hh"][2, 3] += 1e-4
    errs, _ = gc.fd_rel_errors(params, cfg, inputs, targets, grads, names={"lstm.0.weight_hh", "head.bias"})
    assert errs["head.bias"] < 1e-6
    assert errs["lstm.0.weight_hh"] > 1e-3


# ------------------------------------------------------------------ PyTorch autograd


CONFIGS = [
    Cfg(),
    Cfg(num_layers=1),
    Cfg(tie_weights=True),
    Cfg(relu_logits=True),
    Cfg(tie_weights=True, relu_logits=True, num_layers=1),
    Cfg(embed_dim=4, hidden_dim=5, num_layers=3),
]


@pytest.mark.parametrize(
    "cfg",
    CONFIGS,
    ids=lambda c: f"L{c.num_layers}-E{c.embed_dim}H{c.hidden_dim}-tie{int(c.tie_weights)}-relu{int(c.relu_logits)}",
)
def test_gradients_match_torch_autograd_float64(cfg):
    cfg, params, inputs, targets = problem(cfg, seed=1, B=4, T=9)
    loss, grads = nl.loss_and_grads(params, cfg, inputs, targets, PAD)
    t_loss, t_grads = gc.torch_grads(params, cfg, inputs, targets)
    nn_loss, nn_grads = gc.torch_nn_grads(params, cfg, inputs, targets)
    assert set(grads) == set(params) == set(t_grads) == set(nn_grads)
    assert abs(loss - t_loss) < 1e-12 and abs(loss - nn_loss) < 1e-12
    for k in params:
        assert grads[k].shape == params[k].shape and grads[k].dtype == np.float64
        assert np.max(np.abs(grads[k] - t_grads[k])) < 1e-9, k
        assert np.max(np.abs(grads[k] - nn_grads[k])) < 1e-9, k


def test_loss_is_mean_over_real_targets_only():
    cfg, params, inputs, targets = problem(Cfg(), seed=2)
    lp = nl.log_probs(params, cfg, inputs)
    real = targets != PAD
    expected = -lp[real, targets[real]].mean()
    loss, _ = nl.forward(params, cfg, inputs, targets, PAD)
    assert abs(loss - expected) < 1e-12


def test_packing_is_exact_extra_pad_columns_and_row_order():
    cfg, params, inputs, targets = problem(Cfg(), seed=6, B=4, T=8)
    loss, grads = nl.loss_and_grads(params, cfg, inputs, targets, PAD)
    # trailing all-PAD columns change nothing
    inputs2 = np.concatenate([inputs, np.full((4, 3), PAD)], axis=1)
    targets2 = np.concatenate([targets, np.full((4, 3), PAD)], axis=1)
    loss2, grads2 = nl.loss_and_grads(params, cfg, inputs2, targets2, PAD)
    # nor does the order of the rows
    perm = np.array([2, 0, 3, 1])
    loss3, grads3 = nl.loss_and_grads(params, cfg, inputs[perm], targets[perm], PAD)
    assert abs(loss - loss2) < 1e-14 and abs(loss - loss3) < 1e-14
    for k in grads:
        np.testing.assert_allclose(grads2[k], grads[k], rtol=0, atol=1e-15)
        np.testing.assert_allclose(grads3[k], grads[k], rtol=0, atol=1e-15)


def test_backward_twice_and_workspace_give_identical_results():
    cfg, params, inputs, targets = problem(Cfg(), seed=7)
    loss, cache = nl.forward(params, cfg, inputs, targets, PAD)
    g1, g2 = nl.backward(cache), nl.backward(cache)
    ws = nl.Workspace()
    for _ in range(2):
        loss_ws, cache_ws = nl.forward(params, cfg, inputs, targets, PAD, workspace=ws)
        g3 = nl.backward(cache_ws)
        assert loss_ws == loss
        for k in g1:
            assert np.array_equal(g1[k], g2[k]) and np.array_equal(g1[k], g3[k]), k
    assert ws.nbytes > 0


# ------------------------------------------------------------------ log-probs vs PyTorch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_log_probs_match_torch(dtype, tie, relu, layers):
    cfg = Cfg(vocab_size=17, embed_dim=8, hidden_dim=8, num_layers=layers, tie_weights=tie, relu_logits=relu)
    rng = np.random.default_rng(layers + 2 * tie + 4 * relu)
    params = nl.init_params(cfg, rng, dtype=dtype)
    for k in params:  # Xavier leaves the biases at 0; make them matter
        params[k] += rng.normal(0, 0.1, size=params[k].shape).astype(dtype)
    inputs = rng.integers(0, 17, size=(3, 10))
    lp = nl.log_probs(params, cfg, inputs)
    assert lp.shape == (3, 10, 17) and lp.dtype == dtype
    atol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(lp, gc.torch_reference_logprobs(params, cfg, inputs), rtol=0, atol=atol)
    np.testing.assert_allclose(lp, gc.torch_nn_logprobs(params, cfg, inputs), rtol=0, atol=atol)


def test_float32_forward_backward_stay_float32_and_close_to_float64():
    cfg, params64, inputs, targets = problem(Cfg(), seed=8)
    params32 = {k: v.astype(np.float32) for k, v in params64.items()}
    loss64, g64 = nl.loss_and_grads(params64, cfg, inputs, targets, PAD)
    loss32, g32 = nl.loss_and_grads(params32, cfg, inputs, targets, PAD)
    assert abs(loss32 - loss64) < 1e-5
    for k in g64:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=0, atol=1e-5)


# ------------------------------------------------------------------ optimisers


@pytest.mark.parametrize("name", list(gc.OPTIMIZER_CASES))
def test_optimizers_match_torch_optim_for_10_steps(name):
    make_np, make_torch = gc.OPTIMIZER_CASES[name]
    cfg, params, inputs, targets = problem(Cfg(), seed=9)
    assert gc.compare_optimizer(make_np, make_torch, params, cfg, inputs, targets, steps=10) < 1e-12


def test_optimizer_defaults_match_torch():
    p = torch.nn.Parameter(torch.zeros(1))
    assert torch.optim.AdamW([p], lr=1e-3).defaults["weight_decay"] == nopt.AdamW({"w": np.zeros(1)}).weight_decay
    a = nopt.Adam({"w": np.zeros(1)}, lr=1e-3)
    assert a.betas == (0.9, 0.999) and a.eps == 1e-8 and a.weight_decay == 0
    assert nopt.Adagrad({"w": np.zeros(1)}, lr=0.1).eps == 1e-10


@pytest.mark.parametrize(
    "make",
    [
        lambda p: nopt.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
        lambda p: nopt.Adam(p, lr=0.01, weight_decay=0.01),
        lambda p: nopt.AdamW(p, lr=0.01, weight_decay=0.1),
        lambda p: nopt.Adagrad(p, lr=0.1, weight_decay=0.01, initial_accumulator_value=0.1),
    ],
    ids=["SGD", "Adam", "AdamW", "Adagrad"],
)
def test_optimizer_state_dict_round_trip(make):
    cfg, params, inputs, targets = problem(Cfg(), seed=10)
    pa = {k: v.copy() for k, v in params.items()}
    opt = make(pa)
    for _ in range(3):
        opt.step(nl.loss_and_grads(pa, cfg, inputs, targets, PAD)[1])
    sd = opt.state_dict()
    json.dumps({k: v for k, v in sd.items() if k != "tensors"})  # numbers only
    assert all(isinstance(v, np.ndarray) for v in sd["tensors"].values()) and sd["tensors"]
    sd = json.loads(json.dumps({k: v for k, v in sd.items() if k != "tensors"})) | {"tensors": sd["tensors"]}
    pb = {k: v.copy() for k, v in pa.items()}
    opt_b = make(pb)
    opt_b.load_state_dict(sd)
    for _ in range(2):
        opt.step(nl.loss_and_grads(pa, cfg, inputs, targets, PAD)[1])
        opt_b.step(nl.loss_and_grads(pb, cfg, inputs, targets, PAD)[1])
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    other = nopt.Adam(pb) if opt.kind != "Adam" else nopt.SGD(pb, lr=1.0)
    with pytest.raises(ValueError):
        other.load_state_dict(sd)


def test_adagrad_effective_step_size_decays():
    cfg, params, inputs, targets = problem(Cfg(), seed=11)
    opt = nopt.Adagrad(params, lr=0.1, initial_accumulator_value=0.0)
    sizes = []
    for _ in range(5):
        opt.step(nl.loss_and_grads(params, cfg, inputs, targets, PAD)[1])
        sizes.append(opt.effective_step_size())
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    G = np.concatenate([g.ravel() for g in opt.state["sum"].values()])
    assert sizes[-1] == pytest.approx(float(np.median(0.1 / (np.sqrt(G) + 1e-10))))


def test_a_few_adam_steps_lower_the_loss_float32():
    cfg = Cfg(vocab_size=30, embed_dim=16, hidden_dim=16, num_layers=2)
    rng = np.random.default_rng(12)
    params = nl.init_params(cfg, rng)
    seq = rng.integers(1, 30, size=(8, 13))
    seq[3, 9:] = PAD
    seq[5, 6:] = PAD
    inputs, targets = seq[:, :-1], seq[:, 1:]
    opt = nopt.Adam(params, lr=0.02)
    losses = []
    for _ in range(25):
        loss, cache = nl.forward(params, cfg, inputs, targets, PAD)
        losses.append(loss)
        opt.step(nl.backward(cache))
    assert params["embedding.weight"].dtype == np.float32
    assert losses[-1] < 0.8 * losses[0], losses


# ------------------------------------------------------------------ initialisation


def test_zero_init_gradients_are_exactly_zero_except_head_bias():
    cfg, _, inputs, targets = problem(Cfg(), seed=13)
    params = nl.init_params(cfg, 0, scheme="zeros", dtype=np.float64)
    loss, grads = nl.loss_and_grads(params, cfg, inputs, targets, PAD)
    assert loss == pytest.approx(np.log(cfg.vocab_size))  # uniform prediction
    for k, g in grads.items():
        if k == "head.bias":
            assert np.any(g != 0)
        else:
            assert np.all(g == 0), k  # h_t = o_t * tanh(C_t) = 0.5 * tanh(0) = 0 everywhere


def test_zero_init_with_relu_logits_has_no_gradient_at_all():
    """The assignment's ReLU on the logits: relu'(0) = 0, so a zero-initialised model cannot learn."""
    cfg, _, inputs, targets = problem(Cfg(relu_logits=True, tie_weights=True), seed=14)
    params = nl.init_params(cfg, 0, scheme="zeros", dtype=np.float64)
    _, grads = nl.loss_and_grads(params, cfg, inputs, targets, PAD)
    assert all(np.all(g == 0) for g in grads.values())


def test_init_schemes():
    cfg = Cfg(vocab_size=50, embed_dim=8, hidden_dim=12, num_layers=2)
    shapes = nl.param_shapes(cfg)
    assert shapes["lstm.0.weight_ih"] == (8, 48) and shapes["lstm.1.weight_ih"] == (12, 48)
    assert shapes["lstm.1.weight_hh"] == (12, 48) and shapes["head.weight"] == (50, 12)
    assert "head.weight" not in nl.param_shapes(Cfg(tie_weights=True))
    x = nl.init_params(cfg, 0)
    assert list(x) == list(shapes) and all(x[k].shape == s and x[k].dtype == np.float32 for k, s in shapes.items())
    bound = np.sqrt(6 / (8 + 48))
    assert np.abs(x["lstm.0.weight_ih"]).max() <= bound and np.abs(x["lstm.0.weight_ih"]).max() > 0.9 * bound
    assert np.all(x["lstm.0.bias"] == 0) and np.all(x["head.bias"] == 0)
    u = nl.init_params(cfg, 0, scheme="uniform1e-4", dtype=np.float64)
    assert all(0 < np.abs(v).max() <= 1e-4 for v in u.values())
    assert all(np.all(v == 0) for v in nl.init_params(cfg, 0, scheme="zeros").values())
    with pytest.raises(ValueError):
        nl.init_params(cfg, 0, scheme="he")


def test_bad_inputs_are_rejected():
    cfg, params, inputs, targets = problem(Cfg(), seed=15)
    with pytest.raises(ValueError):
        nl.forward(params, cfg, inputs, np.full_like(targets, PAD), PAD)
    with pytest.raises(ValueError):
        nl.forward({k: v for k, v in params.items() if k != "head.weight"}, cfg, inputs, targets, PAD)
    with pytest.raises(ValueError):
        nl.forward(params, cfg, inputs + 100, targets, PAD)
    with pytest.raises(ValueError):
        nl.forward(params, cfg, inputs, np.where(targets == PAD, PAD, 11), PAD)
    with pytest.raises(ValueError):
        nl.param_shapes(Cfg(embed_dim=4, tie_weights=True))


def test_blas_threads_context_restores_the_setting():
    from threadpoolctl import threadpool_info

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    if not before:
        pytest.skip("numpy links no BLAS that threadpoolctl knows")
    with nl.blas_threads(1):
        assert blas() == [1] * len(before)
    assert blas() == before
    with nl.blas_threads(None):
        assert blas() == before


def test_numpy_lstm_does_not_import_torch():
    src = (ROOT / "src" / "tangshi" / "lesson" / "numpy_lstm.py").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|from)\s+torch", src, re.M)


# ------------------------------------------------------------------ gradcheck report and the derivation


def test_assignment_errors_are_large():
    cfg, params, inputs, targets = problem(Cfg(), seed=0)
    se = gc.assignment_errors(params, cfg, inputs, targets)
    assert min(se["no_cell_state_path"].values()) > 0.05
    assert set(se["no_cell_state_path"]) >= {"lstm.0.weight_hh", "lstm.1.weight_hh", "embedding.weight"}
    assert "head.weight" not in se["no_cell_state_path"]
    assert min(se["input_weights_last_step_only"].values()) > 0.5
    assert min(v for k, v in se["bias_i_o_set_to_delta_f"].items() if k.endswith("]")) > 0.1


def test_format_gradcheck_renders_a_result():
    res = {
        "ok": True,
        "seed": 0,
        "model": {
            "config": {
                "vocab_size": 11,
                "embed_dim": 6,
                "hidden_dim": 6,
                "num_layers": 2,
                "tie_weights": False,
                "relu_logits": False,
            },
            "batch": [3, 7],
            "real_targets": 14,
            "dtype": "float64",
            "fd_step": 1e-3,
            "fd_floor": 1e-5,
        },
        "loss": {"loss": 2.5, "torch_loss_abs_diff": 0.0, "torch_nn_loss_abs_diff": 0.0},
        "params": {"embedding.weight": {"fd_rel_err": 1e-8, "torch_abs_diff": 1e-17, "torch_nn_abs_diff": 1e-17}},
        "variants": {
            "tied": {
                "fd_rel_err": 1e-8,
                "torch_abs_diff": 1e-17,
                "loss_abs_diff": 0.0,
                "fd_elements_skipped_at_relu_kinks": 2,
            }
        },
        "optimizers": {"SGD": 1e-16},
        "reference_lstm": {"2 layers": {"fd_rel_err": 1e-8, "twin_abs_diff": 1e-17, "twin_loss_abs_diff": 0.0}},
        "training_kernel": {"PyTorch ops": {"rel_err": 5e-7}, "compiled cell": {"skipped": "no C compiler"}},
        "assignment_errors": {"no_cell_state_path": {"lstm.0.weight_hh": 0.4}},
        "tolerances": dict(gc.TOLERANCES),
    }
    res["init_loss"] = {"loss": 2.5, "ln_V": math.log(11), "ok": True}
    text = gc.format_gradcheck(res)  # short: the kernel, optimisers and other configurations behind --all
    assert "embedding.weight" in text and "no_cell_state_path" in text and text.rstrip().endswith("OK")
    assert "reference_lstm.py" in text and "2 layers" in text and "vs ln V = 2.398" in text
    assert "PyTorch ops" not in text and "SGD" not in text and "--all" in text
    full = gc.format_gradcheck(res, full=True)
    assert "PyTorch ops              5.00e-07" in full and "compiled cell            skipped: no C compiler" in full
    assert "SGD" in full and "tied" in full
    failed = gc.format_gradcheck(res | {"ok": False})  # a failure shows every section
    assert failed.rstrip().endswith("FAILED") and "PyTorch ops" in failed


def test_the_loss_at_initialisation_is_about_ln_v():
    """A model that knows nothing predicts about 1/V for each character: its loss is about ln V. The
    gradcheck problem's loss is computed here again from its logits (torch), and a head scaled ×50,
    confident before it has learned anything, is caught."""
    res = gc.run_gradcheck(seed=1)
    i = res["init_loss"]
    assert i["ok"] and i["ln_V"] == pytest.approx(math.log(res["model"]["config"]["vocab_size"]))
    assert abs(i["loss"] - i["ln_V"]) <= 0.1 * i["ln_V"]
    from tangshi.lesson.small_problem import SmallConfig, small_problem

    cfg = SmallConfig()
    _, params, inputs, targets = small_problem(1, cfg)
    loud = {k: (v * 50 if k == "head.weight" else v) for k, v in params.items()}
    loss = float(gc.torch_reference({k: torch.tensor(v) for k, v in loud.items()}, cfg, inputs, targets))
    assert abs(loss - i["ln_V"]) > 0.1 * i["ln_V"]  # what the check would refuse


def test_training_kernel_check_compares_fp32_with_float64(monkeypatch):
    """The training kernel's check: both paths within the fp32 tolerance of float64 autograd (and not
    0: fp32 was compared with float64, not with itself); a wrong backward is caught."""
    from tangshi.model import kernels
    from tangshi.model.recurrence import LSTMRecurrence

    res = gc.check_training_kernel(0)
    for name, v in res.items():
        if "skipped" in v:
            assert name == "compiled cell" and not kernels.detect().compiled
        else:
            assert 1e-9 < v["rel_err"] < gc.TOLERANCES["kernel_rel_err"], name
    bptt = LSTMRecurrence._bptt
    monkeypatch.setattr(
        LSTMRecurrence,
        "_bptt",
        staticmethod(lambda ctx, *g: tuple(t * 1.001 if t is not None else None for t in bptt(ctx, *g))),
    )
    assert all(v["rel_err"] > 1e-4 for v in gc.check_training_kernel(0).values() if "rel_err" in v)


def test_doc_equation_tags_point_at_the_equations():
    """The derivation names code lines by their `# eq (n)` tags, not by line numbers: every tag it
    names is a comment on a line of code in the file it names, and every equation (1)–(21) names
    its line in reference_lstm.py, the code to read."""
    doc = (ROOT / "docs" / "lstm-backprop.md").read_text(encoding="utf-8")
    named = re.findall(r"`(reference_lstm|numpy_lstm)\.py  # (eq \((\d+'?)\)[^`]*)`", doc)
    assert not re.search(r"(numpy|reference)_lstm\.py:\d", doc)  # no line numbers left
    for module, tag, _ in named:
        src = (ROOT / "src" / "tangshi" / "lesson" / f"{module}.py").read_text(encoding="utf-8")
        lines = [ln for ln in src.splitlines() if ln.rstrip().endswith("# " + tag) or f"# {tag}  " in ln]
        assert lines and all(not ln.lstrip().startswith("#") for ln in lines), (module, tag)
    assert sum(m == "numpy_lstm" for m, _, _ in named) >= 8  # the vectorisation section points into the twin
    equations = re.findall(r"^\*\*\((\d+'?)\)\*\*([^\n]*)", doc, flags=re.M)
    assert [n for n, _ in equations if "'" not in n] == [str(n) for n in range(1, 22)]
    for n, line in equations:  # each equation's line names a reference_lstm tag that carries its number
        tags = re.findall(r"`reference_lstm\.py  # ([^`]*)`", line)
        assert any(n in re.findall(r"\((\d+'?)\)", t) for t in tags), (n, line)
