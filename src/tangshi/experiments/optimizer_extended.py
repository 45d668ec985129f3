"""The optimiser study's second part, which narrows and completes the first (optimizers.py): every
run at the final budget (`epochs`, seed 0, weight decay 0), so that each verdict is scoped to what
was run.

1. The rate again, on a finer grid (about ×1.5–2 apart), at the final budget: the first part picked
   it at 5 epochs and weight decay 1e-4 and reused it at 20 epochs.
2. Adam with a schedule (cosine, the project's own default, and 1/√t, the decay Adagrad's
   accumulator builds in), against Adam at a constant rate and Adagrad.
3. Why Adagrad does well here: the embedding rows of frequent and rare characters, moved in the
   steps where the character occurs and in those where it does not (study.Recorder's "rows" probe).
4. What each keeps: the optimiser's state, counted on the study's model after one step.

Rendered from the report's JSON alone, as the first part is.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from tangshi.data.splits import load_split
from tangshi.data.vocab import Vocab
from tangshi.experiments.report import COLOURS, pyplot
from tangshi.experiments.study import ROW_BUCKETS, frequency_buckets
from tangshi.model.checkpoint import load_checkpoint
from tangshi.model.lm import PoetryLM
from tangshi.model.spec import ModelConfig

KINDS = ("fine", "sched-cosine", "sched-invsqrt", "rows")
LABEL = {"fine": "constant", "sched-cosine": "cosine", "sched-invsqrt": "1/√t"}


def kind_of(name: str) -> str | None:
    """The part of the study a run belongs to, by its name (fine-…, sched-cosine-…, rows-…)."""
    return next((k for k in KINDS if name.startswith(k + "-")), None)


def state_sizes(data_dir: Path, model_over: dict) -> dict:
    """The optimiser state Adam and Adagrad keep for the study's model: the tensors beside each
    parameter after one step (the step counter left out) and their floats, counted on torch.optim itself."""
    vocab = Vocab.load(Path(data_dir) / "vocab.json")
    model = PoetryLM(ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, **model_over))
    params = [p for p in model.parameters() if p.requires_grad]
    out: dict = {"parameters": sum(p.numel() for p in params), "tensors": len(params)}
    for name, cls in (("adam", torch.optim.Adam), ("adagrad", torch.optim.Adagrad)):
        opt = cls(params, lr=1e-3)
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
        kept = [v for st in opt.state.values() for k, v in st.items() if k != "step" and torch.is_tensor(v)]
        out[name] = {"per_parameter": len(kept) / len(params), "floats": sum(v.numel() for v in kept)}
    return out


@torch.no_grad()
def nll_by_frequency(checkpoint: Path, data_dir: Path) -> dict:
    """Dev NLL of a checkpoint split by the target character's training-frequency bucket
    (study.ROW_BUCKETS, and <EOS> apart: it is no character, and every poem ends with one):
    {bucket: {"nll": mean −ln p, "tokens": n}}, PAD excluded."""
    model, vocab, _ = load_checkpoint(checkpoint)
    model.eval()
    split = load_split(Path(data_dir), "dev", vocab)
    names = (*ROW_BUCKETS, "<EOS>")
    bucket = torch.as_tensor(frequency_buckets(Path(data_dir)))
    bucket[vocab.eos_id] = len(ROW_BUCKETS)
    sums, counts = torch.zeros(len(names), dtype=torch.float64), torch.zeros(len(names))
    for start in range(0, len(split.inputs), 256):
        x, y = split.inputs[start : start + 256], split.targets[start : start + 256].flatten()
        logits, _ = model(x)
        nll = F.cross_entropy(logits.float().flatten(0, 1), y, reduction="none").double()
        real = y != vocab.pad_id
        b = bucket[y[real]]
        sums += torch.bincount(b, weights=nll[real], minlength=len(names))
        counts += torch.bincount(b, minlength=len(names))
    return {
        name: {"nll": float(sums[k] / counts[k]) if counts[k] else None, "tokens": int(counts[k])}
        for k, name in enumerate(names)
    }


def by_frequency(doc: dict, work: Path, data_dir: Path, earlier: list[dict] | None = None) -> dict:
    """For Adam and Adagrad, the best constant-rate run of the second part: its best checkpoint's dev NLL
    by character frequency (nll_by_frequency). A checkpoint no longer in the work folder: the measurement
    an earlier report made of the same run (`earlier`: the by_frequency of each earlier report JSON on
    the same data), marked "taken"; neither: {"run", "lr", "missing": True}, which the report says."""
    out = {}
    for (opt, sched), grid in by_rate(doc).items():
        if sched != "constant" or opt not in ("adam", "adagrad"):
            continue
        lr, rec = min(grid.items(), key=lambda kv: _best(kv[1]))
        if not math.isfinite(_best(rec)):
            continue
        name = rec["spec"]["name"]
        best = Path(work) / name / "best"
        same = [e[opt] for e in earlier or [] if isinstance(e.get(opt), dict) and e[opt].get("run") == name]
        if best.is_dir():
            out[opt] = {"run": name, "lr": lr, "buckets": nll_by_frequency(best, data_dir)}
        elif taken := next((e for e in same if isinstance(e.get("buckets"), dict)), None):
            out[opt] = {"run": name, "lr": lr, "buckets": taken["buckets"], "taken": True}
        else:
            out[opt] = {"run": name, "lr": lr, "missing": True}
    return out


def _runs(doc: dict, kind: str) -> list[tuple[str, dict]]:
    return [(n, r) for n, r in doc["runs"].items() if kind_of(n) == kind]


def _best(rec: dict) -> float:
    return math.inf if rec["diverged"] or not rec["best"] else rec["best"]["dev_ppl"]


def _ppl(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "diverged at every rate run"


def _cell(rec: dict, bold: bool = False) -> str:
    mark = "†" if rec["spec"]["name"].startswith("final-") else ""
    if rec["diverged"]:
        return "diverged" + mark
    b, last = rec["best"], rec["history"][-1]["dev_ppl"]
    text = f"{b['dev_ppl']:.1f} (ep {b['epoch']}; last {last:.1f})"
    return (f"**{text}**" if bold else text) + mark


def _as_fine(doc: dict) -> list[tuple[dict, dict | None]]:
    """The first part's final runs whose training settings are those of a fine-grid cell (weight decay 0,
    seed 0, the same budget, a constant rate), each with the fine run of the same settings or None."""
    fine = {(r["spec"]["train"]["optimizer"], r["spec"]["train"]["lr"]): r for _, r in _runs(doc, "fine")}
    if not fine:
        return []
    first = next(iter(fine.values()))["spec"]

    def settings(spec: dict) -> tuple:
        return spec["model"], {k: v for k, v in spec["train"].items() if k not in ("optimizer", "lr")}

    out = []
    for name, rec in doc["runs"].items():
        t = rec["spec"]["train"]
        if name.startswith("final-") and settings(rec["spec"]) == settings(first):
            out.append((rec, fine.get((t["optimizer"], t["lr"]))))
    return out


def by_rate(doc: dict) -> dict:
    """{(optimiser, schedule label): {lr: record}} of the fine grid and the scheduled runs; a constant-rate
    cell the fine grid has not run is taken from the first part's final run of the same settings."""
    out: dict = {}
    for kind in ("fine", "sched-cosine", "sched-invsqrt"):
        for _, rec in _runs(doc, kind):
            t = rec["spec"]["train"]
            out.setdefault((t["optimizer"], LABEL[kind]), {})[t["lr"]] = rec
    for rec, twin in _as_fine(doc):
        if twin is None:
            t = rec["spec"]["train"]
            out.setdefault((t["optimizer"], "constant"), {})[t["lr"]] = rec
    return out


def _repeats(doc: dict) -> list[str]:
    """A note on the cells taken from the first part, and on the settings both parts trained: the
    difference of a repeat is the floor under which one seed ranks nothing."""
    pairs = _as_fine(doc)
    if not pairs:
        return []
    lines = [
        "† the first part's final run of the same settings (its update probe only reads the weights), "
        "not trained again."
    ]
    for rec, twin in pairs:
        if twin is not None and math.isfinite(_best(rec)) and math.isfinite(_best(twin)):
            t = rec["spec"]["train"]
            a, b = _best(twin), _best(rec)
            lines.append(
                f"The same settings trained twice ({t['optimizer']} lr {t['lr']:g}: {a:.2f} here, {b:.2f} in the "
                f"first part, {abs(a - b) / min(a, b) * 100:.1f}% apart, on two machines): a gap of that size "
                "between two cells of one seed is noise."
            )
    return ["", *lines, ""]


def bottom(doc: dict) -> str:
    """The second part in one sentence for the bottom line ("" before any of its runs is finished)."""
    best = {k: min(grid.items(), key=lambda kv: _best(kv[1])) for k, grid in by_rate(doc).items()}
    if not best:
        return ""
    ranked = sorted(best.items(), key=lambda kv: _best(kv[1][1]))
    said = ", ".join(f"{opt} {sched} {_ppl(_best(rec))} (lr {lr:g})" for (opt, sched), (lr, rec) in ranked)
    return (
        f"Re-run at the full budget with weight decay 0 and a finer grid, Adam also with a schedule (seed 0, "
        f"the best rate of each): {said}."
    )


def section(doc: dict, names: dict) -> list[str]:
    """The report's second part: empty when the JSON holds none of its runs (a report of the first part only)."""
    table = by_rate(doc)
    rows = _runs(doc, "rows")
    if not table and not rows:
        return []
    epochs = doc["budget"]["epochs"]
    lines = ["", f"## The rate again, and schedules ({epochs} epochs, weight decay 0, seed 0)\n"]
    lines.append(
        "The first part chose each rate at the sweep's budget and weight decay 1e-4; here every run has the "
        f"final budget ({epochs} epochs) and no weight decay, on a finer grid, and Adam also gets the schedules "
        "the first part left out: cosine (the project's own default, from the peak rate down to 0) and "
        "1/√t (lr / √(1 + epochs done), the decay Adagrad's accumulator builds in). Each cell: best dev "
        "perplexity (its epoch; the last epoch's). One seed: a ranking within 1–2% is no ranking.\n"
    )
    lrs = sorted({lr for grid in table.values() for lr in grid})
    if lrs:
        lines.append("| optimiser | schedule | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
        lines.append("|---|---|" + "---|" * len(lrs))
        for (opt, sched), grid in sorted(
            table.items(), key=lambda kv: (kv[0][0], list(LABEL.values()).index(kv[0][1]))
        ):
            best = min(grid.values(), key=_best)
            cells = [_cell(grid[lr], grid[lr] is best) if lr in grid else "" for lr in lrs]
            lines.append(f"| {opt} | {sched} | " + " | ".join(cells) + " |")
        lines += _repeats(doc)
        lines.append(f"\n![perplexity against the rate]({names['rates']})\n")
    lines += _rows_section(rows)
    lines += _frequency_section(doc.get("by_frequency") or {})
    lines += _state_section(doc.get("state"))
    lines.append("### Verdicts of the second part (computed from the tables above)\n")
    lines += verdicts(doc)
    return lines


def _rows_section(rows: list[tuple[str, dict]]) -> list[str]:
    if not rows:
        return []
    lines = ["### The embedding rows: what Adagrad does with a rare character\n"]
    lines.append(
        "Mean change of one embedding row in one step (L2 norm), by the character's frequency rank in the "
        "training split, in the steps where the character occurs in the batch (its gradient row is not zero) "
        "and in those where it does not; the first and the last epoch of a "
        + " and ".join(sorted({f"{r['spec']['train']['epochs']}-epoch" for _, r in rows}))
        + " run (seed "
        + ", ".join(sorted({str(r["spec"]["train"].get("seed", 0)) for _, r in rows}))
        + ") of each optimiser at its first part's best rate, weight decay 0.\n"
    )
    lines.append(
        "| optimiser | epoch | rows | step, present | step, absent | present / absent | row-steps present / absent |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for _, rec in rows:
        t, probes = rec["spec"]["train"], rec.get("probes", {})
        steps = sorted((int(k) for k, v in probes.items() if "rows" in v))
        ends = [(1, steps[0])] + ([(len(steps), steps[-1])] if len(steps) > 1 else []) if steps else []
        for epoch, step in ends:
            for bucket, v in probes[str(step)]["rows"].items():
                if v["present_rows"] == 0 and not v.get("absent_rows"):
                    continue  # no character of the vocabulary in this bucket
                never = v.get("absent_rows") == 0  # every row of the bucket was in every batch
                absent = "never absent" if never else f"{v['absent']:.4f}"
                ratio = "" if never else f"{v['present'] / v['absent']:.1f}×" if v["absent"] > 0 else "∞"
                lines.append(
                    f"| {t['optimizer']} lr {t['lr']:g} | {epoch} | {bucket} | {v['present']:.4f} "
                    f"| {absent} | {ratio} | {v['present_rows']:,} / {_count(v.get('absent_rows'))} |"
                )
    lines.append("")
    return lines


def _gaps(freq: dict) -> dict:
    """Per bucket both optimisers read, Adam's summed dev NLL less Adagrad's (its tokens × the difference)."""
    a, g = freq["adam"]["buckets"], freq["adagrad"]["buckets"]
    return {
        k: (a[k]["nll"] - g[k]["nll"]) * a[k]["tokens"]
        for k in a
        if a[k]["nll"] is not None and g[k]["nll"] is not None
    }


def _frequency_section(freq: dict) -> list[str]:
    """Adam's and Adagrad's dev NLL by character frequency, and where Adagrad's lead comes from."""
    missing = [e["run"] for e in freq.values() if e.get("missing")]
    if missing:
        return [
            "### Where the gap lies: dev NLL by the character's frequency\n",
            f"Not measured: the best checkpoint of {' and '.join(missing)} is not in the work folder, and no "
            "earlier report of the same data measured it.\n",
        ]
    if not ("adam" in freq and "adagrad" in freq):
        return []
    a, g = freq["adam"], freq["adagrad"]
    lines = ["### Where the gap lies: dev NLL by the character's frequency\n"]
    taken = [e["run"] for e in (a, g) if e.get("taken")]
    lines.append(
        f"The best checkpoint of each optimiser's best constant rate here (Adam lr {a['lr']:g}, Adagrad lr "
        f"{g['lr']:g}), every dev target by its character's training-frequency rank. Share of the gap = the "
        "bucket's tokens × its difference, over the whole dev set's summed difference."
        + (
            f" The figures of {' and '.join(taken)} are an earlier report's measurement of the same checkpoint, "
            "which is no longer in the work folder."
            if taken
            else ""
        )
        + "\n"
    )
    lines.append("| characters | dev tokens | Adam NLL | Adagrad NLL | Adam − Adagrad | share of the gap |")
    lines.append("|---|---|---|---|---|---|")
    gaps = _gaps(freq)
    total = sum(gaps.values())
    for k, d in gaps.items():
        share = f"{d / total:.0%}" if total else "–"
        lines.append(
            f"| {k} | {a['buckets'][k]['tokens']:,} | {a['buckets'][k]['nll']:.3f} | {g['buckets'][k]['nll']:.3f} "
            f"| {d / a['buckets'][k]['tokens']:+.3f} | {share} |"
        )
    lines.append("")
    return lines


def _frequency_verdict(freq: dict) -> list[str]:
    """Whether Adagrad's lead over Adam sits on the rarer characters more than their share of the tokens."""
    if not ("adam" in freq and "adagrad" in freq) or any(e.get("missing") for e in freq.values()):
        return []
    a, gap = freq["adam"]["buckets"], _gaps(freq)
    both = list(gap)
    total, tokens = sum(gap.values()), sum(a[k]["tokens"] for k in both)
    rare = [k for k in both if k in ("501-2000", "rarer")]
    if total <= 0 or not rare:
        return [f"- Adagrad's best checkpoint here does not read the dev set better than Adam's ({total:+.0f} nats)."]
    share, weight = sum(gap[k] for k in rare) / total, sum(a[k]["tokens"] for k in rare) / tokens
    word = "more than" if share > weight * 1.2 else "about" if share > weight * 0.8 else "less than"
    return [
        f"- Of Adagrad's lead in dev NLL over Adam ({total / tokens:.3f} nats a token), {share:.0%} comes from the "
        f"characters past rank 500, which are {weight:.0%} of the dev tokens: {word} their share"
        + (", as the account of Adagrad's big steps for rare rows predicts" if word == "more than" else "")
        + f" (the best checkpoints of {freq['adam'].get('run', 'adam')} and {freq['adagrad'].get('run', 'adagrad')}:"
        " one seed each)."
    ]


def _run_scope(rec: dict) -> str:
    """The seed and budget one run's verdict rests on."""
    t = rec["spec"]["train"]
    e = t["epochs"]
    return f"seed {t.get('seed', 0)}, {e} epoch{'' if e == 1 else 's'}, weight decay {t.get('weight_decay', 0):g}"


def _count(n: int | None) -> str:
    return "not recorded" if n is None else f"{n:,}"


def _state_section(state: dict | None) -> list[str]:
    if not state:
        return []
    a, g = state["adam"], state["adagrad"]
    return [
        "### What each optimiser keeps\n",
        f"Counted on torch.optim after one step of the study's model ({state['parameters']:,} weights in "
        f"{state['tensors']} tensors): Adam keeps {a['per_parameter']:g} tensors beside each parameter (the "
        f"moving means of g and g²), {a['floats']:,} floats; Adagrad keeps {g['per_parameter']:g} (the sum of "
        f"g²), {g['floats']:,} floats: half of Adam's state, {4 * (a['floats'] - g['floats']) / 2**20:.1f} MiB "
        "less in float32.\n",
    ]


def _where(lr: float, grid: list[float]) -> str:
    """Whether the best rate `lr` is bracketed by the rates run (`grid`, sorted)."""
    if len(grid) == 1:
        return "the one rate run: not bracketed"
    if lr in (grid[0], grid[-1]):
        return f"at the edge of the {len(grid)} rates run, so a better one may lie beyond"
    return f"inside the {len(grid)} rates run"


def verdicts(doc: dict) -> list[str]:
    """Each claim of the second part, from its numbers, scoped to seed 0 and the final budget."""
    out = []
    table = by_rate(doc)
    best = {k: min(grid.items(), key=lambda kv: _best(kv[1])) for k, grid in table.items()}
    for opt in ("adam", "adagrad"):
        if (opt, "constant") in best:
            lr, rec = best[(opt, "constant")]
            grid = sorted(table[(opt, "constant")])
            if not math.isfinite(_best(rec)):
                out.append(f"- {opt}, constant rate: diverged at every rate run ({', '.join(f'{x:g}' for x in grid)}).")
                continue
            out.append(
                f"- {opt}, constant rate ({_run_scope(rec)}): best at lr {lr:g}, {_best(rec):.2f} ({_where(lr, grid)})."
            )
    if ("adagrad", "constant") in best:
        ag = _best(best[("adagrad", "constant")][1])
        for sched in ("constant", "cosine", "1/√t"):
            if ("adam", sched) in best:
                lr, rec = best[("adam", sched)]
                if not (math.isfinite(ag) and math.isfinite(_best(rec))):
                    continue  # a diverged side: said in its own line, nothing to compare
                gap = (_best(rec) - ag) / ag
                word = "behind" if gap > 0.02 else "ahead of" if gap < -0.02 else "level with (within 2%)"
                where = _where(lr, sorted(table[("adam", sched)]))
                out.append(
                    f"- Adam with a {sched} rate (best lr {lr:g}: {_best(rec):.2f}; {where}) is {word} Adagrad's "
                    f"best ({ag:.2f}), {abs(gap) * 100:.1f}% ({_run_scope(rec)}: one seed, a direction, not a ranking)."
                )
    out += _frequency_verdict(doc.get("by_frequency") or {})
    for _, rec in _runs(doc, "rows"):
        probes = rec.get("probes", {})
        steps = sorted(int(k) for k, v in probes.items() if "rows" in v)
        if not steps:
            continue
        rows = probes[str(steps[-1])]["rows"]
        t = rec["spec"]["train"]
        measured = [v["absent"] for v in rows.values() if v.get("absent_rows", 1) > 0]
        if not measured:
            continue  # every row was in every batch: no step without its character to measure
        absent = max(measured)
        rare, common = rows.get("rarer"), rows.get("top 50")
        spread = ""
        if rare and common and common["present"]:
            times = rare["present"] / common["present"]
            spread = f"; a row of the rarer characters moves {times:.1f}× as far as one of the 50 commonest"
        scope = _run_scope(rec)
        if absent == 0:
            out.append(f"- {t['optimizer']} ({scope}): a row moves only in a step where its character occurs{spread}.")
        else:
            out.append(
                f"- {t['optimizer']} ({scope}): rows keep moving in steps without their character "
                f"(up to {absent:.4f} a step: its moving mean of past gradients){spread}."
            )
    out.append("")
    return out


def _null_locator():
    from matplotlib.ticker import NullLocator

    return NullLocator()


def plot_rates(doc: dict, path) -> None:
    """Best dev perplexity against the rate, one line per optimiser and schedule (log x); a diverged
    run as a triangle at the top edge."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6))
    styles = {"constant": "-o", "cosine": "--s", "1/√t": ":^"}
    finite = [_best(r) for grid in by_rate(doc).values() for r in grid.values() if math.isfinite(_best(r))]
    top = max(finite, default=1.0)
    for (opt, sched), grid in sorted(by_rate(doc).items()):
        pts = sorted((lr, _best(r)) for lr, r in grid.items() if math.isfinite(_best(r)))
        if pts:
            ax.plot(
                [x for x, _ in pts],
                [y for _, y in pts],
                styles[sched],
                color=COLOURS[opt],
                ms=5,
                label=f"{opt}, {sched}",
            )
        off = [lr for lr, r in grid.items() if not math.isfinite(_best(r))]
        if off:
            ax.plot(off, [top * 1.05] * len(off), "^", color=COLOURS[opt], ms=8, clip_on=False)
    if not ax.lines:
        ax.axis("off")
        ax.text(0.5, 0.5, "no run of the second part is finished yet", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_xscale("log")
        rates = sorted({lr for grid in by_rate(doc).values() for lr in grid})
        ax.set_xticks(rates, [f"{lr:g}" for lr in rates])  # every rate run, named
        ax.xaxis.set_minor_locator(_null_locator())
        ax.set_xlabel("learning rate (the peak, with a schedule)")
        ax.set_ylabel("best dev perplexity")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        ax.set_title(f"{doc['budget']['epochs']} epochs, weight decay 0, seed 0", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
