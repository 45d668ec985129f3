"""One request for poems or a couplet, as the command line and the web API both take it: the
options (defined once, here, on an argparse parser; `tangshi serve` builds its pydantic request
models from the same definitions), and the request → (records, the JSON header) step that
`tangshi generate`, `tangshi couplet` and POST /api/poems, /api/couplet share."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterator

from tangshi.text import FORM_NAMES

ORIGINAL = {"original": "seed"}  # the course assignment's procedure: "original"; "seed" stays as an alias
NOT_REQUEST = ("checkpoint", "json", "list_rhyme_groups", "help", "precision")  # options of the process, not of one request


def add_generate_options(gp) -> None:
    """The options of `tangshi generate` (the server's POST /api/poems takes the same, by long name)."""
    gp.add_argument("--form", default="free", choices=FORM_NAMES,
                    help="五言绝句 4×5, 七言绝句 4×7, 五言律诗 8×5, 七言律诗 8×7, or free (default free)")
    gp.add_argument("--start", default="",
                    help="the poem begins with this text: any number of whole lines, each with its '，' or '。', "
                         "and part of the next (a continuation)")
    gp.add_argument("--acrostic", help="line k holds the k-th character at position --at (藏头 by default)")
    gp.add_argument("--at", type=int, default=1,
                    help="the acrostic's position in each line: 1 = first (藏头, default), -1 = last (藏尾), "
                         "any position between")
    gp.add_argument("--keywords", help="every one of these characters appears somewhere in the poem")
    gp.add_argument("--rhyme", action=argparse.BooleanOptionalAction, default=None,
                    help="even lines rhyme in one 平水韵 平声 group (default on for the four forms)")
    gp.add_argument("--rhyme-group", help="rhyme in this 平水韵 平声 group: by name (東, 一東, 上平聲一東) or by one "
                                          "of its characters (see --list-rhyme-groups)")
    gp.add_argument("--list-rhyme-groups", action="store_true",
                    help="list the 平声 groups with how many of their characters the model knows, and exit")
    gp.add_argument("--tone", default="off", choices=("strict", "loose", "off"),
                    help="平仄 of regulated verse: strict masks, loose prefers (default off)")
    gp.add_argument("--allow-repeats", dest="no_repeat", action="store_false", default=None,
                    help="let a line or clause repeat inside a poem (by default none does)")
    gp.add_argument("--no-repeat", dest="no_repeat", action="store_true", help=argparse.SUPPRESS)
    gp.add_argument("--no-no-repeat", dest="no_repeat", action="store_false", help=argparse.SUPPRESS)  # old name
    _decoding_options(gp, "poems", ("original", "greedy", "sample", "beam", "seed"),
                      "original (alias seed): the assignment's top-1 procedure, 95 characters; greedy; sample "
                      "(temperature, top-k, top-p); beam (default sample)")


def add_couplet_options(cp) -> None:
    """The options of `tangshi couplet` (POST /api/couplet takes the same)."""
    cp.add_argument("first", metavar="上联", help="the first line of the couplet (its closing '，' may be left out)")
    cp.add_argument("--tone", default="strict", choices=("strict", "off"),
                    help="strict: 平仄 opposed at each clause's 2nd, 4th, 6th and last character (default strict)")
    _decoding_options(cp, "下联", ("greedy", "sample", "beam"), "greedy; sample (temperature, top-k, top-p); "
                      "beam (default sample)")


def _decoding_options(p, what: str, strategies: tuple, strategy_help: str) -> None:
    """The options generate and couplet share: the model, decoding, how many, output."""
    p.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--strategy", default="sample", choices=strategies, help=strategy_help)
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--top-k", type=int, default=0, help="sample from the k most probable characters (0 = off)")
    p.add_argument("--top-p", type=float, default=0.9, help="sample from the smallest set of probability p (default 0.9)")
    p.add_argument("--beam", type=int, default=4, help="beam width (default 4)")
    p.add_argument("--seed", type=int, default=0, help=f"random seed: the same seed writes the same {what} (default 0)")
    p.add_argument("--n", type=int, default=1,
                   help=f"how many {what}; they are written 256 at a time and printed as each batch finishes "
                        "(with --json the output is one JSON object, streamed)")
    p.add_argument("--candidates", type=int,
                   help="sample K for each one returned and return the best by mean log-probability per token "
                        "(shown as score); --n N returns the N best of N·K")
    p.add_argument("--script", default="traditional", choices=("traditional", "simplified"),
                   help="the script of the output (input may be either; default traditional)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--precision", choices=("fp32", "int8"),
                   help="the decoding step's matrix products: int8 (fbgemm dynamic quantisation, the default on x86 "
                        "CPUs) or fp32 (the default elsewhere, and for the assignment's procedure, which it reproduces)")


def decode_options(ns):
    from tangshi.decode.search import DecodeOptions

    return DecodeOptions(strategy=ORIGINAL.get(ns.strategy, ns.strategy), temperature=ns.temperature, top_k=ns.top_k,
                         top_p=ns.top_p, beam=ns.beam, seed=ns.seed, precision=getattr(ns, "precision", None))


def poems(model, vocab, ns) -> tuple[Iterator[dict], dict]:
    """The poems of a `tangshi generate` request (a namespace of its options) and the fields
    that follow them in its JSON. Impossible requests raise TangshiError here."""
    from tangshi.decode.poems import iter_poems, request_header

    opts = decode_options(ns)
    given = dict(start=ns.start, acrostic=ns.acrostic, at=ns.at, keywords=ns.keywords, rhyme_group=ns.rhyme_group,
                 candidates=ns.candidates)
    stream = iter_poems(model, vocab, opts, n=ns.n, form=ns.form, rhyme=ns.rhyme, tone=ns.tone,
                        no_repeat=ns.no_repeat, script=ns.script, **given)
    return stream, request_header(ns.form, opts, ns.script, **given)


def couplets(model, vocab, ns) -> tuple[Iterator[dict], dict]:
    """The 下联 of a `tangshi couplet` request and the fields that follow them in its JSON."""
    from tangshi.decode.poems import couplet_header, iter_couplets

    opts = decode_options(ns)
    stream = iter_couplets(model, vocab, opts, ns.first, n=ns.n, tone=ns.tone, script=ns.script,
                           candidates=ns.candidates)
    return stream, couplet_header(ns.first, opts, ns.script, ns.tone, ns.candidates)


@functools.cache
def _actions(add) -> tuple[argparse.Action, ...]:
    """The argparse actions `add` (add_generate_options / add_couplet_options) defines, built once."""
    p = argparse.ArgumentParser(add_help=False)
    add(p)
    return tuple(p._actions)


def request_options(add) -> list[argparse.Action]:
    """The options `add` defines, less NOT_REQUEST and the hidden aliases: what a web request may give."""
    return [a for a in _actions(add) if a.dest not in NOT_REQUEST and a.help != argparse.SUPPRESS]


def defaults(add) -> argparse.Namespace:
    """A new namespace holding every option of `add` at its default (positionals: None)."""
    return argparse.Namespace(**{a.dest: a.default for a in _actions(add) if a.dest != "help"})
