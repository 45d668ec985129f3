"""What readers ask for, with the bundled model, at the sizes the project promises: 200 poems
per form for a two-line continuation, three keywords and a 藏尾 acrostic, and 200 couplets for
20 上联 of the Tang corpus. Each property holds in every poem, judged by `tangshi metrics` and by
judge.py, which reads the 平水韻 table itself. Then ranked candidates, scored again here through
`model.step`, the rhyme-group listing counted again here, and the refusals, through the CLI."""

import json
import math

import pytest
import torch

from judge import bodies, check_rhyme, check_strict, tones, verse_groups
from tangshi.cli.main import main
from tangshi.decode.constraints.rhyme import rhyme_groups_known
from tangshi.decode.poems import iter_couplets, write_poems
from tangshi.decode.search import DecodeOptions
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint
from tangshi.verse.metrics import coverage, score_couplets, score_poems
from tangshi.verse.prosody import checked_positions

N = 200
OPTS = DecodeOptions(strategy="sample", temperature=0.8, top_p=0.9, seed=11)
TWO_LINES = {5: "白日依山盡，黃河入海流。", 7: "兩個黃鸝鳴翠柳，一行白鷺上青天。"}
# 藏尾: the even lines' characters rhyme (一東), the odd ones are 仄 (strict tones put 仄 there)
HIDDEN = {4: "月紅雪中", 8: "月紅雪中夜風木空"}
# first lines of Tang poems: 5 and 7 characters, one with a reduplication (萋萋), one ending in 平 (光)
FIRSTS = [
    "白日依山盡",
    "床前明月光",
    "春眠不覺曉",
    "紅豆生南國",
    "空山新雨後",
    "千山鳥飛絕",
    "國破山河在",
    "海上生明月",
    "獨在異鄉爲異客",
    "兩個黃鸝鳴翠柳",
    "朝辭白帝彩雲間",
    "故人西辭黃鶴樓",
    "月落烏啼霜滿天",
    "晴川歷歷漢陽樹",
    "芳草萋萋鸚鵡洲",
    "無邊落木蕭蕭下",
    "細雨濕流光",
    "落霞與孤鶩齊飛",
    "清明時節雨紛紛",
    "大漠孤煙直",
]


@pytest.fixture(scope="module")
def bundled():
    model, vocab, _ = load_checkpoint(bundled_model_path())
    return model, vocab


def _write(bundled, form, **options):
    model, vocab = bundled
    return [p["text"] for p in write_poems(model, vocab, OPTS, n=N, form=form, tone="strict", **options)["poems"]]


@pytest.mark.parametrize("form", ["wujue", "qijue", "wulv", "qilv"])
def test_two_line_continuation(bundled, form):
    given = TWO_LINES[5 if form.startswith("wu") else 7]
    poems = _write(bundled, form, start=given)
    for p in poems:
        assert p.startswith(given), p
        check_rhyme(p, form)
        check_strict(p, form)
    m = {**score_poems(poems, form), **coverage(poems, start=given)}
    assert m["form_validity"] == m["rhyme_rate"] == m["tone_conformance"] == m["start_kept"] == 1.0


@pytest.mark.parametrize("form", ["wujue", "qijue", "wulv", "qilv"])
def test_three_keywords(bundled, form):
    poems = _write(bundled, form, keywords="月山酒")
    for p in poems:
        assert all(k in p for k in "月山酒"), p
        check_rhyme(p, form)
        check_strict(p, form)
    assert coverage(poems, keywords="月山酒")["keyword_coverage"] == 1.0


@pytest.mark.parametrize("form", ["wujue", "qijue", "wulv", "qilv"])
def test_hidden_at_the_end_of_each_line(bundled, form):
    hidden = HIDDEN[4 if form.endswith("jue") else 8]
    poems = _write(bundled, form, acrostic=hidden, at=-1)
    for p in poems:
        assert "".join(b[-1] for b in bodies(p, form)) == hidden, p
        check_rhyme(p, form)
        check_strict(p, form)
    assert coverage(poems, acrostic=hidden, at=-1)["hidden_coverage"] == 1.0


def _opposed(a, b):
    ta, tb = tones(a), tones(b)
    return not (len(ta) == len(tb) == 1 and ta == tb)


def test_couplets_for_twenty_first_lines(bundled):
    model, vocab = bundled
    pairs = []
    for first in FIRSTS:
        for c in iter_couplets(model, vocab, OPTS, first, n=N // len(FIRSTS)):
            a, b = c["first"], c["second"]
            pairs.append((a, b))
            assert a == first and len(b) == len(a), (a, b)
            for j in checked_positions(len(a)):
                if tones(a[j]):
                    assert tones(b[j]) and _opposed(a[j], b[j]), (a, b, j)
            for i in range(len(a)):
                for k in range(i):
                    assert (a[i] == a[k]) == (b[i] == b[k]), (a, b)  # repeats mirrored, no others
            assert not set(a) & set(b), (a, b)
            if tones(a[-1]) == {"仄"}:
                assert "平" in tones(b[-1]), (a, b)
    assert len(pairs) == N
    m = score_couplets(pairs)
    assert m["layout_rate"] == m["tone_opposition"] == m["mirror_rate"] == m["ends_ping_rate"] == 1.0
    assert m["shared_char_rate"] == 0.0


def _reader_terms(text):
    """The ranking's terms, counted here: extra uses (Han characters minus distinct ones) and the mean
    share of learned pairs (habits.json, read as JSON) facing each other in lines 3–4 and 5–6."""
    from importlib import resources

    pairs = json.loads(resources.files("tangshi.verse").joinpath("habits.json").read_text("utf-8"))["parallel"]["pairs"]
    lines = [ln for ln in text.replace("。", "，").split("，") if ln]
    chars = "".join(lines)
    shares = []
    if len(lines) == 8:
        for a, b in ((lines[2], lines[3]), (lines[4], lines[5])):
            shares.append(sum(("".join(sorted(x + y)) in pairs) for x, y in zip(a, b)) / len(a))
    return len(chars) - len(set(chars)), (sum(shares) / len(shares) if shares else 0.0)


@pytest.mark.parametrize("form", ["qijue", "qilv"])
def test_candidates_are_the_best_of_all_samples(bundled, form):
    model, vocab = bundled
    n, k = 3, 4
    every = [p["text"] for p in write_poems(model, vocab, OPTS, n=n * k, form=form)["poems"]]
    ranked = write_poems(model, vocab, OPTS, n=n, form=form, candidates=k)["poems"]

    def by_steps(text):  # ln p of every token after <START>, <EOS> included, one model.step at a time
        ids = vocab.encode(text) + [vocab.eos_id]
        logits, state = model.step(torch.tensor([vocab.start_id]), None)
        total = 0.0
        for tok in ids:
            total += float(torch.log_softmax(logits[0].double(), 0)[tok])
            logits, state = model.step(torch.tensor([tok]), state)
        return total / len(ids)

    with torch.no_grad():
        scores = {t: by_steps(t) for t in every}
    # the reader's score: + 0.5 nats per whole 對仗 score, - 0.1 nats per extra use (docs/reader.md)
    reader = {t: s - 0.1 * _reader_terms(t)[0] + 0.5 * _reader_terms(t)[1] for t, s in scores.items()}
    want = sorted(every, key=lambda t: -reader[t])[:n]
    assert [p["text"] for p in ranked] == want
    for p in ranked:
        assert math.isclose(p["score"], scores[p["text"]], abs_tol=1e-4)
        assert math.isclose(p["reader_score"], reader[p["text"]], abs_tol=2e-4)


def test_rhyme_group_listing_counts_the_vocabulary(bundled):
    _, vocab = bundled
    rows = rhyme_groups_known(vocab)
    assert len(rows) == 30
    for r in rows:
        assert r["known"] == sum(1 for ch in vocab.chars if r["group"] in verse_groups(ch)), r["group"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            [
                "generate",
                "--form",
                "wujue",
                "--start",
                "白日依山盡，黃河入海流。欲窮千里目，更上一層",
                "--keywords",
                "月",
            ],
            "keyword '月' fits no free position",
        ),
        (["couplet", "白日ab"], "contains 'a', which is not a Chinese character"),
        (["couplet", "白"], "needs at least 2"),
        (["generate", "--form", "qijue", "--rhyme-group", "xyz"], "unknown rhyme group"),
        (["generate", "--form", "wujue", "--start", "白日依山盡。"], "must end with '，', not '。'"),
        (["generate", "--form", "wujue", "--acrostic", "春夏秋冬", "--at", "-1"], "ends line 2, a rhyme position"),
        (["generate", "--form", "wujue", "--acrostic", "春夏秋冬", "--at", "6"], "--at must be a position"),
        (["generate", "--form", "wujue", "--candidates", "3", "--strategy", "greedy"], "--candidates ranks sampled"),
        (["generate", "--form", "wujue", "--candidates", "0"], "--candidates"),
    ],
)
def test_impossible_requests_get_one_line(capsys, argv, message):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err, err


def test_metrics_reads_the_request_from_the_json(bundled, capsys, tmp_path):
    assert (
        main(
            [
                "generate",
                "--form",
                "qijue",
                "--acrostic",
                "月紅雪中",
                "--at",
                "-1",
                "--keywords",
                "山",
                "--n",
                "5",
                "--json",
            ]
        )
        == 0
    )
    f = tmp_path / "p.json"
    f.write_text(capsys.readouterr().out, encoding="utf-8")
    header = json.loads(f.read_text(encoding="utf-8"))
    assert header["acrostic"] == "月紅雪中" and header["at"] == -1 and header["keywords"] == "山"
    assert main(["metrics", str(f), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["hidden_coverage"] == 1.0 and m["keyword_coverage"] == 1.0
    assert main(["metrics", str(f), "--json", "--keywords", "鶴鶴鶴"]) == 0  # given on the command line: it wins
    assert json.loads(capsys.readouterr().out)["keyword_coverage"] == 0.0


def test_a_keyboards_marks_are_read_as_the_corpus_writes_them(bundled):
    model, vocab = bundled
    (p,) = write_poems(model, vocab, OPTS, n=1, form="wujue", start="白日依山盡,黃河入海流.")["poems"]
    assert p["text"].startswith("白日依山盡，黃河入海流。") and p["valid_form"]


def test_an_error_quoting_a_huge_input_is_cut(capsys):
    assert main(["generate", "--form", "wujue", "--start", "春" * 30000]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500 and "characters cut" in err


def test_metrics_checks_at_and_reads_couplets_as_printed(capsys, tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("上联　白日依山盡\n下联　殘花落水時\n下联　西川近楚城\n", encoding="utf-8")
    assert main(["metrics", "--couplet", str(f), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 2 and m["layout_rate"] == 1.0
    g = tmp_path / "p.txt"
    g.write_text("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。\n", encoding="utf-8")
    assert main(["metrics", str(g), "--acrostic", "白黃欲更", "--at", "0"]) == 2
    assert "--at must be a position" in capsys.readouterr().err
