"""The house's shape, checked: every module imports; every subcommand answers --help; the rooms
(subpackages and top-level modules) form an import graph of at most 20 nodes with no cycle and no
import from a lower room up to a higher one; modules and functions stay small; the README is short
and every page it links exists."""

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tangshi
from tangshi.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "tangshi"
# the rooms from the bottom up: a room may import only rooms before it in this list
ORDER = [
    "errors",
    "text",
    "machine",
    "files",
    "outputs",
    "verse",
    "data",
    "model",
    "lesson",
    "train",
    "decode",
    "api",
    "experiments",
    "serve",
    "cli",
    "__main__",
    "__init__",
]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(tangshi.__path__, "tangshi.") if not m.name.endswith("__main__")]


@pytest.mark.parametrize("name", _modules())
def test_every_module_imports(name):
    importlib.import_module(name)


def _subcommands(parser, prefix=()):
    """Every (sub)command path of the parser, e.g. ("data", "fetch")."""
    import argparse

    for action in parser._actions:  # the test reads argparse's tree; the code never does
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommands(sub, (*prefix, name))


def test_every_subcommand_answers_help():
    paths = list(_subcommands(build_parser()))
    # data, data fetch, data prepare, data habits, data topics, train, eval, generate, couplet, serve, metrics,
    # bench, experiment, export, gradcheck
    assert len(paths) == 15
    for path in paths:
        res = subprocess.run(
            [sys.executable, "-m", "tangshi", *path, "--help"], capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 0 and res.stdout.startswith("usage: tangshi"), (path, res.stderr[-300:])


def _room(path: Path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def _room_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for p in PKG.rglob("*.py"):
        src = _room(p)
        edges.setdefault(src, set())
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tangshi"):
                names = [node.module] if node.module != "tangshi" else [f"tangshi.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("tangshi.")]
            assert not (isinstance(node, ast.ImportFrom) and node.level and not str(p).count("constraints")), p
            for n in names:
                dst = n.split(".")[1] if "." in n else "__init__"
                if dst != src:
                    edges[src].add(dst)
    return edges


def test_rooms_form_a_small_graph_that_only_points_down():
    edges = _room_graph()
    assert set(edges) == set(ORDER), set(edges) ^ set(ORDER)
    assert len(edges) <= 20
    for src, dsts in edges.items():
        for dst in dsts:
            assert ORDER.index(dst) < ORDER.index(src), f"{src} imports {dst}, a room above it"


def test_each_room_says_what_it_holds_and_may_import():
    for init in PKG.glob("*/__init__.py"):
        if init.parent.name in ("kernels",):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "May import" in doc and len(doc.splitlines()) >= 3, init


def test_modules_and_functions_are_small():
    """Every module and function over its limit is named at once (not only the first one found)."""
    over = []
    for p in sorted(PKG.rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            over.append(f"{p.relative_to(ROOT)} has {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    over.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} has {n} lines")
    assert not over, "over the limits:\n" + "\n".join(over)


def test_readme_is_short_and_its_links_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    local = [u for u in links if not u.startswith("http")]
    assert any(u.startswith("docs/") for u in local)
    for u in local:
        assert (ROOT / u).exists(), u
    for page in ("commands", "outputs", "results", "training", "speed", "serve", "lstm-backprop"):
        assert f"docs/{page}.md" in local, page


def test_the_parser_does_not_import_torch():
    """The one measured reason for deferred imports (cli/commands.py): `tangshi --help` and a
    mistyped option answer without torch (about 0.1 s instead of about 2 s)."""
    code = "import sys; from tangshi.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr[-500:]
