"""`tangshi export`: a compact copy that loads without the run, with a model card."""

import pytest
import torch
import torch.nn.functional as F

from tangshi.cli.main import main
from tangshi.data.splits import load_split
from tangshi.model import checkpoint as ckpt
from tangshi.train.evaluate import evaluate
from tangshi.train.torch_backend import TrainConfig, train


def test_export_fp16_roundtrip_and_card(tmp_path, tiny_prepared, capsys):
    train(
        tiny_prepared,
        tmp_path / "run",
        dict(embed_dim=16, hidden_dim=16, tie_weights=True),
        TrainConfig(epochs=2, batch_size=16),
        progress=False,
        log=lambda *a: None,
    )
    out = tmp_path / "models" / "m"
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "best"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name != ".tangshi-output.json") == [
        "MODEL_CARD.md",
        "config.json",
        "model.safetensors",
        "vocab.json",
    ]
    w = ckpt.load_weights(out)
    assert all(v.dtype == torch.float16 for v in w.values())
    a, vocab, meta = ckpt.load_checkpoint(tmp_path / "run" / "best")
    b, _, _ = ckpt.load_checkpoint(out)
    x = load_split(tiny_prepared, "dev", vocab).inputs
    with torch.no_grad():
        diff = (F.log_softmax(a(x)[0], -1) - F.log_softmax(b(x)[0], -1)).abs().max()
    assert diff < 1e-2  # fp16 rounding of the weights only
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"**{meta['metrics']['dev_ppl']:.2f}**" in card and "| 2 |" in card


def test_init_from_applies_dropout_and_card_tells_both_stages(tmp_path, tiny_prepared, capsys):
    quiet = dict(progress=False, log=lambda *a: None)
    base = dict(embed_dim=16, hidden_dim=16, tie_weights=True)
    train(tiny_prepared, tmp_path / "s1", base, TrainConfig(epochs=2, batch_size=16), **quiet)
    # stage 2 continues stage 1's weights with new dropout: the option must take effect, not be dropped
    train(
        tiny_prepared,
        tmp_path / "s2",
        {**base, "dropout_output": 0.25},
        TrainConfig(epochs=3, batch_size=16),
        init_from=tmp_path / "s1" / "best",
        **quiet,
    )
    m2, _, meta2 = ckpt.load_checkpoint(tmp_path / "s2" / "last")
    assert m2.config.dropout_output == 0.25
    lin = meta2["train"]["init_from"]
    assert lin["path"] == str(tmp_path / "s1" / "best") and lin["epochs"] == 2 and len(lin["history"]) == 2
    out = tmp_path / "m"
    assert main(["export", "--checkpoint", str(tmp_path / "s2" / "best"), "--out", str(out)]) == 0
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "stage 1:" in card and "stage 2:" in card and "(5 epochs" in card
    assert "| 5 | 2 |" in card and "| 1 | 1 |" in card  # epochs numbered across both stages


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--hidden-dim", "8", "--embed-dim", "8"], ["only be widened", "16", "8"]),
        (["--num-layers", "2"], ["num_layers=1", "num_layers=2"]),
    ],
)
def test_init_from_rejects_a_shape_it_cannot_grow_into(tmp_path, tiny_prepared, capsys, flags, words):
    quiet = dict(progress=False, log=lambda *a: None)
    train(
        tiny_prepared, tmp_path / "s1", dict(embed_dim=16, hidden_dim=16), TrainConfig(epochs=1, batch_size=16), **quiet
    )
    rc = main(
        [
            "train",
            "--data",
            str(tiny_prepared),
            "--out",
            str(tmp_path / "s2"),
            "--quiet",
            "--epochs",
            "1",
            "--init-from",
            str(tmp_path / "s1" / "last"),
            *flags,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and all(w in err for w in words) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s2" / "last").exists()


def test_widened_run_starts_as_its_source_and_the_card_says_so(tmp_path, tiny_prepared, capsys):
    """--init-from with a larger --embed-dim/--hidden-dim: before its first step the widened model
    has the source's dev perplexity (to float rounding); training then moves it; the card names the widening."""
    quiet = dict(progress=False, log=lambda *a: None)
    base = dict(embed_dim=16, hidden_dim=16, tie_weights=True)
    train(tiny_prepared, tmp_path / "s1", base, TrainConfig(epochs=2, batch_size=16), **quiet)
    src, vocab, src_meta = ckpt.load_checkpoint(tmp_path / "s1" / "best")
    seen = {}

    def first_step(step, model, optimizer):
        if step == 1:  # called after the step, with the step's gradients still in place
            seen["grads"] = {n: p.grad.clone() for n, p in model.named_parameters()}

    from tangshi.model.lm import widen

    torch.manual_seed(0)
    wide = widen(src, 24, 24)
    dev = load_split(tiny_prepared, "dev", vocab)
    assert evaluate(wide, dev)["dev_ppl"] == pytest.approx(src_meta["metrics"]["dev_ppl"], rel=1e-5)
    train(
        tiny_prepared,
        tmp_path / "s2",
        {**base, "embed_dim": 24, "hidden_dim": 24},
        TrainConfig(epochs=1, batch_size=16),
        init_from=tmp_path / "s1" / "best",
        on_step=first_step,
        **quiet,
    )
    g = seen["grads"]
    # the zero blocks learn from the first step: new embedding columns, and new-unit -> old-unit weights
    assert g["embedding.weight"][:, 16:].abs().sum() > 0 and g["lstm.0.weight_hh"][16:, :16].abs().sum() > 0
    m2, _, meta2 = ckpt.load_checkpoint(tmp_path / "s2" / "last")
    assert (m2.config.embed_dim, m2.config.hidden_dim) == (24, 24)
    assert meta2["train"]["init_from"]["widened_from"] == {"embed_dim": 16, "hidden_dim": 16}
    out = tmp_path / "m"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tmp_path / "s2" / "last"),
                "--out",
                str(out),
                "--train-command",
                "first run",
                "--train-command",
                "second run",
            ]
        )
        == 0
    )
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "stage 1: `first run`" in card and "stage 2: `second run`" in card
    assert "widened from embedding/hidden 16/16" in card and "embedding 24" in card
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tmp_path / "s2" / "last"),
                "--out",
                str(tmp_path / "m3"),
                "--train-command",
                "a",
                "--train-command",
                "b",
                "--train-command",
                "c",
            ]
        )
        == 2
    )
    assert "3 --train-command values for a model trained in 2 stage(s)" in capsys.readouterr().err


def test_card_of_an_unfinished_resumed_run_says_so(tmp_path, tiny_prepared, capsys, monkeypatch):
    quiet = dict(progress=False, log=lambda *a: None, keep_epoch_checkpoints=False)
    base, cfg = dict(embed_dim=16, hidden_dim=16), TrainConfig(epochs=4, batch_size=16)
    monkeypatch.setattr("sys.argv", ["tangshi", "train", "--epochs", "4"])
    train(tiny_prepared, tmp_path / "run", base, cfg, stop_after_epoch=1, **quiet)
    monkeypatch.setattr("sys.argv", ["tangshi", "train", "--resume"])
    train(tiny_prepared, tmp_path / "run", None, cfg, resume=True, stop_after_epoch=2, **quiet)
    out = tmp_path / "m"
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "last"), "--out", str(out)]) == 0
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "`tangshi train --epochs 4`" in card and "`tangshi train --resume` after epoch 1" in card
    assert "exported after 2 of the 4 epochs" in card
    train(tiny_prepared, tmp_path / "run", None, cfg, resume=True, **quiet)  # finished: no status line
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "last"), "--out", str(out), "--replace"]) == 0
    assert "exported after" not in (out / "MODEL_CARD.md").read_text(encoding="utf-8")


def test_a_run_started_from_an_export_keeps_the_exported_runs_record(tmp_path, tiny_prepared):
    """An exported folder has no metrics.jsonl beside it: its config.json keeps the run's per-epoch record, so
    that a run started from it (--init-from) and its model card still tell every stage's epochs."""
    quiet = dict(progress=False, log=lambda *a: None)
    base = dict(embed_dim=16, hidden_dim=16, tie_weights=True)
    train(tiny_prepared, tmp_path / "s1", base, TrainConfig(epochs=3, batch_size=16), **quiet)
    assert main(["export", "--checkpoint", str(tmp_path / "s1" / "best"), "--out", str(tmp_path / "m1")]) == 0
    train(
        tiny_prepared, tmp_path / "s2", base, TrainConfig(epochs=2, batch_size=16), init_from=tmp_path / "m1", **quiet
    )
    _, _, meta = ckpt.load_checkpoint(tmp_path / "s2" / "last")
    lin = meta["train"]["init_from"]
    best = ckpt.read_config(tmp_path / "s1" / "best")["metrics"]["epoch"]
    assert lin["epochs"] == best and [h["epoch"] for h in lin["history"]] == list(range(1, best + 1))
    assert main(["export", "--checkpoint", str(tmp_path / "s2" / "last"), "--out", str(tmp_path / "m2")]) == 0
    card = (tmp_path / "m2" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"of {best + 2}" in card  # every epoch of both stages
