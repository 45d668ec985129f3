"""對仗 learned from middle couplets (verse/parallel.py): counts and pmi by hand, the shuffle, the AUC
against a brute-force count, and the score."""

import itertools
import math

import pytest

from tangshi.verse.parallel import Pairs, auc, learn, middle_couplets, pair_key, shuffled

# two 五律 whose middle couplets are written so every count is known by hand
A = "青天橫北郭，白日繞東城。山高雲不去，水遠月長明。山青花欲落，水綠鳥空鳴。此地一為別，孤蓬萬里征。"
B = "春風吹柳綠，細雨濕衣輕。山高雲不去，水遠月長明。花開春已老，葉落夜初清。明日還相見，何人共此生。"


def test_middle_couplets_are_lines_3_to_6_of_a_lv():
    assert middle_couplets([A, "床前明月光"]) == [("山高雲不去", "水遠月長明"), ("山青花欲落", "水綠鳥空鳴")]


def test_counts_and_pmi_by_hand():
    t = learn([A, B], min_count=2)
    # 20 places: 山/水 ×3 (A twice, B once), 高/遠 ×2, 雲/月 ×2, 不/長 ×2, 去/明 ×2, and once each
    # 青/綠, 花/鳥, 欲/空, 落/鳴, 花/葉, 開/落, 春/夜, 已/初, 老/清
    total = 2 * 20  # both orders
    single = {"山": 3, "水": 3}  # 山 stands at 3 places, always facing 水
    pmi = math.log(3 * total / (single["山"] * single["水"]))  # log(40 / 3)
    assert t["couplets"] == 4 and t["pairs"][pair_key("山", "水")] == round(pmi, 2)
    assert set(t["pairs"]) == {pair_key(a, b) for a, b in ["山水", "高遠", "雲月", "不長", "去明"]}
    assert pair_key("花", "鳥") not in t["pairs"]  # seen once
    assert pair_key("花", "鳥") in learn([A, B], min_count=1)["pairs"]


def test_score_is_the_share_of_learned_pairs():
    p = Pairs(learn([A, B], min_count=2)["pairs"])
    assert p.score("山高雲不去", "水遠月長明") == 1.0
    assert p.score("山高花欲落", "水遠鳥空鳴") == 2 / 5  # 山/水 and 高/遠; 花/鳥 was seen once
    assert ("水", "山") in p and ("山", "山") not in p
    assert p.score("", "") is None


def test_shuffle_pairs_each_first_line_with_another_second_line_of_its_length():
    cs = [("一二三四五", f"五四三二{i}") for i in range(6)] + [("一二三四五六七", "七六五四三二一")]
    out = shuffled(cs, seed=3)
    assert [a for a, _ in out] == [a for a, _ in cs]
    assert sorted(b for _, b in out) == sorted(b for _, b in cs)  # a permutation of the second lines
    assert all(o != c for o, c in zip(out[:6], cs[:6]))  # none keeps its own
    assert out[6] == cs[6]  # alone in its length: nothing to swap with


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_the_pairwise_count(seed):
    import random

    rng = random.Random(seed)
    pos = [rng.choice([0.0, 0.2, 0.4, 0.6]) for _ in range(7)]
    neg = [rng.choice([0.0, 0.2, 0.4]) for _ in range(9)]
    brute = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)) / (len(pos) * len(neg))
    assert math.isclose(auc(pos, neg), brute)
    assert auc([1.0], [0.0]) == 1.0 and auc([0.0], [1.0]) == 0.0


# ---- decoding: the bias the constraint adds, and what it does to the poems
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tangshi.decode.constraints import SpecialIds, make_constraint  # noqa: E402
from tangshi.decode.constraints.couplet import CoupletConstraint  # noqa: E402
from tangshi.verse.habits import habits  # noqa: E402
from test_constraints import make_itos  # noqa: E402

LV = "青天橫北郭，白日繞東城。山高雲不去，水遠月長明。"  # lines 1–4 of a 五律 (line 3 faces line 4)
ITOS = make_itos(extra=LV + "".join(b for a, _ in habits().pairs.partners.items() if a in LV for b, _ in _))
SP = SpecialIds.from_itos(ITOS)


def _ids(text):
    return [ITOS.index(ch) for ch in text]


def _expected_row(above: str, weight: float) -> np.ndarray:
    row = np.zeros(len(ITOS), dtype=np.float32)
    for b, v in habits().pairs.partners.get(above, ()):
        if b in ITOS:
            row[ITOS.index(b)] = weight * v
    return row


@pytest.mark.parametrize("weight", [0.7, 2.0])
def test_the_bias_in_line_4_is_the_weighted_pmi_of_the_partners_of_line_3(weight):
    c = make_constraint(ITOS, SP, "wulv", rhyme=True, parallel=weight)
    prefix = "青天橫北郭，白日繞東城。山高雲不去，"
    for j in range(5):
        b = c.bias([_ids(prefix + "水遠月長明"[:j])])
        assert b is not None and b.shape == (1, len(ITOS))
        assert np.allclose(b[0].numpy(), _expected_row("山高雲不去"[j], weight)), j
    assert c.bias([_ids(prefix[:-1])]) is None or not c.bias([_ids(prefix[:-1])]).any()  # line 3 itself: none
    assert c.bias([_ids("青山橫北郭，白")]) is None or not c.bias([_ids("青山橫北郭，白")]).any()  # line 2: none
    off = make_constraint(ITOS, SP, "wulv", rhyme=True, parallel=0)
    assert off.bias([_ids(prefix)]) is None


def test_no_bias_where_the_user_gave_the_character():
    c = make_constraint(ITOS, SP, "wulv", rhyme=True, parallel=1.0, start="青天橫北郭，白日繞東城。山高雲不去，水遠")
    st = c.replay([_ids("青天橫北郭，白日繞東城。山高雲不去，水")])
    b = c.bias(st)
    assert b is None or not b.any()  # the 遠 after 水 is the user's


def test_the_couplet_bias_faces_the_first_lines_characters():
    c = CoupletConstraint(ITOS, SP, "山高雲不去", tone="off", parallel=1.5)
    for j in range(5):
        b = c.bias([_ids("山高雲不去，" + "水遠月長明"[:j])])
        assert np.allclose(b[0].numpy(), _expected_row("山高雲不去"[j], 1.5)), j


def _decode_biased(c, batch, seed):
    """Random logits plus the constraint's own bias, sampled through its mask."""
    g = torch.Generator().manual_seed(seed)
    st = c.new_state(batch)
    out = []
    for _ in range(c.max_len):
        logits = torch.randn(batch, len(ITOS), generator=g)
        b = c.bias(st)
        if b is not None:
            logits = logits + b
        tok = torch.multinomial(logits.masked_fill(~c.mask(st), float("-inf")).softmax(-1), 1, generator=g)[:, 0]
        c.advance(st, tok)
        out.append(tok)
    return torch.stack(out, 1).tolist()


def _mean_score(weight, seed=0, batch=60):
    c = make_constraint(ITOS, SP, "wulv", rhyme=True, parallel=weight)
    pairs = habits().pairs
    rows = _decode_biased(c, batch, seed)
    scores = []
    for row in rows:
        lines = "".join(ITOS[i] for i in row[:-1]).replace("。", "，").split("，")
        scores += [pairs.score(lines[2], lines[3]), pairs.score(lines[4], lines[5])]
    return sum(scores) / len(scores)


def test_the_weight_makes_middle_couplets_parallel():
    # random logits: without the bias a pair is chance; with it the learned partners win places
    plain, leaning = _mean_score(0.0), _mean_score(3.0)
    assert plain < 0.1 and leaning > plain + 0.3, (plain, leaning)


def test_a_weight_out_of_range_is_one_error(capsys):
    from conftest import one_line_error, run

    for bad in ("-1", "10.5", "nan"):
        code, _, err = run(["generate", "--form", "qilv", "--parallel", bad], capsys)
        one_line_error(code, err, "--parallel")
    code, _, err = run(["couplet", "山高雲不去", "--parallel", "11"], capsys)
    one_line_error(code, err, "--parallel")
