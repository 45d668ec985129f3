"""What every `tangshi experiment` shares: the report header (command, commit, date, hardware),
the data's description, the unigram baseline, summary statistics over seeds and the plot style.

The studies themselves: experiments/optimizers.py, experiments/init.py (training runs, experiments/study.py),
experiments/backprop.py and experiments/distance.py.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from tangshi.data.prepare import read_split
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError, read_json
from tangshi.machine import cpu_name
from tangshi.outputs import OutputFolder

# one colour per optimiser / initialisation, the same in every plot (matplotlib's tab10)
COLOURS = {
    "adam": "tab:blue",
    "adagrad": "tab:orange",
    "adamw": "tab:green",
    "sgd": "tab:red",
    "zeros": "tab:gray",
    "constant": "tab:brown",
    "uniform1e-4": "tab:purple",
    "xavier": "tab:blue",
    "torch": "tab:green",
    "xavier_normal_embed": "tab:cyan",
    "torch_xavier_embed": "tab:pink",
    "xavier_forget1": "tab:olive",
    "xavier_orthogonal": "navy",
}
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 3)))


def commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def header_fields(argv: list[str] | None) -> dict:
    """What a report's header records, taken when the experiment runs (kept in its JSON)."""
    return {
        "command": "tangshi " + " ".join(argv) if argv else "(called from Python)",
        "commit": commit(),
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "hardware": f"{cpu_name()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}",
    }


def render_header(title: str, fields: dict, rendered_again: bool = False) -> str:
    lines = [
        f"# {title}\n",
        f"- command: `{fields['command']}`",
        f"- commit: `{fields['commit']}`",
        f"- date: {fields['date']}",
        f"- hardware: {fields['hardware']}",
    ]
    for extra in fields.get("continued", []):
        lines.append(f"- continued: `{extra['command']}` at commit `{extra['commit']}`, {extra['date']}")
    if rendered_again:
        lines.append(f"- report and plots rendered again from the JSON at commit `{commit()}` (`--replot`)")
    if fields.get("trained"):
        lines.append(f"- runs trained: {fields['trained']}")
    return "\n".join(lines)


def trained_line(stamps: list[dict]) -> str:
    """Which code trained a study's runs, by commit, with the span of their finishing times: a study
    continued across interruptions may span several commits."""
    by: dict = {}
    adopted: dict = {}
    for st in stamps:
        if "adopted_from" in st:  # taken from an earlier report (Study.adopt), with the commit that trained it
            adopted.setdefault(st["adopted_from"], []).append(st.get("commit"))
        else:
            by.setdefault(st.get("commit"), []).append(st["finished"])
    parts = []
    for where, commits in sorted(adopted.items()):
        named = sorted({c for c in commits if c})
        said = f" (trained at commit{'s' if len(named) > 1 else ''} {', '.join(f'`{c}`' for c in named)})"
        parts.append(f"{len(commits)} taken from {where}" + (said if named else ""))
    for c, times in sorted(by.items(), key=lambda kv: min(kv[1])):
        span = min(times) if min(times) == max(times) else f"{min(times)} – {max(times)}"
        who = f"at commit `{c}`" if c else "by a commit their records do not name (written before records kept it)"
        parts.append(f"{len(times)} {who}, finished {span}")
    return "; ".join(parts)


def _header(title: str, argv: list[str] | None) -> str:
    return render_header(title, header_fields(argv)) + "\n"


def data_meta(data_dir: Path) -> str:
    try:
        m = json.loads((Path(data_dir) / "meta.json").read_text(encoding="utf-8"))
        return (
            f"{m['train']} train / {m['dev']} dev poems, vocabulary {m['vocab_size']}, sample {m['sample']}, "
            f"seed {m['seed']}"
        )
    except (OSError, KeyError, json.JSONDecodeError):
        return "no meta.json"


def unigram_perplexity(data_dir: Path) -> float:
    """exp of the dev cross-entropy under the training set's unigram distribution (characters + <EOS>),
    add-one smoothed so that dev characters unseen in training get a finite probability."""
    vocab = Vocab.load(Path(data_dir) / "vocab.json")
    train_poems, dev_poems = read_split(data_dir, "train"), read_split(data_dir, "dev")
    counts: Counter[int] = Counter()
    for p in train_poems:
        counts.update(vocab.encode(p))
        counts[vocab.eos_id] += 1
    total = sum(counts.values()) + len(vocab)
    nll, n = 0.0, 0
    for p in dev_poems:
        for i in vocab.encode(p) + [vocab.eos_id]:
            nll -= math.log((counts[i] + 1) / total)
            n += 1
    return math.exp(nll / n)


def summary(values: list[float]) -> dict:
    """mean, sample standard deviation, min and max over seeds (inf if any run diverged)."""
    vals = [float(v) for v in values]
    if not vals or not all(math.isfinite(v) for v in vals):
        return {"n": len(vals), "mean": math.inf, "std": math.nan, "min": math.inf, "max": math.inf}
    return {
        "n": len(vals),
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "min": min(vals),
        "max": max(vals),
    }


def separated(a: dict, b: dict) -> bool:
    """a is better than b on every seed: a's worst run beats b's best (lower perplexity)."""
    return a["max"] < b["min"]


def fmt_summary(s: dict) -> str:
    if not math.isfinite(s["mean"]):
        return "diverged"
    if s["n"] == 1:
        return f"{s['mean']:.2f}"
    return f"{s['mean']:.2f} ± {s['std']:.2f} ({s['min']:.2f}–{s['max']:.2f})"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_log_ticks(ax, axes: str = "xy") -> None:
    """Log axes labelled 1, 10, 100 … on x (steps) and 1, 2, 5, 10, 20, 50 … on y (not 10⁰, 10¹);
    minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for name in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if name == "x" else (1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def thin(points: dict, dense: int = 100, every: int = 10) -> dict:
    """Per-step records kept for a report: every step up to `dense`, then every `every`-th, and
    every epoch's row record (the "rows" probe, written once an epoch)."""
    return {k: v for k, v in points.items() if int(k) <= dense or int(k) % every == 0 or "rows" in v}


def read_report_json(path: Path, fmt: str, option: str = "--replot") -> dict:
    """A study's report JSON, for --replot or --adopt (one line if it is missing, unreadable or of
    another format)."""
    if not Path(path).exists():
        raise TangshiError(f"{option}: {path} does not exist; run the experiment first")
    try:
        doc = read_json(path, "report JSON")
    except TangshiError as e:
        raise TangshiError(f"{option}: {path} cannot be read ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt or not isinstance(doc.get("runs"), dict):
        got = doc.get("format") if isinstance(doc, dict) else None
        raise TangshiError(f"{option}: {path} is not a {fmt} report (format {got!r}); run the experiment again")
    return doc


def adopt_report(study, path: Path | None, fmt: str, plan) -> None:
    """--adopt: take into `study` every run of `plan()` that the report JSON at `path` holds (Study.adopt),
    asking for the plan again after each round (a sweep's grid grows with its records); None: nothing."""
    if path is None:
        return
    report = read_report_json(path, fmt, "--adopt")
    ours = data_meta(study.data_dir)
    if report.get("data_meta") != ours:
        raise TangshiError(
            f"--adopt: {path} was trained on other data ({report.get('data_meta')}) than {study.data_dir} ({ours})"
        )
    total = 0
    while taken := study.adopt(report, str(path), plan()):
        study.log(f"took {len(taken)} run(s) from {path}")
        total += len(taken)
    if not total:
        study.log(f"took no run from {path}: it holds none of this plan's runs with the same settings, or all are here")


def replot_report(out: Path, names: dict, fmt: str, write) -> dict:
    """--replot: `write(folder, doc, names, rendered_again=True)` renders the report and plots again
    from the report's own JSON (which it leaves as it is)."""
    doc = read_report_json(Path(out) / names["json"], fmt)
    with OutputFolder(out, "reports", replace=True, names=[n for k, n in names.items() if k != "json"]) as folder:
        write(folder, doc, names, rendered_again=True)
    return {"doc": doc, "report": str(folder.path / names["md"])}


def stage_report(
    folder: OutputFolder, doc: dict, names: dict, plots: dict, markdown: str, rendered_again: bool = False
) -> None:
    """Write a study's report in one step: each `plots[key](path)` draws names[key], then the
    Markdown, then (unless rendered again from it) the JSON."""
    with folder.staged() as stage:
        for key, plot in plots.items():
            plot(stage / names[key])
        (stage / names["md"]).write_text(markdown, encoding="utf-8")
        if not rendered_again:
            (stage / names["json"]).write_text(json.dumps(doc, indent=None), encoding="utf-8")
