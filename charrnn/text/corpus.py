"""Getting text to train on: files, folders, stdin, the catalog of public corpora, built-in corpora.

Sources are resolved to files and read in chunks, decoded to `str` with `\\n` line ends; turning
that text into ids is encoded.py's job (load_corpus gives the whole text, for small corpora).
No torch, no printing: downloads report progress through a callback the caller supplies.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import sys
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import CorpusError
from charrnn.fsutil import atomic_write, cannot_write

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temporaries are then left for `corpus cache --clear`
    fcntl = None

CHUNK = 1 << 24  # bytes read at a time: a corpus of any size streams through a fixed buffer
SNIFF = 8192  # bytes of a file in a folder that decide whether it is text (git reads 8000)
ENCODINGS = "any text encoding Python knows, e.g. utf-8, utf-16, latin-1 or cp1252"
Progress = Callable[[int, int | None], None]  # (bytes done, bytes in all or None)


@dataclass
class Corpus:
    """Text ready to encode, with where it came from (stored in checkpoints for resuming)."""

    text: str
    name: str  # a default run name: the first source's file name without its extension
    sources: list[str] = field(default_factory=list)  # absolute paths, catalog names, or "-"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Source:
    """One file of a corpus, or bytes already in memory (standard input), read in chunks."""

    label: str  # what messages call it: a path, or "standard input"
    path: Path | None = None
    data: bytes | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else _stat(self.path).st_size

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        size = size or CHUNK
        if self.data is not None:
            yield from (self.data[i : i + size] for i in range(0, len(self.data), size))
            return
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(size):
                    yield chunk
        except OSError as e:
            raise CorpusError(f"cannot read {self.path}: {e.strerror or e}") from None


@dataclass
class Sources:
    """What the user named, resolved to files in reading order."""

    files: list[Source]
    name: str  # a default run name
    origins: list[str]  # one per spec: absolute path, catalog name, or "-" (kept in checkpoints)
    encoding: str = "utf-8"
    skipped: list[str] = field(default_factory=list)  # files of folders left out as not text

    def text_chunks(self) -> Iterator[str]:
        """The whole corpus as normalised text, in pieces; files joined so none runs into the next
        mid-line (a newline follows a file that does not end with one, unless it is the last)."""
        ends_line = True
        for i, src in enumerate(self.files):
            for piece in decode_chunks(src.chunks(), src.label, self.encoding):
                yield piece
                ends_line = piece.endswith("\n")
            if not ends_line and i < len(self.files) - 1:
                yield "\n"
                ends_line = True

    def total_bytes(self) -> int:
        return sum(s.size() for s in self.files)


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------
# Reading what the user named: every command reads its files by these rules, as train does

STREAM_HINT = "to read a stream, pipe it in and use - to read standard input"
TRAIN_HINT = "to train on a stream, pipe it in and use - to read standard input"


def input_file(
    spec: str | os.PathLike, label: str | None = None, hint: str = STREAM_HINT
) -> Source:
    """The file a user named (a command's FILE, --prime-file), as a Source read in chunks: a
    regular file, or a pipe (a FIFO, <(...), /dev/stdin fed by a shell pipe), read once. Anything
    else is a CorpusError: a missing file, a folder, and a device (/dev/zero, /dev/urandom never
    end: read whole, they fill the memory), with `hint` saying how to read a stream instead."""
    path = Path(spec).expanduser()
    label = label or str(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise CorpusError(f"cannot read {label}: {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(mode):
        raise CorpusError(f"cannot read {label}: {os.strerror(errno.EISDIR)}")
    refuse_devices(label, mode, "a file or a pipe", hint)
    return Source(label, path=path)


def refuse_devices(label: str, mode: int, kinds: str, hint: str = STREAM_HINT) -> None:
    """The one rule on what may be read as a file (`mode`: its stat's): a regular file or a pipe,
    never a device, a socket or the like. Folders are the caller's to handle first; `kinds` says
    what it takes ("a file, a folder or a pipe" for train)."""
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise CorpusError(f"{label} is not {kinds}; {hint}")


def read_all(
    chunks: Iterable[bytes], label: str, encoding: str = "utf-8", text: bool = True
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
# Decoding bytes to text


def decode_bytes(data: bytes, label: str, encoding: str = "utf-8") -> str:
    """bytes -> text with a byte-order mark dropped and \\r\\n or lone \\r read as \\n."""
    return "".join(decode_chunks([data], label, encoding))


def decode_chunks(chunks: Iterable[bytes], label: str, encoding: str = "utf-8") -> Iterator[str]:
    """Decode a file arriving in chunks, as decode_bytes does the whole: errors name the offset
    in the file, a \\r\\n split across two chunks is still one line end."""
    decoder = Decoder(label, encoding)
    first, cr = True, False  # a \\r held back
    for chunk in _then_none(chunks):  # None: the end, to flush the decoder
        final = chunk is None
        text = decoder.decode(b"" if final else chunk, final)
        if first and text:
            first = False
            # A byte-order mark, whatever the encoding; but UTF-16/32's codec has dropped the
            # file's own already, and a U+FEFF after it is text.
            if text.startswith("\ufeff") and not decoder.drops_bom:
                text = text[1:]
        if cr:
            text = "\r" + text
        cr = not final and text.endswith("\r")  # its \\n may open the next chunk
        if cr:
            text = text[:-1]
        if text:
            yield text.replace("\r\n", "\n").replace("\r", "\n")


class Decoder:
    """Incremental strict decoding whose errors name the file and the byte offset in it."""

    def __init__(self, label: str, encoding: str = "utf-8"):
        codec = text_encoding(encoding)
        # utf-8-sig counts error offsets after the BOM it drops: decode_chunks drops it instead
        self.decoder = codecs.getincrementaldecoder("utf-8" if codec == "utf-8-sig" else codec)()
        self.label, self.encoding, self.offset = label, codec, 0  # offset: bytes decoded so far
        self.nul_is_text = _nul_is_text(codec)
        # UTF-16/32 must start with a byte-order mark. Python's incremental decoder refuses a
        # file without one when it comes in several chunks, but reads it as little-endian when it
        # comes in one: so the mark is checked here, on the first bytes, whatever the chunks.
        self.head = b"" if codec in _BOMS else None
        self.drops_bom = codec in _BOMS  # the codec reads the mark and drops it itself

    def decode(self, chunk: bytes, final: bool = False) -> str:
        if not self.nul_is_text and b"\x00" in chunk:  # binary, whatever else is wrong with it
            raise CorpusError(
                f"{self.label} looks like a binary file (NUL byte at offset "
                f"{self.offset + chunk.index(0)}); give text files, or pass --encoding if it "
                "is UTF-16 or UTF-32 text"
            )
        if self.head is not None:
            chunk, self.head = self.head + chunk, None
            width = len(_BOMS[self.encoding][0])
            if len(chunk) < width and not final:
                self.head = chunk
                return ""
            if len(chunk) >= width and not chunk.startswith(_BOMS[self.encoding]):
                raise CorpusError(self._no_byte_order_mark())
        start = self.offset - len(self.decoder.getstate()[0])  # of the bytes held back, if any
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeError as e:  # incl. UTF-16/32 without a byte-order mark, and codec bugs
            raise CorpusError(self._undecodable(e, start)) from None
        self.offset += len(chunk)
        return text

    def _no_byte_order_mark(self) -> str:
        return (
            f"{self.label} is not valid {self.encoding} text: it does not start with a byte-order "
            f"mark (offset 0); pass --encoding {self.encoding}-le or --encoding "
            f"{self.encoding}-be for its byte order"
        )

    def _undecodable(self, e: UnicodeError, start: int) -> str:
        what = f"{self.label} is not valid {self.encoding} text"
        if isinstance(e, UnicodeDecodeError) and e.start < len(e.object):
            return (
                f"{what}: byte 0x{e.object[e.start]:02x} at offset {start + e.start} cannot be "
                "decoded; pass --encoding (e.g. --encoding latin-1) if the file uses another "
                "encoding"
            )
        return f"{what}: {str(e).rstrip('.')} (at offset {start}); pass --encoding for its encoding"


_BOMS = {  # the byte-order marks a file in these encodings must start with
    "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
}


def _then_none(chunks: Iterable[bytes]) -> Iterator[bytes | None]:
    yield from chunks
    yield None


def text_encoding(name: str) -> str:
    """The canonical name of text encoding `name`; CorpusError for an unknown name or a codec
    that does not turn bytes into text (hex, base64, rot13, zlib...)."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise CorpusError(f"unknown encoding {name!r}; use {ENCODINGS}") from None
    if not info._is_text_encoding:  # the flag Python's own str.encode checks
        raise CorpusError(f"{name!r} is not a text encoding; use {ENCODINGS}")
    return info.name


def _nul_is_text(codec: str) -> bool:
    """True for encodings whose text holds NUL bytes (UTF-16, UTF-32): there NUL is not binary."""
    try:
        return b"\x00" in "a".encode(codec)
    except UnicodeError:
        return False


def sniff(src: Source, encoding: str) -> str | None:
    """Why a file is not text in `encoding` (a NUL byte, or bytes that do not decode), or None if
    it is: judged on its first block, as grep and git do."""
    with contextlib.closing(src.chunks(SNIFF)) as chunks:
        head = next(chunks, b"")
    try:
        Decoder(src.label, encoding).decode(head, final=len(head) < SNIFF)
    except CorpusError as e:
        return str(e)
    return None


def _text_files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, sorted, hidden files and folders left out."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return [f for f in files if f.is_file()]


# ---------------------------------------------------------------------------------------------
# The catalog: well-known public corpora, and built-in ones made offline


@dataclass(frozen=True)
class CatalogEntry:
    """One corpus the tool knows by name: downloaded (url + sha256) or built offline (builtin)."""

    name: str
    description: str
    size: int
    licence: str
    url: str | None = None
    sha256: str | None = None
    builtin: bool = False

    def cache_file(self, cache_dir: Path) -> Path:
        if self.builtin:  # built from this machine's own files, which differ per Python version
            return cache_dir / f"{self.name}-py{sys.version_info[0]}.{sys.version_info[1]}.txt"
        return cache_dir / f"{self.name}.txt"


def catalog_path() -> Path:
    """The catalog file: $CHARRNN_CATALOG, else the one that ships inside the package."""
    if env := os.environ.get("CHARRNN_CATALOG"):
        return Path(env)
    path = Path(__file__).resolve().parent / "catalog.json"
    if not path.is_file():
        raise CorpusError("the corpus catalog is missing from this installation; reinstall charrnn")
    return path


_CATALOG_HINT = "point CHARRNN_CATALOG at a JSON file"


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    """name -> entry, in catalog order; a catalog that is not as documented is a CorpusError."""
    path = path or catalog_path()
    label = f"the corpus catalog {path}"
    try:  # read as every file a user names is read: no device, in chunks, no binary content
        _, text = read_all(input_file(path, label, _CATALOG_HINT).chunks(), label)
        raw = json.loads(text)
    except (OSError, ValueError, RecursionError) as e:
        reason = getattr(e, "strerror", None) or e
        raise CorpusError(f"cannot read the corpus catalog {path}: {reason}") from None
    try:
        entries = _catalog_entries(raw)
    except ValueError as e:
        raise CorpusError(
            f"the corpus catalog {path} is malformed: {e}; fix it, or point CHARRNN_CATALOG "
            "at a good one"
        ) from None
    return {e.name: e for e in entries}


_FIELDS = {"name": str, "description": str, "size": int, "licence": str, "url": str}
_FIELDS |= {"sha256": str, "builtin": bool}
_REQUIRED = ("name", "description", "size", "licence")


def _catalog_entries(raw) -> list[CatalogEntry]:
    """The entries of a parsed catalog, checked field by field (ValueError says what is wrong)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("corpora"), list):
        raise ValueError('it must be a JSON object with a list "corpora"')
    entries = []
    for i, e in enumerate(raw["corpora"], 1):
        what = f"entry {i}" + (f" ({e['name']!r})" if isinstance(e, dict) and "name" in e else "")
        if not isinstance(e, dict):
            raise ValueError(f"{what} is not a JSON object")
        if unknown := sorted(set(e) - set(_FIELDS)):
            raise ValueError(f"{what} has an unknown field {unknown[0]!r}")
        if missing := [k for k in _REQUIRED if k not in e]:
            raise ValueError(f"{what} has no {missing[0]!r}")
        for k, v in e.items():
            if not isinstance(v, _FIELDS[k]) or (_FIELDS[k] is int and isinstance(v, bool)):
                raise ValueError(f"{what}: {k!r} must be a {_FIELDS[k].__name__}, not {v!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", e["name"]):
            raise ValueError(f"{what}: the name may hold only letters, digits, '.', '_' and '-'")
        if e["size"] <= 0:
            raise ValueError(f"{what}: 'size' must be more than zero")
        if e.get("builtin"):
            if e["name"] not in BUILTINS:
                raise ValueError(f"{what} is not a built-in corpus ({', '.join(BUILTINS)} are)")
        elif not e.get("url") or not re.fullmatch(r"[0-9a-f]{64}", e.get("sha256", "")):
            raise ValueError(f"{what} needs a 'url' and a 'sha256' (64 hex digits), or 'builtin'")
        if e["name"] in {x.name for x in entries}:
            raise ValueError(f"{what} repeats the name {e['name']!r}")
        entries.append(CatalogEntry(**e))
    return entries


OTHER_CACHE = "point CHARRNN_CACHE_DIR at another folder"  # how to put the cache elsewhere


def fetch(entry: CatalogEntry, cache_dir: Path, progress: Progress | None = None) -> Path:
    """The cached file of a catalog corpus, downloading (and verifying) or building it if needed."""
    target = entry.cache_file(cache_dir)
    if target.is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CorpusError(
            cannot_write(cache_dir, e, OTHER_CACHE, doing="create the corpus cache")
        ) from None
    with cache_writing(cache_dir, f".{target.name}.*.tmp"):  # the folder may hold others' files
        if entry.builtin:
            text = build_builtin(entry.name, entry.size).encode("utf-8")
            try:
                atomic_write(target, lambda f: f.write(text))
            except OSError as e:
                raise CorpusError(cannot_write(target, e, OTHER_CACHE)) from None
        else:
            download(entry, target, progress)
    return target


@contextlib.contextmanager
def cache_writing(folder: Path, temporaries: str = ".*.tmp") -> Iterator[int]:
    """Write files into cache `folder` (made already) under a shared lock on it; when no other
    process is writing there, first remove the temporaries (files matching the glob pattern
    `temporaries`) a killed writer left; yields the bytes that freed.

    Every writer holds the folder's flock shared, so an exclusive one, got without waiting, proves
    that every `.NAME.*.tmp` of atomic_write in it is stale. The kernel drops the lock of a dead
    process, even one killed by SIGKILL.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # the writes that follow will say what is wrong with the folder
        yield 0
        return
    try:
        freed = sweep_temporaries(folder, temporaries) if _try_lock(fd) else 0
        if fcntl:
            with contextlib.suppress(OSError):  # a file system without flock: no sweeping
                fcntl.flock(fd, fcntl.LOCK_SH)  # (converts the exclusive lock, if we had it)
        yield freed
    finally:
        os.close(fd)  # releases the lock


def sweep_temporaries(folder: Path, pattern: str = ".*.tmp") -> int:
    """Remove atomic_write's temporaries in `folder` (call only when no writer is at work there);
    returns the bytes freed."""
    freed = 0
    for tmp in folder.glob(pattern):
        with contextlib.suppress(OSError):
            size = tmp.stat().st_size
            tmp.unlink()
            freed += size
    return freed


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` if no one holds any; False if someone does (or no flock)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def download(entry: CatalogEntry, target: Path, progress: Progress | None = None) -> None:
    """Stream entry.url into `target`, verifying its SHA-256; a bad download leaves nothing."""
    assert entry.url and entry.sha256

    def write(out) -> None:
        digest, done = hashlib.sha256(), 0
        with urllib.request.urlopen(entry.url, timeout=30) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or entry.size
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if digest.hexdigest() != entry.sha256:
            raise CorpusError(
                f"the download of {entry.name} from {entry.url} does not match its SHA-256 "
                f"(got {digest.hexdigest()[:16]}..., expected {entry.sha256[:16]}...); "
                "it was discarded: try again later, or download it yourself and pass its path"
            )

    try:
        atomic_write(target, write)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(e, OSError) and e.filename == str(target):  # writing failed, not the network
            raise CorpusError(cannot_write(target, e, OTHER_CACHE)) from None
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        raise CorpusError(
            f"cannot download {entry.name} from {entry.url}: {reason}; check your connection, "
            "or download the file yourself and pass its path"
        ) from None


def build_builtin(name: str, size: int) -> str:
    """Build a built-in corpus offline from files every Python installation has."""
    if name not in BUILTINS:
        raise CorpusError(f"unknown built-in corpus {name!r}")
    return BUILTINS[name](size)


def python_stdlib_text(size: int) -> str:
    """About `size` characters of this Python's standard library source, in a fixed order.

    Test suites and vendored packages are left out; each file is preceded by a comment naming it,
    which the model learns to write too.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
    parts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if skip & set(rel.parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        part = f"# {rel.as_posix()}\n{source.rstrip()}\n\n"
        parts.append(part)
        total += len(part)
        if total >= size:
            break
    if not parts:
        raise CorpusError(f"no Python source found under {root} to build the pystdlib corpus")
    return "".join(parts).replace("\r\n", "\n").replace("\r", "\n")


def recall_corpus_text(size: int) -> str:
    """About `size` characters of the recall task (memory.py): each line an opener, a gap of
    random filler, a cue, and the opener's closer; seed 0, the same on every machine."""
    from charrnn.use.memory import recall_text  # plain Python: the corpus is built without torch

    return recall_text(size)


BUILTINS = {  # built-in corpus name -> its builder(size)
    "pystdlib": python_stdlib_text,
    "recall": recall_corpus_text,
}


# ---------------------------------------------------------------------------------------------
# What the user typed -> Sources to stream (or, for small texts, a Corpus in memory)


def resolve(
    specs: Sequence[str],
    cache_dir: Path,
    encoding: str = "utf-8",
    stdin: bytes | None = None,
    progress: Progress | None = None,
) -> Sources:
    """Find every source: a file, a folder of text files (others are skipped: see sniff), "-" for
    stdin, a named pipe (read once, whole, like stdin), or a catalog name."""
    if not specs:
        raise CorpusError("no corpus given; pass a text file, a folder, '-' for stdin, or a name")
    encoding = text_encoding(encoding)
    files, origins, skipped = [], [], []
    for spec in specs:
        found, origin, left_out = _resolve_one(spec, cache_dir, encoding, stdin, progress)
        files += found
        skipped += left_out
        origins.append(origin)
    return Sources(files, _default_name(specs[0]), origins, encoding, skipped)


def _text_only(found: list[Source], encoding: str, folder: Path) -> tuple[list[Source], list[str]]:
    """The files of a folder that are text, and the labels of those that are not."""
    why = {src.label: sniff(src, encoding) for src in found}
    text = [src for src in found if why[src.label] is None]
    if not text:
        raise CorpusError(
            f"the folder {folder} holds no {encoding} text files to train on: "
            f"{len(found)} skipped, e.g. {why[found[0].label]}"
        )
    return text, [label for label, reason in why.items() if reason is not None]


def load_corpus(
    specs: Sequence[str],
    cache_dir: Path,
    encoding: str = "utf-8",
    stdin: bytes | None = None,
    progress: Progress | None = None,
) -> Corpus:
    """The whole corpus as one str in memory (for small texts; training streams it instead)."""
    sources = resolve(specs, cache_dir, encoding, stdin, progress)
    text = "".join(sources.text_chunks())
    if not text:
        raise CorpusError(empty_message(specs))
    return Corpus(text=text, name=sources.name, sources=sources.origins)


def empty_message(specs: Sequence[str]) -> str:
    what = "standard input" if list(specs) == ["-"] else ", ".join(specs)
    return f"the corpus is empty ({what}); give it some text to learn from"


def _resolve_one(spec, cache_dir, encoding, stdin, progress) -> tuple[list[Source], str, list]:
    """The files of one spec, its origin, and the files of a folder skipped as not text."""
    if spec == "-":
        if stdin is None:
            raise CorpusError("'-' means standard input, but none was given")
        return [Source("standard input", data=stdin)], "-", []
    path = Path(spec).expanduser()
    mode = _mode(path)
    if stat.S_ISDIR(mode):
        files = _text_files(path)
        if not files:
            raise CorpusError(f"the folder {path} holds no files to train on")
        text, skipped = _text_only([Source(str(f), path=f) for f in files], encoding, path)
        return text, str(path.resolve()), skipped
    if mode:
        refuse_devices(str(path), mode, "a file, a folder or a pipe", TRAIN_HINT)
    if stat.S_ISREG(mode):
        return [Source(str(path), path=path)], str(path.resolve()), []
    if stat.S_ISFIFO(mode):  # a pipe or <(...) can be read only once: read it whole, as stdin
        data, _ = read_all(Source(str(path), path=path).chunks(), str(path), encoding, text=False)
        return [Source(str(path), data=data)], os.path.abspath(path), []
    catalog = load_catalog()
    if spec in catalog:
        target = fetch(catalog[spec], cache_dir, progress)
        return [Source(str(target), path=target)], spec, []
    raise CorpusError(
        f"no such file, folder or corpus: {spec!r}; `charrnn corpus list` shows the named corpora"
    )


def _mode(path: Path) -> int:
    """What `path` is (stat's st_mode, following links), or 0 where nothing is."""
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
        return 0
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None


def _default_name(spec: str) -> str:
    if spec == "-":
        return "stdin"
    if spec.startswith(("/dev/fd/", "/proc/")):  # <(...): its name is a number
        return "pipe"
    name = Path(spec.rstrip("/\\")).stem
    return name or "corpus"
