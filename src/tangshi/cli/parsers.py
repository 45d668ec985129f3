"""The `tangshi` parser: every subcommand and its options. Options of the model and of training
come from their config dataclasses (`config_options`), those of a poem request from `PoemRequest`
and `CoupletRequest` (`add_options`); the dataclasses validate the values."""

from __future__ import annotations

import argparse
import dataclasses

from tangshi.cli.commands import (
    cmd_bench,
    cmd_couplet,
    cmd_data_fetch,
    cmd_data_habits,
    cmd_data_prepare,
    cmd_data_topics,
    cmd_export,
    cmd_generate,
    cmd_gradcheck,
    cmd_metrics,
    cmd_serve,
    cmd_train,
)
from tangshi.cli.common import (
    JSON_HELP,
    PREPARED_DEFAULT,
    REPLACE_HELP,
    THREADS_HELP,
    add_all,
)
from tangshi.cli.evaluation import cmd_eval
from tangshi.cli.experiment import experiment_parser
from tangshi.decode.request import CoupletRequest, PoemRequest, add_options
from tangshi.model.spec import OLD_NAMES
from tangshi.text import FORM_NAMES


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit status 2 as before."""

    def error(self, message: str):
        where = self.prog.removeprefix("tangshi").strip()
        self.exit(2, f"tangshi: error: {where + ': ' if where else ''}{message} (see {self.prog} --help)\n")


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
    h = dsub.add_parser("habits", help="learn 疊字 and repeat habits from the corpus (the table the decoder keeps to)")
    h.add_argument("--source", default="data/quantangshi", help="folder of poet.tang.*.json (default data/quantangshi)")
    h.add_argument("--out", help="write the table here (default: standard output)")
    h.add_argument("--replace", action="store_true", help="write over an existing --out file")
    h.set_defaults(func=cmd_data_habits)
    tp = dsub.add_parser(
        "topics", help="learn which poem characters each title character calls for (the table --title leans on)"
    )
    tp.add_argument(
        "--data", default="data/prepared/all-seed0", help="prepared folder (default data/prepared/all-seed0)"
    )
    tp.add_argument("--out", help="write the table here (default: standard output)")
    tp.add_argument("--replace", action="store_true", help="write over an existing --out file")
    tp.set_defaults(func=cmd_data_topics)


def _train_parser(sub) -> None:
    from tangshi.model.spec import ModelConfig
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
        "--real",
        help="the real poems the reader's table compares with: a prepared folder (its train.txt) or a folder of "
        "poet.tang.*.json (cleaned, every length); default: --data's, else data/quantangshi when --data has "
        "no poem of the form (a prepared folder has no 七律)",
    )
    mp.add_argument("--no-real", action="store_true", help="leave the real column out of the reader's table")
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
        nargs="?",
        type=int,
        const=1,
        choices=(1, 2),
        metavar="H",
        help="print the worked example of docs/lstm-backprop.md with H = 1 unit (the default) or 2 instead: "
        "every forward and BPTT number, and each gradient beside its finite difference (H = 2: and beside "
        "what the assignment's code computes)",
    )
    gc.add_argument(
        "--all",
        action="store_true",
        help="also show the other configurations, the optimisers and the training kernel (always checked)",
    )
    gc.add_argument(
        "--exercise",
        metavar="FILE",
        help="grade your step_forward, step_backward and bptt in FILE against the reference LSTM and "
        "finite differences (exit 0 when all three pass)",
    )
    gc.add_argument(
        "--write-exercise", metavar="FILE", help="write the exercise file to fill in (its three stubs) to FILE"
    )
    gc.set_defaults(func=cmd_gradcheck)
