"""Evaluations under a time budget: how much each reads, when one is due, and the time kept for the
last one, so that evaluations spend at most SHARE of the budget and the run ends within it.

An evaluation reads the first `chars` characters of `streams` validation streams side by side,
and checks `starts` cold starts (coldstart.py). Reading n streams side by side costs a + b * n
seconds a character: a for the sequential step (what a small model's time is), b for each stream
(the output layer's, which grows with the vocabulary). The check reads its starts side by side
the same way, WINDOW characters each, twice. So an evaluation costs about
    chars * (a + b * streams) + 2 * WINDOW * (a + b * starts) * min(1, chars / WHOLE_WINDOWS)
with a and b from a probe (a piece of the validation read timed at two widths), then the seconds
each evaluation measured. The size is chosen once for a run
(kept in its checkpoints), so that every evaluation reads the same text and their losses compare
(best.pt is chosen by them); the schedule then spends what is left of the allowance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from charrnn.runs import is_evaluation
from charrnn.text.data import StreamBatcher
from charrnn.train import coldstart
from charrnn.train.config import TrainConfig
from charrnn.train.distributed import SINGLE, Dist
from charrnn.train.state import Position

SHARE = 0.03  # the most of a time budget that evaluations may spend
TARGET = 0.025  # what the plan aims at: the rest is margin for a busy machine's noise
MAX_EVALS = 16  # evaluations planned at most in a budget: enough to keep the best and to resume
# Streams read at least where not every stream fits (spread over the split: evaluate.spread):
# their median is what a runaway stream is judged against. Every stream is read where an
# evaluation before the final one fits that way: a few streams are a small sample of the split
# (the first four once read up to 0.4 nats below it: docs/evaluation-cost.md).
MIN_STREAMS = 4
MIN_CHARS = 500  # characters of each stream read at least (the cold-start windows shrink to fit)
MIN_STARTS = 64  # cold starts checked at least (docs/evaluation-cost.md: what still catches one)
WINDOW = coldstart.SKIP + coldstart.SPAN  # characters each cold start reads, twice a check
WHOLE_WINDOWS = 1000  # characters of a stream read in which the check's windows are whole
# Below the floors where nothing else fits: one stream and 16 starts, but still MIN_CHARS of it:
# in a shorter stream the check's windows shrink until a runaway no longer shows in them
# (docs/evaluation-cost.md: 100 characters a stream found none of the runaways the full check did).
LEAST = (1, MIN_CHARS, 16)
# How much more than the probe's prediction a first evaluation may cost (seen: 1.1-1.6x, more with
# a large vocabulary): the plan leaves this room, and the time kept for a final evaluation that
# only the probe has predicted.
PROBE_MARGIN = 1.5
MEASURED_MARGIN = 1.25  # and for the final one, once an evaluation of the run was measured
SETTLE = 8  # steps after which a step's seconds (a median) are the pace the probe's figures hold at
EXIT_S = 0.25  # seconds kept for what follows the final evaluation: the process's exit (its
# teardown skipped: __main__.leave)
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
    """Seconds an evaluation costs: `step` a character read whatever the streams side by side,
    `row` a character of each stream, `start` a cold start checked beside the others and
    `check_step` a check whatever its starts (its characters read in turn, coldstart.ROWS starts
    at a time), `fixed` besides (writing the checkpoints); `probe`: the seconds the probe took."""

    step: float
    row: float
    start: float
    check_step: float = 0.0
    fixed: float = 0.0
    probe: float = 0.0

    def of(self, size: EvalSize) -> float:
        return sum(self.parts(size))

    def parts(self, size: EvalSize) -> tuple[float, float, float]:
        """Seconds of an evaluation of `size`: its read, its check, its checkpoints."""
        read = size.chars * (self.step + self.row * size.streams)
        shrunk = min(1.0, size.chars / WHOLE_WINDOWS)  # the check's windows, in short streams
        turns = math.ceil(size.starts / coldstart.ROWS)  # reads of starts side by side
        check = shrunk * (self.check_step * turns + self.start * size.starts)
        return read, check, self.fixed


def whole(c: TrainConfig, batches: StreamBatcher) -> EvalSize:
    """The size of an evaluation that reads every validation stream whole (as far as the split
    is read: TrainConfig.max_val_chars) and checks config.cold_start_checks starts."""
    return EvalSize(batches.batch_size, batches.stream_len, c.cold_start_checks)


@torch.no_grad()
def probe(model, batches: StreamBatcher, clock, dist: Dist = SINGLE) -> EvalCost:
    """The cost model of evaluating `model` (a trained.Model) on `batches`, the mean over the ranks:
    a piece of the validation read timed at two widths (each the better of two reads: the first
    warms up). The cold-start check reads its starts side by side as the validation read reads its
    streams, so its cost comes from the same two figures."""
    device = model.device

    def now() -> float:  # a GPU's calls return before their work is done: wait for it
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return clock()

    begun, b, net = now(), batches.batch_size, model.net
    few, cols = max(1, b // 8), min(batches.stream_len, batches.eval_cols)
    x, y = batches.x[:, :cols].long(), batches.y[:, :cols].long()
    seconds = []
    with model.evaluating():
        for n in (b, few):
            xs, ys, best = x[:n].to(device), y[:n].to(device), math.inf
            for _ in range(2):
                start = now()
                out, _ = net.read(xs, net.init_state(n))
                net.nats(out, ys)
                best = min(best, now() - start)
            seconds.append(best / cols)
    wide, narrow = (t / dist.world for t in dist.all_sum(seconds))
    row = max(0.0, (wide - narrow) / max(b - few, 1))
    step = max(narrow - row * few, 0.0)
    check = 2 * WINDOW  # characters of each start a check reads
    return EvalCost(step, row, check * row, check * step, probe=now() - begun)


def choose_size(max_time: float, full: EvalSize, cost: EvalCost, evals: int) -> EvalSize:
    """The largest size (at most `full`) at which `evals` evaluations fit in TARGET of `max_time`
    seconds less what the probe spent (with PROBE_MARGIN for the probe's error), reading every
    stream: the characters of each stream shrink first (a small model's time is its steps),
    then the starts, not under MIN_CHARS and MIN_STARTS. Where even that size does not fit
    `evals`, fewer evaluations read it, as many as the allowance pays for (the schedule spends
    it), so long as one fits before the final one. Only where none does do the streams shrink
    too (not under MIN_STREAMS), as few as one before the final (else the final alone) needs;
    under the floors only where the final alone would not fit (down to LEAST)."""
    allow = (TARGET * max_time - cost.probe) / PROBE_MARGIN  # the probe spent its part already
    floor = EvalSize(full.streams, min(MIN_CHARS, full.chars), min(MIN_STARTS, full.starts))
    affordable = math.floor(allow / max(cost.of(floor), 1e-12))
    if affordable >= min(evals, 2):  # every stream, in fewer evaluations if need be
        count = max(1, min(evals, affordable))
        return _shrunk(full, cost, allow / count, floor.streams, floor.chars, floor.starts)
    for count in (min(evals, 2), 1):  # one before the final, else the final alone, read widest
        size = _shrunk(floor, cost, allow / count, MIN_STREAMS, MIN_CHARS, MIN_STARTS)
        if cost.of(size) <= allow / count:
            return size
    return _shrunk(size, cost, allow, *LEAST)


def _shrunk(full: EvalSize, cost: EvalCost, seconds: float, streams, chars, starts) -> EvalSize:
    """The largest size at most `full` and at least the floors given that costs `seconds`, the
    characters of each stream shrunk first, then the starts, then the streams; else the floors."""
    lo = EvalSize(min(streams, full.streams), min(chars, full.chars), min(starts, full.starts))

    def fits(n, c, s) -> bool:
        return cost.of(EvalSize(n, c, s)) <= seconds

    n, s = full.streams, full.starts
    c = _largest(lo.chars, full.chars, lambda c: fits(n, c, s))
    if c == lo.chars:
        s = _largest(lo.starts, s, lambda s: fits(n, c, s))
        if s == lo.starts:
            n = _largest(lo.streams, n, lambda n: fits(n, c, s))
    return EvalSize(n, c, s)


def _largest(lo: int, hi: int, ok) -> int:
    """The largest value in lo..hi for which `ok` holds (it holds for all below one that does),
    else lo."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def default_evals(max_time: float, cost: EvalCost, streams: int, chars_per_eval: int) -> int:
    """About how many evaluations the default schedule (every `chars_per_eval` characters trained,
    `streams` side by side) would make in `max_time` seconds, training at about TRAIN_PER_EVAL
    times the read's cost."""
    per_char = (cost.step + cost.row * streams) / streams
    trained = max_time / (TRAIN_PER_EVAL * max(per_char, 1e-12))
    return max(1, min(MAX_EVALS, math.ceil(trained / chars_per_eval)))


class Unbounded:
    """Without a time budget: every scheduled evaluation runs, reading `size` (the whole)."""

    def __init__(self, size: EvalSize):
        self.size = size

    def due(self, elapsed: float) -> bool:
        return True

    def predicted(self) -> float:
        return 0.0

    def reserve(self) -> float:
        return 0.0

    def stepped(self, step_s: float) -> None:
        pass

    def check_due(self, progress: float, final: bool, read_s: float) -> bool:
        return True

    def after_read(self, read_s: float) -> tuple[float, float]:
        return 0.0, 0.0

    def measured(self, elapsed: float, read_s: float, check_s: float, save_s: float) -> None:
        pass


class EvalBudget:
    """Under a time budget of `max_time` seconds: whether a scheduled evaluation is due, and how
    long to keep for the final one. `spent`: seconds evaluations spent so far in the run."""

    def __init__(
        self,
        max_time: float,
        size: EvalSize,
        cost: EvalCost,
        spent: float = 0.0,
        early_stop: bool = False,
    ):
        self.max_time, self.size, self.cost = max_time, size, cost
        # With early stopping (--patience, a fine-tune's default) every scheduled evaluation runs
        # that fits in the time: one of them is what ends the run, and saves far more than 3%.
        self.early_stop = early_stop
        self.spent = spent + cost.probe  # the probe is evaluation work too
        self.allow = TARGET * max_time
        self.measured_yet = False  # whether an evaluation of this run's process was measured
        # Its parts (read, cold-start check, checkpoints), the probe's until one is measured;
        # the check is the last one made, so that an evaluation without one still predicts the
        # final's, which has one.
        self.parts = list(cost.parts(size))
        # A training step's seconds now (a median of the last few), and when the prediction was
        # measured: for the probe's, after the first SETTLE steps (the first pays for allocations
        # and kernel choice)
        self.step_s, self.pace, self.steps = 0.0, 0.0, 0
        self.part = math.inf  # seconds between two evaluations, as the schedule spreads them
        self.next_at = self._next(0.0)

    def predicted(self) -> float:
        """Seconds the next evaluation (and its checkpoints) should take: as the last one did, or
        the probe said, times how much slower training steps have become since. A machine that
        gets busy slows an evaluation as much as a step, and the final one must still fit."""
        return sum(self.parts) * self._slower()

    def _slower(self) -> float:
        """How much slower training steps are now than when the prediction was measured."""
        return max(1.0, self.step_s / self.pace) if self.pace else 1.0

    def stepped(self, step_s: float) -> None:
        """A training step takes `step_s` seconds now (the median of the last few)."""
        self.step_s, self.steps = step_s, self.steps + 1
        if self.steps == SETTLE and not self.measured_yet:
            self.pace = step_s

    def reserve(self) -> float:
        """Seconds to keep for the final evaluation, with a margin for noise (a wider one while
        the prediction is the probe's)."""
        margin = MEASURED_MARGIN if self.measured_yet else PROBE_MARGIN
        return margin * self.predicted() + EXIT_S

    def due(self, elapsed: float) -> bool:
        """Whether a scheduled evaluation may run now: its cost and the final's both fit what is
        left of the allowance and of the budget, and it is its turn; and, unless early stopping
        needs every one, the final is not so near that this one would say what it will say (the
        training left after it at least a quarter of the schedule's spacing)."""
        room = self.allow - self.spent - self.predicted()  # the final's kept
        after = self.max_time - (elapsed + self.predicted() + self.reserve())  # training left
        if self.early_stop:
            return after >= 0
        return room >= self.predicted() and elapsed >= self.next_at and after >= self.part / 4

    def check_due(self, progress: float, final: bool, read_s: float) -> bool:
        """Whether an evaluation whose read took `read_s` seconds runs the cold-start check too.
        Without early stopping every one does: the size was chosen to fit. With it, every
        evaluation reads the whole split (early stopping compares them), so the checks take what
        the reads leave of the allowance: the first evaluation's and the `final` one's, and
        between them one wherever the evaluations' seconds so far, with this one's read and
        check, are within the allowance's share for the `progress` made (the fraction of the
        budget used, by its nearest limit)."""
        if not self.early_stop or final or not self.measured_yet:
            return True
        return self.spent + read_s + self.parts[1] * self._slower() <= self.allow * progress

    def after_read(self, read_s: float) -> tuple[float, float]:
        """For an evaluation whose read took `read_s`: the seconds it still takes (its check and
        checkpoints, as predicted), and the time reserve() will keep once it is measured (a read
        far slower than the last ones raises the prediction of the final one)."""
        rest = (self.parts[1] + self.parts[2]) * self._slower()
        return rest, MEASURED_MARGIN * (read_s + self.parts[1] + self.parts[2]) + EXIT_S

    def measured(self, elapsed: float, read_s: float, check_s: float, save_s: float) -> None:
        """An evaluation took these seconds (at `elapsed`; `check_s` None: it made no check):
        the next of its size should take as long, with the check as the last one made."""
        checked = check_s is not None
        if not checked:
            check_s = self.parts[1]  # the last one made, or the probe's
        self.parts, self.measured_yet = [read_s, check_s, save_s], True
        self.spent += read_s + save_s + (check_s if checked else 0.0)
        self.pace = self.step_s  # the pace the parts were measured at
        self.next_at = self._next(elapsed)

    def _next(self, elapsed: float) -> float:
        """When the next evaluation is due: what is left of the budget in equal parts, one for each
        evaluation the allowance still pays for (the final one among them)."""
        left = math.floor((self.allow - self.spent) / max(self.predicted(), 1e-12))
        if left <= 1:
            return math.inf
        self.part = (self.max_time - elapsed) / left
        return elapsed + self.part


def plan(c: TrainConfig, full: EvalSize, cost: EvalCost, pos: Position) -> EvalBudget:
    """The EvalBudget of a run under a time budget at `pos`: a new run's size chosen for it (the
    whole split for one that stops early) and kept in `pos` for the rest of the run (a run
    evaluated whole before keeps the whole), so that its losses compare."""
    evaluations = [r for r in pos.metrics if is_evaluation(r)]
    if pos.eval_size is not None:
        size = EvalSize(**pos.eval_size)
    elif evaluations:
        size = full
    else:
        step_chars = c.batch_size * c.seq_len
        evals = default_evals(c.max_time, cost, c.batch_size, c.steps_per_eval * step_chars)
        size = choose_size(c.max_time, full, cost, evals)
        if c.patience is not None:
            # Early stopping ends the run by comparing evaluations, and runs every one due
            # (EvalBudget): each reads the whole split, which for a short text costs little.
            # Seen: a plan that read 1,116 of a 90 K text's 8,928 (35 characters a stream, most
            # of them just after a cold start) said 2.160 bits where `score` said 1.958.
            size = EvalSize(full.streams, full.chars, size.starts)
    pos.eval_size = size.to_dict()
    spent = sum(r.get("eval_seconds") or 0.0 for r in evaluations)
    return EvalBudget(c.max_time, size, cost, spent, early_stop=c.patience is not None)
