"""The corpus cache folder: downloaded and built corpora, and encoded ones (encoded.py), written
by any number of processes at once under a shared lock; a folder no one writes in is swept of
what killed writers left.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from charrnn.errors import CacheUnwritable
from charrnn.fsutil import atomic_write, cannot_write, link_to_nothing

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temporaries are then left for `corpus cache --clear`
    fcntl = None

T = TypeVar("T")

OTHER_CACHE = "point CHARRNN_CACHE_DIR at another folder"  # how to put the cache elsewhere


def in_cache(check: Callable[[Path], T], path: Path) -> T:
    """`check(path)` (Path.is_file, is_dir, exists; os.listdir) of a path in the cache; a cache
    that cannot be searched (a folder this user may not open, a path too long) is a
    CacheUnwritable saying so, which a training gets round (it encodes for itself) and a `corpus`
    command says."""
    try:
        return check(path)
    except OSError as e:  # the folder that holds it (or, listed, itself) cannot be read
        denied = e.errno in (errno.EACCES, errno.EPERM)
        access = "give this user access to it, or " if denied else ""
        folder = path if check is os.listdir else path.parent
        raise CacheUnwritable(
            f"cannot read the corpus cache folder {folder}: {e.strerror or e}; "
            f"{access}{OTHER_CACHE}"
        ) from None


@contextlib.contextmanager
def cache_writing(folder: Path, temporaries: str = ".*.tmp") -> Iterator[int]:
    """Write files into cache `folder` (made if missing: CorpusError if it cannot be) under a shared
    lock on it; when no other process is writing there, first remove the temporaries (files
    matching the glob pattern `temporaries`) a killed writer left; yields the bytes that freed.

    Every writer holds the folder's flock shared, so an exclusive one, got without waiting, proves
    that every `.NAME.*.tmp` of atomic_write in it is stale. The kernel drops the lock of a dead
    process, even one killed by SIGKILL.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if dangling := link_to_nothing(folder):  # which mkdir calls "File exists"
            raise CacheUnwritable(
                f"cannot create the corpus cache {folder}: {dangling}; mend the link, or "
                f"{OTHER_CACHE}"
            ) from None
        raise CacheUnwritable(
            cannot_write(folder, e, OTHER_CACHE, doing="create the corpus cache")
        ) from None
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # the writes that follow will say what is wrong with the folder
        yield 0
        return
    try:
        freed = 0
        if _try_lock(fd):  # no one else is writing here: every temporary is a killed writer's
            for tmp in folder.glob(temporaries):
                with contextlib.suppress(OSError):
                    size = tmp.stat().st_size
                    tmp.unlink()
                    freed += size
        if fcntl:
            with contextlib.suppress(OSError):  # a file system without flock: no sweeping
                fcntl.flock(fd, fcntl.LOCK_SH)  # (converts the exclusive lock, if we had it)
        yield freed
    finally:
        os.close(fd)  # releases the lock


def write_cached(
    path: Path, write: Callable[[BinaryIO], None], doing: str = "write", named: Path | None = None
) -> None:
    """atomic_write into the cache, under cache_writing: a failed write is a CacheUnwritable
    naming `named` (else `path`) that says how to put the cache elsewhere."""
    try:
        atomic_write(path, write)
    except OSError as e:
        raise CacheUnwritable(cannot_write(named or path, e, OTHER_CACHE, doing=doing)) from None


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` if no one holds any; False if someone does (or no flock)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
