"""tangshi gradcheck --exercise: the stubs fail, the reference solution passes, and a solution with
the assignment's own error (no cell-state path back in time) fails where that error lives."""

from pathlib import Path

import pytest

from conftest import one_line_error, run
from tangshi.lesson import exercise_solution, exercises
from tangshi.lesson.exercise_grader import grade

SOLUTION = Path(exercise_solution.__file__)


def test_the_stubs_fail_and_the_solution_passes():
    assert [r["ok"] for r in grade(exercises)] == [False, False, False]
    assert all("not written yet" in r["why"] or "needs step_forward" in r["why"] for r in grade(exercises))
    assert [r["ok"] for r in grade(exercise_solution)] == [True, True, True]


def test_the_assignments_error_is_caught(tmp_path, capsys):
    # δC_t without δC_{t+1} ⊙ f_{t+1}: the assignment's forgotten cell-state path
    text = SOLUTION.read_text(encoding="utf-8")
    wrong = text.replace("dC = dh_t * o * (1 - tanhC**2) + dC_next * f_next", "dC = dh_t * o * (1 - tanhC**2)")
    assert wrong != text
    path = tmp_path / "wrong.py"
    path.write_text(wrong, encoding="utf-8")
    code, out, err = run(["gradcheck", "--exercise", path], capsys)
    assert code == 1 and err.strip() == "tangshi: error: exercise not passed yet: step_backward, bptt"  # graded
    assert "step_forward   pass" in out and "step_backward  FAIL" in out and "bptt           FAIL" in out, out
    assert "differs from the reference" in out


def test_cli_both_ways_and_the_stub_file(tmp_path, capsys):
    code, out, _ = run(["gradcheck", "--exercise", SOLUTION], capsys)
    assert code == 0 and "3 of 3 pass" in out
    mine = tmp_path / "my_lstm.py"
    code, out, _ = run(["gradcheck", "--write-exercise", mine], capsys)
    assert code == 0 and mine.read_text(encoding="utf-8") == Path(exercises.__file__).read_text(encoding="utf-8")
    code, out, err = run(["gradcheck", "--exercise", mine], capsys)
    assert code == 1 and "0 of 3 pass" in out and err.count("\n") == 1
    mine.write_text("my work", encoding="utf-8")
    code, _, err = run(["gradcheck", "--write-exercise", mine], capsys)
    one_line_error(code, err, "exists")
    assert mine.read_text(encoding="utf-8") == "my work"  # nothing overwritten


@pytest.mark.parametrize(
    "content, words",
    [(None, "exercise file not found"), ("def step_forward(:\n", "cannot load"), ("x = 1\n", "defines no")],
)
def test_bad_exercise_files_are_one_error(tmp_path, capsys, content, words):
    path = tmp_path / "ex.py"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, _, err = run(["gradcheck", "--exercise", path], capsys)
    one_line_error(code, err, words)
