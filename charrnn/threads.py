"""How many threads torch should use now: measured on the work itself, while it runs (why, and
what was measured: docs/commands.md, "Threads"). Never more than torch was given or the cores the
process may run on: a user's OMP_NUM_THREADS=1 stays one thread.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator

import torch

TRIAL = 4  # timings per count in a trial; the first after a change is dropped (threads wake up)
MARGIN = 0.05  # a count must be this much faster than the one in use to replace it
PERIOD = (10.0, 160.0)  # seconds between trials: the shortest, and the longest after no change
CHANGE = 1.3  # a trial at once when the work gets this much slower (or faster) than last seen


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), or the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on this platform
        return os.cpu_count() or 1


@contextlib.contextmanager
def tuned_threads(enabled: bool = True) -> Iterator[ThreadTuner | None]:
    """A ThreadTuner (None if not `enabled`) for the block; torch's thread count is restored."""
    before = torch.get_num_threads()
    try:
        yield ThreadTuner() if enabled else None
    finally:
        torch.set_num_threads(before)


def timed(tuner: ThreadTuner | None, work: float = 1.0) -> contextlib.AbstractContextManager:
    """`tuner.measure(work)`, or nothing when there is no tuner."""
    return tuner.measure(work) if tuner is not None else contextlib.nullcontext()


class ThreadTuner:
    """Keeps torch's intra-op thread count at the fastest for the load on the machine now, fed
    the seconds of each unit of repeated work (`measure`, or `before` then `record`). A trial
    times a neighbouring count, then the count in use, within seconds, under the same load."""

    def __init__(
        self,
        most: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ):
        self.most = max(1, most or min(usable_cores(), torch.get_num_threads()))
        self.clock, self._set = clock, set_threads
        self.threads = self.most  # the count in use
        self.period = PERIOD[0]
        self.direction = -1  # the neighbour the next trial tries: fewer threads first
        self.trial: list | None = None  # [(count, timings), ...] still to run; None: no trial
        self.results: dict[int, float] = {}  # the trial's median seconds per unit, by count
        self.baseline: float | None = None  # seconds per unit at `threads` when last measured
        self.recent: deque[float] = deque(maxlen=TRIAL)
        self.next_trial = -float("inf")  # as soon as TRIAL units were timed
        self.changes = 0  # counts adopted: for tests and benches
        self._applied: int | None = None  # what torch was last told
        self._apply(self.threads)

    def _apply(self, threads: int) -> None:
        if threads != self._applied:
            self._set(threads)
            self._applied = threads

    @contextlib.contextmanager
    def measure(self, work: float = 1.0) -> Iterator[None]:
        """Time the block as `work` units of the repeated work (the thread count is set first)."""
        self.before()
        start = self.clock()
        yield
        self.record(self.clock() - start, work)

    def before(self) -> None:
        """Set the count the next unit of work runs on (a trial may begin here)."""
        if self.most == 1:
            return
        if self.trial is None and self._due():
            neighbour = self.threads + self.direction
            if not 1 <= neighbour <= self.most:
                self.direction = -self.direction
                neighbour = self.threads + self.direction
            self.direction = -self.direction
            self.trial = [(neighbour, []), (self.threads, [])]
            self.results = {}
        self._apply(self.trial[0][0] if self.trial else self.threads)

    def _due(self) -> bool:
        if len(self.recent) < TRIAL:  # a short job never pays for a trial
            return False
        if self.clock() >= self.next_trial:  # always before the first trial (-inf)
            return True
        ratio = statistics.median(self.recent) / self.baseline
        return not 1 / CHANGE < ratio < CHANGE

    def record(self, seconds: float, work: float = 1.0) -> None:
        """The last unit of work (run after `before`) took `seconds` for `work` units."""
        if self.most == 1 or work <= 0:
            return
        per_unit = seconds / work
        if self.trial is None:
            self.recent.append(per_unit)
            return
        count, timings = self.trial[0]
        timings.append(per_unit)
        if len(timings) < TRIAL:
            return
        self.results[count] = statistics.median(timings[1:])  # the first woke the threads
        self.trial.pop(0)
        if not self.trial:
            self._decide()

    def _decide(self) -> None:
        best = min(self.results, key=self.results.get)
        if best != self.threads and self.results[best] < (1 - MARGIN) * self.results[self.threads]:
            self.threads, self.period, self.changes = best, PERIOD[0], self.changes + 1
            self.direction = -self.direction  # keep going the way that helped
        else:
            self.period = min(2 * self.period, PERIOD[1])
        self.baseline = self.results[self.threads]
        self.trial, self.recent = None, deque(maxlen=TRIAL)
        self.next_trial = self.clock() + self.period
        self._apply(self.threads)
