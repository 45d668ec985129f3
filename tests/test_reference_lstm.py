"""The assignment-notation LSTM (reference_lstm.py): the same loss and gradients as the fast twin,
finite differences of its own loss, and the assignment's missing cell-state path visible in its gradients."""

import numpy as np
import pytest

from tangshi.lesson import gradcheck as gc
from tangshi.lesson import numpy_lstm as nl
from tangshi.lesson import reference_lstm as ref

CONFIGS = [
    gc.SmallConfig(),
    gc.SmallConfig(num_layers=1, tie_weights=True, relu_logits=True),
    gc.SmallConfig(embed_dim=5, num_layers=3, relu_logits=True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["2 layers", "tied+relu", "3 layers, D != H"])
def test_reference_equals_the_fast_twin(config):
    _, params, inputs, targets = gc.small_problem(3, config)
    loss, grads = ref.loss_and_grads(params, config, inputs, targets, gc.PAD_ID)
    twin_loss, twin = nl.loss_and_grads(params, config, inputs, targets, gc.PAD_ID)
    assert abs(loss - twin_loss) <= 1e-12
    assert grads.keys() == twin.keys()
    for k in grads:
        assert np.abs(grads[k] - twin[k]).max() <= 1e-10, k


def test_reference_against_finite_differences_of_its_own_loss():
    res = gc.check_reference(gc.SmallConfig(), seed=4, max_elements=6)
    assert res["fd_rel_err"] < gc.TOLERANCES["fd_rel_err"]


def test_without_the_cell_state_path_the_recurrent_gradients_are_wrong():
    config = gc.SmallConfig(num_layers=1)
    _, params, inputs, targets = gc.small_problem(5, config)
    _, good = ref.loss_and_grads(params, config, inputs, targets, gc.PAD_ID)
    _, bad = ref.loss_and_grads(params, config, inputs, targets, gc.PAD_ID, cell_path=False)
    rel = np.linalg.norm(bad["lstm.0.weight_hh"] - good["lstm.0.weight_hh"]) / np.linalg.norm(good["lstm.0.weight_hh"])
    assert rel > 0.05
    assert np.array_equal(bad["head.bias"], good["head.bias"])  # the head is upstream of the recurrence


def test_layer_update_is_gradient_descent():
    rng = np.random.default_rng(0)
    E, H = 3, 4
    layer = ref.LstmLayer.from_canonical(
        rng.normal(size=(E, 4 * H)), rng.normal(size=(H, 4 * H)), rng.normal(size=4 * H)
    )
    xs = [rng.normal(size=(E, 1)) for _ in range(5)]
    hs = layer.forward(xs)
    layer.calc_delta([np.ones_like(h) for h in hs])  # E = Σ_t Σ h_t
    layer.calc_gradient()
    before = {g: layer.W_h[g].copy() for g in ref.GATES}
    layer.update(0.1)
    for g in ref.GATES:
        assert np.allclose(layer.W_h[g], before[g] - 0.1 * layer.W_h_grad[g])
