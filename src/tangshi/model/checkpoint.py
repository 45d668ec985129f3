"""Checkpoints: a folder of safetensors weights + JSON config + JSON vocabulary.

    <name>/model.safetensors     canonical weights (model.canonical_state_dict)
    <name>/config.json           {"format", "model": ModelConfig, "train": {...}, "metrics": {...}, "files": {...}}
    <name>/vocab.json            the vocabulary (vocab.Vocab)
    <name>/optimizer.safetensors optimiser tensors      (training checkpoints only)
    <name>/trainer.json          optimiser hyper-parameters, scheduler, epoch, history

A checkpoint is one thing: config.json's "files" records the sha256 of model.safetensors and
vocab.json (and the vocabulary's size and order), and loading refuses a vocabulary or weights
that are not the ones recorded. Everything loads without pickle. A checkpoint is written into
a temporary folder and renamed into view in one step (`write_checkpoint` + `outputs.OutputFolder`),
so a crash never leaves a half-written checkpoint under a real name. A training run never
replaces a checkpoint in place: each epoch is a new folder, and `last`/`best` are links moved
onto it atomically (`train/runs.py`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tangshi.data.vocab import Vocab
from tangshi.errors import TangshiError, check_number
from tangshi.files import (
    TMP_PREFIX,
    describe_oserror,
    fsync_dir,
    fsync_tree,
    oserrors_named,
    sha256_file,
    user_file_mode,
)
from tangshi.model.lm import DROPOUT_FIELDS, MAX_DIM, MAX_LAYERS, MAX_VOCAB, ModelConfig, PoetryLM, Runtime
from tangshi.outputs import require_complete

CHECKPOINT_FORMAT = "tangshi-checkpoint/1"
WEIGHTS, CONFIG, VOCAB, OPTIM, TRAINER = (
    "model.safetensors",
    "config.json",
    "vocab.json",
    "optimizer.safetensors",
    "trainer.json",
)
RECORD = "files"  # config.json's record of the files that make one checkpoint
# checkpoints written before config.json kept the record, known by their files' sha256: the bundled
# model (models/tangshi-default), which is verified so, silently, and never rewritten for it
KNOWN_UNRECORDED = (
    {
        WEIGHTS: "8ca37376edf6235e769431e640b5bfd4bb35c03685891b1ddff98c5070e79926",
        VOCAB: "e2f894bd8e3c7bf4e0bff574222a7ef228778551915ccf2849d103b4f55bf62f",
    },
)
_noted: set[str] = set()  # checkpoints without a record, each noted once per process


def _scalar_tensors_to_numbers(obj):
    """A graphed optimiser (--cuda-graph) and its scheduler hold lr as 0-dim device tensors;
    JSON stores the number. Any other tensor in JSON-bound state is a bug, not data."""
    if torch.is_tensor(obj):
        if obj.dim() != 0:
            raise TypeError(f"a tensor of shape {tuple(obj.shape)} cannot go into JSON")
        return obj.item()
    if isinstance(obj, dict):
        return {k: _scalar_tensors_to_numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_scalar_tensors_to_numbers(v) for v in obj]
    return obj


def _write_json(path: Path, obj) -> None:
    obj = _scalar_tensors_to_numbers(obj)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")


def _read_json(path: Path):
    if not path.exists():
        raise TangshiError(f"checkpoint is incomplete: {path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TangshiError(f"corrupt checkpoint file {path}: {e}") from None
    except OSError as e:
        raise TangshiError(f"cannot read {path}: {e.strerror}") from None


def write_checkpoint(
    folder: Path,
    model: PoetryLM,
    vocab: Vocab,
    *,
    train_meta: dict | None = None,
    metrics: dict | None = None,
    optimizer_state: tuple[dict, dict] | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    """Write a checkpoint's files into `folder` (an empty temporary folder that the caller then
    renames into view: `OutputFolder.new_dir`, `OutputFolder.staged` or `save_checkpoint`).
    `optimizer_state` = (tensors, json_state)."""
    folder = Path(folder)
    weights = {k: v.detach().to("cpu") for k, v in model.canonical_state_dict().items()}
    if dtype is not None:
        weights = {k: v.to(dtype) for k, v in weights.items()}
    weights = {k: v.contiguous().clone() for k, v in weights.items()}
    for name, w in weights.items():  # a model that would not load again is never written
        if not bool(torch.isfinite(w).all()):
            how = (
                f" in {str(dtype).removeprefix('torch.')} (its range is ±{torch.finfo(dtype).max:.4g})" if dtype else ""
            )
            raise TangshiError(f"the weights are not finite{how}: {name} holds NaN or infinity; nothing was written")
    _save_tensors(weights, folder / WEIGHTS, metadata={"format": CHECKPOINT_FORMAT})
    vocab.save(folder / VOCAB)
    _write_json(
        folder / CONFIG,
        {
            "format": CHECKPOINT_FORMAT,
            "model": model.config.to_json(),
            "train": train_meta or {},
            "metrics": metrics or {},
            RECORD: file_record(folder, vocab),
        },
    )
    if optimizer_state is not None:
        tensors, state = optimizer_state
        _save_tensors({k: v.contiguous() for k, v in tensors.items()}, folder / OPTIM)
        _write_json(folder / TRAINER, state)


def vocab_fingerprint(vocab: Vocab) -> str:
    """The sha256 of the vocabulary's entries in order: what the weights' rows mean."""
    return hashlib.sha256(json.dumps(list(vocab.itos), ensure_ascii=False).encode("utf-8")).hexdigest()


def file_record(folder: Path, vocab: Vocab) -> dict:
    """config.json's record of the weights and the vocabulary written beside it."""
    return {
        WEIGHTS: {"sha256": sha256_file(folder / WEIGHTS)},
        VOCAB: {"sha256": sha256_file(folder / VOCAB), "size": len(vocab), "order_sha256": vocab_fingerprint(vocab)},
    }


def verify_files(path: Path, cfg: dict, vocab: Vocab) -> None:
    """Refuse, in one line naming both files, a vocabulary or weights that are not the ones
    config.json records. A checkpoint written before the record is checked against the known
    ones (the bundled model), else loads with a one-line note on stderr, once."""
    path, rec = Path(path), cfg.get(RECORD)
    try:
        got = {WEIGHTS: sha256_file(path / WEIGHTS), VOCAB: sha256_file(path / VOCAB)}
    except OSError as e:
        raise TangshiError(describe_oserror(e, verb="cannot read")) from None
    w, v = path / WEIGHTS, path / VOCAB
    if rec is None:
        known = next((k for k in KNOWN_UNRECORDED if k[WEIGHTS] == got[WEIGHTS]), None)
        if known is not None and known[VOCAB] != got[VOCAB]:
            raise TangshiError(
                f"{v} does not match {w}: it is not the vocabulary these weights were released with "
                f"(its sha256 is {got[VOCAB][:12]}…, not {known[VOCAB][:12]}…)"
            )
        if known is None and str(path.resolve()) not in _noted:
            _noted.add(str(path.resolve()))
            print(
                f"note: {path / CONFIG} records no sha256 of {VOCAB} and {WEIGHTS} (an older tangshi wrote it), so "
                "their match is not checked; export the checkpoint again to record it",
                file=sys.stderr,
            )
        return
    if not (
        isinstance(rec, dict)
        and all(isinstance(rec.get(n), dict) and isinstance(rec[n].get("sha256"), str) for n in (WEIGHTS, VOCAB))
    ):
        raise TangshiError(f"{path / CONFIG}: its {RECORD!r} record (the sha256 of {WEIGHTS} and {VOCAB}) is damaged")
    if got[VOCAB] != rec[VOCAB]["sha256"]:
        size, order = rec[VOCAB].get("size"), rec[VOCAB].get("order_sha256")
        why = (
            f"it holds {len(vocab)} entries, the weights were trained with {size}"
            if size != len(vocab)
            else "its entries are in another order than the weights were trained with"
            if order != vocab_fingerprint(vocab)
            else "its bytes are not the ones recorded with the weights"
        )
        raise TangshiError(
            f"{v} does not match {w}: {why} ({CONFIG} records its sha256); "
            "the vocabulary was changed after the checkpoint was written"
        )
    if got[WEIGHTS] != rec[WEIGHTS]["sha256"]:
        raise TangshiError(
            f"{w} does not match {v}: its sha256 is not the one {CONFIG} records; "
            "the weights were changed after the checkpoint was written"
        )


def check_saved_model(where: Path, saved: dict) -> None:
    """The sizes and rates a checkpoint's config.json gives, each refused as the file's value (the
    file and the key named, not an option the user never gave) before they make a model."""

    for key, top in (
        ("vocab_size", MAX_VOCAB),
        ("embed_dim", MAX_DIM),
        ("hidden_dim", MAX_DIM),
        ("num_layers", MAX_LAYERS),
    ):
        if key in saved:
            check_number(f"{where}: {key}", saved[key], 1, top, integer=True)
    for key in DROPOUT_FIELDS:
        if key in saved:
            check_number(f"{where}: {key}", saved[key], 0, 1, hi_open=True)
    if "pad_id" in saved and "vocab_size" in saved:
        check_number(f"{where}: pad_id", saved["pad_id"], 0, saved["vocab_size"], integer=True, hi_open=True)


def _save_tensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors' save_file, its failures as OSError (a full disk is one), with the user's umask
    (safetensors writes 0600; a checkpoint is an ordinary file)."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as e:
        code = errno.ENOSPC if "No space left" in str(e) else errno.EIO
        raise OSError(code, os.strerror(code), str(path)) from None
    os.chmod(path, user_file_mode())


def save_checkpoint(path: Path, model: PoetryLM, vocab: Vocab, **kwargs) -> Path:
    """Write a checkpoint folder at a new path: written under a temporary name beside it, then
    renamed into place in one step. An existing path is refused, never replaced (replacing
    output is `outputs.OutputFolder`'s job)."""
    path = Path(path)
    if os.path.lexists(path):
        raise TangshiError(f"{path} already exists; a checkpoint is written to a new folder")
    with oserrors_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
        tmp.mkdir()
        try:
            write_checkpoint(tmp, model, vocab, **kwargs)
            fsync_tree(tmp)
            os.rename(tmp, path)
            fsync_dir(path.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_config(path: Path) -> dict:
    path = Path(path)
    if path.is_file():
        raise TangshiError(f"{path} is a file, not a checkpoint folder (one holding {CONFIG}, {VOCAB} and {WEIGHTS})")
    if not path.is_dir():
        raise TangshiError(f"checkpoint not found: {path}")
    require_complete(path, "tangshi export")  # a folder being replaced lacks files: say so, not that they are missing
    if not (path / CONFIG).exists() and any((path / n / CONFIG).exists() for n in ("best", "last")):
        raise TangshiError(f"{path} is a training run, not a checkpoint: use {path / 'best'} or {path / 'last'}")
    cfg = _read_json(path / CONFIG)
    if not isinstance(cfg, dict) or cfg.get("format") != CHECKPOINT_FORMAT:
        raise TangshiError(f"{path / CONFIG} is not a tangshi checkpoint config (format {CHECKPOINT_FORMAT})")
    if not isinstance(cfg.get("model"), dict):
        raise TangshiError(f'{path / CONFIG} has no model config (its "model" entry is missing or not an object)')
    for key in ("train", "metrics"):
        if not isinstance(cfg.get(key, {}), dict):
            raise TangshiError(f"{path / CONFIG}: its {key!r} entry is not an object")
    return cfg


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    f = Path(path) / WEIGHTS
    if not f.exists():
        raise TangshiError(f"checkpoint is incomplete: {f} is missing")
    weights = _load_tensors(f, "checkpoint weights")
    for name, w in weights.items():
        if not w.is_floating_point():
            raise TangshiError(f"checkpoint weights {f}: {name} is {str(w.dtype).removeprefix('torch.')}, not a float")
        if not bool(torch.isfinite(w).all()):
            raise TangshiError(f"checkpoint weights {f} are not finite: {name} holds NaN or infinity")
    return weights


def load_checkpoint(
    path: Path, device: str | torch.device = "cpu", impl: str | None = None, runtime: Runtime | None = None, **overrides
) -> tuple[PoetryLM, Vocab, dict]:
    """Rebuild the model from a checkpoint folder alone. Returns (model in eval mode, vocab, config json).

    `runtime` says how the model runs (the LSTM kernel, the compiled kernels); by default the run-time
    choices an older config.json stored, else `Runtime()`. `impl` swaps only the LSTM kernel (the
    weights are kernel-independent); `overrides` replace ModelConfig fields.
    """
    path = Path(path)
    meta = read_config(path)
    check_saved_model(path / CONFIG, meta["model"])
    model_cfg = dict(meta["model"])
    model_cfg.update(overrides)
    try:
        runtime = runtime or Runtime.from_json(model_cfg)
        if impl is not None:
            runtime = replace(runtime, impl=impl)
        config = ModelConfig.from_json(model_cfg)
    except (TypeError, ValueError) as e:
        raise TangshiError(f"bad model config in {path / CONFIG}: {e}") from None
    vocab = Vocab.load(path / VOCAB)
    if len(vocab) != config.vocab_size:
        raise TangshiError(f"checkpoint vocabulary has {len(vocab)} entries but the model expects {config.vocab_size}")
    weights = load_weights(path)
    verify_files(path, meta, vocab)
    model = PoetryLM(config, runtime)
    try:
        model.load_canonical_state_dict({k: v.float() for k, v in weights.items()})
    except (KeyError, RuntimeError, ValueError) as e:
        raise TangshiError(
            f"checkpoint weights {path / WEIGHTS} do not fit its model config: {str(e).splitlines()[0]}"
        ) from None
    return model.to(device).eval(), vocab, meta


def load_optimizer_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    state = _read_json(path / TRAINER)
    f = path / OPTIM
    if not f.exists():
        raise TangshiError(f"checkpoint {path} has no optimiser state, so training cannot resume from it")
    return _load_tensors(f, "optimiser state"), state


def _load_tensors(f: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError) as e:
        raise TangshiError(f"corrupt {what} {f}: {e}") from None


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """torch optimiser state_dict → (tensors for safetensors, JSON-able rest)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


RUN_FLAGS = ("capturable", "foreach", "fused", "differentiable")


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], state: dict) -> None:
    st: dict[int, dict] = {}
    for name, val in tensors.items():
        pid, key = name.split(".", 1)
        st.setdefault(int(pid), {})[key] = val
    for name, val in state.get("scalars", {}).items():
        pid, key = name.split(".", 1)
        st.setdefault(int(pid), {})[key] = val
    # how the optimiser runs (capturable for CUDA graphs, foreach, fused) is the built optimiser's,
    # not the saved one's, so a CPU run can resume on a GPU with graphs and back
    groups = [
        {**saved, **{k: cur[k] for k in RUN_FLAGS if k in cur}}
        for saved, cur in zip(state["param_groups"], optimizer.param_groups)
    ]
    optimizer.load_state_dict({"state": st, "param_groups": groups})
