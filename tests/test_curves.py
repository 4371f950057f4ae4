"""Learning curves: training records in the metrics (every K steps, exact across a resume, cut
back on a rollback), and `charrnn plot`, which draws them."""

import json
import math

import pytest
from conftest import drain, make_trainer

from charrnn import checkpoint
from charrnn.runs import is_evaluation
from charrnn.trainer import EvalEvent, RollbackEvent, StepEvent

# eval_every 10 and 3 records per evaluation: a training record every 3 steps and at every
# evaluation, so both kinds of record boundary are crossed.
RECORDS = {"eval_every": 10, "records_per_eval": 3}


def on_disk(trainer) -> list[dict]:
    return [json.loads(line) for line in trainer.run_dir.metrics.read_text().splitlines()]


def training(records) -> list[dict]:
    return [r for r in records if not is_evaluation(r)]


def test_training_records_come_every_k_steps_and_at_each_evaluation(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=25, **RECORDS)
    events = drain(trainer)
    losses = {e.step: e.loss for e in events if isinstance(e, StepEvent)}
    records = on_disk(trainer)
    assert records == trainer.pos.metrics == checkpoint.load(trainer.run_dir.last)["metrics"]
    train = training(records)
    # every 3 steps, at the evaluations (10, 20), and at the budget's end (25)
    assert [r["step"] for r in train] == [3, 6, 9, 10, 12, 15, 18, 20, 21, 24, 25]
    c, previous = trainer.config, 0
    for r in train:
        assert r["kind"] == "train" and r["steps"] == r["step"] - previous  # no step lost or twice
        window = [losses[s] for s in range(previous + 1, r["step"] + 1)]
        assert r["train_loss"] == round(sum(window) / len(window), 5)
        assert r["train_bpc"] == pytest.approx(r["train_loss"] / math.log(2), abs=1e-5)
        assert r["chars"] == r["step"] * c.batch_size * c.seq_len
        assert r["elapsed"] >= 0 and r["lr"] > 0
        previous = r["step"]
    evals = [r for r in records if is_evaluation(r)]
    assert [(r["kind"], r["step"]) for r in evals] == [("eval", 10), ("eval", 20), ("eval", 25)]
    assert all(r["chars"] == r["step"] * c.batch_size * c.seq_len for r in evals)
    assert next(r for r in records if r["step"] == 10)["kind"] == "train"  # a window ends first
    assert evals == [e.record for e in events if isinstance(e, EvalEvent)]


def test_a_resumed_run_records_what_an_uninterrupted_one_does(tmp_path, text):
    whole = make_trainer(text, tmp_path / "whole", max_steps=25, **RECORDS)
    drain(whole)
    first = make_trainer(text, tmp_path / "cut", max_steps=25, **RECORDS)
    for event in first.run():
        if isinstance(event, StepEvent) and event.step == 14:  # two steps into a window
            first.request_stop()
    assert first.pos.step == 14
    second = make_trainer(text, tmp_path / "cut", seed=99, max_steps=25, **RECORDS)
    second.load_state(checkpoint.load(second.run_dir.last))
    drain(second)

    def timeless(records):  # the clock differs; eval train_loss averages since the resume only
        return [
            {
                k: v
                for k, v in r.items()
                if k != "elapsed" and (k, r["kind"]) != ("train_loss", "eval")
            }
            for r in records
        ]

    assert timeless(on_disk(second)) == timeless(on_disk(whole))
    assert on_disk(second) == second.pos.metrics


def test_a_rollback_drops_the_records_made_after_the_checkpoint_it_goes_back_to(tmp_path, text):
    from test_reliability import poison

    trainer = make_trainer(text, tmp_path / "r", max_steps=30, **RECORDS)
    poison(trainer, at_steps={25})
    at_rollback = saved = None
    for event in trainer.run():
        if isinstance(event, RollbackEvent):
            at_rollback, saved = on_disk(trainer), checkpoint.load(trainer.run_dir.last)["metrics"]
    assert training(at_rollback)[-1]["step"] == 20  # 21 and 24 were made after last.pt: gone
    assert at_rollback == saved == trainer.pos.metrics[: len(saved)]
    records = on_disk(trainer)
    assert records == trainer.pos.metrics
    train, previous = training(records), 0
    assert [r["step"] for r in train] == [3, 6, 9, 10, 12, 15, 18, 20, 21, 24, 27, 30]
    for r in train:  # once each, in order, across the rollback
        assert r["steps"] == r["step"] - previous
        previous = r["step"]
