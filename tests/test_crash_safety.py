"""A training run survives a kill or a failed write at every filesystem operation of an epoch's save.

The save of epoch 2 is interrupted at its k-th mutating filesystem operation, for every k in
turn until a save runs to the end: once by SIGKILL semantics (a forked child calls os._exit at
that operation, so no cleanup code runs), once by the operation failing with ENOSPC. After each
interruption, `--resume` must continue from a complete checkpoint and reach exactly the weights
of an uninterrupted run; metrics.jsonl must hold each epoch once; no temporary entry may remain;
`best` must be the best epoch's checkpoint.
"""

import builtins
import errno
import io
import json
import os
import shutil
import signal
import time

import pytest
import torch

from tangshi.errors import TangshiError
from tangshi.files import TMP_PREFIX
from tangshi.model import checkpoint as ckpt
from tangshi.outputs import read_marker
from tangshi.train.torch_backend import TrainConfig, train

SMALL = dict(embed_dim=8, hidden_dim=8)
CFG = TrainConfig(epochs=3, batch_size=16, seed=3)
QUIET = dict(progress=False, log=lambda *a: None)
KILLED = 77  # the child's exit status when it "died" at the chosen operation
CHILD_TIMEOUT_S = 120

MUTATING_OS = ("replace", "rename", "symlink", "unlink", "rmdir", "mkdir", "fsync", "ftruncate", "pwrite")


class Interrupt:
    """Counts the moments just before and just after each mutating filesystem operation
    (after an open for writing, the file exists but holds nothing yet); at moment `at` it
    calls `action()`."""

    def __init__(self, at: int, action):
        self.at, self.action, self.count = at, action, 0

    def tick(self):
        self.count += 1
        if self.count == self.at:
            self.action()

    def around(self, real, *a, **k):
        self.tick()
        result = real(*a, **k)
        self.tick()
        return result

    def install(self, mp: pytest.MonkeyPatch):
        for name in MUTATING_OS:
            real = getattr(os, name)

            def wrapped(*a, _real=real, **k):
                return self.around(_real, *a, **k)

            mp.setattr(os, name, wrapped)
        real_rmtree = shutil.rmtree

        def rmtree(*a, **k):
            return self.around(real_rmtree, *a, **k)

        mp.setattr(shutil, "rmtree", rmtree)
        real_open = io.open

        def opened(file, mode="r", *a, **k):
            if any(c in mode for c in "wax+"):
                return self.around(real_open, file, mode, *a, **k)
            return real_open(file, mode, *a, **k)

        mp.setattr(builtins, "open", opened)
        mp.setattr(io, "open", opened)
        real_save = ckpt.save_file

        def save_file(*a, **k):
            return self.around(real_save, *a, **k)

        mp.setattr(ckpt, "save_file", save_file)


def _weights(path):
    return {k: v.clone() for k, v in ckpt.load_weights(path).items()}


def _check_run(run, reference):
    """Resume to the end; compare with the uninterrupted run; check the folder's bookkeeping."""
    train(run.parent / "prep", run, None, CFG, resume=True, **QUIET)
    got, want = _weights(run / "last"), reference
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    best = min(rows, key=lambda r: r["dev_ppl"])
    assert json.loads((run / "best" / "config.json").read_text(encoding="utf-8"))["metrics"]["epoch"] == best["epoch"]
    names = os.listdir(run)
    assert not [n for n in names if n.startswith(TMP_PREFIX) or ".tmp-" in n or ".old-" in n], names
    listed = set(read_marker(run)["entries"])
    assert {n for n in names if not n.startswith(".")} <= listed  # nothing of tangshi's goes unlisted


@pytest.fixture(autouse=True)
def quick_curves(monkeypatch):
    """curves.png is still written (through the same atomic path), but not drawn: drawing is
    80% of a tiny run's time and no part of what is tested here."""
    monkeypatch.setattr("tangshi.train.loop._plot", lambda history, path, title: open(path, "wb").write(b"png"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import write_tiny_corpus
    from tangshi.data.prepare import prepare

    root = tmp_path_factory.mktemp("crash")
    prepare(write_tiny_corpus(root / "raw", n=40), root / "prep", None, 0)
    train(root / "prep", root / "ref", SMALL, CFG, **QUIET)
    train(root / "prep", root / "base", SMALL, CFG, stop_after_epoch=1, **QUIET)
    return root, _weights(root / "ref" / "last")


def _case(root, k):
    case = root / f"case{k}"
    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(root / "base", case, symlinks=True)
    return case


def _each_moment(setup, interrupted_save) -> int:
    """For k = 1, 2, …: on a fresh copy of the run, `interrupted_save(case, k)` resumes it with the
    save of epoch 2 interrupted at moment k and says whether the save ran to its end first; then the
    run is resumed to the end and checked. Stops at the first k the save outlives. Returns k."""
    root, reference = setup
    k = 0
    while True:
        k += 1
        case = _case(root, k)
        finished = interrupted_save(root, case, k)
        _check_run(case, reference)
        shutil.rmtree(case)
        if finished:  # the save ran to its end before moment k: every moment was covered
            return k


def _resume_to_epoch_2(root, case):
    train(root / "prep", case, None, CFG, resume=True, stop_after_epoch=2, **QUIET)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_kill_at_any_operation_of_a_save_loses_nothing(setup):
    def killed(root, case, k) -> bool:
        pid = os.fork()
        if pid == 0:  # the child: resume, train epoch 2, die at moment k of its writes (no cleanup runs)
            code = 1
            try:
                torch.set_num_threads(1)
                with pytest.MonkeyPatch.context() as mp:
                    Interrupt(k, lambda: os._exit(KILLED)).install(mp)
                    _resume_to_epoch_2(root, case)
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
        return code == 0

    k = _each_moment(setup, killed)
    print(f"{k} moments of a kill checked")
    assert k > 40  # a save is many operations; fewer means the interception missed them


def test_a_failed_write_at_any_operation_of_a_save_is_one_error_and_loses_nothing(setup):
    def fail():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def failed(root, case, k) -> bool:
        with pytest.MonkeyPatch.context() as mp:
            Interrupt(k, fail).install(mp)
            try:
                _resume_to_epoch_2(root, case)
                return True
            except TangshiError as e:
                assert "no space left" in str(e) and "\n" not in str(e), (k, str(e))
                return False

    k = _each_moment(setup, failed)
    print(f"{k} failing operations checked")
    assert k > 40
