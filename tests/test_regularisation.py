"""Each training option does what it claims: dropout only in train mode and with the
claimed mask shape, tied weights are one tensor, clipping bounds the gradient norm,
AdamW decays decoupled from the gradient, schedules follow their curves, early stopping stops."""

import json
import math

import pytest
import torch

from tangshi.model.lm import ModelConfig, PoetryLM, char_dropout, locked_dropout
from tangshi.train import loop as train_mod  # the loop that evaluates each epoch
from tangshi.train.torch_backend import TrainConfig, build_optimizer, build_scheduler, train

V, E = 11, 8


def _model(**over):
    torch.manual_seed(0)
    return PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=E, hidden_dim=E, init="torch", **over))


def test_locked_dropout_one_mask_per_sequence_and_off_in_eval():
    torch.manual_seed(1)
    x = torch.ones(4, 7, 50)
    y = locked_dropout(x, 0.4, training=True)
    # one mask per (sequence, feature), shared over all 7 time steps; kept values scaled by 1/(1 - p)
    assert torch.equal(y, y[:, :1].expand_as(y))
    assert y.unique().tolist() == [0.0, pytest.approx(1 / 0.6)]
    assert 0 < (y[:, 0] == 0).float().mean() < 1
    assert locked_dropout(x, 0.4, training=False) is x


def test_char_dropout_drops_every_occurrence_of_a_character():
    torch.manual_seed(2)
    w = torch.randn(V, E)
    ids = torch.arange(V).repeat(3, 2)  # every character appears 6 times
    out = char_dropout(w, ids, 0.5, training=True)
    dropped = (out == 0).all(-1)  # (3, 2V) positions that read a zero vector
    for c in range(V):
        occ = dropped[ids == c]
        assert occ.all() or not occ.any(), c  # all occurrences of a character share its fate
        if not occ.any():
            assert torch.allclose(out[ids == c], w[c] / 0.5)
    assert 0 < dropped.float().mean() < 1
    assert torch.equal(char_dropout(w, ids, 0.5, training=False), w[ids])


@pytest.mark.parametrize("option", ["dropout_embed", "dropout_chars", "dropout_output", "weight_drop"])
def test_each_dropout_is_active_in_train_mode_and_off_in_eval(option):
    ids = torch.randint(0, V - 1, (3, 9))
    plain, dropped = _model(), _model(**{option: 0.5})
    dropped.load_state_dict(plain.state_dict())
    plain.eval(), dropped.eval()
    with torch.no_grad():
        assert torch.equal(plain(ids)[0], dropped(ids)[0])  # eval: the option does nothing
        dropped.train()
        a, b = dropped(ids)[0], dropped(ids)[0]
    assert not torch.allclose(a, b)  # train: a fresh random mask each call
    assert not torch.allclose(a, plain(ids)[0])


def test_weight_drop_leaves_the_parameter_intact_and_passes_gradients():
    m = _model(weight_drop=0.5).train()
    before = m.lstm[0].weight_hh.detach().clone()
    ids = torch.randint(0, V - 1, (3, 9))
    m(ids, ids)[1].backward()
    assert torch.equal(m.lstm[0].weight_hh, before)  # DropConnect masks a copy, never the parameter
    g = m.lstm[0].weight_hh.grad
    assert (g == 0).any() and (g != 0).any()  # dropped connections get no gradient


def test_tied_weights_are_one_tensor():
    m = _model(tie_weights=True)
    assert m.head.weight is m.embedding.weight
    assert "head.weight" not in m.canonical_state_dict()
    with torch.no_grad():
        m.head.weight[0, 0] = 123.0
    assert m.embedding.weight[0, 0] == 123.0
    # the gradient is the sum of both uses: equal to the untied model's two gradients added
    ids = torch.randint(0, V - 1, (3, 9))
    u = _model()
    u.load_state_dict({**m.state_dict(), "head.weight": m.embedding.weight.detach().clone()})
    m(ids, ids)[1].backward()
    u(ids, ids)[1].backward()
    assert torch.allclose(m.embedding.weight.grad, u.embedding.weight.grad + u.head.weight.grad, atol=1e-6)


def test_adamw_decay_is_decoupled_from_the_gradient():
    m = _model()
    opt = build_optimizer(m, TrainConfig(optimizer="adamw", lr=0.1, weight_decay=0.5))
    assert isinstance(opt, torch.optim.AdamW)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: AdamW still shrinks by lr·wd, Adam's L2 would step by ±lr
    opt.step()
    for n, p in m.named_parameters():
        assert torch.allclose(p, before[n] * (1 - 0.1 * 0.5), atol=1e-7), n


def test_schedules_follow_their_curves():
    def lrs(schedule, epochs=4, steps=10, **kw):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched, unit = build_scheduler(opt, TrainConfig(lr=1.0, epochs=epochs, schedule=schedule, **kw), steps)
        out = []
        for _ in range(epochs * steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out, unit

    cos, unit = lrs("cosine", warmup=0.1)
    assert unit == "step" and cos[0] == pytest.approx(0.01) and max(cos) == pytest.approx(1.0, abs=1e-3)
    assert cos.index(max(cos)) == 4 and cos[-1] < 0.01  # 4 warm-up steps (10% of 40), then down to ~0
    one, _ = lrs("onecycle")
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0, abs=1e-3) and one[-1] < 1e-3
    inv, unit = lrs("invsqrt")  # 1/√(1 + epochs done), by the step: 1 at the start, 1/√2 after one epoch
    assert unit == "step" and inv[0] == 1.0 and inv[10] == pytest.approx(2**-0.5) and inv[30] == pytest.approx(0.5)
    assert inv[15] == pytest.approx(2.5**-0.5) and all(a > b for a, b in zip(inv, inv[1:]))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched, unit = build_scheduler(opt, TrainConfig(schedule="plateau", plateau_patience=1, plateau_factor=0.5), 10)
    assert unit == "epoch"
    for dev in (5.0, 4.0, 4.0, 4.0):  # two epochs without improvement beyond patience 1 → halved once
        sched.step(dev)
    assert opt.param_groups[0]["lr"] == 0.5


def test_clipping_bounds_the_gradient_norm(tmp_path, tiny_prepared):
    norms = []

    def on_step(step, model, opt):
        if step:
            norms.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None)))

    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, clip=1e-3)
    train(
        tiny_prepared,
        tmp_path / "run",
        dict(embed_dim=16, hidden_dim=16),
        cfg,
        progress=False,
        log=lambda *a: None,
        on_step=on_step,
    )
    assert norms and max(norms) <= 1e-3 * (1 + 1e-5)


def test_early_stop_stops_after_patience(tmp_path, tiny_prepared, monkeypatch):
    ppl = iter([50.0, 40.0, 45.0, 46.0, 30.0, 20.0])  # best at epoch 2, then two worse epochs

    real_evaluate = train_mod.evaluate

    def fake_evaluate(*a, **k):
        out = real_evaluate(*a, **k)
        out["dev_ppl"] = next(ppl)
        out["dev_nll"] = math.log(out["dev_ppl"])
        return out

    monkeypatch.setattr(train_mod, "evaluate", fake_evaluate)
    cfg = TrainConfig(epochs=6, batch_size=16, early_stop=2)
    res = train(
        tiny_prepared, tmp_path / "run", dict(embed_dim=16, hidden_dim=16), cfg, progress=False, log=lambda *a: None
    )
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and res["best"]["epoch"] == 2


def test_dropconnect_runs_on_the_library_kernel():
    """impl nn (mkldnn/cuDNN) with weight_drop: the mask falls on weight_hh in training only, entries
    dropped get no gradient, and eval gives the same function as the tangshi kernel."""
    from tangshi.model.lm import ModelConfig, PoetryLM, Runtime

    torch.manual_seed(0)
    cfg = dict(vocab_size=30, pad_id=29, embed_dim=8, hidden_dim=8, num_layers=2, weight_drop=0.5)
    nn_model, own = PoetryLM(ModelConfig(**cfg), Runtime(impl="nn")), PoetryLM(ModelConfig(**cfg))
    own.load_canonical_state_dict(nn_model.canonical_state_dict())
    x = torch.randint(0, 29, (4, 9))
    nn_model.eval(), own.eval()
    assert torch.allclose(nn_model(x)[0], own(x)[0], atol=1e-5)  # no dropout in eval
    nn_model.train()
    a, b = nn_model(x)[0], nn_model(x)[0]
    assert not torch.allclose(a, b)  # a new mask each call
    nn_model.zero_grad()
    nn_model(x)[0].sum().backward()
    g = nn_model.lstm.weight_hh_l0.grad
    zero = float((g == 0).float().mean())
    assert 0.3 < zero < 0.7, zero  # about half the entries were dropped, so got no gradient
