"""ThreadTuner on a simulated machine: a clock that advances by what each thread count costs under
the load of the moment, so every behaviour is checked without timing anything real."""

from __future__ import annotations

import torch

from charrnn.threads import PERIOD, TRIAL, ThreadTuner, tuned_threads


class Machine:
    """Seconds per unit of work by thread count, changed by the test as loads come and go."""

    def __init__(self, cost: dict[int, float]):
        self.cost, self.now, self.threads, self.used = cost, 0.0, None, []

    def clock(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.threads = n

    def tuner(self, most: int) -> ThreadTuner:
        return ThreadTuner(most, clock=self.clock, set_threads=self.set_threads)

    def run(self, tuner: ThreadTuner, units: int) -> None:
        for _ in range(units):
            with tuner.measure():
                self.used.append(self.threads)
                self.now += self.cost[self.threads]


# Seconds per training step of the 1x768 model on 2 cores (measured, see threads.py)
IDLE = {1: 0.125, 2: 0.1}  # nothing else running: two threads win
BUSY = {1: 0.13, 2: 0.23}  # one core taken by another process: two threads stall each other


def test_stays_on_all_threads_when_idle_and_trials_cost_little():
    m = Machine(IDLE)
    tuner = m.tuner(2)
    m.run(tuner, 6000)  # ten minutes
    assert tuner.threads == 2 and tuner.changes == 0
    assert m.used.count(1) >= TRIAL  # it did look, but trials back off: under 0.5% of the time
    assert m.now < 1.005 * 6000 * IDLE[2]


def test_moves_to_one_thread_beside_a_busy_process_and_back_when_it_ends():
    m = Machine(IDLE)
    tuner = m.tuner(2)
    m.run(tuner, 3000)
    m.cost = BUSY  # a load appears: the slowdown brings a trial at once
    m.run(tuner, 3 * TRIAL)
    assert tuner.threads == 1
    start = m.now
    m.run(tuner, 3000)  # five minutes under load: within 2% of one thread throughout
    assert tuner.threads == 1 and m.now - start < 1.02 * 3000 * BUSY[1]
    m.cost = IDLE  # the load ends: one thread gets no faster, so a periodic trial must find it
    m.run(tuner, int(PERIOD[1] / IDLE[1]) + 10)
    assert tuner.threads == 2


def test_climbs_to_the_best_count_of_many_and_never_past_the_most():
    cost = {n: abs(n - 5) + 1.0 for n in range(1, 9)}  # 8 cores, 3 of them busy: 5 is best
    m = Machine(cost)
    tuner = m.tuner(8)
    m.run(tuner, 400)
    assert tuner.threads == 5
    assert max(m.used) <= 8 and min(m.used) >= 1
    m2 = Machine({n: 1.0 / n for n in range(1, 9)})  # more is always faster, but 4 is the most
    tuner = m2.tuner(4)
    m2.run(tuner, 400)
    assert tuner.threads == 4 and max(m2.used) == 4


def test_a_short_job_and_a_single_core_never_change_the_count():
    m = Machine(BUSY)
    tuner = m.tuner(2)
    m.run(tuner, TRIAL)
    assert set(m.used) == {2}
    m = Machine({1: 1.0})
    tuner = m.tuner(1)
    m.run(tuner, 100)
    assert set(m.used) == {1}


def test_noise_below_the_margin_does_not_move_it():
    m = Machine({1: 1.02, 2: 1.0})  # one thread 2% slower: within noise, keep what is in use
    tuner = m.tuner(2)
    m.run(tuner, 1000)
    assert tuner.changes == 0


def test_tuned_threads_restores_torchs_count():
    before = torch.get_num_threads()
    with tuned_threads() as tuner:
        tuner._apply(1)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with tuned_threads(enabled=False) as tuner:
        assert tuner is None
