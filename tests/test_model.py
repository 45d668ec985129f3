"""The assignment's LSTM against torch.nn.LSTM with copied weights, and the kernels against each other."""

import pytest
import torch
import torch.nn.functional as F

from tangshi.errors import TangshiError
from tangshi.model.lm import ModelConfig, PoetryLM, Runtime, canonical_shapes
from tangshi.model.recurrence import OriginalLSTMLayer

V, E, H = 23, 12, 16


def _batch(seed=0, B=4, T=9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V - 1, (B, T), generator=g)
    y = torch.randint(0, V - 1, (B, T), generator=g)
    y[1, 5:] = V - 1  # padded rows
    y[3, 2:] = V - 1
    return x, y


@pytest.mark.parametrize("mode", ["fused", "plain", "original"])
def test_layer_matches_nn_lstm(mode):
    """Our layer vs torch.nn.LSTM with the same weights: forward and every gradient < 1e-5 (fp32)."""
    torch.manual_seed(0)
    ours = OriginalLSTMLayer(E, H)
    for p in ours.parameters():
        torch.nn.init.uniform_(p, -0.5, 0.5)
    ref = torch.nn.LSTM(E, H, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(ours.weight_ih.t())
        ref.weight_hh_l0.copy_(ours.weight_hh.t())
        ref.bias_ih_l0.copy_(ours.bias)
        ref.bias_hh_l0.zero_()
    x = torch.randn(3, 11, E, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    h0, c0 = torch.randn(3, H), torch.randn(3, H)
    out, (hT, cT) = ours(x, (h0, c0), mode=mode)
    ref_out, (rh, rc) = ref(x2, (h0[None], c0[None]))
    assert (out - ref_out).abs().max() < 1e-5
    assert (cT - rc[0]).abs().max() < 1e-5
    w = torch.randn_like(out)
    ((out * w).sum() + hT.sum() * 0.3 + cT.sum() * 0.7).backward()
    ((ref_out * w).sum() + rh.sum() * 0.3 + rc.sum() * 0.7).backward()
    assert (x.grad - x2.grad).abs().max() < 1e-5
    assert (ours.weight_ih.grad - ref.weight_ih_l0.grad.t()).abs().max() < 1e-5
    assert (ours.weight_hh.grad - ref.weight_hh_l0.grad.t()).abs().max() < 1e-5
    assert (ours.bias.grad - ref.bias_ih_l0.grad).abs().max() < 1e-5


@pytest.mark.parametrize("impl,fused", [("tangshi", True), ("tangshi", False), ("original", True), ("nn", True)])
@pytest.mark.parametrize("tie", [False, True])
def test_model_kernels_agree(impl, fused, tie):
    """The whole model with each kernel: same loss and gradients as the plain autograd loop."""
    cfg = dict(vocab_size=V, pad_id=V - 1, embed_dim=H, hidden_dim=H, num_layers=2, tie_weights=tie)
    torch.manual_seed(1)
    ref = PoetryLM(ModelConfig(**cfg), Runtime(impl="tangshi", fused=False))
    m = PoetryLM(ModelConfig(**cfg), Runtime(impl=impl, fused=fused))
    m.load_canonical_state_dict(ref.canonical_state_dict())
    x, y = _batch()
    _, l1 = m(x, y)
    _, l2 = ref(x, y)
    assert abs(l1.item() - l2.item()) < 1e-5
    l1.backward()
    l2.backward()
    assert (m.embedding.weight.grad - ref.embedding.weight.grad).abs().max() < 1e-5
    assert (m.head.bias.grad - ref.head.bias.grad).abs().max() < 1e-5


def test_loss_ignores_pad_and_matches_hand_computation():
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=8, hidden_dim=8))
    x, y = _batch()
    logits, _ = m(x)
    logp = F.log_softmax(logits, -1)
    real = y != V - 1
    expected = -(logp.gather(-1, y[..., None]).squeeze(-1)[real]).mean()
    _, loss = m(x, y)
    assert abs(loss.item() - expected.item()) < 1e-6
    # the assignment's PAD-counted loss averages over every position
    seed = PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=8, hidden_dim=8, pad_in_loss=True))
    seed.load_canonical_state_dict(m.canonical_state_dict())
    _, original_loss = seed(x, y)
    expected_all = -(logp.gather(-1, y[..., None]).squeeze(-1)).mean()
    assert abs(original_loss.item() - expected_all.item()) < 1e-6


def test_relu_logits_option():
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=8, hidden_dim=8, relu_logits=True))
    logits, _ = m(_batch()[0])
    assert (logits >= 0).all() and (logits == 0).any()


def test_parameter_layout_and_init():
    m = PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=E, hidden_dim=H))
    sd = m.canonical_state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == canonical_shapes(m.config)
    assert sd["lstm.0.weight_ih"].shape == (E, 4 * H) and sd["lstm.0.weight_hh"].shape == (H, 4 * H)
    assert (sd["lstm.0.bias"] == 0).all() and (sd["head.bias"] == 0).all()
    bound = (6 / (E + 4 * H)) ** 0.5  # Xavier-uniform on (E, 4H)
    assert sd["lstm.0.weight_ih"].abs().max() <= bound and sd["lstm.0.weight_ih"].abs().max() > 0.8 * bound


def test_step_carries_state_like_full_forward():
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=8, hidden_dim=8, num_layers=2)).eval()
    x, _ = _batch()
    full = F.log_softmax(m(x)[0], -1)
    state = None
    for t in range(x.size(1)):
        logits, state = m.step(x[:, t], state)
        assert (F.log_softmax(logits, -1) - full[:, t]).abs().max() < 1e-5


def test_config_errors():
    with pytest.raises(TangshiError, match="tied weights"):
        ModelConfig(vocab_size=V, pad_id=0, embed_dim=8, hidden_dim=16, tie_weights=True)
    with pytest.raises(TangshiError, match="unknown LSTM"):
        Runtime(impl="gru")


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("tie", [False, True])
def test_fused_head_matches_log_softmax_nll(relu, tie, compiled):
    """HeadNLL (chunked, one exp pass; its elementwise work as PyTorch ops or compiled,
    csrc/head_nll.c) = log_softmax + nll_loss: loss and every gradient."""
    import tangshi.model.head_loss as M
    from tangshi.model import kernels

    ks = kernels.detect() if compiled else kernels.Kernels.off()
    if compiled and not ks.compiled:
        pytest.skip(f"the compiled kernels are not built here: {ks.why}")

    cfg = dict(vocab_size=V, pad_id=V - 1, embed_dim=H, hidden_dim=H, relu_logits=relu, tie_weights=tie)
    torch.manual_seed(3)
    a = PoetryLM(ModelConfig(**cfg), Runtime(fused_head=True, kernels=ks))
    b = PoetryLM(ModelConfig(**cfg), Runtime(fused_head=False))
    for p in a.parameters():
        torch.nn.init.uniform_(p, -0.3, 0.3)
    b.load_canonical_state_dict(a.canonical_state_dict())
    x, y = _batch(B=6, T=13)
    old = M.HEAD_CHUNK
    M.HEAD_CHUNK = 7  # several chunks, the last one partial
    try:
        _, la = a(x, y)
    finally:
        M.HEAD_CHUNK = old
    _, lb = b(x, y)
    assert abs(la.item() - lb.item()) < 1e-6
    (la * 2.5).backward()
    (lb * 2.5).backward()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert (pa.grad - pb.grad).abs().max() < 1e-6, n


@pytest.mark.parametrize("compiled", [False, True])
def test_fused_head_checks_its_targets(compiled):
    """A target outside the vocabulary is an IndexError on either path (the compiled pass would
    otherwise write outside its row), and int32 targets give the int64 loss."""
    from tangshi.model import kernels
    from tangshi.model.head_loss import HeadNLL

    lib = kernels.detect().lib if compiled else None
    if compiled and lib is None:
        pytest.skip(f"the compiled kernels are not built here: {kernels.detect().why}")
    torch.manual_seed(0)
    h, w, b = torch.randn(10, 8), torch.randn(20, 8), torch.randn(20)
    t = torch.randint(0, 20, (10,))
    assert HeadNLL.apply(h, w, b, t.int(), False, lib).item() == HeadNLL.apply(h, w, b, t, False, lib).item()
    for bad in (20, -1):
        with pytest.raises(IndexError):
            HeadNLL.apply(h, w, b, torch.full((10,), bad), False, lib)


def test_trimmed_batch_gives_the_same_loss_and_gradients():
    """Length bucketing cuts the time axis to the longest poem: exact, since PAD targets carry no loss."""
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=H, hidden_dim=H))
    x, y = _batch(B=5, T=20)
    y[:, 12:] = V - 1  # every poem ends by step 12
    _, full = m(x, y)
    g_full = torch.autograd.grad(full, list(m.parameters()))
    _, trimmed = m(x[:, :12], y[:, :12])
    g_trim = torch.autograd.grad(trimmed, list(m.parameters()))
    assert abs(full.item() - trimmed.item()) < 1e-6
    assert all((a - b).abs().max() < 1e-6 for a, b in zip(g_full, g_trim))


def test_bf16_autocast_stays_close_to_fp32():
    """bf16 autocast (used where it is fast: CUDA, AMX CPUs): loss within 1% and gradients aligned
    (cosine > 0.99) with the fp32 step. (The recurrence's products with weight_hh run in bf16 too;
    the cell state and the gates stay fp32: the next test.)"""
    torch.manual_seed(0)
    m = PoetryLM(ModelConfig(vocab_size=V, pad_id=V - 1, embed_dim=H, hidden_dim=H))
    x, y = _batch(B=8, T=16)
    _, l32 = m(x, y)
    g32 = torch.cat([g.flatten() for g in torch.autograd.grad(l32, list(m.parameters()))])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, l16 = m(x, y)
    g16 = torch.cat([g.float().flatten() for g in torch.autograd.grad(l16, list(m.parameters()))])
    assert abs(l16.item() - l32.item()) / l32.item() < 0.01
    assert F.cosine_similarity(g32, g16, dim=0) > 0.99


def test_recurrence_products_in_bf16_under_autocast():
    """Hand-computed: weight_hh ≡ 1 + 2⁻¹⁰ is 1 in bf16, h_0 ≡ 0.5 is exact. Under bf16 autocast every
    gate pre-activation is z = 0.5 · H · 1 = 2 exactly (in fp32 it is 2 + 2⁻⁹); ∂E/∂h_0 is the
    sum of the bf16-rounded δz (times 1); ∂E/∂weight_hh = 0.5 · bf16(δz) exactly. The cell arithmetic
    on z stays fp32, so h_1 = σ(2) tanh(σ(2) tanh 2) to fp32 rounding."""
    from tangshi.model.recurrence import LSTMRecurrence

    H = 4
    w = torch.full((H, 4 * H), 1 + 2**-10, requires_grad=True)
    h0 = torch.full((1, H), 0.5, requires_grad=True)
    xz = torch.zeros(1, 1, 4 * H, requires_grad=True)

    def run(bf16: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hs, _, _ = LSTMRecurrence.apply(xz, w, h0, torch.zeros(1, H))
        return hs, torch.autograd.grad(hs.sum(), (xz, w, h0))

    hs, (d_xz, d_w, d_h0) = run(True)
    s2, t2 = torch.sigmoid(torch.tensor(2.0)), torch.tanh(torch.tensor(2.0))
    assert hs.dtype == torch.float32 and torch.allclose(
        hs, (s2 * torch.tanh(s2 * t2)).expand(1, 1, H), rtol=0, atol=2e-7
    )
    dz = d_xz[0]  # (1, 4H) δz_0, fp32
    assert torch.equal(d_w, (0.5 * dz.bfloat16().float()).expand(H, 4 * H))
    assert torch.equal(d_h0, dz.bfloat16().double().sum().float().bfloat16().float().expand(1, H))
    hs32, (_, d_w32, _) = run(False)  # fp32 products: z = 2 + 2⁻⁹, and δW_hh unrounded
    z32 = torch.tensor(0.5 * H * (1 + 2**-10))
    s, t = torch.sigmoid(z32), torch.tanh(z32)
    assert torch.allclose(hs32, (s * torch.tanh(s * t)).expand(1, 1, H), rtol=0, atol=2e-7)
    assert (hs32 - hs).abs().min() > 1e-4 and not torch.equal(d_w32, d_w)


@pytest.mark.parametrize(
    "impl, tie, layers, sizes",
    [
        ("tangshi", True, 1, (8, 8, 12, 12)),
        ("tangshi", False, 2, (5, 6, 7, 11)),
        ("nn", True, 2, (8, 8, 12, 12)),
        ("original", False, 1, (5, 6, 5, 9)),
    ],
)
def test_widen_keeps_the_function_and_the_old_weights(impl, tie, layers, sizes):
    """widen(): the wider model's log-probabilities equal the original's (eval mode, the same
    inputs); every old weight sits unchanged in its gate block; the blocks that would let a new
    unit or a new input reach an old unit, or the logits, are exactly zero."""
    from tangshi.model.lm import widen

    E0, H0, E1, H1 = sizes
    torch.manual_seed(0)
    m = PoetryLM(
        ModelConfig(
            vocab_size=20, pad_id=19, tie_weights=tie, embed_dim=E0, hidden_dim=H0, num_layers=layers, init="torch"
        ),
        Runtime(impl=impl),
    ).eval()
    w = widen(m, E1, H1).eval()
    ids = torch.randint(0, 19, (3, 9))
    with torch.no_grad():
        a = torch.log_softmax(m.logits(m.hidden(ids)[0]), -1)
        b = torch.log_softmax(w.logits(w.hidden(ids)[0]), -1)
    assert (a - b).abs().max() < 1e-5
    old, new = m.canonical_state_dict(), w.canonical_state_dict()
    assert torch.equal(new["embedding.weight"][:, :E0], old["embedding.weight"])
    assert not new["embedding.weight"][:, E0:].any()
    if not tie:
        assert not new["head.weight"][:, H0:].any()
    for l in range(layers):
        n_in = E0 if l == 0 else H0
        for k in range(4):  # gate blocks i, f, g, o
            old_cols, new_cols = slice(k * H0, (k + 1) * H0), slice(k * H1, k * H1 + H0)
            assert torch.equal(new[f"lstm.{l}.weight_ih"][:n_in, new_cols], old[f"lstm.{l}.weight_ih"][:, old_cols])
            assert torch.equal(new[f"lstm.{l}.weight_hh"][:H0, new_cols], old[f"lstm.{l}.weight_hh"][:, old_cols])
            assert torch.equal(new[f"lstm.{l}.bias"][new_cols], old[f"lstm.{l}.bias"][old_cols])
            assert not new[f"lstm.{l}.weight_ih"][n_in:, new_cols].any()
            assert not new[f"lstm.{l}.weight_hh"][H0:, new_cols].any()
            assert new[f"lstm.{l}.weight_hh"][:, k * H1 + H0 : (k + 1) * H1].abs().sum() > 0  # new units are drawn
    with pytest.raises(TangshiError, match="only be widened"):
        widen(m, E0 - 1, H0)


@pytest.mark.parametrize("impl", ["tangshi", "nn"])
def test_the_init_studys_arms_change_one_tensor_or_gate(impl):
    """Each arm equals its base scheme (same seed) except where it says: the embedding, the forget
    gate's bias, or each gate's block of weight_hh (then orthogonal: QᵀQ = I)."""
    H = 8

    def build(scheme):
        torch.manual_seed(3)
        cfg = ModelConfig(vocab_size=40, pad_id=0, embed_dim=H, hidden_dim=H, init=scheme)
        return dict(PoetryLM(cfg, Runtime(impl=impl)).named_parameters())

    xav, tor = build("xavier"), build("torch")
    for scheme, base, changed in [
        ("xavier_normal_embed", xav, {"embedding.weight"}),
        ("torch_xavier_embed", tor, {"embedding.weight"}),
        ("xavier_forget1", xav, {n for n in xav if n.startswith("lstm.") and "bias" in n and "bias_hh" not in n}),
        ("xavier_orthogonal", xav, {n for n in xav if "weight_hh" in n}),
    ]:
        arm = build(scheme)
        for n, p in arm.items():
            assert torch.equal(p, base[n]) == (n not in changed), (scheme, n)
    emb = build("xavier_normal_embed")["embedding.weight"]
    assert 0.8 < emb.std().item() < 1.2  # N(0, 1), as nn.Embedding's default
    for n, b in build("xavier_forget1").items():
        if n.startswith("lstm.") and "bias" in n and "bias_hh" not in n:
            assert torch.equal(b[H : 2 * H], torch.ones(H)) and not b[:H].any() and not b[2 * H :].any()
    for n, w in build("xavier_orthogonal").items():
        if "weight_hh" in n:
            for g in range(4):
                block = w[:, g * H : (g + 1) * H] if w.shape == (H, 4 * H) else w[g * H : (g + 1) * H]
                assert torch.allclose(block.T @ block, torch.eye(H), atol=1e-5), (n, g)
