"""Files and folders written whole or not at all: leaderboard CSVs, caches beside a dataset
(spirals, mesh pyramids, templates, face-parsing masks), the synthetic corpora and the judges
trained on a dataset. Each is made beside its place and renamed into it, so a reader finds the old
version or the new one, never a half-written one, also when the writer is interrupted.

What they are written with gets the mode a plain write would give it (the umask's, or the existing
file's): temporary files and folders are created owner-only, and a dataset or leaderboard folder
shared by a group must stay readable by it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock

from facebench.console import console
from facebench.errors import DataError


def umask() -> int:
    """The process's umask. It can only be read by setting it, so it is set to a common value for
    the moment in between (no other thread of ours creates files then)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(path: Path) -> int:
    """The mode a file written at `path` keeps: the existing file's, else what the umask gives a new one."""
    return path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask()


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`path` whole or not at all: `write(file)` into a temporary file beside it (opened in binary),
    flushed to disk, given `file_mode(path)`, renamed over it. The caller holds the path's lock
    where several processes may write it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_cache(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """A cache file beside a dataset (`write_atomically`, in a folder made for it). A read-only
    dataset folder is no error: the cache is computed again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, write)
    except OSError:
        pass


def stored_once(folder: Path, what: str, make: Callable[[Path], None], replace: bool = False, announce: bool = True) -> Path:
    """`folder`, made on first use by `make(scratch)` into a scratch folder beside it and moved into
    place whole, under a lock: processes that ask at the same time make it once, and an interrupted
    run leaves no half-made folder (its scratch folder is removed). A folder counts as made when it
    holds `card.json`. With `replace`, it is made again and swapped in whole for the stored one.
    `what` names it in the message shown while it is made (`announce`) and in the error raised
    when its place cannot be written."""
    if not replace and (folder / "card.json").is_file():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        found = "" if os.access(folder.parent, os.W_OK) else f"no permission to write in {folder.parent}"
    except OSError as exc:
        found = f"{exc.strerror}: {exc.filename}"
    if found:
        raise DataError(folder, f"a writable folder to store {what} (once)", found)
    with FileLock(str(folder) + ".lock"):
        if not replace and (folder / "card.json").is_file():  # made by another process while this one waited
            return folder
        if announce:
            console.print(f"training {what} once (stored in {folder})")
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        stepped_aside = scratch.with_name(scratch.name + ".old")
        try:
            scratch.chmod(0o777 & ~umask())  # as a plain mkdir would make it
            make(scratch)
            # A folder cannot be renamed onto a non-empty one: the stored folder steps aside first,
            # so a reader finds the old folder, the new one, or (for a moment) none, and then waits
            # on the lock; never a mixture of the two.
            if folder.exists():
                os.replace(folder, stepped_aside)
            os.replace(scratch, folder)
        finally:
            for leftover in (scratch, stepped_aside):
                shutil.rmtree(leftover, ignore_errors=True)
    return folder
