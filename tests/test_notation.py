"""One symbol, one meaning: the notation table of docs/lstm-backprop.md against the code a learner
reads beside it (lesson/reference_lstm.py, the exercises) and what `tangshi gradcheck` prints."""

import re
from pathlib import Path

import pytest

from tangshi.experiments import backprop, backprop_report
from tangshi.lesson import (
    exercise_grader,
    exercises,
    gradcheck,
    gradcheck_text,
    gradient_errors,
    numpy_lstm,
    reference_lstm,
)
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
# every other symbol of the table, each with the second meaning it once had somewhere in these texts:
# g a gradient, ε a constant (the table's is ε_t), h a finite-difference step, s a matrix's scale,
# c a clipping threshold, L the loss (L counts layers), p a parameter (p_t are probabilities), W_ih
# PyTorch's stacked input weights (the table's W_ih is the input gate's recurrent matrix), ∂E/∂h_t only
# the part from above (it is δh_t)
SECOND_MEANINGS = {
    "g as a gradient": re.compile(r"\bg_seed\b|\bg_fd\b|‖g\b|\|\|g\b|\|g\s*[−-]"),
    "ε without its t": re.compile(r"ε(?![_ₜ{])"),
    "h as a step": re.compile(r"\bh\s*=\s*\d|\bw\s*[+−-]\s*2?h\b"),
    "s as a scale": re.compile(r"\bs\s*=\s*\d|\bs\s*·\s*σ"),
    "c as a threshold": re.compile(r"threshold c\b|\bc\s*/\s*‖"),
    "L as the loss": re.compile(r"\bL\s*\(\s*w"),
    "p as a parameter": re.compile(r"\|p\s*[−-]\s*p_|\bp_torch\b|\bp_numpy\b"),
    "W_ih as the input weights": re.compile(
        r"\bd?W_ih\s*(?:\.T\b|\.shape|ᵀ\s*x|:\s|=)|\bx\w*\s*(?:@\s*)?W_ih\b|input weights?\W{0,3}W_ih\b"
    ),
    "∂E/∂h_t as the part from above": re.compile(
        r"(?:=|is)\s+∂E/∂h_t\s+from\s+(?:above|outside)|∂E/∂h_t\s+from\s+above\s+is"
    ),
}


@pytest.fixture(scope="module")
def texts():
    gc = run_gradcheck(0)
    return {
        "reference_lstm.py": Path(reference_lstm.__file__).read_text(encoding="utf-8"),
        **{
            f"{m.__name__.rsplit('.', 1)[-1]}.py": Path(m.__file__).read_text(encoding="utf-8")
            for m in (numpy_lstm, gradcheck, gradcheck_text, gradient_errors)
        },
        "the backprop study's report": (ROOT / "reports" / "backprop.md").read_text(encoding="utf-8"),
        "the backprop study's code": Path(backprop.__file__).read_text(encoding="utf-8")
        + Path(backprop_report.__file__).read_text(encoding="utf-8"),
        "gradient_paths_figure.py": (ROOT / "scripts" / "gradient_paths_figure.py").read_text(encoding="utf-8"),
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


def test_no_other_symbol_of_the_table_has_a_second_meaning(texts):
    for name, text in texts.items():
        for meaning, pattern in SECOND_MEANINGS.items():
            bad = [m.group(0) for m in pattern.finditer(text)]
            assert not bad, f"{name} uses {meaning}: {bad[:5]}"


@pytest.mark.parametrize(
    "meaning, old",
    [  # each text as it stood before it was mended, so each pattern is seen to fire
        ("g as a gradient", "the assignment's errors, ||g_seed - g|| / ||g||:"),
        ("g as a gradient", "The reported error is `|g − g_fd| / max(|g|, |g_fd|, 1e-5)`."),
        ("ε without its t", "7. **Its Adam puts ε inside the square root**: `m̂ / √(v̂ + ε)`"),
        ("h as a step", "`(−E(w+2h) + 8E(w+h) − 8E(w−h) + E(w−2h)) / 12h` with `h = 1e-3`"),
        ("s as a scale", "by roughly `(s · σ̄′)^k`, with `s` the scale of `W_gh`; at s = 2 and 4"),
        ("c as a threshold", "exceeds a threshold c, every gradient is scaled by `c / ‖g‖`"),
        ("L as the loss", "(-L(w+2h) + 8 L(w+h) - 8 L(w-h) + L(w-2h)) / 12h with h = FD_STEP"),
        ("p as a parameter", "optimisers vs torch.optim, 10 steps, max |p - p_torch|"),
        ("W_ih as the input weights", "layer.W_x[g] = weight_ih[:, cols].T.copy()  # x W_ih (row vectors) = (W_ihᵀ x)"),
        ("W_ih as the input weights", "np.matmul(dZ, W_ih.T, out=dx)"),
        ("W_ih as the input weights", "so the input weights W_ih are the only weights that see the input"),
        ("∂E/∂h_t as the part from above", "The backward pass takes δh_t = ∂E/∂h_t from above (the output layer"),
        ("∂E/∂h_t as the part from above", "dh_above[t−1] is ∂E/∂h_t\n    from outside the recurrence."),
    ],
)
def test_each_second_meaning_is_caught(meaning, old):
    assert SECOND_MEANINGS[meaning].search(old)


def test_the_tables_own_uses_pass():
    ok = "i_t = σ(W_ih h_{t−1} + W_ix x_t + b_i); (`W_fh, W_ih, W_ch, W_oh`); ε_t arrives from above; h_t, p_t"
    assert not any(p.search(ok) for p in SECOND_MEANINGS.values())
