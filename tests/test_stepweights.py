"""The decoding step's weights: int8 (fbgemm) against fp32, the cache, and the step-path evaluation."""

import pytest
import torch

from tangshi import stepweights
from tangshi.errors import TangshiError
from tangshi.generate import DecodeOptions
from tangshi.model import ModelConfig, PoetryLM
from tangshi.splits import evaluate, evaluate_steps, load_split
from tangshi.stepweights import step_weights
from tangshi.vocab import Vocab

needs_fbgemm = pytest.mark.skipif(not stepweights.int8_available(), reason="no fbgemm on this CPU")


def _model(**kw):
    torch.manual_seed(0)
    return PoetryLM(ModelConfig(**{**dict(vocab_size=50, pad_id=49, embed_dim=32, hidden_dim=32, num_layers=2,
                                          init="torch"), **kw})).eval()


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
    from tangshi.cli import main

    with pytest.raises(TangshiError, match="--precision must be one of"):
        DecodeOptions(precision="int4")
    monkeypatch.setattr(stepweights, "int8_available", lambda: False)
    assert stepweights.default_precision("cpu") == "fp32"
    with pytest.raises(TangshiError, match="fbgemm"):
        step_weights(_model(), "int8")
    assert main(["eval", "--precision", "int8", "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--precision int8 needs a CPU with PyTorch's fbgemm kernels" in err
