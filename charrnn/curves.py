"""Learning curves: a run's bits per character against training time, characters and steps.

Read from the run's checkpoint, which keeps every record up to its step, and from its
metrics.jsonl the records after it (training appends to the file between checkpoints).
Validation points come from the evaluations, training points from the training records (see
runs.py for the two kinds); a run trained before training records existed has only its
evaluations' train_loss, the mean over each evaluation interval, and those are its training
points. Nothing here prints.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CharRNNError, CheckpointError, RunError
from charrnn.jsonl import number
from charrnn.runs import RunDir, is_evaluation
from charrnn.runs.info import RunInfo, pid_text, sources_of

# What a curve can be drawn against: training time (seconds, across resumes), characters trained
# on (by every process together), optimizer steps.
X_AXES = ("time", "chars", "steps")


@dataclass(frozen=True)
class Point:
    """One measurement: where training was, and the bits per character there."""

    step: int
    seconds: float  # of training, evaluations and saves included
    chars: int
    bpc: float

    def x(self, axis: str) -> float:
        """The point's place on `axis` (one of X_AXES)."""
        return {"time": self.seconds, "chars": self.chars, "steps": self.step}[axis]


@dataclass(frozen=True)
class RunCurves:
    """A run's curves: `val` at each evaluation and `train` at each training record, in order."""

    name: str  # the run's name (its folder's)
    folder: Path
    cell: str  # "lstm", "gru" or "rnn" (a checkpoint that does not say is an LSTM's)
    step: int | None  # the step of its newest checkpoint, for messages
    val: tuple[Point, ...]
    train: tuple[Point, ...]
    # per curve, the records whose figure is not a finite number (a model whose weights broke
    # down evaluates to NaN): they are not drawn, and a curve made only of them says so
    not_finite: dict[str, int]
    go_on: str = ""  # what trains it on (RunInfo.go_on), as advice
    trainer: int | None = None  # the process id training it now (0: not said yet), or None

    def points(self, curve: str) -> tuple[Point, ...]:
        """The points of `curve` ("val" or "train")."""
        return self.val if curve == "val" else self.train


def read_curves(run: RunDir) -> RunCurves:
    """The learning curves of `run`; CheckpointError/RunError if it cannot be read."""
    payload = _newest_checkpoint(run)
    model, train = payload["model_config"], payload["train_config"]
    trainer = payload["trainer"] if isinstance(payload["trainer"], dict) else {}
    pid = run.trainer()
    # a run that ended saying how (a budget, an early stop, a signal) saved every record it made
    # in its checkpoint; lines after it are another run's or junk, unless it is trained again now
    ended = trainer.get("ended") is not None and pid is None
    records = _merged(payload, trainer, None if ended else _read_jsonl(run.metrics))
    try:  # characters per step, for evaluations recorded before they said how many
        per_step = int(train["batch_size"]) * int(train["seq_len"])
        per_step *= int(trainer.get("world_size", 1))
    except (KeyError, TypeError, ValueError):
        per_step = None
    val, training, old_train = [], [], []
    not_finite = {"val": 0, "train": 0}
    for r in records:
        if not isinstance(r, dict):  # a damaged line
            continue
        if is_evaluation(r):
            not_finite["val"] += _add(val, r, "val", per_step)
            _add(old_train, r, "train", per_step)
        elif r.get("kind") == "train":
            not_finite["train"] += _add(training, r, "train", per_step)
    cell = model.get("cell", "lstm") if isinstance(model, dict) else "lstm"
    step = trainer.get("step")
    return RunCurves(
        name=run.name,
        folder=run.path,
        cell=str(cell),
        step=step if isinstance(step, int) else None,
        val=tuple(val),
        train=tuple(training or old_train),
        not_finite=not_finite,
        go_on=RunInfo(
            run, sources=sources_of(payload.get("corpus")), ended=trainer.get("ended")
        ).go_on(),
        trainer=pid,
    )


def _merged(payload: dict, trainer: dict, lines: list | None) -> list:
    """The run's records: its checkpoint's own copy, which holds every one up to its step,
    then the lines of metrics.jsonl written after that checkpoint (training appends to the file
    between checkpoints): what the file holds up to the checkpoint (cut short, emptied, junk)
    changes nothing. A checkpoint that keeps none (an old one): the file's."""
    kept = payload["metrics"] if isinstance(payload["metrics"], list) else []
    at = trainer.get("step") if isinstance(trainer.get("step"), int) else None
    lines = [r for r in lines or [] if isinstance(r, dict)]  # a damaged line, or none: skipped
    if at is None or not kept:
        return lines or kept
    return kept + [r for r in lines if (number(r.get("step")) or 0) > at]


def _newest_checkpoint(run: RunDir) -> dict:
    """last.pt, or best.pt where last.pt is missing or cannot be read."""
    from charrnn import checkpoint  # torch: only where a checkpoint is opened

    try:
        return checkpoint.load(run.last, verify=False)  # its plain values only
    except CharRNNError as e:
        first = getattr(e, "what", str(e))  # without a reader's advice: plot reads no model
        if not run.best.is_file():
            raise CheckpointError(f"{first}; the run has no other checkpoint: {AGAIN}") from None
    try:
        return checkpoint.load(run.best, verify=False)
    except CharRNNError:
        raise CheckpointError(f"{first}; its best.pt does not load either: {AGAIN}") from None


AGAIN = "train the run again, with --force to replace it"


def _read_jsonl(path: Path) -> list | None:
    """The JSON values of a metrics.jsonl, one a line (lines that are not JSON are skipped: a
    damaged line must not hide the rest); None if there is no such file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror or e}") from None
    values = []
    for line in data.splitlines():
        try:
            values.append(json.loads(line))
        except ValueError:  # also a line that is not UTF-8
            continue
    return values


def _add(points: list[Point], r: dict, curve: str, per_step: int | None) -> bool:
    """Append the `curve` point of record `r`, if it has one (all numbers finite); True where its
    figure is there but is no finite number (null, as charrnn writes NaN; NaN or infinity, as
    older versions wrote them)."""
    step, seconds = number(r.get("step")), number(r.get("elapsed"))
    figures = [r[k] for k in (f"{curve}_bpc", f"{curve}_loss") if k in r]
    if figures and all(number(v) is None for v in figures):  # null (as charrnn writes NaN), NaN
        return True
    bpc = number(r.get(f"{curve}_bpc"))
    if bpc is None and (nats := number(r.get(f"{curve}_loss"))) is not None:
        bpc = nats / math.log(2)
    chars = number(r.get("chars"))
    if chars is None and step is not None and per_step is not None:
        chars = step * per_step
    if None not in (step, seconds, bpc, chars):
        points.append(Point(int(step), float(seconds), int(chars), float(bpc)))
    return False


def no_points(curves: RunCurves, wanted: tuple[str, ...]) -> str | None:
    """Why `curves` has nothing to draw of the `wanted` curves (a message that says what to do),
    or None when it has something."""
    if any(curves.points(c) for c in wanted):
        return None
    at = f" (step {curves.step:,})" if curves.step is not None else ""
    broken = [(c, n) for c in wanted if (n := curves.not_finite[c])]
    if broken:
        nouns = {"val": "evaluation", "train": "training record"}
        what = " and ".join(f"{n:,} {nouns[c]}{'s' * (n != 1)}" for c, n in broken)
        return (
            f"run {curves.name!r} has {what}{at}, none with a finite loss (NaN or infinity: its "
            "weights broke down), so there is nothing to draw; train it again from the start "
            "with --force"
        )
    if curves.trainer is not None:  # its step: the checkpoint's, as it started
        at = f" (it is being trained now, {pid_text(curves.trainer)})"
        then = "wait for its first evaluation"
    else:
        then = curves.go_on
    if curves.train and "train" not in wanted:
        return (
            f"run {curves.name!r} has no evaluation yet{at}; --train draws its training loss, "
            f"or {then}"
        )
    return f"run {curves.name!r} has no records yet{at}; {then}"
