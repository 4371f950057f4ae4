"""Evaluations under a time budget (train/evalplan.py): their size and schedule keep them within a
share of the budget, the run keeps time for its final evaluation and ends within the budget, and
the start-up counts. Every clock here is simulated: no test depends on how fast this machine is."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import drain, make_text, make_trainer
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.cli.report import part_read_note
from charrnn.train import coldstart, evalplan
from charrnn.train import trainer as trainer_module
from charrnn.train.evalplan import EvalBudget, EvalCost, EvalSize
from charrnn.train.evaluate import evaluate
from charrnn.train.trainer import DoneEvent, EvalEvent, StepEvent

# Measured shapes of cost (seconds a character read: per step, per stream side by side): a tiny
# model (its time is its steps), the medium preset, and 5,000 characters of vocabulary.
COSTS = {
    "small model": EvalCost(step=4e-4, row=1e-4, start=2e-2),
    "medium": EvalCost(step=5e-4, row=2e-4, start=5e-2),
    "large vocabulary": EvalCost(step=3e-4, row=1e-3, start=1e-1),
    # a GPU: each character's step waits on the kernels' latency, the streams side by side are free
    "GPU": EvalCost(step=55e-6, row=0.0, start=8e-3),
}
FULL = EvalSize(streams=32, chars=7812, starts=256)


def simulate(
    max_time: float,
    cost: EvalCost,
    step_s: float,
    every: int,
    drift: float = 1.1,
    busy: tuple[float, float] = (math.inf, 1.0),
    told: bool = True,
):
    """A run under `max_time` on a simulated clock: steps of `step_s`, an evaluation scheduled
    every `every` steps, each taking `drift` times what the model of its cost says; from `busy`'s
    second on, everything `busy`'s factor times slower (another process took the cores), the
    budget `told` each step's seconds as the trainer tells it. Returns the seconds evaluations
    took, the run's wall time and the evaluations made."""
    evals = evalplan.default_evals(max_time, cost, FULL.streams, every * 32 * 64)
    size = evalplan.choose_size(max_time, FULL, cost, evals)
    budget = EvalBudget(max_time, size, cost)
    elapsed, spent, made, step = 0.0, 0.0, 0, 0
    slow = lambda: busy[1] if elapsed >= busy[0] else 1.0  # noqa: E731
    while step == 0 or elapsed + step_s * slow() + budget.reserve() < max_time:
        elapsed, step = elapsed + step_s * slow(), step + 1
        if told:
            budget.stepped(step_s * slow())
        if step % every == 0 and budget.due(elapsed):
            took = drift * cost.of(size) * slow()
            elapsed, spent, made = elapsed + took, spent + took, made + 1
            budget.measured(elapsed, took, 0.0, 0.0)
    took = drift * cost.of(size) * slow()  # the final evaluation
    return spent + took, elapsed + took, made + 1


@pytest.mark.parametrize("name", list(COSTS))
@pytest.mark.parametrize("max_time", [120, 137, 600, 3600, 36_000])
def test_evaluations_spend_at_most_three_percent_of_a_budget_of_two_minutes_or_more(name, max_time):
    spent, wall, made = simulate(max_time, COSTS[name], step_s=0.05, every=64)
    assert spent <= evalplan.SHARE * max_time, (spent, made)
    assert wall <= max_time
    assert made >= 1


# (on the GPU an evaluation costs too little for the steps' news of a slowdown to change the end)
@pytest.mark.parametrize("name", [name for name in COSTS if name != "GPU"])
@pytest.mark.parametrize("busy", [(10.0, 4.0), (40.0, 20.0), (80.0, 10.0)])
def test_a_machine_that_gets_busy_mid_run_still_ends_within_the_budget(name, busy):
    # Seen: a second training process on a 2-core machine made steps 17x and the final
    # evaluation 20x slower from the 40th second on; the run ended 14% late.
    _, wall, _ = simulate(137, COSTS[name], step_s=0.05, every=64, busy=busy)
    assert wall <= 137 * 1.05
    _, late, _ = simulate(137, COSTS[name], step_s=0.05, every=64, busy=busy, told=False)
    assert late > wall  # what the steps tell is what keeps it in


def test_a_long_budget_evaluates_more_often_and_a_cheap_evaluation_reads_everything():
    cheap = EvalCost(step=1e-7, row=1e-9, start=1e-6)
    assert evalplan.choose_size(600, FULL, cheap, 16) == FULL
    _, _, short = simulate(137, COSTS["medium"], 0.05, 64)
    _, _, long = simulate(3600, COSTS["medium"], 0.05, 64)
    assert 1 <= short < long


def test_the_size_shrinks_the_characters_of_each_stream_first():
    size = evalplan.choose_size(600, FULL, COSTS["small model"], 4)
    assert size.streams == FULL.streams and size.chars < FULL.chars
    assert size.chars >= evalplan.MIN_CHARS and size.starts >= evalplan.MIN_STARTS


def test_every_stream_is_read_where_an_evaluation_before_the_final_fits_that_way():
    # Seen on a GPU: the plan read the first 4 of 32 streams (free to read on a GPU, so leaving
    # them out saved nothing), and the run's validation loss read 0.137 nats below the whole
    # split's for the same checkpoint.
    gpu = COSTS["GPU"]
    assert evalplan.choose_size(137, FULL, gpu, 16).streams == FULL.streams
    # The medium model for 20 minutes on a CPU: every stream at the floor pays for fewer
    # evaluations than planned; fewer run, each reading every stream.
    medium = COSTS["medium"]
    planned = evalplan.default_evals(1200, medium, FULL.streams, 64 * 32 * 64)
    size = evalplan.choose_size(1200, FULL, medium, planned)
    assert size.streams == FULL.streams and size.chars == evalplan.MIN_CHARS
    spent, _, made = simulate(1200, medium, step_s=0.05, every=64)
    assert 2 <= made < planned and spent <= evalplan.SHARE * 1200


def test_no_scheduled_evaluation_comes_just_before_the_final_one():
    # Seen: a scheduled evaluation 3 steps before the final one, two lines that said the same.
    cost = COSTS["small model"]
    budget = EvalBudget(600, EvalSize(32, 500, 64), cost)
    assert budget.due(budget.next_at)  # its turn, with a run's worth of training after it
    last = 600 - budget.predicted() - budget.reserve()  # the latest it would still fit
    assert not budget.due(last - 0.05)  # a step or so before the final one: not worth a line
    early = EvalBudget(600, EvalSize(32, 500, 64), cost, early_stop=True)
    assert early.due(last - 0.05)  # early stopping acts through every evaluation that fits


def test_a_run_that_stops_early_reads_the_whole_split_at_every_evaluation():
    from charrnn.train.config import TrainConfig
    from charrnn.train.state import Position

    def planned(patience):
        c = TrainConfig(batch_size=32, seq_len=32, lr=1e-3, max_time=80.0, patience=patience)
        pos = Position()
        size = evalplan.plan(c, FULL, COSTS["medium"], pos).size
        assert pos.eval_size == size.to_dict()  # kept for the run: its losses compare
        return size

    shrunk, whole = planned(None), planned(4)
    assert shrunk.chars < FULL.chars  # a short budget's plan reads part of each stream
    assert whole == EvalSize(FULL.streams, FULL.chars, shrunk.starts)  # the cold starts planned


def test_the_plan_counts_what_the_probe_spent():
    # Seen: 611 distinct characters, --time 3m: every stream fitted two evaluations of the
    # allowance, but not once the probe's 0.21 s were counted, and the run made none before its
    # final one.
    cost = EvalCost(step=1.12e-4, row=5.41e-5, start=3.34e-2, fixed=7.8e-2, probe=0.212)
    full = EvalSize(streams=32, chars=2853, starts=256)
    budget = EvalBudget(180, evalplan.choose_size(180, full, cost, 2), cost)
    assert budget.next_at < math.inf  # one evaluation before the final is scheduled


def test_where_every_stream_fits_no_evaluation_before_the_final_the_final_reads_what_fits():
    medium, allow = COSTS["medium"], evalplan.TARGET * 200 / evalplan.PROBE_MARGIN
    size = evalplan.choose_size(200, FULL, medium, 2)
    assert medium.of(size) <= allow  # the final evaluation fits
    wider = evalplan.EvalSize(size.streams + 1, size.chars, size.starts)
    assert evalplan.MIN_STREAMS < size.streams < FULL.streams and medium.of(wider) > allow


seconds = st.floats(1e-7, 1.0)  # a step, a stream's share of one, a cold start: any machine


@settings(max_examples=300, deadline=None)
@given(
    cost=st.builds(
        EvalCost,
        step=seconds,
        row=st.one_of(st.just(0.0), seconds),
        start=seconds,
        probe=st.floats(0.0, 10.0),
    ),
    streams=st.integers(1, 256),
    chars=st.integers(1, 20_000),
    starts=st.integers(0, 256),
    max_time=st.floats(10, 100_000),
    evals=st.integers(1, evalplan.MAX_EVALS),
)
def test_the_size_reads_every_stream_where_it_can_and_the_final_evaluation_fits(
    cost, streams, chars, starts, max_time, evals
):
    full = EvalSize(streams, chars, starts)
    size = evalplan.choose_size(max_time, full, cost, evals)
    allow = (evalplan.TARGET * max_time - cost.probe) / evalplan.PROBE_MARGIN
    assert 1 <= size.streams <= full.streams and size.chars <= full.chars
    assert size.starts <= full.starts
    floor = EvalSize(streams, min(evalplan.MIN_CHARS, chars), min(evalplan.MIN_STARTS, starts))
    if cost.of(floor) * min(evals, 2) <= allow:  # an evaluation before the final fits, whole-wide
        assert size.streams == full.streams and size.chars >= floor.chars
        assert size.starts >= floor.starts
    least = EvalSize(1, min(evalplan.LEAST[1], chars), min(evalplan.LEAST[2], starts))
    if cost.of(least) <= allow:  # whatever fits at all, the final evaluation does
        assert cost.of(size) <= allow


class Clock:
    """A simulated clock: what the code under test reads as time.perf_counter."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slow(monkeypatch):
    """A clock on which a step takes 0.5 s, a validation character read 1 ms and a cold start
    60 ms (less in short streams, as in the check), what the probe is told too."""
    clock = Clock()
    clock.read_s, clock.start_s = 1e-3, 0.06  # a test may make them cheaper than the probe says
    real_step, real_check = trainer_module.Trainer.train_step, coldstart.check
    real_evaluate = trainer_module.evaluate

    def step(self):
        clock.now += 0.5
        return real_step(self)

    def read(model, batches, *args, streams=None, chars=None, **kw):
        clock.now += clock.read_s * streams * chars
        return real_evaluate(model, batches, *args, streams=streams, chars=chars, **kw)

    def check(model, ids, warm, starts=256, **kw):
        longest = float(warm.context.max()) + 1  # in short streams the windows shrink
        clock.now += clock.start_s * starts * min(1.0, longest / evalplan.WHOLE_WINDOWS)
        return real_check(model, ids, warm, starts, **kw)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step)
    monkeypatch.setattr(trainer_module, "evaluate", read)
    monkeypatch.setattr(coldstart, "check", check)
    monkeypatch.setattr(evalplan, "probe", lambda *a: EvalCost(step=0.0, row=1e-3, start=0.06))
    return clock


def test_a_time_budget_keeps_its_final_evaluation_and_ends_within_it(tmp_path, slow):
    text = make_text(30_000, seed=3)
    # tiny, not auto: auto stops a text read this often early, evaluating every scheduled time
    trainer = make_trainer(text, tmp_path / "r", size="tiny", max_time=120.0, eval_every=10)
    trainer.clock, trainer.started = slow, slow.now - 10.0  # 10 s of start-up before run()
    events = drain(trainer)
    evals = [e.record for e in events if isinstance(e, EvalEvent)]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "time"
    assert evals[-1]["step"] == steps[-1].step  # the final evaluation, after the last step
    assert slow.now - (1000.0 - 10.0) <= 120.0  # the whole command, start-up included
    assert trainer.pos.elapsed == pytest.approx(slow.now - 990.0)
    assert sum(r["eval_seconds"] for r in evals) <= evalplan.SHARE * 120.0
    assert all(r["val_chars"] == evals[0]["val_chars"] for r in evals)  # one size for the run
    assert trainer.pos.eval_size == trainer.budget.size.to_dict()
    assert steps[-1].lr < 0.1 * trainer.config.lr  # the schedule ends where training does
    # a part of the split read, which the end of the run says
    b = trainer.val_batches
    read, whole = trainer.val_read()
    assert read == evals[-1]["val_chars"] < whole == b.batch_size * b.stream_len
    assert f" read {read:,} of the {whole:,} validation characters" in part_read_note(trainer)


def test_with_early_stopping_every_scheduled_evaluation_runs_in_time(tmp_path, slow):
    # A fine-tune's patience acts only through evaluations: a 3% share must not starve them.
    def scheduled(patience):
        trainer = make_trainer(
            make_text(30_000, seed=3), tmp_path / str(patience), max_time=120.0, eval_every=10,
            patience=patience, size="tiny",
        )  # fmt: skip
        trainer.clock, trainer.started = slow, slow.now
        start = slow.now
        evals = [e.record["step"] for e in drain(trainer) if isinstance(e, EvalEvent)]
        assert slow.now - start <= 120.0
        return [s for s in evals if s % 10 == 0], trainer.pos.step

    evaluated, steps = scheduled(patience=1000)
    assert evaluated == list(range(10, steps + 1, 10))[: len(evaluated)]
    assert len(evaluated) >= steps // 10 - 1  # all but, at most, the one the final replaced
    assert len(scheduled(patience=None)[0]) < len(evaluated) / 2  # what the share allows


def test_start_up_that_eats_the_budget_still_trains_a_step_and_evaluates(tmp_path, slow):
    trainer = make_trainer(make_text(30_000, seed=3), tmp_path / "r", max_time=120.0)
    trainer.clock, trainer.started = slow, slow.now - 200.0
    events = drain(trainer)
    assert [type(e) for e in events[-3:]] == [StepEvent, EvalEvent, DoneEvent]
    assert trainer.pos.step == 1


def test_a_stopped_run_counts_the_step_its_stop_waited_for(tmp_path, slow):
    """A stop asked for during a step ends the run after it; that step's time is in the budget the
    resume goes on counting (last.pt's elapsed)."""
    trainer = make_trainer(make_text(30_000, seed=3), tmp_path / "r", max_time=120.0)
    trainer.clock, trainer.started = slow, slow.now
    for event in trainer.run():
        if isinstance(event, StepEvent) and event.step == 3:
            trainer.request_stop()
    assert trainer.pos.step == 3
    assert checkpoint.load_run(trainer.run_dir.last).position.elapsed == pytest.approx(
        slow.now - 1000.0
    )


def test_a_step_budget_reads_the_whole_validation_split(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=20)
    records = [e.record for e in drain(trainer) if isinstance(e, EvalEvent)]
    b = trainer.val_batches
    assert all(r["val_chars"] == b.batch_size * b.stream_len for r in records)
    assert trainer.val_read() == (records[-1]["val_chars"],) * 2 and not part_read_note(trainer)
    assert all(r["cold_start"]["starts"] == 256 for r in records if r["cold_start"])
    assert trainer.pos.eval_size is None


def test_the_smallest_evaluation_picks_a_best_checkpoint_as_good_as_the_full_reads(tmp_path):
    """Over the evaluations of one small run that learns its text by heart (so that its best is
    not its last), the floor of a time budget's evaluation picks a best that the full validation
    read finds as good as its own pick, to 0.005 nats (near-ties may go either way)."""
    text = make_text(20_000, seed=11)
    # (480 steps overfit by 0.004 on one machine's arithmetic: too near a tie to tell picks apart)
    train = {"batch_size": 16, "lr": 3e-2, "max_steps": 640, "eval_every": 40}
    model = {"hidden_size": 64, "input_dropout": 0.0}
    trainer = make_trainer(text, tmp_path / "r", model=model, **train)
    full, part = [], []
    few = EvalSize(evalplan.MIN_STREAMS, evalplan.MIN_CHARS, evalplan.MIN_STARTS)
    for event in trainer.run():
        if isinstance(event, EvalEvent):
            full.append(event.record["val_loss"])
            small = evaluate(trainer.trained, trainer.val_batches, streams=few.streams)
            part.append(small.loss)
    best = min(full)
    assert full[0] > best and full[-1] > best + 0.005  # the run overfits: the choice matters
    picked = min(range(len(part)), key=part.__getitem__)
    assert full[picked] - best < 0.005, (full, part)


def test_early_stopping_checks_cold_starts_first_last_and_as_the_allowance_pays(
    tmp_path, slow, monkeypatch
):
    """With early stopping every evaluation reads the whole split (their losses decide the stop);
    the cold-start check runs at the first, at the one that ends the run and between as far as
    the share of the budget pays."""
    # 20 s of training between two evaluations; a read of 3,000 characters 0.3 s, a check 0.4 s
    slow.read_s, slow.start_s = 1e-4, 0.02
    text = make_text(30_000, seed=11)
    # A patience the run never spends: where it ends, and so how many evaluations it makes, is
    # the budget's, whatever the arithmetic (patience 2 ended it at the 4th on an AVX2 machine,
    # too few for a check between to be due)
    train = {"batch_size": 16, "lr": 3e-2, "eval_every": 40, "patience": 50, "max_time": 240.0}

    trainer = make_trainer(text, tmp_path / "r", model={"hidden_size": 64}, **train)
    trainer.clock, trainer.started = slow, slow.now
    events = drain(trainer)
    evals = [e.record for e in events if isinstance(e, EvalEvent)]
    checked = [r["cold_start"] is not None for r in evals]
    assert events[-1].reason == "time" and trainer.config.patience == 50
    assert checked[0] and checked[-1] and 0 < sum(checked[1:-1]) < len(evals) - 2, checked
    # the share of the time so far (a time budget's progress), the final evaluation on top
    assert sum(r["eval_seconds"] for r in evals[:-1]) <= evalplan.TARGET * evals[-1]["elapsed"]


@pytest.mark.parametrize("at, stall", [(105.0, 12.0), (60.0, 3.0), (80.0, 3.0)])
def test_the_evaluation_that_ends_a_run_is_the_last_and_checks_even_after_a_slow_read(
    tmp_path, slow, monkeypatch, at, stall
):
    # Seen: two busy processes made an evaluation's read 3x slower than predicted near the end of
    # the budget; the run took it for one with time left, then found the time spent, and ended
    # with it unchecked. And where one slow read made the next evaluations' predictions too high,
    # an evaluation took itself for the final one, then a few steps and another evaluation came.
    read, begun, stalled = trainer_module.evaluate, slow.now, []

    def busy_once(*args, **kwargs):
        if slow.now - begun > at and not stalled:  # one read far slower than the last ones
            slow.now += stall
            stalled.append(slow.now)
        return read(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate", busy_once)
    slow.read_s, slow.start_s = 1e-4, 0.02
    text = make_text(30_000, seed=3)
    train = {"max_time": 120.0, "eval_every": 10, "patience": 1000}
    trainer = make_trainer(text, tmp_path / "r", size="tiny", **train)
    trainer.clock, trainer.started = slow, slow.now
    events = drain(trainer)
    evals = [e.record for e in events if isinstance(e, EvalEvent)]
    assert events[-1].reason == "time"
    assert evals[-1]["cold_start"] is not None and evals[-1]["step"] == trainer.pos.step
    # the first and the last checked (3% of 120 s pays for none between: a read costs 0.3 s)
    assert [r["cold_start"] is not None for r in evals].count(True) == 2


def test_an_evaluation_that_finds_the_time_left_only_for_itself_is_the_last(
    tmp_path, slow, monkeypatch
):
    # Its check ran as the final one's: no step and no second evaluation may follow it, even
    # where what comes after it turns out quicker than predicted.
    after_read, begun = EvalBudget.after_read, slow.now

    def pessimist(self, read_s):
        rest, reserve = after_read(self, read_s)
        return (rest + 30.0, reserve) if slow.now - begun > 80.0 else (rest, reserve)

    monkeypatch.setattr(EvalBudget, "after_read", pessimist)
    train = {"max_time": 120.0, "eval_every": 10, "patience": 1000}
    trainer = make_trainer(make_text(30_000, seed=3), tmp_path / "r", size="tiny", **train)
    trainer.clock, trainer.started = slow, slow.now
    events = drain(trainer)
    evals = [e.record for e in events if isinstance(e, EvalEvent)]
    assert events[-1].reason == "time" and evals[-1]["step"] == trainer.pos.step
    assert 80.0 < evals[-1]["elapsed"] < 90.0  # the first after 80 s: it judged itself final
    assert evals[-1]["cold_start"] is not None


def test_an_evaluation_without_a_check_still_predicts_the_final_one_with_it():
    budget = EvalBudget(600, EvalSize(32, 500, 64), COSTS["medium"], early_stop=True)
    assert budget.check_due(0.0, final=False, read_s=1.0)  # the first evaluation checks
    budget.measured(30.0, read_s=1.0, check_s=2.0, save_s=0.5)
    assert not budget.check_due(0.1, final=False, read_s=1.0)  # 6.5 s, the share 1.5 s by now
    assert budget.check_due(0.1, final=True, read_s=1.0)
    budget.measured(60.0, read_s=1.0, check_s=None, save_s=0.5)
    assert budget.predicted() == pytest.approx(3.5)  # the final's read, check and checkpoints
    assert budget.spent == pytest.approx(COSTS["medium"].probe + 5.0)  # but no check was made
    assert not budget.check_due(0.5, final=False, read_s=1.0)  # 8 s, the share 7.5 s
    assert budget.check_due(0.6, final=False, read_s=1.0)  # the share 9 s


def test_the_cold_start_check_changes_nothing_but_the_time(tmp_path, monkeypatch):
    """A run that checks no cold start trains as one that checks at every evaluation (under a
    step budget, where the time does not set the learning rate): the same losses, the same
    best.pt. So where early stopping skips checks, the runs differ by the time saved alone."""
    text = make_text(30_000, seed=11)
    train = {"batch_size": 16, "lr": 3e-2, "max_steps": 280, "eval_every": 40}

    def run(name):
        trainer = make_trainer(text, tmp_path / name, model={"hidden_size": 64}, **train)
        trainer.tune_threads = False  # a thread count changes the floats a little
        evals = [e.record for e in drain(trainer) if isinstance(e, EvalEvent)]
        best = checkpoint.load_run(trainer.run_dir.best)
        return evals, best.position.step, best.model.state_dict()

    checked, best, weights = run("checked")
    monkeypatch.setattr(evalplan.Unbounded, "check_due", lambda *args: False)
    unchecked, best_unchecked, weights_unchecked = run("unchecked")
    assert all(r["cold_start"] for r in checked) and not any(r["cold_start"] for r in unchecked)
    assert [r["val_loss"] for r in unchecked] == [r["val_loss"] for r in checked]
    assert best_unchecked == best
    assert all(torch.equal(weights[k], weights_unchecked[k]) for k in weights)


def test_a_stall_of_a_few_steps_does_not_end_a_time_budget_early(tmp_path, slow, monkeypatch):
    # Seen: three steps of a 30 s run stalled 35x at its 20th second, and the time kept for the
    # final evaluation (scaled by how much slower steps had got) ended the run after 22 s.
    stalled = trainer_module.Trainer.train_step
    count = {"steps": 0}

    def step(self):
        count["steps"] += 1
        if count["steps"] in (100, 101, 102):  # 50 s into the 120: three steps of 17.5 s
            slow.now += 17.0
        return stalled(self)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step)
    trainer = make_trainer(make_text(30_000, seed=3), tmp_path / "r", size="tiny", max_time=120.0)
    trainer.clock, trainer.started = slow, slow.now
    events = drain(trainer)
    assert events[-1].reason == "time" and count["steps"] > 102
    assert 0.95 * 120.0 <= slow.now - (1000.0) <= 120.0  # neither short nor late
