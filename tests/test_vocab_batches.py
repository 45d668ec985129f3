import pytest
import torch

from tangshi.data.batches import SEQ_LEN, batch_indices, encode_poems, make_batch
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError


def test_vocab_order_and_roundtrip(tmp_path):
    v = Vocab.build(["春江，花月。", "月江春。"])
    # code-point order: 。 U+3002 < 春 U+6625 < 月 U+6708 < 江 U+6C5F < 花 U+82B1 < ， U+FF0C
    assert v.itos == ("。", "春", "月", "江", "花", "，", "<EOS>", "<OOV>", "<START>", "<PAD>")
    assert (v.eos_id, v.oov_id, v.start_id, v.pad_id) == (6, 7, 8, 9)
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json") == v
    assert "<PAD>" not in v and "春" in v


def test_vocab_bad_json(tmp_path):
    (tmp_path / "v.json").write_text("{", encoding="utf-8")
    with pytest.raises(TangshiError, match="malformed vocabulary"):
        Vocab.load(tmp_path / "v.json")


def test_encoding_shapes_and_oov():
    v = Vocab.build(["春江花月夜，"])
    x, y, n = encode_poems(["春江花。", "月夜"], v)  # 。 is not in the training characters
    assert x.shape == y.shape == (2, SEQ_LEN) and x.dtype == torch.long
    s = v.stoi
    assert x[0, :5].tolist() == [v.start_id, s["春"], s["江"], s["花"], v.oov_id]
    assert y[0, :5].tolist() == [s["春"], s["江"], s["花"], v.oov_id, v.eos_id]
    assert (x[0, 5:] == v.pad_id).all() and (y[0, 5:] == v.pad_id).all()
    assert n.tolist() == [5, 3]
    assert v.decode(y[0]) == "春江花<OOV>"


def test_bucketed_batches_cover_every_poem_once():
    lengths = torch.randint(5, 64, (1000,))
    g = torch.Generator().manual_seed(0)
    batches = batch_indices(1000, 128, g, lengths=lengths, bucket=True)
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    # bucketing lowers the padded area
    plain = batch_indices(1000, 128, torch.Generator().manual_seed(0))
    area = lambda bs: sum(int(lengths[b].max()) * len(b) for b in bs)
    assert area(batches) < area(plain)


def test_trim_keeps_every_real_target():
    v = Vocab.build(["春江花月夜，"])
    x, y, n = encode_poems(["春江花", "月"], v)
    xb, yb = make_batch(x, y, n, torch.tensor([0, 1]))
    assert xb.shape == (2, 4)
    assert int((yb != v.pad_id).sum()) == int((y != v.pad_id).sum())
