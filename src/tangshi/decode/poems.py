"""One request → poems: script conversion, the constraint, decoding, output records."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from tangshi.data.corpus import TITLE_MAX
from tangshi.data.prepare import read_split
from tangshi.data.vocab import Vocab
from tangshi.decode.constraints import build_constraint
from tangshi.decode.constraints.couplet import CoupletConstraint, parse_first
from tangshi.decode.constraints.forced import HOLES, open_lines, template_form
from tangshi.decode.search import MAX_BEAM, DecodeOptions, check_start, decode, generate_original, mean_log_prob
from tangshi.errors import TangshiError, check_number
from tangshi.model.lm import PoetryLM
from tangshi.text import (
    FORM_NAMES,
    as_corpus_marks,
    is_han,
    split_clauses,
    split_lines,
    to_simplified,
    to_traditional,
    unicode_problem,
)
from tangshi.verse import prosody
from tangshi.verse.metrics import score_couplet
from tangshi.verse.reader import reader_score

GENERATION_CHUNK = 256  # poems decoded per batch: bounds memory, and the first poems print early
MAX_POEMS = 10_000_000
MAX_CANDIDATES = 1000


def to_vocab_text(text: str | None, vocab: Vocab, what: str, keep: str = "") -> str:
    """`text` as the vocabulary spells it (whitespace dropped). The one script rule: a text is read
    as simplified when it holds a character the vocabulary lacks whose traditional form it knows
    (尽, 两, 个); a simplified text is converted to traditional, the corpus's script, as a whole
    (OpenCC s2t with its phrase context, so 两个黄鹂 is read 兩個黃鸝 and 白日依山尽，黄河 is read
    白日依山盡，黃河), a character whose converted form the vocabulary lacks staying as typed. A
    traditional text is kept as typed (咸陽 stays 咸陽, 床前 stays 床前). A character known in
    neither form is a clear error. Marks are read as the corpus writes them (text.as_corpus_marks:
    ',' and '；' are '，', '.' and '？' are '。'). The output is then written in the asked script.
    Characters in `keep` (a template's holes) pass as they are."""
    text = as_corpus_marks("".join((text or "").split()))
    converted = to_traditional(text)
    if len(converted) != len(text):  # OpenCC maps character to character; never expected
        converted = "".join(to_traditional(ch) for ch in text)
    simplified = any(orig not in vocab and ch in vocab for orig, ch in zip(text, converted))
    out = []
    for orig, ch in zip(text, converted):
        if orig in keep:
            out.append(orig)
        elif simplified and ch in vocab:
            out.append(ch)
        elif orig in vocab:
            out.append(orig)
        else:
            shown = f"'{orig}'" if orig == ch else f"'{orig}' (traditional '{ch}')"
            raise TangshiError(f"character {shown} in the {what} is not in the model's vocabulary")
    return "".join(out)


@functools.lru_cache(maxsize=64)
def _constraint(vocab: Vocab, form: str, **options):
    """The request's constraint, built once per process (its vocabulary analysis
    takes ~20 ms for V ≈ 5,400; the object holds no per-poem state)."""

    return build_constraint(vocab, form, **options)


def _record(text: str, form: str, script: str) -> dict:
    """One poem's output record; prosody fields are computed on the traditional text."""
    shown = to_simplified(text) if script == "simplified" else text
    rec: dict[str, object] = {"text": shown, "lines": split_lines(shown), "form": form}
    f = prosody.get_form(form)
    if f is not None:
        rec["valid_form"] = prosody.check_form(text, f)
        ends = prosody.rhyme_chars(text, f)
        groups = prosody.shared_groups(ends) if ends else frozenset()
        order = prosody.rhyme_table().groups
        # the 平水韻 group all rhyme positions share (the first in table order if several do)
        rec["rhyme_group"] = min(groups, key=order.index) if groups else None
        best = prosody.best_pattern(text, f)
        rec["tone_pattern"] = best[0].name if best else None
        rec["tone_conformance"] = round(best[1], 4) if best else None
    return rec


def write_poems(
    model: PoetryLM,
    vocab: Vocab,
    opts: DecodeOptions,
    n: int = 1,
    form: str = "free",
    script: str = "traditional",
    **options,
) -> dict:
    """Write `n` poems for one request; returns {"poems": [...], **request_header(...)}, the
    record `tangshi generate --json` prints. See `iter_poems` for the options."""
    poems = list(iter_poems(model, vocab, opts, n, form=form, script=script, **options))
    return {"poems": poems, **request_header(form, opts, script, **options)}


HEADER_OPTIONS = (
    "start",
    "acrostic",
    "at",
    "keywords",
    "rhyme_group",
    "candidates",
    "template",
    "revise",
    "title",
)  # shown when given


def request_header(form: str, opts: DecodeOptions, script: str, **options) -> dict:
    """The fields that follow the poems in `tangshi generate --json`: the form, strategy, seed and
    script, then those of HEADER_OPTIONS the request gave (so that `tangshi metrics` can check them;
    `at` only with an acrostic)."""
    if form == "free" and options.get("template"):
        form = template_form(options["template"])  # the template's shape is the form
    out = {"form": form, "strategy": opts.strategy, "seed": opts.seed, "script": script}
    for k in HEADER_OPTIONS:
        v = options.get(k)
        if v not in (None, "") and (k != "at" or options.get("acrostic")):
            out[k] = v
    return out


def iter_poems(
    model: PoetryLM,
    vocab: Vocab,
    opts: DecodeOptions,
    n: int = 1,
    form: str = "free",
    start: str = "",
    acrostic: str | None = None,
    rhyme: bool | None = None,
    tone: str = "off",
    no_repeat: bool | None = None,
    script: str = "traditional",
    at: int = 1,
    keywords: str | None = None,
    rhyme_group: str | None = None,
    candidates: int | None = None,
    parallel: float = 0.0,
    template: str | None = None,
    revise: str | None = None,
    title: str | None = None,
) -> Iterator[dict]:
    """The request's poems, one record at a time, decoded in batches of at most GENERATION_CHUNK
    poems: memory stays flat whatever `n` is, and the first poem is ready after one batch.
    form: wujue | qijue | wulv | qilv | free. start: the poem begins with it; acrostic: line k has
    its k-th character at position `at` (1 = first, -1 = last); keywords: each of its characters
    appears somewhere; rhyme (default on for the four forms): even
    lines end in one 平水韻 平聲 group (`rhyme_group`: that one); tone: strict | loose | off;
    no_repeat (default on): no clause repeats inside a poem; parallel: the weight of 對仗 in the
    middle couplets of a 律詩 (constraints/parallel.py, 0 = off); template: the whole poem with □ for
    each open character (its shape gives the form when `form` is free); revise: line numbers of the
    template to write again (forced.open_lines); title: what a titled model reads first (each record
    carries it). Simplified input is read as traditional; `script='simplified'` converts the output.
    Impossible requests raise `TangshiError` here, before anything is generated.
    `opts.strategy == 'original'` runs the assignment's own procedure (free form, one start
    character, no constraint). Sampling continues one random stream across batches, so the
    first GENERATION_CHUNK poems are those of a request for exactly that many.
    `candidates` K: sample n·K poems and return the n best by the reader's score
    (`verse.reader.reader_score`, the record's "reader_score": the mean log-probability per token,
    the record's "score", plus 對仗, less repeats), best first; the output then comes at the end.
    """
    if form not in FORM_NAMES:
        raise TangshiError(f"unknown form {form!r} (choose from {', '.join(FORM_NAMES)})")
    check_request(opts, n, script, candidates)
    form, template, start, acrostic, keywords = _read_texts(vocab, form, template, revise, start, acrostic, keywords)
    no_repeat = True if no_repeat is None else bool(no_repeat)
    rhyme = (form != "free") if rhyme is None else bool(rhyme)
    opts = dataclasses.replace(opts, title=_read_title(model, vocab, title))
    constraint = None
    if opts.strategy == "original":
        _check_original(form, start, acrostic, keywords, rhyme_group or opts.title)
    else:
        rules = dict(rhyme=rhyme and form != "free", tone=tone, no_repeat=no_repeat, rhyme_group=rhyme_group)
        if form != "free":
            rules["parallel"] = parallel
            rules["template"] = template
        constraint = _constraint(
            vocab, form, start=start, acrostic=acrostic, at=at, keywords=keywords, max_chars=opts.max_chars, **rules
        )
        check_start(constraint, opts)  # an impossible start is refused now, not at the first batch
    return _stream(model, vocab, opts, n, start, constraint, form, script, candidates)


def _read_texts(vocab: Vocab, form: str, template, revise, start, acrostic, keywords) -> tuple:
    """The request's texts as the vocabulary spells them, and the form (a template's shape when the
    form is free); a template's own errors come first, and `revise` opens its lines."""
    if revise is not None:
        if template is None:
            raise TangshiError("--revise names lines of a poem: give the poem with --template")
        template = open_lines(template, revise)
    if template is not None:
        shape = template_form(template)
        template = to_vocab_text(template, vocab, "template", keep=HOLES)
        form = shape if form == "free" else form
    start = to_vocab_text(start, vocab, "start text")
    acrostic = to_vocab_text(acrostic, vocab, "acrostic") or None
    keywords = to_vocab_text(keywords, vocab, "keywords") or None
    return form, template, start, acrostic, keywords


def _check_original(form: str, start: str, acrostic, keywords, rhyme_group) -> None:
    """The assignment's procedure writes free-form text from one start character, nothing else."""
    if form != "free" or acrostic or keywords or rhyme_group:
        raise TangshiError(
            "--strategy original (alias seed) writes the assignment's free-form text; it takes no "
            "form, acrostic, keywords, rhyme group or title: use another strategy for those"
        )
    if len(start) != 1:
        raise TangshiError(
            "--strategy original (alias seed) needs exactly one --start character, as the assignment's procedure has it"
        )


def _read_title(model: PoetryLM, vocab: Vocab, title: str | None) -> str:
    """The title as the vocabulary spells it ("" for none); a model trained without titles refuses one."""
    title = to_vocab_text(title, vocab, "title")
    if title and not model.config.titles:
        raise TangshiError("--title needs a model trained with titles (tangshi train --titles); this one was not")
    if len(title) > TITLE_MAX or not all(is_han(ch) for ch in title):
        raise TangshiError(f"a title is at most {TITLE_MAX} characters, without marks, got {title!r}")
    return title


def _stream(model, vocab, opts, n, start, constraint, form, script, candidates) -> Iterator[dict]:
    if candidates is not None:
        stream = _ranked(model, vocab, opts, n, candidates, start, constraint, form, script)
    else:
        stream = _poem_stream(model, vocab, opts, n, start, constraint, form, script)
    if not opts.title:
        return stream
    shown = to_simplified(opts.title) if script == "simplified" else opts.title
    return ({"title": shown, **r} for r in stream)


def check_request(opts: DecodeOptions, n: int, script: str, candidates: int | None) -> None:
    """The options every request shares: the script, the number of poems, the candidates."""
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


def _ranked(model, vocab, opts, n, k, start, constraint, form, script) -> Iterator[dict]:
    """The n best of n·k sampled poems by the reader's score (verse.reader.reader_score: the model's
    mean log-probability, plus 對仗, less repeats), best first; each record holds both scores."""
    texts = [t for chunk in _texts(model, vocab, opts, n * k, start, constraint) for t in chunk]
    scores = mean_log_prob(model, vocab, texts, opts.title)
    ranks = [reader_score(t, s) for t, s in zip(texts, scores)]
    order = sorted(range(len(texts)), key=lambda i: -ranks[i])[:n]  # stable: ties keep sampling order
    for i in order:
        yield {**_record(texts[i], form, script), "score": round(scores[i], 4), "reader_score": round(ranks[i], 4)}


def _texts(model, vocab, opts, n, start, constraint) -> Iterator[list[str]]:
    """Sampled texts in batches of at most GENERATION_CHUNK, one random stream across batches."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(opts.seed)
    for done in range(0, n, GENERATION_CHUNK):
        yield decode(model, vocab, min(GENERATION_CHUNK, n - done), opts, start=start, constraint=constraint, gen=gen)


def _poem_stream(model, vocab, opts, n, start, constraint, form, script) -> Iterator[dict]:
    if opts.strategy == "original":  # one poem at a time anyway: poem i uses seed + i, as the assignment's loop did
        for i in range(n):
            text = generate_original(
                model, vocab, start, seed=opts.seed + i, max_chars=opts.max_chars, precision=opts.precision or "fp32"
            )
            yield _record(text, form, script)
        return
    if opts.strategy == "beam":  # one search returns the n best
        for t in decode(model, vocab, n, opts, start=start, constraint=constraint):
            yield _record(t, form, script)
        return
    for chunk in _texts(model, vocab, opts, n, start, constraint):
        for t in chunk:
            yield _record(t, form, script)


# ---------------------------------------------------------------------------- reading poems back (tangshi metrics)
def parse_poems(text: str, source: str = "input") -> tuple[list[str], dict]:
    """Poems from text: the JSON `tangshi generate --json` or `tangshi couplet --json` prints (or
    a JSON list of poems / of {"text": ...}), or plain text with one poem per line. The layout
    `tangshi generate` prints without --json (one verse line per line, a blank
    line between poems) is recognised when every line is a single clause.
    Returns (poems, header): the header holds the form (None if not stated), the script, and the
    request's fields of HEADER_OPTIONS the JSON states. A UTF-8 byte-order mark
    (as some editors write) is ignored."""
    text = text.lstrip("\ufeff")
    if text.lstrip().startswith(("{", "[")):
        return _parse_json_poems(text, source)
    lines = [ln.strip() for ln in text.splitlines()]
    if _verse_layout(lines):
        poems, block = [], []
        for ln in lines + [""]:
            if ln:
                block.append(ln)
            elif block:
                poems.append("".join(block))
                block = []
    else:
        poems = [ln for ln in lines if ln]
    if not poems:
        raise TangshiError(f"no poems in {source}")
    return poems, {"form": None, "script": "traditional"}


def _verse_layout(lines: list[str]) -> bool:
    """Every non-blank line is one clause, and each ends with its mark unless it closes its block."""
    if sum(1 for ln in lines if ln) < 2:
        return False
    for i, ln in enumerate(lines):
        if not ln:
            continue
        parts = split_clauses(ln)
        if len(parts) != 1:
            return False
        last_in_block = i + 1 == len(lines) or not lines[i + 1]
        if not parts[0][1] and not last_in_block:
            return False
    return True


def _parse_json_poems(text: str, source: str) -> tuple[list[str], dict]:

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise TangshiError(f"malformed JSON in {source}: {e.msg} (line {e.lineno}, column {e.colno})") from None
    header: dict[str, object] = {"form": None, "script": "traditional"}
    items = obj
    if isinstance(obj, dict):
        items = obj.get("poems", obj.get("couplets"))
        for k, kind in (
            ("form", str),
            ("script", str),
            *((k, int if k in ("at", "candidates") else str) for k in HEADER_OPTIONS),
        ):
            v = obj.get(k, header.get(k))
            if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
                raise TangshiError(
                    f"{source} states {k!r} as {v!r}, which is not {'an integer' if kind is int else 'text'}"
                )
            header[k] = v
        if header["form"] is not None and header["form"] not in FORM_NAMES:
            raise TangshiError(f"{source} states an unknown form {header['form']!r}")
    expected = (
        'the JSON that tangshi generate --json or tangshi couplet --json prints ({"poems": [{"text": ...}, ...]})'
    )
    if not isinstance(items, list):
        raise TangshiError(f"{source} is not {expected}")
    poems = []
    for i, item in enumerate(items):
        t = item.get("text") if isinstance(item, dict) else item
        if not isinstance(t, str):
            raise TangshiError(f"poem {i + 1} in {source} has no text; expected {expected}")
        poems.append(t)
    if not poems:
        raise TangshiError(f"no poems in {source}")
    return poems, header


def read_poems(path: str) -> tuple[list[str], dict, str]:
    """`parse_poems` on a file, or standard input for '-'. Returns (poems, header, source name)."""

    if path == "-":
        return (*parse_poems(_read_stdin(), "standard input"), "standard input")
    p = Path(path)
    if p.is_dir():
        raise TangshiError(f"{p} is a folder; give a file of poems")
    if p.exists() and not p.is_file():
        raise TangshiError(
            f"{p} is not a regular file (a device, a pipe or a socket); give a file of poems, or - for standard input"
        )
    if not p.is_file():
        raise TangshiError(f"poems file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TangshiError(f"{p} is not UTF-8 text") from None
    return (*parse_poems(text, str(p)), str(p))


def _read_stdin() -> str:
    """Standard input, decoded as a file is: its bytes as UTF-8, not as the locale would (which lets
    bad bytes through as lone surrogates); a text stream without bytes (a test's) is checked the same."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        text = sys.stdin.read()
        if unicode_problem(text) is not None:
            raise TangshiError("standard input is not UTF-8 text")
        return text
    try:
        return buffer.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TangshiError("standard input is not UTF-8 text") from None


def training_poems(data_dir) -> list[str]:
    """The training poems of a prepared folder (train.txt, one poem per line)."""

    if not (Path(data_dir) / "train.txt").is_file():
        raise TangshiError(
            f"training poems not found: {Path(data_dir) / 'train.txt'} (a folder made by tangshi data prepare)"
        )
    return read_split(data_dir, "train")


# ---------------------------------------------------------------------------- couplets (tangshi couplet)
def iter_couplets(
    model: PoetryLM,
    vocab: Vocab,
    opts: DecodeOptions,
    first: str,
    n: int = 1,
    tone: str = "strict",
    script: str = "traditional",
    candidates: int | None = None,
    parallel: float = 0.0,
) -> Iterator[dict]:
    """下联 for the 上联 `first` (constraints.couplet; `parallel`: the weight of 對仗), one record at a time:
    {"first", "second", "text", "layout_ok", "opposed", "checked", "shared", "mirrored", "ends_ping"}
    (metrics.score_couplet), plus "score" with `candidates`. Checks run when this is called."""

    check_request(opts, n, script, candidates)
    if opts.strategy == "original":
        raise TangshiError(
            "--strategy original (alias seed) writes the assignment's free-form text; use another strategy for couplets"
        )

    first = to_vocab_text(parse_first(first)[0], vocab, "上联")  # the reasons a 上联 is refused come first
    c = _couplet_constraint(vocab, first, tone, float(parallel))
    stream = _stream(model, vocab, opts, n, c.start, c, "free", "traditional", candidates)

    def record(p: dict) -> dict:
        second = c.second(p["text"])
        shown = to_simplified if script == "simplified" else (lambda s: s)
        rec = {
            "first": shown(c.first),
            "second": shown(second),
            "text": shown(p["text"]),
            **score_couplet(c.first, second),
        }
        rec["shared"] = [shown(ch) for ch in rec["shared"]]
        return {**rec, "score": p["score"], "reader_score": p["reader_score"]} if "score" in p else rec

    return map(record, stream)


@functools.lru_cache(maxsize=64)
def _couplet_constraint(vocab: Vocab, first: str, tone: str, parallel: float = 0.0):
    return CoupletConstraint(vocab.itos, vocab, first, tone=tone, parallel=parallel)


def couplet_header(first: str, opts: DecodeOptions, script: str, tone: str, candidates: int | None) -> dict:
    """The fields that follow the couplets in `tangshi couplet --json`."""
    out = {"first": first, "strategy": opts.strategy, "seed": opts.seed, "script": script, "tone": tone}
    return {**out, "candidates": candidates} if candidates is not None else out
