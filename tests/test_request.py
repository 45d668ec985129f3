"""One typed request: `PoemRequest()` / `CoupletRequest()`, the command line's parser and the
web API's pydantic models hold the same defaults, field by field, and a request is checked once."""

import dataclasses

import pytest

from tangshi.cli.main import build_parser
from tangshi.decode.request import CoupletRequest, PoemRequest, web_fields
from tangshi.errors import TangshiError
from tangshi.serve.app import _request_model


@pytest.mark.parametrize("cls, argv", [(PoemRequest, ["generate"]), (CoupletRequest, ["couplet", "春風"])])
def test_library_cli_and_web_defaults_agree(cls, argv):
    lib = cls() if cls is PoemRequest else cls(first="春風")
    ns = build_parser().parse_args(argv)
    cli = cls.from_namespace(ns)
    assert cli == lib  # every field, the positional included
    body = _request_model("Body", cls).model_validate({"first": "春風"} if cls is CoupletRequest else {})
    web = body.model_dump()
    web_names = {f.name for f, _ in web_fields(cls)}
    assert set(web) == web_names
    for f in dataclasses.fields(cls):
        if f.name in web_names:
            assert web[f.name] == getattr(lib, f.name), f.name
    # the one field the web leaves out is the process's own setting
    assert {f.name for f in dataclasses.fields(cls)} - web_names == {"precision"}


def test_cli_defaults_are_the_ones_the_help_promises():
    r = PoemRequest()
    assert (r.temperature, r.top_p, r.top_k, r.strategy, r.form, r.tone, r.n) == (
        0.8,
        0.9,
        0,
        "sample",
        "free",
        "off",
        1,
    )
    assert CoupletRequest(first="x").tone == "strict"


def test_old_names_still_parse():
    ns = build_parser().parse_args(["generate", "--strategy", "seed", "--start", "春", "--no-no-repeat"])
    r = PoemRequest.from_namespace(ns)
    assert r.strategy == "original" and r.allow_repeats is True
    ns = build_parser().parse_args(["generate", "--no-repeat"])
    assert PoemRequest.from_namespace(ns).allow_repeats is False


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"temperature": 0}, "--temperature"),
        ({"n": 0}, "--n"),
        ({"form": "sonnet"}, "unknown form 'sonnet'"),
        ({"candidates": 3, "strategy": "greedy"}, "--candidates"),
        ({"script": "latin"}, "unknown script"),
        ({"top_p": 1.5}, "--top-p"),
    ],
)
def test_a_bad_request_is_refused_when_built(kwargs, fragment):
    with pytest.raises(TangshiError, match=fragment.replace("-", r"\-")):
        PoemRequest(**kwargs)


def test_requests_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PoemRequest().n = 3  # type: ignore[misc]
