"""A clock that stands still while the process is stopped (Ctrl-Z, SIGSTOP): a suspended
`charrnn train --time 10m` goes on with the time it had left when it is continued (`fg`), and
an evaluation that a stop fell into is not taken for a slow one."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

BEAT_S = 0.1  # how often the watcher notes the time
GAP_S = 0.5  # a gap between its notes longer than this, with a SIGCONT, was a stop
# A gap the watcher found is kept this long for the SIGCONT handler, which runs in the main
# thread once that thread is back in Python (after a long step or evaluation piece)
KEPT_S = 30.0


class PauseClock:
    """time.perf_counter less the seconds the process spent stopped. A stopped process's threads
    all stand still: a watcher thread's notes of the time show the gap, and the SIGCONT that
    continues the process says it was a stop (not a thread kept waiting by a busy one)."""

    def __init__(self):
        self.stopped = 0.0  # seconds, so far
        self._last = time.perf_counter()  # the watcher's latest note
        self._gaps: list[tuple[float, float]] = []  # (when, seconds) the watcher found
        self._lock = threading.Lock()
        self._done = threading.Event()

    def __call__(self) -> float:
        return time.perf_counter() - self.stopped

    def _watch(self) -> None:
        while not self._done.wait(BEAT_S):
            now = time.perf_counter()
            with self._lock:
                self._gaps = [(when, gap) for when, gap in self._gaps if now - when < KEPT_S]
                if now - self._last > GAP_S:
                    self._gaps.append((now, now - self._last - BEAT_S))
                self._last = now

    def _continued(self, signum, frame) -> None:
        # the gap the watcher found on waking, or (where it has not run yet) the one it will
        now = time.perf_counter()
        with self._lock:
            found = [gap for when, gap in self._gaps if now - when < KEPT_S]
            gap = max([now - self._last - BEAT_S, *found])
            self._gaps.clear()
            self._last = now
        if gap > GAP_S:
            self.stopped += gap


@contextlib.contextmanager
def pause_clock():
    """A PauseClock for the block, watching the process's stops, or None where it cannot (no
    SIGCONT, not the main thread: time.perf_counter then serves)."""
    main = threading.current_thread() is threading.main_thread()
    if not hasattr(signal, "SIGCONT") or not hasattr(signal, "pthread_sigmask") or not main:
        yield None
        return
    clock = PauseClock()
    watcher = threading.Thread(target=clock._watch, name="charrnn-pauses", daemon=True)
    previous = signal.signal(signal.SIGCONT, clock._continued)
    # the watcher takes no signal: each goes to the main thread, as if it were alone (a stop
    # signal held back while torch loads stays held, and is not taken by the watcher instead)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        watcher.start()  # with every signal blocked, as it was started
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        yield clock
    finally:
        signal.signal(signal.SIGCONT, previous)
        clock._done.set()
