"""Tests for tangshi.metrics on hand-made poems with hand-computed answers."""

import pytest

from tangshi.verse.metrics import METRIC_KEYS, clauses, format_metrics, score_poems, training_clause_set

DENG_GUAN_QUE = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"  # tones 12/12, rhymes (尤)
JING_YE_SI = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"  # tones 10/12, rhymes (陽)
JIANG_XUE = "千山鳥飛絕，萬徑人蹤滅。孤舟蓑笠翁，獨釣寒江雪。"  # tones 6/12, 仄 rhymes
BROKEN = "春風吹柳綠，春風吹柳綠。"  # 2 clauses, the 2nd repeats the 1st
POEMS = [DENG_GUAN_QUE, JING_YE_SI, JIANG_XUE, BROKEN]


def test_clauses():
    assert clauses("白日依山盡，黃河入海流。") == ["白日依山盡", "黃河入海流"]
    assert clauses("甲乙？丙丁！戊；己 庚\n。。") == ["甲乙", "丙丁", "戊", "己庚"]
    assert clauses("「甲乙」，丙") == ["甲乙", "丙"]
    assert clauses("") == []


def test_training_clause_set():
    s = training_clause_set(["白日依山盡，黃河入海流。", "春風吹柳綠，夏雨。"])
    assert s == {"白日依山盡", "黃河入海流", "春風吹柳綠"}
    assert training_clause_set(["夏雨，秋風。"], min_chars=2) == {"夏雨", "秋風"}


def test_score_wujue():
    train = training_clause_set(["白日依山盡，黃河入海流。", "春風吹柳綠，夏雨。"])
    d = score_poems(POEMS, "wujue", train)
    assert set(d) == set(METRIC_KEYS)
    assert d["n"] == 4
    assert d["form_validity"] == pytest.approx(3 / 4)
    assert d["rhyme_rate"] == pytest.approx(2 / 4)  # 登鸛雀樓, 靜夜思
    assert d["tone_conformance"] == pytest.approx((1 + 10 / 12 + 6 / 12) / 3)  # BROKEN has no form
    assert d["repeated_clause_rate"] == pytest.approx(1 / 14)
    assert d["copy_rate"] == pytest.approx(4 / 14)  # 白日依山盡, 黃河入海流, 春風吹柳綠 ×2
    assert d["mean_chars"] == pytest.approx(70 / 4)


def test_score_without_form_infers_it():
    bad_punct = DENG_GUAN_QUE.replace("盡，", "盡。")  # structure of a 五絕, wrong mark
    d = score_poems(POEMS + [bad_punct], None, None)
    assert d["n"] == 5
    assert d["form_validity"] == pytest.approx(3 / 5)
    assert d["rhyme_rate"] == pytest.approx(3 / 5)
    assert d["tone_conformance"] == pytest.approx((1 + 10 / 12 + 6 / 12 + 1) / 4)
    assert d["copy_rate"] is None
    assert score_poems(POEMS, "free", None) == score_poems(POEMS, None, None)


def test_wulv_form_on_quatrains():
    d = score_poems([DENG_GUAN_QUE], "wulv", None)
    assert d["form_validity"] == 0 and d["rhyme_rate"] == 0
    assert d["tone_conformance"] is None


def test_distinct_and_repeats():
    d = score_poems(["甲乙丙，甲乙丁。", "丙丁"], None, set())
    # chars 甲乙丙 甲乙丁 丙丁: 8 in all, 4 unique
    assert d["distinct_1"] == pytest.approx(4 / 8)
    # bigrams 甲乙 乙丙 | 甲乙 乙丁 | 丙丁: 5 in all, 4 unique; 丙甲 crosses a clause
    assert d["distinct_2"] == pytest.approx(4 / 5)
    assert d["repeated_clause_rate"] == 0
    assert d["copy_rate"] is None  # no clause of 4+ characters
    assert d["mean_chars"] == pytest.approx(4.0)
    d = score_poems(["甲乙，甲乙。甲乙，丙丁。"], None, None)
    assert d["repeated_clause_rate"] == pytest.approx(2 / 4)


def test_empty():
    d = score_poems([], "wujue", set())
    assert d["n"] == 0
    assert all(d[k] is None for k in METRIC_KEYS if k != "n")


def test_format_metrics():
    d = score_poems(POEMS, "wujue", None)
    text = format_metrics(d, title="wujue")
    lines = text.splitlines()
    assert lines[0] == "wujue"
    assert len(lines) == 1 + len(METRIC_KEYS)
    assert any(line.startswith("poems") and line.rstrip().endswith("4") for line in lines)
    assert any("form validity" in line and "0.750" in line for line in lines)
    assert any("copied clauses" in line and "—" in line for line in lines)
    assert any("characters per poem" in line and "17.5" in line for line in lines)
