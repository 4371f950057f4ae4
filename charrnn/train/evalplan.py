"""Evaluations under a time budget: how much each reads, when one is due, and the time kept for the
last one, so that evaluations spend at most SHARE of the budget and the run ends within it.

An evaluation reads the first `streams` validation streams, `chars` characters of each, and checks
`starts` cold starts (coldstart.py). Its cost is modelled as
    seconds = per_char * streams * chars + per_start * starts + fixed
with the rates first from a probe (a piece of the validation read, timed) and then from what each
evaluation measured. The size is chosen once for a run (kept in its checkpoints), so that every
evaluation reads the same text and their losses compare (best.pt is chosen by them); the schedule
then spends what is left of the allowance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from charrnn.runs import is_evaluation
from charrnn.train.config import TrainConfig
from charrnn.train.state import Position

SHARE = 0.03  # the most of a time budget that evaluations may spend
TARGET = 0.02  # what the plan aims at: the rest is margin for a busy machine's noise
MAX_EVALS = 16  # evaluations planned at most in a budget: enough to keep the best and to resume
MIN_STREAMS = 4  # streams read at least: their median is what a runaway stream is judged against
MIN_CHARS = 1000  # characters of each stream read at least: the cold-start windows fit whole
MIN_STARTS = 64  # cold starts checked at least (docs/evaluation-cost.md: what still catches one)
# A cold start reads 300 characters through the recurrent part and scores 200 with the output
# layer, twice: no more than the cost of reading this many validation characters.
START_CHARS = 600
TRAIN_PER_EVAL = 3.0  # a character trained costs about three read (forward, backward, update)


@dataclass
class EvalSize:
    """What an evaluation reads: `streams` x `chars` of the validation streams, `starts` checks."""

    streams: int
    chars: int
    starts: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvalCost:
    """Seconds per validation character read, per cold start checked, and per evaluation besides
    (writing the checkpoints)."""

    per_char: float
    per_start: float
    fixed: float = 0.0

    def of(self, size: EvalSize) -> float:
        return self.per_char * size.streams * size.chars + self.per_start * size.starts + self.fixed


def probe_cost(per_char: float) -> EvalCost:
    """The model of an evaluation's cost from the probe's seconds per validation character."""
    return EvalCost(per_char, per_char * START_CHARS, 0.0)


def choose_size(max_time: float, full: EvalSize, cost: EvalCost, evals: int) -> EvalSize:
    """The largest size (at most `full`) at which `evals` evaluations fit in TARGET of `max_time`
    seconds, but not under the minimum (MIN_*), unless even one evaluation at that would not fit.
    `evals`: how many the default schedule would make in the budget."""
    allow = TARGET * max_time - cost.fixed * max(evals, 1)
    frac = allow / max(evals, 1) / max(cost.of(full) - cost.fixed, 1e-12)
    size = _scaled(full, frac, floor=True)
    if cost.of(size) > TARGET * max_time:  # the minimum alone is too much: fit the final one
        size = _scaled(full, (TARGET * max_time - cost.fixed) / (cost.of(full) - cost.fixed))
    return size


def _scaled(full: EvalSize, frac: float, floor: bool = False) -> EvalSize:
    """`full` scaled by `frac` (at most 1): the streams first, then the characters of each."""
    if frac >= 1:
        return full
    lo_streams = min(MIN_STREAMS, full.streams) if floor else 1
    lo_chars = min(MIN_CHARS, full.chars) if floor else min(MIN_CHARS // 4, full.chars)
    lo_starts = min(MIN_STARTS, full.starts) if floor else min(MIN_STARTS // 4, full.starts)
    chars = max(frac, 0.0) * full.streams * full.chars
    streams = max(lo_streams, min(full.streams, math.ceil(chars / full.chars)))
    each = max(lo_chars, min(full.chars, int(chars // streams)))
    starts = max(lo_starts, min(full.starts, round(frac * full.starts)))
    return EvalSize(streams, each, starts)


def default_evals(max_time: float, cost: EvalCost, chars_per_eval: int) -> int:
    """About how many evaluations the default schedule (every `chars_per_eval` characters trained)
    would make in `max_time` seconds, training at about TRAIN_PER_EVAL times the read's cost."""
    trained = max_time / (TRAIN_PER_EVAL * max(cost.per_char, 1e-12))
    return max(1, min(MAX_EVALS, math.ceil(trained / chars_per_eval)))


class Unbounded:
    """Without a time budget: every scheduled evaluation runs, reading `size` (the whole)."""

    def __init__(self, size: EvalSize):
        self.size = size

    def due(self, elapsed: float) -> bool:
        return True

    def reserve(self) -> float:
        return 0.0

    def measured(self, elapsed: float, read_s: float, check_s: float, save_s: float) -> None:
        pass


class EvalBudget:
    """Under a time budget of `max_time` seconds: whether a scheduled evaluation is due, and how
    long to keep for the final one. `spent`: seconds evaluations spent so far in the run."""

    def __init__(self, max_time: float, size: EvalSize, cost: EvalCost, spent: float = 0.0):
        self.max_time, self.size, self.cost, self.spent = max_time, size, cost, spent
        self.allow = TARGET * max_time
        self.next_at = self._next(0.0)

    def predicted(self) -> float:
        """Seconds the next evaluation (and its checkpoints) should take."""
        return self.cost.of(self.size)

    def reserve(self) -> float:
        """Seconds to keep for the final evaluation, with a margin for noise."""
        return 1.25 * self.predicted()

    def due(self, elapsed: float) -> bool:
        """Whether a scheduled evaluation may run now: its cost and the final's both fit what is
        left of the allowance, and it is its turn in the budget."""
        room = self.allow - self.spent - self.predicted()  # the final's kept
        return room >= self.predicted() and elapsed >= self.next_at

    def measured(self, elapsed: float, read_s: float, check_s: float, save_s: float) -> None:
        """An evaluation took these seconds (at `elapsed`): the rates from now on are its own."""
        s = self.size
        per_start = check_s / s.starts if s.starts else self.cost.per_start
        self.cost = EvalCost(read_s / max(s.streams * s.chars, 1), per_start, save_s)
        self.spent += read_s + check_s + save_s
        self.next_at = self._next(elapsed)

    def _next(self, elapsed: float) -> float:
        """When the next evaluation is due: what is left of the budget in equal parts, one for each
        evaluation the allowance still pays for (the final one among them)."""
        left = math.floor((self.allow - self.spent) / max(self.predicted(), 1e-12))
        if left <= 1:
            return math.inf
        return elapsed + (self.max_time - elapsed) / left


def plan(c: TrainConfig, full: EvalSize, per_char: float, pos: Position) -> EvalBudget:
    """The EvalBudget of a run under a time budget at `pos`, from the probe's seconds per validation
    character (of one process): a new run's size chosen for it and kept in `pos` for the rest of
    the run (a run evaluated whole before keeps the whole), so that its losses compare."""
    cost = probe_cost(per_char)
    evaluations = [r for r in pos.metrics if is_evaluation(r)]
    if pos.eval_size is not None:
        size = EvalSize(**pos.eval_size)
    elif evaluations:
        size = full
    else:
        evals = default_evals(c.max_time, cost, c.steps_per_eval * c.batch_size * c.seq_len)
        size = choose_size(c.max_time, full, cost, evals)
    pos.eval_size = size.to_dict()
    spent = sum(r.get("eval_seconds") or 0.0 for r in evaluations)
    return EvalBudget(c.max_time, size, cost, spent)
