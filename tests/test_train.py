"""Training: overfitting a tiny corpus, checkpoints, exact resume."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tangshi.data.splits import load_split
from tangshi.errors import TangshiError
from tangshi.model import checkpoint as ckpt
from tangshi.train.evaluate import evaluate
from tangshi.train.torch_backend import TrainConfig, train

SMALL = dict(embed_dim=16, hidden_dim=16)


def test_tiny_model_overfits(tmp_path, tiny_source):
    """8 poems, 150 epochs: train NLL falls from ln(V)≈3.5 to below 0.5 nats (memorised)."""
    from conftest import write_tiny_corpus
    from tangshi.data.prepare import prepare

    src = write_tiny_corpus(tmp_path / "eight", n=10)
    prepare(src, tmp_path / "p", None, 0)
    res = train(
        tmp_path / "p",
        tmp_path / "run",
        dict(embed_dim=32, hidden_dim=64),
        TrainConfig(epochs=150, batch_size=8, lr=0.01, weight_decay=0.0),
        progress=False,
        log=lambda *a: None,
        keep_epoch_checkpoints=False,
    )
    first, last = res["history"][0]["train_loss"], res["history"][-1]["train_loss"]
    assert first > 3.0
    assert last < 0.5


def test_checkpoint_roundtrip_identical_logprobs(tmp_path, tiny_prepared):
    train(
        tiny_prepared,
        tmp_path / "run",
        dict(SMALL, num_layers=2, tie_weights=True),
        TrainConfig(epochs=1, batch_size=16),
        progress=False,
        log=lambda *a: None,
    )
    model, vocab, meta = ckpt.load_checkpoint(tmp_path / "run" / "last")
    model2, _, _ = ckpt.load_checkpoint(tmp_path / "run" / "last", impl="nn")
    ckpt.save_checkpoint(tmp_path / "copy", model, vocab)
    model3, vocab3, _ = ckpt.load_checkpoint(tmp_path / "copy")
    assert vocab3 == vocab
    x = load_split(tiny_prepared, "dev", vocab).inputs
    a = F.log_softmax(model(x)[0], -1)
    assert torch.equal(a, F.log_softmax(model3(x)[0], -1))
    assert (a - F.log_softmax(model2(x)[0], -1)).abs().max() < 1e-5
    assert model3.head.weight is model3.embedding.weight  # tying survives the round trip
    # no pickle anywhere: the folder holds safetensors and JSON only
    names = sorted(p.name for p in (tmp_path / "run" / "last").iterdir())
    assert names == ["config.json", "model.safetensors", "optimizer.safetensors", "trainer.json", "vocab.json"]


def test_epoch_checkpoints_named_like_the_assignment(tmp_path, tiny_prepared):
    train(
        tiny_prepared,
        tmp_path / "run",
        SMALL,
        TrainConfig(epochs=2, batch_size=16),
        progress=False,
        log=lambda *a: None,
    )
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert (tmp_path / "run" / f"poetry-gen-epoch{r['epoch']}-loss{r['original_loss']:.6f}").is_dir()
    assert (tmp_path / "run" / "best").is_dir() and (tmp_path / "run" / "curves.png").stat().st_size > 1000
    best = min(rows, key=lambda r: r["dev_ppl"])
    assert json.loads((tmp_path / "run" / "best" / "config.json").read_text())["metrics"]["epoch"] == best["epoch"]


@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
def test_resume_matches_uninterrupted(tmp_path, tiny_prepared, schedule):
    over = dict(SMALL, tie_weights=True, dropout_embed=0.2, dropout_output=0.2, weight_drop=0.2)
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="adamw", lr=3e-3, schedule=schedule, clip=1.0, seed=5)
    quiet = dict(progress=False, log=lambda *a: None)
    train(tiny_prepared, tmp_path / "full", over, cfg, **quiet)
    train(tiny_prepared, tmp_path / "part", over, cfg, stop_after_epoch=1, **quiet)  # interrupted
    train(tiny_prepared, tmp_path / "part", None, cfg, resume=True, **quiet)
    a = ckpt.load_weights(tmp_path / "full" / "last")
    b = ckpt.load_weights(tmp_path / "part" / "last")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    hb = [json.loads(l) for l in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["dev_ppl"] for r in ha] == [r["dev_ppl"] for r in hb]
    # wall-clock time accumulates across the interruption: strictly increasing, never reset
    assert all(0 < x < y for x, y in zip([r["wall_seconds"] for r in hb], [r["wall_seconds"] for r in hb][1:]))
    assert all(r["wall_seconds"] >= r["epoch_seconds"] for r in hb)


def test_evaluate_matches_hand_computation(tmp_path, tiny_prepared):
    train(
        tiny_prepared,
        tmp_path / "run",
        SMALL,
        TrainConfig(epochs=1, batch_size=16),
        progress=False,
        log=lambda *a: None,
    )
    model, vocab, _ = ckpt.load_checkpoint(tmp_path / "run" / "last")
    dev = load_split(tiny_prepared, "dev", vocab)
    res = evaluate(model, dev)
    logp = F.log_softmax(model(dev.inputs)[0].double(), -1)
    nll = -logp.gather(-1, dev.targets[..., None]).squeeze(-1)
    real = dev.targets != vocab.pad_id
    assert res["tokens"] == int(real.sum()) == int(dev.lengths.sum())
    assert math.isclose(res["dev_ppl"], math.exp(nll[real].mean().item()), rel_tol=1e-5)
    assert math.isclose(res["original_loss"], nll.mean().item(), rel_tol=1e-5)
    assert math.isclose(res["original_ppl"], 2 ** nll.mean().item(), rel_tol=1e-5)


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny_prepared):
    train(
        tiny_prepared,
        tmp_path / "run",
        SMALL,
        TrainConfig(epochs=1, batch_size=16),
        progress=False,
        log=lambda *a: None,
    )
    w = tmp_path / "run" / "last" / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(TangshiError, match="corrupt checkpoint weights"):
        ckpt.load_checkpoint(tmp_path / "run" / "last")
    (tmp_path / "run" / "best" / "config.json").write_text("{not json")
    with pytest.raises(TangshiError, match="corrupt checkpoint file"):
        ckpt.load_checkpoint(tmp_path / "run" / "best")
    with pytest.raises(TangshiError, match="checkpoint not found"):
        ckpt.load_checkpoint(tmp_path / "nowhere")


def test_resume_keeps_the_first_command_and_lists_the_resumes(tmp_path, tiny_prepared, monkeypatch):
    quiet = dict(progress=False, log=lambda *a: None, keep_epoch_checkpoints=False)
    cfg = TrainConfig(epochs=3, batch_size=16)
    monkeypatch.setattr("sys.argv", ["/bin/tangshi", "train", "--out", "run"])
    train(tiny_prepared, tmp_path / "run", SMALL, cfg, stop_after_epoch=1, **quiet)
    monkeypatch.setattr("sys.argv", ["/bin/tangshi", "train", "--out", "run", "--resume"])
    train(tiny_prepared, tmp_path / "run", None, cfg, resume=True, stop_after_epoch=2, **quiet)
    monkeypatch.setattr("sys.argv", ["/bin/tangshi", "train", "--out", "run", "--resume", "--threads", "2"])
    train(tiny_prepared, tmp_path / "run", None, cfg, resume=True, **quiet)
    meta = json.loads((tmp_path / "run" / "last" / "config.json").read_text(encoding="utf-8"))["train"]
    assert meta["command"] == "tangshi train --out run"
    assert meta["resumes"] == [
        {"after_epoch": 1, "command": "tangshi train --out run --resume"},
        {"after_epoch": 2, "command": "tangshi train --out run --resume --threads 2"},
    ]
