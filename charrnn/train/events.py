"""What the training loop yields as it goes: a step, an evaluation, a rollback, the end."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StepEvent:
    step: int
    loss: float  # nats per character on this batch
    lr: float
    progress: float  # 0..1 of the budget (0 when there is none)
    chars_per_s: float
    epoch: float  # epochs trained after this step, as the metrics records count them
    elapsed: float  # seconds of the run so far (at the step's start), across resumes


@dataclass
class EvalEvent:
    record: dict  # the metrics.jsonl line
    improved: bool  # best.pt was updated


@dataclass
class RollbackEvent:
    reason: str  # what went wrong, e.g. "the loss became nan at step 812"
    to_step: int  # the checkpoint training went back to
    lr_scale: float  # the learning rate is now this share of the schedule's


# How a run ends: a budget spent ("steps", "epochs", "time"), an early stop ("patience"), or a stop
# asked for ("stopped"): DoneEvent.reason, and Position.ended in its checkpoints; or training that
# blew up at every rate it tried ("diverged": a TrainingError, its last good state kept so marked).
ENDINGS = ("steps", "epochs", "time", "patience", "stopped", "diverged")


@dataclass
class DoneEvent:
    reason: str  # one of ENDINGS
    step: int
    best_val: float


Event = StepEvent | EvalEvent | RollbackEvent | DoneEvent
