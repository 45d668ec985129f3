"""One request for poems (`PoemRequest`) or for the 下联 of a couplet (`CoupletRequest`): frozen
dataclasses holding every setting of a request, each field with its default, its help and its
choices in the field's metadata, checked once when the request is built (as whisper's
`DecodingOptions` is). The command line's options (`add_options`) and the web API's pydantic
models (`tangshi.serve.app`) are generated from these fields, so the library, `tangshi generate`
and POST /api/poems have the same defaults by construction.

The checks every request shares (`check_request`) and the JSON fields that follow its records
(`header`) live here too; `tangshi.decode.poems` turns a request into its records (`PoemTask`,
`CoupletTask`, `records`).

This module is imported to build the command line's parser, so it imports the decoder (and with it
torch, about 1.5 s) only inside the functions that check a request: `tangshi --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tangshi.errors import TangshiError, check_number
from tangshi.model.spec import OLD_NAMES
from tangshi.text import FORM_NAMES, unicode_problem
from tangshi.verse.parallel import COUPLET_WEIGHT, POEM_WEIGHT, check_weight
from tangshi.verse.topics import TOPIC_WEIGHT
from tangshi.verse.topics import check_weight as check_topic

if TYPE_CHECKING:
    from tangshi.decode.search import DecodeOptions

STRATEGY_ALIASES = OLD_NAMES  # the course assignment's procedure, by its older name
TONES = ("strict", "loose", "off")
SCRIPTS = ("traditional", "simplified")


def _opt(
    default,
    help: str,
    *,
    choices: tuple | None = None,
    aliases: dict | None = None,
    web: bool = True,
    flag: str | None = None,
    hidden: tuple = (),
    positional: str | None = None,
):
    """A request field: its default and how the command line and the web API present it.
    flag: the long option ("--" + the name with dashes by default); hidden: (option, value) pairs
    accepted for backward compatibility and not shown; web=False: a setting of the process that
    the command line takes and the web API does not (the decoding precision)."""
    meta = {
        "help": help,
        "choices": choices,
        "aliases": aliases or {},
        "web": web,
        "flag": flag,
        "hidden": hidden,
        "positional": positional,
    }
    return field(default=default, metadata=meta)


_DECODING_HELP = {
    "temperature": "sampling temperature (default 0.8)",
    "top_k": "sample from the k most probable characters (0 = off)",
    "top_p": "sample from the smallest set of probability p (default 0.9)",
    "beam": "beam width (default 4)",
    "seed": "random seed: the same seed writes the same {what} (default 0)",
    "n": "how many {what}; they are written 256 at a time and printed as each batch finishes "
    "(with --json the output is one JSON object, streamed)",
    "candidates": "sample K for each one returned and return the best by mean log-probability per token "
    "(shown as score); --n N returns the N best of N·K",
    "script": "the script of the output (input may be either; default traditional)",
    "precision": "the decoding step's matrix products: int8 (fbgemm dynamic quantisation, the default on x86 "
    "CPUs) or fp32 (the default elsewhere, and for the assignment's procedure, which it reproduces)",
}


@dataclass(frozen=True, kw_only=True)
class _Decoding:
    """The settings every request shares: decoding, how many, the output's script."""

    WHAT: typing.ClassVar[str] = "poems"
    # sampling
    strategy: str = "sample"  # redefined by each request with its own choices
    temperature: float = _opt(0.8, _DECODING_HELP["temperature"])
    top_k: int = _opt(0, _DECODING_HELP["top_k"])
    top_p: float = _opt(0.9, _DECODING_HELP["top_p"])
    beam: int = _opt(4, _DECODING_HELP["beam"])
    seed: int = _opt(0, _DECODING_HELP["seed"])
    # how many, and ranking
    n: int = _opt(1, _DECODING_HELP["n"])
    candidates: int | None = _opt(None, _DECODING_HELP["candidates"])
    # output
    script: str = _opt("traditional", _DECODING_HELP["script"], choices=SCRIPTS)
    # implementation detail: how the step computes, not what it writes (not a web field)
    precision: str | None = _opt(None, _DECODING_HELP["precision"], choices=("fp32", "int8"), web=False)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            why = unicode_problem(value) if isinstance(value, str) else None
            if why is not None:  # text that entered as bytes that are not UTF-8 (a Python caller's)
                raise TangshiError(f"--{f.name.replace('_', '-')}: {why}")
            if meta.get("aliases") and value in meta["aliases"]:
                object.__setattr__(self, f.name, meta["aliases"][value])
            elif meta.get("choices") and value is not None and value not in meta["choices"]:
                raise TangshiError(
                    f"unknown {f.name.replace('_', ' ')} {value!r} (choose from {', '.join(meta['choices'])})"
                )
        check_request(self.decode_options(), self.n, self.script, self.candidates)

    def decode_options(self) -> DecodeOptions:
        """The sampling settings, as the decoder takes them (checked there: the numbers' ranges)."""
        from tangshi.decode.search import DecodeOptions

        return DecodeOptions(
            strategy=self.strategy,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            beam=self.beam,
            seed=self.seed,
            precision=self.precision,
        )

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace):
        """The request an argparse namespace of `add_options(parser, cls)` holds."""
        return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True, kw_only=True)
class PoemRequest(_Decoding):
    """Every setting of one request for poems (`tangshi generate`, POST /api/poems)."""

    # what to write
    title: str | None = _opt(
        None,
        "write on this title or subject (送友人, 秋夜): the model reads it before the poem (a model trained "
        "with titles, as the bundled one is); each poem carries it",
    )
    topic: float = _opt(
        TOPIC_WEIGHT,
        "with --title: weight of the title's words, the characters real poems of titles with these characters "
        f"use more than poems do in general (0 = off, at most 10; default {TOPIC_WEIGHT:g})",
    )
    form: str = _opt(
        "free", "五言绝句 4×5, 七言绝句 4×7, 五言律诗 8×5, 七言律诗 8×7, or free (default free)", choices=FORM_NAMES
    )
    start: str = _opt(
        "",
        "the poem begins with this text: any number of whole lines, each with its '，' or '。', "
        "and part of the next (a continuation)",
    )
    acrostic: str | None = _opt(None, "line k holds the k-th character at position --at (藏头 by default)")
    at: int = _opt(
        1, "the acrostic's position in each line: 1 = first (藏头, default), -1 = last (藏尾), any position between"
    )
    template: str | None = _opt(
        None,
        "the whole poem with □ (or ＿) for each character to write and any other character fixed, "
        "its marks giving the form (□□□□□，□□□□□。…); fixed characters anywhere are honoured, "
        "later ones included (rhyme, tones, repeats)",
    )
    revise: str | None = _opt(
        None,
        "with --template (a whole poem): write these lines again (1-based: 3, or 3,4) and keep the rest; "
        "with --candidates K the K versions are ranked by the whole poem's score, the lines after them included",
    )
    keywords: str | None = _opt(
        None,
        "every one of these characters appears in the poem: in a form, each on a line of its own when "
        "there are enough lines, at a place in the line where Tang poets put it",
    )
    # the rules of the form
    rhyme: bool | None = _opt(None, "even lines rhyme in one 平水韵 平声 group (default on for the four forms)")
    rhyme_group: str | None = _opt(
        None,
        "rhyme in this 平水韵 平声 group: by name (東, 一東, 上平聲一東) or by one of "
        "its characters (see --list-rhyme-groups)",
    )
    tone: str = _opt("off", "平仄 of regulated verse: strict masks, loose prefers (default off)", choices=TONES)
    parallel: float = _opt(
        POEM_WEIGHT,
        "weight of 對仗 in the middle couplets of a 律诗: characters that stand opposite each other "
        f"in real middle couplets are preferred (0 = off, at most 10; default {POEM_WEIGHT})",
    )
    allow_repeats: bool = _opt(
        False,
        "let a line or clause repeat inside a poem (by default none does)",
        hidden=(("--no-repeat", False), ("--no-no-repeat", True)),
    )
    strategy: str = _opt(
        "sample",
        "original (alias seed): the assignment's top-1 procedure, 95 characters; greedy; "
        "sample (temperature, top-k, top-p); beam (default sample)",
        choices=("original", "greedy", "sample", "beam"),
        aliases=STRATEGY_ALIASES,
    )

    def __post_init__(self):
        super().__post_init__()
        check_weight(self.parallel)
        check_topic(self.topic)
        if self.at != 1 and not self.acrostic:  # generate's rule, which metrics applies too
            raise TangshiError(f"--at {self.at} places the acrostic's characters, but no --acrostic was given")

    def decode_options(self) -> DecodeOptions:
        return dataclasses.replace(super().decode_options(), topic=self.topic)

    def header(self) -> dict:
        """The fields that follow the poems in the JSON answer."""
        return request_header(self.form, self.decode_options(), self.script, **self._given())

    def _given(self) -> dict:
        return dict(
            start=self.start,
            acrostic=self.acrostic,
            at=self.at,
            keywords=self.keywords,
            rhyme_group=self.rhyme_group,
            candidates=self.candidates,
            template=self.template,
            revise=self.revise,
            title=self.title,
        )


@dataclass(frozen=True, kw_only=True)
class CoupletRequest(_Decoding):
    """Every setting of one request for the 下联 of a couplet (`tangshi couplet`, POST /api/couplet)."""

    WHAT: typing.ClassVar[str] = "下联"
    first: str = _opt("", "the first line of the couplet (its closing '，' may be left out)", positional="上联")
    tone: str = _opt(
        "strict",
        "strict: 平仄 opposed at each clause's 2nd, 4th, 6th and last character (default strict)",
        choices=("strict", "off"),
    )
    parallel: float = _opt(
        COUPLET_WEIGHT,
        "weight of 對仗: characters that stand opposite the 上联's in real middle couplets are preferred "
        f"(0 = off, at most 10; default {COUPLET_WEIGHT})",
    )
    strategy: str = _opt(
        "sample",
        "greedy; sample (temperature, top-k, top-p); beam (default sample)",
        choices=("greedy", "sample", "beam"),
    )

    def __post_init__(self):
        super().__post_init__()
        check_weight(self.parallel)

    def header(self) -> dict:
        return couplet_header(self.first, self.decode_options(), self.script, self.tone, self.candidates)


# ---------------------------------------------------------------------------- checks and headers
MAX_POEMS = 10_000_000
MAX_CANDIDATES = 1000


def check_request(opts: DecodeOptions, n: int, script: str, candidates: int | None) -> None:
    """The options every request shares: the script, the number of poems, the candidates."""
    from tangshi.decode.search import MAX_BEAM

    if script not in ("traditional", "simplified"):
        raise TangshiError(f"unknown script {script!r} (choose from traditional, simplified)")
    check_number("--n", n, 1, MAX_POEMS, integer=True)
    if opts.strategy == "beam" and n > MAX_BEAM:
        raise TangshiError(
            f"--n with --strategy beam must be at most {MAX_BEAM} (the beam keeps n hypotheses at once), got {n}"
        )
    if candidates is None:
        return
    check_number("--candidates", candidates, 1, MAX_CANDIDATES, integer=True)
    check_number("--n with --candidates", n * candidates, 1, MAX_POEMS, integer=True)
    if opts.strategy != "sample":
        why = {
            "beam": "already returns its best hypotheses, ranked",
            "greedy": "writes the same poem every time",
            "original": "is the assignment's fixed procedure",
        }[opts.strategy]
        raise TangshiError(f"--candidates ranks sampled poems (--strategy sample); --strategy {opts.strategy} {why}")


def request_header(form: str, opts: DecodeOptions, script: str, **options) -> dict:
    """The fields that follow the poems in `tangshi generate --json`: the form, strategy, seed and
    script, then those of HEADER_OPTIONS the request gave (so that `tangshi metrics` can check them;
    `at` only with an acrostic)."""
    from tangshi.decode.constraints.forced import template_form
    from tangshi.decode.reading import HEADER_OPTIONS

    if form == "free" and options.get("template"):
        form = template_form(options["template"])  # the template's shape is the form
    out = {"form": form, "strategy": opts.strategy, "seed": opts.seed, "script": script}
    for k in HEADER_OPTIONS:
        v = options.get(k)
        if v not in (None, "") and (k != "at" or options.get("acrostic")):
            out[k] = v
    return out


def couplet_header(first: str, opts: DecodeOptions, script: str, tone: str, candidates: int | None) -> dict:
    """The fields that follow the couplets in `tangshi couplet --json`."""
    out = {"first": first, "strategy": opts.strategy, "seed": opts.seed, "script": script, "tone": tone}
    return {**out, "candidates": candidates} if candidates is not None else out


# ---------------------------------------------------------------------------- the generated schemas
@functools.cache
def request_fields(cls) -> tuple[tuple[dataclasses.Field, typing.Any], ...]:
    """(field, its type) for each field of a request class, in the order the help shows them:
    the class's own fields first, then the shared decoding settings."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    own = [n for n in cls.__dict__.get("__annotations__", {}) if n in by_name]
    order = own + [n for n in by_name if n not in own]
    return tuple((by_name[n], hints[n]) for n in order)


def base_type(kind) -> type:
    """int for `int | None`, and so on."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if args else kind


def add_options(parser: argparse.ArgumentParser, cls) -> None:
    """The command-line options of a request class, one per field."""
    for f, kind in request_fields(cls):
        meta = f.metadata
        help_text = meta["help"].format(what=cls.WHAT)
        base = base_type(kind)
        if meta.get("positional"):
            parser.add_argument(f.name, metavar=meta["positional"], help=help_text)
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if base is bool and f.default is None:  # --rhyme / --no-rhyme, absent: the form decides
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif base is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", default=f.default, help=help_text)
        else:
            choices = meta.get("choices")
            if choices:
                choices = (*choices, *meta.get("aliases", {}))
            parser.add_argument(flag, dest=f.name, type=base, default=f.default, choices=choices, help=help_text)
        for option, value in meta.get("hidden", ()):
            parser.add_argument(option, dest=f.name, action="store_const", const=value, help=argparse.SUPPRESS)


def web_fields(cls) -> list[tuple[dataclasses.Field, typing.Any]]:
    """The fields a web request may give (all but the process's own settings)."""
    return [(f, kind) for f, kind in request_fields(cls) if f.metadata.get("web", True)]


def cli_defaults(cls) -> dict:
    """What the command line's parser holds for each field when no option is given (positionals left out)."""
    p = argparse.ArgumentParser(add_help=False)
    add_options(p, cls)
    return {f.name: p.get_default(f.name) for f, _ in request_fields(cls) if not f.metadata.get("positional")}
