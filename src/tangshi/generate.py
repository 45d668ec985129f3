"""Decoding: the seed's procedure, greedy, sampling (temperature, top-k, top-p) and beam search.

All strategies run the LSTM one step at a time with its state carried, for a
whole batch of poems at once; the prefix is never re-run. Constraints (forms,
rhyme, tone, acrostic, no repeats; `constraints.py`) act as masks on the
log-probabilities: a disallowed character gets −inf, everything allowed keeps
its relative model probability.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .errors import TangshiError
from .model import PoetryLM
from .vocab import Vocab

STRATEGIES = ("seed", "greedy", "sample", "beam")
SEED_MAX_CHARS = 95  # the seed stops its generated text at 95 characters
FREE_MAX_CHARS = 63  # other strategies in free form: the training length bound


@dataclass(frozen=True)
class DecodeOptions:
    strategy: str = "sample"
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    beam: int = 4
    seed: int = 0
    max_chars: int = FREE_MAX_CHARS

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise TangshiError(f"unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})")
        if self.temperature <= 0:
            raise TangshiError(f"--temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise TangshiError(f"--top-k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise TangshiError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.beam < 1:
            raise TangshiError(f"--beam must be >= 1, got {self.beam}")


def filter_logits(logp: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the top-k and/or the smallest set with cumulative probability ≥ top_p. logp (B, V)."""
    if top_k and top_k < logp.size(-1):
        kth = torch.topk(logp, top_k, dim=-1).values[:, -1:]
        logp = logp.masked_fill(logp < kth, float("-inf"))
    if top_p < 1.0:
        sorted_lp, order = torch.sort(logp, dim=-1, descending=True)
        probs = torch.softmax(sorted_lp, dim=-1)
        cum = probs.cumsum(-1)
        drop = cum - probs > top_p  # keep the token that crosses top_p
        sorted_lp = sorted_lp.masked_fill(drop, float("-inf"))
        logp = torch.full_like(logp, float("-inf")).scatter(-1, order, sorted_lp)
    return logp


def _disallow_specials(vocab: Vocab, device) -> torch.Tensor:
    """(V,) bool: never generate <START>, <PAD> or <OOV>."""
    allowed = torch.ones(len(vocab), dtype=torch.bool, device=device)
    allowed[[vocab.start_id, vocab.pad_id, vocab.oov_id]] = False
    return allowed


@torch.no_grad()
def generate_seed(model: PoetryLM, vocab: Vocab, start: str, seed: int = 0,
                  max_chars: int = SEED_MAX_CHARS) -> str:
    """The seed's procedure: feed <START> and the start character, then repeatedly
    take the top-1 token; when it is <EOS>, continue from a uniformly random
    character instead (the LSTM state is kept); stop at `max_chars` characters."""
    rng = random.Random(seed)
    model.eval()
    text = start
    logp, state = model.step(torch.tensor([vocab.start_id]), None)
    for ch in start:
        logp, state = model.step(torch.tensor([vocab.id_of(ch)]), state)
    chars = vocab.chars
    while len(text) < max_chars:
        nxt = int(logp[0].argmax())
        if nxt == vocab.eos_id:
            nxt = vocab.stoi[rng.choice(chars)]
        text += vocab.itos[nxt]
        logp, state = model.step(torch.tensor([nxt]), state)
    return text


@torch.no_grad()
def decode(model: PoetryLM, vocab: Vocab, n: int, opts: DecodeOptions, start: str = "",
           constraint=None) -> list[str]:
    """Generate `n` poems in one batch. Returns their texts (without <EOS>)."""
    if opts.strategy == "seed":
        return [generate_seed(model, vocab, start, seed=opts.seed + i, max_chars=opts.max_chars) for i in range(n)]
    if opts.strategy == "beam":
        return beam_search(model, vocab, opts, start, constraint, n_best=n)
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(opts.seed)
    base = _disallow_specials(vocab, device)
    start_ids = [vocab.id_of(ch) for ch in start] if constraint is None else []
    prefixes: list[list[int]] = [list(start_ids) for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool, device=device)
    logp, state = model.step(torch.full((n,), vocab.start_id, device=device), None)
    for tok in start_ids:
        logp, state = model.step(torch.full((n,), tok, device=device), state)
    max_steps = opts.max_chars + 1 if constraint is None else constraint.max_steps
    for _ in range(max_steps):
        logp = logp / opts.temperature
        allowed = base.expand(n, -1)
        if constraint is not None:
            allowed = allowed & constraint.mask(prefixes).to(device)
            bias = constraint.bias(prefixes) if hasattr(constraint, "bias") else None
            if bias is not None:
                logp = logp + bias.to(device)
        else:
            over = torch.tensor([len(p) >= opts.max_chars for p in prefixes], device=device)
            if over.any():  # free form: force <EOS> at the length bound
                eos_only = torch.zeros_like(base)
                eos_only[vocab.eos_id] = True
                allowed = torch.where(over[:, None], eos_only, allowed)
        logp = logp.masked_fill(~allowed, float("-inf"))
        if opts.strategy == "greedy":
            nxt = logp.argmax(-1)
        else:
            probs = torch.softmax(filter_logits(logp, opts.top_k, opts.top_p), -1)
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, vocab.eos_id), nxt)
        for row, tok in enumerate(nxt.tolist()):
            if not done[row] and tok != vocab.eos_id:
                prefixes[row].append(tok)
        done |= nxt == vocab.eos_id
        if bool(done.all()):
            break
        logp, state = model.step(nxt, state)
    return [vocab.decode(p) for p in prefixes]


@torch.no_grad()
def beam_search(model: PoetryLM, vocab: Vocab, opts: DecodeOptions, start: str = "", constraint=None,
                n_best: int = 1) -> list[str]:
    """Beam search over K = max(beam, n_best) hypotheses (score = sum of log-probs), masks
    applied per hypothesis. Finished hypotheses (ending in <EOS>) are kept aside and the
    `n_best` best by mean log-prob (so that short poems are not favoured) are returned."""
    model.eval()
    device = next(model.parameters()).device
    K = max(opts.beam, n_best)
    base = _disallow_specials(vocab, device)
    start_ids = [vocab.id_of(ch) for ch in start] if constraint is None else []
    logp, state = model.step(torch.tensor([vocab.start_id], device=device), None)
    for tok in start_ids:
        logp, state = model.step(torch.tensor([tok], device=device), state)
    prefixes = [list(start_ids)]
    scores = torch.zeros(1, device=device)
    finished: list[tuple[float, list[int]]] = []
    max_steps = opts.max_chars + 1 if constraint is None else constraint.max_steps
    for _ in range(max_steps):
        B = len(prefixes)
        allowed = base.expand(B, -1)
        if constraint is not None:
            allowed = allowed & constraint.mask(prefixes).to(device)
            bias = constraint.bias(prefixes) if hasattr(constraint, "bias") else None
            if bias is not None:
                logp = logp + bias.to(device)
        else:
            over = torch.tensor([len(p) >= opts.max_chars for p in prefixes], device=device)
            allowed = allowed.clone()
            allowed[over] = False
            allowed[over, vocab.eos_id] = True
        cand = (scores[:, None] + logp.masked_fill(~allowed, float("-inf"))).flatten()
        top = torch.topk(cand, min(2 * K, int(torch.isfinite(cand).sum())))
        keep_rows, keep_tok, keep_scores = [], [], []
        for s, flat in zip(top.values.tolist(), top.indices.tolist()):
            row, tok = divmod(flat, len(vocab))
            if tok == vocab.eos_id:
                finished.append((s / (len(prefixes[row]) + 1), prefixes[row]))
            else:
                keep_rows.append(row); keep_tok.append(tok); keep_scores.append(s)
            if len(keep_rows) == K:
                break
        if len(finished) >= K or not keep_rows:
            break
        rows = torch.tensor(keep_rows, device=device)
        state = _select_state(state, rows)
        prefixes = [prefixes[r] + [t] for r, t in zip(keep_rows, keep_tok)]
        scores = torch.tensor(keep_scores, device=device)
        logp, state = model.step(torch.tensor(keep_tok, device=device), state)
    if not finished:
        raise TangshiError("beam search found no complete poem")
    finished.sort(key=lambda f: -f[0])
    return [vocab.decode(p) for _, p in finished[:n_best]]


def _select_state(state, rows: torch.Tensor):
    if isinstance(state, tuple):  # nn.LSTM: (h, c) each (L, B, H)
        return tuple(s[:, rows] for s in state)
    return [(h[rows], c[rows]) for h, c in state]
