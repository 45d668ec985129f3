"""The model shipped in the repository under models/, used when no --checkpoint is given."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import torch

from tangshi.data import corpus
from tangshi.data.batches import encode_poems
from tangshi.data.splits import Split
from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError
from tangshi.machine import cpu_name
from tangshi.model.checkpoint import load_checkpoint, write_checkpoint
from tangshi.outputs import OutputFolder

BUNDLED_NAME = "tangshi-default"
ENV_VAR = "TANGSHI_MODEL"  # overrides the bundled model's path


def bundled_model_path() -> Path:
    """models/tangshi-default in the source tree (an editable install), or $TANGSHI_MODEL."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    here = Path(__file__).resolve().parent
    for root in (here.parents[2], Path.cwd()):  # src/tangshi/model → the repository root
        cand = root / "models" / BUNDLED_NAME
        if (cand / "config.json").exists():
            return cand
    raise TangshiError(
        f"no --checkpoint given and no bundled model found (models/{BUNDLED_NAME}); "
        f"train one with `tangshi train` or set {ENV_VAR}"
    )


def rebuild_dev_split(meta: dict, vocab: Vocab, source: Path, titled: bool = False) -> Split:
    """Rebuild a checkpoint's own dev split from the poem files and the recorded sample and seed
    (`titled`: each poem read after its title, as a titled model reads it)."""
    data_meta = meta.get("train", {}).get("data_meta")
    if not data_meta:
        raise TangshiError("the checkpoint does not record its data split; pass --data")
    n = None if data_meta["sample"] == "all" else int(data_meta["sample"])
    poems, stats = corpus.load_poems(Path(source))
    train, dev = corpus.sample_and_split(poems, n, int(data_meta["seed"]))
    if len(train) != data_meta["train"] or len(dev) != data_meta["dev"]:
        raise TangshiError(
            f"the poems in {source} do not rebuild the checkpoint's split "
            f"({len(train)}/{len(dev)} vs {data_meta['train']}/{data_meta['dev']})"
        )
    if Vocab.build(train) != vocab:
        raise TangshiError(f"the poems in {source} do not rebuild the checkpoint's vocabulary")
    titles = [stats.titles[p] for p in dev] if titled else None
    return Split(*encode_poems(dev, vocab, titles=titles), pad_id=vocab.pad_id)


EXPORT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def export_model(
    checkpoint: Path,
    out: Path,
    dtype: str = "fp16",
    train_command: str | list[str] | None = None,
    replace: bool = False,
    replace_bundled: bool = False,
    log=print,
    evaluate=None,
) -> dict:
    """Copy a checkpoint's weights at a smaller dtype, with its config and vocabulary (no
    optimiser state), and write MODEL_CARD.md beside them from the run's own records (`evaluate`,
    train.evaluate.evaluate: for a titled model, the card's dev perplexity without titles).
    `train_command` (one or more) replaces the recorded commands of the last stages, in order,
    for records written before a command was kept. The bundled model's folder is replaced only
    with `replace_bundled` (the CLI's --replace-bundled), and `log` then says what was replaced."""
    if dtype not in EXPORT_DTYPES:
        raise TangshiError(f"unknown dtype {dtype!r} (choose from {', '.join(EXPORT_DTYPES)})")
    checkpoint, out = Path(checkpoint), Path(out)
    replaced = _bundled_guard(out, replace_bundled)
    replace = replace or replaced is not None
    model, vocab, meta = load_checkpoint(checkpoint)
    train_meta = meta.get("train", {})
    commands = [train_command] if isinstance(train_command, str) else list(train_command or [])
    n_stages = len(training_stages(train_meta, [], None))
    if len(commands) > n_stages:
        raise TangshiError(f"{len(commands)} --train-command values for a model trained in {n_stages} stage(s)")
    run_dir = checkpoint.parent
    history = []
    if (run_dir / "metrics.jsonl").exists():
        try:
            text = (run_dir / "metrics.jsonl").read_text(encoding="utf-8-sig")
            history = [json.loads(l) for l in text.splitlines() if l.strip()]
        except (OSError, ValueError) as e:
            raise TangshiError(f"cannot read {run_dir / 'metrics.jsonl'}: {e}") from None
    untitled = _without_titles(model, vocab, train_meta, evaluate)
    card = _model_card(out, model.config, meta, history, dtype, commands, untitled)
    with OutputFolder(out, "model", replace=replace, sources=[checkpoint]) as folder, folder.staged() as stage:
        kept = {**train_meta, "history": history} if history else train_meta  # so that --init-from keeps the record
        write_checkpoint(
            stage, model, vocab, train_meta=kept, metrics=meta.get("metrics", {}), dtype=EXPORT_DTYPES[dtype]
        )
        (stage / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        size = sum(f.stat().st_size for f in stage.iterdir())
    if replaced is not None:
        log(f"replaced the bundled model {out} ({replaced}) with an export of {checkpoint}")
    return {"out": str(out), "bytes": size, "dev_ppl": meta.get("metrics", {}).get("dev_ppl")}


def _bundled_guard(out: Path, replace_bundled: bool) -> str | None:
    """Refuse an --out that is (or lies inside) the bundled model's folder, unless `replace_bundled`
    and it is that folder. Returns, when the bundled model is to be replaced, what it was."""
    try:
        bundled, here = bundled_model_path().resolve(), out.resolve()
    except (TangshiError, RuntimeError, OSError):  # no bundled model (nothing to protect), or a loop of links
        return None
    if bundled in here.parents:
        raise TangshiError(f"--out {out} lies inside the bundled model's folder {bundled}; choose another folder")
    if here != bundled or not bundled.exists():
        return None
    if not replace_bundled:
        raise TangshiError(
            f"--out {out} is the bundled model's folder ({bundled}), which generate and eval use "
            "when no --checkpoint is given; pass --replace-bundled to replace it"
        )
    try:
        ppl = json.loads((bundled / "config.json").read_text(encoding="utf-8"))["metrics"]["dev_ppl"]
        return f"dev ppl {ppl:.2f}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its config.json unreadable"


def training_stages(train_meta: dict, history: list[dict], command: str | None) -> list[dict]:
    """The runs behind a checkpoint, oldest first: each --init-from source, then the run itself.
    A stage's "widened_from" gives the (smaller) model sizes it started from, when it was widened."""
    stages, lin = [], train_meta.get("init_from")
    stages.append(
        {
            "command": command,
            "history": history,
            "config": train_meta.get("config", {}),
            "resumes": train_meta.get("resumes") or [],
            "widened_from": (lin or {}).get("widened_from"),
        }
    )
    while lin:
        parent = lin.get("init_from")
        stages.insert(
            0,
            {
                "command": lin.get("command"),
                "history": lin.get("history", []),
                "config": lin.get("config") or {},
                "resumes": lin.get("resumes") or [],
                "widened_from": (parent or {}).get("widened_from"),
            },
        )
        lin = parent
    return stages


def _stage_command(i: int, st: dict, many: bool) -> str:
    text = (f"stage {i}: " if many else "") + f"`{st['command'] or 'not recorded'}`"
    if i > 1:
        w = st.get("widened_from")
        text += (
            f" (continues stage {i - 1}'s weights with a fresh optimiser"
            + (
                f", widened from embedding/hidden {w['embed_dim']}/{w['hidden_dim']} so that it starts as the "
                "same function"
                if w
                else ""
            )
            + ")"
        )
    if st.get("resumes"):
        text += "; interrupted and continued exactly (same batches, dropout masks and schedule) with " + "; ".join(
            f"`{r['command']}` after epoch {r['after_epoch']}" for r in st["resumes"]
        )
    return text


def _opt_text(tc: dict) -> str:
    return (
        f"{tc.get('optimizer')} lr {tc.get('lr')} wd {tc.get('weight_decay')}, {tc.get('schedule')} schedule, "
        f"clip {tc.get('clip')}, batch {tc.get('batch_size')}, {tc.get('epochs')} epochs, seed {tc.get('seed')}"
    )


def _epoch_table(stages: list[dict], many: bool) -> tuple[str, str]:
    """The card's per-epoch table: its head and rows (a stage column when there are several)."""
    rows, epoch = [], 0
    for i, st in enumerate(stages, 1):
        for h in st["history"]:
            epoch += 1
            cells = (
                [str(epoch)]
                + ([str(i)] if many else [])
                + [f"{h['train_loss']:.4f}", f"{h['dev_ppl']:.2f}", f"{h.get('epoch_seconds', 0):.0f}"]
            )
            rows.append("| " + " | ".join(cells) + " |")
    head = (
        "| epoch | stage | train loss | dev ppl | seconds |\n|---|---|---|---|---|"
        if many
        else "| epoch | train loss | dev ppl | seconds |\n|---|---|---|---|"
    )
    return head, "\n".join(rows)


def _without_titles(model, vocab: Vocab, train_meta: dict, evaluate) -> float | None:
    """A titled model's dev perplexity on the same dev poems read without their titles, from the
    prepared folder it trained on, by `evaluate` (train.evaluate.evaluate); None when the model has
    no titles, no `evaluate` is given or the folder is not here."""
    from tangshi.data.splits import load_split

    data = train_meta.get("data")
    if evaluate is None or not model.config.titles or not data or not (Path(data) / "dev.txt").exists():
        return None
    return evaluate(model, load_split(Path(data), "dev", vocab))["dev_ppl"]


def _titles_rows(cfg, untitled: float | None) -> str:
    if not cfg.titles:
        return ""
    without = f"{untitled:.2f}" if untitled is not None else "see `tangshi eval`"
    return (
        "| titles | reads each poem's title first (`<START> title <START> poem`, no loss on the title; a fixed 20% "
        "of the training poems without theirs): `tangshi generate --title 送友人` writes on a subject, and "
        "without `--title` it writes as an untitled model does |\n"
        f"| dev perplexity without titles | {without} (the same dev poems, each read without its title; "
        "the row above reads them after it) |\n"
    )


def _model_card(
    out: Path, cfg, meta: dict, history: list[dict], dtype: str, commands: list[str], untitled: float | None = None
) -> str:
    train_meta, m = meta.get("train", {}), meta.get("metrics", {})
    dm = train_meta.get("data_meta", {})
    stages = training_stages(train_meta, history, train_meta.get("command"))
    for st, c in zip(stages[len(stages) - len(commands) :], commands):
        st["command"] = c
    secs = sum(h.get("epoch_seconds", 0) for st in stages for h in st["history"])
    n_epochs = sum(len(st["history"]) for st in stages)
    many = len(stages) > 1
    optim = "<br>".join((f"stage {i}: " if many else "") + _opt_text(st["config"]) for i, st in enumerate(stages, 1))
    cmds = "<br>".join(_stage_command(i, st, many) for i, st in enumerate(stages, 1))
    if any("--preset" in (st["command"] or "") for st in stages):
        cmds += (
            "<br>`--preset` names the preset as it was when the stage ran (presets change as the study "
            "finds better recipes); the optimisation row gives each stage's actual values"
        )
    head, rows = _epoch_table(stages, many)
    best_epoch = sum(len(st["history"]) for st in stages[:-1]) + int(m.get("epoch") or 0)
    planned, done = stages[-1]["config"].get("epochs"), len(stages[-1]["history"])
    status = ""
    if planned and done < planned:
        status = (
            f"| status | exported after {done} of the {planned} epochs its schedule plans; the run goes on "
            f"with `--resume`, and a later export replaces these weights |\n"
        )
    return f"""# {out.name}: the bundled tangshi model

A character-level LSTM language model of the Complete Tang Poems (全唐詩), used by
`tangshi generate` and `tangshi eval` when no `--checkpoint` is given.

| | |
|---|---|
| architecture | embedding {cfg.embed_dim} → {cfg.num_layers} × LSTM {cfg.hidden_dim} (tangshi's own kernel) → linear head{" tied to the embedding" if cfg.tie_weights else ""}, vocabulary {cfg.vocab_size} |
| regularisation | locked dropout {cfg.dropout_embed} (embedding) / {cfg.dropout_output} (output), character dropout {cfg.dropout_chars}, DropConnect {cfg.weight_drop} on weight_hh |
| optimisation | {optim} |
| data | chinese-poetry 全唐詩 (58 files, sha256-checked), cleaned as in `data/corpus.py`: {dm.get("poems_read")} poems read, {dm.get("in_range")} of 10–63 characters; sample `{dm.get("sample")}`, split seed {dm.get("seed")}: {dm.get("train")} train / {dm.get("dev")} dev |
| dev perplexity | **{m.get("dev_ppl", float("nan")):.2f}** at epoch {best_epoch} of {n_epochs} (exp of the mean NLL over dev characters + `<EOS>`, PAD excluded{", each poem after its title" if cfg.titles else ""}); the assignment's PAD-counted loss {m.get("original_loss", m.get("seed_loss", float("nan"))):.4f} |
{_titles_rows(cfg, untitled)}{status}| training time | {secs / 60:.1f} min of training steps ({n_epochs} epochs, dev evaluation not counted){"; the last stage" if many else ""} on {_cpu_name()} |
| weights | {dtype} safetensors, exported {datetime.now(UTC):%Y-%m-%d} |
| command | {cmds} |
| reproduce the eval | `tangshi eval --json` (rebuilds this dev split from `data/quantangshi`) |

## Per-epoch record

{head}
{rows}
"""


def _cpu_name() -> str:
    return f"{cpu_name()} ({platform.machine()})"
