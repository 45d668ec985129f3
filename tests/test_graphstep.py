"""The CUDA-graph step (train/graph_step.py): the parts that run without a GPU.

The graphed step pads each batch to a fixed shape, takes its loss over every
position with PAD ignored, keeps gradients in fixed tensors and reads lr from a
tensor. Its "static" mode is exactly that code without the capture, so these
tests compare it with the eager step: same loss, same gradients, same training
run, same resume. The capture and replay themselves need CUDA (scripts/gpu_check.sh).
"""

import json
import math

import pytest
import torch

from tangshi.errors import TangshiError
from tangshi.model.checkpoint import _scalar_tensors_to_numbers
from tangshi.model.lm import ModelConfig, PoetryLM, Runtime
from tangshi.train.graph_step import TrainStep, pad_batch, round_up, static_loss
from tangshi.train.torch_backend import TrainConfig, build_optimizer, build_scheduler, train, use_cuda_graphs

V, PAD = 23, 0


def _batch(lengths, T=None, seed=0):
    """Poem-like rows: `length` real targets each, PAD after; inputs shifted by one."""
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    x = torch.full((len(lengths), T), PAD)
    y = torch.full((len(lengths), T), PAD)
    for r, n in enumerate(lengths):
        ids = torch.randint(1, V, (n,), generator=g)
        x[r, 0] = 1
        x[r, 1:n] = ids[: n - 1]
        y[r, :n] = ids
    return x, y


def _model(**over):
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, pad_id=PAD, embed_dim=12, hidden_dim=12, init="torch")
    runtime = {k: over.pop(k) for k in ("impl", "fused", "fused_head") if k in over}
    cfg.update(over)
    return PoetryLM(ModelConfig(**cfg), Runtime(**runtime)).train()


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_round_up_and_padding_shapes():
    assert [round_up(n, 8) for n in (1, 8, 9, 61, 64)] == [8, 8, 16, 64, 64]
    x, y = _batch([5, 3, 7])
    xp, yp = pad_batch(x, y, 4, 16, PAD)
    assert xp.shape == yp.shape == (4, 16)
    assert torch.equal(xp[:3, :7], x) and torch.equal(yp[:3, :7], y)
    assert int((xp[:, 7:] != PAD).sum()) == 0 and int((yp[3] != PAD).sum()) == 0
    assert int((yp != PAD).sum()) == 5 + 3 + 7  # the real targets, and only them


def test_fit_rounds_length_and_fills_rows():
    model = _model()
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mode="static", batch_size=4)
    for lengths, shape in (([5, 3, 7], (4, 8)), ([9], (4, 16)), ([61, 2, 2, 2], (4, 64)), ([64, 1, 1, 1], (4, 64))):
        x, y = _batch(lengths)
        assert tuple(step.fit(x, y)[0].shape) == shape
    original_model = _model(pad_in_loss=True, relu_logits=True)  # the assignment's PAD-counted loss: nothing padded
    step = TrainStep(original_model, torch.optim.SGD(original_model.parameters(), lr=0.1), mode="static", batch_size=4)
    x, y = _batch([5, 3, 7], T=64)
    assert tuple(step.fit(x, y)[0].shape) == (3, 64)


@pytest.mark.parametrize(
    "over", [dict(), dict(tie_weights=True), dict(impl="nn"), dict(num_layers=2), dict(fused_head=False)]
)
def test_static_loss_and_gradients_equal_the_eager_step(over):
    """Padding rows and columns and taking the loss over all positions with PAD ignored gives
    the eager loss (real positions only) and the same gradients, to fp32 rounding."""
    x, y = _batch([5, 3, 7, 2], seed=1)
    model = _model(**over)
    _, loss = model(x, y)
    loss.backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    xp, yp = pad_batch(x, y, 6, 16, PAD)
    got = static_loss(model, xp, yp)
    got.backward()
    assert float(got.detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    for name, g in _grads(model).items():
        torch.testing.assert_close(g, want[name], rtol=1e-5, atol=1e-7, msg=name)


def test_static_loss_counts_pad_for_the_original_recipe():
    x, y = _batch([5, 3, 7], T=10, seed=2)
    model = _model(pad_in_loss=True, relu_logits=True)
    _, loss = model(x, y)
    assert float(static_loss(model, x, y).detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    logp = torch.log_softmax(torch.relu(model.head(model.hidden(x)[0])), -1)  # by hand: the mean over all 30 positions
    by_hand = -logp.flatten(0, 1)[torch.arange(30), y.flatten()].mean()
    assert float(loss.detach()) == pytest.approx(float(by_hand.detach()), rel=1e-6)


def test_static_steps_train_like_eager_steps():
    """Five AdamW steps with clipping and a cosine schedule: the static step (fixed gradient
    tensors, lr read from a tensor the scheduler fills) reaches the eager step's weights."""
    batches = [_batch(l, seed=s) for s, l in enumerate(([5, 3, 7, 2], [9, 9, 1], [4, 4, 4, 4], [12, 2], [3]))]
    cfg = TrainConfig(optimizer="adamw", lr=3e-2, weight_decay=0.1, epochs=1, schedule="cosine", clip=0.5)
    finals, losses = {}, {}
    for mode in ("eager", "static"):
        model = _model(tie_weights=True)
        opt = build_optimizer(model, cfg, tensor_lr=mode == "static")
        assert torch.is_tensor(opt.param_groups[0]["lr"]) == (mode == "static")
        sched, _ = build_scheduler(opt, cfg, len(batches))
        step = TrainStep(model, opt, clip=cfg.clip, mode=mode, batch_size=4)
        losses[mode] = []
        for x, y in batches:
            losses[mode].append(float(step(x, y)))
            sched.step()
        finals[mode] = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert losses["static"] == pytest.approx(losses["eager"], rel=1e-5)
    for name, w in finals["eager"].items():
        torch.testing.assert_close(finals["static"][name], w, rtol=1e-4, atol=1e-6, msg=name)
    assert not torch.equal(finals["eager"]["embedding.weight"], _model(tie_weights=True).embedding.weight.detach())


TINY = dict(embed_dim=16, hidden_dim=16, tie_weights=True, init="torch")


def _cfg(**over):
    # fp32 pinned: the tolerances below are fp32's (bf16 autocast switches itself on where bf16 is fast)
    base = dict(
        epochs=2, batch_size=16, optimizer="adamw", lr=1e-2, weight_decay=0.1, schedule="cosine", clip=1.0, amp=False
    )
    base.update(over)
    return TrainConfig(**base)


def test_training_run_in_static_mode_matches_eager(tmp_path, tiny_prepared):
    runs = {
        m: train(
            tiny_prepared,
            tmp_path / m,
            TINY,
            _cfg(),
            progress=False,
            log=lambda *a: None,
            keep_epoch_checkpoints=False,
            step_mode=m,
        )
        for m in ("eager", "static")
    }
    for a, b in zip(runs["eager"]["history"], runs["static"]["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["dev_ppl"] == pytest.approx(a["dev_ppl"], rel=1e-4)
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-6)


def test_static_mode_resumes_exactly(tmp_path, tiny_prepared):
    """lr is a tensor in the graphed step's optimiser: the checkpoint stores the number, resume
    turns it back into a tensor, and the resumed run equals the uninterrupted one."""
    quiet = dict(progress=False, log=lambda *a: None, keep_epoch_checkpoints=False, step_mode="static")
    full = train(tiny_prepared, tmp_path / "full", TINY, _cfg(), **quiet)
    train(tiny_prepared, tmp_path / "cut", TINY, _cfg(), stop_after_epoch=1, **quiet)
    state = json.loads((tmp_path / "cut" / "last" / "trainer.json").read_text(encoding="utf-8"))
    assert isinstance(state["optimizer"]["param_groups"][0]["lr"], float)
    resumed = train(tiny_prepared, tmp_path / "cut", None, _cfg(), resume=True, **quiet)
    assert [h["dev_ppl"] for h in resumed["history"]] == [h["dev_ppl"] for h in full["history"]]


def test_scalar_tensors_become_numbers_and_other_tensors_are_refused():
    obj = {"lr": torch.tensor(0.5), "groups": [{"lr": torch.tensor(2.0), "betas": (0.9, 0.999)}], "n": 3}
    out = _scalar_tensors_to_numbers(obj)
    assert out == {"lr": 0.5, "groups": [{"lr": 2.0, "betas": [0.9, 0.999]}], "n": 3}
    json.dumps(out)
    with pytest.raises(TypeError):
        _scalar_tensors_to_numbers({"w": torch.zeros(2)})


def test_when_graphs_are_used():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_cuda_graphs(TrainConfig(optimizer="adamw"), cpu) is False  # auto: not on CPU
    assert use_cuda_graphs(TrainConfig(optimizer="adamw"), cuda) is True
    assert use_cuda_graphs(TrainConfig(optimizer="sgd"), cuda) is False  # auto: falls back quietly
    assert use_cuda_graphs(TrainConfig(optimizer="adamw"), cuda, on_step=lambda *a: None) is False
    assert use_cuda_graphs(TrainConfig(optimizer="adamw", cuda_graph=False), cuda) is False
    assert use_cuda_graphs(TrainConfig(optimizer="adamw", schedule="onecycle"), cuda) is False
    with pytest.raises(TangshiError, match="needs --device cuda"):
        use_cuda_graphs(TrainConfig(cuda_graph=True), cpu)
    with pytest.raises(TangshiError, match="adagrad"):
        use_cuda_graphs(TrainConfig(optimizer="adagrad", cuda_graph=True), cuda)
    with pytest.raises(TangshiError, match="CUDA graphs need --device cuda"):
        model = _model()
        TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), mode="graph")


DROPOUTS = dict(dropout_embed=0.2, dropout_chars=0.1, dropout_output=0.4, weight_drop=0.3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graph capture needs a GPU")
@pytest.mark.parametrize("over,amp", [(dict(), False), (DROPOUTS, False), (DROPOUTS, True), (dict(impl="nn"), False)])
def test_graph_replay_matches_static_steps_on_cuda(over, amp):
    """Replayed graphs against the same steps run eagerly: with dropout (the RNG offsets a replay
    takes are those the eager step takes, and reseeding between steps works), bf16 autocast, cuDNN."""
    batches = [tuple(t.cuda() for t in _batch(l, seed=s)) for s, l in enumerate(([5, 3, 7, 2], [9, 9, 1]) * 3)]
    cfg = TrainConfig(optimizer="adamw", lr=3e-2, weight_decay=0.1, epochs=1, schedule="cosine", clip=0.5)
    finals = {}
    for mode in ("static", "graph"):
        model = _model(tie_weights=over.get("impl") != "nn", **over).cuda()
        opt = build_optimizer(model, cfg, tensor_lr=True)
        sched, _ = build_scheduler(opt, cfg, len(batches))
        step = TrainStep(model, opt, clip=cfg.clip, amp=amp, mode=mode, batch_size=4, warmup=1)
        torch.manual_seed(1)
        for k, (x, y) in enumerate(batches):
            if k == 3:
                torch.manual_seed(2)  # as the trainer does at each epoch
            step(x, y)
            sched.step()
        finals[mode] = {n: p.detach().clone() for n, p in model.named_parameters()}
        if mode == "graph":
            assert step.n_graphs == 2
    for name, w in finals["static"].items():
        torch.testing.assert_close(finals["graph"][name], w, rtol=1e-4, atol=1e-6, msg=name)
    assert math.isfinite(float(finals["graph"]["embedding.weight"].sum()))


def test_cli_cuda_graph_without_a_gpu_is_one_clear_error(tmp_path, tiny_prepared, capsys):
    from tangshi.cli.main import main

    code = main(["train", "--data", str(tiny_prepared), "--out", str(tmp_path / "run"), "--cuda-graph", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "--cuda-graph" in err and "--device cuda" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("impl", ["tangshi", "nn"])
def test_cuda_step_matches_cpu_step(impl):
    """The eager training loss and gradients on CUDA (the fused BPTT kernel, or cuDNN) equal the CPU's."""
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # cuDNN's LSTM may use TF32 by default: compare fp32 with fp32
    try:
        _compare_cuda_with_cpu(impl)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _compare_cuda_with_cpu(impl):
    x, y = _batch([5, 3, 7, 2], seed=3)
    cpu = _model(impl=impl, tie_weights=True)
    gpu = _model(impl=impl, tie_weights=True).cuda()
    _, l_cpu = cpu(x, y)
    _, l_gpu = gpu(x.cuda(), y.cuda())
    l_cpu.backward()
    l_gpu.backward()
    assert float(l_gpu.detach()) == pytest.approx(float(l_cpu.detach()), rel=1e-5)
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_graph_safe_lookup_equals_embedding():
    """The CUDA lookup (index_select, backward index_add_) against F.embedding: values and gradients,
    with repeated ids (their gradients must add up)."""
    from tangshi.model.lm import lookup

    torch.manual_seed(0)
    w1 = torch.randn(11, 5, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    ids = torch.tensor([[1, 3, 3, 0], [10, 3, 1, 1]])
    g = torch.randn(2, 4, 5)
    a, b = lookup(w1, ids, graph_safe=True), lookup(w2, ids, graph_safe=False)
    assert torch.equal(a, b) and a.shape == (2, 4, 5)
    (a * g).sum().backward()
    (b * g).sum().backward()
    torch.testing.assert_close(w1.grad, w2.grad, rtol=0, atol=1e-6)
    by_hand = torch.zeros(11, 5)
    for (r, c), i in zip(torch.cartesian_prod(torch.arange(2), torch.arange(4)).tolist(), ids.flatten().tolist()):
        by_hand[i] += g[r, c]
    torch.testing.assert_close(w1.grad, by_hand, rtol=0, atol=1e-6)
