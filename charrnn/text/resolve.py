"""What the user named -> Sources to stream: files, folders of text files, "-" for standard
input, pipes, and the names of the catalog.

    resolve(specs) -> Sources -> encoded.encode_corpus -> ids
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from charrnn.defaults import ENCODING
from charrnn.errors import CacheUnwritable, CorpusError
from charrnn.fsutil import expand_home
from charrnn.text.catalog import Progress, fetch, load_catalog
from charrnn.text.decode import text_encoding
from charrnn.text.sources import (
    LeaveOut,
    Source,
    Sources,
    folder_sources,
    read_all,
    refuse_devices,
)

TRAIN_HINT = "to train on a stream, pipe it in and use - to read standard input"


def resolve(
    specs: Sequence[str],
    cache_dir: Path,
    encoding: str = ENCODING,
    stdin: bytes | None = None,
    progress: Progress | None = None,
    stdin_file: tuple[int, int] | None = None,
    leave_out: LeaveOut = None,
    catalog_first: bool = False,
) -> Sources:
    """Find every source: a file, a folder of text files (others are skipped: see sources.sniff),
    "-" for stdin, a named pipe (read once, whole, like stdin), or a catalog name. `stdin_file`:
    (st_dev, st_ino) of the file standard input was redirected from, so that it is not named
    again (in a folder, say). A folder given never reads the folders under it that `leave_out`
    picks (run folders, the cache). A name that is both a path here and a catalog corpus is the
    path, unless `catalog_first` (a resume's saved sources: a name there is the catalog's)."""
    if not specs:
        raise CorpusError("no corpus given; pass a text file, a folder, '-' for stdin, or a name")
    encoding = text_encoding(encoding)
    files, origins, skipped, dangling = [], [], [], []
    for spec in specs:
        found, origin, left_out, nowhere = _resolve_one(
            spec, cache_dir, encoding, stdin, progress, leave_out, catalog_first
        )
        if spec == "-":
            found[0].file_id = stdin_file
        files += found
        skipped += left_out
        dangling += nowhere
        origins.append(origin)
    _refuse_repeats(files)
    return Sources(files, _default_name(specs[0]), origins, encoding, skipped, dangling)


def _refuse_repeats(files: list[Source]) -> None:
    """A CorpusError where one file comes twice (named twice, through a link, or in a folder
    also named): its text twice would weigh it double and put training text in the validation
    split, which is the corpus's end."""
    seen: dict[tuple[int, int], str] = {}
    for src in files:
        if src.path is None:  # in memory: standard input (from a file, it is that file), a pipe
            key = src.file_id
        else:
            try:
                info = src.path.stat()
            except OSError:  # gone since it was found: reading it says so
                continue
            key = (info.st_dev, info.st_ino)
        if key is None:
            continue
        if key in seen:
            also = "" if seen[key] == src.label else f" (as {seen[key]} too)"
            raise CorpusError(
                f"{src.label} is given twice{also}: give each file once (a file read twice would "
                "put its text in both the training and the validation split)"
            )
        seen[key] = src.label


def _resolve_one(
    spec, cache_dir, encoding, stdin, progress, leave_out, catalog_first=False
) -> tuple[list, str, list, list]:
    """The files of one spec, its origin, and the files of a folder skipped as not text and its
    links that lead nowhere."""
    if spec == "-":
        if stdin is None:
            raise CorpusError("'-' means standard input, but none was given")
        return [Source("standard input", data=stdin)], "-", [], []
    saved_name = catalog_first and not os.path.isabs(spec)  # a saved file is an absolute path
    if saved_name and (found := _from_catalog(spec, cache_dir, progress)):
        return found
    path = Path(expand_home(spec))
    mode = _mode(expand_home(spec))  # as typed: see _mode
    if stat.S_ISDIR(mode):
        if leave_out and leave_out(path):  # as inside a folder: its files are not text
            raise CorpusError(
                f"{path} is one of charrnn's own folders (a run's, or the cache), not text to "
                "train on: give the file or folder that holds your text"
            )
        text, skipped, dangling = folder_sources(path, encoding, leave_out)
        return text, str(path.resolve()), skipped, dangling
    if mode:
        refuse_devices(str(path), mode, "a file, a folder or a pipe", TRAIN_HINT)
    if stat.S_ISREG(mode):
        return [Source(str(path), path=path)], str(path.resolve()), [], []
    if stat.S_ISFIFO(mode):  # a pipe or <(...) can be read only once: read it whole, as stdin
        data, _ = read_all(Source(str(path), path=path).chunks(), str(path), encoding, text=False)
        return [Source(str(path), data=data)], os.path.abspath(path), [], []
    if not mode and path.is_symlink():  # meant, and leading nowhere: never a corpus in its place
        raise CorpusError(f"{path} is a link to nothing ({os.readlink(path)}): give its text")
    if found := _from_catalog(spec, cache_dir, progress):
        return found
    raise CorpusError(
        f"no such file, folder or corpus: {spec}; `charrnn corpus list` shows the named corpora"
    )


def _from_catalog(spec, cache_dir, progress) -> tuple[list, str, list, list] | None:
    """The catalog's corpus named `spec`, fetched into the cache if need be; None where the
    catalog has no such name (it is read only here: a file given never needs it)."""
    catalog = load_catalog()
    if spec not in catalog:
        return None
    try:
        target = fetch(catalog[spec], cache_dir, progress)
    except CacheUnwritable as e:
        # The cache only saves fetching it again: fetched for this run alone and held in memory
        # (the encoding's own fallback notes why the cache is not kept).
        try:
            with tempfile.TemporaryDirectory(
                prefix="charrnn-corpus-", ignore_cleanup_errors=True
            ) as tmp:
                data = fetch(catalog[spec], Path(tmp), progress).read_bytes()
        except CorpusError:  # nowhere to write, or a download that failed: the cache's error
            raise e from None  # says what to do (a download's would name the temporary folder)
        return [Source(spec, data=data)], spec, [], []
    return [Source(str(target), path=target)], spec, [], []


def _mode(path: str) -> int:
    """What `path`, as typed, is (stat's st_mode, following links), or 0 where nothing is; a
    file named as a folder (`ok.txt/`, `ok.txt/.`, which Path would read as `ok.txt`, or
    `ok.txt/x`) is an error, as the system has it."""
    try:
        return os.stat(path).st_mode
    except NotADirectoryError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror}") from None
    except (FileNotFoundError, ValueError):  # ValueError: a NUL in the name
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
