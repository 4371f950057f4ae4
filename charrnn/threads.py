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
MARGIN = 0.05  # more threads must be this much faster than the count in use to replace it;
# fewer need only be as fast (a tie leaves a core to the machine's other work)
CLEAR = 1.2  # a count whose first timing is this much slower than its rival has lost: the trial
# ends there, so a clear loser costs two units of work, not a whole trial (a win takes a whole one)
STALL = 5.0  # a count whose dropped timing is this much slower has lost at once: waking threads
# costs far less than a unit, but two threads switched back on beside a busy process stalled at
# every barrier, 100x one thread's unit (docs/commands.md, "Threads")
SHARE = 0.02  # a periodic trial's expected cost (what the count tried cost last time) is at most
# this share of the work since the last trial: a count that lost by far is tried more rarely
PERIOD = (10.0, 160.0)  # seconds of work between trials: the shortest, the longest after no change
CHANGE = 1.3  # a trial at once when the work gets this much slower (or faster) than last seen


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), or the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on this platform
        return os.cpu_count() or 1


def default_threads() -> int:
    """The most threads a tuner may use: torch's count, within the cores this process may use."""
    return min(usable_cores(), torch.get_num_threads())


def free_cores(most: int) -> int:
    """How many of `most` threads the cores left by other processes' running threads can take
    now (at least one). On a machine whose cores another program keeps busy, a count that
    shares a core with it stalls at every barrier from its first unit, before any trial could
    tell (docs/commands.md, "Threads"); where the load cannot be read, `most`."""
    others = _others_running()
    if others is None:
        return most
    return max(1, min(most, (os.cpu_count() or most) - others))


def _others_running(samples: int = 3) -> int | None:
    """The threads of other processes running or waiting for a core, the fewest of a few reads
    (a process that runs for a moment is not a load); None where Linux's /proc is not there."""
    try:
        counts = []
        for i in range(samples):
            if i:
                time.sleep(0.002)
            # the 4th field of /proc/loadavg: the machine's runnable threads (this one included)
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
            counts.append(running - _own_running())
        return max(0, min(counts))
    except (OSError, ValueError, IndexError):
        return None


def _own_running() -> int:
    """This process's threads running or runnable (libgomp's threads spin for a while after
    torch's last parallel work, and this thread is reading): they are not another's load."""
    count = 0
    for task in os.scandir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"{task.path}/stat") as f:
            # the state follows the name in parentheses, which may hold spaces
            count += f.read().rpartition(")")[2].split()[0] == "R"
    return count


@contextlib.contextmanager
def tuned_threads(enabled: bool = True) -> Iterator[ThreadTuner | None]:
    """A ThreadTuner (None if not `enabled`) for the block, starting on the cores free now;
    torch's thread count is restored."""
    before = torch.get_num_threads()
    try:
        yield ThreadTuner.on_free_cores() if enabled else None
    finally:
        torch.set_num_threads(before)


def timed(tuner: ThreadTuner | None, work: float = 1.0) -> contextlib.AbstractContextManager:
    """`tuner.measure(work)`, or nothing when there is no tuner."""
    return tuner.measure(work) if tuner is not None else contextlib.nullcontext()


class ThreadTuner:
    """Keeps torch's intra-op thread count at the fastest for the load on the machine now, fed
    the seconds of each unit of repeated work (`measure`, or `before` then `record`). A trial
    times a neighbouring count, then the count in use, within seconds, under the same load; a
    count adopted must win again in its first units, or the old count comes back. The schedule
    runs on the seconds of work fed, not the wall clock: time spent elsewhere brings no trial.
    """

    def __init__(
        self,
        most: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        start: int | None = None,
    ):
        self.most = max(1, most or default_threads())
        self.clock, self._set = clock, set_threads
        self.threads = min(self.most, start or self.most)  # the count in use
        self.period = PERIOD[0]
        self.direction = -1  # the neighbour the next trial tries: fewer threads first
        self.trial: list | None = None  # [(count, timings), ...] still to run; None: no trial
        self.results: dict[int, float] = {}  # the trial's seconds per unit, by count
        self.reference = 0.0  # seconds per unit at `threads` just before the trial
        self.baseline: float | None = None  # seconds per unit at `threads` when last measured
        self.recent: deque[float] = deque(maxlen=TRIAL)
        self.worked = 0.0  # seconds of work recorded: the clock the schedule runs on
        self.last_trial = 0.0  # `worked` when the last trial ended
        # As soon as TRIAL units were timed; started below `most` (cores were busy), after a
        # period: more threads would share a busy core, and a change of speed still calls a trial
        self.next_trial = -float("inf") if self.threads == self.most else PERIOD[0]
        self.extra: dict[int, float] = {}  # seconds per unit a count cost over `threads` when
        # last tried, under the load of now (forgotten when the load changes)
        self.trial_work = 1.0  # units of work a trial's timing covered last (a pass of `score`
        # is thousands of characters): what a trial costs is extra seconds per unit times this
        self.calm = 0.0  # work between trials the speed's changes bring: grows while they find
        # nothing (a noisy machine), back to 0 when one finds a better count
        self.changed = False  # the trial under way was brought by a change of speed
        self.confirm: tuple[int, float] | None = None  # after a change: (the old count, its
        # seconds per unit), until the new count's first TRIAL units confirm it
        self.changes = self.trials = 0  # counts adopted (or undone), trials run: for tests, benches
        self._applied: int | None = None  # what torch was last told
        self._apply(self.threads)

    @classmethod
    def on_free_cores(cls, most: int | None = None) -> ThreadTuner:
        """A tuner of up to `most` threads that starts on as many as the cores free now."""
        most = max(1, most or default_threads())
        return cls(most, start=free_cores(most))

    def first_trial_pending(self) -> bool:
        """Whether the first trial is under way, or comes right after the first TRIAL units (as
        it does on all threads; a tuner started on fewer waits a period): for a measurement that
        wants the count the tuner settles on."""
        return self.trial is not None or (self.trials == 0 and self.threads == self.most)

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

    def before(self) -> bool:
        """Set the count the next unit of work runs on (a trial may begin here); whether the unit
        is a trial's. Calling it again before `record` changes nothing, so a reader whose units
        can be made smaller (score) asks first and makes a trial's small: a count that stalls
        then costs a small unit, not a whole one."""
        if self.most == 1:
            return False
        if self.trial is None and self._due():
            neighbour = self._neighbour()
            self.direction = self.threads - neighbour  # the other side next time
            self.trial = [(neighbour, []), (self.threads, [])]
            self.results, self.trials = {}, self.trials + 1
            self.reference = statistics.fmean(self.recent)
        self._apply(self.trial[0][0] if self.trial else self.threads)
        return self.trial is not None

    def waking(self) -> bool:
        """Whether the unit `before` set up is the first a trial times on its count: it wakes the
        threads and is dropped, and a count that stalls shows there, so a reader that can make
        its units smaller keeps this one smallest and the trial's others a little larger."""
        return self.trial is not None and not self.trial[0][1]

    def _neighbour(self) -> int:
        n = self.threads + self.direction
        return n if 1 <= n <= self.most else self.threads - self.direction

    def _due(self) -> bool:
        if len(self.recent) < TRIAL:  # a short job never pays for a trial
            return False
        since = self.worked - self.last_trial
        if self.baseline is not None:
            ratio = statistics.fmean(self.recent) / self.baseline
            # Slower: a load came, fewer threads may help; faster: one left, more may help.
            side = -1 if ratio > 1 else 1
            changed = not 1 / CHANGE < ratio < CHANGE and 1 <= self.threads + side <= self.most
            # At once, unless the count cost more than the work since when it was last tried: a
            # noisy machine's ups and downs must not bring a dear count back every few units.
            if changed and since >= max(self.calm, self._cost(self.threads + side)):
                self.extra = {}  # what was learnt is stale under the new load
                self.changed, self.direction = True, side
                return True
        return self.worked >= self.next_trial and since >= self._cost(self._neighbour()) / SHARE

    def _cost(self, count: int) -> float:
        """What a trial of `count` will cost if it is as slow as last time: a clear loser costs
        its dropped timing and one more (CLEAR), any other count a whole trial."""
        extra = self.extra.get(count, 0.0)
        clear = self.baseline is not None and extra > (CLEAR - 1) * self.baseline
        return (2 if clear else TRIAL) * extra * self.trial_work

    def record(self, seconds: float, work: float = 1.0) -> None:
        """The last unit of work (run after `before`) took `seconds` for `work` units."""
        if self.most == 1 or work <= 0:
            return
        per_unit = seconds / work
        self.worked += seconds
        if self.trial is None:
            self.recent.append(per_unit)
            if self.baseline is None and len(self.recent) == TRIAL:  # the speed that a change of
                self.baseline = statistics.fmean(self.recent)  # speed is measured against
            if self.confirm is not None and len(self.recent) == TRIAL:
                self._confirm()
            return
        count, timings = self.trial[0]
        timings.append(per_unit)
        self.trial_work = work
        if len(timings) <= 2:  # the first that counts: a clear loser ends the trial at once (as
            # does a stall in the first, which is dropped as the threads' wake-up otherwise)
            # the count in use just before, or the count tried just now
            rival = self.reference if count != self.threads else min(self.results.values())
            if per_unit > (CLEAR if len(timings) == 2 else STALL) * rival:
                self.results[count] = per_unit
                self.results.setdefault(self.threads, rival)
                return self._decide()
        if len(timings) == TRIAL:
            # the mean, not the median: a count that often stalls (another process holds a core) is
            # slow by its stalls, which a median would hide; the first timing woke the threads
            self.results[count] = statistics.fmean(timings[1:])
            self.trial.pop(0)
            if not self.trial:
                self._decide()

    def _decide(self) -> None:
        tried = next(n for n in self.results if n != self.threads)
        if _beats(tried, self.results[tried], self.threads, self.results[self.threads]):
            self.extra = {self.threads: self.results[self.threads] - self.results[tried]}
            # the old count's mean over the trial and the units just before it: seven timings,
            # not three, for the new count's first units to be held against
            old = (TRIAL - 1) * self.results[self.threads] + TRIAL * self.reference
            self.confirm = (self.threads, old / (2 * TRIAL - 1))
            self.threads, self.period, self.changes = tried, PERIOD[0], self.changes + 1
            self.direction, self.calm = -self.direction, 0.0  # keep going the way that helped
        else:
            self.extra[tried] = self.results[tried] - self.results[self.threads]
            self.period = min(2 * self.period, PERIOD[1])
            if self.changed:  # a change of speed that no other count answers: noise, perhaps
                self.calm = min(max(2 * self.calm, PERIOD[0] / 8), PERIOD[0])
        self._settle(self.results[self.threads])

    def _confirm(self) -> None:
        """The first units on a count just adopted must beat the count it replaced, or it goes
        back: a trial that happened to time its winner in a quiet moment is undone at once."""
        (old, seconds), self.confirm = self.confirm, None
        now = statistics.fmean(self.recent)
        if not _beats(self.threads, now, old, seconds):
            self.extra = {self.threads: now - seconds}
            self.threads, self.changes = old, self.changes + 1
            self.period = min(2 * self.period, PERIOD[1])
            self._settle(seconds)

    def _settle(self, baseline: float) -> None:
        """End a trial (or undo a change): run on `threads` until the next one is due."""
        self.baseline, self.trial, self.changed = baseline, None, False
        self.recent = deque(maxlen=TRIAL)
        self.last_trial, self.next_trial = self.worked, self.worked + self.period
        self._apply(self.threads)


def _beats(count: int, seconds: float, rival: int, rival_seconds: float) -> bool:
    """Whether `count` threads, timed at `seconds` a unit, should replace `rival` at
    `rival_seconds`: more threads must be MARGIN faster; fewer need only be as fast. Sharing a
    step costs a barrier at every product and a core that other work could have, so a count that
    gains less than the noise of a trial is not worth them (one stream of a 1x512 LSTM on an AMD
    EPYC: one thread as fast or 5% faster, where a tie kept two; docs/commands.md, "Threads")."""
    if count > rival:
        return seconds < (1 - MARGIN) * rival_seconds
    return seconds <= rival_seconds
