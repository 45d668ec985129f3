"""The command-line rows of the hostile user's report, each reproduced: bad text where it enters
(arguments, standard input), wrong answers that exited 0, and messages that named the wrong thing.
Every error is one line on stderr, exit status 2, and no traceback. (The folder rows are in
test_hostile_files.py, the HTTP rows in test_serve.py.)"""

import json
import subprocess
import sys

import pytest

from conftest import one_line_error, run

SURROGATE = "\udcff"  # what Python makes of the byte 0xff in an argument (surrogateescape)


@pytest.mark.parametrize("option", ["--start", "--acrostic", "--keywords", "--rhyme-group"])
def test_a_lone_surrogate_in_generate_is_refused_naming_the_option(option, capsys):
    one_line_error(*run(["generate", "--form", "wujue", option, "春" + SURROGATE], capsys)[::2], option, "UTF-8")
    one_line_error(*run(["generate", f"{option}=春{SURROGATE}"], capsys)[::2], option)


@pytest.mark.parametrize("option", ["--keywords", "--start", "--acrostic"])
def test_a_lone_surrogate_in_metrics_is_refused(option, tmp_path, capsys):
    f = tmp_path / "p.txt"
    f.write_text("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。\n", encoding="utf-8")
    one_line_error(*run(["metrics", f, option, SURROGATE], capsys)[::2], option)


def _metrics_stdin(data: bytes):
    return subprocess.run(
        [sys.executable, "-m", "tangshi", "metrics", "-"], input=data, capture_output=True, timeout=120
    )


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\xed\xa0\x80\n", "standard input is not UTF-8 text"),
        (b"\xff\xfe\n", "standard input is not UTF-8 text"),
        (b"", "no poems in standard input"),
    ],
)
def test_metrics_refuses_bad_or_empty_standard_input_as_it_refuses_a_file(data, words):
    res = _metrics_stdin(data)
    err = res.stderr.decode()
    one_line_error(res.returncode, err, words)


def test_metrics_refuses_a_special_file():
    res = subprocess.run([sys.executable, "-m", "tangshi", "metrics", "/dev/null"], capture_output=True, text=True)
    one_line_error(res.returncode, res.stderr, "/dev/null is not a regular file")


def test_metrics_applies_generates_request_checks(tmp_path, capsys):
    f = tmp_path / "p.txt"
    f.write_text("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。\n", encoding="utf-8")
    one_line_error(
        *run(["metrics", f, "--form", "wujue", "--acrostic", "春夏", "--at", "1"], capsys)[::2],
        "acrostic '春夏' has 2 characters but a 五言絕句 has 4 lines",
    )
    one_line_error(*run(["metrics", f, "--at", "3"], capsys)[::2], "--at 3", "no --acrostic")
    one_line_error(*run(["metrics", f, "--form", "wujue", "--acrostic", "白黃欲更", "--at", "9"], capsys)[::2], "--at")
    assert run(["metrics", f, "--form", "wujue", "--acrostic", "白黃欲更", "--json"], capsys)[0] == 0


@pytest.mark.parametrize("only", ["nonsense", "", "tangshi,nonsense", ","])
def test_bench_refuses_rows_it_does_not_have(only, capsys):
    one_line_error(*run(["bench", "--only", only], capsys)[::2], "--only: unknown row")


def test_bench_generation_rows_need_only_a_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/prepared here
    code, out, err = run(["bench", "--only", "gen_couplet", "--repeats", "1", "--warmup", "0", "--json"], capsys)
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)["results"]] == ["gen_couplet"]
    code, _, err = run(["bench", "--only", "seed", "--repeats", "1", "--warmup", "0"], capsys)  # the older name
    one_line_error(code, err, "prepared")  # a training row does need the split, and says so


def test_simplified_input_is_read_whole_as_traditional(capsys):
    """The one script rule, on the 黄/黃 case: 黄 is also in the vocabulary (some poems spell it so),
    but in a simplified text it is read 黃, with the text's other characters."""
    code, out, err = run(["couplet", "两个黄鹂鸣翠柳", "--n", "1", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["couplets"][0]["first"] == "兩個黃鸝鳴翠柳"
    code, out, err = run(["generate", "--form", "wujue", "--start", "白日依山尽，黄河", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["poems"][0]["text"].startswith("白日依山盡，黃河")
    code, out, err = run(["couplet", "咸陽遊俠多少年", "--n", "1", "--json"], capsys)  # traditional: kept as typed
    assert code == 0, err
    assert json.loads(out)["couplets"][0]["first"] == "咸陽遊俠多少年"


def test_resume_with_nothing_to_resume_says_so(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for out in (tmp_path / "run", tmp_path / "absent"):
        one_line_error(*run(["train", "--out", out, "--resume"], capsys)[::2], f"nothing to resume in {out}")


ERROR_PATHS = [
    ["generate", "--n", "0"],
    ["generate", "--form", "sonnet"],
    ["generate", "--start", "abc", "--form", "wujue"],
    ["generate", "--temperature", "nan"],
    ["couplet", "白日ab"],
    ["metrics", "/nonexistent/poems.json"],
    ["train", "--data", "/nonexistent", "--out", "/tmp/tangshi-never"],
    ["eval", "--checkpoint", "/nonexistent"],
    ["generate", "--checkpoint", "/etc/hostname"],
    ["export", "--checkpoint", "/nonexistent", "--out", "/tmp/x-never"],
    ["bench", "--only", "nope"],
    ["gradcheck", "--seed", "-1"],
    ["data", "prepare", "--source", "/nonexistent"],
    ["generate", "--acrostic", "春夏", "--form", "wujue"],
    ["generate", "--start", "\udcff"],
]


@pytest.mark.parametrize("argv", ERROR_PATHS, ids=lambda a: " ".join(a)[:40])
def test_no_error_path_prints_a_traceback(argv):
    """The error paths above, as a user runs them (a fresh process): one line, exit 2, no traceback."""
    res = subprocess.run(
        [sys.executable, "-m", "tangshi", *argv],
        capture_output=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/tmp"},
    )
    err = res.stderr.decode("utf-8", "replace")
    one_line_error(res.returncode, err)


def test_generate_refuses_at_without_an_acrostic_as_metrics_does(capsys):
    one_line_error(*run(["generate", "--at", "3"], capsys)[::2], "--at 3", "no --acrostic")
    assert run(["generate", "--at", "3", "--acrostic", "春夏秋冬", "--form", "wujue"], capsys)[0] == 0


@pytest.mark.parametrize("field", ["start", "acrostic", "keywords", "rhyme_group"])
def test_a_python_caller_gets_the_same_check(field):
    import tangshi

    with pytest.raises(tangshi.TangshiError, match=f"--{field.replace('_', '-')}: it is not valid UTF-8"):
        tangshi.PoemRequest(**{field: "春" + SURROGATE})
