"""Crash-safe file writing (a file is either its complete old version or its complete new one),
and paths as typed."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

ZIP = b"PK\x03\x04"  # how a zip archive starts: torch.save's checkpoints are ones


def expand_home(spec: str | os.PathLike) -> str:
    """`spec` with a leading `~` or `~user` read as that home folder, as a shell reads it where
    it was quoted or set in a variable; a file of that name that exists (`~notes.txt`, even
    `~root`) is that file, and a `~name` of no user stays as typed (never an error)."""
    spec = os.fspath(spec)
    if not spec.startswith("~") or os.path.lexists(spec):
        return spec
    return os.path.expanduser(spec)


def probe_writable(folder) -> None:
    """An OSError, the real one (no permission, a read-only disk, a full inode table), where a
    file cannot be made in `folder`: a file made and removed at once."""
    fd, probe = tempfile.mkstemp(prefix=".charrnn-probe.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.unlink(probe)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call write(f) on a temp file beside `path`, fsync it, then rename it over `path`.

    If `write` raises, or the process dies, `path` is untouched and the temp file is removed (or,
    after a kill, left as a hidden `.NAME.*.tmp` that nothing reads). A failing write is always
    an OSError naming `path`, with its errno (a full disk, a file-size limit...), even where the
    library that wrote reported it in its own words (torch's zip writer raises RuntimeError).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _named(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            watched = _Watched(f)
            try:
                write(watched)
            except Exception as e:
                if watched.error is not None:  # the cause, whatever the writer made of it
                    raise _named(watched.error, path) from None
                if (stop := _interrupt_behind(e)) is not None:  # a stop signal mid-write, which
                    raise stop from None  # the writer's cleanup turned into an error of its own
                raise
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600: keep the mode of the file replaced, or give a new one the usual
        os.chmod(tmp, _mode_of(path))
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half
        _fsync_dir(path.parent)  # make the rename itself survive a power cut
    except OSError as e:
        raise _named(e, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


NAME_MAX = 255  # bytes of a file's name that Linux's and macOS's file systems take at most
_TEMP_EXTRA = len("..XXXXXXXX.tmp")  # what mkstemp adds around the name: dots, 8 random, suffix


def _temp_prefix(path: Path) -> str:
    """`.NAME.` for the temporary file beside `path`, NAME cut (at a character) so that the
    temporary's name is no longer than the file system takes where `path`'s own fits."""
    name = os.fsencode(path.name)
    room = NAME_MAX - _TEMP_EXTRA
    if len(name) > room:
        name = name[:room].decode("utf-8", "ignore").encode()  # a character is never cut in two
    return f".{os.fsdecode(name)}."


def _interrupt_behind(e: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (a stop signal) that `e` was raised while handling, if any: torch's
    zip writer, interrupted mid-write, raises a RuntimeError of its own as it closes."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__context__
    return None


class _Watched:
    """A binary file that remembers the OSError its writes raised, for writers that turn it into
    an error of their own."""

    def __init__(self, f: BinaryIO):
        self._f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def _named(e: OSError, path: Path) -> OSError:
    """`e` about `path`, the file the caller asked for (not the temp file beside it)."""
    # OSError(errno, ...) is the subclass the errno calls for (FileNotFoundError, ...)
    return OSError(e.errno, e.strerror, str(path)) if e.errno is not None else e


# What to do when a write fails, by its cause. (A file is written beside itself and renamed
# over: the folder's permissions count as much as the file's.)
_DENIED = (
    "you may not write there; change the permissions of its folder (or its own), or {elsewhere}"
)
_ADVICE = {
    errno.ENOSPC: "free some space on that disk, or {elsewhere}",
    errno.EDQUOT: "free some space within your disk quota, or {elsewhere}",
    errno.EFBIG: "the file would be larger than this process may write (`ulimit -f`) or the "
    "file system allows; raise the limit, or {elsewhere}",
    errno.EROFS: "that file system is read-only; {elsewhere}",
    errno.EACCES: _DENIED,
    errno.EPERM: _DENIED,
    errno.EIO: "the device reported an error; check the disk, or {elsewhere}",
    errno.ENAMETOOLONG: "a name in the path, or the whole path, is longer than the system "
    "takes; give a shorter one, or {elsewhere}",
    errno.EMFILE: "this process may open no more files; raise the limit (`ulimit -n`)",
    errno.ENFILE: "the system has too many files open; close some programs",
}


def _there(path: Path) -> bool:
    """Whether something is at `path`; False also where that cannot be told (a path over the
    system's limit, a folder this user may not search): advice is never an error of its own."""
    try:
        return path.exists()
    except OSError:
        return False


def write_advice(e: OSError, elsewhere: str = "write it elsewhere", path=None) -> str:
    """What to do about a write to `path` (default: `e`'s file) that failed with `e` ("" where
    nothing useful can be said); `elsewhere` names the way to write somewhere else (an option, a
    variable)."""
    advice = _ADVICE.get(e.errno)
    path = path if path is not None else e.filename
    if advice is None and e.errno in (errno.ENOENT, errno.ENOTDIR) and path is not None:
        # "No such file or directory" of a file being created: its folder is missing (or a part
        # of the path is a file), or the folder takes no new files (/proc, /sys)
        folder = Path(os.path.realpath(os.fsdecode(path))).parent  # a link: where it points
        found = next((p for p in (folder, *folder.parents) if _there(p)), None)
        if found is not None and not found.is_dir():
            advice = f"{found} is a file, not a folder; {{elsewhere}}"
        elif found != folder:
            advice = f"its folder {folder} does not exist; create it first, or {{elsewhere}}"
        else:
            advice = f"no file can be created in {folder}; {{elsewhere}}"
    if advice is None and e.errno == errno.EEXIST and path is not None:
        # a folder being made where a file is
        made = Path(os.fsdecode(path))
        if _there(made) and not made.is_dir():
            advice = f"{made} is a file, not a folder; {{elsewhere}}"
    return advice.format(elsewhere=elsewhere) if advice else ""


def link_to_nothing(path) -> str | None:
    """Where `path`, or a folder above it, is a link to nothing (the end of its chain of links
    missing), what to say of it: `LINK is a link to TARGET, which is not there`; else None. (The
    system says "File exists" or "No such file" of it, which misleads.)"""
    for link in (Path(path), *Path(path).parents):
        if os.path.islink(link) and not os.path.exists(link):
            return f"{link} is a link to {os.path.realpath(link)}, which is not there"
    return None


def cannot_write(
    path, e: OSError, elsewhere: str = "write it elsewhere", doing: str = "write"
) -> str:
    """The one line for a write to `path` that failed with `e` (`doing`: "write", or "create the
    run folder" and the like): what happened, what to do."""
    advice = write_advice(e, elsewhere, path)
    return f"cannot {doing} {path}: {e.strerror or e}" + (f"; {advice}" if advice else "")


def _mode_of(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)  # reading the umask means setting it: set it back at once
        os.umask(mask)
        return 0o666 & ~mask


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


def size_text(n: int) -> str:
    """Bytes for a person: 12.3 GB, 45.6 MB, 7.8 KB, 8 bytes (decimal units, as the names say: a
    MB is 1,000,000 bytes, so that 2,044,015 bytes read 2.0 MB, not 1.9)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if round(n / scale, 1) >= 1:  # as it will read: 999,999 bytes are 1.0 MB, not 1,000.0 KB
            return f"{n / scale:,.1f} {unit}"
    return f"{n} byte{'s' * (n != 1)}"  # not 0.0 KB
