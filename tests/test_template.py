"""--template: the whole poem with holes. The fixed characters stand where they are given; later ones
constrain what comes before them (rhyme, strict tones, repeats); an acrostic and a continuation are
special cases that give the same poems. Judged by tests/judge.py and by counting."""

import json
from collections import Counter

import pytest
import torch

from conftest import one_line_error, run
from judge import check_rhyme, check_strict, verse_groups
from tangshi.decode.constraints import SpecialIds, make_constraint
from test_constraints import make_itos
from test_habits import decode_with

ITOS = make_itos(extra="春夏秋冬山水月明光白日依盡黃河入海流冬")
SP = SpecialIds.from_itos(ITOS)


def _texts(c, batch=20, seed=0, bias=None):
    return ["".join(ITOS[i] for i in row[:-1]) for row in decode_with(c, ITOS, SP, batch, seed, bias=bias)]


@pytest.mark.parametrize("tone", ["off", "strict"])
def test_fixed_characters_stand_where_given_and_later_ones_bind_earlier_choices(tone):
    # line 4 ends on 冬 (冬 group): line 2's rhyme, written before it, must rhyme with it; 秋 is fixed
    # at a checked place of line 3, which (strict) fixes the tone pattern before line 1 is written
    template = "□□□□□，□□□□□。□秋□□□，□□□□冬。"
    c = make_constraint(ITOS, SP, template=template, rhyme=True, tone=tone)
    assert c.form.name == "wujue" and c.template == template
    for text in _texts(c, 30, 1):
        assert all(t == "□" or t == g for t, g in zip(template, text)), text
        check_rhyme(text, "wujue")
        assert verse_groups(text[10]) & verse_groups("冬"), text  # line 2's end, written first
        if tone == "strict":
            check_strict(text, "wujue")


def test_a_later_fixed_character_counts_for_repeats():
    # 山 fixed twice in line 4: the poem may hold no other 山 (never three), whatever the model wants
    template = "□□□□□，□□□□□。□□□□□，山□□山□。"
    c = make_constraint(ITOS, SP, template=template, rhyme=True)
    z = torch.zeros(len(ITOS))
    z[ITOS.index("山")] = 12.0
    for text in _texts(c, 10, 0, bias=lambda b: z.expand(b, -1)):
        assert Counter(text)["山"] == 2, text


@pytest.mark.parametrize(
    "template, words",
    [
        ("□□□□□，□□□□□", "must end with its last line's mark"),
        ("□□□□，□□□□□。", "4/5 characters"),
        ("□□□，□□□。", "none of the forms"),
        ("□□□□□，□□a□□。", "neither a Chinese character nor a hole"),
        ("", "empty"),
    ],
)
def test_bad_templates_are_one_error(template, words, capsys):
    code, _, err = run(["generate", "--template", template], capsys)
    one_line_error(code, err, words)


def test_template_with_start_or_another_form_is_one_error(capsys):
    t = "□□□□□，□□□□□。□□□□□，□□□□□。"
    code, _, err = run(["generate", "--template", t, "--start", "春"], capsys)
    one_line_error(code, err, "--template holds the whole poem")
    code, _, err = run(["generate", "--template", t, "--form", "qijue"], capsys)
    one_line_error(code, err, "4 lines of 5 characters but a 七言")
    code, _, err = run(["generate", "--template", "□□□□□，□□□□□。□□□□□，□□□□鑫。"], capsys)
    one_line_error(code, err, "not in the model's vocabulary")


def test_an_acrostic_and_a_continuation_are_templates(capsys):
    """The bundled model, the same seed: the template writes the very poems the options write."""

    def poems(args):
        code, out, _ = run(["generate", "--n", "4", "--seed", "3", "--json", *args], capsys)
        assert code == 0
        return [p["text"] for p in json.loads(out)["poems"]], json.loads(out)

    by_acrostic, _ = poems(["--form", "wujue", "--acrostic", "春夏秋冬"])
    by_template, doc = poems(["--template", "春□□□□，夏□□□□。秋□□□□，冬□□□□。"])
    assert by_template == by_acrostic and doc["form"] == "wujue" and doc["template"].startswith("春□")
    by_start, _ = poems(["--form", "qijue", "--start", "朝辭白帝彩雲間，千里江陵一日還。"])
    by_template, _ = poems(["--template", "朝辞白帝彩云间，千里江陵一日还。□□□□□□□，□□□□□□□。"])
    assert by_template == by_start  # simplified input read as traditional, as --start reads it


# ---- revise: lines of a whole poem written again, ranked by the whole poem's score
JINGYESI = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"


def _lines(text):
    return [ln for ln in text.replace("。", "，").split("，") if ln]


def test_revise_rewrites_only_the_lines_named_and_ranks_by_the_whole_poem(capsys):
    from fastapi.testclient import TestClient

    from tangshi.model.bundled import bundled_model_path
    from tangshi.model.checkpoint import load_checkpoint
    from tangshi.serve.app import create_app

    code, out, _ = run(
        ["generate", "--template", JINGYESI, "--revise", "3", "--candidates", "6", "--n", "4", "--json"], capsys
    )
    doc = json.loads(out)
    assert code == 0 and doc["revise"] == "3" and doc["form"] == "wujue"
    kept = _lines(JINGYESI)
    model, vocab, _ = load_checkpoint(bundled_model_path())
    scores = []
    for p in doc["poems"]:
        got = _lines(p["text"])
        assert [got[0], got[1], got[3]] == [kept[0], kept[1], kept[3]], p["text"]
        # the score is the mean log-probability of every token of the whole poem, the kept line 4 included
        ids = vocab.encode(p["text"]) + [vocab.eos_id]
        with torch.no_grad():
            logits, state = model.step(torch.tensor([vocab.start_id]), None)
            total = 0.0
            for tok in ids:
                total += float(torch.log_softmax(logits[0].double(), 0)[tok])
                logits, state = model.step(torch.tensor([tok]), state)
        assert abs(p["score"] - total / len(ids)) < 1e-4
        scores.append(p["reader_score"])
    assert scores == sorted(scores, reverse=True)
    assert len({_lines(p["text"])[2] for p in doc["poems"]}) > 1  # several versions of line 3
    # the same through the web API, candidates 8 by default
    client = TestClient(create_app(model, vocab, workers=1, queue=2))
    r = client.post("/api/revise", json={"template": JINGYESI, "revise": "3,4", "n": 2})
    assert r.status_code == 200 and r.json()["candidates"] == 8
    assert all(_lines(p["text"])[:2] == kept[:2] for p in r.json()["poems"])
    r = client.post("/api/revise", json={"template": JINGYESI})
    assert r.status_code == 422 and r.json()["field"] == "revise"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--revise", "2", "--form", "wujue"], "give the poem with --template"),
        (["--template", JINGYESI, "--revise", "5"], "from 1 to 4"),
        (["--template", JINGYESI, "--revise", "x"], "line numbers such as 3"),
    ],
)
def test_bad_revisions_are_one_error(args, words, capsys):
    code, _, err = run(["generate", *args], capsys)
    one_line_error(code, err, words)
