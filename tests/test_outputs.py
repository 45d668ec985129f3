"""Nothing a user owns is lost: the output policy of every writing command, the lock, and
bad input answered with one line (exit 2, no traceback, nothing changed)."""

import errno
import json
import os
import shutil
import stat
import sys

import pytest

from conftest import one_line_error, run, write_tiny_corpus
from conftest import tree as snapshot
from tangshi.cli.main import main
from tangshi.files import TMP_PREFIX
from tangshi.outputs import LOCK, MARKER

TINY = ["--embed-dim", "8", "--hidden-dim", "8", "--batch-size", "16", "--quiet"]


@pytest.fixture
def run_dir(tmp_path, tiny_prepared, capsys):
    code, _, err = run(["train", "--data", tiny_prepared, "--out", tmp_path / "run", "--epochs", "2", *TINY], capsys)
    assert code == 0, err
    return tmp_path / "run"


def _writers(tmp_path, tiny_source, tiny_prepared, run_dir, out):
    """Each writing command, aimed at `out`."""
    return {
        "prepare": ["data", "prepare", "--source", tiny_source, "--out", out, "--poems", "all"],
        "train": ["train", "--data", tiny_prepared, "--out", out, "--epochs", "1", *TINY],
        "export": ["export", "--checkpoint", run_dir / "best", "--out", out],
        "experiment": ["experiment", "init", "--quick", "--data", tiny_prepared, "--out", out],
        "fetch": ["data", "fetch", "--from", tiny_source, "--dest", out, "--offline", "--no-npm"],
    }


@pytest.mark.parametrize("command", ["prepare", "train", "export", "experiment", "fetch"])
def test_a_folder_with_foreign_files_is_refused_even_with_replace(
    tmp_path, tiny_source, tiny_prepared, run_dir, capsys, command
):
    out = tmp_path / "project"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work", encoding="utf-8")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2", encoding="utf-8")
    before = snapshot(out)
    argv = _writers(tmp_path, tiny_source, tiny_prepared, run_dir, out)[command]
    for extra in ([], ["--replace"]):
        code, _, err = run(argv + extra, capsys)
        one_line_error(code, err, str(out), "did not write", "thesis.tex")
        assert snapshot(out) == before
        assert sorted(os.listdir(out)) == ["sub", "thesis.tex"]  # no mark, no lock, no temporary entry


@pytest.mark.parametrize("command", ["prepare", "train", "export", "experiment"])
def test_a_second_run_is_refused_and_replace_removes_only_tangshis_files(
    tmp_path, tiny_source, tiny_prepared, run_dir, capsys, command
):
    out = tmp_path / "out"
    argv = _writers(tmp_path, tiny_source, tiny_prepared, run_dir, out)[command]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    mark = json.loads((out / MARKER).read_text(encoding="utf-8"))
    assert mark["state"] == "complete" and mark["entries"]
    assert set(mark["entries"]) == {n for n in os.listdir(out) if not n.startswith(".")}
    before = snapshot(out)
    code, _, err = run(argv, capsys)
    one_line_error(code, err, str(out), "earlier", "--replace")
    assert snapshot(out) == before
    (out / "my-notes.txt").write_text("mine", encoding="utf-8")
    code, _, err = run(argv + ["--replace"], capsys)
    assert code == 0, err
    assert (out / "my-notes.txt").read_text(encoding="utf-8") == "mine"
    assert set(json.loads((out / MARKER).read_text(encoding="utf-8"))["entries"]) == {
        n for n in os.listdir(out) if not n.startswith(".") and n != "my-notes.txt"
    }
    assert not [n for n in os.listdir(out) if n.startswith(TMP_PREFIX) or n == LOCK]


def test_replace_refuses_a_foreign_file_under_a_name_tangshi_writes(tmp_path, tiny_source, capsys):
    out = tmp_path / "prep"
    argv = ["data", "prepare", "--source", tiny_source, "--out", out, "--poems", "all"]
    assert run(argv, capsys)[0] == 0
    mark = json.loads((out / MARKER).read_text(encoding="utf-8"))
    mark["entries"].remove("train.txt")  # as if the user had put their own train.txt there
    (out / MARKER).write_text(json.dumps(mark), encoding="utf-8")
    (out / "train.txt").write_text("my own corpus", encoding="utf-8")
    code, _, err = run(argv + ["--replace"], capsys)
    one_line_error(code, err, "train.txt", "not written by tangshi")
    assert (out / "train.txt").read_text(encoding="utf-8") == "my own corpus"


def test_outputs_that_overlap_their_source_are_refused(tmp_path, tiny_source, capsys, monkeypatch):
    before = snapshot(tiny_source)
    for out in (tiny_source, tiny_source.parent, tiny_source / "inside"):
        code, _, err = run(["data", "prepare", "--source", tiny_source, "--out", out, "--poems", "all"], capsys)
        one_line_error(code, err, "overlaps", str(tiny_source))
    monkeypatch.chdir(tiny_source.parent)
    code, _, err = run(["data", "prepare", "--source", "raw", "--out", ".", "--poems", "all"], capsys)
    one_line_error(code, err, "overlaps")
    code, _, err = run(["data", "fetch", "--from", tiny_source, "--dest", tiny_source, "--offline", "--no-npm"], capsys)
    one_line_error(code, err, "overlaps")
    assert snapshot(tiny_source) == before


def test_out_that_is_a_file_or_under_a_file(tmp_path, tiny_source, capsys):
    f = tmp_path / "afile"
    f.write_text("x", encoding="utf-8")
    for out, msg in ((f, "is a file"), (f / "sub", "is a file")):
        code, _, err = run(["data", "prepare", "--source", tiny_source, "--out", out, "--poems", "all"], capsys)
        one_line_error(code, err, msg)
    assert f.read_text(encoding="utf-8") == "x"


def test_a_second_process_writing_the_same_folder_gets_one_line(tmp_path, tiny_prepared, capsys):
    import subprocess

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from tangshi.outputs import OutputFolder\n"
                f"o = OutputFolder({str(out)!r}, 'run').open(); print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run(["train", "--data", tiny_prepared, "--out", out, "--epochs", "1", *TINY], capsys)
        one_line_error(code, err, "another tangshi process", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    # the lock died with its holder: the folder is usable at once
    code, _, err = run(["train", "--data", tiny_prepared, "--out", out, "--epochs", "1", *TINY], capsys)
    assert code == 0, err


def test_resume_options_that_conflict_are_refused(run_dir, tiny_prepared, capsys):
    before = snapshot(run_dir)
    for opt in (["--lr", "0.5"], ["--hidden-dim", "16"], ["--preset", "default"], ["--batch-size", "8"]):
        code, _, err = run(["train", "--data", tiny_prepared, "--out", run_dir, "--resume", *opt, "--quiet"], capsys)
        one_line_error(code, err, "--resume", "conflicts with the run's saved")
    assert snapshot(run_dir) == before
    code, _, err = run(
        [
            "train",
            "--data",
            tiny_prepared,
            "--out",
            run_dir,
            "--resume",
            "--epochs",
            "3",
            "--hidden-dim",
            "8",
            "--quiet",
        ],
        capsys,
    )  # the same value, and a longer constant schedule
    assert code == 0, err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_resume_rewrites_the_log_from_the_checkpoint_and_clears_stale_temporaries(run_dir, tiny_prepared, capsys):
    log = run_dir / "metrics.jsonl"
    rows = log.read_text(encoding="utf-8").splitlines()
    log.write_text("\n".join(rows + rows[-1:] + ['{"epoch": 7, "orphan": true}']) + "\n", encoding="utf-8")
    (run_dir / f"{TMP_PREFIX}123-0-poetry-gen-epoch3").mkdir()  # a killed save
    (run_dir / f"{TMP_PREFIX}123-0-poetry-gen-epoch3" / "model.safetensors").write_bytes(b"half")
    code, _, err = run(
        ["train", "--data", tiny_prepared, "--out", run_dir, "--resume", "--epochs", "3", "--quiet"], capsys
    )
    assert code == 0, err
    assert [json.loads(x)["epoch"] for x in log.read_text(encoding="utf-8").splitlines()] == [1, 2, 3]
    assert not [n for n in os.listdir(run_dir) if n.startswith(TMP_PREFIX)]


def test_a_run_written_before_links_resumes(tmp_path, run_dir, tiny_prepared, capsys):
    """An older tangshi kept last/ and best/ as folders and had no mark: such a run is recognised."""
    old = tmp_path / "old"
    shutil.copytree(run_dir, old, symlinks=False)  # links become real folders
    (old / MARKER).unlink()
    code, _, err = run(["train", "--data", tiny_prepared, "--out", old, "--epochs", "2", *TINY], capsys)
    one_line_error(code, err, "earlier training run")
    code, _, err = run(["train", "--data", tiny_prepared, "--out", old, "--resume", "--epochs", "3", "--quiet"], capsys)
    assert code == 0, err
    assert (old / "last").is_symlink() and json.loads((old / "last" / "trainer.json").read_text())["epoch"] == 3


def test_a_failing_write_is_one_line_and_found_before_training(tmp_path, tiny_prepared, capsys, monkeypatch):
    import shutil as sh
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    code, _, err = run(["train", "--data", tiny_prepared, "--out", tmp_path / "full", "--epochs", "1", *TINY], capsys)
    one_line_error(code, err, "1.0 kB free on the device", "needs about")
    assert not (tmp_path / "full").exists()  # a folder it made and could not fill is removed again
    monkeypatch.undo()

    real_open = os.open

    def read_only(path, flags, *a, **k):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *a, **k)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    code, _, err = run(["train", "--data", tiny_prepared, "--out", tmp_path / "ro", "--epochs", "1", *TINY], capsys)
    monkeypatch.undo()
    one_line_error(code, err, "permission denied", str(tmp_path / "ro"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(tmp_path, tiny_prepared, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, _, err = run(["train", "--data", tiny_prepared, "--out", ro, "--epochs", "1", *TINY], capsys)
    one_line_error(code, err, "permission denied")


def test_files_follow_the_users_umask(tmp_path, tiny_source, tiny_prepared, capsys):
    old = os.umask(0o027)
    try:
        code, _, err = run(
            ["train", "--data", tiny_prepared, "--out", tmp_path / "run", "--epochs", "1", *TINY], capsys
        )
        assert code == 0, err
    finally:
        os.umask(old)
    run_dir = tmp_path / "run"
    ck = run_dir / os.readlink(run_dir / "last")
    for p in (run_dir, ck):
        assert stat.S_IMODE(p.stat().st_mode) == 0o750, p
    for p in (ck / "model.safetensors", ck / "config.json", run_dir / "metrics.jsonl", run_dir / MARKER):
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, p


def test_a_split_without_poems_is_refused(tmp_path, capsys):
    src = write_tiny_corpus(tmp_path / "one", n=1)
    code, _, err = run(["data", "prepare", "--source", src, "--out", tmp_path / "p", "--poems", "all"], capsys)
    one_line_error(code, err, "split would hold no poems")
    assert not (tmp_path / "p").exists()


def test_train_refuses_empty_splits_and_a_vocabulary_that_does_not_cover_the_data(tmp_path, tiny_prepared, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_prepared, bad)
    (bad / "dev.txt").write_text("\n", encoding="utf-8")
    code, _, err = run(["train", "--data", bad, "--out", tmp_path / "r1", "--epochs", "1", *TINY], capsys)
    one_line_error(code, err, "dev.txt holds no poems")
    shutil.copy(tiny_prepared / "dev.txt", bad / "dev.txt")
    with open(bad / "train.txt", "a", encoding="utf-8") as f:
        f.write("龘龘龘龘龘，靐靐靐靐靐。\n")
    code, _, err = run(["train", "--data", bad, "--out", tmp_path / "r2", "--epochs", "1", *TINY], capsys)
    one_line_error(code, err, "does not cover", "2 characters are missing")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_a_non_finite_loss_stops_training_and_keeps_best(run_dir, tiny_prepared, capsys, monkeypatch):
    import torch

    from tangshi.train.graph_step import TrainStep

    best_before = snapshot(run_dir / "best")
    real = TrainStep.__call__
    calls = {"n": 0}

    def diverging(self, x, y):
        calls["n"] += 1
        loss = real(self, x, y)
        return loss * float("nan") if calls["n"] >= 2 else loss

    monkeypatch.setattr(TrainStep, "__call__", diverging)
    code, _, err = run(
        ["train", "--data", tiny_prepared, "--out", run_dir, "--resume", "--epochs", "4", "--quiet"], capsys
    )
    one_line_error(code, err, "training diverged in epoch 3", "nan", "best is unchanged")
    assert snapshot(run_dir / "best") == best_before
    assert json.loads((run_dir / "last" / "trainer.json").read_text(encoding="utf-8"))["epoch"] == 2
    assert not list(run_dir.glob("poetry-gen-epoch3-*"))
    assert torch.isfinite(torch.tensor(1.0))


BAD_OPTIONS = [
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "--threads", "-2"], "--threads"),
    (["train", "--device", "tpu"], "--device"),
    (["train", "--seed", "1" * 25], "--seed"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--batch-size", "-3"], "--batch-size"),
    (["train", "--clip", "-1"], "--clip"),
    (["train", "--warmup", "2"], "--warmup"),
    (["train", "--momentum", "1.5"], "--momentum"),
    (["train", "--dropout-output", "1"], "--dropout-output"),
    (["train", "--hidden-dim", "0"], "--hidden-dim"),
    (["train", "--embed-dim", "99999999"], "--embed-dim"),
    (["train", "--early-stop", "-1"], "--early-stop"),
    (["train", "--max-steps", "-1"], "--max-steps"),
    (["train", "--plateau-factor", "1"], "--plateau-factor"),
    (["eval", "--limit", "-5"], "--limit"),
    (["eval", "--limit", "0"], "--limit"),
    (["eval", "--device", "x"], "--device"),
    (["generate", "--n", "0"], "--n"),
    (["generate", "--n", "-4"], "--n"),
    (["generate", "--temperature", "nan"], "--temperature"),
    (["generate", "--top-p", "0"], "--top-p"),
    (["generate", "--top-k", "-1"], "--top-k"),
    (["generate", "--beam", "0"], "--beam"),
    (["generate", "--seed", "-1"], "--seed"),
    (["generate", "--strategy", "beam", "--n", "100000"], "--n"),
    (["data", "prepare", "--seed", "-1"], "--seed"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--threads", "0"], "--threads"),
    (["experiment", "init", "--epochs", "0"], "--epochs"),
]


@pytest.mark.parametrize("argv,option", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_each_bad_option_is_one_line_naming_it(tmp_path, tiny_prepared, run_dir, capsys, argv, option):
    extra = {
        "train": ["--data", tiny_prepared, "--out", tmp_path / "new"],
        "eval": ["--checkpoint", run_dir / "best", "--data", tiny_prepared],
        "generate": ["--checkpoint", run_dir / "best"],
        "data": ["--out", tmp_path / "new"],
        "bench": [],
        "experiment": ["--data", tiny_prepared, "--out", tmp_path / "new"],
    }[argv[0]]
    code, _, err = run(argv + extra, capsys)
    one_line_error(code, err, option, argv[argv.index(option) + 1] if option in argv else "")
    assert not (tmp_path / "new").exists()


def test_a_checkpoint_with_a_bad_config_or_weights_is_one_line(tmp_path, run_dir, capsys):
    from safetensors.torch import load_file, save_file

    ck = tmp_path / "ck"
    shutil.copytree(run_dir / "best", ck)
    cfg = json.loads((ck / "config.json").read_text(encoding="utf-8"))
    del cfg["model"]
    (ck / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    code, _, err = run(["generate", "--checkpoint", ck], capsys)
    one_line_error(code, err, "no model config")
    shutil.copy(run_dir / "best" / "config.json", ck / "config.json")
    w = load_file(str(ck / "model.safetensors"))
    w["head.bias"][3] = float("nan")
    save_file(w, str(ck / "model.safetensors"))
    code, _, err = run(["generate", "--checkpoint", ck], capsys)
    one_line_error(code, err, "not finite", "head.bias")
    code, _, err = run(["generate", "--checkpoint", run_dir], capsys)
    one_line_error(code, err, "training run, not a checkpoint", str(run_dir / "best"))


def test_metrics_reads_a_file_with_a_byte_order_mark(tmp_path, capsys):
    poems = {"poems": [{"text": "春江花月夜，山水風雲日。明白雪青天，下人間何處。"}], "form": "wujue"}
    f = tmp_path / "p.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(poems, ensure_ascii=False).encode("utf-8"))
    code, out, err = run(["metrics", f, "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 1 and res["form"] == "wujue"


def test_generation_streams_in_bounded_batches(run_dir, capsys, monkeypatch):
    """Memory stays flat in --n: poems are decoded GENERATION_CHUNK at a time and handed out as
    each batch finishes; the random stream continues across batches."""
    import tangshi.decode.poems as poems
    from tangshi.decode.poems import iter_poems, write_poems
    from tangshi.decode.search import DecodeOptions
    from tangshi.model.checkpoint import load_checkpoint

    model, vocab, _ = load_checkpoint(run_dir / "best")
    opts = DecodeOptions(seed=5, top_p=0.9, temperature=0.8)
    sizes = []
    real = poems.decode
    monkeypatch.setattr(poems, "decode", lambda *a, **k: sizes.append(a[2]) or real(*a, **k))
    stream = iter_poems(model, vocab, opts, n=600, start="春")
    first = next(stream)
    assert sizes == [poems.GENERATION_CHUNK]  # the first poem is out after one batch
    rest = list(stream)
    assert sizes == [256, 256, 88] and len(rest) == 599
    alone = write_poems(model, vocab, opts, n=256, start="春")["poems"]
    assert [first] + rest[:255] == alone
    monkeypatch.undo()
    code, out, err = run(
        ["generate", "--checkpoint", run_dir / "best", "--start", "春", "--n", "300", "--seed", "5", "--json"], capsys
    )
    assert code == 0, err
    want = write_poems(model, vocab, DecodeOptions(seed=5, top_p=0.9, temperature=0.8), n=300, start="春")
    assert out == json.dumps(want, ensure_ascii=False, indent=1) + "\n"  # streamed, yet the same bytes


def test_replace_never_removes_the_checkpoint_it_starts_from(run_dir, tiny_prepared, capsys):
    before = snapshot(run_dir)
    code, _, err = run(
        [
            "train",
            "--data",
            tiny_prepared,
            "--out",
            run_dir,
            "--replace",
            "--init-from",
            run_dir / "best",
            "--epochs",
            "1",
            "--quiet",
        ],
        capsys,
    )
    one_line_error(code, err, "overlaps", str(run_dir / "best"))
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("argv", [["generate", "--top-k", "1e9"], ["nope"], [], ["train", "--impl", "x"], ["data"]])
def test_argument_errors_are_one_line_too(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tangshi: error:") and "--help" in lines[0], err


# ---------------------------------------------------------------------------- cases a hostile review found
def test_a_refused_replace_keeps_the_earlier_run(run_dir, tiny_prepared, tmp_path, capsys):
    before = snapshot(run_dir)
    (tmp_path / "notckpt").mkdir()
    for bad in (
        ["--hidden-dim", "0"],
        ["--dropout-embed", "1"],
        ["--init-from", tmp_path / "notckpt"],
        ["--tie-weights", "--embed-dim", "8", "--hidden-dim", "16"],
    ):
        code, _, err = run(
            ["train", "--data", tiny_prepared, "--out", run_dir, "--replace", "--epochs", "1", "--quiet", *bad], capsys
        )
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert snapshot(run_dir) == before, bad


def test_mark_entries_cannot_reach_outside_the_folder(tmp_path, tiny_source, capsys):
    out, victim = tmp_path / "prep", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious", encoding="utf-8")
    argv = ["data", "prepare", "--source", tiny_source, "--out", out, "--poems", "all"]
    assert run(argv, capsys)[0] == 0
    good = (out / MARKER).read_text(encoding="utf-8")
    for entries in (["../victim/keep.txt"], [str(victim / "keep.txt")], [5], [None], [".."]):
        mark = json.loads(good)
        mark["entries"] += entries
        (out / MARKER).write_text(json.dumps(mark), encoding="utf-8")
        code, _, err = run(argv + ["--replace"], capsys)
        one_line_error(code, err, "is damaged")
    mark = json.loads(good)
    mark["kind"] = ["x"]
    (out / MARKER).write_text(json.dumps(mark), encoding="utf-8")
    one_line_error(*run(argv + ["--replace"], capsys)[::2], "is damaged")
    assert (victim / "keep.txt").read_text(encoding="utf-8") == "precious"


def test_a_lock_that_is_a_link_is_refused_and_its_target_kept(tmp_path, tiny_source, capsys):
    out, target = tmp_path / "prep", tmp_path / "target.txt"
    argv = ["data", "prepare", "--source", tiny_source, "--out", out, "--poems", "all"]
    assert run(argv, capsys)[0] == 0
    target.write_text("precious", encoding="utf-8")
    os.symlink(target, out / LOCK)
    one_line_error(*run(argv + ["--replace"], capsys)[::2], "lock")
    assert target.read_text(encoding="utf-8") == "precious"


def test_export_refuses_weights_that_overflow_the_dtype_and_keeps_the_earlier_export(tmp_path, run_dir, capsys):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "m"
    assert run(["export", "--checkpoint", run_dir / "best", "--out", out], capsys)[0] == 0
    before = snapshot(out)
    big = tmp_path / "big"
    shutil.copytree(run_dir / "best", big)
    w = load_file(str(big / "model.safetensors"))
    w["head.bias"][0] = 1e30  # finite in fp32, infinite in fp16
    save_file(w, str(big / "model.safetensors"))
    _record_files_again(big)  # a checkpoint written so, not one changed afterwards
    one_line_error(
        *run(["export", "--checkpoint", big, "--out", out, "--replace"], capsys)[::2],
        "not finite in float16",
        "head.bias",
    )
    assert snapshot(out) == before


def _record_files_again(ck):
    from tangshi.data.vocab import Vocab
    from tangshi.model.checkpoint import RECORD, file_record

    cfg = json.loads((ck / "config.json").read_text(encoding="utf-8"))
    cfg[RECORD] = file_record(ck, Vocab.load(ck / "vocab.json"))
    (ck / "config.json").write_text(json.dumps(cfg), encoding="utf-8")


def test_a_run_never_overwrites_a_file_it_did_not_write(tmp_path, tiny_prepared, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text(
        json.dumps({"format": "tangshi-output/1", "kind": "run", "command": "", "state": "complete", "entries": []}),
        encoding="utf-8",
    )
    (out / "metrics.jsonl").write_text("mine", encoding="utf-8")
    one_line_error(
        *run(["train", "--data", tiny_prepared, "--out", out, "--epochs", "1", *TINY], capsys)[::2],
        "metrics.jsonl was not written by tangshi",
    )
    assert (out / "metrics.jsonl").read_text(encoding="utf-8") == "mine"
    assert sorted(os.listdir(out)) == [MARKER, "metrics.jsonl"]


def test_odd_paths_and_archives_are_one_line(tmp_path, tiny_source, capsys):
    import io
    import tarfile

    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    one_line_error(*run(["data", "prepare", "--source", tiny_source, "--out", loop], capsys)[::2], "loop")
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tf:
        info = tarfile.TarInfo("../escaped.json")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"[]"))
    truncated = tmp_path / "trunc.tgz"
    with tarfile.open(tmp_path / "ok.tgz", "w:gz") as tf:
        tf.add(tiny_source / "poet.tang.0.json", arcname="poet.tang.0.json")
    data = (tmp_path / "ok.tgz").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for archive in (evil, truncated):
        code, _, err = run(
            ["data", "fetch", "--from", archive, "--dest", tmp_path / "d", "--offline", "--no-npm"], capsys
        )
        one_line_error(code, err, str(archive))
    assert not (tmp_path / "escaped.json").exists() and not (tmp_path / "d").exists()
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "poet.tang.0.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    one_line_error(*run(["data", "prepare", "--source", deep, "--out", tmp_path / "p"], capsys)[::2], "nested")


def test_damaged_prepared_folders_are_one_line(tmp_path, tiny_prepared, run_dir, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_prepared, bad)
    vocab = json.loads((bad / "vocab.json").read_text(encoding="utf-8"))
    good_vocab = json.dumps(vocab)
    vocab["itos"][0] = ["a"]
    (bad / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    one_line_error(
        *run(["train", "--data", bad, "--out", tmp_path / "r", "--epochs", "1", *TINY], capsys)[::2], "not a character"
    )
    (bad / "vocab.json").write_text(good_vocab, encoding="utf-8")
    first = (bad / "dev.txt").read_text(encoding="utf-8").splitlines()[0]
    with open(bad / "dev.txt", "a", encoding="utf-8") as f:
        f.write(first * 5 + "\n")  # 120 characters: longer than the model's window
    one_line_error(*run(["eval", "--checkpoint", run_dir / "best", "--data", bad], capsys)[::2], "dev.txt", "fit")
    one_line_error(
        *run(["eval", "--checkpoint", run_dir / "best", "--data", tiny_prepared, "--device", "cuda"], capsys)[::2],
        "no CUDA device",
    ) if not __import__("torch").cuda.is_available() else None
    half = tmp_path / "half"
    shutil.copytree(tiny_prepared, half)
    mark = json.loads((half / MARKER).read_text(encoding="utf-8"))
    (half / MARKER).write_text(json.dumps({**mark, "state": "writing"}), encoding="utf-8")
    for argv in (
        ["eval", "--checkpoint", run_dir / "best", "--data", half],
        ["train", "--data", half, "--out", tmp_path / "r2", "--epochs", "1", *TINY],
    ):
        one_line_error(*run(argv, capsys)[::2], "half-written")


def test_resume_keeps_to_the_runs_own_data(tmp_path, tiny_source, run_dir, tiny_prepared, capsys, monkeypatch):
    other = tmp_path / "other"
    assert (
        run(["data", "prepare", "--source", tiny_source, "--out", other, "--poems", "all", "--seed", "5"], capsys)[0]
        == 0
    )
    before = snapshot(run_dir)
    one_line_error(
        *run(["train", "--data", other, "--out", run_dir, "--resume", "--epochs", "3", "--quiet"], capsys)[::2],
        "not the data this run trained on",
    )
    assert snapshot(run_dir) == before
    monkeypatch.chdir(tmp_path)  # no data/prepared here: the run's own folder must be found
    code, _, err = run(["train", "--out", run_dir, "--resume", "--epochs", "3", "--quiet"], capsys)
    assert code == 0, err


def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path, tiny_prepared, capsys):
    one_line_error(
        *run(
            [
                "train",
                "--data",
                tiny_prepared,
                "--out",
                tmp_path / "big",
                "--embed-dim",
                "16384",
                "--hidden-dim",
                "16384",
                "--quiet",
            ],
            capsys,
        )[::2],
        "GB of memory",
    )
    assert not (tmp_path / "big").exists()


def test_a_full_disk_inside_safetensors_is_one_line(tmp_path, tiny_prepared, capsys, monkeypatch):
    from safetensors import SafetensorError

    import tangshi.model.checkpoint as ck

    def full(*a, **k):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ck, "save_file", full)
    one_line_error(
        *run(["train", "--data", tiny_prepared, "--out", tmp_path / "r", "--epochs", "1", *TINY], capsys)[::2],
        "no space left",
    )


def test_hidden_user_folders_and_files_inside_checkpoints_survive(run_dir, tiny_prepared, tmp_path, capsys):
    """Stale temporaries are removed only under tangshi's own names; a legacy run folder whose
    checkpoint holds a user's file is not taken for tangshi's."""
    (run_dir / ".notes.tmp-1").mkdir()  # looks like a temporary name, but not one tangshi ever wrote
    (run_dir / ".notes.tmp-1" / "draft.txt").write_text("mine", encoding="utf-8")
    code, _, err = run(
        ["train", "--data", tiny_prepared, "--out", run_dir, "--resume", "--epochs", "3", "--quiet"], capsys
    )
    assert code == 0, err
    assert (run_dir / ".notes.tmp-1" / "draft.txt").read_text(encoding="utf-8") == "mine"
    old = tmp_path / "old"
    shutil.copytree(run_dir, old, symlinks=False, ignore=shutil.ignore_patterns(".notes.tmp-1"))
    (old / MARKER).unlink()
    (old / "last" / "my-notes.txt").write_text("mine", encoding="utf-8")
    one_line_error(
        *run(["train", "--data", tiny_prepared, "--out", old, "--resume", "--epochs", "4", "--quiet"], capsys)[::2],
        "did not write",
    )
    assert (old / "last" / "my-notes.txt").read_text(encoding="utf-8") == "mine"
