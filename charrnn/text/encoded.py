"""A corpus encoded once into compact ids on disk (cache_dir/encoded/KEY.ids, uint8 up to 256
characters; KEY.json says what they mean), memory-mapped, and found again by KEY, the SHA-256 of
the raw bytes and the encoding. How and why: docs/commands.md, "Corpora of any size".
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from charrnn import jsonl
from charrnn.defaults import ENCODING
from charrnn.errors import CacheUnwritable, CorpusError, VocabError
from charrnn.text.cache import cache_writing, in_cache, write_cached
from charrnn.text.data import check_vocab, code_points, encode, id_dtype
from charrnn.text.sources import CHUNK, Sources
from charrnn.text.vocab import CharVocab

FORMAT = 4  # bump when the layout or the decoding rules change: old entries are then misses
Progress = Callable[[str, int, int], None]  # (phase, done, total) in bytes
_DTYPES = {"uint8": torch.uint8, "int16": torch.int16, "int32": torch.int32}
_MAX_CODE_POINT = 0x10FFFF
_WRITING = "write the encoded corpus to"  # what a failed write says, naming the folder


@dataclass
class EncodedCorpus:
    """A corpus as ids, with what a checkpoint records about it."""

    ids: torch.Tensor  # (N,) uint8/int16/int32, memory-mapped from the cache file (read-only use)
    vocab: CharVocab
    name: str
    sources: list[str]  # as given: absolute paths, catalog names, or "-"
    sha256: str  # of the normalised text as UTF-8: what checkpoints compare on resume
    key: str  # the cache key: SHA-256 of the raw bytes and the encoding
    hit: bool  # found in the cache (False: encoded now)
    rebuilt: str | None = None  # why a damaged cache entry was encoded again, if one was
    encoding: str = ENCODING  # what the sources were read with (a resume reads them so again)
    # Each file's label and length in characters, in reading order, to say where in which file a
    # place in the text is; [] where not known (a cache entry from before they were kept).
    files: list[tuple[str, int]] = field(default_factory=list)
    uncached: str | None = None  # why the cache could not keep it, where it could not

    def __len__(self) -> int:
        return len(self.ids)


def encode_corpus(
    sources: Sources, cache_dir: Path, progress: Progress | None = None
) -> EncodedCorpus:
    """The ids of `sources`, from the cache if it holds them, else encoded and cached now; where
    the cache cannot be written (a read-only home, a full disk), encoded in a temporary folder,
    mapped, and the folder removed: the cache only saves the encoding, the run needs none."""
    key = content_key(sources, progress)
    try:
        return _encoded(sources, cache_dir / "encoded", key, progress)
    except CacheUnwritable as e:
        try:
            with tempfile.TemporaryDirectory(
                prefix="charrnn-encoded-", ignore_cleanup_errors=True
            ) as tmp:
                corpus = _encoded(sources, Path(tmp), key, progress)
        except CacheUnwritable:  # nowhere to write (a full disk): the cache's error says what to do
            raise e from None
        return dataclasses.replace(corpus, uncached=str(e))


def _encoded(sources: Sources, folder: Path, key: str, progress) -> EncodedCorpus:
    meta_path, ids_path = folder / f"{key}.json", folder / f"{key}.ids"
    rebuilt = None
    if in_cache(Path.exists, meta_path) or in_cache(Path.exists, ids_path):
        try:
            meta = _open(key, meta_path, ids_path, progress)
            if "file_chars" not in meta and len(sources.files) > 1:  # made before they were kept
                meta = _with_file_chars(meta, sources, meta_path, progress)
            return _result(ids_path, meta, sources, hit=True)
        except _Damaged as e:
            rebuilt = str(e)
    with cache_writing(folder):  # removes what an encoding killed midway left
        meta = _build(sources, key, meta_path, ids_path, progress)
    return _result(ids_path, meta, sources, hit=False, rebuilt=rebuilt)


def content_key(sources: Sources, progress: Progress | None = None) -> str:
    """SHA-256 over the format, the encoding and each file's length and bytes, in order."""
    digest = hashlib.sha256(f"charrnn-encoded-{FORMAT}\0{sources.encoding}\0".encode())
    total, done = sources.total_bytes(), 0
    for src in sources.files:
        digest.update(f"{src.size()}\0".encode())
        for chunk in src.chunks():
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("hash", done, total)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Building an entry: pass 1 counts characters, pass 2 writes ids


def _build(sources: Sources, key: str, meta_path: Path, ids_path: Path, progress) -> dict:
    counts, n, text_sha, file_chars = _count(sources, progress)
    if n == 0:
        what = "standard input" if sources.origins == ["-"] else ", ".join(sources.origins)
        raise CorpusError(f"the corpus is empty ({what}); give it some text to learn from")
    vocab = CharVocab.from_list([chr(c) for c in torch.nonzero(counts).flatten().tolist()])
    if bool(counts[0xD800:0xE000].any()):  # check_vocab would refuse it, but not say where
        _refuse_a_surrogate(sources, progress)
    check_vocab(vocab)
    dtype = id_dtype(len(vocab))
    crc = 0

    def write(f) -> None:
        nonlocal crc
        written = 0
        for ids in _id_chunks(sources, vocab, dtype, progress):
            f.write(ids)
            crc = zlib.crc32(ids, crc)
            written += len(ids)
        if written != n * dtype.itemsize:  # the files changed between the two passes
            raise CorpusError(
                "the corpus changed while it was being encoded; try again, or, for a file still "
                "being written (a log), train on a copy of it (cp log.txt snapshot.txt)"
            )

    write_cached(ids_path, write, _WRITING, ids_path.parent)
    meta = {
        "format": FORMAT,
        "key": key,
        "length": n,
        "dtype": str(dtype).removeprefix("torch."),
        "vocab": vocab.to_list(),
        "text_sha256": text_sha,
        "ids_crc32": crc,
        "sources": sources.origins,  # for `charrnn corpus cache` only: the key is the content
        "file_chars": file_chars,  # each file's characters: the key fixes them, as the content
    }
    meta["meta_sha256"] = _seal(meta)
    sealed = jsonl.dumps(meta).encode()
    write_cached(meta_path, lambda f: f.write(sealed), _WRITING, meta_path.parent)
    return meta


def _with_file_chars(meta: dict, sources: Sources, meta_path: Path, progress) -> dict:
    """`meta` of an entry made before each file's length was kept, with them: counted now, in one
    pass that decodes the files, and written into the entry (where the cache can still be
    written: else they are counted again next time)."""
    per_file = [0] * len(sources.files)
    for i, text in _pieces(sources, progress, "count"):
        per_file[i] += len(text)
    meta = {**meta, "file_chars": per_file}
    meta["meta_sha256"] = _seal(meta)
    sealed = jsonl.dumps(meta).encode()
    with contextlib.suppress(CorpusError), cache_writing(meta_path.parent):
        write_cached(meta_path, lambda f: f.write(sealed), _WRITING, meta_path.parent)
    return meta


def _count(sources: Sources, progress) -> tuple[torch.Tensor, int, str, list[int]]:
    """How often each code point occurs, the length in characters, the text's SHA-256, and each
    file's length in characters."""
    counts = torch.zeros(_MAX_CODE_POINT + 1, dtype=torch.int64)
    digest, n, per_file = hashlib.sha256(), 0, [0] * len(sources.files)
    for i, text in _pieces(sources, progress, "count"):
        digest.update(text.encode("utf-8", "surrogatepass"))
        n += len(text)
        per_file[i] += len(text)
        hist = torch.bincount(code_points(text))
        counts[: len(hist)] += hist
    return counts, n, digest.hexdigest(), per_file


_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_a_surrogate(sources: Sources, progress) -> None:
    """A CorpusError naming the file and the character where the corpus holds its first lone
    surrogate (what check_vocab refuses, from the counts alone)."""
    read = [0] * len(sources.files)  # characters of each file before the piece
    for i, text in _pieces(sources, progress, "count"):
        if found := _SURROGATE.search(text):
            raise CorpusError(
                f"{sources.files[i].label} holds U+{ord(found.group()):04X}, a lone surrogate "
                "(half of a UTF-16 pair, no character, which text read as UTF-7 or broken UTF-16 "
                f"can hold), at character {read[i] + found.start() + 1:,}: a model could not "
                "write it as text; take it out of the text"
            )
        read[i] += len(text)


def _id_chunks(sources: Sources, vocab: CharVocab, dtype: torch.dtype, progress):
    """bytes of ids, piece by piece, in `dtype`."""
    for _, text in _pieces(sources, progress, "encode"):
        ids = encode(text, vocab)  # (n,) in dtype
        out = bytearray(len(ids) * dtype.itemsize)  # what f.write and crc32 take, without numpy
        torch.frombuffer(out, dtype=dtype).copy_(ids)
        yield out


def _pieces(sources: Sources, progress, phase: str):
    """The normalised text in pieces, each with its file's index, reporting progress by
    characters as a share of bytes."""
    total, done = sources.total_bytes(), 0
    for i, text in sources.numbered_chunks():
        yield i, text
        done = min(done + len(text), total)
        if progress:
            progress(phase, done, total)


# ---------------------------------------------------------------------------------------------
# Reading an entry back


class _Damaged(Exception):
    """A cache entry that cannot be trusted (internal: it is rebuilt)."""


# Metadata that cannot be read, or JSON of another shape (a list, a string length, Infinity...)
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError, VocabError)


def _open(key: str, meta_path: Path, ids_path: Path, progress) -> dict:
    """The metadata of the entry, checked with its ids file; _Damaged says what is wrong."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("key") != key:
            raise _Damaged("its metadata is from another version or another corpus")
        n, dtype = int(meta["length"]), _DTYPES[meta["dtype"]]
        vocab = CharVocab.from_list(meta["vocab"])
        if id_dtype(len(vocab)) != dtype or n <= 0:
            raise _Damaged("its metadata does not add up")
        size = ids_path.stat().st_size
    except _Damaged:
        raise
    except _UNREADABLE as e:
        raise _Damaged(f"its metadata is unreadable ({type(e).__name__})") from None
    if size != n * dtype.itemsize:
        raise _Damaged(f"its ids file has {size:,} bytes, not {n * dtype.itemsize:,}")
    if _crc32(ids_path, progress) != meta.get("ids_crc32"):
        raise _Damaged("its ids file fails its checksum")
    if _seal(meta) != meta.get("meta_sha256"):  # e.g. a vocabulary that still looks like one
        raise _Damaged("its metadata fails its checksum")
    return meta


def _seal(meta: dict) -> str:
    """The SHA-256 of the metadata but this checksum itself, so no damaged field is trusted."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _crc32(path: Path, progress) -> int:
    crc, done, total = 0, 0, path.stat().st_size
    buf = bytearray(CHUNK)
    with open(path, "rb") as f:
        while k := f.readinto(buf):
            crc = zlib.crc32(memoryview(buf)[:k], crc)
            done += k
            if progress:
                progress("check", done, total)
    return crc


def _result(ids_path: Path, meta: dict, sources: Sources, hit: bool, rebuilt=None) -> EncodedCorpus:
    """The entry with its ids file mapped privately: pages load as training reads them; nothing
    writes back."""
    dtype, n = _DTYPES[meta["dtype"]], int(meta["length"])
    file_chars = meta.get("file_chars") or ([n] if len(sources.files) == 1 else [])
    known = len(file_chars) == len(sources.files) and sum(file_chars) == n
    labels = [s.label for s in sources.files]
    return EncodedCorpus(
        ids=torch.from_file(str(ids_path), shared=False, size=n, dtype=dtype),
        vocab=CharVocab.from_list(meta["vocab"]),
        name=sources.name,
        sources=sources.origins,
        sha256=meta["text_sha256"],
        key=meta["key"],
        hit=hit,
        rebuilt=rebuilt,
        encoding=sources.encoding,
        files=list(zip(labels, file_chars, strict=True)) if known else [],
    )


def encode_text(text: str, name: str = "text") -> EncodedCorpus:
    """A text already in memory as an EncodedCorpus (not cached), for tests, benches and
    notebooks; the text is taken as it is (files are normalised on reading: BOM, line ends)."""
    if not text:
        raise CorpusError("the text is empty: there is nothing to train on")
    vocab = CharVocab.from_text(text)
    check_vocab(vocab)
    sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()  # as _count does
    return EncodedCorpus(encode(text, vocab), vocab, name, [], sha, key=sha, hit=False)


@dataclass
class CacheEntry:
    """One encoded corpus in the cache, as `charrnn corpus cache` lists it."""

    key: str
    ids_path: Path
    size: int  # bytes on disk (ids and metadata)
    chars: int | None  # None when the metadata is unreadable, or the ids file is not whole
    sources: list[str] | None  # None when the metadata is unreadable


def cache_entries(cache_dir: Path) -> list[CacheEntry]:
    """Every encoded corpus in the cache, largest first."""
    folder = Path(cache_dir) / "encoded"
    entries = []
    # listed, not globbed: a folder this user may not read would glob as empty, an empty cache
    names = sorted(in_cache(os.listdir, folder)) if in_cache(Path.is_dir, folder) else []
    for ids in (folder / n for n in names if n.endswith(".ids")):
        meta_path = ids.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            chars, sources = int(meta["length"]), [str(s) for s in meta.get("sources", [])]
            if _size(ids) != chars * _DTYPES[meta["dtype"]].itemsize:  # cut short: rebuilt on use
                chars = None
        except _UNREADABLE:
            chars, sources = None, None
        size = sum(_size(p) for p in (ids, meta_path))
        entries.append(CacheEntry(ids.stem, ids, size, chars, sources))
    return sorted(entries, key=lambda e: -e.size)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone meanwhile (another process cleared the cache), or never written
        return 0


# What to do where the cache cannot be changed: it is only a cache, so another one will do
CACHE_NOT_YOURS = (
    "make the cache folder writable, or set CHARRNN_CACHE_DIR to another folder (a cache left "
    "as it is costs nothing but its space)"
)


def clear_cache(cache_dir: Path) -> int:
    """Delete every encoded corpus (a training run that has one mapped keeps reading it), and
    what killed encodings left; returns the bytes freed. Downloaded corpora are kept."""
    folder = Path(cache_dir) / "encoded"
    if not in_cache(Path.is_dir, folder):
        return 0
    with cache_writing(folder) as freed:
        for e in cache_entries(cache_dir):
            for path in (e.ids_path, e.ids_path.with_suffix(".json")):
                size = _size(path)
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as err:
                    raise CorpusError(
                        f"cannot delete {path}: {err.strerror or err}; {CACHE_NOT_YOURS}"
                    ) from None
                freed += size
    return freed
