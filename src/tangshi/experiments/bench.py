"""`tangshi bench`: training-step and generation speed, side by side in one process.

Every variant runs at the assignment's shape (batch 128, length ≤ 64, embedding 256,
hidden 256, the real vocabulary and real batches of the 10k split), after
warm-up, and reports the median of N timed repetitions. Throughput is counted
in real (non-PAD) target tokens per second, the only fair unit when variants
pad differently.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

import torch

from tangshi.data.batches import batch_indices, make_batch
from tangshi.data.splits import load_split
from tangshi.data.vocab import Vocab
from tangshi.decode.poems import iter_couplets, write_poems
from tangshi.decode.search import DecodeOptions
from tangshi.errors import TangshiError
from tangshi.lesson import numpy_lstm as nl
from tangshi.lesson import numpy_optim as nopt
from tangshi.machine import cpu_flags, cpu_name
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint
from tangshi.model.kernels import detect as detect_kernels  # this process's kernels, chosen once
from tangshi.model.lm import ModelConfig, PoetryLM, Runtime
from tangshi.model.lm import ModelConfig as MC
from tangshi.model.recurrence import OriginalLSTMLayer
from tangshi.model.spec import OLD_NAMES
from tangshi.model.step_weights import default_precision
from tangshi.train.graph_step import TrainStep
from tangshi.train.torch_backend import bf16_is_fast

BATCH, SEQ, EMBED, HIDDEN = 128, 64, 256, 256


class _Sizes(TypedDict):
    """The ModelConfig fields that every benchmarked model shares."""

    vocab_size: int
    pad_id: int
    embed_dim: int
    hidden_dim: int


@dataclass
class Result:
    name: str
    ms: float
    real_tokens: int
    note: str = ""

    def as_dict(self, ref: dict[str, float]) -> dict:
        tps = self.real_tokens / (self.ms / 1e3) if self.real_tokens else None
        d = {"name": self.name, "ms": round(self.ms, 3), "real_tokens_per_s": round(tps) if tps else None}
        refs = ("layer_nn",) if self.name.startswith("layer_") else ("original", "nn_lstm")
        for key in refs:
            if key in ref and tps:
                d[f"speedup_vs_{key}"] = round(tps / ref[key], 3)
        if self.note:
            d["note"] = self.note
        return d


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, repeats: int, warmup: int, device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _train_step_bench(
    name, cfg: ModelConfig, batches, device, amp, repeats, warmup, mode="eager", impl: str = "tangshi"
) -> Result:
    """One Adam step per call (the assignment's lr and weight decay), cycling through `batches`.
    mode "graph": the CUDA-graph step; its warm-up goes three times through the batches, so
    every shape has had its eager warm-up steps and its capture before the timing starts."""
    torch.manual_seed(0)
    model = PoetryLM(cfg, Runtime(impl=impl, kernels=detect_kernels())).to(device).train()
    lr = torch.tensor(0.01, device=device) if mode == "graph" else 0.01
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4, capturable=mode == "graph")
    train_step = TrainStep(model, opt, amp=amp, mode=mode, batch_size=BATCH)
    it = {"k": 0}

    def step():
        x, y = batches[it["k"] % len(batches)]
        it["k"] += 1
        train_step(x, y)

    if mode == "graph":
        warmup = max(warmup, (train_step.warmup + 1) * len(batches))
    ms = _median_ms(step, repeats, warmup, device)
    real = statistics.median(int((y != cfg.pad_id).sum()) for _, y in batches)
    return Result(name, ms, int(real))


DTYPES = ("auto", "fp32", "bf16")
KERNELS = {
    "original": "the assignment's loop (autograd)",
    "tangshi": "tangshi (hand-written BPTT)",
    "tangshi_graph": "tangshi (hand-written BPTT), CUDA graphs",
    "nn_lstm": "torch.nn.LSTM",
    "numpy": "NumPy twin (hand-written BPTT)",
    "layer_tangshi": "tangshi (hand-written BPTT)",
    "layer_tangshi_graph": "tangshi, CUDA graphs",
    "layer_nn": "torch.nn.LSTM",
    "gen_qilv": "PoetryLM.step",
    "gen_qilv_fp32": "PoetryLM.step",
    "gen_wujue_1000": "PoetryLM.step",
    "gen_qilv_keywords": "PoetryLM.step",
    "gen_qilv_title": "PoetryLM.step",
    "gen_couplet": "PoetryLM.step",
}
GENERATION_ROWS = (
    "gen_qilv",
    "gen_qilv_fp32",
    "gen_wujue_1000",
    "gen_qilv_keywords",
    "gen_qilv_title",
    "gen_couplet",
)


TRAINING_ROWS = (
    "original",
    "tangshi",
    "tangshi_graph",
    "nn_lstm",
    "numpy",
    "layer_tangshi",
    "layer_tangshi_graph",
    "layer_nn",
)


def check_rows(only: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """`--only`'s row names, checked (the older name `seed` is `original`); None: every row."""
    if only is None:
        return None
    names = tuple(OLD_NAMES.get(n.strip(), n.strip()) for n in only)
    unknown = [n for n in names if n not in KERNELS]
    if not names or unknown:
        raise TangshiError(f"--only: unknown row {(unknown or [''])[0]!r} (choose from {', '.join(KERNELS)})")
    return names


def run_bench(
    data_dir: Path,
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    checkpoint: Path | None = None,
    only: tuple[str, ...] | None = None,
    dtype: str = "auto",
) -> dict:
    """`dtype`: the training rows' autocast: auto (bf16 where it is fast), fp32, or bf16 (also
    where it is emulated, to compare). The result records what ran: device, CPU flags, threads,
    dtype, and each row's kernel. The training rows read the prepared split in `data_dir`; the
    generation rows need only a model."""
    if dtype not in DTYPES:
        raise TangshiError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    only = check_rows(only)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TangshiError("--device cuda asked for, but no CUDA device is available")
    amp = bf16_is_fast(dev) if dtype == "auto" else dtype == "bf16"
    want = lambda n: only is None or n in only
    results: list[Result] = []
    if any(want(name) for name in TRAINING_ROWS):
        results += _training_rows(Path(data_dir), dev, amp, want, repeats, warmup)
    if any(want(name) for name in GENERATION_ROWS):
        results.extend(_generation_bench(checkpoint, dev, want))
    ref = {r.name: r.real_tokens / (r.ms / 1e3) for r in results if r.real_tokens}
    rows = [_describe_row(r.as_dict(ref), dev, amp) for r in results]
    return {
        "device": _device_name(dev),
        "cpu_flags": cpu_flags() if dev.type == "cpu" else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": dtype,
        "bf16_autocast": amp,
        "fused_cell": detect_kernels().why if dev.type == "cpu" else None,
        "repeats": repeats,
        "results": rows,
    }


def _training_rows(data_dir: Path, dev, amp: bool, want, repeats: int, warmup: int) -> list[Result]:
    """The training-step and layer rows wanted, on the assignment's shape and the split's real batches."""
    vocab = Vocab.load(data_dir / "vocab.json")
    split = load_split(data_dir, "train", vocab)
    n_batches = repeats + warmup
    plain = batch_indices(len(split.inputs), BATCH, torch.Generator().manual_seed(0))[:n_batches]
    bucketed = batch_indices(
        len(split.inputs), BATCH, torch.Generator().manual_seed(0), lengths=split.lengths, bucket=True
    )[:n_batches]
    full = [
        tuple(t.to(dev) for t in make_batch(split.inputs, split.targets, split.lengths, i, trim=False)) for i in plain
    ]
    trimmed = [tuple(t.to(dev) for t in make_batch(split.inputs, split.targets, split.lengths, i)) for i in bucketed]
    base = _Sizes(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=EMBED, hidden_dim=HIDDEN)
    results: list[Result] = []
    if want("original"):
        results.append(
            _train_step_bench(
                "original", ModelConfig(**base, pad_in_loss=True), full, dev, False, repeats, warmup, impl="original"
            )
        )
    steps = (
        (
            "tangshi",
            "eager",
            "tangshi",
            f"fused BPTT, head on real positions, bucketed batches, bf16 autocast {'on' if amp else 'off'}",
        ),
        (
            "tangshi_graph",
            "graph",
            "tangshi",
            "tangshi's step replayed from CUDA graphs (one per length, padded to a multiple of 8)",
        ),
        ("nn_lstm", "eager", "nn", "same step with torch.nn.LSTM"),
    )
    for name, mode, impl, note in steps:
        if want(name) and (mode != "graph" or dev.type == "cuda"):
            r = _train_step_bench(name, ModelConfig(**base), trimmed, dev, amp, repeats, warmup, mode=mode, impl=impl)
            r.note = note
            results.append(r)
    if want("numpy") and dev.type == "cpu":
        results.append(_numpy_bench(base, trimmed, repeats, warmup))
    for name, mode in (("layer_tangshi", "fused"), ("layer_tangshi_graph", "graph"), ("layer_nn", "nn")):
        if want(name) and (mode != "graph" or dev.type == "cuda"):
            results.append(_layer_bench(name, mode, dev, repeats, warmup))
    return results


def _describe_row(row: dict, dev, amp: bool) -> dict:
    """What a row ran: its kernel and dtype (the layer rows and the assignment's row are fp32 by design)."""
    name = row["name"]
    row["kernel"] = KERNELS.get(name, name)
    if name in ("tangshi", "layer_tangshi"):
        row["kernel"] += f", {_cell_kernel() if dev.type == 'cpu' else 'gate arithmetic as torch ops'}"
    if name in ("tangshi", "nn_lstm") and dev.type == "cpu":
        row["kernel"] += f", {_loss_kernel(amp)}"
    row["dtype"] = "bf16" if amp and name in ("tangshi", "tangshi_graph", "nn_lstm") else "fp32"
    if name in GENERATION_ROWS and name != "gen_qilv_fp32":
        row["dtype"] = default_precision(dev)  # decoding's own precision (model/step_weights.py)
    if name in GENERATION_ROWS and dev.type == "cpu":
        row["kernel"] += f", {_decoding_kernels(row)}"
    return row


def _cell_kernel() -> str:
    """Which way the CPU's LSTM gate arithmetic runs (model/kernels)."""
    return "compiled gate arithmetic" if detect_kernels().compiled else "gate arithmetic as torch ops"


def _loss_kernel(amp: bool) -> str:
    """Which way a training row's loss runs (model/head_loss.py): under autocast, log_softmax + nll_loss."""
    if amp:
        return "loss: log_softmax + nll_loss under autocast"
    return "loss: fused, compiled" if detect_kernels().compiled else "loss: fused, torch ops"


def _decoding_kernels(row: dict) -> str:
    """What a CPU generation row ran: one poem (or one couplet) is one row per step, 1,000 poems a batch."""
    lib = detect_kernels().lib
    one_row = row["name"] != "gen_wujue_1000"
    if row["dtype"] == "int8":
        product = (
            "the one-row int8 kernel (AVX-512 VNNI), with the last layer's gate arithmetic in the head's call"
            if one_row and lib is not None and lib.gemv_int8_available()
            else "fbgemm int8"
        )
    else:
        product = "fp32 matrix-vector products"
    sampler = "compiled sampler" if one_row and lib is not None else "torch/NumPy sampling"
    return f"{product}, {_cell_kernel()}, {sampler}"


def _numpy_bench(base: _Sizes, batches, repeats, warmup) -> Result:

    cfg = MC(**base)
    torch.manual_seed(0)
    params = {k: v.numpy().copy() for k, v in PoetryLM(cfg).canonical_state_dict().items()}
    opt = nopt.Adam(params, lr=0.01, weight_decay=1e-4)
    it = {"k": 0}

    def step():
        x, y = batches[it["k"] % len(batches)]
        it["k"] += 1
        loss, cache = nl.forward(params, cfg, x.numpy(), y.numpy(), cfg.pad_id)
        opt.step(nl.backward(cache))

    ms = _median_ms(step, repeats, warmup, torch.device("cpu"))
    real = statistics.median(int((y != cfg.pad_id).sum()) for _, y in batches)
    return Result("numpy", ms, int(real), "NumPy forward + hand-written BPTT + NumPy Adam, fp32, same batches")


def _layer_bench(name: str, mode: str, dev, repeats, warmup) -> Result:
    torch.manual_seed(0)
    x = torch.randn(BATCH, SEQ, EMBED, device=dev, requires_grad=True)
    layer: torch.nn.Module
    if mode == "nn":
        layer = torch.nn.LSTM(EMBED, HIDDEN, batch_first=True).to(dev)
        fn = lambda: layer(x)[0].sum().backward()
    else:
        layer = OriginalLSTMLayer(EMBED, HIDDEN).to(dev)
        for p in layer.parameters():
            torch.nn.init.uniform_(p, -0.1, 0.1)
        lib = detect_kernels().on(dev)
        fn = lambda: layer(x, mode="fused", lib=lib)[0].sum().backward()
        if mode == "graph":  # the same forward + backward, captured once and replayed (as in the graphed step)
            fn = _graphed(fn, dev)
    ms = _median_ms(fn, repeats, warmup, dev)
    note = "LSTM layer alone, forward + backward, fp32, (128, 64, 256)"
    return Result(name, ms, BATCH * SEQ, note + (", replayed from a CUDA graph" if mode == "graph" else ""))


def _graphed(fn, dev):
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _generation_bench(checkpoint, dev, want) -> list[Result]:

    try:
        model, vocab, _ = load_checkpoint(checkpoint or bundled_model_path(), device=dev)
    except TangshiError as e:
        return [Result("gen_qilv", float("nan"), 0, f"skipped: {e}")]
    out = []
    opts = DecodeOptions(strategy="sample", temperature=0.8, top_p=0.9, seed=0)
    prec = opts.precision_on(dev)
    if want("gen_qilv"):
        ms = _median_ms(lambda: write_poems(model, vocab, opts, n=1, form="qilv"), 5, 1, dev)
        out.append(Result("gen_qilv", ms, 0, f"one 七言律诗, rhyme on, sampling, the default precision ({prec})"))
    if want("gen_qilv_fp32"):
        fp32 = replace(opts, precision="fp32")
        ms = _median_ms(lambda: write_poems(model, vocab, fp32, n=1, form="qilv"), 5, 1, dev)
        out.append(Result("gen_qilv_fp32", ms, 0, "one 七言律诗, rhyme on, sampling, --precision fp32"))
    if want("gen_wujue_1000"):
        ms = _median_ms(lambda: write_poems(model, vocab, opts, n=1000, form="wujue"), 3, 1, dev)
        out.append(Result("gen_wujue_1000", ms, 0, "1,000 五言绝句 in one batch, rhyme on, sampling"))
    if want("gen_qilv_keywords"):
        ms = _median_ms(
            lambda: write_poems(model, vocab, opts, n=1, form="qilv", keywords="月山酒", tone="strict"), 5, 1, dev
        )
        out.append(Result("gen_qilv_keywords", ms, 0, "one 七言律诗 with --keywords 月山酒 --tone strict"))
    if want("gen_qilv_title") and model.config.titles:
        ms = _median_ms(lambda: write_poems(model, vocab, opts, n=1, form="qilv", title="送友人"), 5, 1, dev)
        out.append(Result("gen_qilv_title", ms, 0, "one 七言律诗 with --title 送友人 (a titled model)"))
    if want("gen_couplet"):
        ms = _median_ms(lambda: list(iter_couplets(model, vocab, opts, "兩個黃鸝鳴翠柳", n=1)), 5, 1, dev)
        out.append(Result("gen_couplet", ms, 0, "one 下联 for 兩個黃鸝鳴翠柳, tones strict"))
    return out


def _device_name(dev) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu: {cpu_name()}"


def format_bench(res: dict) -> str:
    flags = ", ".join(k for k, v in (res.get("cpu_flags") or {}).items() if v) or "-"
    lines = [
        f"device {res['device']} | CPU flags {flags} | threads {res['threads']} | torch {res['torch']} | "
        f"bf16 autocast {res['bf16_autocast']} (--dtype {res.get('dtype', 'auto')})"
        + (f" | gate arithmetic: {res['fused_cell']}" if res.get("fused_cell") else ""),
        f"{'name':<16}{'ms':>10}{'real tok/s':>13}{'vs original':>12}{'vs nn':>8}  note",
    ]
    # layer rows: "vs nn" is against layer_nn; their tokens are all B×T positions
    for r in res["results"]:
        tps = f"{r['real_tokens_per_s']:,}" if r.get("real_tokens_per_s") else "-"
        lines.append(
            f"{r['name']:<16}{r['ms']:>10.1f}{tps:>13}{r.get('speedup_vs_original', '-'):>12}"
            f"{r.get('speedup_vs_nn_lstm', r.get('speedup_vs_layer_nn', '-')):>8}  {r.get('note', '')}"
        )
    return "\n".join(lines)
