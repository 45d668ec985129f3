"""`tangshi experiment titles`: does a titled model write on its title?

Two measures, on the dev split of a prepared folder (poems the model did not train on):

1. Dev perplexity of the same poems read after their titles and without them (`tangshi eval` of a
   titled model reports both).
2. Topic fidelity. For the first N dev poems that have a title, write one poem on that title (in the
   real poem's form when it has one of the four, else free), as `tangshi generate --title` writes it.
   Its overlap with a poem is the share of its distinct characters that the poem also holds (marks
   left out). The report compares the overlap with the real poem of the title against the overlap with
   a random other poem of the same N and the same form (a fixed derangement), and does the same for poems written
   without a title, which should show no such gap: what the title adds is the difference. A third arm
   writes on the title with the title words' bias off (`--topic 0`): the model alone.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

from tangshi.data.prepare import read_split, read_titles
from tangshi.data.splits import load_split
from tangshi.errors import TangshiError
from tangshi.experiments.distance import _shown
from tangshi.experiments.report import _header
from tangshi.model.checkpoint import load_checkpoint
from tangshi.outputs import OutputFolder
from tangshi.text import is_han
from tangshi.verse import prosody
from tangshi.verse.topics import TOPIC_WEIGHT

NAMES = {"md": "titles.md", "json": "titles.json"}
N_TITLES = 200
SAMPLES = 5  # poems written on each title: one sample a title left the ratio ±0.15 from run to run
PAIR_SEEDS = range(20)  # the derangements that pair each poem with a random other one; the mean is reported
ARMS = {  # what each written poem is given: (its title?, the title words' weight or None for the default)
    "titled": (True, None),
    "model_only": (True, 0.0),
    "untitled": (False, None),
}


def overlap(generated: str | list[str], poem: str) -> float:
    """The share of the generated poem's distinct characters (marks left out) that `poem` holds; for
    several poems written on one title, the mean of their shares."""
    if isinstance(generated, list):
        return sum(overlap(g, poem) for g in generated) / len(generated)
    chars = {ch for ch in generated if is_han(ch)}
    return len(chars & set(poem)) / len(chars) if chars else 0.0


def derangement(n: int, seed: int) -> list[int]:
    """A permutation of range(n) that moves every index (n ≥ 2), drawn with `seed`."""
    if n < 2:
        raise TangshiError("topic fidelity needs at least two titled dev poems")
    rng = random.Random(seed)
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def partners(shapes: list[str], seed: int) -> list[int]:
    """For each poem, another of the same shape (a form's name, or "free"): a derangement within each
    shape, so that the random poem is as long as the real one and the comparison measures the title,
    not the length. A shape held by one poem only takes a partner from all the others."""
    out = derangement(len(shapes), seed)
    for shape in sorted(set(shapes)):
        members = [i for i, s in enumerate(shapes) if s == shape]
        if len(members) >= 2:
            for i, j in zip(members, derangement(len(members), seed)):
                out[i] = members[j]
    return out


def fidelity(real: list[str], written: list, partner: list) -> dict:
    """Mean overlap of each written poem with its real poem and with the real poem at partner[i]
    (with several pairings, the mean over them)."""
    pairings = partner if partner and isinstance(partner[0], list) else [partner]
    own = [overlap(w, r) for w, r in zip(written, real, strict=True)]
    others = [[overlap(w, real[p]) for w, p in zip(written, ps, strict=True)] for ps in pairings]
    mean_own = sum(own) / len(own)
    mean_other = sum(sum(o) / len(o) for o in others) / len(others)
    return {"own": mean_own, "random": mean_other, "ratio": mean_own / mean_other if mean_other else None}


def chosen(data_dir: Path, vocab, n: int) -> list[tuple[str, str]]:
    """(title, poem) of the first `n` dev poems with a title the vocabulary can spell."""
    poems = read_split(data_dir, "dev")
    titles = read_titles(data_dir, "dev", len(poems))
    pairs = [(t, p) for t, p in zip(titles, poems) if t and all(ch in vocab for ch in t)]
    return pairs[:n]


def shape(poem: str) -> str:
    """The poem's form name, or "free"."""
    form = prosody.infer_form(poem)
    return form.name if form else "free"


def write(
    model, vocab, pairs: list[tuple[str, str]], titled: bool, topic: float | None = None, n: int = SAMPLES
) -> list[list[str]]:
    """`n` poems per pair, on its title (or without one), in the real poem's form, seed = its index;
    `topic`: the title words' weight (None: the default)."""
    from tangshi.decode.poems import records
    from tangshi.decode.request import PoemRequest

    out = []
    for i, (title, poem) in enumerate(pairs):
        request = PoemRequest(form=shape(poem), title=title if titled else None, seed=i, n=n)
        if topic is not None:
            request = dataclasses.replace(request, topic=topic)
        stream, _ = records(model, vocab, request)
        out.append([r["text"] for r in stream])
    return out


def run_titles(checkpoint, data_dir, out, n_titles: int = N_TITLES, argv=None, replace: bool = False, log=print):
    from tangshi.train.evaluate import evaluate

    model, vocab, _ = load_checkpoint(checkpoint)
    if not model.config.titles:
        raise TangshiError(f"{checkpoint} was trained without titles (tangshi train --titles)")
    data_dir = Path(data_dir)
    with OutputFolder(out, "reports", replace=replace, names=list(NAMES.values())) as folder:
        ppl = {
            k: evaluate(model, load_split(data_dir, "dev", vocab, titled=k == "titled"))["dev_ppl"]
            for k in ("titled", "untitled")
        }
        log(f"dev perplexity: {ppl['titled']:.2f} with titles, {ppl['untitled']:.2f} without")
        pairs = chosen(data_dir, vocab, n_titles)
        shapes = [shape(p) for _, p in pairs]
        partner = [partners(shapes, seed) for seed in PAIR_SEEDS]
        real = [p for _, p in pairs]
        written = {k: write(model, vocab, pairs, titled, topic) for k, (titled, topic) in ARMS.items()}
        res = {
            "checkpoint": _shown(checkpoint),
            "data": str(data_dir),
            "dev_ppl": ppl,
            "titles": len(pairs),
            "fidelity": {k: fidelity(real, w, partner) for k, w in written.items()},
            "samples": [
                {"title": t, "real": p, "written": w[0]} for (t, p), w in zip(pairs[:8], written["titled"][:8])
            ],
        }
        with folder.staged() as stage:
            (stage / NAMES["md"]).write_text(_header("Writing on a title", argv) + _report(res), encoding="utf-8")
            (stage / NAMES["json"]).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    return {**res, "report": str(folder.path / NAMES["md"])}


def _report(res: dict) -> str:
    f, ppl = res["fidelity"], res["dev_ppl"]
    rows = "\n".join(
        f"| {label} | {f[k]['own']:.3f} | {f[k]['random']:.3f} | {f[k]['ratio']:.2f}× |"
        for k, label in (
            ("titled", f"on the dev poem's title (`--title`, `--topic {TOPIC_WEIGHT:g}`, the default)"),
            ("model_only", "on the title, the model alone (`--topic 0`)"),
            ("untitled", "without a title (control)"),
        )
    )
    samples = "\n".join(f"| {s['title']} | {s['written']} | {s['real']} |" for s in res["samples"])
    return f"""
Model: {res["checkpoint"]}. Data: the dev split of {res["data"]} (poems the model did not train on).

## Dev perplexity, the same poems with and without their titles

| read | dev perplexity |
|---|---|
| after the poem's title | {ppl["titled"]:.2f} |
| without a title | {ppl["untitled"]:.2f} |

## Topic fidelity, {res["titles"]} dev titles

{SAMPLES} poems written on each of the first {res["titles"]} titled dev poems' titles (the real poem's form when it
has one of the four, else free; `tangshi generate` defaults, `--n {SAMPLES} --seed` the poem's index). Overlap =
the share of the written poem's distinct characters that a poem also holds (a title's mean over its {SAMPLES});
"random" pairs each written poem with another of the
{res["titles"]} real poems of the same form (free verse with free verse), averaged over {len(PAIR_SEEDS)} such
pairings (derangements drawn with seeds 0–{len(PAIR_SEEDS) - 1}), so that the control, written without a title,
reads about 1×. `--topic` leans the poem toward the characters real poems of titles with these characters use
(`verse/topics.py`, learned from the train split only; its weight was chosen on dev titles 201–400, not these).

| written | overlap with the real poem | with a random dev poem | ratio |
|---|---|---|---|
{rows}

## The first eight (the first of the {SAMPLES} poems written on each)

| title | written on it | the real poem |
|---|---|---|
{samples}
"""
