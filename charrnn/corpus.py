"""Getting text to train on: files, folders, stdin, the catalog of public corpora, built-in corpora.

Sources are resolved to files and read in chunks, decoded to `str` with `\\n` line ends; turning
that text into ids is encoded.py's job (load_corpus gives the whole text, for small corpora).
No torch, no printing: downloads report progress through a callback the caller supplies.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import sys
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import CorpusError
from charrnn.fsutil import atomic_write

CHUNK = 1 << 24  # bytes read at a time: a corpus of any size streams through a fixed buffer
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
# Decoding bytes to text


def decode_bytes(data: bytes, label: str, encoding: str = "utf-8") -> str:
    """bytes -> text with a byte-order mark dropped and \\r\\n or lone \\r read as \\n."""
    return "".join(decode_chunks([data], label, encoding))


def decode_chunks(chunks: Iterable[bytes], label: str, encoding: str = "utf-8") -> Iterator[str]:
    """Decode a file arriving in chunks, as decode_bytes does the whole: errors name the offset
    in the file, a \\r\\n split across two chunks is still one line end."""
    utf8 = _codec(encoding) in ("utf-8", "utf-8-sig")
    decoder = codecs.getincrementaldecoder("utf-8-sig" if utf8 else encoding)("strict")
    offset, first, cr = 0, True, False  # bytes read before this chunk; a \\r held back
    for chunk in _then_none(chunks):  # None: the end, to flush the decoder
        final = chunk is None
        chunk = b"" if final else chunk
        if utf8 and b"\x00" in chunk:
            raise CorpusError(
                f"{label} looks like a binary file (NUL byte at offset {offset + chunk.index(0)}); "
                "train on text files, or pass --encoding if it is UTF-16 or UTF-32 text"
            )
        held = len(decoder.getstate()[0])  # bytes of a character split across chunks
        try:
            text = decoder.decode(chunk, final)
        except UnicodeDecodeError as e:
            at = offset - held + e.start
            raise CorpusError(
                f"{label} is not valid {encoding} text: byte 0x{e.object[e.start]:02x} at offset "
                f"{at} cannot be decoded; pass --encoding (e.g. --encoding latin-1) "
                "if the file uses another encoding"
            ) from None
        offset += len(chunk)
        if first and text:
            first = False
            if text.startswith("\ufeff"):  # a BOM that survived a non-UTF-8 codec (utf-16)
                text = text[1:]
        if cr:
            text = "\r" + text
        cr = not final and text.endswith("\r")  # its \\n may open the next chunk
        if cr:
            text = text[:-1]
        if text:
            yield text.replace("\r\n", "\n").replace("\r", "\n")


def _then_none(chunks: Iterable[bytes]) -> Iterator[bytes | None]:
    yield from chunks
    yield None


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None


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
    """The catalog file: $CHARRNN_CATALOG, else the one shipped in the wheel or the checkout."""
    if env := os.environ.get("CHARRNN_CATALOG"):
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "corpora" / "catalog.json", here.parent / "corpora" / "catalog.json"):
        if candidate.is_file():
            return candidate
    raise CorpusError("the corpus catalog is missing from this installation; reinstall charrnn")


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    """name -> entry, in catalog order."""
    path = path or catalog_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = [CatalogEntry(**e) for e in raw["corpora"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorpusError(f"cannot read the corpus catalog {path}: {e}") from None
    return {e.name: e for e in entries}


def fetch(entry: CatalogEntry, cache_dir: Path, progress: Progress | None = None) -> Path:
    """The cached file of a catalog corpus, downloading (and verifying) or building it if needed."""
    target = entry.cache_file(cache_dir)
    if target.is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CorpusError(f"cannot create the corpus cache {cache_dir}: {e.strerror}") from None
    if entry.builtin:
        text = build_builtin(entry.name, entry.size).encode("utf-8")
        atomic_write(target, lambda f: f.write(text))
    else:
        download(entry, target, progress)
    return target


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
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        raise CorpusError(
            f"cannot download {entry.name} from {entry.url}: {reason}; check your connection, "
            "or download the file yourself and pass its path"
        ) from None


def build_builtin(name: str, size: int) -> str:
    """Build a built-in corpus offline from files every Python installation has."""
    if name != "pystdlib":
        raise CorpusError(f"unknown built-in corpus {name!r}")
    return python_stdlib_text(size)


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


# ---------------------------------------------------------------------------------------------
# What the user typed -> Sources to stream (or, for small texts, a Corpus in memory)


def resolve(
    specs: Sequence[str],
    cache_dir: Path,
    encoding: str = "utf-8",
    stdin: bytes | None = None,
    progress: Progress | None = None,
) -> Sources:
    """Find every source (a file, a folder of text files, "-" for stdin, or a catalog name)."""
    if not specs:
        raise CorpusError("no corpus given; pass a text file, a folder, '-' for stdin, or a name")
    _codec(encoding)
    files, origins = [], []
    for spec in specs:
        found, origin = _resolve_one(spec, cache_dir, stdin, progress)
        files += found
        origins.append(origin)
    return Sources(files, _default_name(specs[0]), origins, encoding)


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


def _resolve_one(spec, cache_dir, stdin, progress) -> tuple[list[Source], str]:
    if spec == "-":
        if stdin is None:
            raise CorpusError("'-' means standard input, but none was given")
        return [Source("standard input", data=stdin)], "-"
    path = Path(spec).expanduser()
    if path.is_dir():
        files = _text_files(path)
        if not files:
            raise CorpusError(f"the folder {path} holds no files to train on")
        return [Source(str(f), path=f) for f in files], str(path.resolve())
    if path.is_file():
        return [Source(str(path), path=path)], str(path.resolve())
    catalog = load_catalog()
    if spec in catalog:
        target = fetch(catalog[spec], cache_dir, progress)
        return [Source(str(target), path=target)], spec
    if path.exists():
        raise CorpusError(f"{path} is neither a file nor a folder")
    raise CorpusError(
        f"no such file, folder or corpus: {spec!r}; `charrnn corpus list` shows the named corpora"
    )


def _default_name(spec: str) -> str:
    if spec == "-":
        return "stdin"
    name = Path(spec.rstrip("/\\")).stem
    return name or "corpus"
