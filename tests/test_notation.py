"""One symbol, one meaning: the notation table of docs/lstm-backprop.md against the code a learner
reads beside it (lesson/reference_lstm.py, the exercises) and what `tangshi gradcheck` prints."""

import re
from pathlib import Path

import pytest

from tangshi.lesson import exercise_grader, exercises, reference_lstm
from tangshi.lesson.gradcheck import format_gradcheck, run_gradcheck
from tangshi.lesson.worked_example import format_worked_example, run_worked_example
from tangshi.lesson.worked_example_h2 import format_worked_example_h2, run_worked_example_h2

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "lstm-backprop.md").read_text(encoding="utf-8")
NOTATION = DOC.split("## Notation", 1)[1].split("\n## ", 1)[0]

# E in a shape or a size: "(E, 1)", "(H, E)", "E=6", "E = 2", "E != H"
E_AS_A_SIZE = re.compile(r"\(\s*E\s*,|,\s*E\s*\)|\bE\s*=\s*\d|\bE\s*!=")
# g names any gate of {f, i, c, o}; the candidate cell's pre-activation is z_c, not z_g
G_AS_A_GATE = re.compile(r"\bd?z_g\b")


@pytest.fixture(scope="module")
def texts():
    gc = run_gradcheck(0)
    return {
        "reference_lstm.py": Path(reference_lstm.__file__).read_text(encoding="utf-8"),
        "exercises.py": Path(exercises.__file__).read_text(encoding="utf-8"),
        "exercise_grader.py": Path(exercise_grader.__file__).read_text(encoding="utf-8"),
        "gradcheck output": format_gradcheck(gc, full=True),
        "worked example output": format_worked_example(run_worked_example()),
        "two-unit worked example output": format_worked_example_h2(run_worked_example_h2()),
        "the derivation": DOC,
    }


def test_the_table_says_what_each_size_is():
    sizes = NOTATION.split("**Sizes**", 1)[1].split("\n*", 1)[0]
    assert "embedding width `D`" in sizes and "`E` is the loss and nothing else" in sizes
    assert "| `W_gx` | H × D |" in NOTATION and "gate `g ∈ {f, i, c, o}`" in NOTATION


def test_e_is_only_the_loss(texts):
    for name, text in texts.items():
        bad = [m.group(0) for m in E_AS_A_SIZE.finditer(text)]
        assert not bad, f"{name} uses E as a size: {bad[:5]}"


def test_g_is_only_any_gate(texts):
    for name, text in texts.items():
        bad = [m.group(0) for m in G_AS_A_GATE.finditer(text)]
        assert not bad, f"{name} uses g for one gate: {bad[:5]}"


def test_the_code_uses_the_tables_shapes():
    layer = reference_lstm.LstmLayer(input_width=2, state_width=3)
    assert layer.W_x["f"].shape == (3, 2) and layer.W_h["f"].shape == (3, 3) and layer.b["f"].shape == (3, 1)
    assert layer.D == 2 and not hasattr(layer, "E")


def test_the_check_catches_a_second_meaning():
    assert E_AS_A_SIZE.search("x_t, each (E, 1)") and E_AS_A_SIZE.search("V=11 E=6 H=6")
    assert not E_AS_A_SIZE.search("δh_t = ∂E/∂h_t, E = ½ (h_2 − y)²") and G_AS_A_GATE.search("# eq (15) dz_g")
