"""verse.reader and `tangshi metrics`'s reader table: hand-made poems with hand-computed answers, the
real-poem column from a prepared folder and from a corpus folder, and the real 五絶's share of a
character three or more times."""

import json

import pytest

from conftest import SHARED_POEMS, run
from tangshi.data.corpus import corpus_split, load_poems
from tangshi.verse import prosody
from tangshi.verse.reader import (
    first_line_rhymes,
    format_reader,
    han_lines,
    has_doubled,
    has_triple,
    is_ping_only,
    poems_of_form,
    reader_ratio,
    reader_scores,
    rhyme_positions,
)

# 月 three times; 青青 a 疊字 in line 2; rhymes 人/春 (真); line 1 ends on 山, 平 only, in 刪: unrhymed
P1 = "明月照秋山，青青月下人。春風吹月色，不見故園春。"
# no repeat at all; line 1 ends on 盡 (仄); rhymes 流/樓 (尤)
P2 = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"
# line 1 ends on 舟, rhyming with 頭/舟 (尤): rhyme positions 舟, 頭, 舟 repeat 舟; 江, 客, 舟 twice each
P3 = "江南有客舟，夜泊古渡頭。明月照江水，孤帆送客舟。"
# rhymed in 仄 (鳥/少 have no 平聲 group): not a rhymed poem; 處處 a 疊字
P4 = "春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。"
# 登高: a 七律 whose line 1 rhymes (哀, 灰); 蕭蕭 and 滾滾; 54 distinct of 56
DENGGAO = [
    "風急天高猿嘯哀，渚清沙白鳥飛回。",
    "無邊落木蕭蕭下，不盡長江滾滾來。",
    "萬里悲秋常作客，百年多病獨登臺。",
    "艱難苦恨繁霜鬢，潦倒新停濁酒杯。",
]

ZHEN, YOU, SHAN = "上平聲十一真", "下平聲十一尤", "上平聲十五刪"


def test_the_characters_are_what_the_poems_assume():
    assert prosody.tones("山") == {prosody.PING} and prosody.rhyme_groups("山") == {SHAN}
    assert prosody.rhyme_groups("人") == prosody.rhyme_groups("春") == {ZHEN}
    assert YOU in prosody.shared_groups("流樓") and YOU in prosody.shared_groups("舟頭")
    assert prosody.tones("舟") == {prosody.PING} and prosody.tones("盡") == {prosody.ZE}
    assert not prosody.shared_groups("鳥少")
    assert prosody.tones("哀") == {prosody.PING} and prosody.shared_groups("哀回來臺杯")
    assert not is_ping_only("看") and is_ping_only("山")  # 看 reads 平 and 仄


def test_each_poem_by_hand():
    l1, l2, l3, l4 = (han_lines(p) for p in (P1, P2, P3, P4))
    assert l1 == ["明月照秋山", "青青月下人", "春風吹月色", "不見故園春"]
    assert has_triple(l1) and not any(map(has_triple, (l2, l3, l4)))
    assert has_doubled(l1) and has_doubled(l4) and not has_doubled(l2) and not has_doubled(l3)
    assert not has_doubled(["明月照江水", "水流"])  # never across a line break
    assert first_line_rhymes(l1) is False and first_line_rhymes(l3) is True and first_line_rhymes(l4) is None
    assert rhyme_positions(l3) == ["舟", "頭", "舟"] and rhyme_positions(l1) == ["人", "春"]


def test_reader_scores_known_answers():
    m = reader_scores([P1, P2, P3, P4], "wujue")
    assert m["n"] == 4
    assert m["triple_char_rate"] == 0.25  # P1
    assert m["doubled_char_rate"] == 0.5  # P1, P4
    assert m["distinct_char_ratio"] == pytest.approx((16 / 20 + 1 + 17 / 20 + 19 / 20) / 4)
    # rhymed: P1, P2, P3; line 1 on a 平 character: P1 (unrhymed), P3 (rhymes)
    assert m["first_unrhymed_ping_rate"] == pytest.approx(1 / 3)
    assert m["first_rhyme_consistency"] == 0.5
    assert m["repeated_rhyme_char_rate"] == 0.25  # P3 of the four structured poems
    assert "keyword_poems" not in m


def test_structure_and_empty_sets():
    m = reader_scores([P1, "明月照秋山。"], "wujue")  # the second is no 五絶: only the repetition rows count it
    assert m["triple_char_rate"] == 0.5 and m["repeated_rhyme_char_rate"] == 0.0
    assert m["first_unrhymed_ping_rate"] == 1.0 and m["first_rhyme_consistency"] == 0.0
    assert reader_scores([P4], "wujue")["first_rhyme_consistency"] is None  # no rhymed poem
    assert reader_scores([P1], "qijue")["repeated_rhyme_char_rate"] is None  # no 七絶
    assert reader_scores([P1, P3])["first_unrhymed_ping_rate"] == 0.5  # free: each poem's own form


def test_keyword_placement():
    k1 = "空山不見人，明月松間照。春潮帶雨晚，野渡無人舟。"  # one keyword a line in three lines
    m = reader_scores([P1, k1, P2], "wujue", keywords="月山春")  # P2 holds only 山: left out
    assert m["keyword_poems"] == 2
    assert m["keywords_per_line"] == pytest.approx((2 + 1 + 2 + 1 + 1 + 1 + 1) / 7)
    assert m["keyword_crowded_rate"] == 0.5  # P1's 明月照秋山 holds 月 and 山
    one = reader_scores([P1, P2], "wujue", keywords="山")
    assert one["keyword_poems"] == 2 and one["keywords_per_line"] == 1.0 and one["keyword_crowded_rate"] == 0.0


def test_ratio_table_and_form_filter():
    assert poems_of_form([P1, "".join(DENGGAO), "明月照秋山。"], "wujue") == [P1]
    assert poems_of_form([P1, "".join(DENGGAO)], "qilv") == ["".join(DENGGAO)]
    gen, real = {"n": 3, "triple_char_rate": 0.5, "doubled_char_rate": 0.2}, {"n": 9, "triple_char_rate": 0.25}
    assert reader_ratio(gen, real) == {"triple_char_rate": 2.0, "doubled_char_rate": None}
    assert reader_ratio({"doubled_char_rate": 0.2}, {"doubled_char_rate": 0.0}) == {"doubled_char_rate": None}
    table = format_reader(gen, real).splitlines()
    assert table[0].split() == ["generated", "real", "ratio"]
    assert table[2].split()[-3:] == ["0.500", "0.250", "2.000"] and table[3].split()[-2:] == ["—", "—"]
    assert format_reader(gen, None).splitlines()[0].split() == ["generated"]


def test_cli_reader_table_from_a_prepared_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/quantangshi here
    prep = tmp_path / "prep"
    prep.mkdir()
    (prep / "train.txt").write_text("\n".join([P2, P3, "".join(DENGGAO[:2])]) + "\n", encoding="utf-8")
    gen = tmp_path / "gen.txt"
    gen.write_text(P1 + "\n" + P4 + "\n", encoding="utf-8")
    code, out, _ = run(["metrics", gen, "--form", "wujue", "--data", prep, "--keywords", "月山", "--json"], capsys)
    r = json.loads(out)["reader"]
    assert code == 0 and r["real_source"] == str(prep)
    assert r["generated"]["triple_char_rate"] == 0.5 and r["real"]["n"] == 2 and r["real"]["triple_char_rate"] == 0
    assert r["real"]["repeated_rhyme_char_rate"] == 0.5 and r["generated"]["repeated_rhyme_char_rate"] == 0
    assert r["ratio"]["doubled_char_rate"] is None and r["ratio"]["triple_char_rate"] is None
    assert r["ratio"]["distinct_char_ratio"] == pytest.approx(((16 / 20 + 19 / 20) / 2) / ((1 + 17 / 20) / 2))
    assert r["generated"]["keyword_crowded_rate"] == 1.0 and r["real"]["keyword_poems"] == 0
    code, out, _ = run(["metrics", gen, "--form", "wujue", "--data", prep], capsys)
    assert code == 0 and "as a reader hears them (real: " in out and "ratio" in out
    code, out, _ = run(["metrics", gen, "--form", "wujue", "--data", prep, "--no-real", "--json"], capsys)
    assert json.loads(out)["reader"]["real"] is None
    code, out, _ = run(["metrics", gen, "--form", "qilv", "--data", prep, "--json"], capsys)  # no 七律 anywhere
    assert code == 0 and json.loads(out)["reader"]["real"] is None


def test_cli_real_qilv_from_a_corpus_folder(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # ten 七律 (登高 with line 1's first character changed to one it does not hold) and a duplicate;
    # the real column is the held-out 20% of the corpus (11 poems after the duplicate is dropped: 2)
    variants = [[c + DENGGAO[0][1:], *DENGGAO[1:]] for c in "風雨雪霧露雷霞虹煙嵐"]
    items = [{"paragraphs": v} for v in variants] + [{"paragraphs": DENGGAO}, {"paragraphs": [P1]}]
    (corpus / "poet.tang.0.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    gen = tmp_path / "gen.txt"
    gen.write_text("".join(DENGGAO) + "\n", encoding="utf-8")
    code, out, _ = run(["metrics", gen, "--form", "qilv", "--real", corpus, "--json"], capsys)
    r = json.loads(out)["reader"]
    held_out = corpus_split(corpus)[1]
    assert len(held_out) == 2 and r["real"]["n"] == len(poems_of_form(held_out, "qilv")) >= 1  # 64 characters: kept
    assert r["real"]["doubled_char_rate"] == 1.0 and r["real"]["first_rhyme_consistency"] == 1.0
    assert r["real"]["distinct_char_ratio"] == pytest.approx(54 / 56) and r["ratio"]["doubled_char_rate"] == 1.0


@pytest.mark.skipif(not SHARED_POEMS.is_dir(), reason="the fetched corpus is not in ../shared")
def test_real_wujue_seldom_repeat_a_character_three_times():
    poems, _ = load_poems(SHARED_POEMS)
    wujue = poems_of_form(poems, "wujue")
    share = reader_scores(wujue, "wujue")["triple_char_rate"]
    print(f"real 五絶: {len(wujue)} poems, share with a character three or more times {share:.4f}")
    assert len(wujue) > 1000 and 0.005 <= share <= 0.08


def test_a_rhyme_on_a_rare_reading_is_counted():
    # 平 and 年 share 先 only through 平's rare pián reading (verse rhymes 平 in 庚); 天/年 is plain 先
    rare = "青山白日天，春水滿江平。明月照高樓，歸心又一年。"
    plain = "青山白日遠，春水接長天。明月照高樓，歸心又一年。"
    xian = next(g for g in prosody.rhyme_table().groups if g.endswith("先"))
    assert prosody.shared_groups(["平", "年"]) == {xian} and prosody.shared_groups(["天", "年"]) == {xian}
    s = reader_scores([rare, plain, P4], "wujue")  # P4 rhymes in 仄: not a rhymed poem
    assert s["rare_rhyme_rate"] == 0.5
