"""Readings verse uses (verse/readings.py): counted by hand on small poems, and kept by the decoder
against logits that want the rare ones. Judged by tests/judge.py, which reads the bundled table's
JSON and the 平水韻 JSON itself."""

import json

import pytest
import torch

from judge import check_rhyme, check_strict, check_verse_readings, verse_groups, verse_tones
from tangshi.decode.constraints import SpecialIds, make_constraint
from tangshi.verse import prosody
from tangshi.verse.habits import habits
from tangshi.verse.readings import Readings, count_uses, learn
from test_constraints import make_itos
from test_habits import _bundled_text, decode_with

DENG = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"  # fits 仄起首句不入韻 at all 12 checked places


def test_counts_by_hand():
    rhyme, tone = count_uses([DENG, "床前明月光"])  # the second is not a form: ignored
    you = "下平聲十一尤"
    assert {c: dict(v) for c, v in rhyme.items()} == {"流": {you: 1}, "樓": {you: 1}}
    # 中仄中平仄 / 中平中仄平 / 中平中仄仄 / 中仄中平平: the 2nd, 4th and 5th character of each line
    want = {"日": "仄", "山": "平", "盡": "仄", "河": "平", "海": "仄", "流": "平"}
    want |= {"窮": "平", "里": "仄", "目": "仄", "上": "仄", "層": "平", "樓": "平"}
    assert {c: dict(v) for c, v in tone.items()} == {c: {t: 1} for c, t in want.items()}


def _feng(n_dong, n_else):
    # 逢 is in 東 and 冬; 風 only in 東, 冬 only in 冬: the other line's end tells which 逢 is read
    return (
        ["青山一片雲，白日照江逢。明月照高樓，春來萬里風。"] * n_dong
        + ["青山一片雲，白日照江逢。明月照高樓，天寒歲暮冬。"] * n_else
        + [DENG]
    )


def test_a_rare_rhyme_reading_is_dropped_only_with_enough_uses():
    dong, donggroup = "上平聲一東", "上平聲二冬"
    assert {dong, donggroup} <= prosody.rhyme_groups("逢")
    poems = _feng(9, 1)  # 逢 read in 東 9 times, in 冬 once
    rhyme, _ = count_uses(poems)
    assert dict(rhyme["逢"]) == {dong: 9, donggroup: 1}
    t = learn(poems, min_share=0.2, min_uses=5)
    assert t["rhyme"]["逢"] == {"keep": [dong], "uses": {dong: 9, donggroup: 1}}
    r = Readings.from_table(t)
    assert r.rhyme_groups("逢") == {dong} and r.rare("逢", group=donggroup) and not r.rare("逢", group=dong)
    assert learn(poems, min_share=0.05, min_uses=5)["rhyme"]["逢"]["keep"] == sorted(
        g for g in prosody.rhyme_groups("逢") if g in (dong, donggroup)
    )  # 1 in 10 is not rare at 5%; a group never used is
    assert "逢" not in learn(poems, min_share=0.2, min_uses=20)["rhyme"]  # 10 uses are too few to tell
    assert Readings.from_table(learn(poems, min_share=0.2, min_uses=20)).rhyme_groups("逢") == prosody.rhyme_groups(
        "逢"
    )


def test_malformed_readings_table_is_one_error():
    from tangshi.errors import TangshiError

    with pytest.raises(TangshiError, match="readings table is malformed"):
        Readings.from_table({"rhyme": {"逢": {"kept": []}}, "tone": {}})


def test_bundled_readings_drop_the_rare_ones_a_reader_hears():
    table = json.loads(_bundled_text("habits.json"))["readings"]
    assert table["min_share"] == 0.05 and table["min_uses"] == 20
    r = habits().readings
    xian = next(g for g in prosody.rhyme_table().groups if g.endswith("先"))
    assert xian in prosody.rhyme_groups("平") and xian not in r.rhyme_groups("平")  # 平 as pián
    assert xian in prosody.rhyme_groups("還") and xian not in r.rhyme_groups("還")
    assert prosody.PING in prosody.tones("望") and r.tone_set("望") == {prosody.ZE}
    for ch, v in table["rhyme"].items():  # what is kept holds at least 5% of at least 20 uses
        total = sum(v["uses"].values())
        assert total >= 20 and all(v["uses"].get(g, 0) / total >= 0.05 for g in v["keep"])
        assert all(v["uses"].get(g, 0) / total < 0.05 for g in prosody.rhyme_groups(ch) - set(v["keep"]))


RARE = "".join(json.loads(_bundled_text("habits.json"))["readings"]["rhyme"]) + "".join(
    json.loads(_bundled_text("habits.json"))["readings"]["tone"]
)
ITOS = make_itos(extra=RARE + "白日照青天春風滿地平")
SP = SpecialIds.from_itos(ITOS)


def _loves_rare(batch):
    z = torch.randn(batch, len(ITOS)) * 0.1
    for ch in RARE:
        z[:, ITOS.index(ch)] += 6.0
    return z


@pytest.mark.parametrize("form", ["wujue", "qijue", "wulv", "qilv"])
@pytest.mark.parametrize("tone", ["off", "strict"])
def test_generated_rhymes_and_tones_use_verse_readings(form, tone):
    c = make_constraint(ITOS, SP, form, rhyme=True, tone=tone)
    used_rare_char = 0
    for seed in range(2):
        for row in decode_with(c, ITOS, SP, 30, seed, bias=_loves_rare):
            text = "".join(ITOS[i] for i in row[:-1])
            check_rhyme(text, form)
            check_verse_readings(text, form, strict=tone == "strict")
            used_rare_char += any(ch in RARE for ch in text)
    assert used_rare_char > 0  # the characters are written, only never on their rare readings


def test_a_rhyme_group_whose_character_is_rare_there_is_not_rhymed_by_it():
    xian = next(g for g in prosody.rhyme_table().groups if g.endswith("先"))
    c = make_constraint(ITOS, SP, "wulv", rhyme=True, tone="off", rhyme_group=xian)
    z = torch.zeros(1, len(ITOS))
    z[0, ITOS.index("平")] = 20.0  # the model wants 平 everywhere
    for row in decode_with(c, ITOS, SP, 1, 0, bias=lambda b: z.expand(b, -1)):
        lines = "".join(ITOS[i] for i in row[:-1]).replace("。", "，").split("，")
        assert all(line[-1] != "平" for line in lines[1::2] if line)
        assert all(xian in verse_groups(line[-1]) for line in lines[1::2] if line)


def test_the_users_own_text_is_read_as_the_table_allows():
    # 平 given at a rhyme position after a line 1 in 先: the user reads it pián; the poem rhymes in 先
    xian = next(g for g in prosody.rhyme_table().groups if g.endswith("先"))
    start = "白日照青天，春風滿地平。"
    c = make_constraint(ITOS, SP, "wujue", rhyme=True, tone="off", start=start)
    for row in decode_with(c, ITOS, SP, 20, 1):
        text = "".join(ITOS[i] for i in row[:-1])
        assert text.startswith(start)
        assert xian in verse_groups(text[-2]), text
    assert verse_tones("望") == {"仄"}
    check_strict("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。", "wujue")
