"""Decoding: the assignment's procedure, greedy, sampling (temperature, top-k, top-p) and beam search.

All strategies run the LSTM one step at a time (`PoetryLM.step`) for a whole batch
of poems at once, with its state carried; the prefix is never re-run. Constraints (forms, rhyme,
tone, acrostic, no repeats; `decode/constraints/`) are part of decoding, through their state API
(``new_state`` / ``mask`` / ``bias`` / ``advance`` / ``state.select``): a
disallowed character gets probability 0 and every allowed one keeps its
relative model probability. Without a constraint the decoder uses a plain
`FreeConstraint` (no specials, the start text forced, no repeat control), so
every strategy takes one path.

Every decoding ends: a regulated form has a fixed number of steps
(``constraint.max_steps``); free form stops at ``DecodeOptions.max_chars``
characters, where ``<EOS>`` is forced.

Speed (CPU, 1×256 LSTM, V ≈ 5,400): the output layer (256 → V) dominates. A
step where the constraint allows one token in every row (punctuation, start
text, acrostic heads, ``<EOS>``) skips it. Sampling works on probabilities:
softmax, top-k/top-p thresholds found from *sorted values* (NumPy's vectorised
sort; `torch.sort` and `torch.multinomial` are 10-20× slower on these rows),
then one uniform draw per row through the cumulative sum (inverse CDF).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass

import numpy as np
import torch

from tangshi.data.batches import title_prefix
from tangshi.data.vocab import Vocab
from tangshi.decode.constraints import FreeConstraint
from tangshi.decode.topic import topic_vector, with_topic
from tangshi.errors import TangshiError, check_number
from tangshi.machine import threads_for
from tangshi.model.lm import OLD_NAMES, PoetryLM
from tangshi.model.step_weights import PRECISIONS, default_precision
from tangshi.text import CLAUSE_SEPARATORS

STRATEGIES = ("original", "greedy", "sample", "beam")
ORIGINAL_MAX_CHARS = 95  # the assignment stops its generated text at 95 characters
FREE_MAX_CHARS = 63  # other strategies in free form: the training length bound
MAX_TEMPERATURE = 100.0
MAX_BEAM = 256  # beam search keeps max(beam, n) hypotheses at once
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class DecodeOptions:
    strategy: str = "sample"
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    beam: int = 4
    seed: int = 0
    max_chars: int | None = None  # free form: characters (punctuation included) before <EOS> is forced;
    # None: the strategy's own bound (the assignment's procedure writes ORIGINAL_MAX_CHARS, the others FREE_MAX_CHARS)
    precision: str | None = None  # the step's products (model/step_weights.py); None: int8 on x86 CPUs, else fp32
    # (the assignment's procedure: fp32 unless asked, so that it reproduces the assignment's text)
    title: str = ""  # the title a titled model reads before the poem (data/batches.py), as the vocabulary spells it
    topic: float = 0.0  # with a title: the weight of its words (verse/topics.py), added at every free step

    def __post_init__(self):
        object.__setattr__(self, "strategy", OLD_NAMES.get(self.strategy, self.strategy))
        if self.strategy not in STRATEGIES:
            raise TangshiError(f"unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})")
        check_number("--temperature", self.temperature, 0, MAX_TEMPERATURE, lo_open=True)
        check_number("--top-k", self.top_k, 0, 1 << 20, integer=True)
        check_number("--top-p", self.top_p, 0, 1, lo_open=True)
        check_number("--beam", self.beam, 1, MAX_BEAM, integer=True)
        check_number("--seed", self.seed, 0, MAX_SEED, integer=True)
        if self.max_chars is None:
            object.__setattr__(self, "max_chars", ORIGINAL_MAX_CHARS if self.strategy == "original" else FREE_MAX_CHARS)
        check_number("max_chars", self.max_chars, 1, 1 << 16, integer=True)
        if self.precision is not None and self.precision not in PRECISIONS:
            raise TangshiError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def precision_on(self, device) -> str:
        return self.precision or default_precision(device)


def prime(model: PoetryLM, vocab: Vocab, opts: DecodeOptions, n: int, device, logits: bool = True):
    """Feed `n` rows what the model reads before the poem's first character: <START>, or, with a
    title, <START> title <START> (only the last step computes logits). Returns (logits, state)."""
    out, state = None, None
    prefix = title_prefix(opts.title, vocab)
    for i, tok in enumerate(prefix):
        ids = torch.full((n,), tok, dtype=torch.long, device=device)
        last = i == len(prefix) - 1
        if state is None:
            out, state = model.step(ids, None, logits=logits and last, precision=opts.precision_on(device))
        else:
            out, state = model.step(ids, state, logits=logits and last)
    return out, state


# ---------------------------------------------------------------------------- the assignment's procedure
@torch.no_grad()
def generate_original(
    model: PoetryLM,
    vocab: Vocab,
    start: str,
    seed: int = 0,
    max_chars: int = ORIGINAL_MAX_CHARS,
    precision: str = "fp32",
) -> str:
    """The assignment's procedure: feed <START> and the start character, then repeatedly
    take the top-1 token; when it is <EOS>, continue from a uniformly random
    character instead (the LSTM state is kept); stop at `max_chars` characters.

    Runs `model.step` one poem at a time, exactly as the assignment did (no batching, so
    that no change of matrix-product shapes can flip an argmax)."""
    rng = random.Random(seed)
    model.eval()
    text = start
    logits, state = model.step(torch.tensor([vocab.start_id]), None, precision=precision)
    for ch in start:
        logits, state = model.step(torch.tensor([vocab.id_of(ch)]), state)
    chars = vocab.chars
    while len(text) < max_chars:
        nxt = int(logits[0].argmax())
        if nxt == vocab.eos_id:
            nxt = vocab.stoi[rng.choice(chars)]
        text += vocab.itos[nxt]
        logits, state = model.step(torch.tensor([nxt]), state)
    return text


# ---------------------------------------------------------------------------- sampling on probabilities
def _sorted_values(p: torch.Tensor) -> torch.Tensor:
    """Each row of p sorted ascending (values only)."""
    if p.device.type == "cpu":
        return torch.from_numpy(np.sort(p.numpy(), axis=1))
    return torch.sort(p, dim=1).values


def _top_k(p: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the k most probable tokens of each row (ties with the k-th are kept). In place."""
    if 0 < k < p.shape[1]:
        kth = _sorted_values(p)[:, -k].unsqueeze(1)  # (B, 1) the k-th largest
        p.masked_fill_(p < kth, 0.0)
    return p


def _top_p(p: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter, in place: keep the most probable tokens of each row up to and
    including the one whose cumulative probability reaches ``top_p`` of the row's
    mass (p need not be normalised); ties with that last token are kept."""
    if top_p >= 1.0:
        return p
    s = _sorted_values(p)  # (B, V) ascending
    cs = torch.cumsum(s, dim=1)  # mass of the tokens at or below each sorted position
    # token at sorted position j is kept ⇔ the mass strictly above it ≤ top_p·total ⇔ cs_j ≥ (1 − top_p)·total
    n_drop = torch.searchsorted(cs, (1.0 - top_p) * cs[:, -1:])  # (B, 1) #{cs_j < that}; ≤ V − 1 (cs_{V−1} = total)
    threshold = s.gather(1, n_drop)  # (B, 1) the smallest kept probability
    p.masked_fill_(p < threshold, 0.0)
    return p


def _draw(p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One index per row with probability p / p.sum() (inverse CDF; p ≥ 0, each row > 0)."""
    cdf = torch.cumsum(p, dim=1)
    u = torch.rand(p.shape[0], 1, generator=gen, device=p.device) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, u, right=True).clamp_(max=p.shape[1] - 1)  # first cdf > u: p > 0 there
    bad = p.gather(1, idx) <= 0  # only through rounding at the very top of a row
    if bool(bad.any()):
        idx = torch.where(bad, p.argmax(dim=1, keepdim=True), idx)
    return idx.squeeze(1)


def _forced(allowed: torch.Tensor) -> torch.Tensor | None:
    """The token of every row when each row allows exactly one, else None (row 0 decides most
    steps alone). On the CPU in NumPy: torch's bool reductions cost tens of µs per call."""
    if allowed.device.type != "cpu":
        counts = allowed.to(torch.int32).sum(dim=1)
        return allowed.to(torch.uint8).argmax(dim=1) if bool((counts == 1).all()) else None
    a = allowed.numpy()
    if np.count_nonzero(a[0]) != 1:
        return None
    if a.shape[0] > 1 and bool((np.count_nonzero(a, axis=1) != 1).any()):
        return None
    return torch.from_numpy(a.argmax(axis=1))


def _choose(
    logits: torch.Tensor,
    allowed: torch.Tensor,
    bias: torch.Tensor | None,
    opts: DecodeOptions,
    gen: torch.Generator,
    lib=None,
) -> torch.Tensor:
    """The next token of every row: logits (B, V) (modified in place), allowed (B, V) bool. One row
    on the CPU is sampled by the compiled kernels `lib` where given (the model's `Runtime.kernels`)."""
    lib = lib if logits.shape[0] == 1 and logits.device.type == "cpu" else None
    if lib is not None:
        return _choose_compiled(lib, logits, allowed, bias, opts, gen)
    logits.div_(opts.temperature)
    if bias is not None:  # tone 'loose': a log-probability penalty, after the temperature
        logits.add_(bias)
    logits.masked_fill_(~allowed, float("-inf"))
    if opts.strategy == "greedy":
        return logits.argmax(dim=1)
    p = torch.softmax(logits, dim=1)  # the model's probabilities renormalised over the allowed tokens
    if p.shape[0] == 1 and p.device.type == "cpu":
        return _choose_row(p.numpy()[0], opts, gen)
    _top_k(p, opts.top_k)
    _top_p(p, opts.top_p)
    return _draw(p, gen)


def _choose_compiled(
    lib,
    logits: torch.Tensor,
    allowed: torch.Tensor,
    bias: torch.Tensor | None,
    opts: DecodeOptions,
    gen: torch.Generator,
) -> torch.Tensor:
    """`_choose` for one row on the CPU in two compiled calls (csrc/sampling.c) around torch's
    softmax: the same arithmetic, the same filtered probabilities and the same draw from `gen`
    (tests/test_generate.py), at a tenth of the time of the NumPy row path."""
    V = logits.shape[1]
    z, a = logits.contiguous(), allowed.contiguous()
    b = None if bias is None else bias.to(torch.float32).expand(1, V).contiguous()
    lib.sample_prepare(V, z.data_ptr(), a.data_ptr(), None if b is None else b.data_ptr(), opts.temperature)
    if opts.strategy == "greedy":
        return z.argmax(dim=1)
    p = torch.softmax(z, dim=1)
    top_k = opts.top_k if 0 < opts.top_k < V else 0
    scratch, work = _row_scratch(V)
    u = scratch.uniform_(0.0, 1.0, generator=gen).item()  # torch.rand(1, generator=gen)'s value, without a new tensor
    return torch.from_numpy(
        np.array([lib.sample_row(V, p.data_ptr(), top_k, opts.top_p < 1.0, 1.0 - opts.top_p, u, work.data_ptr())])
    )


_SCRATCH = threading.local()


def _row_scratch(V: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This thread's buffers for `_choose_compiled` (one uniform, the sampler's V + 16 floats of
    work), kept between steps: `tangshi serve` decodes requests on several threads at once."""
    s = getattr(_SCRATCH, "buffers", None)
    if s is None or s[1].numel() < V + 16:
        s = _SCRATCH.buffers = (torch.empty(1), torch.empty(V + 16))
    return s


def _cumsum(x: np.ndarray) -> np.ndarray:
    """torch.cumsum of one row, through a view (no copy): the batch path's values (torch accumulates
    in float64, NumPy's float32 cumsum does not), and half the time of NumPy's float64 one."""
    return torch.cumsum(torch.from_numpy(x), 0).numpy()


def _choose_row(p: np.ndarray, opts: DecodeOptions, gen: torch.Generator) -> torch.Tensor:
    """`_top_k`, `_top_p` and `_draw` for one row on the CPU, in NumPy (p is filtered in place):
    the same arithmetic and the same draw from `gen`, token for token (tests/test_generate.py),
    without the fixed cost of a dozen small torch calls per step (a poem is ~60 steps of one row)."""
    return torch.tensor([_draw_row(_filter_row(p, opts.top_k, opts.top_p), gen)])


def _filter_row(p: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """`_top_k` then `_top_p` on one row (in place)."""
    if 0 < top_k < p.shape[0]:
        p[p < np.sort(p)[-top_k]] = 0.0
    if top_p < 1.0:
        s = np.sort(p)
        cs = _cumsum(s)
        p[p < s[np.searchsorted(cs, np.float32(1.0 - top_p) * cs[-1])]] = 0.0
    return p


def _draw_row(p: np.ndarray, gen: torch.Generator) -> int:
    """`_draw` on one row: the same uniform from `gen`, the same inverse CDF."""
    cdf = _cumsum(p)
    u = np.float32(torch.rand(1, generator=gen)[0]) * cdf[-1]
    idx = min(int(np.searchsorted(cdf, u, side="right")), p.shape[0] - 1)
    if p[idx] <= 0:  # only through rounding at the very top of the row
        idx = int(p.argmax())
    return idx


# ---------------------------------------------------------------------------- decoding
def _plain_constraint(vocab: Vocab, start: str) -> FreeConstraint:
    """No form, no repeat control: only <START>/<PAD>/<OOV> forbidden and the start text forced."""
    return FreeConstraint(vocab.itos, vocab, start=start, no_repeat=False)


def check_start(constraint, opts: DecodeOptions) -> None:
    assert opts.max_chars is not None  # DecodeOptions.__post_init__ resolves None to the strategy's bound
    if constraint.max_steps is None and len(constraint.start) > opts.max_chars:
        raise TangshiError(
            f"start text '{constraint.start}' is longer than a free-form poem may be ({opts.max_chars} characters)"
        )


_CLAUSE = re.compile(f"[^{CLAUSE_SEPARATORS}]+[{CLAUSE_SEPARATORS}]?")


def _drop_repeated_tail(text: str) -> str:
    """Free form stopped at its length bound inside a clause equal to an earlier one
    (the only place no-repeat cannot hold): drop that unfinished clause."""
    if not text or text[-1] in CLAUSE_SEPARATORS:
        return text
    parts = _CLAUSE.findall(text)
    earlier = {p[:-1] for p in parts[:-1]}
    return text[: len(text) - len(parts[-1])] if parts[-1] in earlier else text


def _finish_texts(vocab: Vocab, rows, constraint) -> list[str]:
    texts = [vocab.decode(r) for r in rows]
    if constraint.max_steps is None and getattr(constraint, "no_repeat", False):
        texts = [_drop_repeated_tail(t) for t in texts]
    return texts


@torch.no_grad()
def decode(
    model: PoetryLM,
    vocab: Vocab,
    n: int,
    opts: DecodeOptions,
    start: str = "",
    constraint=None,
    gen: torch.Generator | None = None,
) -> list[str]:
    """Generate `n` poems in one batch; returns their texts (without <EOS>).

    `constraint` (constraints.py) carries the form, rhyme, tone, acrostic, start
    text and repeat rules; without one, `start` is forced and nothing else.
    `strategy='original'` ignores both and runs `generate_original` (seed + i for poem i).
    `gen` (sampling): the random stream to draw from, so that consecutive batches continue
    one stream; by default a new one seeded with `opts.seed`."""
    if n < 1:
        raise TangshiError(f"the number of poems must be at least 1, got {n}")
    if opts.strategy == "original":
        assert opts.max_chars is not None  # DecodeOptions.__post_init__ resolves None to the strategy's bound
        return [
            generate_original(
                model, vocab, start, seed=opts.seed + i, max_chars=opts.max_chars, precision=opts.precision or "fp32"
            )
            for i in range(n)
        ]
    if constraint is None:
        constraint = _plain_constraint(vocab, start)
    check_start(constraint, opts)
    if opts.strategy == "beam":
        return beam_search(model, vocab, opts, constraint=constraint, n_best=n)
    device = next(model.parameters()).device
    if gen is None:
        gen = torch.Generator(device=device).manual_seed(opts.seed)
    with threads_for(n, device):
        return _decode_batch(model, vocab, n, opts, constraint, device, gen)


def _decode_batch(
    model, vocab: Vocab, n: int, opts: DecodeOptions, constraint, device, gen: torch.Generator
) -> list[str]:
    c = constraint
    free = c.max_steps is None
    assert opts.max_chars is not None  # DecodeOptions.__post_init__ resolves None to the strategy's bound
    max_steps = opts.max_chars + 1 if free else c.max_steps
    state = c.new_state(n)
    lib = model.runtime.kernels.on(device)
    allowed = c.mask(state, device)  # (B, V) bool
    forced = _forced(allowed)  # every row forced (punctuation, start text, heads, <EOS>): no output layer
    logits, lstm = prime(model, vocab, opts, n, device, logits=forced is None)
    topic = topic_vector(vocab, opts.title, opts.topic)
    topic = topic.to(device) if topic is not None else None
    out = []  # each step's tokens (n,); a row ends at its <EOS>, or at the length bound
    for t in range(max_steps):
        if free and t == opts.max_chars:
            break  # the length bound: the rows still writing end here
        if forced is None:
            tok = _choose(logits, allowed, with_topic(c.bias(state, device), topic, n), opts, gen, lib)
        else:
            tok = forced
        c.advance(state, tok)
        out.append(tok)
        if c.finished(state):
            break
        allowed = c.mask(state, device)
        forced = _forced(allowed)
        logits, lstm = model.step(tok, lstm, logits=forced is None)
    return _finish_texts(vocab, torch.stack(out, 1).tolist() if out else [[]] * n, c)


@torch.no_grad()
def beam_search(
    model: PoetryLM, vocab: Vocab, opts: DecodeOptions, start: str = "", constraint=None, n_best: int = 1
) -> list[str]:
    """Beam search over K = max(beam, n_best) hypotheses (score = sum of the model's
    log-probs; masks applied per hypothesis, tone 'loose' penalties added).
    Finished hypotheses (ending in <EOS>) are kept aside and the `n_best` best by
    mean log-prob per token (so that short poems are not favoured) are returned."""
    c = constraint if constraint is not None else _plain_constraint(vocab, start)
    check_start(c, opts)
    device = next(model.parameters()).device
    free = c.max_steps is None
    assert opts.max_chars is not None  # DecodeOptions.__post_init__ resolves None to the strategy's bound
    max_steps = opts.max_chars + 1 if free else c.max_steps
    assert max_steps is not None  # `free` is exactly `c.max_steps is None`
    K = max(opts.beam, n_best)
    V = len(vocab)
    with threads_for(K, device):
        logits, lstm = prime(model, vocab, opts, 1, device)
        topic = topic_vector(vocab, opts.title, opts.topic)
        topic = topic.to(device) if topic is not None else None
        state = c.new_state(1)
        prefixes: list[list[int]] = [[]]
        scores = torch.zeros(1, device=device)
        finished: list[tuple[float, list[int]]] = []
        for t in range(max_steps):
            logp = torch.log_softmax(logits, dim=1)  # (B, V)
            if free and t == opts.max_chars:  # the length bound: every live hypothesis ends here
                ends = (scores + logp[:, vocab.eos_id]).tolist()
                finished.extend((s / (t + 1), p) for s, p in zip(ends, prefixes))
                break
            allowed = c.mask(state, device)
            bias = with_topic(c.bias(state, device), topic, logp.shape[0])
            if bias is not None:
                logp = logp + bias
            cand = (scores[:, None] + logp.masked_fill(~allowed, float("-inf"))).flatten()
            top = torch.topk(cand, min(2 * K, int(torch.isfinite(cand).sum())))
            keep_rows, keep_tok, keep_scores = [], [], []
            for s, flat in zip(top.values.tolist(), top.indices.tolist()):
                row, tok = divmod(flat, V)
                if tok == vocab.eos_id:
                    finished.append((s / (t + 1), prefixes[row]))
                else:
                    keep_rows.append(row)
                    keep_tok.append(tok)
                    keep_scores.append(s)
                if len(keep_rows) == K:
                    break
            if len(finished) >= K or not keep_rows:
                break
            state = state.select(keep_rows)
            c.advance(state, keep_tok)
            rows = torch.tensor(keep_rows, device=device)
            tokens = torch.tensor(keep_tok, device=device)
            logits, lstm = model.step(tokens, lstm.select(rows))
            prefixes = [prefixes[r] + [tk] for r, tk in zip(keep_rows, keep_tok)]
            scores = torch.tensor(keep_scores, device=device)
    if not finished:
        raise TangshiError("beam search found no complete poem")
    finished.sort(key=lambda f: -f[0])
    return _finish_texts(vocab, [p for _, p in finished[:n_best]], c)


# ---------------------------------------------------------------------------- ranking
SCORE_BATCH = 64  # poems per forward pass when scoring: (64, ~60, V) log-probabilities at a time


@torch.no_grad()
def mean_log_prob(model: PoetryLM, vocab: Vocab, texts: list[str], title: str = "") -> list[float]:
    """Each text's length-normalised log-probability under the model: the mean of ln p over its
    tokens after ``<START>`` (after ``<START> title <START>`` with a title), ``<EOS>`` included
    (every token, forced ones too), in one teacher-forced pass per batch. It is −(the poem's NLL
    per token), the quantity `tangshi eval` averages."""
    model.eval()
    device = next(model.parameters()).device
    prefix = title_prefix(title, vocab)
    out: list[float] = []
    for b0 in range(0, len(texts), SCORE_BATCH):
        batch = [vocab.encode(t) + [vocab.eos_id] for t in texts[b0 : b0 + SCORE_BATCH]]
        T = max(len(ids) for ids in batch) + len(prefix) - 1
        x = torch.full((len(batch), T), vocab.pad_id, dtype=torch.long)
        y = torch.full((len(batch), T), vocab.pad_id, dtype=torch.long)
        for r, ids in enumerate(batch):
            row = prefix + ids[:-1]
            x[r, : len(row)] = torch.tensor(row)
            y[r, len(prefix) - 1 : len(row)] = torch.tensor(ids)
        logits, _ = model(x.to(device))
        logp = torch.log_softmax(logits.float(), dim=-1).gather(2, y.to(device).unsqueeze(2)).squeeze(2)
        real = (y != vocab.pad_id).to(device)
        out += (logp.masked_fill(~real, 0.0).sum(1) / real.sum(1)).tolist()
    return out
