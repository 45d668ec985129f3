"""`tangshi export`: a compact copy that loads without the run, with a model card."""

import torch
import torch.nn.functional as F

from tangshi import checkpoint as ckpt
from tangshi.cli import main
from tangshi.train import TrainConfig, load_split, train


def test_export_fp16_roundtrip_and_card(tmp_path, tiny_prepared, capsys):
    train(tiny_prepared, tmp_path / "run", dict(embed_dim=16, hidden_dim=16, tie_weights=True),
          TrainConfig(epochs=2, batch_size=16), progress=False, log=lambda *a: None)
    out = tmp_path / "models" / "m"
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "best"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors", "vocab.json"]
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
