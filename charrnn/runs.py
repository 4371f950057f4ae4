"""Run folders: `BASE/NAME/{best.pt, last.pt, metrics.jsonl}`, and finding them again.

The base folder is whatever the caller passes (the CLI's --checkpoint-dir); nothing here reads the
environment or the working directory on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from charrnn.errors import RunError
from charrnn.fsutil import atomic_write

CHECKPOINT_SUFFIX = ".pt"


@dataclass(frozen=True)
class RunDir:
    """One training run's folder."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

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
        return self.best.is_file() or self.last.is_file()

    def updated(self) -> float:
        """When a checkpoint in it was last written (0 if none)."""
        times = [p.stat().st_mtime for p in (self.best, self.last) if p.is_file()]
        return max(times, default=0.0)

    def append_metrics(self, record: dict) -> None:
        try:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise RunError(f"cannot write {self.metrics}: {e.strerror or e}") from None

    def rewrite_metrics(self, records: list[dict]) -> None:
        """Make metrics.jsonl match a checkpoint's own history (used on resume)."""
        lines = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
        try:
            atomic_write(self.metrics, lambda f: f.write(lines))
        except OSError as e:
            raise RunError(f"cannot write {self.metrics}: {e.strerror or e}") from None


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


def plan_run(base: Path, name: str, force: bool = False) -> RunDir:
    """The folder for a new run, checked but not yet made: refuses to reuse one holding
    checkpoints unless `force` (so a failed start never leaves an empty folder behind)."""
    run = RunDir(Path(base) / name)
    if Path(base).exists() and not Path(base).is_dir():
        raise RunError(f"the checkpoint folder {base} is a file; pass another --checkpoint-dir")
    if run.path.exists() and not run.path.is_dir():
        raise RunError(f"{run.path} exists and is not a folder; choose another --name")
    if run.has_checkpoint() and not force:
        raise RunError(
            f"run {name!r} already exists in {run.path}; continue it with --resume {name}, "
            "start another with --name NEW, or replace it with --force"
        )
    return run


def find_run(spec: str | Path, base: Path) -> RunDir:
    """A run given by folder path or by name under `base`; it must hold a checkpoint."""
    for candidate in (Path(spec), Path(base) / str(spec)):
        if candidate.is_dir() and RunDir(candidate).has_checkpoint():
            return RunDir(candidate)
    raise RunError(
        f"no run {str(spec)!r} (looked for {Path(spec)} and {Path(base) / str(spec)}); "
        "`charrnn runs` lists the runs"
    )


def list_runs(base: Path) -> list[RunDir]:
    """Runs under `base` holding a checkpoint, most recently updated first."""
    base = Path(base)
    if not base.is_dir():
        return []
    runs = [RunDir(p) for p in base.iterdir() if p.is_dir() and RunDir(p).has_checkpoint()]
    return sorted(runs, key=lambda r: r.updated(), reverse=True)


def resolve_checkpoint(spec: str | Path | None, base: Path) -> Path:
    """The checkpoint file meant by `spec`: a file, a run folder or name (its best.pt), or None
    for the most recently updated run under `base`."""
    if spec is None:
        runs = list_runs(base)
        if not runs:
            raise RunError(
                f"no trained runs in {base}; train one with `charrnn train CORPUS`, "
                "or pass --checkpoint"
            )
        return _pick(runs[0])
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir() or (Path(base) / str(spec)).is_dir():
        return _pick(find_run(spec, base))
    raise RunError(f"no checkpoint file or run folder at {spec}")


def _pick(run: RunDir) -> Path:
    return run.best if run.best.is_file() else run.last
