"""A run's budget and learning-rate schedule: functions of its config, its position and the
steps in an epoch (`per_epoch`)."""

from __future__ import annotations

import math

from charrnn.runs import best_candidates
from charrnn.train.config import TrainConfig
from charrnn.train.state import Position


def total_steps(c: TrainConfig, per_epoch: int) -> int | None:
    """The steps the budget allows, by the nearer of its step and epoch limits (None: neither)."""
    limits = [c.max_steps] if c.max_steps is not None else []
    if c.max_epochs is not None:
        limits.append(math.ceil(c.max_epochs * per_epoch))
    return min(limits) if limits else None


def progress(c: TrainConfig, pos: Position, per_epoch: int, keep: float = 0.0) -> float:
    """Fraction of the budget used, by whichever limit is nearest; `keep`: seconds of the time
    budget kept for what comes after training (budget_spent), so that training ends at 1."""
    fractions = []
    if (total := total_steps(c, per_epoch)) is not None:
        fractions.append(pos.step / max(total, 1))
    if c.max_time is not None:
        fractions.append((pos.elapsed + keep) / max(c.max_time, 1e-9))
    return min(max(fractions, default=0.0), 1.0)


def learning_rate(c: TrainConfig, pos: Position, per_epoch: int, keep: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to lr * min_lr_frac at the end of the budget."""
    warm = min(1.0, (pos.step + 1) / max(c.warmup_steps, 1))
    return warm * c.lr * pos.lr_scale * decay(c, pos, per_epoch, keep)


def decay(c: TrainConfig, pos: Position, per_epoch: int, keep: float = 0.0) -> float:
    """The share of the peak rate the cosine gives at `pos`: 1 at the start, min_lr_frac at the
    end of the budget."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress(c, pos, per_epoch, keep)))
    return c.min_lr_frac + (1 - c.min_lr_frac) * cosine


def budget_spent(c: TrainConfig, pos: Position, per_epoch: int, keep: float = 0.0) -> str | None:
    """Which limit is reached ("steps", "epochs", "time", "patience"), or None; `keep`: seconds
    of the time budget kept for what must come after (a step, the final evaluation)."""
    if c.max_steps is not None and pos.step >= c.max_steps:
        return "steps"
    if (total := total_steps(c, per_epoch)) is not None and pos.step >= total:
        return "epochs"
    if c.max_time is not None and pos.elapsed + keep >= c.max_time:
        return "time"
    if c.patience is not None and evals_since_best(pos.metrics) >= c.patience:
        return "patience"
    return None


def evals_since_best(metrics: list[dict]) -> int:
    """Evaluations after the one with the best validation loss, best.pt's (0: the last was the
    best)."""
    losses = [r["val_loss"] for r in best_candidates(metrics)]
    return len(losses) - 1 - losses.index(min(losses)) if losses else 0
