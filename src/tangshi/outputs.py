"""Where tangshi writes: one policy for every folder a command fills.

Every command that writes a folder (data fetch, data prepare, train, export, experiment)
opens it through `OutputFolder`, and nowhere else decides what may be overwritten:

- tangshi writes only into a folder that is absent, empty, or marked as tangshi's own output
  of the same kind. The mark is `.tangshi-output.json`: the kind, the command, and every entry
  (file or folder name) tangshi wrote there. A folder written by an older tangshi, before the
  mark existed, is recognised by its contents (`KINDS[kind].legacy`) and marked on first use.
- Anything else is refused with one line that names the folder and says what to do.
- Replacing earlier output of the same kind needs `replace=True` (the commands' `--replace`).
  Even then only the entries the mark lists are removed; a file tangshi did not write is
  never touched, and a name tangshi would write that is held by a foreign file is refused.
- Plan, check, then act: whatever replaces or removes entries (--replace, an epoch written
  again, `last`/`best` moved, old epochs dropped, leftovers of a killed process cleared) first
  checks every entry it will touch, files inside folders included, and refuses with one line
  naming any file tangshi did not write, before it changes anything.
- The output folder must not be, contain, or lie inside a folder the command reads.
- While a command writes, it holds `fcntl.flock` on `.tangshi-lock`, so a second process
  writing the same folder exits with one line instead of interleaving with the first.
- New content is written under a `.tangshi-tmp-*` name inside the folder and moved into
  place with one `os.replace`, then the folder is fsynced. Leftover temporary entries of a
  killed process are removed when the folder is next opened.
- An output made of several files (a prepared split, an exported model, the poems) replaces the
  earlier one under an undo record (`OutputFolder.replacing`): the mark says "writing" while the
  earlier entries wait in an undo folder, and "complete" once every new file is in place. A
  failure puts the earlier output back at once; a killed process's is put back when the folder
  is next opened, and until then readers refuse the folder (`require_complete`). So a reader
  sees the earlier output or the new one, never a mix.
- Every `OSError` becomes one `TangshiError` line that names the path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tangshi.errors import TangshiError
from tangshi.files import (
    TMP_PREFIX,
    describe_oserror,
    foreign_inside,
    fsync_dir,
    fsync_tree,
    oserrors_named,
    remove_entry,
    tmp_name,
    write_atomic,
)

MARKER = ".tangshi-output.json"
LOCK = ".tangshi-lock"
MARKER_FORMAT = "tangshi-output/1"
# temporary names an older tangshi gave a run's entries while replacing them: .NAME.tmp-XXXX, .NAME.old-PID
LEGACY_TMP = re.compile(r"^\.(last|best|poetry-gen-epoch\d+-loss[-0-9.naninf]+)\.(tmp|old)-[A-Za-z0-9_]+$")
# entries in a folder that are tangshi's own bookkeeping, never the user's content
INTERNAL = (MARKER, LOCK)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# ---------------------------------------------------------------------------- the kinds of output
@dataclass(frozen=True)
class Kind:
    name: str  # as the mark records it
    what: str  # in messages: "a prepared data folder"
    thing: str  # one output of the kind: "prepared split"
    whole: bool  # True: one output per folder, replaced as a whole; False: several outputs side by side
    legacy: Callable[[Path, list[str]], bool] | None = None  # an unmarked folder from before the mark
    dir_files: tuple[str, ...] = ()  # files tangshi writes inside a folder entry (checkpoints)


def _json_ok(path: Path, key: str | None = None) -> bool:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and (key is None or key in obj)


def _is_checkpoint(path: Path) -> bool:
    try:
        return (
            json.loads((path / "config.json").read_text(encoding="utf-8"))
            .get("format", "")
            .startswith("tangshi-checkpoint/")
        )
    except (OSError, ValueError, AttributeError):
        return False


CHECKPOINT_FILES = ("model.safetensors", "config.json", "vocab.json", "optimizer.safetensors", "trainer.json")
RUN_NAME = re.compile(r"^(last|best|metrics\.jsonl|curves\.png|poetry-gen-epoch\d+-loss[-0-9.naninf]+)$")


def _legacy_run(path: Path, entries: list[str]) -> bool:
    if not entries or not all(RUN_NAME.match(n) or LEGACY_TMP.match(n) for n in entries):
        return False
    dirs = [n for n in entries if (path / n).is_dir() and not LEGACY_TMP.match(n)]
    return bool(dirs) and all(_is_checkpoint(path / n) and not foreign_inside(path / n, CHECKPOINT_FILES) for n in dirs)


def _legacy_model(path: Path, entries: list[str]) -> bool:
    return set(entries) <= {"model.safetensors", "config.json", "vocab.json", "MODEL_CARD.md"} and _is_checkpoint(path)


def _legacy_prepared(path: Path, entries: list[str]) -> bool:
    return (
        set(entries) <= {"train.txt", "dev.txt", "vocab.json", "meta.json"}
        and _json_ok(path / "meta.json", "poems_read")
        and _json_ok(path / "vocab.json")
    )


KINDS = {
    k.name: k
    for k in (
        Kind("poems", "a folder of fetched poems", "copy of the poems", True),  # data.fetch recognises its own
        Kind("prepared", "a prepared data folder", "prepared split", True, _legacy_prepared),
        Kind("model", "an exported model", "exported model", True, _legacy_model),
        Kind("run", "a training run", "training run", True, _legacy_run, CHECKPOINT_FILES),
        Kind("reports", "a reports folder", "report", False),
        Kind(
            "study", "an experiment's work folder", "study", False
        ),  # runs side by side, continued (experiments/study.py)
    )
}


# ---------------------------------------------------------------------------- the mark
def read_marker(path: Path) -> dict | None:
    """The folder's mark, None if it has none; a mark that cannot be read is a clear error."""
    f = Path(path) / MARKER
    try:
        text = f.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as e:
        raise TangshiError(describe_oserror(e, f, verb="cannot read")) from None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if (
        not isinstance(obj, dict)
        or obj.get("format") != MARKER_FORMAT
        or not isinstance(obj.get("kind"), str)
        or not isinstance(obj.get("entries"), list)
        or not all(_plain_name(n) for n in obj["entries"])
        or not _undo_name(obj.get("undo", TMP_PREFIX))
    ):
        raise TangshiError(f"{f} is damaged; remove it only if everything in {path} may be treated as not tangshi's")
    return obj


def _plain_name(n) -> bool:
    """An entry of the mark names something directly inside the folder, nothing else."""
    return (
        isinstance(n, str)
        and n not in ("", ".", "..")
        and "/" not in n
        and "\0" not in n
        and not n.startswith(TMP_PREFIX)
        and n not in INTERNAL
    )


def _undo_name(n) -> bool:
    """The undo folder a mark names is one of tangshi's temporary entries directly inside the folder."""
    return isinstance(n, str) and n.startswith(TMP_PREFIX) and "/" not in n and "\0" not in n


def _undo_folder(path: Path, mark: dict | None) -> Path | None:
    """The undo folder of a replacement a killed process left half-done, None if there is none."""
    if not mark or mark.get("state") != "writing" or "undo" not in mark:
        return None
    undo = Path(path) / mark["undo"]
    return undo if undo.is_dir() and not undo.is_symlink() and (undo / MARKER).is_file() else None


def _settled_mark(path: Path) -> dict | None:
    """The folder's mark as it is once a replacement a killed process left half-done is undone."""
    mark = read_marker(path)
    undo = _undo_folder(path, mark)
    return (read_marker(undo) or mark) if undo is not None else mark


def _foreign_message(files: list[Path], why: str) -> str:
    shown = ", ".join(str(f) for f in files[:3]) + (f" (+{len(files) - 3} more)" if len(files) > 3 else "")
    it = "it" if len(files) == 1 else "them"
    return (
        f"{shown} {'was' if len(files) == 1 else 'were'} not written by tangshi, and {why} would remove {it}; "
        f"nothing was changed: move {it} out and run again"
    )


def require_complete(path: Path, command: str) -> None:
    """Refuse to read a folder whose mark says a write into it did not finish."""
    mark = read_marker(path)
    if mark is not None and mark.get("state") != "complete":
        raise TangshiError(
            f"{path} was left half-written by an interrupted `{mark.get('command') or command}`; "
            f"run it again with --replace"
        )


def command_line() -> str | None:
    """The command line as typed, when the process is the tangshi command (`tangshi …` or
    `python -m tangshi …`), else None (a test, a script): for marks and training records."""
    prog = Path(sys.argv[0])
    ours = prog.name == "tangshi" or (prog.name == "__main__.py" and prog.parent.name == "tangshi")
    return "tangshi " + " ".join(sys.argv[1:]) if ours else None


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def user_entries(path: Path) -> list[str]:
    """The folder's entries less tangshi's bookkeeping (the mark, the lock, temporary entries)."""
    return sorted(n for n in os.listdir(path) if n not in INTERNAL and not n.startswith(TMP_PREFIX))


# ---------------------------------------------------------------------------- the folder
class OutputFolder:
    """One output folder under the policy above. Use as a context manager:

        with OutputFolder(out, "prepared", replace=args.replace, sources=[source]) as o:
            with o.staged() as stage:   # write the files into `stage`
                ...                     # on leaving, they replace the folder's earlier output

    `kind` names the output (KINDS). `replace`: earlier output of the kind may be replaced.
    `resume` (runs): earlier output is continued, not replaced. `sources`: folders the command
    reads, which the output must not overlap. `legacy`: recognises this kind's output written
    before the mark existed (else the kind's own rule). `names` (several outputs side by side): the
    entries this command will write, checked before any work is done. `option`: the option
    that named the folder, for messages."""

    def __init__(
        self,
        path: Path | str,
        kind: str,
        *,
        replace: bool = False,
        resume: bool = False,
        sources: Iterable[Path | str | None] = (),
        names: Iterable[str] = (),
        option: str = "--out",
        legacy: Callable[[Path, list[str]], bool] | None = None,
    ):
        self.path = Path(path)
        self.kind = KINDS[kind]
        self.legacy = legacy or self.kind.legacy  # how to recognise this kind written before the mark
        self.replace, self.resume, self.option = replace, resume, option
        self.sources = [Path(s) for s in sources if s is not None]
        self.names = tuple(names)
        self.mark: dict | None = None
        self.earlier: list[str] = []  # entries of an earlier output, listed by the mark
        self._lock_fd: int | None = None
        self._created = False
        self._new_parents: list[Path] = []

    # -- the checks, before anything is written
    def check(self) -> None:
        """Apply the policy to the folder as it is now; raise a one-line TangshiError if it refuses."""
        with oserrors_named(self.path):
            self._check()

    def _check(self) -> None:
        p, k = self.path, self.kind
        try:
            here = p.resolve()
            sources = [(s, s.resolve()) for s in self.sources]
        except RuntimeError:  # Python 3.11 reports a link loop so
            raise TangshiError(f"{self.option} {p} (or a folder it reads) is a loop of links") from None
        for s, s_res in sources:
            if _overlaps(here, s_res):
                raise TangshiError(f"{self.option} {p} overlaps the folder it reads ({s}); choose a folder outside it")
        if p.is_symlink() and not p.exists():
            raise TangshiError(f"{self.option} {p} is a broken link; remove it or choose another folder")
        if p.exists() and not p.is_dir():
            raise TangshiError(f"{self.option} {p} is a file, not a folder; choose another path")
        for parent in p.parents:  # a file where a parent folder should be
            if parent.exists() and not parent.is_dir():
                raise TangshiError(f"{self.option} {p}: {parent} is a file, not a folder")
            if parent.exists():
                break
        if not p.exists():
            self.mark, self.earlier = None, []
            return
        with oserrors_named(p):
            entries = user_entries(p)
        mark = _settled_mark(p)
        if mark is None:
            if not entries:
                self.mark, self.earlier = None, []
                return
            if self.legacy is None or not self.legacy(p, entries):
                shown = ", ".join(repr(n) for n in entries[:3]) + (" …" if len(entries) > 3 else "")
                raise TangshiError(
                    f"{self.option} {p} already holds files tangshi did not write ({shown}); "
                    "choose a new or empty folder"
                )
            mark = self._new_mark(entries, command="")  # written by tangshi before the mark existed
        if mark.get("kind") != k.name:
            other = KINDS[mark["kind"]].what if mark.get("kind") in KINDS else f"tangshi's {mark.get('kind')!r} output"
            raise TangshiError(f"{self.option} {p} is {other}, not {k.what}; choose another folder")
        listed = [n for n in mark["entries"] if os.path.lexists(p / n)]
        foreign = [n for n in self.names if n not in mark["entries"] and os.path.lexists(p / n)]
        if foreign:
            raise TangshiError(f"{p / foreign[0]} was not written by tangshi; move it or choose another {self.option}")
        clash = listed if k.whole else [n for n in self.names if n in listed]
        if clash and not (self.replace or self.resume):
            what = f"an earlier {k.thing}" if k.whole else f"{clash[0]} from an earlier {k.thing}"
            by = f" (written by `{mark['command']}`)" if mark.get("command") and k.whole else ""
            hint = "--resume to continue it or --replace" if k.name == "run" else "--replace"
            raise TangshiError(
                f"{self.option} {p} holds {what}{by}; pass {hint} to start over (only tangshi's own files are removed)"
            )
        self.mark, self.earlier = mark, listed
        if self.replace and not self.resume:  # all that --replace will remove, checked before anything is
            self.require_removable(clash, "--replace")

    def _new_mark(self, entries: list[str], command: str | None = None) -> dict:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return {
            "format": MARKER_FORMAT,
            "kind": self.kind.name,
            "command": (command_line() or "") if command is None else command,
            "created": now,
            "state": "complete",
            "entries": sorted(entries),
        }

    # -- claiming the folder
    def __enter__(self) -> OutputFolder:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def open(self) -> OutputFolder:
        self.check()
        p = self.path
        try:
            with oserrors_named(p):
                if not p.exists():
                    self._new_parents = [a for a in p.parents if not a.exists()]
                    self._created = True
                    p.mkdir(parents=True)
            self._lock_fd = fd = self._lock()
        except BaseException:
            self._remove_created()
            raise
        try:
            with oserrors_named(p / LOCK):
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._recover()  # a replacement a killed process left half-done is undone first
            self.check()  # again, under the lock: another process may have written meanwhile
            self._remove_stale()
            if self.mark is None:
                self.mark = self._new_mark([])
            if not (p / MARKER).exists():  # a new folder, or one an older tangshi wrote
                self._write_mark()
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self) -> int:
        """flock the folder's lock file; the lock file is removed again by `close`, so after
        locking, check that the name still names the file locked (else another process removed
        it meanwhile: lock the new one)."""
        lock = self.path / LOCK
        while True:
            if lock.is_symlink() or (lock.exists() and not lock.is_file()):
                raise TangshiError(f"{lock} is not tangshi's lock file (a link or a folder); remove it")
            with oserrors_named(lock):
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise TangshiError(
                    f"{self.path} is being written by another tangshi process (pid {pid}); "
                    "wait for it to finish or choose another folder"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def close(self) -> None:
        """Release the lock. A folder this command created and left without output is removed,
        so a command that failed leaves nothing behind."""
        if self._lock_fd is None:
            return
        self._remove_created()
        with contextlib.suppress(OSError):
            os.unlink(self.path / LOCK)  # while still holding it: see _lock
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        self._lock_fd = None

    def _remove_created(self) -> None:
        """Remove the folder (and the parents) this command created, if it holds no output."""
        with contextlib.suppress(OSError):
            if self._created and not user_entries(self.path):
                for n in os.listdir(self.path):
                    remove_entry(self.path / n)
                self.path.rmdir()
        with contextlib.suppress(OSError):
            for a in self._new_parents:  # innermost first; stops at the first that is not empty
                a.rmdir()

    def _remove_stale(self) -> None:
        """Temporary entries left by a process that was killed while writing here: all are
        checked (they hold only what tangshi writes there) before any is removed."""
        p = self.path
        with oserrors_named(p):
            stale = [
                p / n
                for n in sorted(os.listdir(p))
                if n.startswith(TMP_PREFIX) or (LEGACY_TMP.match(n) and self.kind.name == "run")
            ]
            foreign = [f for e in stale for f in self._foreign_in_temporary(e)]
            if foreign:
                raise TangshiError(_foreign_message(foreign, "clearing what an interrupted tangshi left"))
            for e in stale:
                if e.is_dir() and not e.is_symlink():
                    shutil.rmtree(e)
                else:
                    e.unlink()

    def _foreign_in_temporary(self, e: Path) -> list[Path]:
        """What a leftover temporary entry holds that tangshi would not have written there: an undo
        folder holds entries of this folder; any other holds plain files (a checkpoint's, for a run)."""
        if e.is_symlink() or not e.is_dir():
            return []
        if e.name.endswith("-undo"):
            return [f for c in sorted(e.iterdir()) for f in foreign_inside(c, self.kind.dir_files)]
        known = set(self.kind.dir_files)
        return [c for c in sorted(e.iterdir()) if c.is_symlink() or not c.is_file() or (known and c.name not in known)]

    def require_removable(self, names: Iterable[str], why: str) -> None:
        """Plan before acting: each existing entry of `names` must be listed in the mark and hold
        nothing tangshi did not write, else one line names what is foreign and nothing is touched."""
        p, names = self.path, list(names)
        with oserrors_named(p):
            unlisted = [n for n in names if n not in self.mark["entries"] and os.path.lexists(p / n)]
            if unlisted:
                raise TangshiError(
                    f"{p / unlisted[0]} was not written by tangshi; move it or choose another {self.option}"
                )
            foreign = [f for n in names for f in foreign_inside(p / n, self.kind.dir_files)]
        if foreign:
            raise TangshiError(_foreign_message(foreign, why))

    def _write_mark(self) -> None:
        self.mark["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_atomic(self.path / MARKER, json.dumps(self.mark, ensure_ascii=False, indent=1))

    def _list(self, names: Iterable[str]) -> None:
        """Record entries in the mark before they exist, so a crash never leaves one unlisted.
        A name held by something tangshi did not write is refused, never replaced."""
        new = [n for n in names if n not in self.mark["entries"]]
        for n in new:
            if os.path.lexists(self.path / n):
                raise TangshiError(
                    f"{self.path / n} was not written by tangshi; move it or choose another {self.option}"
                )
        if new:
            self.mark["entries"] = sorted(self.mark["entries"] + new)
            self._write_mark()

    def forget(self, names: Iterable[str], why: str = "removing tangshi's earlier entries") -> None:
        """Remove entries tangshi wrote here (listed in the mark), once all are checked; anything else stays."""
        names = [n for n in names if n in self.mark["entries"]]
        self.require_removable(names, why)
        with oserrors_named(self.path):
            for n in names:
                remove_entry(self.path / n, self.kind.dir_files)
            fsync_dir(self.path)
        self.mark["entries"] = sorted(
            n for n in self.mark["entries"] if n not in names or os.path.lexists(self.path / n)
        )
        self._write_mark()

    # -- replacing, with an undo record
    @contextlib.contextmanager
    def replacing(self, names: Iterable[str]):
        """Move the entries `names` (checked first with `require_removable`) aside into an undo folder
        while the body writes their successors (listing each new entry with `_list`). Once the body is
        done the mark says "complete" and the undo folder goes. If the body fails, what it wrote is
        removed and the entries and the mark come back byte for byte; if the process is killed, that
        happens when the folder is next opened (`_recover`), and readers refuse it until then."""
        p = self.path
        names = [n for n in names if os.path.lexists(p / n)]
        undo = self._tmp_name("undo")
        with oserrors_named(p / MARKER):
            old_text = (p / MARKER).read_bytes()
        try:
            with oserrors_named(p):
                undo.mkdir()
                write_atomic(undo / MARKER, old_text)
                self.mark.update(state="writing", undo=undo.name)
                self._write_mark()
                for n in names:
                    os.replace(p / n, undo / n)
                fsync_dir(undo)
                fsync_dir(p)
            yield
            with oserrors_named(p):
                self.mark.pop("undo")
                self.mark.update(
                    state="complete", entries=sorted(n for n in self.mark["entries"] if os.path.lexists(p / n))
                )
                self._write_mark()
        except BaseException:
            with contextlib.suppress(Exception):  # else it is undone when the folder is next opened
                self._roll_back(undo, old_text, self.mark["entries"])
            raise
        with contextlib.suppress(OSError):
            self._drop_undo(undo)

    def _roll_back(self, undo: Path, old_text: bytes, entries: list[str]) -> None:
        """Undo a replacement: remove what it put in place, move the earlier entries back, restore the mark."""
        p, old = self.path, json.loads(old_text)
        for n in entries:
            if (n not in old["entries"] or os.path.lexists(undo / n)) and os.path.lexists(p / n):
                remove_entry(p / n, self.kind.dir_files)
        for n in old["entries"]:
            if os.path.lexists(undo / n):
                os.replace(undo / n, p / n)
        write_atomic(p / MARKER, old_text)
        self.mark = old
        self._drop_undo(undo)

    def _drop_undo(self, undo: Path) -> None:
        """Remove an undo folder: the entries in it were checked before they were moved there."""
        if undo.is_dir():
            for c in undo.iterdir():
                remove_entry(c, self.kind.dir_files)
            undo.rmdir()  # fails, and leaves it, if something foreign was put inside meanwhile
        fsync_dir(self.path)

    def _recover(self) -> None:
        """Undo the replacement a killed process left half-done (see `replacing`)."""
        mark = read_marker(self.path)
        undo = _undo_folder(self.path, mark)
        if undo is not None:
            with oserrors_named(self.path):
                self._roll_back(undo, (undo / MARKER).read_bytes(), mark["entries"])

    # -- writing
    def _tmp_name(self, label: str) -> Path:
        return tmp_name(self.path, label)

    @contextlib.contextmanager
    def staged(self):
        """Yield an empty temporary folder inside the output; on success its files replace the
        earlier output (all of it for a whole kind; the same names for several outputs side by side)."""
        stage = self._tmp_name("stage")
        try:
            with oserrors_named(stage):
                stage.mkdir()
            with oserrors_named(stage):
                yield stage
            self._commit(stage)
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(stage)

    def _commit(self, stage: Path) -> None:
        """The staged files replace the earlier output (under an undo record: `replacing`)."""
        p = self.path
        with oserrors_named(p):
            new = sorted(os.listdir(stage))
            old = [n for n in self.earlier if n not in new] if self.kind.whole else []
            self.require_removable(new + old, "--replace")
            fsync_tree(stage)
        with self.replacing(new + old), oserrors_named(p):
            self._list(new)
            for n in new:
                os.replace(stage / n, p / n)
            fsync_dir(p)

    @contextlib.contextmanager
    def new_dir(self, name: str):
        """Yield a temporary folder that becomes the entry `name` in one rename (a checkpoint)."""
        why = f"writing {name} again"
        self.require_removable([name], why)  # before the work, and again before the rename
        tmp = self._tmp_name(name)
        try:
            with oserrors_named(tmp):
                tmp.mkdir()
            with oserrors_named(tmp):
                yield tmp
            with oserrors_named(self.path / name):
                fsync_tree(tmp)
                self.require_removable([name], why)
                self._list([name])
                dst = self.path / name
                if os.path.lexists(dst):  # the same epoch written again after a resume
                    remove_entry(dst, self.kind.dir_files)
                os.replace(tmp, dst)
                fsync_dir(self.path)
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)

    def write_file(self, name: str, data: bytes | str) -> None:
        self._list([name])
        write_atomic(self.path / name, data)

    def write_with(self, name: str, writer: Callable[[Path], None]) -> None:
        """`writer(path)` writes the file under a temporary name; it then replaces `name` at once."""
        tmp = self._tmp_name(name)  # ends in `name`, so a writer that reads the suffix (savefig) sees it
        try:
            with oserrors_named(self.path / name):
                writer(tmp)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                self._list([name])
                os.replace(tmp, self.path / name)
                fsync_dir(self.path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def point(self, name: str, target: str) -> None:
        """Make the entry `name` a link to the entry `target` in one atomic step."""
        dst = self.path / name
        tmp = self._tmp_name(name)
        with oserrors_named(dst):
            legacy = dst.is_dir() and not dst.is_symlink()  # a folder from before links: moved aside, then removed
            self.require_removable([name], f"moving {name}")
            self._list([name])
            try:
                os.symlink(target, tmp)
                if legacy:
                    aside = self._tmp_name(f"{name}-old")
                    os.replace(dst, aside)
                    os.replace(tmp, dst)
                    remove_entry(aside, self.kind.dir_files)
                else:
                    os.replace(tmp, dst)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # a link that failed to move into place
            fsync_dir(self.path)

    def require_free(self, nbytes: int, what: str) -> None:
        """Refuse to start work whose output cannot fit on the device."""
        with oserrors_named(self.path):
            free = shutil.disk_usage(self.path).free
        if free < nbytes:
            raise TangshiError(
                f"only {_size(free)} free on the device of {self.path}; {what} needs about {_size(nbytes)}"
            )
