"""The public Python API (`tangshi.load`, `Poet.write`, `Poet.couplet`): the same poems as the
command line for the same request, typed results, and the README's example run as written."""

import json
import re
from pathlib import Path

import pytest

import tangshi
from tangshi.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def poet():
    return tangshi.load()


def test_write_gives_the_command_lines_poems(poet, capsys):
    got = poet.write(tangshi.PoemRequest(form="qijue", acrostic="春夏秋冬", n=3, seed=5))
    assert main(["generate", "--form", "qijue", "--acrostic", "春夏秋冬", "--n", "3", "--seed", "5", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["poems"]
    assert [p.text for p in got] == [p["text"] for p in cli]
    for p, c in zip(got, cli, strict=True):
        assert (
            p.lines == tuple(c["lines"]) and p.rhyme_group == c["rhyme_group"] and p.tone_pattern == c["tone_pattern"]
        )
        assert [ln[0] for ln in p.lines] == list("春夏秋冬")  # the acrostic, read off the typed result
        assert p.valid_form is True and p.score is None


def test_write_with_settings_and_candidates_is_ranked(poet):
    got = poet.write(form="wujue", n=2, candidates=3)
    assert len(got) == 2 and got[0].score >= got[1].score


def test_couplet_gives_the_command_lines_couplet(poet, capsys):
    (c,) = poet.couplet(tangshi.CoupletRequest(first="春風又綠江南岸", seed=2))
    assert main(["couplet", "春風又綠江南岸", "--seed", "2", "--json"]) == 0
    (cli,) = json.loads(capsys.readouterr().out)["couplets"]
    assert (c.first, c.second, c.opposed, c.checked) == (cli["first"], cli["second"], cli["opposed"], cli["checked"])
    assert len(c.second) == len(c.first) == 7


def test_a_bad_request_raises_one_error(poet):
    with pytest.raises(tangshi.TangshiError, match="--n"):
        poet.write(n=0)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        tangshi.nothing_here  # noqa: B018


def test_readme_python_example_runs_as_written(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README has a Python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.strip(), "the example prints its poems"
