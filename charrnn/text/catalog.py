"""The corpora known by name: the catalog (catalog.json: public corpora, downloaded once and
verified by their SHA-256) and the built-in ones, made offline from this machine's own files.

Either is fetched into the cache folder (cache.py) on first use and read from there as a file.
No printing: downloads report progress through a callback the caller supplies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import sys
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CacheUnwritable, CorpusError
from charrnn.fsutil import atomic_write, cannot_write
from charrnn.text.cache import OTHER_CACHE, cache_writing, in_cache, write_cached
from charrnn.text.recall import recall_text
from charrnn.text.sources import input_file, read_all

Progress = Callable[[int, int | None], None]  # (bytes done, bytes in all or None)


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
        if self.name in PER_PYTHON:  # built from this machine's own files: per Python version
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
    except (ValueError, RecursionError) as e:  # (reading it fails as a CorpusError of its own)
        raise CorpusError(f"cannot read the corpus catalog {path}: {e}") from None
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


def cached(entry: CatalogEntry, cache_dir: Path) -> str:
    """Whether `entry` is in the cache: "yes", "no", or "differs" (a file by its name that is not
    the one the catalog names, or the one built here, which `fetch` refuses: saved by hand, or
    damaged)."""
    target = entry.cache_file(cache_dir)
    if not in_cache(Path.is_file, target):
        return "no"
    expected = _expected_sha256(entry, target)
    return "differs" if expected and _sha256(target) != expected else "yes"


def fetch(entry: CatalogEntry, cache_dir: Path, progress: Progress | None = None) -> Path:
    """The cached file of a catalog corpus, downloading (and verifying) or building it if needed."""
    target = entry.cache_file(cache_dir)
    if in_cache(Path.is_file, target):
        expected = _expected_sha256(entry, target)
        if expected and (got := _sha256(target)) != expected:  # saved by hand, or damaged
            raise CorpusError(
                f"{target} is not the {entry.name} the catalog names: its SHA-256 differs "
                f"(got {got[:16]}..., expected {expected[:16]}...); remove it and run "
                f"`charrnn corpus get {entry.name}` again, or train on that file by its path"
            )
        return target
    with cache_writing(cache_dir, f".{target.name}.*.tmp"):  # the folder may hold others' files
        if entry.builtin:  # a name of BUILTINS: the catalog is checked as it loads
            text = BUILTINS[entry.name](entry.size).encode("utf-8")
            # the digest first, so that the corpus file is never there without it
            _keep_digest(target, hashlib.sha256(text).hexdigest())
            try:
                write_cached(target, lambda f: f.write(text))
            except BaseException:  # a full disk: no digest of a corpus that is not there
                _digest_file(target).unlink(missing_ok=True)
                raise
        else:
            download(entry, target, progress)
    return target


def _digest_file(target: Path) -> Path:
    """Where the SHA-256 of a built-in corpus built here is kept, beside it."""
    return target.with_name(target.name + ".sha256")


def _expected_sha256(entry: CatalogEntry, target: Path) -> str | None:
    """The SHA-256 the cached file must have: the catalog's, or for a built-in one the digest
    kept when it was built here; where that is missing or not a digest (a cache from before
    digests were kept), the digest of the corpus built again (a second), kept for next time."""
    if entry.sha256:
        return entry.sha256
    kept = ""
    with contextlib.suppress(OSError, UnicodeError):
        kept = _digest_file(target).read_text(encoding="ascii").strip()
    if re.fullmatch(r"[0-9a-f]{64}", kept):
        return kept
    digest = hashlib.sha256(BUILTINS[entry.name](entry.size).encode("utf-8")).hexdigest()
    with contextlib.suppress(OSError), cache_writing(target.parent, f".{target.name}.*.tmp"):
        _keep_digest(target, digest)  # for next time, where the cache can be written
    return digest


def _keep_digest(target: Path, digest: str) -> None:
    """Keep `digest`, the SHA-256 of the built-in corpus `target` holds (or will), beside it."""
    write_cached(_digest_file(target), lambda f: f.write(digest.encode()))


def _sha256(path: Path) -> str:
    """The SHA-256 of a file in the cache; one this user may not read is a CacheUnwritable (a
    training fetches the corpus for itself; `corpus` says it)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise CacheUnwritable(f"cannot read {path}: {e.strerror or e}; {OTHER_CACHE}") from None
    return digest.hexdigest()


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
                f"it was discarded: try again later, or {_by_hand(target)}"
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
            f"or {_by_hand(target)}"
        ) from None


def _by_hand(target: Path) -> str:
    """Advice for a corpus the network will not give: the file fetched another way and saved
    where the cache looks (so that its name works for `train` and `corpus get` alike)."""
    return f"download the file yourself and save it as {shlex.quote(str(target))}"


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


# The built-in corpora whose text differs with the Python that builds them.
PER_PYTHON = {"pystdlib"}
BUILTINS = {  # built-in corpus name -> its builder(size)
    "pystdlib": python_stdlib_text,
    "recall": recall_text,  # the recall task of use/memory.py: seed 0, the same on every machine
}
