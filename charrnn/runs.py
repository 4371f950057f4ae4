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
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from charrnn.errors import CharRNNError, RunError
from charrnn.fsutil import atomic_write

CHECKPOINT_SUFFIX = ".pt"


@dataclass(frozen=True)
class RunDir:
    """One training run's folder."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))  # a str will do too

    @property
    def name(self) -> str:
        """The folder's name, or the path as given where it has none (`.`, `..`)."""
        return self.path.name or str(self.path)

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
            raise RunError(f"cannot create the run folder {self.path}: {e.strerror}") from None
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
        try:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise RunError(f"cannot write {self.metrics}: {e.strerror or e}") from None

    def rewrite_metrics(self, records: list[dict]) -> None:
        """Make metrics.jsonl match a checkpoint's own history (used on resume and rollback)."""
        lines = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
        try:
            atomic_write(self.metrics, lambda f: f.write(lines))
        except OSError as e:
            raise RunError(f"cannot write {self.metrics}: {e.strerror or e}") from None


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


def safe_name(name: str) -> str:
    """A run name that is one plain folder name."""
    cleaned = re.sub(r"[^\w.-]+", "-", name).strip(".-")
    return cleaned or "run"


def plan_run(base: Path, name: str, force: bool = False, init_from: Path | None = None) -> RunDir:
    """The folder for a new run, checked but not yet made: refuses to reuse one holding
    checkpoints unless `force` (so a failed start never leaves an empty folder behind), and
    one holding `init_from`, the checkpoint the run starts from, even with `force`."""
    run = RunDir(Path(base) / name)
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


def _run_folder(spec: str, base: Path) -> RunDir:
    """The folder `spec` names (a path, or a run name under `base`), which must be a folder."""
    if is_path(spec):
        run = RunDir(Path(spec).expanduser())
        if _kind(run.path) != "dir":
            raise RunError(f"no run folder at {spec}; `charrnn runs` lists the runs")
        return run
    run = RunDir(Path(base) / spec)
    if _kind(run.path) != "dir":
        here = f"; to use {spec} in this folder, write ./{spec}" if os.path.lexists(spec) else ""
        raise RunError(f"no run {spec!r} in {base}{here}; `charrnn runs` lists the runs")
    return run


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
        raise RunError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError:  # a NUL byte, or characters the file system cannot encode
        raise RunError(f"{path!r} is not a possible path") from None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


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
                    loaded[path.name] = checkpoint.load(path)
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
            raise RunError(f"no checkpoint file or run folder at {spec}")
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
