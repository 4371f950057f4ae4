"""Opening a run, new, resumed or fine-tuned, from what `charrnn train` was asked: the one call the
CLI makes. A new run's folder is checked before it is made; the run's folder stays locked (by
rank 0) while it trains.

    with open_run(RunRequest(checkpoint_dir, corpus=("a.txt",)), TextReader(cache)) as opened:
        for event in opened.trainer.run(): ...
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from charrnn import runs
from charrnn.defaults import CELL, ENCODING, SIZE
from charrnn.errors import (
    ConfigError,
    CorpusError,
    RunError,
    VocabError,
    require_callable,
    require_path,
    require_type,
)
from charrnn.text.catalog import Progress
from charrnn.text.encoded import EncodedCorpus, encode_corpus
from charrnn.text.encoded import Progress as PhaseProgress
from charrnn.text.resolve import resolve
from charrnn.text.vocab import known_form, locate_unknown_as_typed, typed_line_breaks
from charrnn.train.distributed import SINGLE, Dist
from charrnn.train.resume import resume
from charrnn.train.start import Opened, start


@dataclass
class RunRequest:
    """What to open: a new run on `corpus` (named `name`, else after the corpus), the run
    `resume` names, or a new run from the trained model `init_from`."""

    checkpoint_dir: Path  # where runs are
    corpus: tuple[str, ...] = ()  # files, folders, '-', catalog names; a resume: () = its own
    name: str | None = None
    resume: str | None = None  # a run name or folder, or a run's last.pt or best.pt
    init_from: str | None = None  # a run or checkpoint file to fine-tune
    replace: bool = False  # replace a run of the same name
    size: str = SIZE
    # With init_from, the base's cell is kept: a cell given other than the default must be it
    # (the default cannot be told from one not given)
    cell: str = CELL
    model: dict = field(default_factory=dict)  # ModelConfig fields given
    train: dict = field(default_factory=dict)  # TrainConfig fields given (a resume: RESUMABLE's)
    encoding: str = ENCODING
    prime: str = ""  # text that samples during training continue: the model must know its chars
    # When the command began, by time.perf_counter: a time budget counts from there, so that
    # reading the text and building the model are inside it (None: from the first step's run).
    started: float | None = None

    def __post_init__(self):
        # A library caller's one file or folder is one corpus, not one a character ("a.txt")
        corpus = self.corpus
        corpus = (corpus,) if isinstance(corpus, str | os.PathLike) else corpus
        if not isinstance(corpus, list | tuple) or not all(
            isinstance(c, str | os.PathLike) for c in corpus
        ):
            raise ConfigError(f"corpus must be a path or a tuple of paths, not {corpus!r}")
        self.corpus = tuple(os.fspath(c) for c in corpus)
        self.checkpoint_dir = Path(require_path("checkpoint_dir", self.checkpoint_dir))
        require_type("name", self.name, str, "a run name", none=True)
        if self.name == "":
            raise ConfigError("name must not be empty: leave it None for a name after the corpus")
        for key in ("resume", "init_from"):
            if (value := getattr(self, key)) is not None:
                setattr(self, key, require_path(key, value, "a run name or path"))
        require_type("replace", self.replace, bool, "True or False")
        for key in ("size", "cell", "encoding", "prime"):
            require_type(key, getattr(self, key), str, "a str")
        for key in ("model", "train"):
            require_type(key, getattr(self, key), dict, "a dict of config fields")
        require_type("started", self.started, numbers.Real, "a time.perf_counter() time", none=True)
        if self.started is not None and not self.started <= time.perf_counter():  # nan: not <=
            raise ConfigError(
                f"started must be a time.perf_counter() time, not later than now: {self.started!r}"
            )
        if self.resume:  # what the run keeps its own of: refused, never dropped unsaid
            fixed = [
                name for name, default in RESUME_KEEPS.items() if getattr(self, name) != default
            ]
            fixed += [f"model[{key!r}]" for key in self.model]
            if fixed:
                raise ConfigError(
                    f"{', '.join(fixed)} cannot be given when resuming a run (it keeps its own): "
                    "leave them out"
                )


# What a resumed run keeps its own of, with the RunRequest default that means "not given"; of
# `train`, a resume takes start.RESUMABLE's fields alone (resume refuses the rest).
RESUME_KEEPS = {
    "name": None,
    "init_from": None,
    "replace": False,
    "size": SIZE,
    "cell": CELL,
    "encoding": ENCODING,
}


@dataclass
class TextReader:
    """How the text is read: the cache of encoded corpora, and the caller's input and displays."""

    cache: Path
    stdin: Callable[[str], bytes] | None = None  # standard input (for '-'), read as (encoding)
    stdin_file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file it was given, if one
    download: Progress | None = None  # progress of a catalog corpus's download
    progress: PhaseProgress | None = None  # progress of the encoding, phase by phase
    note: Callable[[str], None] | None = None  # one line on what was done besides asked

    def __post_init__(self):
        self.cache = Path(require_path("cache", self.cache))
        for key in ("stdin", "download", "progress", "note"):
            require_callable(key, getattr(self, key))
        require_type("stdin_file", self.stdin_file, tuple, "(st_dev, st_ino)", none=True)


@contextlib.contextmanager
def open_run(
    request: RunRequest,
    reader: TextReader,
    device: torch.device | str = "cpu",
    dist: Dist = SINGLE,
    on_open: Callable[[Opened], None] | None = None,
) -> Iterator[Opened]:
    """The run `request` asks for, ready to train, its folder locked until the block ends.
    `on_open` is called with it as soon as it is built and its folder locked (a resumed run's
    lock is taken before its checkpoint is read)."""
    for name, value, kind in (("request", request, RunRequest), ("reader", reader, TextReader)):
        if not isinstance(value, kind):
            raise ConfigError(f"the {name} must be a {kind.__name__}, not {type(value).__name__}")
    require_type("dist", dist, Dist, "a Dist (charrnn.train.distributed)")
    require_callable("on_open", on_open)
    if request.resume:
        run, file = runs.find_resume(request.resume, request.checkpoint_dir)
        with _locked(run, dist):  # no other trainer can move last.pt while it is read
            # the run's saved sources: a name there is a catalog corpus, whatever is here
            saved = not request.corpus
            read = functools.partial(read_corpus, reader=reader, dist=dist, catalog_first=saved)
            opened = resume(
                run,
                read,
                corpus_specs=request.corpus or None,
                train=request.train,
                device=device,
                dist=dist,
                checkpoint_file=file,
                started=request.started,
            )
            _check_prime(opened, request.prime)
            if on_open:
                on_open(opened)
            try:
                yield opened
            finally:
                opened.trainer.released = True
        return
    opened = _start(request, reader, device, dist)
    _check_prime(opened, request.prime)
    with _locked(opened.trainer.run_dir, dist, new=True, replacing=request.replace):
        if on_open:  # under the lock: a second trainer of the run is refused before it says a word
            on_open(opened)
        try:
            yield opened
        finally:
            opened.trainer.released = True


def _start(request: RunRequest, reader: TextReader, device, dist: Dist) -> Opened:
    """A new run, everything checked (the model to start from first) before its folder is made."""
    base_dir, init = request.checkpoint_dir, request.init_from
    # a run's best.pt that is not its last.pt's run is started from, with a note, as readers do
    base = runs.resolve_checkpoint(init, base_dir, reader.note) if init else None
    corpus = read_corpus(request.corpus, request.encoding, reader, dist)
    name = request.name or runs.safe_name(corpus.name, base_dir)  # a name given is checked
    run = runs.plan_run(base_dir, name, request.replace, init_from=base)
    return start(
        corpus,
        run,
        replace=request.replace,
        size=request.size,
        # with a base, a cell given (not the default) must be its own: start says so if not
        cell=request.cell if base is None or request.cell != CELL else None,
        model=request.model,
        train=request.train,
        init_from=base,
        device=device,
        dist=dist,
        started=request.started,
    )


def _locked(run: runs.RunDir, dist: Dist, **kw):
    """Rank 0 owns the run folder (its lock, its files); other ranks only read it."""
    return run.session(**kw) if dist.is_main else contextlib.nullcontext()


def _check_prime(opened: Opened, prime: str) -> None:
    """That the samples during training begin with text the model can read (`prime`): checked
    before anything is trained, or any folder made."""
    # (é typed as one code point where the text has e + U+0301, or the other way, is the same:
    # the samples are primed in the text's form)
    if not set(known_form(prime, opened.trainer.vocab)) <= opened.trainer.vocab.index.keys():
        raise VocabError(
            "--sample-prime has characters the corpus lacks: "
            f"{locate_unknown_as_typed(prime, opened.trainer.vocab)}"
            f"{typed_line_breaks(prime, opened.trainer.vocab)}; leave them out"
        )


def read_corpus(
    specs, encoding: str, reader: TextReader, dist: Dist = SINGLE, catalog_first: bool = False
) -> EncodedCorpus:
    """The corpus as memory-mapped ids, encoded once and then read from the cache (under torchrun
    the first rank of each machine encodes; the others wait, then find it cached). A folder given
    never reads a run folder under it, nor the cache (_not_text)."""
    stdin = reader.stdin(encoding) if "-" in specs and reader.stdin else None
    if stdin is not None and not isinstance(stdin, bytes):  # decoded by the corpus's --encoding
        raise ConfigError(f"stdin must give the bytes of the text, not {type(stdin).__name__}")
    if dist.local_rank != 0:
        dist.barrier()
    sources = resolve(
        list(specs),
        reader.cache,
        encoding,
        stdin,
        reader.download,
        reader.stdin_file,
        leave_out=_not_text(reader.cache),
        catalog_first=catalog_first,
    )
    if sources.skipped and reader.note:
        reader.note(_skipped_note(sources))
    if sources.dangling and reader.note:
        reader.note(_dangling_note(sources.dangling))
    for spec in _shadowing(specs) if reader.note and not catalog_first else ():
        reader.note(
            f"Note: read {spec}, the {'folder' if os.path.isdir(spec) else 'file'} here, not the "
            f"named corpus {spec!r} (`charrnn corpus get {spec}` prints that one's path)"
        )
    corpus = encode_corpus(sources, reader.cache, reader.progress)
    if dist.local_rank == 0:
        dist.barrier()
    if corpus.uncached and reader.note:
        reader.note(f"Note: {corpus.uncached}; encoded the corpus for this run alone")
    if corpus.rebuilt and reader.note:
        reader.note(
            f"Warning: the cached encoding of this corpus was damaged ({corpus.rebuilt}); "
            "encoded it again."
        )
    return corpus


def _shadowing(specs) -> list[str]:
    """The specs that name both a file or folder here and a corpus of the catalog: the file is
    read (resolve), which a user who meant the corpus would not otherwise see."""
    from charrnn.text.catalog import load_catalog

    named = [s for s in specs if s != "-" and os.sep not in s and os.path.exists(s)]
    try:
        catalog = load_catalog() if named else {}
    except CorpusError:  # a catalog that cannot be read names nothing: training files needs none
        return []
    return [s for s in named if s in catalog]


def _not_text(cache: Path) -> Callable[[Path], bool]:
    """Which folders under a corpus folder are charrnn's own, not text to train on: a run's (its
    checkpoints and metrics.jsonl), wherever its runs are kept, and the cache."""
    try:
        cached = os.stat(cache)
    except OSError:  # none yet
        cached = None

    def ours(folder: Path) -> bool:
        try:
            if cached is not None and os.path.samestat(os.stat(folder), cached):
                return True
            return runs.RunDir(folder).has_checkpoint()
        except (OSError, RunError):  # unreadable: reading it says so
            return False

    return ours


def _dangling_note(links: list[str]) -> str:
    """One line for the links of folders that lead nowhere: their text, if meant, is missing."""
    n, names = len(links), ", ".join(links[:5])
    more = f" and {n - 5:,} more" if n > 5 else ""
    return f"Note: skipped {n:,} link{'s' * (n > 1)} to nothing: {names}{more}"


def _skipped_note(sources) -> str:
    """One line for the files of folders left out as not text, as grep and git skip them."""
    n, names = len(sources.skipped), ", ".join(sources.skipped[:5])
    more = f" and {n - 5:,} more" if n > 5 else ""
    return (
        f"Note: skipped {n:,} file{'s' * (n > 1)} that {'are' if n > 1 else 'is'} not "
        f"{sources.encoding} text (binary, or another encoding): {names}{more}"
    )
