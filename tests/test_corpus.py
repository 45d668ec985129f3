import json

import pytest

from conftest import SHARED_POEMS
from tangshi.data import corpus
from tangshi.data.prepare import prepare
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError


@pytest.mark.parametrize(
    "paragraphs, expected",
    [
        (["床前明月光，疑是地上霜。"], "床前明月光，疑是地上霜。"),
        # bracketed notes of every kind are deleted, brackets included
        (["白日依山盡（一作落），黃河入海流。"], "白日依山盡，黃河入海流。"),
        (["欲窮千里目(一作望)，更上一層樓[注]。"], "欲窮千里目，更上一層樓。"),
        (
            ["春眠不覺曉{x}，處處聞啼鳥《題》。【甲】夜來〖乙〗風雨聲，花落知多少。"],
            "春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。",
        ),
        # nested brackets
        (["山中（注（又注）終）相送罷，日暮掩柴扉。"], "山中相送罷，日暮掩柴扉。"),
        # ？！ end a sentence → 。 ; ；：、 separate clauses → ，
        (["君自故鄉來，應知故鄉事？來日綺窗前；寒梅著花未！"], "君自故鄉來，應知故鄉事。來日綺窗前，寒梅著花未。"),
        # digits, Latin letters, spaces, quotes and other symbols are deleted
        (["“紅豆生南國”，12春來 發幾枝abc。"], "紅豆生南國，春來發幾枝。"),
        # runs of punctuation collapse; no leading punctuation
        (["。，空山不見人，，但聞人語響。。"], "空山不見人，但聞人語響。"),
    ],
)
def test_clean_poem(paragraphs, expected):
    assert corpus.clean_poem(paragraphs) == expected


def test_lost_character_drops_poem():
    assert corpus.clean_poem(["國破山河在，城□草木深。"]) is None
    # a □ inside a deleted note does not drop the poem
    assert corpus.clean_poem(["國破山河在（□），城春草木深。"]) == "國破山河在，城春草木深。"


def test_load_poems_counts(tmp_path):
    poems = [
        {"paragraphs": ["床前明月光，疑是地上霜。"]},  # kept (12)
        {"paragraphs": ["床前明月光，疑是地上霜。"]},  # duplicate
        {"paragraphs": ["短，句。"]},  # too short
        {"paragraphs": ["一二三四五六七，" * 9]},  # too long (72)
        {"paragraphs": ["國破山河在，城□草木深。"]},  # lost character
        {"paragraphs": "not a list"},  # malformed
        {"paragraphs": ["白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"]},  # kept (24)
    ]
    (tmp_path / "poet.tang.0.json").write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    kept, stats = corpus.load_poems(tmp_path)
    assert stats.poems_read == 7
    assert dict(stats.dropped) == {"duplicate": 1, "too_short": 1, "too_long": 1, "lost_character": 1, "malformed": 1}
    assert kept == ["床前明月光，疑是地上霜。", "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"]
    assert stats.in_range == 2


def test_length_bounds_inclusive():
    assert corpus.MIN_CHARS == 10 and corpus.MAX_CHARS == 63


def test_sample_split_deterministic():
    poems = [f"p{i}" for i in range(100)]
    a = corpus.sample_and_split(poems, 50, seed=3)
    b = corpus.sample_and_split(poems, 50, seed=3)
    c = corpus.sample_and_split(poems, 50, seed=4)
    assert a == b and a != c
    assert (len(a[0]), len(a[1])) == (40, 10)
    assert not set(a[0]) & set(a[1])
    with pytest.raises(TangshiError, match="only 100"):
        corpus.sample_and_split(poems, 101, seed=0)


def test_missing_and_malformed_source(tmp_path):
    with pytest.raises(TangshiError, match="data folder not found"):
        corpus.load_poems(tmp_path / "nope")
    (tmp_path / "poet.tang.0.json").write_text("[{", encoding="utf-8")
    with pytest.raises(TangshiError, match="malformed JSON"):
        corpus.load_poems(tmp_path)


@pytest.mark.skipif(not SHARED_POEMS.exists(), reason="../shared poems not present")
def test_prepare_real_data(tmp_path):
    """The assignment's 10k split on the real 全唐诗: exact counts of this cleaning."""
    s = prepare(SHARED_POEMS, tmp_path / "p", 10_000, 0)
    assert s["poems_read"] == 57_607
    assert (s["train"], s["dev"]) == (8_000, 2_000)
    assert s["in_range"] == 37_110
    assert s["vocab_size"] == 5_359
    vocab = Vocab.load(tmp_path / "p" / "vocab.json")
    train = (tmp_path / "p" / "train.txt").read_text(encoding="utf-8").split()
    assert len(vocab) == len(set("".join(train))) + 4
