"""ThreadTuner on a simulated machine: a clock that advances by what each thread count costs under
the load of the moment, so every behaviour is checked without timing anything real."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from conftest import drain, make_text, make_trainer

from charrnn import checkpoint, threads
from charrnn.model.config import ModelConfig
from charrnn.threads import PERIOD, TRIAL, ThreadTuner, free_cores, tuned_threads
from charrnn.train.config import TrainConfig
from charrnn.train.speed import training_speed
from charrnn.use import sampler, scoring
from charrnn.use.sampler import SampleConfig, Sampler
from charrnn.use.scoring import score_lines, score_text


class Machine:
    """Seconds per unit of work by thread count, changed by the test as loads come and go."""

    def __init__(self, cost: dict[int, float], noise: float = 0.0):
        self.cost, self.now, self.threads, self.used = cost, 0.0, None, []
        self.noise, self.rng = noise, random.Random(0)  # each unit off by up to +-noise, seeded
        self.best = 0.0  # what the best fixed count would have taken, noise included

    def clock(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.threads = n

    def tuner(self, most: int, start: int | None = None) -> ThreadTuner:
        return ThreadTuner(most, clock=self.clock, set_threads=self.set_threads, start=start)

    def run(self, tuner: ThreadTuner, units: int) -> None:
        for _ in range(units):
            noise = 1 + self.noise * self.rng.uniform(-1, 1)
            with tuner.measure():
                self.now += self.unit_cost() * noise
                self.used.append(self.threads)
            self.best += min(self.cost.values()) * noise

    def unit_cost(self) -> float:
        """Seconds of the next unit on the count in use, before noise."""
        return self.cost[self.threads]

    def share_of_best(self) -> float:
        """The throughput reached against the best fixed count's over the same units."""
        return self.best / self.now


# Seconds per training step of the 1x768 model on 2 cores (measured, see threads.py)
IDLE = {1: 0.125, 2: 0.1}  # nothing else running: two threads win
BUSY = {1: 0.13, 2: 0.23}  # one core taken by another process: two threads stall each other
HALF = {1: 0.2, 2: 0.1}  # idle, where one thread is half as fast: each trial of it costs most


def test_stays_on_all_threads_when_idle_and_trials_cost_little():
    m = Machine(IDLE)
    tuner = m.tuner(2)
    m.run(tuner, 6000)  # ten minutes
    assert tuner.threads == 2 and tuner.changes == 0
    assert m.used.count(1) >= TRIAL  # it did look, but trials back off: under 0.5% of the time
    assert m.now < 1.005 * 6000 * IDLE[2]


def test_idle_where_one_thread_is_half_as_fast_trials_cost_under_two_percent():
    m = Machine(HALF)
    tuner = m.tuner(2)
    m.run(tuner, 300)  # 30 seconds: the first trials, the dearest part of a run
    assert tuner.threads == 2 and tuner.changes == 0
    assert m.share_of_best() >= 0.98
    m.run(tuner, 5700)  # ten minutes: trials of a clear loser back off further
    assert m.share_of_best() >= 0.995


def test_a_noisy_machine_neither_trials_all_the_time_nor_keeps_a_lucky_loser():
    m = Machine(HALF, noise=0.5)  # every unit up to 50% slower or faster, at random
    tuner = m.tuner(2)
    m.run(tuner, 6000)
    assert tuner.threads == 2 and m.share_of_best() >= 0.98
    m = Machine(BUSY, noise=0.2)
    tuner = m.tuner(2)
    m.run(tuner, 460)  # a minute beside a busy process from the start
    assert tuner.threads == 1 and m.share_of_best() >= 0.95


def test_on_a_crowded_machine_a_slowdown_at_one_thread_brings_no_trial_of_two():
    m = Machine({1: 0.3, 2: 1.3}, noise=0.5)  # others hold the cores: two threads stall often
    tuner = m.tuner(2)
    m.run(tuner, 1000)
    assert tuner.threads == 1 and m.used.count(2) <= 20  # the first steps, then few trials
    assert m.share_of_best() >= 0.9


def test_a_count_that_stalls_now_and_then_is_judged_by_its_stalls():
    m = Machine({1: 0.2, 2: 0.1})
    tuner = m.tuner(2)
    for unit in range(3000):  # two threads: fast, but every third step stalls (a core is taken)
        with tuner.measure():
            m.used.append(m.threads)
            m.now += 1.0 if m.threads == 2 and unit % 3 == 0 else m.cost[m.threads]
    assert tuner.threads == 1 and m.used.count(2) < 100


def test_beside_a_busy_process_from_the_start_it_is_within_five_percent_of_one_thread():
    m = Machine(BUSY)
    tuner = m.tuner(2)
    m.run(tuner, 230)  # 30 seconds
    assert tuner.threads == 1 and m.share_of_best() >= 0.95
    m.run(tuner, 4370)  # ten minutes
    assert m.share_of_best() >= 0.99


def test_started_on_the_cores_a_busy_process_leaves_it_never_shares_one_in_a_short_job():
    m = Machine({1: 0.045, 2: 4.2})  # two threads beside it stall from the first unit (AVX2)
    tuner = m.tuner(2, start=1)  # what free_cores reads beside one busy process on 2 cores
    m.run(tuner, 220)  # `charrnn score` of 200,000 characters: under 10 s of work
    assert set(m.used) == {1} and m.share_of_best() == 1.0
    m.run(tuner, 13000)  # ten minutes: periodic trials of two, each cut after its stalled unit
    assert tuner.threads == 1 and m.share_of_best() >= 0.98


def test_started_on_one_thread_by_a_passing_load_it_finds_all_threads():
    m = Machine(IDLE)  # the load read at the start was gone by the first unit
    tuner = m.tuner(2, start=1)
    m.run(tuner, int(PERIOD[0] / IDLE[1]) + 3 * TRIAL)  # the first periodic trial finds two
    assert tuner.threads == 2
    m.run(tuner, 6000)
    assert m.share_of_best() >= 0.98
    m = Machine(BUSY)  # started on one thread; the busy process ends after a few units
    tuner = m.tuner(2, start=1)
    m.run(tuner, 2 * TRIAL)
    m.cost = {1: 0.125, 2: 0.06}  # one thread 4% faster, two threads twice as fast
    m.run(tuner, 2 * TRIAL)  # not noticed by a change of speed...
    m.cost = {1: 0.09, 2: 0.045}  # ... but this one is: a trial at once, before the period
    m.run(tuner, 4 * TRIAL)
    assert tuner.threads == 2 and m.now < PERIOD[0]


def test_free_cores_leaves_a_busy_processs_core_to_it():
    most = os.cpu_count() or 1
    assert 1 <= free_cores(most) <= most and free_cores(1) == 1
    busy = subprocess.Popen(
        [sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert busy.stdout.readline() == "spinning\n"  # running, and runnable until killed
        if not Path("/proc/loadavg").exists():
            assert free_cores(most) == most  # nothing to read: all of them
        else:
            assert free_cores(most) <= max(1, most - 1)
    finally:
        busy.kill()
        busy.wait()


class Switched(Machine):
    """Beside a busy process, two threads that ran well from the start stall at every barrier once
    switched back on after one thread: `stall` seconds a unit (seen on a 2-core AVX2 machine:
    `charrnn score`'s units took 4.2 s on two threads again against 45 ms on one)."""

    def __init__(self, cost: dict[int, float], stall: float, noise: float = 0.0):
        super().__init__(cost, noise)
        self.stall = stall

    def unit_cost(self) -> float:
        stalled = self.threads == 2 and 1 in self.used
        return self.stall if stalled else self.cost[self.threads]


def test_two_threads_that_stall_once_switched_back_cost_one_unit_a_trial():
    m = Switched({1: 0.045, 2: 0.1}, stall=4.2, noise=0.5)
    tuner = m.tuner(2)
    m.run(tuner, 21)  # `charrnn score` of 20,000 characters: the first units, then the trial
    assert tuner.threads == 1 and m.used.count(2) == TRIAL + 1  # one stalled unit, not two
    m.run(tuner, 13000)  # ten minutes: the noise at one thread brings few trials of two
    assert m.used.count(2) <= TRIAL + 6 and m.share_of_best() >= 0.95


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


def test_a_tie_goes_to_fewer_threads_and_more_must_win_by_the_margin():
    """Sharing a step costs barriers and a core: fewer threads replace more when as fast, more
    replace fewer only when MARGIN faster, both at a trial and at the check of the first units."""
    for cost in (
        {1: 0.97, 2: 1.0},
        {1: 1.0, 2: 1.0},
    ):  # one thread 3% faster (below the margin), level
        m = Machine(cost)
        tuner = m.tuner(2)
        m.run(tuner, 1000)
        assert tuner.threads == 1 and tuner.changes == 1  # adopted at the first trial, and kept
        assert m.share_of_best() >= 0.995  # the periodic trials of two included
    m = Machine({1: 1.0, 2: 0.97})  # two threads 3% faster: not worth a second core
    tuner = m.tuner(2, start=1)
    m.run(tuner, 1000)
    assert tuner.threads == 1 and tuner.trials >= 1 and tuner.changes == 0


def test_tuned_threads_restores_torchs_count():
    before = torch.get_num_threads()
    with tuned_threads() as tuner:
        tuner._apply(1)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with tuned_threads(enabled=False) as tuner:
        assert tuner is None


@pytest.fixture(params=[2, 1], ids=["idle", "busy"])
def two_thread_tuners(request, monkeypatch):
    """Tuners of up to two threads, starting on two (an idle machine) or one (a busy one): the
    suite runs torch on one thread, where every tuner is off."""
    monkeypatch.setattr(threads, "default_threads", lambda: 2)
    monkeypatch.setattr(threads, "free_cores", lambda most: min(most, request.param))
    monkeypatch.setattr(sampler, "default_threads", lambda: 2)
    monkeypatch.setattr(sampler, "BATCH_MACS", 0)  # a batch of tiny streams shares its steps
    return request.param


def test_the_real_work_runs_on_a_tuner_of_two_threads(two_thread_tuners, tmp_path, text):
    config = ModelConfig(vocab_size=20, embedding_dim=8, hidden_size=16, num_layers=1)
    rate = training_speed(config, TrainConfig(batch_size=4, seq_len=8, lr=1e-3))  # `--size auto`
    assert math.isfinite(rate) and rate > 0
    trainer = make_trainer(text, tmp_path / "run", max_steps=12)
    events = drain(trainer)
    assert trainer.pos.step == 12 and events
    assert torch.get_num_threads() == 1  # given back as it was
    model = checkpoint.load_model(trainer.run_dir.last)
    piece = text[:9000]  # read as two streams, each timed for the tuner
    assert score_text(model, piece) == pytest.approx(score_text(model, piece, streams=1), rel=1e-3)
    lines = piece.splitlines(keepends=True)[:200]  # `score --per-line`: lines side by side
    assert all(math.isfinite(x) for x in score_lines(model, [x for x in lines if x], batch=8))
    steps = list(Sampler(model, SampleConfig(seed=1, num_samples=3)).generate(300))
    assert len(steps) == 300 and all(len(chars) == 3 for chars in steps)
    assert torch.get_num_threads() == 1


def test_score_reads_a_trials_passes_short_so_a_stalling_count_costs_little(
    monkeypatch, trained_run
):
    """`score` beside a busy process: two threads stall at every character of the recurrence,
    12x one thread (measured: a 256-column pass 4.2 s against 0.35 s). The tuner starts on one
    thread and tries two after a period; that trial's passes are short."""
    per_char = {1: 1e-3, 2: 12e-3}  # simulated seconds a character, by thread count
    units = []  # (threads, characters, whether a trial's) of each pass

    class Stalling(ThreadTuner):
        def record(self, seconds: float, work: float = 1.0) -> None:
            units.append((self._applied, work, self.trial is not None))
            super().record(per_char[self._applied] * work, work)

    tuner = Stalling(2, set_threads=lambda n: None, start=1)
    monkeypatch.setattr(scoring, "tuned_threads", lambda enabled=True: nullcontext(tuner))
    model = checkpoint.load_model(trained_run.best)
    piece = make_text(60_000, seed=3)
    nats = score_text(model, piece)
    streams = len(scoring.split(len(piece)))
    # one trial: its stall (seconds a character, times the characters of a pass) is what a
    # next one would cost, and over a minute of work that is more than a trial may cost
    assert tuner.trials == 1 and tuner.threads == 1
    assert all(chars <= scoring.TRIAL_COLS * streams for _, chars, trial in units if trial)
    assert any(chars > scoring.TRIAL_COLS * streams for _, chars, trial in units if not trial)
    # what one thread alone would have taken, against what the tuned read took
    spent = sum(per_char[threads] * chars for threads, chars, _ in units)
    assert sum(chars for _, chars, _ in units) * per_char[1] / spent >= 0.9
    monkeypatch.setattr(scoring, "tuned_threads", lambda enabled=True: nullcontext(None))
    assert nats == pytest.approx(score_text(model, piece), rel=1e-6)  # the passes' widths aside


@pytest.mark.parametrize("faster", [1, 2])
def test_one_stream_of_a_large_model_samples_on_the_count_that_steps_faster(
    monkeypatch, trained_run, faster
):
    """Two cores that read memory faster than one (or not): the tuner keeps the count whose
    steps are faster, fed units of TUNED_STEPS steps (a trial's of one step, so that a count
    that stalls costs little, the others of TRIAL_STEPS), and the text is what one thread
    writes."""
    monkeypatch.setattr(sampler, "default_threads", lambda: 2)
    monkeypatch.setattr(sampler, "STREAM_MACS", 0)  # the tiny model as if its weights were large
    model = checkpoint.load_model(trained_run.best)
    assert sampler.sampling_threads(model.net, 1) == 2
    per_step = {faster: 1e-3, 3 - faster: 1.5e-3}  # simulated seconds a step, by thread count
    units = []  # (steps, whether a trial's, whether its count's first in the trial) of each unit

    class Simulated(ThreadTuner):
        def record(self, seconds: float, work: float = 1.0) -> None:
            units.append((work, self.trial is not None, self.waking()))
            super().record(per_step[self._applied] * work, work)

    tuned = Sampler(model, SampleConfig(seed=4))
    tuned.tuner = Simulated(2, set_threads=lambda n: None, start=2)
    length = 30 * sampler.TUNED_STEPS
    text = "".join(c for [c] in tuned.generate(length))
    assert tuned.tuner.threads == faster and tuned.tuner.trials >= 1
    assert {steps for steps, trial, first in units if first} == {1}
    assert {steps for steps, trial, first in units if trial and not first} == {sampler.TRIAL_STEPS}
    assert {steps for steps, trial, _ in units if not trial} == {sampler.TUNED_STEPS}
    assert sum(steps for steps, _, _ in units) > length - sampler.TUNED_STEPS  # all but a last part
    monkeypatch.setattr(sampler, "default_threads", lambda: 1)
    assert text == "".join(c for [c] in Sampler(model, SampleConfig(seed=4)).generate(length))
