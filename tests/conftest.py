"""Shared fixtures: tiny corpora written by the tests themselves."""

import hashlib
import json
import os
import random
from pathlib import Path

import pytest

from tangshi.cli.main import main

SHARED_POEMS = Path(__file__).resolve().parents[2] / "shared" / "chinese-poetry" / "quantangshi"
TINY_CHARS = "春江花月夜山水風雲日明白雪青天下人間何處不見長安城中秋"


def write_tiny_corpus(folder: Path, n: int = 60, seed: int = 0) -> Path:
    """n five-character quatrains over 30 characters, in chinese-poetry's JSON shape."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    poems = []
    for i in range(n):
        lines = ["".join(rng.choice(TINY_CHARS) for _ in range(5)) + ("，" if k % 2 == 0 else "。") for k in range(4)]
        poems.append(
            {
                "author": "無名",
                "title": f"詩{i}",
                "paragraphs": [lines[0] + lines[1], lines[2] + lines[3]],
                "id": str(i),
            }
        )
    (folder / "poet.tang.0.json").write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture
def tiny_source(tmp_path):
    return write_tiny_corpus(tmp_path / "raw")


@pytest.fixture
def tiny_prepared(tmp_path, tiny_source):
    from tangshi.data.prepare import prepare

    prepare(tiny_source, tmp_path / "prep", None, 0)
    return tmp_path / "prep"


# ---------------------------------------------------------------------------- the browser test, said aloud
_BROWSER = {}


def pytest_runtest_logreport(report):
    if report.nodeid.endswith("test_page_in_chromium") and (report.when == "call" or report.outcome != "passed"):
        _BROWSER["outcome"] = report.outcome
        _BROWSER["why"] = (
            report.longrepr[2] if report.outcome == "skipped" and isinstance(report.longrepr, tuple) else ""
        )


def pytest_terminal_summary(terminalreporter):
    if _BROWSER:  # so that a CI log shows whether the page was driven in Chromium, not just a dot
        terminalreporter.write_line(
            f"browser test (Playwright, /usr/bin/chromium): {_BROWSER['outcome']}"
            + (f" ({_BROWSER['why']})" if _BROWSER["why"] else "")
        )


# ---------------------------------------------------------------------------- the command line's error paths
def run(argv, capsys):
    """`tangshi ARGV` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *patterns):
    """An error as every command gives one: exit status 2, one line on stderr, no traceback."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("tangshi: error:"), err
    assert "Traceback" not in err
    for p in patterns:
        assert p in lines[0], (p, err)


def tree(folder):
    """Every entry under `folder`: a file as the sha256 of its bytes, a link as its target, a folder as such:
    equal before and after means nothing was touched."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, folder)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = "folder"
            else:
                out[rel] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out
