"""Titles: cleaned from the corpus, kept line for line in the prepared folder, read by a titled model
before the poem (no loss on them), and the poem written on a title."""

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from conftest import one_line_error, run
from tangshi.data.batches import TITLED_SEQ_LEN, encode_poems, title_prefix
from tangshi.data.corpus import TITLE_MAX, clean_title
from tangshi.data.prepare import prepare, read_titles
from tangshi.data.splits import UNTITLED_SHARE, load_split, titled_splits
from tangshi.data.vocab import Vocab
from tangshi.decode.poems import iter_poems
from tangshi.decode.search import DecodeOptions, mean_log_prob, prime
from tangshi.experiments.titles import derangement, fidelity, overlap, run_titles
from tangshi.model import checkpoint as ckpt
from tangshi.train.evaluate import evaluate
from tangshi.train.torch_backend import TrainConfig, train

SPRING, AUTUMN = "春江花月夜山水風雲日明白", "雪青天下人間何處不見長安"


@pytest.mark.parametrize(
    "raw, want",
    [
        ("送友人", "送友人"),
        ("宮詞百首 八十三", "宮詞百首"),  # the poem's number in its set is dropped
        ("胡笳十八拍 第十五拍", "胡笳十八拍"),
        ("偶作五首 五", "偶作五首"),
        ("郊廟歌辭 周郊祀樂章 武舞樂", "郊廟歌辭周郊祀樂章武舞樂"),  # a last part that is a name stays
        ("敦煌（伯五○○七）三首 壽昌", "敦煌三首壽昌"),  # brackets and their text go
        ("Title, 1", ""),
        (None, ""),
        ("奉和聖製從蓬萊向興慶閣道中留春雨中春望之作應制",) * 2,  # 23 characters: kept
        ("送" * 30, "送" * 24),  # cut at TITLE_MAX
    ],
)
def test_clean_title(raw, want):
    assert clean_title(raw) == want
    assert len(clean_title(raw)) <= TITLE_MAX


def test_a_titled_row_reads_the_title_first_and_scores_only_the_poem():
    vocab = Vocab.build(["春江花月"])  # ids: 春 3, 江 1, 花 2, 月 0 (sorted by code point), then the specials
    s, e, pad = vocab.start_id, vocab.eos_id, vocab.pad_id
    c = {ch: vocab.stoi[ch] for ch in "春江花月"}
    x, y, n = encode_poems(["江花", "月江"], vocab, titles=["春月", ""])
    assert x.shape == y.shape == (2, TITLED_SEQ_LEN)
    assert x[0, :6].tolist() == [s, c["春"], c["月"], s, c["江"], c["花"]]
    assert y[0, :6].tolist() == [pad, pad, pad, c["江"], c["花"], e]
    assert (y[0, 6:] == pad).all() and n[0] == 6
    # an empty title: exactly the untitled encoding
    ux, uy, un = encode_poems(["月江"], vocab)
    assert x[1, :64].tolist() == ux[0].tolist() and y[1, :64].tolist() == uy[0].tolist() and n[1] == un[0] == 3
    assert title_prefix("春x月", vocab) == [s, c["春"], c["月"], s]  # a character the vocabulary lacks is left out


def test_prepare_keeps_each_poems_title_line_for_line(tmp_path, tiny_source):
    f = tiny_source / "poet.tang.0.json"
    raw = json.loads(f.read_text(encoding="utf-8"))
    for i, item in enumerate(raw):  # a different title for each poem
        item["title"] = "詩" + "一二三四五六七八九十"[i % 10] + "甲乙丙丁戊己庚辛壬癸"[i // 10]
    f.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    prepare(tiny_source, tmp_path / "p", None, 0)
    title_of = {"".join(item["paragraphs"]): item["title"] for item in raw}
    for split in ("train", "dev"):
        poems = (tmp_path / "p" / f"{split}.txt").read_text(encoding="utf-8").split()
        assert read_titles(tmp_path / "p", split, len(poems)) == [title_of[p] for p in poems]


def test_titled_splits_drop_a_fixed_share_of_training_titles(tmp_path):
    prepare(_titled_corpus(tmp_path / "raw", n=400), tmp_path / "p", None, 0)
    vocab = Vocab.load(tmp_path / "p" / "vocab.json")
    train, dev = titled_splits(tmp_path / "p", vocab)
    # a one-character title puts the second <START> at position 2
    assert (dev.inputs[:, 2] == vocab.start_id).all()  # every dev poem with its title
    n_untitled = int((train.inputs[:, 2] != vocab.start_id).sum())
    assert abs(n_untitled / len(train.inputs) - UNTITLED_SHARE) < 0.07
    assert torch.equal(titled_splits(tmp_path / "p", vocab)[0].inputs, train.inputs)  # the same draw each time
    # the targets that carry loss are the poems' own, titled or not
    assert train.real_tokens == load_split(tmp_path / "p", "train", vocab).real_tokens


def _titled_corpus(folder, n=48, seed=0):
    """Poems whose title says which half of the characters they use: 春 → SPRING, 雪 → AUTUMN."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    items = []
    for i in range(n):
        title, chars = ("春", SPRING) if i % 2 else ("雪", AUTUMN)
        lines = ["".join(rng.choice(chars) for _ in range(6)) + "，。"[k % 2] for k in range(4)]  # no Tang form
        items.append({"author": "無名", "title": title, "paragraphs": ["".join(lines)]})
    (folder / "poet.tang.0.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def titled_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("titled")
    prepare(_titled_corpus(tmp / "raw"), tmp / "p", None, 0)
    train(
        tmp / "p",
        tmp / "run",
        dict(embed_dim=32, hidden_dim=48, titles=True),
        TrainConfig(epochs=25, batch_size=8, lr=0.01, weight_decay=0.0),
        progress=False,
        log=lambda *a: None,
        keep_epoch_checkpoints=False,
    )
    model, vocab, _ = ckpt.load_checkpoint(tmp / "run" / "last")
    return model, vocab, tmp


def test_a_titled_model_writes_on_its_title(titled_model):
    model, vocab, _ = titled_model
    for title, own in (("春", SPRING), ("雪", AUTUMN)):
        poems = list(iter_poems(model, vocab, DecodeOptions(temperature=0.8, seed=1), n=20, title=title))
        chars = [ch for p in poems for ch in p["text"] if ch not in "，。"]
        assert all(p["title"] == title for p in poems)
        assert sum(ch in own for ch in chars) / len(chars) > 0.9, title


def test_titled_perplexity_and_scores_agree_with_a_step_by_step_reading(titled_model):
    """`evaluate` on a titled split, `mean_log_prob` with a title and `prime` against the model read one step
    at a time: no loss on the title, the poem conditioned on it."""
    model, vocab, tmp = titled_model
    dev = load_split(tmp / "p", "dev", vocab, titled=True)
    poems = (tmp / "p" / "dev.txt").read_text(encoding="utf-8").split()
    titles = read_titles(tmp / "p", "dev", len(poems))
    total, count, means = 0.0, 0, []
    for poem, title in zip(poems, titles):
        ids, state = title_prefix(title, vocab) + vocab.encode(poem) + [vocab.eos_id], None
        m = len(title_prefix(title, vocab))
        nll = 0.0
        for t in range(len(ids) - 1):
            logits, state = model.step(torch.tensor([ids[t]]), state)
            if t >= m - 1:
                nll -= float(F.log_softmax(logits.double(), -1)[0, ids[t + 1]])
        total, count = total + nll, count + len(ids) - m
        means.append(-nll / (len(ids) - m))
    assert evaluate(model, dev)["dev_nll"] == pytest.approx(total / count, rel=1e-5)
    got = [mean_log_prob(model, vocab, [p], t)[0] for p, t in zip(poems, titles)]
    assert got == pytest.approx(means, rel=1e-5)
    logits, _ = prime(model, vocab, DecodeOptions(title=titles[0], precision="fp32"), 2, "cpu")
    state = None
    for tok in title_prefix(titles[0], vocab):
        want, state = model.step(torch.tensor([tok]), state)
    assert torch.allclose(logits, want.expand(2, -1), atol=1e-5)
    assert math.isfinite(total)


def test_title_options_refuse_what_they_cannot_do(titled_model, tiny_prepared, tmp_path, capsys):
    _, _, tmp = titled_model
    # a model trained without titles refuses one
    train(
        tiny_prepared,
        tmp_path / "plain",
        dict(embed_dim=8, hidden_dim=8),
        TrainConfig(epochs=1, batch_size=16),
        progress=False,
        log=lambda *a: None,
    )
    code, _, err = run(["generate", "--checkpoint", tmp_path / "plain" / "last", "--title", "春"], capsys)
    one_line_error(code, err, "--title needs a model trained with titles")
    ck = tmp / "run" / "last"
    code, _, err = run(["generate", "--checkpoint", ck, "--title", "春，江"], capsys)
    one_line_error(code, err, "title is at most")
    code, _, err = run(["generate", "--checkpoint", ck, "--title", "春" * (TITLE_MAX + 1)], capsys)
    one_line_error(code, err, "title is at most")
    code, _, err = run(["generate", "--checkpoint", ck, "--title", "龘"], capsys)
    one_line_error(code, err, "'龘'", "title")
    code, out, _ = run(["generate", "--checkpoint", ck, "--title", "春", "--seed", "3"], capsys)
    assert code == 0 and out.splitlines()[0] == "《春》" and set(out.splitlines()[1]) <= set(SPRING + "，。")
    code, out, _ = run(["eval", "--checkpoint", ck, "--data", tmp / "p", "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["dev_ppl"] < res["untitled"]["dev_ppl"]  # the title tells which half of the characters


def test_overlap_and_fidelity_by_hand():
    assert overlap("春江，春月。", "江月何處") == 2 / 3  # distinct 春江月: 江 and 月 are in the poem
    assert overlap("，。", "江") == 0.0
    perm = derangement(5, 0)
    assert sorted(perm) == list(range(5)) and all(i != p for i, p in enumerate(perm))
    f = fidelity(["春江", "秋山"], ["春江花", "秋月"], [1, 0])
    assert f["own"] == pytest.approx((2 / 3 + 1 / 2) / 2) and f["random"] == 0.0 and f["ratio"] is None


def test_the_titles_experiment_finds_what_the_titles_carry(titled_model, tmp_path):
    """On the tiny corpus the title says which half of the characters a poem uses: the titled poems share far
    more with the real poem of their title than with a random one; the control, written without titles, does not."""
    _, _, tmp = titled_model
    res = run_titles(tmp / "run" / "last", tmp / "p", tmp_path / "r", n_titles=10, log=lambda *a: None)
    f = res["fidelity"]
    assert f["titled"]["ratio"] > 1.5 and f["titled"]["ratio"] > f["untitled"]["ratio"] + 0.3
    assert res["dev_ppl"]["titled"] < res["dev_ppl"]["untitled"]
    text = (tmp_path / "r" / "titles.md").read_text(encoding="utf-8")
    assert f"{f['titled']['ratio']:.2f}×" in text


def test_topic_table_by_hand():
    from tangshi.verse import topics

    poems = ["春江花月，", "春江雪山。", "秋山雪月，", "秋水雪天。"]
    titles = ["春", "春", "秋", "秋"]
    table = topics.learn(poems, titles, min_count=2, top=5)
    # 春 titles 2 of 4 poems; 江 (and 春 itself) are in 2 poems, both under 春: pmi = ln(2·4 / (2·2)) = ln 2
    assert table["pmi"]["春"] == {"江": round(math.log(2), 2), "春": round(math.log(2), 2)}
    # 雪 is in 3 poems, 2 of them under 秋: ln(2·4 / (2·3)) = ln(4/3); 山 and 月 meet 秋 once: below min_count
    assert table["pmi"]["秋"] == {"秋": round(math.log(2), 2), "雪": round(math.log(4 / 3), 2)}
    both = topics.bias(table, "春秋", 2.0)
    assert both == pytest.approx({"江": 1.38, "春": 1.38, "秋": 1.38, "雪": 0.58})
    capped = topics.bias({"pmi": {"a": {"x": 2.5}, "b": {"x": 2.0}}}, "ab", 1.0)
    assert capped == {"x": topics.CAP}  # 4.5 is capped
    assert topics.bias(table, "春", 0.0) == {}


def test_a_titles_pairs_of_adjacent_characters_are_keys_too():
    from tangshi.verse import topics

    assert topics.keys("送友人") == {"送", "友", "人", "送友", "友人"}
    assert topics.keys("春") == {"春"} and topics.keys("") == set()
    poems = ["春江花月，", "春江雪山。", "秋山雪月，", "秋水雪天。"]
    table = topics.learn(poems, ["春江", "春江", "江秋", "秋"], min_count=2, top=5)
    # the pair 春江 titles 2 of 4 poems, both holding 春 and 江 (each in 2 poems): ln(2·4 / (2·2)) = ln 2;
    # 江秋 titles one poem only, below min_count
    assert table["pmi"]["春江"] == {"春": round(math.log(2), 2), "江": round(math.log(2), 2)}
    assert "江秋" not in table["pmi"]
    # the title 春江 adds the pmi of its characters and of its pair (the reversed pair is another key)
    table = {"pmi": {"春": {"x": 0.5}, "江": {"x": 0.25}, "春江": {"x": 1.0}, "江春": {"x": 9.0}}}
    assert topics.bias(table, "春江", 2.0) == {"x": 3.5}  # 2 × (0.5 + 0.25 + 1.0), the reversed pair not read


def test_the_title_words_lean_the_poem_toward_them(titled_model, monkeypatch):
    """With a table saying 春 calls for 雪, a weight pulls 雪 into poems titled 春 (which the model alone
    writes with the SPRING characters); without a title the table does nothing."""
    from tangshi.decode import topic
    from tangshi.verse import topics

    model, vocab, _ = titled_model
    monkeypatch.setattr(topics, "bundled", lambda: {"pmi": {"春": {"雪": 3.0}}})
    topic.topic_vector.cache_clear()
    vec = topic.topic_vector(vocab, "春", 2.0)
    assert vec.shape == (1, len(vocab)) and vec[0, vocab.stoi["雪"]] == 6.0 and int((vec != 0).sum()) == 1
    assert topic.topic_vector(vocab, "", 2.0) is None and topic.topic_vector(vocab, "春", 0.0) is None

    def share(weight, title="春"):
        opts = DecodeOptions(temperature=0.8, seed=1, topic=weight)
        text = "".join(p["text"] for p in iter_poems(model, vocab, opts, n=20, title=title, no_repeat=False))
        return text.count("雪") / len(text)

    assert share(0.0) < 0.02 and share(3.0) > share(0.0) + 0.1  # + 9 nats to 雪's log-probability
    assert share(3.0, title=None) == share(0.0, title=None)
    topic.topic_vector.cache_clear()


def test_the_python_api_carries_the_title(titled_model):
    from tangshi.api import Poet
    from tangshi.decode.request import PoemRequest

    model, vocab, _ = titled_model
    poet = Poet(model, vocab)
    (poem,) = poet.write(PoemRequest(title="春", seed=2))
    assert poem.title == "春" and set(poem.text) <= set(SPRING + "，。")
    (plain,) = poet.write(PoemRequest(seed=2))
    assert plain.title is None
