"""The handlers of the `tangshi` subcommands: each takes the parsed arguments, calls the room that
does the work, prints the result and returns the exit status.

The handlers import the rooms they call inside themselves: `tangshi --help` and a mistyped option
then answer without importing torch (measured: `tangshi --help` in 0.12 s, against 1.9 s with every
room imported at the top). This is the one place in the package where imports are deferred.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tangshi.cli.common import (
    PREPARED_DEFAULT,
    print_json,
    resolve_checkpoint,
    set_threads,
)
from tangshi.decode.request import CoupletRequest, PoemRequest
from tangshi.errors import TangshiError, check_number


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
    saved = saved_data_dir(Path(args.out)) if args.resume and not args.data else None
    if args.resume and not args.data and saved is None:
        raise TangshiError(
            f"nothing to resume in {args.out}: it holds no complete checkpoint of a run (start it "
            "without --resume, or with --replace to start over)"
        )
    data = Path(args.data) if args.data else saved or PREPARED_DEFAULT
    if cfg.backend == "numpy":
        from tangshi.train.numpy_backend import train_numpy

        res = train_numpy(data, Path(args.out), model_over, cfg, resume_epochs=args.epochs, **common)
    else:
        res = train(data, Path(args.out), model_over, cfg, resume_epochs=args.epochs, **common)
    best = res["best"]
    if best:
        print(f"best dev perplexity {best['dev_ppl']:.2f} at epoch {best['epoch']}; checkpoints in {res['out']}")
    return 0


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
            body = "\n".join(p["lines"]) if p["lines"] else p["text"]
            print(("\n" if i else "") + (f"《{p['title']}》\n" if p.get("title") else "") + body, flush=True)
    return 0


def _list_rhyme_groups(vocab, as_json: bool) -> int:
    from tangshi.decode.constraints.rhyme import rhyme_groups_known

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


def cmd_metrics(args) -> int:
    from tangshi.decode.reading import read_poems
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
        extra: dict = {}
        res, title = score_couplets([pr for pr in pairs if pr is not None]), f"{source}: {len(pairs)} couplets"
    else:
        res, extra = _poem_metrics(args, poems, header)
        title = f"{source}: {res['n']} poems, form {extra['form']}"
    if args.json:
        print_json({**res, **extra, "source": source})
    else:
        print(format_metrics(res, title=title))
        _print_reader(extra.get("reader"))
        if extra.get("note"):
            print(f"note: {extra['note']}", file=sys.stderr)
    return 0


def _print_reader(reader: dict | None) -> None:
    """The reader's table (verse.reader) after the metrics, with where the real poems came from."""
    from tangshi.verse.reader import format_reader

    if reader is None:
        return
    where = (
        f"real: {reader['real_source']}"
        if reader["real_source"]
        else "no real poems: --no-real, form free or none found"
    )
    print()
    print(format_reader(reader["generated"], reader["real"], title=f"as a reader hears them ({where})"))


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
    """The poem metrics, and the form, training data, reader metrics and note they were computed with."""
    from tangshi.decode.reading import training_poems
    from tangshi.text import to_traditional
    from tangshi.verse.metrics import coverage, score_poems, training_clause_set

    form = args.form or header["form"] or "free"
    data = Path(args.data) if args.data else (PREPARED_DEFAULT if (PREPARED_DEFAULT / "train.txt").is_file() else None)
    note = None
    train = None
    if data is None:
        note = f"copy rate not computed: no training poems (pass --data DIR; {PREPARED_DEFAULT} does not exist)"
    else:
        train = training_poems(data)
    res = score_poems(poems, form, None if train is None else training_clause_set(train))
    asked = {
        k: getattr(args, k) if getattr(args, k) is not None else header.get(k)
        for k in ("keywords", "acrostic", "at", "start")
    }
    asked = {k: to_traditional(v) if isinstance(v, str) else v for k, v in asked.items()}
    check_asked(form, asked["acrostic"], asked["at"])
    res.update(
        coverage(poems, asked["keywords"], asked["acrostic"], 1 if asked["at"] is None else asked["at"], asked["start"])
    )
    reader = _reader_metrics(args, poems, form, (data, train), asked["keywords"])
    return res, {"form": form, "training_data": str(data) if data else None, "note": note, "reader": reader}


FETCHED_DEFAULT = Path("data/quantangshi")


def _reader_metrics(args, poems, form: str, training: tuple, keywords: str | None) -> dict:
    """verse.reader's scores of the poems and of the real poems of the same form, and their ratio.
    The real poems: --real (a prepared folder's train.txt, or a folder of poet.tang.*.json); else the
    training poems of --data; when these hold no poem of the form (a prepared folder keeps poems of
    at most 63 characters, which leaves out every 七律), the fetched corpus in data/quantangshi."""
    from tangshi.verse.reader import poems_of_form, reader_ratio, reader_scores

    generated = reader_scores(poems, form, keywords)
    out: dict = {"generated": generated, "real": None, "ratio": None, "real_source": None}
    if args.no_real or form == "free":
        return out
    data, train = training
    sources = [Path(args.real)] if args.real else [s for s in (data, FETCHED_DEFAULT) if s is not None]
    for source in sources:
        real = poems_of_form(train if source == data and train is not None else _real_poems(source), form)
        if real or args.real:
            real_scores = reader_scores(real, form, keywords)
            out.update(real=real_scores, ratio=reader_ratio(generated, real_scores), real_source=str(source))
            break
    return out


def _real_poems(source: Path) -> list[str]:
    """The poems of a prepared folder (train.txt) or, every length kept, the held-out part of the
    cleaned corpus in a folder of poet.tang.*.json (data.corpus.corpus_split's dev part: the 20% no
    habit of verse/habits.json was learned from, so that 對仗 is scored out of sample); nothing
    from a folder that is neither (the default corpus folder not fetched)."""
    from tangshi.data.corpus import FILE_GLOB, corpus_split
    from tangshi.decode.reading import training_poems

    if (source / "train.txt").is_file():
        return training_poems(source)
    if source == FETCHED_DEFAULT and not any(source.glob(FILE_GLOB)):
        return []
    return corpus_split(source)[1]


def cmd_data_habits(args) -> int:
    from tangshi.data.corpus import corpus_split
    from tangshi.outputs import require_complete
    from tangshi.verse import parallel
    from tangshi.verse.habits import Habits, learn
    from tangshi.verse.readings import coverage

    source = Path(args.source)
    require_complete(source, "tangshi data fetch")
    out = _table_out(args)
    train, dev = corpus_split(source)
    table = {
        "source": f"{source.name}: the train part (80%) of every poem, cleaned as tangshi data prepare "
        "cleans, split seed 0 (data.corpus.corpus_split)",
        **learn(train),
    }
    learned = Habits.from_table(table)
    table["readings"]["dev"] = coverage(learned.readings, dev)
    table["parallel"]["dev"] = parallel.check(learned.pairs, dev)
    _write_table(
        out,
        json.dumps(table, ensure_ascii=False, indent=1) + "\n",
        f"{sum(table['poems'].values())} poems of the four forms",
    )
    return 0


def _table_out(args) -> Path | None:
    """A learned table's --out: a file to write (over an existing one only with --replace), or None for stdout."""
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.replace:
        raise TangshiError(f"{out} exists; give --replace to write over it")
    if out is not None and out.is_dir():
        raise TangshiError(f"{out} is a folder; --out names the table's file")
    if out is not None and not out.parent.is_dir():
        raise TangshiError(f"cannot write {out}: its folder {out.parent} does not exist")
    return out


def _write_table(out: Path | None, text: str, what: str) -> None:
    from tangshi.files import write_atomic

    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
        print(f"wrote {out}: {what}", file=sys.stderr)


def cmd_data_topics(args) -> int:
    from tangshi.data.prepare import read_split, read_titles, require_prepared
    from tangshi.verse import topics

    data = require_prepared(Path(args.data))
    out = _table_out(args)
    poems = read_split(data, "train")
    table = topics.learn(poems, read_titles(data, "train", len(poems)))
    table = {"source": f"{data}: the train split's poems and their titles", **table}
    text = json.dumps(table, ensure_ascii=False, separators=(",", ":")) + "\n"
    _write_table(out, text, f"{len(table['pmi'])} title keys (characters and pairs) from {table['poems']} poems")
    return 0


def check_asked(form: str, acrostic: str | None, at: int | None) -> None:
    """generate's own checks of what metrics is asked to look for: an acrostic has one character a
    line, at a position the line has; --at places an acrostic and means nothing without one."""
    from tangshi.decode.constraints.forced import acrostic_column
    from tangshi.verse import prosody

    if at not in (None, 1) and not acrostic:
        raise TangshiError(f"--at {at} places the acrostic's characters, but no --acrostic was given")
    f = prosody.get_form(form)
    if not acrostic or f is None:
        return
    label = f.label or f.name
    text = "".join(acrostic.split())
    if len(text) != f.lines:
        raise TangshiError(f"acrostic '{text}' has {len(text)} characters but a {label} has {f.lines} lines")
    acrostic_column(1 if at is None else at, f.chars_per_line, label)


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
    from tangshi.train.evaluate import evaluate

    res = export_model(
        Path(args.checkpoint),
        Path(args.out),
        dtype=args.dtype,
        train_command=args.train_command,
        replace=args.replace or args.replace_bundled,
        replace_bundled=args.replace_bundled,
        evaluate=evaluate,
    )
    print(f"wrote {res['out']} ({res['bytes'] / 1e6:.1f} MB, dev ppl {res['dev_ppl']})")
    return 0


def _exercise(args) -> int:
    """--write-exercise FILE: the stubs to fill in; --exercise FILE: grade them."""
    from importlib import resources

    from tangshi.files import write_atomic
    from tangshi.lesson.exercise_grader import format_grades, grade, load_exercise

    if args.write_exercise:
        out = Path(args.write_exercise)
        if out.exists():
            raise TangshiError(f"{out} exists; give another name (your work there is kept)")
        if not out.parent.is_dir():
            raise TangshiError(f"cannot write {out}: its folder {out.parent} does not exist")
        write_atomic(out, resources.files("tangshi.lesson").joinpath("exercises.py").read_text(encoding="utf-8"))
        print(f"wrote {out}: fill in its three functions, then run tangshi gradcheck --exercise {out}")
        return 0
    rows = grade(load_exercise(Path(args.exercise)))
    if args.json:
        print_json({"exercise": args.exercise, "rows": rows, "ok": all(r["ok"] for r in rows)})
    else:
        print(format_grades(rows, args.exercise))
    if not all(r["ok"] for r in rows):
        failed = ", ".join(r["name"] for r in rows if not r["ok"])
        print(f"tangshi: error: exercise not passed yet: {failed}", file=sys.stderr)
        return 1
    return 0


def cmd_gradcheck(args) -> int:
    from tangshi.lesson.gradcheck import format_gradcheck, run_gradcheck

    check_number("--seed", args.seed, 0, 2**32 - 1, integer=True)  # NumPy's generators take no negative seed
    if args.write_exercise or args.exercise:
        return _exercise(args)
    if args.worked_example == 2:
        from tangshi.lesson.worked_example_h2 import format_worked_example_h2, run_worked_example_h2

        res = run_worked_example_h2()
        print_json(res) if args.json else print(format_worked_example_h2(res))
        return 0
    if args.worked_example:
        from tangshi.lesson.worked_example import format_worked_example, run_worked_example

        res = run_worked_example()
        print_json(res) if args.json else print(format_worked_example(res))
        return 0
    res = run_gradcheck(seed=args.seed)
    if args.json:
        print_json(res)
    else:
        print(format_gradcheck(res, full=args.all))
    if not res["ok"]:
        print("tangshi: error: gradient check failed", file=sys.stderr)
        return 1
    return 0
