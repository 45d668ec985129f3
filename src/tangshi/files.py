"""Low-level file operations shared by every writer (outputs.py, checkpoints, data): errors named
in the user's words, durable renames, atomic writes, and what may be removed of an entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from tangshi.errors import TangshiError

TMP_PREFIX = ".tangshi-tmp-"  # every temporary entry tangshi makes inside a folder starts so
_counter = itertools.count()


def describe_oserror(e: OSError, path: Path | str | None = None, verb: str | None = "cannot write") -> str:
    """One line for an OSError: what failed and on which path."""
    where = path if path is not None else (e.filename or "")
    reasons: dict[int | None, str] = {  # e.errno may be None: then the fallback below
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENAMETOOLONG: "the path is too long",
        errno.EISDIR: "it is a folder, not a file",
        errno.ENOENT: "no such file or folder",
    }
    reason = reasons.get(e.errno, e.strerror or str(e))
    if not where:
        return reason
    return f"{verb} {where}: {reason}" if verb else f"{where}: {reason}"


@contextlib.contextmanager
def oserrors_named(path: Path | str):
    """Turn any OSError raised inside into a one-line TangshiError naming `path`."""
    try:
        yield
    except OSError as e:
        raise TangshiError(describe_oserror(e, e.filename or path)) from None


def user_file_mode() -> int:
    """The mode a new file gets from the user's umask (0o644 under the usual 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file under `path` (a staged folder) before it is renamed into view."""
    for f in sorted(Path(path).rglob("*")):
        if f.is_file() and not f.is_symlink():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def tmp_name(folder: Path, label: str) -> Path:
    """A new temporary name inside `folder`, ending in `label`."""
    return Path(folder) / f"{TMP_PREFIX}{os.getpid()}-{next(_counter)}-{label}"


@contextlib.contextmanager
def temporary_dir(path: Path):
    """Make the folder `path`, yield it, and remove it at the end with whatever it then holds (after a
    rename it is gone: nothing to remove). A name already taken is refused in one line and left
    alone: only a folder made here is ever removed."""
    ours = True
    try:
        with oserrors_named(path):
            try:
                path.mkdir()
            except FileExistsError:
                ours = False
                raise
        yield path
    finally:
        if ours:
            with contextlib.suppress(OSError):
                shutil.rmtree(path)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that a reader (or a crash) sees the old content or the new, never a mix."""
    path = Path(path)
    tmp = tmp_name(path.parent, path.name)
    with oserrors_named(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)


def remove_entry(path: Path, known_files: Iterable[str] = ()) -> None:
    """Remove one entry tangshi wrote: a link or file is unlinked; a folder loses the files
    tangshi writes into such a folder (`known_files`) and is removed if that empties it.
    A file someone added inside is left, with its folder."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        for name in known_files:
            with contextlib.suppress(FileNotFoundError):
                (path / name).unlink()
        with contextlib.suppress(OSError):
            path.rmdir()


def foreign_inside(path: Path, known_files: Iterable[str] = ()) -> list[Path]:
    """What removing the entry `path` would lose that tangshi did not write: nothing for a link or
    a file (the entry itself is tangshi's); for a folder, everything in it but plain files named
    in `known_files` (a checkpoint folder's files), sub-folders and links included."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return []
    known = set(known_files)
    return [
        path / n
        for n in sorted(os.listdir(path))
        if n not in known or (path / n).is_symlink() or not (path / n).is_file()
    ]


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
