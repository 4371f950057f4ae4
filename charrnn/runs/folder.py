"""One run's folder, `BASE/NAME/{best.pt, last.pt, metrics.jsonl}`: its lock, its metrics (training
and evaluation records: docs/checkpoint-format.md) and its checkpoints."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from charrnn import jsonl
from charrnn.defaults import CHECKPOINT_DIR
from charrnn.errors import CharRNNError, RunError
from charrnn.fsutil import atomic_write, cannot_write, probe_writable
from charrnn.runs.names import is_path, too_long

# What tells two runs' first records apart (records_differ): a second run of the same text and
# seed has the same losses but not the same elapsed time and (under a time budget) rate.
RECORD_KEYS = ("step", "elapsed", "lr", "train_loss", "val_loss")
_ELSEWHERE = "train with another --checkpoint-dir"  # where a run's files can go instead
_COPY = (
    "copy the run folder where you can write (`cp -r RUN COPY && chmod -R u+w COPY`) and resume "
    "the copy (--resume COPY)"
)


def _remove(files: list[Path], doing: str) -> None:
    """Unlink `files` where they exist; a RunError (one line, with advice) where that is refused."""
    for file in files:
        try:
            file.unlink(missing_ok=True)
        except OSError as e:
            raise RunError(cannot_write(file.parent, e, _ELSEWHERE, doing=doing)) from None


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
        """The run as a `--resume` or `-c` value, for advice: a folder as it was given; a run by
        name, its name where it is in the default checkpoint folder, else its folder (a name
        alone would be looked up where it is not, unless the user repeats --checkpoint-dir)."""
        if self.given is not None and is_path(self.given):
            return self.given
        if self.path.parent == Path(CHECKPOINT_DIR) or not self.path.name:
            return self.given if self.given is not None else self.name
        folder = str(self.path)
        return folder if is_path(folder) else os.path.join(".", folder)

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
    def session(self, new: bool = False, replacing: bool = False) -> Iterator[RunDir]:
        """Hold the run's lock while training in it: a second trainer of the same run is refused.

        `new`: the run must hold no checkpoint (re-checked under the lock) unless `replacing` a
        previous run's (--force: the trainer removes them, remove_run_files, as it begins to
        write). Left-over temp files of a killed writer are removed.
        The lock is an flock, so the kernel releases it when the process dies, even by SIGKILL.
        """
        created = not self.path.is_dir()  # a new run's folder: not left behind empty
        doing = "create the run folder" if created else "write in the run folder"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            lock = self.path / ".lock"
            if e.errno in (errno.EACCES, errno.EPERM) and os.path.lexists(lock):
                # a folder not the user's to write in leaves neither to do: a copy of the run
                copy = "" if new else f"; or, where the run folder is not yours to change, {_COPY}"
                raise RunError(
                    f"cannot open the run's lock file {lock}: {e.strerror}; change its "
                    "permissions, or remove it (it holds no data) while no charrnn trains the "
                    f"run{copy}"
                ) from None
            elsewhere = _ELSEWHERE if new else _COPY  # a resume: the run's files go with it
            raise RunError(cannot_write(self.path, e, elsewhere, doing=doing)) from None
        locked = False
        try:
            _lock(fd, self)
            locked = True
            try:  # who trains it, for a second trainer's refusal; a full disk stops it here
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            except OSError as e:
                elsewhere = _ELSEWHERE if new else _COPY
                raise RunError(cannot_write(self.path / ".lock", e, elsewhere)) from None
            if new and not replacing and self.has_checkpoint():
                raise RunError(
                    f"run {self.name!r} was just created by another process, which trains it "
                    "now; wait for it to finish, stop it, or train under another --name"
                )
            _remove(list(self.path.glob(".*.tmp")), "remove left-over files in")
            if not new:  # a resume: a folder it cannot write stops it now, not at its first write
                self._check_writable()
            yield self
        finally:
            # Nothing written (a start that went no further): no folder of a lock alone (a
            # replaced run's files removed, none written since); never another trainer's folder
            if locked and (created or replacing):
                with contextlib.suppress(OSError):
                    if os.listdir(self.path) == [".lock"]:
                        os.unlink(self.path / ".lock")
                        os.rmdir(self.path)
            os.close(fd)  # closing releases the lock

    def _check_writable(self) -> None:
        """A RunError, with a resume's advice, where the run's folder or metrics.jsonl cannot be
        written (a folder of mode 555, files of 444, a read-only disk whose lock file opened)."""
        try:
            probe_writable(self.path)
        except OSError as e:
            raise RunError(
                cannot_write(self.path, e, _COPY, doing="write in the run folder")
            ) from None
        if os.path.isfile(self.metrics):
            try:
                open(self.metrics, "ab").close()  # appended to as it trains: nothing written now
            except OSError as e:
                raise RunError(cannot_write(self.metrics, e, _COPY)) from None

    def trainer(self) -> int | None:
        """The process id of a `charrnn train` training in this run now (0 where it has not
        written it yet), or None: whether another process holds the run's lock. The probe holds
        a shared lock for an instant, which a trainer starting in that instant waits out."""
        if fcntl is None:  # Windows: runs are not locked, so none is known to be training
            return None
        try:
            fd = os.open(self.path / ".lock", os.O_RDONLY)
        except OSError:  # no lock file: never trained here, or a folder that cannot be read
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(pid) if pid.isdigit() else 0
            except OSError:  # a file system without locks
                return None
            return None  # closing releases the probe's lock
        finally:
            os.close(fd)

    def refuse_blocked(self, then: str | None, paths: tuple[Path, ...] | None = None) -> None:
        """A RunError where the place of a checkpoint, or of the record training appends to,
        holds what none can be written to (a folder, a device): said before training, not at its
        first save; `then` is what to do once it is moved ("train", "resume"). `paths`: those
        places to look at (None: all three)."""
        for path in paths or (self.last, self.best, self.metrics):
            if os.path.islink(path) and path.suffix == ".pt":  # the atomic write replaces a link
                continue
            kind = path_kind(path)  # (a RunError where the folder cannot be read)
            if kind not in (None, "file"):
                what = "a folder" if kind == "dir" else "not a file"
                then = f", then {then}" if then else ""
                raise RunError(
                    f"{path} is {what}, where the run writes its {path.name}: move it out of the "
                    f"run folder{then}"
                )

    def has_checkpoint(self) -> bool:
        """best.pt or last.pt is a file here (RunError if the folder cannot be read); a broken
        link holds none."""
        return any(
            path_kind(path) == "file"
            for path in (self.best, self.last)
            if os.path.exists(path) or not os.path.islink(path)
        )

    def updated(self) -> float:
        """When a checkpoint or its metrics were last written (0 if none, or if they cannot be
        read)."""
        times = []
        for path in (self.best, self.last, self.metrics):
            with contextlib.suppress(OSError, ValueError):
                times.append(path.stat().st_mtime)
        return max(times, default=0.0)

    def save(self, state, best: bool = False) -> None:
        """Write `state` (a train.state.RunState) to last.pt, and to best.pt if `best`."""
        from charrnn import checkpoint  # torch: only where a checkpoint is written

        elsewhere = self._elsewhere()
        try:
            checkpoint.save(checkpoint.to_payload(state), self.last, elsewhere)
            if best:  # the same state: its bytes copied, not serialized again
                checkpoint.copy(self.last, self.best, elsewhere)
        except CharRNNError:
            self._refuse_gone()
            raise

    def _refuse_gone(self) -> None:
        """A RunError where the run's folder is gone as it trains (moved, renamed, deleted): "create
        it first" would split the run between two folders."""
        if not self.path.is_dir():
            raise RunError(
                f"the run folder {self.path} was moved or removed while the run trained: resume "
                "it where it is now (`charrnn train --resume FOLDER`), or train it again"
            ) from None

    def best_from_last(self) -> None:
        """best.pt written again as a copy of last.pt, which holds the run's best model (a save
        that wrote last.pt and failed to copy it to best.pt)."""
        from charrnn import checkpoint

        checkpoint.copy(self.last, self.best, self._elsewhere())

    def keep(self, step: int) -> Path:
        """last.pt copied to step-N.pt (TrainConfig.keep_every); returns its path."""
        from charrnn import checkpoint

        kept = self.path / f"step-{step}.pt"
        checkpoint.copy(self.last, kept, self._elsewhere())
        return kept

    def remove_run_files(self) -> None:
        """Remove a run's checkpoints (kept ones too) and records, for a new run in its place; a
        RunError where the folder refuses it."""
        _remove([self.best, self.last, self.metrics, *self.kept()], "replace the run's files in")

    def kept(self) -> list[Path]:
        """The checkpoints kept along the run (step-N.pt), by step."""
        found = [(p, p.name[5:-3]) for p in self.path.glob("step-*.pt")]
        return [p for p, n in sorted(found, key=lambda f: int(f[1]) if f[1].isdigit() else -1)]

    def _elsewhere(self) -> str:
        """How a write that fails here can go elsewhere: a run with a last.pt keeps its steps
        only where its folder goes with it (another --checkpoint-dir would start it over)."""
        return _COPY if os.path.lexists(self.last) else _ELSEWHERE

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
            self._refuse_gone()
            raise RunError(cannot_write(self.metrics, e, self._elsewhere())) from None

    def first_record(self) -> dict | None:
        """metrics.jsonl's first record, where it reads as one; else None (nothing to compare)."""
        try:
            with open(self.metrics, "rb") as f:
                first = json.loads(f.readline(1 << 16))
        except (OSError, ValueError):
            return None
        return first if isinstance(first, dict) else None

    def metrics_disagree(self, records) -> bool:
        """Whether a checkpoint's metrics history `records` is of another run than metrics.jsonl:
        every training session starts by rewriting the file to its checkpoint's records, so the
        two begin with the same record. False where either has none, or the file cannot be read:
        nothing to compare."""
        return records_differ(self.first_record(), first_of(records))

    def rewrite_metrics(self, records: list[dict]) -> None:
        """Make metrics.jsonl match a checkpoint's own history (used on resume and rollback)."""
        lines = "".join(jsonl.dumps(r) + "\n" for r in records).encode("utf-8")
        try:
            atomic_write(self.metrics, lambda f: f.write(lines))
        except OSError as e:
            self._refuse_gone()
            raise RunError(cannot_write(self.metrics, e, self._elsewhere())) from None


def first_of(records) -> dict | None:
    """The first of a metrics history (a list of records), or None where it has none."""
    return records[0] if isinstance(records, list) and records else None


def records_differ(first, other) -> bool:
    """Whether two runs' first records (`first`, `other`: dicts, else nothing to compare) are of
    different runs: a number they both give differs."""
    if not isinstance(first, dict) or not isinstance(other, dict):
        return False
    pairs = [(jsonl.number(first.get(k)), jsonl.number(other.get(k))) for k in RECORD_KEYS]
    return any(None not in (a, b) and a != b for a, b in pairs)


def is_evaluation(record) -> bool:
    """A metrics record of an evaluation, its kind "eval" or none (written before training records
    existed): not a training record, nor junk from a damaged file."""
    return isinstance(record, dict) and record.get("kind", "eval") == "eval"


def best_candidates(records) -> list[dict]:
    """The evaluations whose models best.pt holds the best of: all of them, or those from the
    last one marked `best_restarted` (best.pt was lost or damaged, and a resume wrote it
    again there, whatever the loss before)."""
    evals = [r for r in records if is_evaluation(r)]
    starts = [i for i, r in enumerate(evals) if r.get("best_restarted")]
    return evals[starts[-1] :] if starts else evals


# How long a trainer waits for the run's lock before it takes it as another trainer's: a probe
# (RunDir.trainer: `charrnn runs`, `sample` of a run) holds it for microseconds.
LOCK_PATIENCE_S = 0.5


def being_trained(run: RunDir, pid: int | str) -> str:
    """The one line for a run whose lock another trainer holds, by its process id."""
    if str(pid).strip() == str(os.getpid()):  # a library caller that opened it twice
        return (
            f"run {run.name!r} is open already in this process (pid {os.getpid()}): leave the "
            "block that opened it before opening it again"
        )
    return (
        f"run {run.name!r} is being trained by another process (pid {str(pid).strip() or '?'}); "
        "wait for it to finish, stop it, or train under another --name"
    )


def _lock(fd: int, run: RunDir) -> None:
    if fcntl is None:  # Windows: no flock; runs are not protected against a second trainer
        return
    deadline = time.monotonic() + LOCK_PATIENCE_S
    while not _took_lock(fd):
        if time.monotonic() >= deadline:
            raise RunError(being_trained(run, os.pread(fd, 32, 0).decode(errors="replace")))
        time.sleep(0.005)


def _took_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _closed_folder(path: Path) -> Path | None:
    """The first folder on the way to `path` that this user may not search, if any."""
    for folder in reversed(Path(os.path.abspath(path)).parents):
        if not os.access(folder, os.X_OK):
            return folder
    return None


def path_kind(path: Path) -> str | None:
    """'dir', 'file' or 'other' for what is at `path`, None for nothing; RunError if that cannot
    be told (no permission, a broken link, a name the system refuses)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            to = os.path.realpath(path)  # where a chain of links ends
            raise RunError(f"{path} is a broken link (to {to}, which is not there)") from None
        return None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise RunError(f"cannot read {path}: {too_long(Path(path))}") from None
        if e.errno == errno.EACCES and (closed := _closed_folder(Path(path))) is not None:
            # a stat needs no permission on the file itself: a folder on the way is closed
            raise RunError(
                f"cannot read {path}: this user may not open its folder {closed} (Permission "
                "denied); change that folder's permissions, or run as its owner"
            ) from None
        raise RunError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError:  # a NUL byte, or characters the file system cannot encode
        raise RunError(f"{path!r} is not a possible path") from None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
