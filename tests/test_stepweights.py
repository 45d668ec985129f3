"""The decoding step's weights: int8 (fbgemm) against fp32, the cache, and the step-path evaluation."""

import pytest
import torch

from tangshi.data.splits import load_split
from tangshi.data.vocab import Vocab
from tangshi.decode.search import DecodeOptions
from tangshi.errors import TangshiError
from tangshi.model import kernels
from tangshi.model import step_weights as stepweights
from tangshi.model.lm import ModelConfig, PoetryLM
from tangshi.model.step_weights import StepState, step_weights
from tangshi.train.evaluate import evaluate, evaluate_steps

needs_fbgemm = pytest.mark.skipif(not stepweights.int8_available(), reason="no fbgemm on this CPU")


def _model(**kw):
    torch.manual_seed(0)
    return PoetryLM(
        ModelConfig(**{**dict(vocab_size=50, pad_id=49, embed_dim=32, hidden_dim=32, num_layers=2, init="torch"), **kw})
    ).eval()


def _run(model, ids, precision):
    state, out = None, []
    for t in range(ids.size(1)):
        logits, state = model.step(ids[:, t], state, precision=precision)
        out.append(logits)
    return torch.stack(out, 1)


@needs_fbgemm
@pytest.mark.parametrize("batch", [1, 5])
def test_int8_step_follows_fp32(batch):
    """Per-row int8 weights and 7-bit activations: logits within a few percent of their spread,
    the same top choice nearly everywhere (a wrongly packed matrix gives unrelated logits)."""
    m = _model(tie_weights=False)
    ids = torch.randint(0, 49, (batch, 12))
    ref, q = _run(m, ids, "fp32"), _run(m, ids, "int8")
    err = (q - ref).abs().max() / ref.std()
    assert err < 0.05
    assert (q.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9
    unrelated = _run(_model(tie_weights=False, init="xavier"), ids, "fp32")
    assert (unrelated - ref).abs().max() / ref.std() > 10 * err  # the bound above can fail


needs_vnni = pytest.mark.skipif(
    not kernels.detect().compiled or not kernels.detect().lib.gemv_int8_available(),
    reason="the compiled int8 row kernel needs AVX-512 VNNI and a C compiler",
)


def _row_reference(lin, x):
    """csrc/gemv_int8.c's formula in float64 from the int8 weights: x quantised to 8 bits symmetric,
    exact integer sums, then the two scales and the bias."""
    w, rowsum, scale = lin.row
    n16, k4 = w.shape[0], w.shape[1]
    wq = w.permute(0, 2, 1, 3).reshape(n16 * 16, k4 * 4)[: lin.N].double()  # unpacked (N, K)
    s_x = float(x.abs().max()) / 127.0
    q = torch.round(x.double()[0] / torch.tensor(s_x, dtype=torch.float32).double())
    y = (wq @ q) * s_x * scale[: lin.N].double()
    return y if lin.bias is None else y + lin.bias.double()


@needs_vnni
@pytest.mark.parametrize("shape", [(6837, 512), (37, 16), (16, 8), (100, 24)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_int8_row_kernel_matches_its_formula(shape, with_bias):
    """The VNNI kernel (one row) against its formula computed independently in float64, within fp32
    rounding; against fbgemm (the batch path) and fp32 within int8's error; NaN and zero rows."""
    N, K = shape
    g = torch.Generator().manual_seed(N + K)
    w, b = torch.randn(N, K, generator=g) * 0.05, torch.randn(N, generator=g)
    lin = stepweights.Int8Linear(w, b if with_bias else None, kernels.detect().lib)
    assert lin.row
    x = torch.randn(1, K, generator=g)
    y = lin(x)
    ref = _row_reference(lin, x)
    assert y.shape == (1, N)
    torch.testing.assert_close(y[0].double(), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    exact = (x @ w.t() + (b if with_bias else 0))[0]
    fb = torch.ops.quantized.linear_dynamic(x, lin.fbgemm, True)[0]
    spread = float((exact - (b if with_bias else 0)).std())
    assert float((y[0] - exact).abs().max()) < 0.05 * spread
    assert float((y[0] - exact).norm()) < float((fb - exact).norm())  # 8-bit activations beat 7-bit
    assert torch.equal(lin(torch.zeros(1, K))[0], b if with_bias else torch.zeros(N))
    nan = torch.zeros(1, K)
    nan[0, K // 2] = float("nan")
    assert torch.isnan(lin(nan)).all()
    nan[0, K // 2] = float("inf")
    assert torch.isnan(lin(nan)).all()
    assert lin(torch.randn(3, K, generator=g)).shape == (3, N)  # a batch: fbgemm


@needs_vnni
def test_int8_row_kernel_off_with_the_compiled_kernels():
    """Without the compiled kernels a row goes through fbgemm, bit for bit its batch result."""
    w = torch.randn(40, 16)
    off, on = stepweights.Int8Linear(w, None), stepweights.Int8Linear(w, None, kernels.detect().lib)
    x = torch.randn(1, 16)
    assert torch.equal(off(x), torch.ops.quantized.linear_dynamic(x, off.fbgemm, True))
    assert not torch.equal(on(x), torch.ops.quantized.linear_dynamic(x, on.fbgemm, True))


@needs_vnni
@pytest.mark.parametrize("layers", [1, 2])
def test_head_and_hh_in_one_product_equal_two(layers):
    """One row in int8: the head's product that also gives the last layer's h_t weight_hh yields the same
    logits, bit for bit, step after step, as the two products apart; a state used twice (two
    continuations of one prefix) gives the same result both times."""
    import dataclasses

    m = _model(num_layers=layers, hidden_dim=32, embed_dim=24)
    w = step_weights(m, "int8")
    assert w.head_and_hh is not None
    apart = dataclasses.replace(w, head_and_hh=None, xz_rows={})
    ids = torch.randint(0, 49, (1, 15))
    s1, s2, outs = StepState.start(w, 1), StepState.start(apart, 1), []
    for t in range(15):
        a, s1 = m.step(ids[:, t], s1, logits=t % 4 != 3)
        b, s2 = m.step(ids[:, t], s2, logits=t % 4 != 3)
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), t
        assert (s1.hz is not None) == (t % 4 != 3) and s2.hz is None
        assert all(torch.equal(x, y) for x, y in zip(s1.h + s1.c, s2.h + s2.c)), t  # the fused cell's h_t, C_t
        outs.append(a)
    if layers == 1:  # after the first step a logits step takes the cell + head call: state.hz read, never written
        hz = s1.hz.clone()
        m.step(torch.tensor([5]), s1)
        assert torch.equal(hz, s1.hz)
    again = [m.step(torch.tensor([5]), s1)[0] for _ in range(2)]
    assert torch.equal(again[0], again[1]) and torch.equal(again[0], m.step(torch.tensor([5]), s2)[0])


@pytest.mark.parametrize("precision", ["fp32", pytest.param("int8", marks=needs_fbgemm)])
def test_kept_input_rows_equal_computing_them(precision):
    """The first layer's x weight_ih + b, kept per token for one row, equals computing it each step (the
    same call on the same row), and the kept rows are never written into."""
    m = _model()
    w = step_weights(m, precision)
    ids = [3, 7, 3, 3, 11, 7]
    state = None
    for tok in ids:
        _, state = m.step(torch.tensor([tok]), state, precision=precision)
    assert sorted(w.xz_rows) == [3, 7, 11]
    for tok, row in w.xz_rows.items():
        assert torch.equal(row, w.input_gates(0, w.emb[tok : tok + 1]))


def test_step_weights_are_cached_until_a_parameter_changes():
    m = _model()
    w = step_weights(m)
    assert step_weights(m) is w
    ids = torch.randint(0, 49, (2, 6))
    before = _run(m, ids, "fp32")
    with torch.no_grad():
        m.head.bias.add_(1.0)  # in place: the same storage, a new version
    assert step_weights(m) is not w
    after = _run(m, ids, "fp32")
    torch.testing.assert_close(after, before + 1.0, rtol=1e-5, atol=1e-5)


def test_step_path_evaluation_equals_the_forward(tiny_prepared):
    """Two independent paths: the training forward over whole poems, and the decoding step token by token."""
    vocab = Vocab.load(tiny_prepared / "vocab.json")
    torch.manual_seed(1)
    m = PoetryLM(ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=16, hidden_dim=24))
    split = load_split(tiny_prepared, "dev", vocab)
    a, b = evaluate(m, split), evaluate_steps(m, split, "fp32")
    assert b["tokens"] == a["tokens"] == split.real_tokens
    assert b["dev_ppl"] == pytest.approx(a["dev_ppl"], rel=1e-6)


def test_precision_errors_are_one_line(monkeypatch, capsys):
    from tangshi.cli.main import main

    with pytest.raises(TangshiError, match="--precision must be one of"):
        DecodeOptions(precision="int4")
    monkeypatch.setattr(stepweights, "int8_available", lambda: False)
    assert stepweights.default_precision("cpu") == "fp32"
    with pytest.raises(TangshiError, match="fbgemm"):
        step_weights(_model(), "int8")
    assert main(["eval", "--precision", "int8", "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--precision int8 needs a CPU with PyTorch's fbgemm kernels" in err


def test_eval_batch_one_row_equals_batches_in_fp32(tiny_prepared, capsys):
    """`evaluate_steps(batch=1)` (one poem at a time, as a poem decodes) gives the batch path's dev
    perplexity in fp32; `tangshi eval --batch` without --precision, or below 1, is one line."""
    from tangshi.cli.main import main

    vocab = Vocab.load(tiny_prepared / "vocab.json")
    torch.manual_seed(2)
    m = PoetryLM(ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=16, hidden_dim=24))
    split = load_split(tiny_prepared, "dev", vocab)
    one, many = evaluate_steps(m, split, "fp32", batch=1), evaluate_steps(m, split, "fp32")
    assert one["tokens"] == many["tokens"] == split.real_tokens
    assert one["dev_ppl"] == pytest.approx(many["dev_ppl"], rel=1e-6)
    for argv, msg in (
        (["eval", "--batch", "1"], "--batch applies to evaluation through the decoding step"),
        (["eval", "--precision", "fp32", "--batch", "0"], "--batch must be at least 1, got 0"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and msg in err


@needs_fbgemm
def test_int8_layouts_built_later_use_the_weights_of_their_time():
    """`Int8Linear` builds its int8 layouts at first use, from a copy taken when the step's weights
    were built: a parameter changed in place afterwards does not leak into an older StepWeights."""
    m = _model(tie_weights=False)
    w = step_weights(m, "int8")
    head_before = m.head.weight.detach().clone()
    with torch.no_grad():
        m.head.weight.mul_(-3.0)  # in place, after w was built and before any of its layouts exist
    h = torch.randn(4, 32)
    want = stepweights.Int8Linear(head_before, m.head.bias)(h)
    assert torch.equal(w.packed[-1](h), want)
    assert step_weights(m, "int8") is not w  # the cache noticed the change
