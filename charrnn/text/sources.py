"""Reading what the user named: files, folders of text files, pipes and standard input, as
Sources read in chunks and decoded (decode.py) to text with \\n line ends. Every command reads
its files by these rules, as train does.

Plain Python, no printing: turning the text into ids is encoded.py's job.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.defaults import ENCODING
from charrnn.errors import CorpusError
from charrnn.fsutil import expand_home
from charrnn.text.decode import Decoder, decode_chunks

# Which folders under a corpus folder are not read (a folder -> True to leave it out), or None
LeaveOut = Callable[[Path], bool] | None
CHUNK = 1 << 24  # bytes read at a time: a corpus of any size streams through a fixed buffer


@dataclass
class Source:
    """One file of a corpus, or bytes already in memory (standard input), read in chunks."""

    label: str  # what messages call it: a path, or "standard input"
    path: Path | None = None
    data: bytes | None = None
    # (st_dev, st_ino) of the file `data` was read from (standard input given `< file`): the
    # same file named as well would be read twice.
    file_id: tuple[int, int] | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else _stat(self.path, self.label).st_size

    def chunks(self, size: int | None = None, live: bool = False) -> Iterator[bytes]:
        """The bytes, `size` at a time; `live`: what has arrived, at most `size`, as soon as it
        has (a named pipe's line), not `size` bytes or the end."""
        size = size or CHUNK
        if self.data is not None:
            yield from (self.data[i : i + size] for i in range(0, len(self.data), size))
            return
        try:
            with open(self.path, "rb") as f:
                read = f.read1 if live else f.read
                while chunk := read(size):
                    yield chunk
        except OSError as e:
            raise CannotRead(f"cannot read {self.path}: {e.strerror or e}", e) from None


class CannotRead(CorpusError):
    """A file's bytes could not be read (`error`: the OSError): not a question of its text."""

    def __init__(self, message: str, error: OSError):
        super().__init__(message)
        self.error = error


@dataclass
class Sources:
    """What the user named, resolved to files in reading order."""

    files: list[Source]
    name: str  # a default run name
    origins: list[str]  # one per spec: absolute path, catalog name, or "-" (kept in checkpoints)
    encoding: str = ENCODING
    skipped: list[str] = field(default_factory=list)  # files of folders left out as not text
    dangling: list[str] = field(default_factory=list)  # links in folders that lead nowhere

    def text_chunks(self) -> Iterator[str]:
        """The whole corpus as normalised text, in pieces; files joined so none runs into the next
        mid-line (a newline follows a file that does not end with one, unless it is the last)."""
        for _, piece in self.numbered_chunks():
            yield piece

    def numbered_chunks(self) -> Iterator[tuple[int, str]]:
        """text_chunks, each piece with the index of its file (a newline added after a file is
        that file's)."""
        ends_line = True
        for i, src in enumerate(self.files):
            for piece in decode_chunks(src.chunks(), src.label, self.encoding):
                yield i, piece
                ends_line = piece.endswith("\n")
            if not ends_line and i < len(self.files) - 1:
                yield i, "\n"
                ends_line = True

    def total_bytes(self) -> int:
        return sum(s.size() for s in self.files)


def _stat(path: str, label: str) -> os.stat_result:
    """`path` as typed (Path would drop the slash of `ok.txt/` and the `/.` of `ok.txt/.`, which
    the system refuses after a file: Not a directory)."""
    try:
        return os.stat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        if isinstance(e, FileNotFoundError) and os.path.islink(path):  # the name is right
            raise CorpusError(
                f"cannot read {label}: it is a link to nothing ({os.readlink(path)}); point it "
                "at a file, or give the file"
            ) from None
        todo = "; check the name and the folder" * isinstance(e, FileNotFoundError)
        why = getattr(e, "strerror", None) or e
        raise CorpusError(f"cannot read {label}: {why}{todo}") from None


def input_file(spec: str | os.PathLike, label: str, hint: str) -> Source:
    """The file a user named (a command's FILE, --prime-file), as a Source read in chunks: a
    regular file, or a pipe (a FIFO, <(...), /dev/stdin fed by a shell pipe), read once. Anything
    else is a CorpusError: a missing file, a folder, and a device (/dev/zero, /dev/urandom never
    end: read whole, they fill the memory), with `hint` saying how to read a stream instead."""
    path = Path(expand_home(spec))
    label = label or str(path)  # an empty FILE is the current folder, '.', and says so
    mode = _stat(expand_home(spec) or ".", label).st_mode
    if stat.S_ISDIR(mode):
        raise CorpusError(
            f"cannot read {label}: {os.strerror(errno.EISDIR)}; give a file, not a folder"
        )
    refuse_devices(label, mode, "a file or a pipe", hint)
    return Source(label, path=path)


def refuse_devices(label: str, mode: int, kinds: str, hint: str) -> None:
    """The one rule on what may be read as a file (`mode`: its stat's): a regular file or a pipe,
    never a device, a socket or the like. Folders are the caller's to handle first; `kinds` says
    what it takes ("a file, a folder or a pipe" for train)."""
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise CorpusError(f"{label} is not {kinds}; {hint}")


def read_all(
    chunks: Iterable[bytes], label: str, encoding: str = ENCODING, text: bool = True
) -> tuple[bytes, str]:
    """All the bytes of a stream read once (standard input, a pipe, a file read whole) and their
    text as decode_chunks gives it, checked chunk by chunk as they arrive: binary content or
    bytes that do not decode stop the reading there, with decode_chunks' message, before the
    rest is read (`cat /dev/zero | charrnn ...` ends at its first chunk). With text=False the
    bytes are only checked, and the text returned is ""."""
    raw: list[bytes] = []

    def kept() -> Iterator[bytes]:
        for chunk in chunks:
            raw.append(chunk)
            yield chunk

    pieces = decode_chunks(kept(), label, encoding)
    if text:
        decoded = "".join(pieces)  # reads the chunks: `raw` holds them only after this
        return b"".join(raw), decoded
    for _ in pieces:
        pass
    return b"".join(raw), ""


# ---------------------------------------------------------------------------------------------
# Folders: every text file under one, the rest skipped


def folder_sources(
    folder: Path, encoding: str, leave_out: LeaveOut = None
) -> tuple[list[Source], list[str], list[str]]:
    """The text files under `folder` in reading order (never under a folder `leave_out` picks),
    the labels of the files skipped as not `encoding` text (see sniff), and of the links that
    lead nowhere."""
    if folder.resolve().parent == folder.resolve():  # its special files would be read, or hang
        raise CorpusError(f"{folder} is the whole file system: give the folder your texts are in")
    files, dangling, ours = _walk(folder, leave_out)
    if not files:
        n, k = len(dangling), len(ours)
        why = [f"{n:,} link{'s' * (n > 1)} to nothing"] if n else []
        more = f" and {k - 5:,} more" if k > 5 else ""
        why += [f"charrnn's own run folders or cache left out: {', '.join(ours[:5])}{more}"] * bool(
            k
        )
        said = f" ({'; '.join(why)})" if why else ""
        raise CorpusError(f"the folder {folder} holds no files to train on{said}")
    found = [Source(str(f), path=f) for f in files]
    why = {}
    for src in found:
        try:
            why[src.label] = sniff(src, encoding)
        except CannotRead as e:  # not a file that is not text: one the user cannot read
            if isinstance(e.error, FileNotFoundError):
                continue  # gone since its folder was listed, as _walk skips it
            raise CorpusError(f"{e}; make it readable, or move it out of {folder}") from None
    found = [src for src in found if src.label in why]
    text = [src for src in found if why[src.label] is None]
    if not found:  # every one gone as it was read
        raise CorpusError(f"the folder {folder} holds no files to train on")
    if not text:
        raise CorpusError(
            f"the folder {folder} holds no {encoding} text files to train on: "
            f"{len(found)} skipped, e.g. {why[found[0].label]}"
        )
    return text, [label for label, reason in why.items() if reason is not None], dangling


def sniff(src: Source, encoding: str) -> str | None:
    """Why a file of a folder is not text in `encoding` (a NUL byte, or bytes that do not
    decode), or None if it is: judged on the whole file, not on its first block as grep and git
    judge, so that one bad byte deep in one file skips that file, where reading it would stop
    the whole corpus (and --encoding, the way on, would garble the others). The cost, a read at
    each start: ASCII decodes 3x faster than the hash every file goes through anyway, Chinese at a
    fifth of its speed (400 MB/s). A file cut inside its last character is text (reading it says
    it was cut short, and where). A file that cannot be read is a CannotRead."""
    decoder = Decoder(src.label, encoding)
    try:
        for chunk in src.chunks():
            decoder.decode(chunk)
    except CannotRead:  # not the text's fault: the caller says what it is
        raise
    except CorpusError as e:
        return str(e)
    return None


def _text_files(folder: Path) -> list[Path]:
    """Every regular file under `folder` in reading order (see _walk)."""
    return _walk(folder)[0]


def _walk(folder: Path, leave_out: LeaveOut = None) -> tuple[list[Path], list[str], list[str]]:
    """Every regular file under `folder`, sorted, a folder's files before its subfolders', hidden
    files and folders left out, and those `leave_out` picks (run folders, the cache: `train .`
    must not read its own checkpoints and metrics, nor a link to one of their files); the links
    that lead nowhere; and the folders (or links) left out as `leave_out` picked them. Links are
    followed, to files and to folders (a corpus gathered by links is read whole), each folder
    and file once: a link back up the tree is no loop, a second link to a file no second copy. A
    folder that cannot be read is a CorpusError, as a file that cannot be read is (not one found
    empty); one that went as it was walked is skipped, as a file that went is."""

    def unreadable(e: OSError) -> None:
        inside = os.path.normpath(e.filename) != os.path.normpath(folder)
        if isinstance(e, FileNotFoundError) and inside:
            return  # gone since its folder was listed (a temporary file's folder, a process's)
        elsewhere = f", or move it out of {folder}" if inside else ""
        raise CorpusError(
            f"cannot read the folder {e.filename}: {e.strerror or e}; make it readable{elsewhere}"
        )

    files, dangling, ours, seen, read = [], [], [], set(), set()
    for root, dirs, names in os.walk(folder, onerror=unreadable, followlinks=True):
        try:
            info = os.stat(root)
        except OSError as e:  # gone, or a link that leads nowhere now
            unreadable(e)
            dirs[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:  # reached again through a link: read once
            dirs[:] = []
            continue
        seen.add(key)
        if leave_out and root != str(folder) and leave_out(Path(root)):  # not the folder named
            ours.append(root)
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for path in (Path(root) / n for n in sorted(names) if not n.startswith(".")):
            if not path.is_file():
                if path.is_symlink() and not path.exists():
                    dangling.append(str(path))
            elif path.is_symlink() and leave_out and leave_out(path.resolve().parent):
                ours.append(str(path))  # a link into a run folder or the cache
            elif (key := _file_key(path)) not in read:  # a second link to a file: read once
                read.add(key)
                files.append(path)
    return files, dangling, ours


def _file_key(path: Path) -> tuple[int, int] | Path:
    """What tells one file from another: its device and inode (a link and its file are one), or
    the path where it cannot be asked (gone since listed: reading it says so)."""
    try:
        info = path.stat()
    except OSError:
        return path
    return info.st_dev, info.st_ino
