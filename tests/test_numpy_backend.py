"""`--backend numpy`: same model, same batches, interchangeable checkpoints."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_POEMS
from tangshi.cli.main import main
from tangshi.data.splits import load_split
from tangshi.errors import TangshiError
from tangshi.lesson import numpy_lstm as nl
from tangshi.model import checkpoint as ckpt
from tangshi.train.numpy_backend import train_numpy
from tangshi.train.torch_backend import TrainConfig, train

SMALL = dict(embed_dim=16, hidden_dim=16)
QUIET = dict(progress=False, log=lambda *a: None)


def test_one_epoch_numpy_matches_torch(tmp_path, tiny_prepared):
    """Same init, same batches, same optimiser: after an epoch the two backends agree to fp32 rounding."""
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.01, optimizer="adam", amp=False)
    rt = train(tiny_prepared, tmp_path / "t", SMALL, cfg, **QUIET)
    rn = train_numpy(tiny_prepared, tmp_path / "n", SMALL, cfg, **QUIET)
    assert abs(rt["best"]["dev_ppl"] - rn["best"]["dev_ppl"]) / rt["best"]["dev_ppl"] < 1e-3
    a, b = ckpt.load_weights(tmp_path / "t" / "last"), ckpt.load_weights(tmp_path / "n" / "last")
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-3, k


def test_checkpoints_interchange_both_ways(tmp_path, tiny_prepared, capsys):
    cfg = TrainConfig(epochs=1, batch_size=16, amp=False)
    train(tiny_prepared, tmp_path / "t", SMALL, cfg, **QUIET)
    # a PyTorch checkpoint continues in NumPy …
    train_numpy(tiny_prepared, tmp_path / "n", None, cfg, init_from=tmp_path / "t" / "last", **QUIET)
    # … and a NumPy checkpoint continues in PyTorch and generates
    train(tiny_prepared, tmp_path / "t2", None, cfg, init_from=tmp_path / "n" / "last", **QUIET)
    assert main(["generate", "--checkpoint", str(tmp_path / "n" / "best"), "--start", "春", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["poems"][0]["text"].startswith("春")
    # the NumPy checkpoint's weights give the same log-probs in both implementations
    model, vocab, _ = ckpt.load_checkpoint(tmp_path / "n" / "last")
    params = {k: v.numpy() for k, v in ckpt.load_weights(tmp_path / "n" / "last").items()}
    x = load_split(tiny_prepared, "dev", vocab).inputs[:5]
    lp_np = nl.log_probs(params, model.config, x.numpy())
    lp_t = F.log_softmax(model(x)[0], -1).detach().numpy()
    assert np.abs(lp_np - lp_t).max() < 1e-4


def test_numpy_resume_and_torch_only_options(tmp_path, tiny_prepared):
    cfg = TrainConfig(epochs=2, batch_size=16, amp=False, optimizer="adagrad", lr=0.05)
    train_numpy(tiny_prepared, tmp_path / "full", SMALL, cfg, **QUIET)
    train_numpy(tiny_prepared, tmp_path / "part", SMALL, cfg, stop_after_epoch=1, **QUIET)
    train_numpy(tiny_prepared, tmp_path / "part", None, cfg, resume=True, **QUIET)
    a, b = ckpt.load_weights(tmp_path / "full" / "last"), ckpt.load_weights(tmp_path / "part" / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TangshiError, match="does not support dropout_embed"):
        train_numpy(tiny_prepared, tmp_path / "x", dict(SMALL, dropout_embed=0.1), cfg, **QUIET)
    with pytest.raises(TangshiError, match="holds NumPy optimiser state"):
        train(tiny_prepared, tmp_path / "part", None, cfg, resume=True, **QUIET)


@pytest.mark.skipif(not SHARED_POEMS.exists(), reason="../shared poems not present")
def test_numpy_and_torch_logprobs_on_a_real_batch(tmp_path):
    from tangshi.data.batches import encode_poems
    from tangshi.data.corpus import load_poems
    from tangshi.data.vocab import Vocab
    from tangshi.model.lm import ModelConfig, PoetryLM

    poems, _ = load_poems(SHARED_POEMS)
    batch = poems[:32]
    vocab = Vocab.build(poems[:2000])
    x, y, _ = encode_poems(batch, vocab)
    torch.manual_seed(0)
    model = PoetryLM(ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=64, hidden_dim=64)).eval()
    params = {k: v.numpy().copy() for k, v in model.canonical_state_dict().items()}
    lp_np = nl.log_probs(params, model.config, x.numpy())
    with torch.no_grad():
        lp_t = F.log_softmax(model(x)[0], -1).detach().numpy()
    assert np.abs(lp_np - lp_t).max() < 1e-4
    loss_np, _ = nl.forward(params, model.config, x.numpy(), y.numpy(), vocab.pad_id)
    _, loss_t = model(x, y)
    assert abs(loss_np - loss_t.item()) < 1e-5


def test_numpy_init_from_widens_and_refuses_like_pytorch(tmp_path, tiny_prepared):
    """--backend numpy --init-from with larger sizes starts from exactly widen(source) (the weights
    before its first step, new units drawn with the run's seed); another shape change is one clear error."""
    cfg = TrainConfig(epochs=1, batch_size=16, amp=False)
    train(tiny_prepared, tmp_path / "t", SMALL, cfg, **QUIET)
    start = {}

    def on_step(step, params, grads, opt):
        if step == 0:
            start.update({k: v.copy() for k, v in params.items()})

    train_numpy(
        tiny_prepared,
        tmp_path / "n",
        {"hidden_dim": 24, "embed_dim": 20},
        cfg,
        init_from=tmp_path / "t" / "last",
        on_step=on_step,
        **QUIET,
    )
    from tangshi.model.lm import widen

    src_model, _, _ = ckpt.load_checkpoint(tmp_path / "t" / "last")
    torch.manual_seed(cfg.seed)
    expected = widen(src_model, 20, 24).canonical_state_dict()
    assert set(start) == set(expected)
    for k, v in expected.items():
        assert np.array_equal(start[k], v.numpy()), k
    model, _, _ = ckpt.load_checkpoint(tmp_path / "n" / "last")
    assert (model.config.embed_dim, model.config.hidden_dim) == (20, 24)
    with pytest.raises(TangshiError, match="num_layers"):
        train_numpy(tiny_prepared, tmp_path / "n2", {"num_layers": 2}, cfg, init_from=tmp_path / "t" / "last", **QUIET)
