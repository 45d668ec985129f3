"""`OutputFolder`: the one way a command writes a folder (see `tangshi.outputs` for the policy)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from tangshi.errors import TangshiError
from tangshi.files import (
    TMP_PREFIX,
    foreign_inside,
    fsync_dir,
    fsync_tree,
    oserrors_named,
    remove_entry,
    temporary_dir,
    tmp_name,
    write_atomic,
)
from tangshi.outputs.marks import (
    KINDS,
    LEGACY_TMP,
    LOCK,
    MARKER,
    MARKER_FORMAT,
    command_line,
    foreign_message,
    human_size,
    overlaps,
    read_marker,
    settled_mark,
    undo_folder,
    user_entries,
)


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

    @property
    def _open_mark(self) -> dict:
        """The mark, for the methods that run only once `check` has read it or `open` has made it."""
        assert self.mark is not None
        return self.mark

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
            if overlaps(here, s_res):
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
        mark = settled_mark(p)
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
                raise TangshiError(foreign_message(foreign, "clearing what an interrupted tangshi left"))
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
            unlisted = [n for n in names if n not in self._open_mark["entries"] and os.path.lexists(p / n)]
            if unlisted:
                raise TangshiError(
                    f"{p / unlisted[0]} was not written by tangshi; move it or choose another {self.option}"
                )
            foreign = [f for n in names for f in foreign_inside(p / n, self.kind.dir_files)]
        if foreign:
            raise TangshiError(foreign_message(foreign, why))

    def _write_mark(self) -> None:
        self._open_mark["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_atomic(self.path / MARKER, json.dumps(self.mark, ensure_ascii=False, indent=1))

    def _list(self, names: Iterable[str]) -> None:
        """Record entries in the mark before they exist, so a crash never leaves one unlisted.
        A name held by something tangshi did not write is refused, never replaced."""
        new = [n for n in names if n not in self._open_mark["entries"]]
        for n in new:
            if os.path.lexists(self.path / n):
                raise TangshiError(
                    f"{self.path / n} was not written by tangshi; move it or choose another {self.option}"
                )
        if new:
            self._open_mark["entries"] = sorted(self._open_mark["entries"] + new)
            self._write_mark()

    def forget(self, names: Iterable[str], why: str = "removing tangshi's earlier entries") -> None:
        """Remove entries tangshi wrote here (listed in the mark), once all are checked; anything else stays."""
        names = [n for n in names if n in self._open_mark["entries"]]
        self.require_removable(names, why)
        with oserrors_named(self.path):
            for n in names:
                remove_entry(self.path / n, self.kind.dir_files)
            fsync_dir(self.path)
        self._open_mark["entries"] = sorted(
            n for n in self._open_mark["entries"] if n not in names or os.path.lexists(self.path / n)
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
                self._open_mark.update(state="writing", undo=undo.name)
                self._write_mark()
                for n in names:
                    os.replace(p / n, undo / n)
                fsync_dir(undo)
                fsync_dir(p)
            yield
            with oserrors_named(p):
                self._open_mark.pop("undo")
                self._open_mark.update(
                    state="complete", entries=sorted(n for n in self._open_mark["entries"] if os.path.lexists(p / n))
                )
                self._write_mark()
        except BaseException:
            with contextlib.suppress(Exception):  # else it is undone when the folder is next opened
                self._roll_back(undo, old_text, self._open_mark["entries"])
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
        undo = undo_folder(self.path, mark)
        if undo is not None:
            assert mark is not None  # undo_folder finds an undo folder only through a mark
            with oserrors_named(self.path):
                self._roll_back(undo, (undo / MARKER).read_bytes(), mark["entries"])

    # -- writing
    def _tmp_name(self, label: str) -> Path:
        return tmp_name(self.path, label)

    @contextlib.contextmanager
    def staged(self):
        """Yield an empty temporary folder inside the output; on success its files replace the
        earlier output (all of it for a whole kind; the same names for several outputs side by side)."""
        with temporary_dir(self._tmp_name("stage")) as stage:
            with oserrors_named(stage):
                yield stage
            self._commit(stage)

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
        with temporary_dir(self._tmp_name(name)) as tmp:
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
                f"only {human_size(free)} free on the device of {self.path}; {what} needs about {human_size(nbytes)}"
            )
