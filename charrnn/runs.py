"""Run folders: `BASE/NAME/{best.pt, last.pt, metrics.jsonl}`, and finding them again.

metrics.jsonl (and a checkpoint's `metrics`) holds two kinds of record, one JSON object a line:
evaluations (`"kind": "eval"`, with val_loss and val_bpc; lines written before training records
existed have no kind and are all evaluations) and training records (`"kind": "train"`: the mean
training loss over the steps since the previous one). `is_evaluation` tells them apart.

The base folder is whatever the caller passes (the CLI's --checkpoint-dir); nothing here reads the
environment or the working directory on its own.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shlex
import stat
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from charrnn import jsonl
from charrnn.errors import CharRNNError, RunError
from charrnn.fsutil import atomic_write, cannot_write

CHECKPOINT_SUFFIX = ".pt"
_ELSEWHERE = "train with another --checkpoint-dir"  # where a run's files can go instead


@dataclass(frozen=True)
class RunDir:
    """One training run's folder."""

    path: Path
    # How the user named the run (a name under the checkpoint folder, or a folder path), so that
    # advice names it the same way; None: by its folder's name.
    given: str | None = field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))  # a str will do too

    @property
    def name(self) -> str:
        """The folder's name, or the path as given where it has none (`.`, `..`)."""
        return self.path.name or str(self.path)

    @property
    def ref(self) -> str:
        """The run as a `--resume` or `-c` value, for advice: as it was given, else its name."""
        return self.given if self.given is not None else self.name

    def file_ref(self, file: str) -> str:
        """One of its files (`best.pt`) as a `--resume` or `-c` value: a path, in the folder as the
        user gave it (a run given by name: under the checkpoint folder it was looked up in)."""
        if self.given is not None and is_path(self.given):
            return os.path.join(self.given, file)
        return str(self.path / file)

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @contextlib.contextmanager
    def session(self, new: bool = False, clear: bool = False) -> Iterator[RunDir]:
        """Hold the run's lock while training in it: a second trainer of the same run is refused.

        `new`: the run must hold no checkpoint (re-checked under the lock); `clear`: remove a
        previous run's files first (--force). Left-over temp files of a killed writer are removed.
        The lock is an flock, so the kernel releases it when the process dies, even by SIGKILL.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunError(
                cannot_write(self.path, e, _ELSEWHERE, doing="create the run folder")
            ) from None
        try:
            _lock(fd, self)
            if clear:
                for stale in (self.best, self.last, self.metrics):
                    stale.unlink(missing_ok=True)
            elif new and self.has_checkpoint():
                raise RunError(f"run {self.name!r} was just created by another process")
            for tmp in self.path.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            yield self
        finally:
            os.close(fd)  # closing releases the lock

    def has_checkpoint(self) -> bool:
        """best.pt or last.pt is a file here (RunError if the folder cannot be read)."""
        return _kind(self.best) == "file" or _kind(self.last) == "file"

    def updated(self) -> float:
        """When a checkpoint in it was last written (0 if none, or if it cannot be read)."""
        times = []
        for path in (self.best, self.last):
            with contextlib.suppress(OSError, ValueError):
                times.append(path.stat().st_mtime)
        return max(times, default=0.0)

    def append_metrics(self, record: dict) -> None:
        """Add one record to metrics.jsonl; a write that fails leaves the file as it was (a line
        cut short by a full disk would join the next one)."""
        line = memoryview((jsonl.dumps(record) + "\n").encode("utf-8"))
        try:
            with open(self.metrics, "ab", buffering=0) as f:  # unbuffered: every byte accounted
                size = f.seek(0, os.SEEK_END)
                try:
                    while line:
                        line = line[f.write(line) :]
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(f.fileno(), size)
                    raise
        except OSError as e:
            raise RunError(cannot_write(self.metrics, e, _ELSEWHERE)) from None

    def rewrite_metrics(self, records: list[dict]) -> None:
        """Make metrics.jsonl match a checkpoint's own history (used on resume and rollback)."""
        lines = "".join(jsonl.dumps(r) + "\n" for r in records).encode("utf-8")
        try:
            atomic_write(self.metrics, lambda f: f.write(lines))
        except OSError as e:
            raise RunError(cannot_write(self.metrics, e, _ELSEWHERE)) from None


def is_evaluation(record) -> bool:
    """A metrics record of an evaluation (not a training record, and not junk from a damaged
    file)."""
    return isinstance(record, dict) and record.get("kind", "eval") == "eval"


def _lock(fd: int, run: RunDir) -> None:
    if fcntl is None:  # Windows: no flock; runs are not protected against a second trainer
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        raise RunError(
            f"run {run.name!r} is being trained by another process (pid {holder}); wait for it "
            "to finish, stop it, or train under another --name"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


NAME_MAX = 255  # bytes in a folder name where the file system does not say (most allow 255)
PLAIN = "letters, digits and _ . -, with no . or - at either end, not ending in .pt"


def name_limit(base: str | os.PathLike) -> int:
    """The most bytes (in the file system's encoding) a folder name under `base` may have, as the
    file system of `base` (or of its nearest existing parent folder) says."""
    for folder in (Path(base).absolute(), *Path(base).absolute().parents):
        try:
            if os.path.isdir(folder):
                limit = os.pathconf(folder, "PC_NAME_MAX")
                return limit if limit and limit > 0 else NAME_MAX
        except (OSError, ValueError, AttributeError):  # no pathconf (Windows), an odd path
            break
    return NAME_MAX


def _size(name: str) -> int:
    """`name`'s length in bytes of the file system's encoding (UTF-8 where it cannot encode it)."""
    try:
        return len(os.fsencode(name))
    except UnicodeError:
        return len(name.encode("utf-8", errors="surrogatepass"))


def _plain_char(ch: str) -> bool:
    """A character a plain run name may hold: a letter or digit (or an accent on one), _ . -."""
    if not (ch.isalnum() or ch in "_.-" or unicodedata.category(ch).startswith("M")):
        return False
    try:
        os.fsencode(ch)
    except UnicodeError:
        return False
    return True


def _plain(name: str) -> str:
    """`name` with runs of other characters as '-', no . or - at either end, a final .pt as -pt
    (`-c NAME.pt` would read as a file), and never empty."""
    marked = "".join(c if _plain_char(c) else "\0" for c in name)
    cleaned = re.sub("\0+", "-", marked).strip(".-")
    if cleaned.endswith(CHECKPOINT_SUFFIX):
        cleaned = cleaned[: -len(CHECKPOINT_SUFFIX)] + "-" + CHECKPOINT_SUFFIX[1:]
    return cleaned or "run"


def safe_name(name: str, base: str | os.PathLike | None = None) -> str:
    """The run name charrnn makes of `name`: one plain folder name (see PLAIN) that `-c`,
    `--resume` and `runs` all read back as this run, cut to what the file system of `base` allows
    in a folder name (NAME_MAX bytes without a `base`). A plain name that fits is kept as it is."""
    cleaned = _plain(name)
    limit = name_limit(base) if base is not None else NAME_MAX
    if _size(cleaned) > limit:  # cut at a character's end: a partial one is dropped
        cut = os.fsencode(cleaned)[:limit].decode(sys.getfilesystemencoding(), errors="ignore")
        cleaned = _plain(cut)  # never longer: a final .pt becomes -pt, the same length
    return cleaned


def name_problem(name: str, base: str | os.PathLike) -> str | None:
    """Why `name`, given for a new run under `base`, cannot be that run's folder name as it is,
    and the name to use instead (one line); None where it can."""
    usable = safe_name(name, base)
    if usable == name:
        return None
    shown = repr(name) if len(name) <= 40 else f"{name[:30]!r}... ({len(name):,} characters)"
    why = []
    if _plain(name) != name:
        why.append(f"is not a plain folder name ({PLAIN})")
    if _size(_plain(name)) > (limit := name_limit(base)):
        why.append(
            f"is {_size(name):,} bytes long, and the file system allows {limit:,} in a folder name"
        )
    return f"{shown} {' and '.join(why)}; use {usable!r}"


def plan_run(base: Path, name: str, force: bool = False, init_from: Path | None = None) -> RunDir:
    """The folder for a new run, checked but not yet made: refuses a `name` that is not one
    `safe_name` would make (see `name_problem`), a folder holding checkpoints unless `force` (so a
    failed start never leaves an empty folder behind), and one holding `init_from`, the checkpoint
    the run starts from, even with `force`."""
    if (problem := name_problem(name, base)) is not None:
        raise RunError(f"the run name {problem}")
    run = RunDir(Path(base) / name, given=name)
    check_not_replacing(init_from, run)
    if _kind(Path(base)) not in (None, "dir"):
        raise RunError(f"the checkpoint folder {base} is a file; pass another --checkpoint-dir")
    if _kind(run.path) not in (None, "dir"):
        raise RunError(f"{run.path} exists and is not a folder; choose another --name")
    if run.has_checkpoint() and not force:
        raise RunError(
            f"run {name!r} already exists in {run.path}; continue it with --resume {name}, "
            "start another with --name NEW, or replace it with --force"
        )
    return run


def check_not_replacing(init_from: Path | None, run: RunDir) -> None:
    """A new run must not replace the run folder of the checkpoint it starts from."""
    if init_from is not None and Path(init_from).resolve().is_relative_to(run.path.resolve()):
        raise RunError(
            f"the model to start from ({init_from}) is in the run {run.path.name!r} that "
            f"would be replaced; give the new run another --name"
        )


def is_path(spec: str) -> bool:
    """How `-c` and `--resume` read a value: a path (to a file or run folder, from the current
    folder) if it holds a folder separator, is `.` or `..`, or ends in `.pt`; otherwise the name of
    a run under the checkpoint folder, whatever is in the current folder."""
    separators = {os.sep, os.altsep} - {None}
    return (
        any(s in spec for s in separators)
        or spec in (".", "..")
        or spec.endswith(CHECKPOINT_SUFFIX)
    )


def find_run(spec: str | Path, base: Path) -> RunDir:
    """A run given by folder path or by name under `base` (see `is_path`); it must hold a
    checkpoint."""
    run = _run_folder(str(spec), base)
    if not run.has_checkpoint():
        raise RunError(f"the run folder {spec} holds no checkpoint; `charrnn runs` lists the runs")
    return run


RESUMABLE_FILES = ("last.pt", "best.pt")


def find_resume(spec: str | Path, base: Path) -> tuple[RunDir, Path | None]:
    """The run `--resume` continues, and the checkpoint file to continue from (None: the run's
    own choice, see start.resume_run): a run name or folder as for `find_run`, or a path to a
    run's last.pt or best.pt (a value `is_path` reads as a path), which continues in its folder."""
    spec = str(spec)
    if is_path(spec):
        path = Path(spec).expanduser()
        kind = _kind(path)
        if kind is None:
            raise RunError(
                f"no run folder or checkpoint file at {spec}{_meant(spec, base)}; "
                "`charrnn runs` lists the runs"
            )
        if kind != "dir":
            if path.name not in RESUMABLE_FILES:
                init = f"; to start a new run from its weights: --init-from {shlex.quote(spec)}"
                raise RunError(
                    f"{spec} is not a run's last.pt or best.pt: --resume continues a run, given "
                    "by its name or folder or one of those files"
                    + (init if path.name.endswith(CHECKPOINT_SUFFIX) else "")
                )
            folder = os.path.dirname(spec) or "."  # as given, and read as a path again
            given = folder if is_path(folder) else f".{os.sep}{folder}"
            return RunDir(path.parent, given=given), path
    return find_run(spec, base), None


def _run_folder(spec: str, base: Path) -> RunDir:
    """The folder `spec` names (a path, or a run name under `base`), which must be a folder."""
    if is_path(spec):
        run = RunDir(Path(spec).expanduser(), given=spec)
        if _kind(run.path) != "dir":
            raise RunError(
                f"no run folder at {spec}{_meant(spec, base)}; `charrnn runs` lists the runs"
            )
        return run
    run = RunDir(Path(base) / spec, given=spec)
    if _kind(run.path) != "dir":
        here = f"; to use {spec} in this folder, write ./{spec}" if os.path.lexists(spec) else ""
        raise RunError(
            f"no run {spec!r} in {base}{here}{_meant(spec, base)}; `charrnn runs` lists the runs"
        )
    return run


def _meant(spec: str, base: Path) -> str:
    """For a `spec` that names nothing, a hint at the run under `base` it may mean: the one a run
    called `spec` was named (`safe_name`: how names were made before a name that is not plain
    was refused), or, for a value read as a path, the run named just so ('x.pt'); '' if none."""
    plain = {os.sep, os.altsep} - {None}
    names = [safe_name(spec, base)]
    if is_path(spec) and spec not in (".", "..") and not any(s in spec for s in plain):
        names.insert(0, spec)
    for name in names:
        if name == spec and not is_path(spec):
            continue  # what was looked for already
        with contextlib.suppress(RunError):
            if _kind(Path(base) / name) == "dir":
                use = str(Path(base) / name) if is_path(name) else name
                return f"; did you mean the run {name!r} in {base}? give {shlex.quote(use)}"
    return ""


def _kind(path: Path) -> str | None:
    """'dir', 'file' or 'other' for what is at `path`, None for nothing; RunError if that cannot
    be told (no permission, a broken link, a name the system refuses)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise RunError(f"{path} is a broken link") from None
        return None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise RunError(f"cannot read {path}: {_too_long(Path(path))}") from None
        raise RunError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError:  # a NUL byte, or characters the file system cannot encode
        raise RunError(f"{path!r} is not a possible path") from None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _too_long(path: Path) -> str:
    """Why the system calls `path` too long: a name in it over the file system's limit, or the
    whole path over the system's."""
    limit = name_limit(path.parent)
    longest = max((_size(part) for part in path.parts), default=0)
    if longest > limit:
        return f"a name in it is {longest:,} bytes long, and the file system allows {limit:,}"
    return "the path is longer than the system allows"


def scan(base: Path) -> list[RunDir]:
    """The run folders under `base`, most recently updated first: folders holding best.pt or
    last.pt, and entries that cannot be read (a folder without permission, a broken link), which
    `inspect` then reports as damaged. Plain files beside them are not runs."""
    try:
        names = sorted(os.listdir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise RunError(f"cannot read the checkpoint folder {base}: {e.strerror or e}") from None
    found = []
    for name in names:
        run = RunDir(Path(base) / name)
        try:
            if _kind(run.path) == "dir" and (_kind(run.best) or _kind(run.last)):
                found.append(run)
        except RunError:
            found.append(run)
    return sorted(found, key=lambda r: r.updated(), reverse=True)


def list_runs(base: Path) -> list[RunInfo]:
    """What is known of every run under `base` (see `scan`), most recently updated first."""
    return [inspect(run) for run in scan(base)]


@dataclass(frozen=True)
class RunInfo:
    """One run as its checkpoints tell it; `problem` says why a file of it cannot be read."""

    run: RunDir
    step: int | None = None  # the trainer step of its newest checkpoint (last.pt)
    elapsed: float | None = None  # seconds of training, across resumes
    metrics: tuple[dict, ...] = ()  # its evaluations, from that checkpoint
    has_best: bool = False  # best.pt is there and loads: it trained to one evaluation at least
    problem: str | None = None
    cell: str | None = None  # "lstm", "gru" or "rnn"
    shape: str | None = None  # layers x width, e.g. "1x512"
    origin: str | None = None  # the run it was fine-tuned from (train --init-from), if any
    origin_step: int | None = None  # ... at that run's step
    origin_checkpoint: str | None = None  # ... from this file (its absolute path then)

    def summary(self) -> dict:
        """Plain values (None where unknown), as `charrnn runs --json` writes them."""
        last = self.metrics[-1] if self.metrics else {}
        scores = [_number(r.get("val_bpc"), float) for r in self.metrics]
        return {
            "run": self.run.name,
            "folder": str(self.run.path),
            "status": self.status,
            "cell": self.cell,
            "shape": self.shape,
            "from": self.origin,
            "from_step": self.origin_step,
            "from_checkpoint": self.origin_checkpoint,
            "step": self.step,
            "train_seconds": self.elapsed,
            "evaluations": len(self.metrics),
            "best_val_bpc": min((v for v in scores if v is not None), default=None),
            "last_val_bpc": _number(last.get("val_bpc"), float),
            "last_eval_step": _number(last.get("step"), int),
            "last_eval_epoch": _number(last.get("epoch"), float),
            "note": self.note,
        }

    @property
    def status(self) -> str:
        """'damaged' (a file cannot be read), 'untrained' (no evaluation yet) or 'ok'."""
        return "damaged" if self.problem else "ok" if self.has_best else "untrained"

    @property
    def note(self) -> str:
        """Why the run is not 'ok', and what to do; empty when it is."""
        if self.problem:
            return f"damaged: {self.problem}"
        if not self.has_best:
            at = f" (step {self.step})" if self.step is not None else ""
            return (
                f"not trained to its first evaluation yet{at}; continue it with "
                f"`charrnn train --resume {self.run.name}`"
            )
        return ""


def inspect(run: RunDir) -> RunInfo:
    """Read a run's checkpoints (mmap: the weights are not read) and what they say."""
    from charrnn import checkpoint  # torch: only where a checkpoint is opened

    loaded, problems = {}, []
    try:
        if _kind(run.path) != "dir":
            raise RunError(f"{run.path} is not a folder")
        for path in (run.last, run.best):
            kind = _kind(path)
            if kind is not None and kind != "file":
                raise RunError(f"{path} is not a file")
            if kind == "file":
                try:
                    loaded[path.name] = checkpoint.load(path, verify=False)  # values only
                except CharRNNError as e:
                    problems.append(str(e))
    except CharRNNError as e:
        problems.append(str(e))
    newest = loaded.get("last.pt") or loaded.get("best.pt")
    if newest is None:
        return RunInfo(run, problem="; ".join(problems) or f"{run.path} holds no checkpoint")
    trainer = newest["trainer"] if isinstance(newest["trainer"], dict) else {}
    records = newest["metrics"] if isinstance(newest["metrics"], list) else []
    config = newest["model_config"] if isinstance(newest["model_config"], dict) else {}
    layers, width = _number(config.get("num_layers"), int), _number(config.get("hidden_size"), int)
    origin = newest.get("origin") if isinstance(newest.get("origin"), dict) else {}
    base = origin.get("checkpoint")
    return RunInfo(
        run,
        step=_number(trainer.get("step"), int),
        elapsed=_number(trainer.get("elapsed"), float),
        metrics=tuple(r for r in records if is_evaluation(r)),
        has_best="best.pt" in loaded,
        problem="; ".join(problems) or None,
        cell=config.get("cell") if isinstance(config.get("cell"), str) else None,
        shape=f"{layers}x{width}" if layers and width else None,
        origin=origin.get("run") if isinstance(origin.get("run"), str) else None,
        origin_step=_number(origin.get("step"), int),
        origin_checkpoint=base if isinstance(base, str) else None,
    )


def _number(value, kind):
    """`value` as an int or float, or None if it is not a number (a damaged or foreign file)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return kind(value) if math.isfinite(value) else None


def resolve_checkpoint(spec: str | Path | None, base: Path, note=None) -> Path:
    """The checkpoint file meant by `spec`: a path (see `is_path`) to a file, or to a run folder
    (its best.pt); a run name (its best.pt); or None for the best.pt of the most recently updated
    run under `base` that has trained to its first evaluation. Newer runs that cannot be used are
    skipped, and `note` (if given) is called with one line that says so."""
    if spec is None:
        return _latest(base, note)
    spec = str(spec)
    if is_path(spec):
        path = Path(spec).expanduser()
        kind = _kind(path)
        if kind == "dir":
            return _pick(RunDir(path), spec)
        if kind is None:
            raise RunError(f"no checkpoint file or run folder at {spec}{_meant(spec, base)}")
        return path  # a file: checkpoint.load says what is wrong with it, if anything
    return _pick(_run_folder(spec, base), spec)


def _latest(base: Path, note) -> Path:
    skipped = []
    for run in scan(base):
        info = inspect(run)
        if info.has_best:
            if skipped and note:
                note(
                    f"Note: using run {run.name!r}, skipping newer runs that cannot be sampled "
                    f"(`charrnn runs` lists them): {'; '.join(skipped)}"
                )
            return run.best
        skipped.append(f"{run.name!r}: {info.note}")
    if not skipped:
        raise RunError(
            f"no trained runs in {base}; train one with `charrnn train CORPUS`, "
            "or pass --checkpoint"
        )
    raise RunError(f"no trained runs in {base}: {'; '.join(skipped)}")


def _pick(run: RunDir, spec: str) -> Path:
    """A run's best.pt; a run without one has not trained to its first evaluation and is refused
    (its last.pt is at most a few steps in: sampling it would be noise), unless named as a file."""
    if _kind(run.best) is not None:
        return run.best
    if _kind(run.last) is not None:
        raise RunError(
            f"run {spec} has not trained to its first evaluation yet, so it has no best.pt; "
            f"continue it with `charrnn train --resume {spec}`, or give the file {run.last} "
            "instead of the run to use its untrained weights as they are"
        )
    raise RunError(f"no checkpoint in the run folder {spec}; `charrnn runs` lists the runs")
