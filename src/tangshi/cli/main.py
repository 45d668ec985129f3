"""The `tangshi` command line: it parses the arguments, calls the module that does the work, and
prints the result. Options of the model and of training come from their config dataclasses, which
validate them; one top-level handler turns any TangshiError into one line on stderr."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from tangshi.cli.common import (
    JSON_HELP,
    PREPARED_DEFAULT,
    REPLACE_HELP,
    THREADS_HELP,
    add_all,
    print_json,
    resolve_checkpoint,
    set_threads,
)
from tangshi.cli.experiment import experiment_parser
from tangshi.decode.request import CoupletRequest, PoemRequest, add_options
from tangshi.errors import TangshiError, check_number, one_line
from tangshi.model.spec import OLD_NAMES
from tangshi.text import FORM_NAMES


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit status 2 as before."""

    def error(self, message: str):
        where = self.prog.removeprefix("tangshi").strip()
        self.exit(2, f"tangshi: error: {where + ': ' if where else ''}{message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------- data
def cmd_data_fetch(args) -> int:
    from tangshi.data.prepare import fetch

    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    res = fetch(
        Path(args.dest),
        from_path=Path(args.from_path) if args.from_path else None,
        online=not args.offline,
        use_npm=not args.no_npm,
        log=log,
        replace=args.replace,
    )
    if args.json:
        print_json(res)
    return 0


def cmd_data_prepare(args) -> int:
    from tangshi.data.corpus import parse_poems_arg
    from tangshi.data.prepare import default_prepared_name, prepare

    n = parse_poems_arg(args.poems)
    out = Path(args.out) if args.out else Path("data/prepared") / default_prepared_name(n, args.seed)
    check_number("--seed", args.seed, 0, 2**32 - 1, integer=True)
    summary = prepare(Path(args.source), out, n, args.seed, replace=args.replace)
    if args.json:
        print_json(summary)
    else:
        for k, v in summary.items():
            print(f"{k:>14}: {v}")
    return 0


# ---------------------------------------------------------------------------- train / eval


def cmd_train(args) -> int:
    from tangshi.train.config import TrainConfig, given_options
    from tangshi.train.start import saved_data_dir
    from tangshi.train.torch_backend import train

    set_threads(args.threads)
    if args.resume and args.replace:
        raise TangshiError("--resume continues the run and --replace starts it over; give one of them")
    given = {k: getattr(args, k) for k in args.model_opts}
    model_over, train_over = given_options(args.preset, given, {k: getattr(args, k) for k in args.train_opts})
    cfg = TrainConfig(**train_over)
    common = dict(
        resume=args.resume,
        replace=args.replace,
        progress=not args.quiet,
        keep_epoch_checkpoints=not args.no_epoch_checkpoints,
        resume_check=(model_over, train_over),
        init_from=Path(args.init_from) if args.init_from else None,
    )
    data = Path(args.data) if args.data else (args.resume and saved_data_dir(Path(args.out))) or PREPARED_DEFAULT
    if cfg.backend == "numpy":
        from tangshi.train.numpy_backend import train_numpy

        res = train_numpy(data, Path(args.out), model_over, cfg, resume_epochs=args.epochs, **common)
    else:
        res = train(data, Path(args.out), model_over, cfg, resume_epochs=args.epochs, **common)
    best = res["best"]
    if best:
        print(f"best dev perplexity {best['dev_ppl']:.2f} at epoch {best['epoch']}; checkpoints in {res['out']}")
    return 0


def cmd_eval(args) -> int:
    from tangshi.data.splits import load_split
    from tangshi.model.checkpoint import load_checkpoint
    from tangshi.train.config import require_device
    from tangshi.train.evaluate import evaluate

    require_device(args.device)
    if args.batch is not None and not args.precision:
        raise TangshiError("--batch applies to evaluation through the decoding step: add --precision fp32 or int8")
    if args.batch is not None and args.batch < 1:
        raise TangshiError(f"--batch must be at least 1, got {args.batch}")
    if args.precision:
        from tangshi.model.step_weights import check_precision

        check_precision(args.precision, args.device)
    ck = resolve_checkpoint(args.checkpoint)
    model, vocab, meta = load_checkpoint(ck, device=args.device)
    if args.data:
        data_dir = Path(args.data)
        from tangshi.data.vocab import Vocab

        if Vocab.load(data_dir / "vocab.json") != vocab:
            print(
                f"note: {data_dir} has another vocabulary than the checkpoint; dev characters unknown to "
                "the checkpoint count as <OOV>",
                file=sys.stderr,
            )
        split = load_split(data_dir, "dev", vocab)
    else:
        from tangshi.model.bundled import rebuild_dev_split

        split = rebuild_dev_split(meta, vocab, source=Path(args.source))
    if args.limit is not None:
        split = split.head(args.limit)
    if args.precision:
        from tangshi.train.evaluate import evaluate_steps

        res = evaluate_steps(model, split, args.precision, device=args.device, batch=args.batch)
    else:
        res = evaluate(model, split, device=args.device)
    res["checkpoint"] = str(ck)
    if args.json:
        print_json(res)
    elif args.precision:
        print(
            f"dev perplexity {res['dev_ppl']:.3f} (mean NLL {res['dev_nll']:.4f} over {res['tokens']} tokens), "
            f"through the decoding step in {args.precision}"
        )
    else:
        print(
            f"dev perplexity {res['dev_ppl']:.3f} (mean NLL {res['dev_nll']:.4f} over {res['tokens']} tokens); "
            f"assignment's PAD-counted loss {res['original_loss']:.4f}, assignment's 2**loss {res['original_ppl']:.3f}"
        )
    return 0


# ---------------------------------------------------------------------------- generate
def cmd_generate(args) -> int:
    from tangshi.api import load

    request = PoemRequest.from_namespace(args)  # a bad request is refused before the model is loaded
    poet = load(resolve_checkpoint(args.checkpoint))
    if args.list_rhyme_groups:
        return _list_rhyme_groups(poet.vocab, args.json)
    stream, header = poet.records(request)
    if args.json:
        _stream_json(stream, header)
    else:
        for i, p in enumerate(stream):
            print(("\n" if i else "") + ("\n".join(p["lines"]) if p["lines"] else p["text"]), flush=True)
    return 0


def _list_rhyme_groups(vocab, as_json: bool) -> int:
    from tangshi.decode.poems import rhyme_groups_known

    rows = rhyme_groups_known(vocab)
    if as_json:
        print_json(rows)
        return 0
    print("group           characters  known to the model")
    for r in rows:
        print(f"{r['group']}{'　' * (6 - len(r['group']))}  {r['characters']:>10}  {r['known']:>18}")
    return 0


def _stream_json(poems, tail: dict, key: str = "poems") -> None:
    """Print {key: [...], **tail} exactly as json.dumps(indent=1) would, one item at a time
    as each is written, so the output is valid JSON at the end and memory stays flat."""
    out = sys.stdout
    out.write("{\n " + json.dumps(key) + ": [")
    for i, p in enumerate(poems):
        body = json.dumps(p, ensure_ascii=False, indent=1).replace("\n", "\n  ")
        out.write(("," if i else "") + "\n  " + body)
        out.flush()
    out.write(
        "\n ]" + "".join(f",\n {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in tail.items()) + "\n}\n"
    )


def cmd_couplet(args) -> int:
    from tangshi.api import load

    request = CoupletRequest.from_namespace(args)
    couplets, header = load(resolve_checkpoint(args.checkpoint)).records(request)
    if args.json:
        _stream_json(couplets, header, key="couplets")
        return 0
    for i, c in enumerate(couplets):
        if i == 0:
            print(f"上联　{c['first']}")
            if not c["first_ends_ze"]:
                print(
                    f"note: by convention a 上联 ends in a 仄 character and its 下联 in a 平 one; '{c['first'][-1]}' "
                    "cannot be read 仄, so the 下联, still opposed, ends in 仄",
                    file=sys.stderr,
                )
        print(f"下联　{c['second']}", flush=True)
    return 0


# ---------------------------------------------------------------------------- metrics
def cmd_metrics(args) -> int:
    from tangshi.decode.poems import read_poems
    from tangshi.text import to_traditional
    from tangshi.verse.metrics import format_metrics, score_couplets, split_couplet

    poems, header, source = read_poems(args.file)
    if header["script"] == "simplified":  # the rhyme table and the training poems are traditional
        poems = [to_traditional(p) for p in poems]
    if args.couplet:
        poems = _couplet_lines(poems)
        pairs = [split_couplet(p) for p in poems]
        bad = next((i for i, pr in enumerate(pairs) if pr is None), None)
        if bad is not None:
            raise TangshiError(
                f"couplet {bad + 1} in {source} is not a 上联 and a 下联 (an even number of clauses): {poems[bad]!r}"
            )
        res, extra, title = score_couplets(pairs), {}, f"{source}: {len(pairs)} couplets"
    else:
        res, extra = _poem_metrics(args, poems, header)
        title = f"{source}: {res['n']} poems, form {extra['form']}"
    if args.json:
        print_json({**res, **extra, "source": source})
    else:
        print(format_metrics(res, title=title))
        if extra.get("note"):
            print(f"note: {extra['note']}", file=sys.stderr)
    return 0


def _couplet_lines(lines: list[str]) -> list[str]:
    """What `tangshi couplet` prints without --json (上联　A, then 下联　B lines) as 'A，B。' couplets;
    other lines as they are."""
    out, first = [], None
    for ln in lines:
        if ln.startswith(("上联", "上聯")):
            first = ln[2:].strip("　 ")
        elif ln.startswith(("下联", "下聯")) and first is not None:
            out.append(f"{first}，{ln[2:].strip('　 ')}。")
        else:
            out.append(ln)
    return out


def _poem_metrics(args, poems, header) -> tuple[dict, dict]:
    """The poem metrics, and the form, training data and note they were computed with."""
    from tangshi.decode.poems import training_poems
    from tangshi.text import to_traditional
    from tangshi.verse.metrics import coverage, score_poems, training_clause_set

    form = args.form or header["form"] or "free"
    data = Path(args.data) if args.data else (PREPARED_DEFAULT if (PREPARED_DEFAULT / "train.txt").is_file() else None)
    note = None
    clauses = None
    if data is None:
        note = f"copy rate not computed: no training poems (pass --data DIR; {PREPARED_DEFAULT} does not exist)"
    else:
        clauses = training_clause_set(training_poems(data))
    res = score_poems(poems, form, clauses)
    asked = {
        k: getattr(args, k) if getattr(args, k) is not None else header.get(k)
        for k in ("keywords", "acrostic", "at", "start")
    }
    asked = {k: to_traditional(v) if isinstance(v, str) else v for k, v in asked.items()}
    res.update(
        coverage(poems, asked["keywords"], asked["acrostic"], 1 if asked["at"] is None else asked["at"], asked["start"])
    )
    return res, {"form": form, "training_data": str(data) if data else None, "note": note}


# ---------------------------------------------------------------------------- parser
_TYPES = {"int": int, "float": float, "str": str}


def config_options(group, cls) -> tuple[str, ...]:
    """One option per field of a config dataclass that carries help in its metadata; the
    dataclass validates the values. Returns the field names (None = not given on the command line)."""
    names = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("help"):
            continue
        flag, kind = "--" + f.name.replace("_", "-"), str(f.type).replace(" | None", "")
        default = "" if f.default is None else f" (default {f.default})"
        if kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=meta["help"] + default)
        else:
            choices = meta.get("choices")
            if choices is not None and "original" in choices:
                choices = (*choices, *OLD_NAMES)  # the older name is still accepted
            group.add_argument(flag, type=_TYPES[kind], choices=choices, default=None, help=meta["help"] + default)
        names.append(f.name)
    return tuple(names)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tangshi", description="Train a character LSTM on the Complete Tang Poems and write poems with it."
    )
    sub = p.add_subparsers(dest="command", required=True)
    for add in (
        _data_parsers,
        _train_parser,
        _eval_parser,
        _generate_parser,
        _couplet_parser,
        _serve_parser,
        _metrics_parser,
        _bench_parser,
        experiment_parser,
        _export_parser,
        _gradcheck_parser,
    ):
        add(sub)
    return p


def _data_parsers(sub) -> None:
    d = sub.add_parser("data", help="fetch and prepare the poems")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download the 全唐诗 JSON files into data/quantangshi (sha256-checked)")
    f.add_argument("--from", dest="from_path", help="a folder, a clone of chinese-poetry, or a .tgz")
    f.add_argument("--dest", default="data/quantangshi", help="where the poem files go (default data/quantangshi)")
    f.add_argument("--offline", action="store_true", help="skip the GitHub download")
    f.add_argument("--no-npm", action="store_true", help="skip `npm pack`")
    f.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    f.add_argument("--json", action="store_true", help=JSON_HELP)
    f.set_defaults(func=cmd_data_fetch)
    pr = dsub.add_parser("prepare", help="clean, filter 10–63 characters, sample, split 80/20, build the vocabulary")
    pr.add_argument(
        "--source", default="data/quantangshi", help="folder of poet.tang.*.json (default data/quantangshi)"
    )
    pr.add_argument("--out", help="output folder (default data/prepared/<poems>-seed<seed>)")
    pr.add_argument("--poems", default="10000", help="how many poems to sample, or 'all' (default 10000)")
    pr.add_argument("--seed", type=int, default=0, help="random seed of the sample and the split (default 0)")
    pr.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    pr.add_argument("--json", action="store_true", help=JSON_HELP)
    pr.set_defaults(func=cmd_data_prepare)


def _train_parser(sub) -> None:
    from tangshi.model.lm import ModelConfig
    from tangshi.train.config import TrainConfig

    t = sub.add_parser("train", help="train the LSTM (defaults: the assignment's recipe without its bugs)")
    t.add_argument(
        "--data",
        help=f"a prepared folder (tangshi data prepare; default {PREPARED_DEFAULT}, or with --resume the run's own)",
    )
    t.add_argument("--out", default="runs/default", help="the run folder (default runs/default)")
    t.add_argument(
        "--preset",
        choices=("original", "default", "awd-v1", "seed"),
        help="original (alias seed): the assignment's recipe exactly (ReLU logits, PAD in the loss, Adam "
        "0.01); default: the best measured recipe (tied, PyTorch init, dropout 0.2/0.4, DropConnect "
        "0.3, AdamW 3e-3 wd 0.1, batch 32, cosine, 40 epochs); awd-v1: the first tuned recipe (tied, "
        "dropout 0.2/0.3, DropConnect 0.2, AdamW 3e-3 wd 0.01, one-cycle, 50 epochs)",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from its newest complete checkpoint, with the run's own options",
    )
    t.add_argument(
        "--replace",
        action="store_true",
        help="start over in a folder that holds an earlier run (its checkpoints and logs are removed when "
        "the new run writes its first epoch; files tangshi did not write stay)",
    )
    t.add_argument(
        "--init-from",
        help="start from this checkpoint's weights (either backend) with a fresh optimiser; "
        "larger --embed-dim/--hidden-dim widen it",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-epoch-checkpoints", action="store_true", help="keep only the folders best and last point at")
    t.add_argument("--threads", type=int, help=THREADS_HELP)
    t.set_defaults(
        func=cmd_train,
        model_opts=config_options(t.add_argument_group("model"), ModelConfig),
        train_opts=config_options(t.add_argument_group("optimisation"), TrainConfig),
    )


def _eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="dev perplexity of a checkpoint")
    e.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    e.add_argument("--data", help="prepared folder (default: rebuild the checkpoint's own dev split)")
    e.add_argument("--source", default="data/quantangshi", help="poem JSON folder, when rebuilding the dev split")
    e.add_argument("--limit", type=int, help="only the first N dev poems (N >= 1)")
    e.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    e.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        help="evaluate through the decoding step (one token at a time) with its products in this "
        "precision, as `generate --precision` decodes (default: the training forward, fp32)",
    )
    e.add_argument(
        "--batch",
        type=int,
        help="with --precision: poems per decoding step (default 256); 1 reads the model as one poem "
        "decodes, through the one-row int8 kernel where the CPU has it",
    )
    e.add_argument("--json", action="store_true", help=JSON_HELP)
    e.set_defaults(func=cmd_eval)


def _generate_parser(sub) -> None:
    gp = sub.add_parser("generate", help="write poems")
    add_options(gp, PoemRequest)
    gp.add_argument(
        "--list-rhyme-groups",
        action="store_true",
        help="list the 平声 groups with how many of their characters the model knows, and exit",
    )
    _process_options(gp)
    gp.set_defaults(func=cmd_generate)


def _couplet_parser(sub) -> None:
    cp = sub.add_parser("couplet", help="write the 下联 of a 上联 (对联)")
    add_options(cp, CoupletRequest)
    _process_options(cp)
    cp.set_defaults(func=cmd_couplet)


def _process_options(p) -> None:
    """What generate and couplet take besides the request: the model and the output's format."""
    p.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _serve_parser(sub) -> None:
    sp = sub.add_parser("serve", help="the web page and its JSON API")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sp.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    sp.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    sp.add_argument("--workers", type=int, help="requests decoded at once, one thread each (default: the cores)")
    sp.add_argument(
        "--queue", type=int, default=32, help="requests that may wait for a worker; more get 503 (default 32)"
    )
    sp.add_argument("--timeout", type=float, default=60.0, help="seconds before a request gets 504 (default 60)")
    sp.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from tangshi.serve.app import serve

    serve(
        args.checkpoint,
        args.host,
        args.port,
        args.workers,
        args.queue,
        args.timeout,
        log=lambda *a, **k: print(*a, file=sys.stderr, **k),
    )
    return 0


def _metrics_parser(sub) -> None:
    mp = sub.add_parser("metrics", help="score poems: form, rhyme, 平仄, distinct-n, repeats, copying, length")
    mp.add_argument(
        "file",
        nargs="?",
        default="-",
        help="poems: one per line, or the JSON of tangshi generate --json ('-' or none: standard input)",
    )
    mp.add_argument(
        "--form",
        choices=FORM_NAMES,
        help="the form the poems should have (default: the form stated in the JSON, else free: "
        "each poem's form inferred)",
    )
    mp.add_argument(
        "--data",
        help=f"prepared folder whose train.txt the copy rate is measured against "
        f"(default {PREPARED_DEFAULT} if it exists)",
    )
    mp.add_argument(
        "--couplet",
        action="store_true",
        help="score couplets (上联，下联。 per line, or the JSON of tangshi couplet --json): layout, 平仄 "
        "opposition, shared characters, mirrored repeats",
    )
    mp.add_argument("--keywords", help="report the share of poems holding all these characters (default: the JSON's)")
    mp.add_argument("--acrostic", help="report the share of poems with these hidden characters (default: the JSON's)")
    mp.add_argument("--at", type=int, help="the acrostic's position in each line (default: the JSON's, else 1)")
    mp.add_argument("--start", help="report the share of poems that begin with this text (default: the JSON's)")
    mp.add_argument("--json", action="store_true", help=JSON_HELP)
    mp.set_defaults(func=cmd_metrics)


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="training-step and generation speed, side by side")
    add_all(
        b,
        [
            ("--data", dict(default=str(PREPARED_DEFAULT), help="prepared 10k split (real batches)")),
            ("--device", dict(default="cpu", choices=("cpu", "cuda"), help="where to time (default cpu)")),
            ("--repeats", dict(type=int, default=5, help="timed repetitions (the median is reported)")),
            ("--warmup", dict(type=int, default=2, help="untimed repetitions first (default 2)")),
            ("--checkpoint", dict(help="model for the generation timings (default: the bundled model)")),
            (
                "--only",
                dict(
                    help="comma-separated subset: original,tangshi,tangshi_graph (cuda),nn_lstm,numpy,layer_tangshi,"
                    "layer_nn,gen_qilv,gen_wujue_1000,gen_qilv_keywords,gen_couplet"
                ),
            ),
            ("--threads", dict(type=int, help=THREADS_HELP)),
            (
                "--dtype",
                dict(
                    default="auto",
                    choices=("auto", "fp32", "bf16"),
                    help="autocast of the training rows: auto (bf16 where it is fast: CUDA, AMX, AVX512-BF16), "
                    "fp32, or bf16 (also where it is emulated)",
                ),
            ),
            ("--json", dict(action="store_true", help=JSON_HELP)),
        ],
    )
    b.set_defaults(func=cmd_bench)


def _export_parser(sub) -> None:
    ex = sub.add_parser("export", help="write a compact copy of a checkpoint (fp16/bf16) with a model card")
    add_all(
        ex,
        [
            ("--checkpoint", dict(required=True, help="the checkpoint folder (RUN/best, RUN/last, …)")),
            ("--out", dict(default="models/tangshi-default", help="output folder (default models/tangshi-default)")),
            ("--dtype", dict(default="fp16", choices=("fp16", "bf16", "fp32"), help="weight dtype (default fp16)")),
            (
                "--train-command",
                dict(
                    action="append",
                    help="the command that trained it, for the card (default: as "
                    "recorded); give it k times to replace the last k stages' commands, oldest first",
                ),
            ),
            ("--replace", dict(action="store_true", help=REPLACE_HELP)),
            (
                "--replace-bundled",
                dict(
                    action="store_true",
                    help="allow --out to be the package's own bundled model "
                    "(models/tangshi-default), which is otherwise refused; says what it replaced",
                ),
            ),
        ],
    )
    ex.set_defaults(func=cmd_export)


def _gradcheck_parser(sub) -> None:
    gc = sub.add_parser(
        "gradcheck", help="check the NumPy BPTT and the training kernel against finite differences and PyTorch autograd"
    )
    gc.add_argument("--json", action="store_true", help=JSON_HELP)
    gc.add_argument("--seed", type=int, default=0, help="random seed of the test problem (default 0)")
    gc.add_argument(
        "--worked-example",
        action="store_true",
        help="print the H = 1, T = 2 example of docs/lstm-backprop.md instead: every forward and BPTT "
        "number, and each gradient beside its finite difference",
    )
    gc.set_defaults(func=cmd_gradcheck)


def cmd_bench(args) -> int:
    from tangshi.experiments.bench import format_bench, run_bench

    set_threads(args.threads)
    check_number("--repeats", args.repeats, 1, 10_000, integer=True)
    check_number("--warmup", args.warmup, 0, 10_000, integer=True)
    only = tuple(args.only.split(",")) if args.only is not None else None
    res = run_bench(
        Path(args.data),
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        only=only,
        dtype=args.dtype,
    )
    if args.json:
        print_json(res)
    else:
        print(format_bench(res))
    return 0


def cmd_export(args) -> int:
    from tangshi.model.bundled import export_model

    res = export_model(
        Path(args.checkpoint),
        Path(args.out),
        dtype=args.dtype,
        train_command=args.train_command,
        replace=args.replace or args.replace_bundled,
        replace_bundled=args.replace_bundled,
    )
    print(f"wrote {res['out']} ({res['bytes'] / 1e6:.1f} MB, dev ppl {res['dev_ppl']})")
    return 0


def cmd_gradcheck(args) -> int:
    from tangshi.lesson.gradcheck import format_gradcheck, run_gradcheck

    if args.worked_example:
        from tangshi.lesson.worked_example import format_worked_example, run_worked_example

        res = run_worked_example()
        print_json(res) if args.json else print(format_worked_example(res))
        return 0
    res = run_gradcheck(seed=args.seed)
    if args.json:
        print_json(res)
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
        print(f"tangshi: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
    except OSError as e:  # the safety net: every writer names its path itself (outputs.oserrors_named)
        from tangshi.files import describe_oserror

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
