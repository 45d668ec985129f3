"""One request → poems: `PoemTask` and `CoupletTask` check a request once and build what its
decoding needs (the texts as the vocabulary spells them, the constraint), then stream its records;
the records' fields (the form's checks, the JSON header)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import torch

from tangshi.data.corpus import TITLE_MAX
from tangshi.data.vocab import Vocab
from tangshi.decode.constraints import build_constraint
from tangshi.decode.constraints.couplet import CoupletConstraint, parse_first
from tangshi.decode.constraints.forced import HOLES, open_lines, template_form
from tangshi.decode.request import CoupletRequest, PoemRequest
from tangshi.decode.search import DecodeOptions, check_start, decode, generate_original, mean_log_prob
from tangshi.errors import TangshiError
from tangshi.model.lm import PoetryLM
from tangshi.text import (
    is_han,
    split_lines,
    to_simplified,
)
from tangshi.verse import prosody
from tangshi.verse.metrics import score_couplet
from tangshi.verse.reader import reader_score

GENERATION_CHUNK = 256  # poems decoded per batch: bounds memory, and the first poems print early


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


@functools.lru_cache(maxsize=64)
def _couplet_constraint(vocab: Vocab, first: str, tone: str, parallel: float = 0.0):
    return CoupletConstraint(vocab.itos, vocab, first, tone=tone, parallel=parallel)


# ---------------------------------------------------------------------------- one request, checked once
class _Task:
    """What every request's decoding shares once its own checks are done: the model, the sampling
    settings, how many, the start text, the constraint, and the records' form and script.
    `stream()` decodes them in batches of at most GENERATION_CHUNK poems, so memory stays flat
    whatever `n` is and the first poem is ready after one batch; sampling continues one random
    stream across batches, so the first GENERATION_CHUNK poems are those of a request for exactly
    that many. With `candidates` K it samples n·K poems and keeps the n best by the reader's score
    (`verse.reader.reader_score`: the model's mean log-probability per token, the record's "score",
    plus 對仗, less repeats), best first; the output then comes at the end."""

    model: PoetryLM
    vocab: Vocab
    opts: DecodeOptions
    n: int
    start: str
    constraint: object
    form: str
    script: str
    candidates: int | None

    def stream(self) -> Iterator[dict]:
        stream = self._ranked() if self.candidates is not None else self._poems()
        if not self.opts.title:
            return stream
        shown = to_simplified(self.opts.title) if self.script == "simplified" else self.opts.title
        return ({"title": shown, **r} for r in stream)

    def _record(self, text: str) -> dict:
        return _record(text, self.form, self.script)

    def _ranked(self) -> Iterator[dict]:
        assert self.candidates is not None
        texts = [t for chunk in self._texts(self.n * self.candidates) for t in chunk]
        scores = mean_log_prob(self.model, self.vocab, texts, self.opts.title)
        ranks = [reader_score(t, s) for t, s in zip(texts, scores)]
        order = sorted(range(len(texts)), key=lambda i: -ranks[i])[: self.n]  # stable: ties keep sampling order
        for i in order:
            yield {**self._record(texts[i]), "score": round(scores[i], 4), "reader_score": round(ranks[i], 4)}

    def _texts(self, n: int) -> Iterator[list[str]]:
        """Sampled texts in batches of at most GENERATION_CHUNK, one random stream across batches."""
        device = next(self.model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(self.opts.seed)
        for done in range(0, n, GENERATION_CHUNK):
            size = min(GENERATION_CHUNK, n - done)
            yield decode(self.model, self.vocab, size, self.opts, start=self.start, constraint=self.constraint, gen=gen)

    def _poems(self) -> Iterator[dict]:
        opts = self.opts
        if opts.strategy == "original":  # one poem at a time anyway: poem i uses seed + i, as the assignment's loop did
            assert opts.max_chars is not None  # DecodeOptions sets the strategy's bound
            for i in range(self.n):
                precision = opts.precision or "fp32"
                text = generate_original(
                    self.model,
                    self.vocab,
                    self.start,
                    seed=opts.seed + i,
                    max_chars=opts.max_chars,
                    precision=precision,
                )
                yield self._record(text)
            return
        if opts.strategy == "beam":  # one search returns the n best
            for t in decode(self.model, self.vocab, self.n, opts, start=self.start, constraint=self.constraint):
                yield self._record(t)
            return
        for chunk in self._texts(self.n):
            for t in chunk:
                yield self._record(t)


class PoemTask(_Task):
    """One `PoemRequest`, checked and made ready once, as whisper's `DecodingTask` does with its
    `DecodingOptions`: the request's texts read as the vocabulary spells them (simplified input is
    read as traditional), the form (a template's shape when the form is free), the title, and the
    constraint the decoder masks with (form, rhyme, 平仄, acrostic, keywords, repeats, 對仗, template).
    An impossible request raises `TangshiError` here, before anything is decoded; `stream()` then
    writes its poems, one record at a time. `max_chars`: the free form's bound (DecodeOptions).
    `strategy == 'original'` runs the assignment's own procedure (free form, one start character,
    no constraint)."""

    def __init__(self, model: PoetryLM, vocab: Vocab, request: PoemRequest, max_chars: int | None = None):
        self.model, self.vocab, self.request = model, vocab, request
        self._read_texts()
        self.opts = dataclasses.replace(request.decode_options(), max_chars=max_chars, title=self.title)
        self.n, self.script, self.candidates = request.n, request.script, request.candidates
        self.constraint = None
        if self.opts.strategy == "original":
            self._check_original()
        else:
            self.constraint = self._build_constraint()
            check_start(self.constraint, self.opts)  # an impossible start is refused now, not at the first batch

    def _read_texts(self) -> None:
        """The request's texts as the vocabulary spells them, and the form (a template's shape when the
        form is free); a template's own errors come first, and `revise` opens its lines; the title last."""
        r, spell = self.request, self.vocab.spell
        template, self.form = r.template, r.form
        if r.revise is not None:
            if template is None:
                raise TangshiError("--revise names lines of a poem: give the poem with --template")
            template = open_lines(template, r.revise)
        if template is not None:
            shape = template_form(template)
            template = spell(template, "template", keep=HOLES)
            self.form = shape if self.form == "free" else self.form
        self.template, self.start = template, spell(r.start, "start text")
        self.acrostic = spell(r.acrostic, "acrostic") or None
        self.keywords = spell(r.keywords, "keywords") or None
        self.title = spell(r.title, "title")  # "" for none; a model trained without titles refuses one
        if self.title and not self.model.config.titles:
            raise TangshiError("--title needs a model trained with titles (tangshi train --titles); this one was not")
        if len(self.title) > TITLE_MAX or not all(is_han(ch) for ch in self.title):
            raise TangshiError(f"a title is at most {TITLE_MAX} characters, without marks, got {self.title!r}")

    def _check_original(self) -> None:
        """The assignment's procedure writes free-form text from one start character, nothing else."""
        if self.form != "free" or self.acrostic or self.keywords or self.request.rhyme_group or self.opts.title:
            raise TangshiError(
                "--strategy original (alias seed) writes the assignment's free-form text; it takes no "
                "form, acrostic, keywords, rhyme group or title: use another strategy for those"
            )
        if len(self.start) != 1:
            raise TangshiError(
                "--strategy original (alias seed) needs exactly one --start character, as the assignment's "
                "procedure has it"
            )

    def _build_constraint(self):
        """The masks of the form's rules and the request's texts (built once per process: `_constraint`)."""
        r, form = self.request, self.form
        rhyme = (form != "free") if r.rhyme is None else bool(r.rhyme)
        rules = dict(rhyme=rhyme and form != "free", tone=r.tone, no_repeat=not r.allow_repeats)
        if form != "free":
            rules.update(parallel=r.parallel, template=self.template)
        return _constraint(
            self.vocab,
            form,
            start=self.start,
            acrostic=self.acrostic,
            at=r.at,
            keywords=self.keywords,
            max_chars=self.opts.max_chars,
            rhyme_group=r.rhyme_group,
            **rules,
        )


class CoupletTask(_Task):
    """One `CoupletRequest`, checked and made ready once: the 上联 read as the vocabulary spells it,
    the couplet's constraint (constraints.couplet; `parallel`: the weight of 對仗). `stream()` writes
    the 下联, one record at a time: {"first", "second", "text", "layout_ok", "opposed", "checked",
    "shared", "mirrored", "ends_ping"} (metrics.score_couplet), plus "score" with `candidates`."""

    def __init__(self, model: PoetryLM, vocab: Vocab, request: CoupletRequest, max_chars: int | None = None):
        self.model, self.vocab, self.request = model, vocab, request
        r = self.request
        first = vocab.spell(parse_first(r.first)[0], "上联")  # the reasons a 上联 is refused come first
        self.couplet = _couplet_constraint(vocab, first, r.tone, float(r.parallel))
        self.opts = dataclasses.replace(r.decode_options(), max_chars=max_chars)
        self.n, self.start, self.constraint, self.candidates = r.n, self.couplet.start, self.couplet, r.candidates
        self.form, self.script = "free", "traditional"  # the poem's records; the couplet's script is applied below

    def stream(self) -> Iterator[dict]:
        c = self.couplet
        shown = to_simplified if self.request.script == "simplified" else (lambda s: s)

        def record(p: dict) -> dict:
            second = c.second(p["text"])
            rec = {
                "first": shown(c.first),
                "second": shown(second),
                "text": shown(p["text"]),
                **score_couplet(c.first, second),
            }
            rec["shared"] = [shown(ch) for ch in rec["shared"]]
            return {**rec, "score": p["score"], "reader_score": p["reader_score"]} if "score" in p else rec

        return map(record, super().stream())


# ---------------------------------------------------------------------------- records, and the keyword form for code
def records(model, vocab, request: PoemRequest | CoupletRequest) -> tuple[Iterator[dict], dict]:
    """A request's records (poems or couplets, one at a time) and the fields that follow them in
    its JSON. Impossible requests raise TangshiError here, before anything is decoded."""
    task = (
        CoupletTask(model, vocab, request) if isinstance(request, CoupletRequest) else PoemTask(model, vocab, request)
    )
    return task.stream(), request.header()


# ---------------------------------------------------------------------------- the keyword form, for code
def _sampling(opts: DecodeOptions) -> dict:
    fields = ("strategy", "temperature", "top_k", "top_p", "beam", "seed", "precision")
    return {k: getattr(opts, k) for k in fields}


def poem_request(opts: DecodeOptions, n: int = 1, no_repeat: bool | None = None, **options) -> PoemRequest:
    """The `PoemRequest` of the keywords `iter_poems` takes: `opts`'s sampling (its title weight
    included: `opts.topic`, 0 unless set), `no_repeat` (default on) for `allow_repeats`, every other
    keyword a field of the request by its name."""
    allow = no_repeat is not None and not no_repeat
    return PoemRequest(**_sampling(opts), topic=opts.topic, n=n, allow_repeats=allow, **{"parallel": 0.0, **options})


def iter_poems(model, vocab, opts: DecodeOptions, n: int = 1, **options) -> Iterator[dict]:
    """The poems of `poem_request(opts, n, **options)`, one record at a time (`tangshi.decode.poems.
    PoemTask`), for code that holds a `DecodeOptions`: form, start, acrostic, at, keywords, rhyme,
    rhyme_group, tone, no_repeat, parallel (0 unless given), template, revise, title, script,
    candidates; `opts.max_chars` bounds the free form."""
    return PoemTask(model, vocab, poem_request(opts, n, **options), max_chars=opts.max_chars).stream()


def write_poems(model, vocab, opts: DecodeOptions, n: int = 1, **options) -> dict:
    """`iter_poems`'s poems in one record, {"poems": [...], **the request's header}: what
    `tangshi generate --json` prints."""
    request = poem_request(opts, n, **options)
    poems = list(PoemTask(model, vocab, request, max_chars=opts.max_chars).stream())
    return {"poems": poems, **request.header()}


def iter_couplets(model, vocab, opts: DecodeOptions, first: str, n: int = 1, **options) -> Iterator[dict]:
    """The 下联 of `first` (`tangshi.decode.poems.CoupletTask`), for code that holds a `DecodeOptions`:
    tone (default strict), parallel (0 unless given), script, candidates."""
    if opts.strategy == "original":
        raise TangshiError(
            "--strategy original (alias seed) writes the assignment's free-form text; use another strategy for couplets"
        )
    request = CoupletRequest(**_sampling(opts), first=first, n=n, **{"parallel": 0.0, **options})
    return CoupletTask(model, vocab, request, max_chars=opts.max_chars).stream()
