"""Crash-safe file writing: a file is either its complete old version or its complete new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call write(f) on a temp file beside `path`, fsync it, then rename it over `path`.

    If `write` raises, or the process dies, `path` is untouched and the temp file is removed (or,
    after a kill, left as a hidden `.NAME.*.tmp` that nothing reads).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600: keep the mode of the file replaced, or give a new one the usual
        os.chmod(tmp, _mode_of(path))
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half
        _fsync_dir(path.parent)  # make the rename itself survive a power cut
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _mode_of(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
