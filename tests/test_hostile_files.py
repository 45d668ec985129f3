"""What a hostile user does to tangshi's files, and what tangshi must do about it.

- A file of the user's inside a folder tangshi would replace or remove (a checkpoint folder, a
  leftover temporary): refused with one line naming the file, every earlier file byte-identical,
  and the folder usable again once the file is moved out (plan, check, then act).
- `data prepare` and `export` interrupted at every filesystem operation, by a kill or a failing
  write: a reader finds the earlier output or the new one, never a mix; the next run succeeds.
- A checkpoint is one thing: its config.json records vocab.json's and model.safetensors' sha256.
- Messages name what the user gave (a file and key, not an option never typed).
- The bundled model is replaced only when asked by name (replace_bundled).
"""

import errno
import hashlib
import json
import os
import shutil
import signal
import time

import pytest
import torch

from conftest import one_line_error, run, tree, write_tiny_corpus
from tangshi.errors import TangshiError
from tangshi.files import TMP_PREFIX
from tangshi.outputs import LOCK, MARKER, OutputFolder, read_marker, user_entries
from test_crash_safety import KILLED, Interrupt

TINY = ["--embed-dim", "8", "--hidden-dim", "8", "--batch-size", "16", "--quiet"]
QUIET = dict(progress=False, log=lambda *a: None)
CHILD_TIMEOUT_S = 120


def epoch_folders(run_dir):
    return sorted(n for n in os.listdir(run_dir) if n.startswith("poetry-gen-epoch"))


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and the forked children use one)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def quick_curves(monkeypatch):
    """curves.png is still written through the same path, but not drawn (most of a tiny run's time)."""
    monkeypatch.setattr("tangshi.train.loop._plot", lambda history, path, title: open(path, "wb").write(b"png"))


# ---------------------------------------------------------------------------- 1. plan, check, then act
@pytest.mark.parametrize("which", [0, 2])  # the note in epoch 1's folder, then in epoch 3's
def test_replace_with_a_note_inside_a_checkpoint_is_refused_and_changes_nothing(
    tmp_path, tiny_prepared, capsys, quick_curves, which
):
    run_dir = tmp_path / "rep1"
    argv = ["train", "--data", tiny_prepared, "--out", run_dir, "--epochs", "3", *TINY]
    assert run(argv, capsys)[0] == 0
    note = run_dir / epoch_folders(run_dir)[which] / "NOTES.txt"
    note.write_text("x\n", encoding="utf-8")
    before = tree(run_dir)
    for again in range(2):  # refused every time, never a half-new run
        one_line_error(*run(argv + ["--replace"], capsys)[::2], str(note), "not written by tangshi", "--replace")
        assert tree(run_dir) == before
    assert run(argv[:-1] + ["--resume", "--epochs", "4", "--quiet"], capsys)[0] == 0  # resume removes nothing
    assert note.read_text(encoding="utf-8") == "x\n"
    note.unlink()
    code, _, err = run(argv + ["--replace"], capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and len(epoch_folders(run_dir)) == 3
    assert not [n for n in os.listdir(run_dir) if n.startswith(TMP_PREFIX) or n == LOCK]
    assert run(argv[:-1] + ["--resume", "--epochs", "4", "--quiet"], capsys)[0] == 0


def test_dropping_an_epoch_that_holds_a_users_file_is_refused(tmp_path, tiny_prepared, capsys, quick_curves):
    run_dir = tmp_path / "run"
    argv = ["train", "--data", tiny_prepared, "--out", run_dir, "--no-epoch-checkpoints", *TINY]
    assert run(argv + ["--epochs", "2"], capsys)[0] == 0
    (kept,) = epoch_folders(run_dir)  # epoch 2: last and best; epoch 3 improves, so epoch 2 is to be dropped
    (run_dir / kept / "mine.txt").write_text("mine", encoding="utf-8")
    before = tree(run_dir)
    one_line_error(
        *run(argv + ["--resume", "--epochs", "3"], capsys)[::2],
        str(run_dir / kept / "mine.txt"),
        "dropping an earlier epoch",
    )
    assert tree(run_dir) == before
    (run_dir / kept / "mine.txt").unlink()
    assert run(argv + ["--resume", "--epochs", "3"], capsys)[0] == 0
    assert len(epoch_folders(run_dir)) == 1


def test_an_epoch_written_again_over_a_users_file_is_refused(tmp_path, tiny_prepared, capsys, quick_curves):
    """An epoch folder that a resume will write again (same name: the resumed run is exact) holds a
    file of the user's: refused before anything is written."""
    from tangshi.train.torch_backend import TrainConfig, train

    cfg = TrainConfig(epochs=3, batch_size=16)
    train(tiny_prepared, tmp_path / "ref", dict(embed_dim=8, hidden_dim=8), cfg, **QUIET)
    run_dir = tmp_path / "run"
    train(tiny_prepared, run_dir, dict(embed_dim=8, hidden_dim=8), cfg, stop_after_epoch=2, **QUIET)
    third = epoch_folders(tmp_path / "ref")[2]
    (run_dir / third).mkdir()  # as a killed process might leave it, and a user's note inside
    (run_dir / third / "NOTES.txt").write_text("mine", encoding="utf-8")
    mark = read_marker(run_dir)
    (run_dir / MARKER).write_text(json.dumps({**mark, "entries": sorted(mark["entries"] + [third])}), encoding="utf-8")
    before = tree(run_dir)
    with pytest.raises(TangshiError, match="NOTES.txt was not written by tangshi, and writing .* again"):
        train(tiny_prepared, run_dir, None, cfg, resume=True, **QUIET)
    assert tree(run_dir) == before
    (run_dir / third / "NOTES.txt").unlink()
    train(tiny_prepared, run_dir, None, cfg, resume=True, **QUIET)
    assert epoch_folders(run_dir) == epoch_folders(tmp_path / "ref")


def test_a_leftover_temporary_holding_a_users_file_is_refused(tmp_path, tiny_prepared, capsys, quick_curves):
    run_dir = tmp_path / "run"
    argv = ["train", "--data", tiny_prepared, "--out", run_dir, *TINY]
    assert run(argv + ["--epochs", "1"], capsys)[0] == 0
    left = run_dir / f"{TMP_PREFIX}99-0-poetry-gen-epoch2-loss3.5"
    left.mkdir()
    (left / "model.safetensors").write_bytes(b"half")
    (left / "thesis.tex").write_text("mine", encoding="utf-8")
    before = tree(run_dir)
    one_line_error(
        *run(argv + ["--resume", "--epochs", "2"], capsys)[::2], str(left / "thesis.tex"), "not written by tangshi"
    )
    assert tree(run_dir) == before
    (left / "thesis.tex").unlink()
    assert run(argv + ["--resume", "--epochs", "2"], capsys)[0] == 0
    assert not left.exists()


def test_prepare_replace_refuses_a_folder_put_where_a_file_was(tmp_path, tiny_source, capsys):
    out = tmp_path / "prep"
    argv = ["data", "prepare", "--source", tiny_source, "--out", out, "--poems", "all"]
    assert run(argv, capsys)[0] == 0
    (out / "dev.txt").unlink()
    (out / "dev.txt").mkdir()
    (out / "dev.txt" / "mine.txt").write_text("mine", encoding="utf-8")
    before = tree(out)
    one_line_error(*run(argv + ["--replace"], capsys)[::2], str(out / "dev.txt" / "mine.txt"))
    assert tree(out) == before


# ---------------------------------------------------------------------------- 2. interrupted at every step
def _interrupted(fn, k: int, kill: bool) -> str:
    """Run fn() interrupted at moment k (test_crash_safety.Interrupt): by a kill (a forked child
    exits there, no cleanup runs) or by that operation failing with ENOSPC, which must come out
    as one line. Returns "done" if fn ran to its end before moment k, "failed" if it raised,
    "interrupted" if it was killed or went on past the failure (pathlib's mkdir does)."""
    if not kill:

        def fail():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        with pytest.MonkeyPatch.context() as mp:
            moments = Interrupt(k, fail)
            moments.install(mp)
            try:
                fn()
                return "done" if moments.count < k else "interrupted"
            except TangshiError as e:
                assert "no space left" in str(e) and "\n" not in str(e), (k, str(e))
                return "failed"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            torch.set_num_threads(1)
            with pytest.MonkeyPatch.context() as mp:
                Interrupt(k, lambda: os._exit(KILLED)).install(mp)
                fn()
            code = 0
        finally:
            os._exit(code)
    for _ in range(CHILD_TIMEOUT_S * 100):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"the child interrupted at operation {k} hung")
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, KILLED), f"child exited {code} at operation {k}"
    return "done" if code == 0 else "interrupted"


def _settle(out, kind, reader, old, failed: bool):
    """After an interruption: a reader finds the earlier output (`old`, the tree; {}: none), the new
    one (`reader` returns it), or refuses a half-written folder, which the next open puts back as
    it was. A write that failed (not killed) has already put everything back, byte for byte."""
    if failed:
        assert (tree(out) == old) if old else not out.exists()
        return "old"
    mark = read_marker(out) if out.exists() else None
    if mark is not None and mark.get("state") == "writing":
        with pytest.raises(TangshiError, match="half-written"):
            reader(out)
        OutputFolder(out, kind, resume=True).open().close()  # what the next run does first
        assert (tree(out) == old) if old else not user_entries(out)
        return "old"
    if not out.exists() or (not old and not user_entries(out)):
        return "old"
    if {r: v for r, v in tree(out).items() if not r.startswith(TMP_PREFIX) and r != LOCK} == old:
        return "old"
    assert mark["state"] == "complete"
    return reader(out)


def _each_moment(make_case, act, settle, rerun, kill: bool) -> tuple[int, set]:
    """For k = 1, 2, …: a fresh case, `act` interrupted at moment k, `settle` (what a reader finds:
    "old" or "new"), then `rerun`; until `act` runs to its end. Returns k and what was found."""
    k, seen = 0, set()
    while True:
        k += 1
        case = make_case(k)
        how = _interrupted(lambda: act(case), k, kill)
        seen.add(settle(case, failed=how == "failed"))
        rerun(case)
        shutil.rmtree(case.parent)
        if how == "done":
            return k, seen


def _prepared(out):
    from tangshi.data.prepare import read_meta, read_split, require_prepared

    require_prepared(out)
    meta = {k: v for k, v in read_meta(out).items() if k not in ("seconds", "out")}
    return "new", read_split(out, "train"), read_split(out, "dev"), (out / "vocab.json").read_bytes(), meta


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("kill", [True, False], ids=["kill", "ENOSPC"])
@pytest.mark.parametrize("earlier", [True, False], ids=["replace", "fresh"])
def test_prepare_interrupted_at_every_step_leaves_the_old_output_or_the_new(tmp_path, kill, earlier):
    from tangshi.data.prepare import prepare

    raw = write_tiny_corpus(tmp_path / "raw", n=40)
    prepare(raw, tmp_path / "ref" / "out", None, 5)
    new = _prepared(tmp_path / "ref" / "out")
    if earlier:
        prepare(raw, tmp_path / "base" / "out", None, 0)
    old = tree(tmp_path / "base" / "out") if earlier else {}

    def make_case(k):
        case = tmp_path / f"case{k}" / "out"
        if earlier:
            shutil.copytree(tmp_path / "base", case.parent, symlinks=True)
        return case

    def settle(case, failed):
        got = _settle(case, "prepared", _prepared, old, failed)
        assert got in ("old", new), "a mix of the earlier output and the new"
        return got if got == "old" else "new"

    def rerun(case):  # --replace only where an output (the earlier or the new) is found
        prepare(raw, case, None, 5, replace=case.exists() and bool(user_entries(case)))
        assert _prepared(case) == new
        assert not [n for n in os.listdir(case) if n.startswith(TMP_PREFIX) or n == LOCK]
        assert (
            set(read_marker(case)["entries"])
            == set(user_entries(case))
            == {"train.txt", "dev.txt", "vocab.json", "meta.json", "titles.json"}
        )

    k, seen = _each_moment(make_case, lambda case: prepare(raw, case, None, 5, replace=earlier), settle, rerun, kill)
    assert k > 25 and seen == {"old", "new"}, (k, seen)


def _exported(out):
    from tangshi.model.checkpoint import load_checkpoint

    load_checkpoint(out)  # refuses a half-written folder, and (its record) a mix of vocabulary and weights
    names = ("model.safetensors", "config.json", "vocab.json", "MODEL_CARD.md")
    return "new", {n: (out / n).read_bytes() for n in names}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("kill", [True, False], ids=["kill", "ENOSPC"])
def test_export_interrupted_at_every_step_leaves_the_old_model_or_the_new(
    tmp_path, tiny_prepared, kill, quick_curves, one_thread
):
    from tangshi.model.bundled import export_model
    from tangshi.train.torch_backend import TrainConfig, train

    train(
        tiny_prepared, tmp_path / "run", dict(embed_dim=8, hidden_dim=8), TrainConfig(epochs=2, batch_size=16), **QUIET
    )
    first, second = (tmp_path / "run" / n for n in epoch_folders(tmp_path / "run"))
    export_model(second, tmp_path / "ref" / "m")
    new = _exported(tmp_path / "ref" / "m")
    export_model(first, tmp_path / "base" / "m")
    old = tree(tmp_path / "base" / "m")

    def make_case(k):
        shutil.copytree(tmp_path / "base", tmp_path / f"case{k}", symlinks=True)
        return tmp_path / f"case{k}" / "m"

    def settle(case, failed):
        got = _settle(case, "model", _exported, old, failed)
        assert got in ("old", new), "a mix of the earlier model and the new"
        return got if got == "old" else "new"

    def rerun(case):
        export_model(second, case, replace=True)
        assert _exported(case) == new
        assert not [n for n in os.listdir(case) if n.startswith(TMP_PREFIX) or n == LOCK]

    k, seen = _each_moment(make_case, lambda case: export_model(second, case, replace=True), settle, rerun, kill)
    assert k > 25 and seen == {"old", "new"}, (k, seen)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("kill", [True, False], ids=["kill", "ENOSPC"])
def test_a_replaced_run_interrupted_at_every_step_of_its_first_save_comes_back(
    tmp_path, tiny_prepared, kill, quick_curves, one_thread
):
    """--replace of a training run: the earlier run goes only under an undo record, so an
    interruption before the new epoch, `last` and `best` are in place leaves the earlier run
    byte for byte (after the next open, for a kill); after that, the new run resumes to its end."""
    from tangshi.train.torch_backend import TrainConfig, train

    small = dict(embed_dim=8, hidden_dim=8)
    train(tiny_prepared, tmp_path / "base" / "run", small, TrainConfig(epochs=2, batch_size=16, seed=1), **QUIET)
    old = tree(tmp_path / "base" / "run")
    cfg = TrainConfig(epochs=2, batch_size=16, seed=2)
    train(tiny_prepared, tmp_path / "ref", small, cfg, **QUIET)
    new = epoch_folders(tmp_path / "ref")

    def make_case(k):
        shutil.copytree(tmp_path / "base", tmp_path / f"case{k}", symlinks=True)
        return tmp_path / f"case{k}" / "run"

    def settle(case, failed=False):
        mark = read_marker(case)
        if mark.get("state") == "writing":
            OutputFolder(case, "run", resume=True).open().close()
        if {r: v for r, v in tree(case).items() if not r.startswith(TMP_PREFIX) and r != LOCK} == old:
            return "old"
        assert not set(epoch_folders(case)) & set(epoch_folders(tmp_path / "base" / "run")), "a mix of two runs"
        assert epoch_folders(case)[0] == new[0]
        return "new"

    def rerun(case):
        if settle(case) == "old":
            train(tiny_prepared, case, small, cfg, replace=True, **QUIET)
        else:
            train(tiny_prepared, case, None, cfg, resume=True, **QUIET)
        assert epoch_folders(case) == new and os.readlink(case / "last") == new[-1]

    act = lambda case: train(tiny_prepared, case, small, cfg, replace=True, stop_after_epoch=1, **QUIET)  # noqa: E731
    k, seen = _each_moment(make_case, act, settle, rerun, kill)
    assert k > 25 and seen == {"old", "new"}, (k, seen)


# ---------------------------------------------------------------------------- 3. a checkpoint is one thing
@pytest.fixture
def ck(tmp_path, tiny_prepared, quick_curves):
    """A small trained checkpoint, copied out of its run."""
    from tangshi.train.torch_backend import TrainConfig, train

    train(
        tiny_prepared, tmp_path / "run", dict(embed_dim=8, hidden_dim=8), TrainConfig(epochs=1, batch_size=16), **QUIET
    )
    shutil.copytree(tmp_path / "run" / "last", tmp_path / "ck")
    return tmp_path / "ck"


def _swap_two_entries(vocab_file, i=0, j=1):
    obj = json.loads(vocab_file.read_text(encoding="utf-8"))
    obj["itos"][i], obj["itos"][j] = obj["itos"][j], obj["itos"][i]
    vocab_file.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def test_config_records_the_files_of_the_checkpoint(ck):
    from tangshi.data.vocab import Vocab
    from tangshi.model.checkpoint import vocab_fingerprint

    rec = json.loads((ck / "config.json").read_text(encoding="utf-8"))["files"]
    for name in ("model.safetensors", "vocab.json"):
        assert rec[name]["sha256"] == hashlib.sha256((ck / name).read_bytes()).hexdigest()
    vocab = Vocab.load(ck / "vocab.json")
    assert rec["vocab.json"]["size"] == len(vocab) and rec["vocab.json"]["order_sha256"] == vocab_fingerprint(vocab)


def test_a_vocabulary_with_two_entries_swapped_is_refused(ck, capsys):
    from tangshi.model.checkpoint import load_checkpoint

    _swap_two_entries(ck / "vocab.json")
    before = tree(ck)
    with pytest.raises(TangshiError, match="another order") as e:
        load_checkpoint(ck)
    assert str(ck / "vocab.json") in str(e.value) and str(ck / "model.safetensors") in str(e.value)
    one_line_error(
        *run(["generate", "--checkpoint", ck, "--n", "1"], capsys)[::2],
        f"{ck / 'vocab.json'} does not match {ck / 'model.safetensors'}",
    )
    assert tree(ck) == before


def test_weights_changed_after_the_checkpoint_was_written_are_refused(ck, capsys):
    from safetensors.torch import load_file, save_file

    w = load_file(str(ck / "model.safetensors"))
    w["head.bias"][0] += 1.0
    save_file(w, str(ck / "model.safetensors"))
    one_line_error(
        *run(["generate", "--checkpoint", ck, "--n", "1"], capsys)[::2],
        f"{ck / 'model.safetensors'} does not match {ck / 'vocab.json'}",
    )


def test_a_checkpoint_without_the_record_loads_with_one_note(ck, capsys):
    from tangshi.model.checkpoint import load_checkpoint

    recorded, _, _ = load_checkpoint(ck)
    cfg = json.loads((ck / "config.json").read_text(encoding="utf-8"))
    del cfg["files"]
    (ck / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    capsys.readouterr()
    old, _, _ = load_checkpoint(ck)
    load_checkpoint(ck)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("note: ") and "records no sha256" in err, err
    assert all(torch.equal(a, b) for a, b in zip(recorded.state_dict().values(), old.state_dict().values()))
    _swap_two_entries(ck / "vocab.json")  # unchecked: it loads (the note said so), as before the record
    load_checkpoint(ck)


def test_the_bundled_model_is_checked_quietly(tmp_path, capsys):
    """The bundled model carries its record and loads without a word; a checkpoint shipped before the record
    (an earlier bundled model, known by its files' sha256) is checked against the known hashes, silently."""
    from tangshi.model import checkpoint as ck
    from tangshi.model.bundled import bundled_model_path
    from tangshi.model.checkpoint import load_checkpoint

    bundled = bundled_model_path()
    assert "files" in json.loads((bundled / "config.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    load_checkpoint(bundled)
    seconds = time.perf_counter() - started
    assert capsys.readouterr().err == ""
    assert seconds < 5, seconds  # hashing 11 MB is a small part of it
    old = tmp_path / "older"  # as an earlier release shipped: no record in config.json, its hashes known
    shutil.copytree(bundled, old)
    cfg = json.loads((old / "config.json").read_text(encoding="utf-8"))
    known = {n: cfg["files"][n]["sha256"] for n in (ck.WEIGHTS, ck.VOCAB)}
    cfg.pop("files")
    (old / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ck, "KNOWN_UNRECORDED", (known,))
        load_checkpoint(old)
        assert capsys.readouterr().err == ""
        _swap_two_entries(old / "vocab.json", 100, 200)
        with pytest.raises(TangshiError, match="not the vocabulary these weights were released with") as e:
            load_checkpoint(old)
    assert str(old / "vocab.json") in str(e.value) and str(old / "model.safetensors") in str(e.value)


# ---------------------------------------------------------------------------- 4. messages name what the user gave
@pytest.mark.parametrize(
    "key, value, words",
    [
        ("hidden_dim", 10_000_000, "hidden_dim must be a whole number"),
        ("num_layers", 0, "num_layers must be a whole number"),
        ("dropout_output", 1.5, "dropout_output must be a finite number"),
    ],
)
def test_a_bad_value_in_a_checkpoints_config_names_the_file_and_key(ck, capsys, key, value, words):
    cfg = json.loads((ck / "config.json").read_text(encoding="utf-8"))
    cfg["model"][key] = value
    (ck / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    code, _, err = run(["generate", "--checkpoint", ck, "--n", "1"], capsys)
    one_line_error(code, err, f"{ck / 'config.json'}: {words}", str(value))
    assert "--" + key.replace("_", "-") not in err  # an option the user never gave


def test_a_checkpoint_that_is_a_file_says_so(tmp_path, capsys):
    f = tmp_path / "some" / "file.txt"
    f.parent.mkdir()
    f.write_text("not a checkpoint", encoding="utf-8")
    for command in (["generate"], ["eval", "--data", tmp_path]):
        one_line_error(*run([*command, "--checkpoint", f], capsys)[::2], f"{f} is a file, not a checkpoint folder")


# ---------------------------------------------------------------------------- 5. the bundled model is protected
def test_export_replaces_the_bundled_model_only_when_asked_by_name(tmp_path, ck, monkeypatch):
    from tangshi.model.bundled import export_model

    bundled = tmp_path / "models" / "tangshi-default"
    export_model(ck, bundled)
    monkeypatch.setenv("TANGSHI_MODEL", str(bundled))
    (tmp_path / "alias").symlink_to(tmp_path / "models")
    before, logged = tree(bundled), []
    for out in (bundled, tmp_path / "models" / "x" / ".." / "tangshi-default", tmp_path / "alias" / "tangshi-default"):
        with pytest.raises(TangshiError, match="--replace-bundled") as e:
            export_model(ck, out, replace=True, log=logged.append)
        assert str(bundled) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(TangshiError, match="inside the bundled model's folder"):
        export_model(ck, bundled / "sub", replace_bundled=True)
    assert tree(bundled) == before and logged == []
    export_model(ck, bundled, dtype="fp32", replace_bundled=True, log=logged.append)
    assert len(logged) == 1 and logged[0].startswith(f"replaced the bundled model {bundled}"), logged
    assert tree(bundled) != before
    assert json.loads((bundled / "config.json").read_text(encoding="utf-8"))["files"]


def test_export_to_the_bundled_model_from_the_command_line_is_refused(tmp_path, ck, capsys, monkeypatch):
    bundled = tmp_path / "tangshi-default"
    assert run(["export", "--checkpoint", ck, "--out", bundled], capsys)[0] == 0
    monkeypatch.setenv("TANGSHI_MODEL", str(bundled))
    before = tree(bundled)
    one_line_error(
        *run(["export", "--checkpoint", ck, "--out", bundled, "--replace"], capsys)[::2],
        str(bundled),
        "--replace-bundled",
    )
    assert tree(bundled) == before
    code, out, err = run(
        ["export", "--checkpoint", ck, "--out", bundled, "--dtype", "fp32", "--replace-bundled"], capsys
    )
    assert code == 0, err
    assert f"replaced the bundled model {bundled}" in out + err
    assert tree(bundled) != before  # fp32 weights, not the fp16 ones it held


def _unreadable(monkeypatch, path):
    """Make opening `path` fail as a failing disk does (EIO); root reads through chmod 000."""
    real_open = open

    def failing_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise OSError(errno.EIO, "Input/output error", os.fspath(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)


@pytest.mark.parametrize("reader", ["poems", "split", "json"])
@pytest.mark.parametrize("fault", ["not utf-8", "unreadable"])
def test_every_reader_of_a_text_file_names_it_in_one_line_the_same_way(tmp_path, monkeypatch, reader, fault):
    """A poems file (`tangshi metrics`), a prepared split and a JSON file read through one helper:
    bytes that are not UTF-8 and a read the disk refuses each get the same one line naming the file."""
    from tangshi.data.prepare import read_split
    from tangshi.decode.reading import read_poems
    from tangshi.errors import read_json

    (tmp_path / "vocab.json").write_text("{}", encoding="utf-8")
    name = {"poems": "poems.txt", "split": "train.txt", "json": "meta.json"}[reader]
    path = tmp_path / name
    path.write_bytes("春眠不觉晓，处处闻啼鸟。\n".encode() + (b"\xff\xfe\n" if fault == "not utf-8" else b""))
    if fault == "unreadable":
        _unreadable(monkeypatch, path)
    call = {
        "poems": lambda: read_poems(str(path)),
        "split": lambda: read_split(tmp_path, "train"),
        "json": lambda: read_json(path),
    }[reader]
    with pytest.raises(TangshiError) as e:
        call()
    want = f"{path} is not UTF-8 text" if fault == "not utf-8" else f"cannot read {path}: Input/output error"
    assert str(e.value) == want


def test_read_text_drops_a_bom_and_keeps_everything_else(tmp_path):
    from tangshi.errors import read_text

    f = tmp_path / "a.txt"
    f.write_bytes(b"\xef\xbb\xbf" + "白日依山尽\r\n黄河入海流".encode())
    assert read_text(f) == "白日依山尽\n黄河入海流"  # text mode: universal newlines, as before
    with pytest.raises(TangshiError, match=f"^{f.parent / 'b.txt'} is missing$"):
        read_text(f.parent / "b.txt")


@pytest.mark.parametrize("how", ["staged", "new_dir"])
def test_a_temporary_name_already_taken_is_refused_and_left_alone(tmp_path, monkeypatch, how):
    """If the temporary folder's name is already taken (by anything), the write fails with one line
    and the entry at that name keeps its files: only a folder this write made is ever removed."""
    out = tmp_path / "out"
    with OutputFolder(out, "reports") as o:
        taken = out / f"{TMP_PREFIX}taken"
        taken.mkdir()
        (taken / "keep.txt").write_text("mine", encoding="utf-8")
        monkeypatch.setattr(o, "_tmp_name", lambda label: taken)
        writer = o.staged() if how == "staged" else o.new_dir("ckpt")
        with pytest.raises(TangshiError, match="exists"), writer:
            raise AssertionError("the write must not start")
        assert (taken / "keep.txt").read_text(encoding="utf-8") == "mine"
