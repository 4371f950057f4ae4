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
    # The training record this step closed (metrics.jsonl's line: the mean loss of its window,
    # the epoch, the time so far), or None: one every TrainConfig.steps_per_record steps.
    record: dict | None = None


@dataclass
class EvalEvent:
    record: dict  # the metrics.jsonl line
    improved: bool  # best.pt was updated


@dataclass
class RollbackEvent:
    reason: str  # what went wrong, e.g. "the loss became nan at step 812"
    to_step: int  # the checkpoint training went back to
    lr_scale: float  # the learning rate is now this share of the schedule's


@dataclass
class DoneEvent:
    reason: str  # "steps", "epochs", "time", "patience" or "stopped"
    step: int
    best_val: float


Event = StepEvent | EvalEvent | RollbackEvent | DoneEvent
