"""Training: the loss falls, seeds reproduce, a resume equals an uninterrupted run, the library's
start and resume, rollbacks and stops, locks, samples while training, and the command."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from conftest import (
    DEADLINE,
    TINY_CLI,
    TINY_MODEL,
    TINY_TRAIN,
    drain,
    make_text,
    make_trainer,
    poison,
)
from helpers.cli import as_from_a_terminal, assert_one_error, popen

from charrnn import checkpoint
from charrnn.errors import CheckpointError, ConfigError, CorpusError, RunError, TrainingError
from charrnn.model.trained import Model
from charrnn.runs import RunDir
from charrnn.text.encoded import encode_text
from charrnn.text.vocab import CharVocab
from charrnn.train.evaluate import evaluate
from charrnn.train.resume import resume
from charrnn.train.start import start
from charrnn.train.trainer import DoneEvent, EvalEvent, RollbackEvent, StepEvent


def test_loss_falls_on_a_tiny_corpus(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "run", max_steps=200, eval_every=50)
    events = drain(trainer)
    evals = [e.record for e in events if isinstance(e, EvalEvent)]
    first = next(e for e in events if isinstance(e, StepEvent)).loss
    assert first > math.log(len(trainer.vocab)) - 0.5  # starts near uniform
    assert evals[-1]["val_loss"] < 0.6 * first
    assert evals[-1]["val_bpc"] == pytest.approx(evals[-1]["val_loss"] / math.log(2), abs=1e-4)
    lines = trainer.run_dir.metrics.read_text().splitlines()
    written = [r for r in map(json.loads, lines) if r["kind"] == "eval"]
    assert [r["step"] for r in written] == [r["step"] for r in evals]
    assert trainer.run_dir.best.is_file() and trainer.run_dir.last.is_file()


def test_same_seed_same_weights(tmp_path, text):
    a = make_trainer(text, tmp_path / "a", seed=3, max_steps=15)
    b = make_trainer(text, tmp_path / "b", seed=3, max_steps=15)
    drain(a), drain(b)
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


def test_time_budget_stops_and_schedule_decays(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "t", max_time=0.5, eval_every=10_000)
    events = drain(trainer)
    assert events[-1].reason == "time"
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[-1].lr < 0.2 * trainer.config.lr  # cosine decay follows the clock
    assert isinstance(events[-2], EvalEvent) and events[-2].record["step"] == steps[-1].step


def test_evaluate_matches_a_single_stream_pass_over_the_split(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "e", max_steps=1)
    from charrnn.text.data import StreamBatcher

    val = trainer.val_batches.ids
    one_stream = StreamBatcher(val, batch_size=1, seq_len=len(val) - 1)
    model = trainer.model.eval()
    with torch.no_grad():
        logits, _ = model(val[:-1].long().unsqueeze(0))
        exact = torch.nn.functional.cross_entropy(logits[0], val[1:].long()).item()
    result = evaluate(Model(model, trainer.vocab), one_stream, cold=False)
    assert result.loss == pytest.approx(exact, rel=1e-5)
    assert result.worst == pytest.approx(exact, rel=1e-5)  # one stream: the mean is the worst
    assert torch.allclose(result.nats[: len(val) - 1].mean().double(), torch.tensor(exact).double())
    assert torch.equal(result.context, torch.arange(len(val) - 1, dtype=torch.int32))
    # with B streams each starting from a blank state the figure is close, not identical
    split = evaluate(Model(model, trainer.vocab), trainer.val_batches, cold=False)
    assert split.loss == pytest.approx(exact, rel=0.05)
    assert split.worst >= split.loss and not split.nats.isnan().any()


def test_a_corpus_of_more_than_256_characters_trains_and_samples(tmp_path):
    """Wider vocabularies take int16 ids: the whole path must still work (e.g. Chinese text)."""
    import random

    from charrnn.use.sampler import SampleConfig, Sampler

    rng = random.Random(0)
    alphabet = [chr(0x4E00 + i) for i in range(300)] + ["。", "\n"]
    text = "".join(
        rng.choice(alphabet[:40]) if rng.random() < 0.9 else rng.choice(alphabet)
        for _ in range(20_000)
    ) + "".join(alphabet)
    trainer = make_trainer(text, tmp_path / "zh", max_steps=20)
    assert trainer.train_batches.ids.dtype == torch.int16
    events = drain(trainer)
    assert events[-1].reason == "steps" and math.isfinite(trainer.pos.best_val)
    s = Sampler(Model(trainer.model, trainer.vocab), SampleConfig(seed=1))
    s.prime("一丁")
    out = "".join(chars[0] for chars in s.generate(30))
    assert len(out) == 30 and set(out) <= set(trainer.vocab.chars)


def test_evaluations_default_to_about_every_million_characters():
    from charrnn.train.config import TrainConfig

    assert TrainConfig(batch_size=32, seq_len=32, lr=1e-3).steps_per_eval == 1024
    assert TrainConfig(batch_size=32, seq_len=64, lr=1e-3).steps_per_eval == 512
    assert TrainConfig(batch_size=32, seq_len=32, lr=1e-3, eval_every=7).steps_per_eval == 7
    assert TrainConfig(batch_size=4096, seq_len=4096, lr=1e-3).steps_per_eval == 1


# --------------------------------------------------------------------- start and resume


@pytest.fixture
def corpus(text):
    return encode_text(text, "tiny")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": "huge"}, "unknown size 'huge'"),
        ({"cell": "transformer"}, "unknown cell"),
        ({"model": {"hidden": 24}}, "unknown model option"),
        ({"model": {"vocab_size": 3}}, "unknown model option"),
        ({"train": {"max_stepz": 5}}, "unknown train option"),
        ({"train": {"max_steps": "10"}}, "max_steps must be a number"),
        ({"train": {"lr": True}}, "lr must be a number"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, corpus, options, message):
    with pytest.raises(ConfigError, match=message):
        start(corpus, tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_a_run_is_never_replaced_unless_asked(tmp_path, corpus):
    folder = str(tmp_path / "run")  # a plain str will do
    drain(start(corpus, folder, model=TINY_MODEL, train={**TINY_TRAIN, "max_steps": 10}).trainer)
    with pytest.raises(RunError, match="holds a run already"):
        start(corpus, folder, model=TINY_MODEL, train={**TINY_TRAIN, "max_steps": 10})
    again = start(
        corpus, folder, replace=True, cell="gru", model=TINY_MODEL, train=TINY_TRAIN
    ).trainer
    assert again.model.config.cell == "gru"


def test_a_run_draws_from_its_own_generator_and_leaves_the_callers(tmp_path, corpus):
    """torch's generator is the caller's between the run's events and after them: what the
    caller draws leaves the run's dropout masks as they were, and the run leaves the caller's
    draws as they were; loading a model draws nothing of the caller's either."""
    opts = {"model": {**TINY_MODEL, "dropout": 0.3}, "train": {**TINY_TRAIN, "max_steps": 20}}
    torch.manual_seed(1)
    expected = torch.rand(4)
    torch.manual_seed(1)
    drain(start(corpus, tmp_path / "quiet", **opts).trainer)
    checkpoint.load_model(tmp_path / "quiet")
    assert torch.equal(torch.rand(4), expected)  # as though nothing had drawn
    torch.manual_seed(2)
    for _ in start(corpus, tmp_path / "busy", **opts).trainer.run():
        torch.rand(7)  # the caller's own draws, between events
    quiet, busy = (checkpoint.load(tmp_path / r / "last.pt")["model"] for r in ("quiet", "busy"))
    assert all(torch.equal(quiet[k], busy[k]) for k in quiet)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_callers_default_dtype_changes_nothing(tmp_path, corpus, cell):
    """torch.set_default_dtype(torch.float64) in the caller's code: the run trains the same
    float32 weights, a model loads and writes the same text, and the caller's default stays."""
    from charrnn.use.sampler import sample_text

    opts = {"cell": cell, "model": TINY_MODEL, "train": {**TINY_TRAIN, "max_steps": 12}}
    drain(start(corpus, tmp_path / "f32", **opts).trainer)
    text = sample_text(checkpoint.load_model(tmp_path / "f32"), "the", 30, seed=1)
    torch.set_default_dtype(torch.float64)
    try:
        drain(start(corpus, tmp_path / "f64", **opts).trainer)
        model = checkpoint.load_model(tmp_path / "f64")
        assert next(model.net.parameters()).dtype == torch.float32
        assert sample_text(model, "the", 30, seed=1) == text
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    f32, f64 = (checkpoint.load(tmp_path / r / "last.pt")["model"] for r in ("f32", "f64"))
    assert all(torch.equal(f32[k], f64[k]) for k in f32)


def test_the_model_a_run_trains_is_the_model_its_checkpoint_restores(tmp_path, corpus):
    opened = start(corpus, tmp_path / "r", model=TINY_MODEL, train={**TINY_TRAIN, "max_steps": 5})
    drain(opened.trainer)
    trained, restored = opened.trainer.trained, checkpoint.load_model(tmp_path / "r" / "last.pt")
    assert trained.char_counts == restored.char_counts is not None  # (sample's runaway check)
    assert trained.vocab.chars == restored.vocab.chars


def test_resume_run_continues_exactly_and_refuses_what_cannot_change(tmp_path, corpus, text):
    options = {"model": TINY_MODEL, "cell": "rnn"}
    whole = start(
        corpus, tmp_path / "whole", **options, train={**TINY_TRAIN, "max_steps": 30}
    ).trainer
    drain(whole)
    half = start(
        corpus, tmp_path / "half", **options, train={**TINY_TRAIN, "max_steps": 30}
    ).trainer
    for event in half.run():
        if isinstance(event, StepEvent) and event.step == 15:
            half.request_stop()  # as Ctrl-C does

    def read(specs, encoding):
        assert specs == ["-"] and encoding == "utf-8"  # what the caller was told to read
        return encode_text(text, "tiny")

    with pytest.raises(ConfigError, match="unknown train option"):
        resume(tmp_path / "half", read, corpus_specs=["-"], train={"max_stepz": 30})
    with pytest.raises(ConfigError, match="seq_len cannot change"):
        resume(tmp_path / "half", read, corpus_specs=["-"], train={"seq_len": 8})
    with pytest.raises(CorpusError, match="standard input or a text in memory"):
        resume(tmp_path / "half", read)  # no sources saved: the caller must give the text
    with pytest.raises(CorpusError, match="differs"):
        resume(tmp_path / "half", lambda s, e: encode_text(text[:-1], "x"), corpus_specs=["-"])
    ended = lambda run: checkpoint.load(run.run_dir.last)["trainer"]["ended"]  # noqa: E731
    assert (ended(whole), ended(half)) == ("steps", "stopped")  # what `charrnn runs` shows
    resumed = resume(tmp_path / "half", read, corpus_specs=["-"], train={"eval_every": 10}).trainer
    drain(resumed)
    assert ended(resumed) == "steps"
    for (name, p), q in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    with pytest.raises(RunError, match="already used its budget"):
        resume(tmp_path / "half", read, corpus_specs=["-"])


def test_a_resume_with_a_larger_budget_follows_the_new_budgets_schedule(tmp_path, corpus, text):
    """A finished run given more steps (or time) goes back up to where the new budget's cosine
    puts it, as a run of that whole budget would be there (kept at its last, lowest rate, a short
    run given three times its steps ended 0.17 nats worse: docs/performance.md), and decays to
    the new end; a resume of the same budget keeps its rates exactly (the test above)."""
    run = start(corpus, tmp_path / "r", model=TINY_MODEL, train={**TINY_TRAIN, "max_steps": 40})
    drain(run.trainer)
    last = run.trainer.lr()  # the rate of its last step, near the floor

    def read(specs, encoding):
        return encode_text(text, "tiny")

    more = resume(tmp_path / "r", read, corpus_specs=["-"], train={"max_steps": 80}).trainer
    rates = []
    for event in more.run():
        if isinstance(event, StepEvent):
            rates.append(event.lr)
    peak = more.config.lr
    assert rates[0] > 0.45 * peak > 5 * last  # halfway through the new budget's cosine
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.1 * peak
    assert checkpoint.load(tmp_path / "r" / "last.pt")["trainer"]["lr_scale"] == 1.0


@pytest.mark.parametrize("damage", ["cut short", "missing"])
def test_a_resume_writes_a_best_pt_that_was_damaged_even_without_a_better_loss(
    tmp_path, text, damage, monkeypatch
):
    """A resume that never beats the recorded best would leave a damaged best.pt in place (and
    the command would name it as the run's best): it says so, and its first evaluation writes
    a new one (where last.pt holds the best model, a copy of it is written at once: the test
    after this one)."""
    from charrnn.runs import list_runs
    from charrnn.train.schedule import evals_since_best

    trainer = make_trainer(text, tmp_path / "r", max_steps=20, eval_every=10)
    drain(trainer)
    run = trainer.run_dir
    if damage == "cut short":
        run.best.write_bytes(run.best.read_bytes()[:3000])
    else:
        run.best.unlink()
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    with monkeypatch.context() as m:  # as where an earlier evaluation was the best
        m.setattr(importlib.import_module("charrnn.train.resume"), "_holds_best", lambda t: False)
        train = {"max_steps": 30, "eval_every": 10}
        opened = resume(run.path, read, corpus_specs=["-"], train=train)
    (warning,) = opened.warnings
    assert warning.startswith(str(run.best)) and warning.endswith("writes a new one")
    opened.trainer.pos.best_val = 0.0  # a best no evaluation beats
    drain(opened.trainer)
    best, last = checkpoint.load(run.best), checkpoint.load(run.last)
    assert best["trainer"]["step"] == last["trainer"]["step"] == 30  # the resume's evaluation
    # what says which loss best.pt has counts from there: the listing, patience, the notes
    evals = [r for r in last["metrics"] if r["kind"] == "eval"]
    assert [r.get("best_restarted", False) for r in evals] == [False, False, True]
    (info,) = list_runs(tmp_path)
    assert info.summary()["best_val_bpc"] == evals[-1]["val_bpc"]
    assert evals_since_best([*evals[:2], {**evals[-1], "val_loss": 99.0}]) == 0
    again = resume(run.path, read, corpus_specs=["-"], train={"max_steps": 40})
    assert again.warnings == []  # a sound best.pt is left to the loss to replace


def test_a_resume_writes_a_lost_best_pt_from_last_pt_where_that_holds_the_best(tmp_path, text):
    """A save that wrote last.pt and failed to copy it to best.pt (a full disk): a resume,
    even of a run whose budget is spent, writes best.pt as that copy."""
    trainer = make_trainer(text, tmp_path / "r", max_steps=20, eval_every=10)
    drain(trainer)
    run = trainer.run_dir
    assert checkpoint.load(run.best)["trainer"]["step"] == 20  # its final evaluation, its best
    run.best.unlink()
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    opened = resume(run.path, read, corpus_specs=["-"])
    (warning,) = opened.warnings
    assert warning.endswith("written again from last.pt, which holds its best model (step 20)")
    assert run.best.read_bytes() == run.last.read_bytes()
    drain(opened.trainer)  # nothing to train: it ends at once
    assert checkpoint.load(run.last)["trainer"]["step"] == 20
    with pytest.raises(RunError, match="already used its budget"):  # mended: refused as before
        resume(run.path, read, corpus_specs=["-"])


def test_a_resume_without_last_pt_says_it_goes_back_to_best_pt(tmp_path, text):
    """The steps after best.pt are lost with last.pt: said, not passed over."""
    trainer = make_trainer(text, tmp_path / "r", max_steps=25, eval_every=10)
    drain(trainer)
    run = trainer.run_dir
    best_step = checkpoint.load(run.best)["trainer"]["step"]
    run.last.unlink()
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    opened = resume(run.path, read, corpus_specs=["-"], train={"max_steps": 40})
    assert opened.resumed_from == run.best and opened.trainer.pos.step == best_step
    assert opened.warnings == [
        f"{run.last} is missing: the run goes on from its best.pt, at step {best_step}"
    ]


def test_a_resume_from_best_pt_says_what_of_last_pt_it_replaces(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=10, eval_every=10)
    drain(trainer)
    run, early = trainer.run_dir, trainer.run_dir.best.read_bytes()  # best.pt at step 10
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    drain(resume(run.path, read, corpus_specs=["-"], train={"max_steps": 30}).trainer)
    run.best.write_bytes(early)
    more = {"max_steps": 40}
    opened = resume(run.path, read, corpus_specs=["-"], train=more, checkpoint_file=run.best)
    assert opened.warnings == [
        f"{run.last} is at step 30: this resume from step 10 replaces it, and the steps after "
        "it are trained again"
    ]


@pytest.mark.parametrize("n_chars", [2_000, 12_000])
def test_a_small_text_is_evaluated_at_least_once_an_epoch(tmp_path, n_chars):
    # a million characters between evaluations would be hundreds of epochs of these texts:
    # best.pt would hold a model long past its best
    corpus = encode_text(make_text(n_chars), "small")
    train = {k: v for k, v in TINY_TRAIN.items() if k != "eval_every"}
    trainer = start(
        corpus, tmp_path / "run", model=TINY_MODEL, train={**train, "max_epochs": 3}
    ).trainer
    steps = [e.record["step"] for e in drain(trainer) if isinstance(e, EvalEvent)]
    per_epoch = len(trainer.train_batches)
    assert trainer.pos.step >= 3 * per_epoch and len(steps) >= 3
    assert steps[0] <= per_epoch and all(b - a <= per_epoch for a, b in pairwise(steps))


def test_a_stop_during_the_final_evaluation_is_resumed_by_making_it(tmp_path, corpus, text):
    """Ctrl-C while the last step is evaluated: the budget is spent but the run is not done. A
    resume with the same budget makes that evaluation (and best.pt) instead of refusing."""
    train = {**TINY_TRAIN, "max_steps": 12, "eval_every": 100}  # the only evaluation: the final
    trainer = start(corpus, tmp_path / "r", model=TINY_MODEL, train=train).trainer
    trainer.on_evaluating = lambda what: trainer.request_stop()  # as Ctrl-C during it does
    events = drain(trainer)
    assert not any(isinstance(e, EvalEvent) for e in events)
    assert trainer.pos.step == 12 and not trainer.run_dir.best.exists()
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    resumed = resume(tmp_path / "r", read, corpus_specs=["-"]).trainer
    events = drain(resumed)
    assert [e.record["step"] for e in events if isinstance(e, EvalEvent)] == [12]
    assert resumed.pos.step == 12 and resumed.run_dir.best.exists()  # no step trained again
    with pytest.raises(RunError, match="already used its budget"):  # now it is done
        resume(tmp_path / "r", read, corpus_specs=["-"])


@pytest.mark.parametrize(("given", "said"), [({}, None), ({"max_steps": 5}, "--steps 1012")])
def test_a_budget_given_below_a_stopped_runs_steps_is_said_to_count_in_all(
    tmp_path, corpus, text, given, said
):
    """`--resume RUN --steps 5` of a run stopped at step 12 before its final evaluation makes
    that evaluation alone: the resume says that --steps counts in all (a user meant 5 more)."""
    train = {**TINY_TRAIN, "max_steps": 12, "eval_every": 100}
    trainer = start(corpus, tmp_path / "r", model=TINY_MODEL, train=train).trainer
    trainer.on_evaluating = lambda what: trainer.request_stop()
    drain(trainer)
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    opened = resume(tmp_path / "r", read, corpus_specs=["-"], train=given)
    late = [w for w in opened.warnings if "in all" in w]
    if said is None:
        assert late == []
    else:
        assert late == [
            "--steps counts the run's steps in all and run 'r' is at step 12: this resume only "
            f"makes its final evaluation; give {said} for 1,000 more"
        ]
    events = drain(opened.trainer)
    assert [e.record["step"] for e in events if isinstance(e, EvalEvent)] == [12]


@pytest.mark.parametrize("at", [12, 18])  # a scheduled evaluation mid-run; the last step's
def test_a_stop_during_a_scheduled_evaluation_is_resumed_by_making_it(tmp_path, corpus, text, at):
    """Ctrl-C while a scheduled evaluation reads: the run is stopped, not done (even where its
    last step was the budget's), and a resume makes that evaluation first. So the resumed run
    records, keeps as best.pt and ends with what an uninterrupted one does."""
    train = {**TINY_TRAIN, "max_steps": 18, "eval_every": 6}
    whole = start(corpus, tmp_path / "whole", model=TINY_MODEL, train=train).trainer
    drain(whole)
    cut = start(corpus, tmp_path / "cut", model=TINY_MODEL, train=train).trainer
    cut.on_evaluating = lambda what: cut.pos.step == at and cut.request_stop()
    done = drain(cut)[-1]
    assert (done.reason, done.step) == ("stopped", at)
    assert checkpoint.load(cut.run_dir.last)["trainer"]["ended"] == "stopped"
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    resumed = resume(tmp_path / "cut", read, corpus_specs=["-"]).trainer
    evals = [e.record["step"] for e in drain(resumed) if isinstance(e, EvalEvent)]
    assert evals[0] == at

    def timeless(records):  # the clock differs
        return [
            {k: v for k, v in r.items() if k not in ("elapsed", "eval_seconds")} for r in records
        ]

    assert timeless(resumed.pos.metrics) == timeless(whole.pos.metrics)
    for name in ("best.pt", "last.pt"):
        a, b = (checkpoint.load(t.run_dir.path / name)["model"] for t in (whole, resumed))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_early_on_every_other_scheduled_evaluation_runs_and_an_eval_every_given_on_resume_all(
    tmp_path, text
):
    """sparse_evals_until (auto's, for a run it stops early): before it the second, the fourth,
    ... scheduled evaluation; from it every one. A resume given --eval-every asks for each."""
    run = tmp_path / "r"
    trainer = make_trainer(text, run, max_steps=40, eval_every=5, sparse_evals_until=21)
    for event in trainer.run():
        if isinstance(event, StepEvent) and event.step == 28:
            trainer.request_stop()
    evals = [r["step"] for r in trainer.pos.metrics if r["kind"] == "eval"]
    assert evals == [10, 20, 25]
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    kept = resume(run, read, corpus_specs=["-"], train={"max_steps": 40}).trainer
    assert kept.config.sparse_evals_until == 21
    every = resume(run, read, corpus_specs=["-"], train={"eval_every": 5}).trainer
    assert every.config.sparse_evals_until is None
    drain(every)
    assert [r["step"] for r in every.pos.metrics if r["kind"] == "eval"] == [10, 20, 25, 30, 35, 40]


# ------------------------------------------------------------------- rollbacks, stops and locks


def test_a_nan_loss_rolls_back_lowers_the_lr_and_training_goes_on(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    poison(trainer, at_steps={25})
    events = drain(trainer)
    rollbacks = [e for e in events if isinstance(e, RollbackEvent)]
    assert len(rollbacks) == 1
    assert rollbacks[0].to_step == 20 and rollbacks[0].lr_scale == 0.5
    assert "the loss became nan at step 25" in rollbacks[0].reason
    assert events[-1] == DoneEvent("steps", 40, trainer.pos.best_val)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    last = checkpoint.load(trainer.run_dir.last)
    assert last["trainer"]["lr_scale"] == 0.5  # the lower rate survives a resume


@pytest.mark.parametrize(
    ("at", "blown_to"),
    [(20, math.inf), (40, math.inf), (20, 60.0)],  # an evaluation in the run, and its final one
)
def test_weights_blown_up_by_a_step_whose_loss_was_fine_roll_back_at_the_evaluation(
    tmp_path, text, at, blown_to
):
    """A rate that sends the weights to inf in one update reads as a fine loss on that step: its
    evaluation finds nan, and the run goes back to last.pt as for a nan loss (never a nan model
    saved, nor a run ended with nan as its last loss); so does a finite loss of tens of nats a
    character. Read, as a step reads it, on the batch of training text the next step trains on:
    a validation part in characters the training part never has reads that high from a sound
    model."""
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    real_step, blown = trainer.train_step, []

    def train_step():
        loss = real_step()
        if trainer.pos.step == at and not blown:
            blown.append(at)
            with torch.no_grad():
                trainer.model.head.bias[0] = blown_to  # one character certain, always
        return loss

    trainer.train_step = train_step
    events = drain(trainer)
    rollbacks = [e for e in events if isinstance(e, RollbackEvent)]
    assert [(e.to_step, e.lr_scale) for e in rollbacks] == [(at - 10, 0.5)]
    assert rollbacks[0].reason.startswith("the loss became ")  # on the next step's batch
    assert rollbacks[0].reason.endswith(f" after step {at}")
    assert events[-1] == DoneEvent("steps", 40, trainer.pos.best_val)
    evals = [r for r in trainer.pos.metrics if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20, 30, 40]
    assert all(math.isfinite(r["val_loss"]) for r in evals)
    for path in (trainer.run_dir.last, trainer.run_dir.best):
        weights = checkpoint.load(path)["model"]
        assert all(torch.isfinite(w).all() for w in weights.values())


def test_it_gives_up_after_repeated_failures_with_a_clear_message(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    poison(trainer, at_steps=set(range(15, 41)), once=False)
    with pytest.raises(
        TrainingError, match=r"diverged 4 times in a row.*even at 0.125 of the learning rate: st"
    ):
        drain(trainer)
    last = checkpoint.load(trainer.run_dir.last)["trainer"]
    assert last["step"] == 10 and last["ended"] == "diverged"  # the last good state, so marked
    # a resume would blow up as it did at the rate it keeps; `runs` says to start over instead
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    with pytest.raises(RunError, match=r"diverged at its learning rate of 0\.01, which a resume"):
        resume(trainer.run_dir.path, read, corpus_specs=["-"], train={"max_steps": 80})
    from charrnn.runs import list_runs

    (info,) = list_runs(tmp_path)
    assert info.ended == "diverged" and info.note.startswith("diverged: training blew up")


def test_a_run_that_diverged_before_its_first_evaluation_is_not_sent_to_resume(tmp_path, text):
    """With no best.pt, `sample -c RUN` gives advice: not the resume that would refuse."""
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    poison(trainer, at_steps=set(range(3, 41)), once=False)
    with pytest.raises(TrainingError, match="diverged 4 times in a row"):
        drain(trainer)
    from charrnn.runs import resolve_checkpoint

    with pytest.raises(RunError) as e:
        resolve_checkpoint("r", tmp_path)
    assert "diverged at its learning rate of 0.01 before its first evaluation" in str(e.value)
    assert "--resume" not in str(e.value) and "--force" in str(e.value)


def test_a_rollback_before_the_first_evaluation_goes_back_to_step_0(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=12, eval_every=10)
    poison(trainer, at_steps={3})
    events = drain(trainer)
    assert [e.to_step for e in events if isinstance(e, RollbackEvent)] == [0]
    assert events[-1].reason == "steps"


def test_a_stop_during_evaluation_cuts_it_short_and_saves_last(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    real_read = trainer.model.read  # what every pass of the recurrent part goes through

    def read(*args, **kwargs):
        if not trainer.model.training:  # evaluating
            trainer.request_stop()
        return real_read(*args, **kwargs)

    trainer.model.read = read
    events = drain(trainer)
    assert not [e for e in events if isinstance(e, EvalEvent)]
    assert events[-1].reason == "stopped" and events[-1].step == 10
    assert checkpoint.load(trainer.run_dir.last)["trainer"]["step"] == 10
    records = [json.loads(line) for line in trainer.run_dir.metrics.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["train"] * 10  # steps 1 to 10, and no evaluation


def test_a_stop_after_the_final_evaluation_finds_the_run_done(tmp_path, text):
    """A stop that comes once the budget is spent and its last evaluation made (the CLI printing
    that evaluation's line, the process about to end) stops nothing: the run is done, not a run
    to resume; as is a stop after the loop where the last step's evaluation was made."""
    for eval_every in (7, 10):  # a final evaluation at step 10; the 10th step's own
        trainer = make_trainer(
            text, tmp_path / f"r{eval_every}", max_steps=10, eval_every=eval_every
        )
        events = []
        for event in trainer.run():
            events.append(event)
            if isinstance(event, EvalEvent) and event.record["step"] == 10:
                trainer.request_stop()
        assert events[-1].reason == "steps" and events[-1].step == 10
        last = checkpoint.load(trainer.run_dir.last)["trainer"]
        assert last["step"] == 10 and last["ended"] == "steps"


def test_a_ctrl_c_its_shell_ignores_for_it_stays_ignored(tmp_path, corpus_file):
    """Started with SIGINT ignored (a script's `charrnn train ... &`: a Ctrl-C at the terminal
    is not for it), training leaves it ignored: the SIGTERM sent after it is what stops the run
    (143). Had the SIGINT been taken, it would have stopped it first (130)."""

    def ignoring_ctrl_c():
        as_from_a_terminal()
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    args = ["train", str(corpus_file), *TINY_CLI, "--steps", "100000"]
    p = popen(args, tmp_path, stderr=subprocess.PIPE, text=True, preexec_fn=ignoring_ctrl_c)
    metrics = tmp_path / "checkpoints" / "tiny" / "metrics.jsonl"
    deadline = time.time() + DEADLINE
    while (not metrics.is_file() or not metrics.read_text()) and time.time() < deadline:
        time.sleep(0.02)  # until it trains: its first evaluation is written
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert "Stopped at step" in err


def test_a_second_trainer_of_the_same_run_is_refused(env, tmp_path, corpus_file):
    r = env(["train", str(corpus_file), *TINY_CLI, "--steps", "10"])
    assert r.exit_code == 0
    run = RunDir(tmp_path / "checkpoints" / "tiny")
    before = run.best.read_bytes()
    with run.session():  # another trainer holds the run
        (run.path / ".lock").write_text("4242")  # its pid: not this process's
        for args in (
            ["train", "--resume", "tiny", "--steps", "20"],
            ["train", str(corpus_file), *TINY_CLI, "--steps", "10", "--force"],
            ["train", str(corpus_file), *TINY_CLI, "--steps", "10"],  # not "exists: --resume"
        ):
            message = "being trained by another process (pid 4242)"
            assert_one_error(env(args), 1, message)  # alone: no header of a run it cannot train
        assert run.best.read_bytes() == before  # --force deleted nothing
        with pytest.raises(RunError), run.session():
            pass
    assert env(["train", "--resume", "tiny", "--steps", "20"]).exit_code == 0


def test_a_broken_training_state_is_refused_on_resume(trained_run, tmp_path, text):
    payload = checkpoint.load(trained_run.last)
    trainer = make_trainer(text, tmp_path / "r", max_steps=10)
    state = payload["trainer"]["state"]
    for bad in ([torch.zeros(9, 9, 9)] * 2, state[:1], [state[0][:, :2], state[1][:, :2]], None):
        broken = {**payload, "trainer": {**payload["trainer"], "state": bad}}
        with pytest.raises(CheckpointError, match="training state is broken"):
            trainer.restore(checkpoint.run_state(broken, trainer.trained))
    broken = {**payload, "trainer": {**payload["trainer"], "batch": 10**6}}
    with pytest.raises(CheckpointError, match="outside the epoch"):
        trainer.restore(checkpoint.run_state(broken, trainer.trained))


# ---------------------------------------------------------------------------------- the command


def train(env, corpus, *extra, steps=30):
    return env(["train", str(corpus), *TINY_CLI, "--steps", str(steps), *extra])


def test_train_prints_only_the_checkpoint_path_on_stdout(env, corpus_file, tmp_path):
    result = train(env, corpus_file)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == os.path.join("checkpoints", "tiny", "best.pt") + "\n"
    assert "Training 'tiny'" in result.stderr and "Done (steps budget spent)" in result.stderr
    assert "val" in result.stderr and "bits per character" in result.stderr
    run = tmp_path / "checkpoints" / "tiny"
    assert {p.name for p in run.iterdir()} == {"best.pt", "last.pt", "metrics.jsonl", ".lock"}


def test_a_log_without_a_terminal_gets_lines_of_progress_between_evaluations(
    env, corpus_file, tmp_path, monkeypatch
):
    train_cli = importlib.import_module("charrnn.cli.train")  # the module, not the command
    monkeypatch.setattr(train_cli, "PROGRESS_EVERY_S", 0.0)  # a line at every step
    result = train(env, corpus_file, "--eval-every", "16", "--name", "logged", steps=40)
    assert result.exit_code == 0, result.stderr
    reading = [line for line in result.stderr.splitlines() if " | evaluating (" in line]
    lines = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    lines = [line for line in lines if line not in reading]
    # each evaluation says what it reads as it reads it (here at each of its looks for a stop)
    assert {line.split(" | ")[0] for line in reading} == {f"step {s:>7,}" for s in (16, 32, 40)}
    assert {line.split("(")[1].split(")")[0] for line in reading} == {
        "validation split",
        "cold starts",
    }
    # --eval-every 16: a training record of every step, its loss that step's
    metrics = tmp_path / "checkpoints/logged/metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = {r["step"]: r for r in records if r["kind"] == "train"}
    since = []  # the steps' losses since the last evaluation line
    for line, step in zip(lines, range(1, 41), strict=True):  # a line a step, of one kind or other
        r = steps[step]
        assert line.startswith(f"step {step:>7,} | epoch {r['epoch']:6.2f} | ")
        since.append(r["train_loss"])
        shown = float(line.split("| train ")[1].split(" ")[0])  # as the evaluation line's: the
        assert shown == pytest.approx(sum(since) / len(since), abs=2e-4)  # mean since the last
        if step % 16 and step < 40:
            assert line.endswith(f" char/s | {step / 40:.0%} of the budget")
        else:  # an evaluation line, with nothing before it to say the same
            assert " | val " in line
            since = []
    quiet = train(env, corpus_file, "--eval-every", "16", "--name", "quiet", "--quiet", steps=40)
    assert quiet.exit_code == 0 and quiet.stderr == ""
    sparse = train(env, corpus_file, "--eval-every", "1000", "--name", "sparse", steps=40)
    assert sparse.stderr.count("of the budget") == 39  # evaluations far apart: lines go on


def test_evaluations_close_together_show_the_first_and_the_last_line(
    env, corpus_file, tmp_path, monkeypatch
):
    """Evaluations faster than EVAL_LINES_EVERY_S (a short text's): the first line, then the
    newest held until a line may come, the last one always; metrics.jsonl keeps every one."""
    from charrnn.train import trainer as trainer_module

    train_cli = importlib.import_module("charrnn.cli.train")
    monkeypatch.setattr(train_cli, "EVAL_LINES_EVERY_S", math.inf)  # never time for another
    short = tmp_path / "short.txt"  # an epoch of 9 steps, each evaluated (--eval-every not given)
    short.write_text(make_text(700), encoding="utf-8")
    given = [*TINY_CLI[: TINY_CLI.index("--eval-every")], "--steps", "40", "--name"]
    result = env(["train", str(short), *given, "often"])
    assert result.exit_code == 0, result.stderr
    shown = [line.split(" | ")[0] for line in result.stderr.splitlines() if " | val " in line]
    assert shown == [f"step {9:>7,}", f"step {40:>7,}"]  # the last, a new best too
    metrics = tmp_path / "checkpoints/often/metrics.jsonl"
    records = map(json.loads, metrics.read_text().splitlines())
    assert [r["step"] for r in records if r["kind"] == "eval"] == [9, 18, 27, 36, 40]
    # those of a --eval-every, asked for, are each shown
    result = env(["train", str(short), *given, "asked", "--eval-every", "8"])
    shown = [line.split(" | ")[0] for line in result.stderr.splitlines() if " | val " in line]
    assert shown == [f"step {s:>7,}" for s in (8, 16, 24, 32, 40)]
    # and so are they on a resume, which keeps the run's --eval-every without its being given
    result = env(["train", "--resume", "asked", "--steps", "64"])
    shown = [line.split(" | ")[0] for line in result.stderr.splitlines() if " | val " in line]
    assert shown == [f"step {s:>7,}" for s in (48, 56, 64)]
    # the schedule's own evaluations, resumed, are thinned as they were (not asked for)
    result = env(["train", "--resume", "often", "--steps", "80"])
    shown = [line.split(" | ")[0] for line in result.stderr.splitlines() if " | val " in line]
    assert shown == [f"step {s:>7,}" for s in (45, 80)]
    # The best held back where a later line is not one: shown before the last, with its mark.
    real, calls = trainer_module.evaluate, []

    def worse_after_the_third(*args, **kwargs):
        calls.append(1)
        found = real(*args, **kwargs)
        return dataclasses.replace(found, loss=found.loss + 1.0) if len(calls) > 3 else found

    monkeypatch.setattr(trainer_module, "evaluate", worse_after_the_third)
    result = env(["train", str(short), *given, "worse"])
    lines = [line for line in result.stderr.splitlines() if " | val " in line]
    assert [line.split(" | ")[0] for line in lines] == [f"step {s:>7,}" for s in (9, 27, 40)]
    assert lines[1].endswith("* best") and not lines[2].endswith("* best")


def test_text_unlike_the_rest_in_validation_is_said_once_with_the_loss_without_it(env, tmp_path):
    symbols = "QZXJK0123456789"  # in the training part once: the model learns them as rare
    words = "the quick brown fox jumps over the lazy dog and then runs far away\n"
    text = symbols + (words * 200)[: 12_000 - len(symbols)]
    stream = len(text) // 10 // 4  # the last tenth validates, in 4 streams (TINY_CLI)
    start = len(text) - 4 * stream + 2 * stream
    odd = text[:start] + (symbols * 30)[:stream] + text[start + stream :]  # stream 2: symbols
    for name, content in (("plain", text), ("odd", odd)):
        (tmp_path / f"{name}.txt").write_text(content)
        r = env(["train", f"{name}.txt", *TINY_CLI, "--steps", "200", "--eval-every", "100"])
        assert r.exit_code == 0, r.stderr
        notes = [line for line in r.stderr.splitlines() if line.startswith("Note: ")]
        notes = [n for n in notes if "occur in the training part too" not in n]  # one line, 200x
        if name == "plain":
            assert notes == []
            continue
        best = min(
            (json.loads(line) for line in (tmp_path / "checkpoints/odd/metrics.jsonl").open()),
            key=lambda r: r.get("val_loss", math.inf),
        )
        assert (best["val_unlike_streams"], best["val_runaway_streams"]) == (1, 0)
        assert best["val_typical"] < best["val_loss"] - 0.5  # the symbols cost far more
        [(first, last)] = best["val_unlike_lines"]  # the stream, the block's line inside it
        assert first <= 1 + odd[:start].count("\n") <= last <= first + 2
        where = f"line {first}" if first == last else f"lines {first}-{last}"
        assert notes == [
            f"Note: 1 validation stream ({where} of the text) reads far worse "
            "than the rest because the text there is unlike the training part (symbols, names or "
            "characters it rarely has), not because the model went wrong; over the others "
            "best.pt reads "
            f"{best['val_typical']:.4f} nats = {best['val_typical'] / math.log(2):.3f} bits per "
            "character."
        ]
        assert " ran away" not in r.stderr


def test_a_run_whose_best_runs_away_from_cold_starts_ends_saying_to_train_it_longer(
    env, tmp_path, corpus_file, monkeypatch
):
    """A run too short to learn a sound state (a few hundred steps of a wide model): its best.pt's
    cold-start runaways are said once at the end, with the resume that trains it longer, and a
    resume of it as that says works. A sound run says nothing (the check stood in for: which
    young model runs away is not what this tests)."""
    from charrnn.train import coldstart

    check = coldstart.check
    runaways = {"n": 3}

    def stood_in(*args, **kwargs):
        found = check(*args, **kwargs)
        return dataclasses.replace(found, runaways=runaways["n"])

    monkeypatch.setattr(coldstart, "check", stood_in)
    args = ["train", str(corpus_file), *TINY_CLI, "--steps", "20", "--eval-every", "10"]
    r = env([*args, "--name", "young"])
    assert r.exit_code == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: best.pt ran away from 3 of "), (
        r.stderr
    )
    assert (
        "samples from it can turn to noise; train it longer: charrnn train --resume young "
        in (warnings[0])
    )
    again = shlex.split(warnings[0].split("train it longer: ", 1)[1])
    # by steps, as it trained: on its own schedule of evaluations (a time budget plans its own)
    assert again == ["charrnn", "train", "--resume", "young", "--steps", "60"]
    runaways["n"] = 0
    r = env(again[1:])
    assert r.exit_code == 0 and "Resuming at step 20" in r.stderr and "Warning" not in r.stderr
    evaluated = [json.loads(line) for line in (tmp_path / "checkpoints/young/metrics.jsonl").open()]
    assert [e["step"] for e in evaluated if e["kind"] == "eval"] == [10, 20, 30, 40, 50, 60]


def test_the_advice_to_train_longer_keeps_the_kind_of_budget_a_run_had():
    """Three times as long, by steps or epochs where the run had no time budget, else by time
    (20 s at least)."""
    from charrnn.runs.advice import train_longer

    at = {"step": 120, "epoch": 0.4, "elapsed": 9.5}
    tail = {
        "max_steps": ["--steps", "360"],
        "max_epochs": ["--epochs", "1.2"],
        "max_time": ["--time", "60s"],
    }
    for budget, expected in tail.items():
        said = train_longer("r", ["a.txt"], {budget: 1}, at)
        assert shlex.split(said) == ["charrnn", "train", "--resume", "r", *expected]
    both = train_longer("r", ["-"], {"max_steps": 1, "max_time": 30.0}, {**at, "elapsed": 40.2})
    assert shlex.split(said)[-2:] == ["--time", "60s"] and both.endswith("--time 123s")
    assert both.startswith("... | charrnn train - --resume r")  # its text, again on stdin


def test_where_unlike_streams_are_said_in_characters_for_one_line_and_by_file_for_a_folder(
    env, tmp_path
):
    symbols = "QZXJK0123456789"
    words = "the quick brown fox jumps over the lazy dog and then runs far away "  # no line break
    text = symbols + (words * 200)[: 12_000 - len(symbols)]
    stream = len(text) // 10 // 4
    start = len(text) - 2 * stream
    odd = text[:start] + (symbols * 30)[:stream] + text[start + stream :]
    (tmp_path / "line.txt").write_text(odd)
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.txt").write_text(odd[:6000])
    (folder / "b.txt").write_text(odd[6000:])
    (tmp_path / "lines.txt").write_text("the lazy dog\nand the fox\n" * 400)  # a base: "\n"
    base = env(["train", "lines.txt", *TINY_CLI, "--steps", "20", "--name", "base"])
    assert base.exit_code == 0, base.stderr
    runs = (
        ("line.txt", "line", []),
        ("parts", "parts", []),
        ("line.txt", "tuned", ["--init-from", "base"]),
    )
    for corpus, name, more in runs:  # the fine-tune's vocabulary has "\n", its text has none
        shape = TINY_CLI if not more else TINY_CLI[6:]  # a fine-tune keeps the base's shape
        options = [*shape, "--steps", "200", "--eval-every", "100", "--name", name, *more]
        r = env(["train", corpus, *options])
        assert r.exit_code == 0, r.stderr
        [note] = [line for line in r.stderr.splitlines() if line.startswith("Note: ")]
        records = (tmp_path / "checkpoints" / name / "metrics.jsonl").open()
        best = min((json.loads(line) for line in records), key=lambda r: r.get("val_loss", 9))
        # a fine-tune's far-worse streams hold characters new to its base (the block's, here):
        # the note names them, a cause as likely as the text (and the only one in a text that
        # repeats itself); a new run's names the text alone
        new = set(best["val_unlike_new_chars"])
        assert (set("QZXJK0123456789") <= new) if more else not new, new
        assert ("characters new to the model it started from ('0" in note) == bool(more), note
        if name in ("line", "tuned"):  # characters, 1-based, around the block
            [(first, last)] = best["val_unlike_chars"]
            assert first <= start + 1 and start + stream <= last + 2
            assert f"(characters {first}-{last} of the text)" in note
        else:  # the file, and the characters in it (b.txt begins at the text's 6,001st)
            assert best["val_unlike_lines"] == best["val_unlike_chars"] == []
            [(file, unit, first, last)] = best["val_unlike_files"]
            assert (file, unit) == (os.path.join("parts", "b.txt"), "character")
            assert first <= start + 1 - 6000 and start + stream - 6000 <= last + 2
            assert f"(characters {first}-{last} of {file}) reads far worse" in note


def test_a_folders_unlike_stream_is_said_in_lines_of_its_file(env, tmp_path):
    symbols = "QZXJK0123456789"
    words = "the quick brown fox jumps over the lazy dog and then runs far away\n"
    text = symbols + (words * 200)[: 12_000 - len(symbols)]
    stream = len(text) // 10 // 4
    start = len(text) - 2 * stream
    odd = text[:start] + (symbols * 30)[:stream] + text[start + stream :]
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.txt").write_text(odd[:5000])
    (folder / "b.txt").write_text(odd[5000:])  # the block: in b.txt, from this line
    line = 1 + odd[5000:start].count("\n")
    r = env(["train", "parts", *TINY_CLI, "--steps", "200", "--eval-every", "100"])
    assert r.exit_code == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("Note: ")]
    [note] = [n for n in notes if "occur in the training part too" not in n]  # one line, 200x
    records = (tmp_path / "checkpoints" / "parts" / "metrics.jsonl").open()
    best = min((json.loads(line) for line in records), key=lambda r: r.get("val_loss", 9))
    [(file, unit, first, last)] = best["val_unlike_files"]
    assert (file, unit) == (os.path.join("parts", "b.txt"), "line")
    assert first <= line <= last <= first + 2
    where = f"line {first}" if first == last else f"lines {first}-{last}"
    assert f"({where} of {file}) reads far worse" in note


def test_the_note_says_where_the_first_unlike_streams_are():
    from charrnn.cli.report import unlike_note

    best = {"val_loss": 2.0, "val_typical": 1.5, "val_unlike_streams": 6}
    # adjacent streams (a stream ends on the line the next begins on) are one range of lines
    lines = [[7, 7], [1200, 1230], [1230, 1260], [3000, 3001], [4000, 4010], [5000, 5001]]
    best["val_unlike_lines"] = lines
    note = unlike_note(best)  # plain numbers, as `sed -n 1200,1260p` takes them
    assert note.startswith(
        "Note: 6 validation streams (lines 7, 1200-1260, 3000-3001 and 2 more of the text) "
        "read far worse than the rest"
    )
    best["val_unlike_lines"] = lines[1:3]
    assert "(lines 1200-1260 of the text)" in unlike_note(best)
    best["val_unlike_lines"] = [[7, 7], [9, 9]]
    assert "(lines 7 and 9 of the text)" in unlike_note(best)
    best["val_unlike_lines"], best["val_unlike_chars"] = [], [[90001, 90300]]  # one line
    assert "(characters 90001-90300 of the text)" in unlike_note(best)
    best["val_unlike_chars"] = []  # a text of several files: by file, in the text's order
    best["val_unlike_files"] = [["b.md", "line", 3, 40], ["b.md", "line", 40, 41]]
    assert "(lines 3-41 of b.md) read far worse" in unlike_note(best)
    best["val_unlike_files"] += [["a.csv", "character", 7, 300], ["c.txt", "line", 2, 2]]
    assert "(lines 3-41 of b.md, characters 7-300 of a.csv and line 2 of c.txt) read" in (
        unlike_note(best)
    )
    best["val_unlike_files"] += [["c.txt", "line", 9, 9]]
    assert "(lines 3-41 of b.md, characters 7-300 of a.csv, line 2 of c.txt and 1 more) read" in (
        unlike_note(best)
    )
    best["val_unlike_files"] = [["b.md", "line", a, b] for a, b in ((6, 17), (22, 31), (39, 48))]
    best["val_unlike_files"] += [["c.md", "line", 5, 17]]  # "1 more" is not of b.md
    assert "(lines 6-17, 22-31 and 39-48 of b.md and 1 more) read" in unlike_note(best)
    del best["val_unlike_lines"], best["val_unlike_chars"], best["val_unlike_files"]  # older
    assert unlike_note(best).startswith("Note: 6 validation streams read far worse")
    # a fine-tune's: the characters new to its model that they hold, said of one stream as one
    best.update(val_unlike_streams=1, val_unlike_new_chars="éï")
    assert (
        "1 validation stream reads far worse than the rest because it holds characters new to"
        " the model it started from ('éï')" in unlike_note(best)
    )


def test_a_run_ended_by_its_epochs_says_how_often_it_read_the_text(env, tmp_path):
    corpus = tmp_path / "short.txt"  # a short text: its epoch is a few steps
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    result = env(["train", str(corpus), *TINY_CLI, "--epochs", "2", "--name", "e"])
    assert result.exit_code == 0, result.stderr
    assert "Done (the text read 2 times) after " in result.stderr
    # a budget under one step still trains one: the line says what was read, not what was asked
    result = env(["train", str(corpus), *TINY_CLI, "--epochs", "0.001", "--name", "f"])
    read = float(
        re.search(r"Done \(the text read ([\d.]+) times\) after 1 step,", result.stderr)[1]
    )
    shown = float(re.findall(r"epoch +([\d.]+)", result.stderr)[-1])  # the evaluation's line
    assert abs(read - shown) <= 0.005 and read > 0.01, result.stderr


def test_the_done_line_gives_the_best_loss_as_its_evaluation_line_did():
    from types import SimpleNamespace

    from charrnn.cli.report import done_line, eval_line
    from charrnn.train import records

    loss = 4.73624999  # on a rounding edge: 4.7362 as it is, 4.7363 as its record rounds it
    val = SimpleNamespace(loss=loss, worst=loss, runaway_streams=0, unlike_streams=0, typical=loss)
    pos = SimpleNamespace(step=7, epoch=0, batch=1, elapsed=3.0)
    record = records.evaluation(pos, 10, 1024, 1e-3, 4.9, val, None)
    line = eval_line(SimpleNamespace(record=record, improved=True), first=False)
    trainer = SimpleNamespace(pos=pos, config=SimpleNamespace(patience=None), run_dir=None)
    done = SimpleNamespace(reason="steps", step=7, best_val=loss)
    shown = line.split("val ")[1].split(" bpc")[0]  # "4.7363 nats = 6.833"
    assert shown in done_line(trainer, done)
    # a run that ended before its first evaluation has no best loss to give, and no best.pt
    done = SimpleNamespace(reason="time", step=7, best_val=float("inf"))
    said = done_line(trainer, done)
    assert said.endswith(": no evaluation yet, so no best.pt.") and "inf" not in said


def test_a_gap_that_rounds_to_zero_from_below_is_written_as_zero():
    import math
    from types import SimpleNamespace

    from charrnn.cli.report import eval_line
    from charrnn.train import records
    from charrnn.train.coldstart import ColdStartReport

    cold = ColdStartReport(256, 0, 0, gap=-4e-6, gap_lead_in=-2e-6, warm_loss=1.5).to_dict()
    assert cold["gap"] == 0 and math.copysign(1, cold["gap"]) == 1  # not -0.0 in metrics.jsonl
    val = SimpleNamespace(loss=1.5, worst=1.6, runaway_streams=0, unlike_streams=0, typical=1.5)
    pos = SimpleNamespace(step=7, epoch=0, batch=1, elapsed=3.0)
    record = records.evaluation(pos, 10, 1024, 1e-3, 1.6, val, None)
    record["cold_start"] = ColdStartReport(256, 0, 0, -4e-4, -3e-4, 1.5).to_dict()
    line = eval_line(SimpleNamespace(record=record, improved=False), first=False)
    assert "gap +0.000" in line and "-0.000" not in line


def test_an_existing_run_is_never_overwritten_silently(env, corpus_file, tmp_path):
    train(env, corpus_file)
    before = (tmp_path / "checkpoints/tiny/best.pt").read_bytes()
    r = train(env, corpus_file)
    assert_one_error(r, 1, "already exists", "--resume tiny")
    assert (tmp_path / "checkpoints/tiny/best.pt").read_bytes() == before
    assert train(env, corpus_file, "--force", "--seed", "9").exit_code == 0


def test_resume_continues_the_step_count(env, corpus_file, tmp_path):
    train(env, corpus_file, "--weight-decay", "0.5", "--grad-clip", "0.25", steps=20)
    r = env(["train", "--resume", "tiny", "--steps", "40", "-q"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr == "" and r.stdout.strip().endswith("best.pt")
    last = torch.load(tmp_path / "checkpoints/tiny/last.pt", weights_only=True)
    assert last["trainer"]["step"] == 40
    # the run's own, kept on resume
    assert (last["train_config"]["weight_decay"], last["train_config"]["grad_clip"]) == (0.5, 0.25)
    for option in ("--weight-decay", "--grad-clip"):
        decay = env(["train", "--resume", "tiny", option, "0.1", "--steps", "50"])
        assert decay.exit_code == 2 and f"{option} is not taken with --resume" in decay.stderr
    for option, bad in [("--weight-decay", b) for b in ("inf", "1.5", "-0.1")] + [
        ("--grad-clip", b) for b in ("0", "-1", "inf", "nan")
    ]:  # refused before anything is read or written
        r = env(["train", str(corpus_file), "--name", "x", option, bad])
        assert r.exit_code == 2 and option in r.stderr and not r.stdout
    again = env(["train", "--resume", "tiny"])
    assert_one_error(again, 1, "already used its budget")
    fixed = env(["train", "--resume", "tiny", "--lr", "1", "--steps", "50"])
    assert fixed.exit_code == 2 and "--lr is not taken with --resume" in fixed.stderr


def test_keep_every_keeps_a_checkpoint_along_the_run_that_samples_and_resumes(
    env, corpus_file, tmp_path
):
    """--keep-every N: the checkpoint of the first evaluation after each N steps stays as
    step-N.pt (char-rnn's cv/lm_..._epochE.t7), each the run at that step; a resume keeps on
    counting from its step, and --force takes the old run's away with it."""
    run = tmp_path / "checkpoints/tiny"
    r = train(env, corpus_file, "--eval-every", "10", "--keep-every", "25", steps=60)
    assert r.exit_code == 0, r.stderr
    assert [p.name for p in sorted(run.glob("step-*.pt"))] == ["step-30.pt", "step-50.pt"]
    for step in (30, 50):
        kept = checkpoint.load(run / f"step-{step}.pt")
        record = [m for m in kept["metrics"] if m["kind"] == "eval"][-1]
        assert kept["trainer"]["step"] == record["step"] == step
    said = env(["sample", "-c", str(run / "step-30.pt"), "-l", "20", "--seed", "1"])
    assert said.exit_code == 0 and said.stdout
    tuned = ["train", str(corpus_file), "--init-from", str(run / "step-30.pt"), "--name", "ft"]
    assert env([*tuned, "--steps", "2"]).exit_code == 0
    runs = [json.loads(line) for line in env(["runs", "--json"]).stdout.splitlines()]
    assert {r["run"]: r["from"] for r in runs}["ft"] == "tiny"  # the run, not "step-30"
    r = env(["train", "--resume", "tiny", "--steps", "100", "-q"])
    assert r.exit_code == 0, r.stderr
    names = sorted((p.name for p in run.glob("step-*.pt")), key=lambda n: int(n[5:-3]))
    assert names == ["step-30.pt", "step-50.pt", "step-80.pt", "step-100.pt"]
    listed = json.loads(env(["runs", "--json"]).stdout.splitlines()[0])
    assert [Path(p).name for p in listed["kept"]] == names
    assert train(env, corpus_file, "--force", steps=5).exit_code == 0
    assert list(run.glob("step-*.pt")) == []


def test_a_run_folder_moved_while_it_trains_is_said_to_be(text, tmp_path):
    """A run's folder renamed as it trains: its next save failed with "its folder does not
    exist; create it first", which would split the run between two folders."""
    trainer = make_trainer(text, tmp_path / "run", max_steps=20, eval_every=5)
    with pytest.raises(RunError, match=r"run folder .*run was moved or removed while the run t"):
        for event in trainer.run():
            if isinstance(event, EvalEvent):
                (tmp_path / "run").rename(tmp_path / "moved")
    assert (tmp_path / "moved" / "best.pt").is_file()  # its files, where it went


def test_stdin_training_with_a_name(env, text, tmp_path):
    r = env(["train", "-", "--name", "mixed", *TINY_CLI, "--steps", "10"], input=text)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "checkpoints/mixed/best.pt").is_file()
    r = env(["train", "--resume", "mixed", "--steps", "20"])
    assert_one_error(r, 1, "standard input")


def test_resume_after_the_corpus_moved_says_where_it_was_and_takes_the_new_place(env, tmp_path):
    (tmp_path / "old.txt").write_text(make_text(4000))
    assert env(["train", "old.txt", "--name", "r", *TINY_CLI, "--steps", "2"]).exit_code == 0
    shutil.move(tmp_path / "old.txt", tmp_path / "new.txt")
    r = env(["train", "--resume", "r", "--steps", "4"])
    assert_one_error(r, 1)
    assert f"was trained on {tmp_path / 'old.txt'}, which is not there any more" in r.stderr
    assert "charrnn train NEWPATH --resume r" in r.stderr
    moved = env(["train", "new.txt", "--resume", "r", "--steps", "4"])
    assert moved.exit_code == 0 and moved.stdout.endswith("best.pt\n"), moved.stderr
    again = env(["train", "--resume", "r", "--steps", "6"])  # the new place was remembered
    assert again.exit_code == 0, again.stderr
    assert "Resuming at step 4" in again.stderr


def test_samples_go_to_stderr_and_leave_the_run_unchanged(env, corpus_file, tmp_path):
    watch = ["--sample-every", "10", "--sample-length", "40", "--sample-prime", "ANNA:"]
    r = env(["train", str(corpus_file), "--steps", "20", "--name", "watched", *TINY_CLI, *watch])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip().endswith("watched/best.pt")  # stdout: the path alone
    assert (
        r.stderr.count("sample at step") == 2 and "sample at step 20 (temperature 0.8):" in r.stderr
    )
    after = r.stderr.split("sample at step 10 (temperature 0.8):\n", 1)[1]
    assert after.startswith("ANNA:") and len(after.split("\n", 1)[0]) >= 5  # the prime, continued
    r = env(["train", str(corpus_file), "--steps", "20", "--name", "plain", *TINY_CLI])
    assert r.exit_code == 0 and "sample at" not in r.stderr
    a = torch.load(tmp_path / "checkpoints/watched/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "checkpoints/plain/last.pt", weights_only=True)["model"]
    for name, weight in a.items():  # sampling drew nothing from the run's random state
        assert torch.equal(weight, b[name]), name


@pytest.mark.parametrize("why", ["a stop", "the time"])
def test_a_sample_between_steps_ends_where_a_stop_comes_or_the_budget_is_spent(tmp_path, text, why):
    """A --sample-every sample of any length is inside the run's time and its stop signals: a
    stop (SIGTERM) or a clock past the budget during it ends it at its next look, and the run
    ends at once, by the stop or by the time (not after the sample's hours of text)."""
    from charrnn.use.sampler import STOP_POLL, sample_text

    budget = {"max_time": 3600.0} if why == "the time" else {"max_steps": 40}
    trainer = make_trainer(text, tmp_path / "r", eval_every=10, **budget)
    looks, cut, real_clock = [], None, trainer.clock

    def signal_on_the_third_look() -> bool:
        looks.append(trainer.pos.step)
        if len(looks) == 3 and why == "a stop":
            trainer.request_stop()  # what the SIGTERM handler calls
        elif len(looks) == 3:
            trainer.clock = lambda: real_clock() + 7200.0  # the sample ran past the budget
        return trainer.must_stop()

    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, StepEvent) and event.step == 5:
            assert not trainer.must_stop()
            cut = sample_text(trainer.trained, "", 50 * STOP_POLL, 0.8, 5, signal_on_the_third_look)
    assert len(cut) == 2 * STOP_POLL and len(looks) == 3
    steps = [e.step for e in events if isinstance(e, StepEvent)]
    assert steps == [1, 2, 3, 4, 5]  # no step after the sample
    done = events[-1]
    assert done.reason == ("stopped" if why == "a stop" else "time") and done.step == 5


def test_the_bars_of_reading_the_text_are_off_the_terminal_before_the_run_says_a_word(
    env, corpus_file, monkeypatch
):
    """A phase's bar left open was drawn again under every later line, its clock running (encode
    100% [00:24]), as if the run were still reading its text."""
    import io

    import charrnn.cli.common as common

    train_cli = importlib.import_module("charrnn.cli.train")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(common, "BAR_AFTER_S", 0)
    made = []

    def recorded(quiet, *args, **kw):  # the bars train makes, drawn on a terminal of their own
        bar = common.phase_bar(False, *args, **kw)

        def progress(phase, done, total):
            with monkeypatch.context() as m:
                m.setattr(sys, "stderr", screen)
                bar(phase, done, total)

        progress("hash", 1, 10)  # a phase under way as the text is read, cached or not
        progress.close = bar.close
        made.append(bar)
        return progress

    monkeypatch.setattr(train_cli, "phase_bar", recorded)
    assert env(["train", str(corpus_file), *TINY_CLI, "--steps", "1", "--force"]).exit_code == 0
    assert made and "hash" in screen.getvalue()
    for bar in made:  # closed: a bar's close() writes nothing more the second time
        before = screen.getvalue()
        bar.close()
        assert screen.getvalue() == before


def test_the_training_bar_says_what_it_is_doing_after_an_evaluation(env, corpus_file, monkeypatch):
    """The bar's label showed "evaluating: validation split" for the rest of the run (and was
    left on the terminal so) once an evaluation had set it: the steps' label comes back."""
    import io

    import tqdm

    labels = []

    class Drawn(tqdm.tqdm):  # the bar train makes, drawn on a terminal of its own
        def __init__(self, *args, **kw):
            super().__init__(*args, **{**kw, "disable": False, "file": io.StringIO()})

        def set_postfix_str(self, s="", refresh=True):
            labels.append(s)
            super().set_postfix_str(s, refresh)

    monkeypatch.setattr(tqdm, "tqdm", Drawn)
    args = ["train", str(corpus_file), *TINY_CLI, "--steps", "6", "--eval-every", "6", "--force"]
    assert env(args).exit_code == 0
    assert any("evaluating" in label for label in labels)  # shown while it evaluated
    assert labels[-1].startswith("step 6 loss ")


def test_the_memory_free_counts_an_address_space_limit(monkeypatch):
    """Under `ulimit -v` what may still be mapped is the memory free, where it is less than the
    system's: a model the limit cannot hold is refused before it is built, as one the machine
    cannot."""
    import resource

    from charrnn.devices import free_memory

    cpu = torch.device("cpu")
    system = free_memory(cpu)
    with open("/proc/self/status") as f:
        mapped = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmSize:"))
    real = resource.getrlimit
    limited = lambda which: (mapped + 10**8, -1) if which == resource.RLIMIT_AS else real(which)  # noqa: E731
    monkeypatch.setattr(resource, "getrlimit", limited)
    left = free_memory(cpu)
    assert left <= 10**8 and left > 10**8 - 50 * 2**20  # less what was mapped since
    assert system is None or system > 10**8


def test_a_refusal_by_memory_shows_the_need_and_the_free_apart(monkeypatch):
    """Where the two round alike to a tenth of a GB, a second digit tells them apart."""
    import charrnn.train.fits as fits
    from charrnn.model.config import ModelConfig

    shape = ModelConfig(vocab_size=65, embedding_dim=64, hidden_size=2700, num_layers=3)
    monkeypatch.setattr(fits, "free_memory", lambda device: 0)
    with pytest.raises(ConfigError) as refused:
        fits.refuse_too_large(shape, "cpu", 32, 32)
    need = float(re.search(r"takes (\d+\.\d) GB", str(refused.value)).group(1))
    monkeypatch.setattr(fits, "free_memory", lambda device: int((need - 0.04) * 1e9))
    with pytest.raises(ConfigError) as refused:
        fits.refuse_too_large(shape, "cpu", 32, 32)
    found = re.search(r"takes (\d\.\d+) GB .* more than the (\d\.\d+) GB free", str(refused.value))
    assert found and found.group(1) != found.group(2), str(refused.value)


@pytest.mark.parametrize("size", ["tiny", "auto"])
def test_a_model_too_large_for_the_memory_free_is_refused_before_it_is_built(
    env, corpus_file, tmp_path, monkeypatch, size
):
    """16 bytes a parameter at the least: a 2x512 LSTM (about 3.2M parameters, 51 MB) where
    50 MB are free is refused in one line, before it is built (or timed by `auto`), no folder left
    (a 16x8192 one on 24 GB was killed by the system after minutes of swapping)."""
    import charrnn.train.fits as fits

    monkeypatch.setattr(fits, "free_memory", lambda device: 50_000_000)
    args = ["train", str(corpus_file), "--size", size, "--hidden", "512", "--layers", "2"]
    r = env([*args, "--time", "30s"])
    line = assert_one_error(r)
    assert re.search(r"a 2x512 LSTM has 3\.\d million parameters, and a batch of \d+x\d+: ", line)
    assert re.search(r"takes \d+ MB of memory at least \(5\d MB for its weights, their ", line)
    assert "more than the 50 MB free on cpu; give a smaller --hidden or --layers" in line
    assert not (tmp_path / "checkpoints").exists()
    # what a step keeps for its backward pass counts too: 2 bytes x 6 numbers a unit at least
    monkeypatch.setattr(fits, "free_memory", lambda device: 1_000_000_000)
    line = assert_one_error(env([*args, "--batch-size", "64", "--seq-len", "8192", "--steps", "1"]))
    assert re.search(r"\(5\d MB for its weights, .*, 6\.4 GB for what a step keeps for", line)
    monkeypatch.setattr(fits, "free_memory", lambda device: None)  # not known: trained
    assert env([*args, "--steps", "1", "-q"]).exit_code == 0


def test_a_prime_the_corpus_cannot_spell_is_one_error_line(env, corpus_file, tmp_path):
    args = ["train", str(corpus_file), "--steps", "5", *TINY_CLI, "--sample-every", "2"]
    r = env([*args, "--sample-prime", "zq€"])
    line = assert_one_error(r)
    assert line.startswith("Error: --sample-prime has characters the corpus lacks: ")
    assert "'€' (U+20AC) at character 3" in line  # named as `sample` names a prime's
    assert not (tmp_path / "checkpoints").exists()
    line = assert_one_error(env([*args, "--sample-prime", "ANNA:\\n"]))  # a backslash and an n
    assert "(\\n typed in quotes is a backslash and an n: type a line break itself" in line
    # é typed as e + U+0301 where the text has it as one code point: the same prime, in its form
    (tmp_path / "fr.txt").write_text("l'été est là, très tôt\n" * 300)
    args = ["train", str(tmp_path / "fr.txt"), "--steps", "2", *TINY_CLI, "--sample-every", "2"]
    r = env([*args, "--sample-prime", unicodedata.normalize("NFD", "l'été"), "--name", "fr"])
    assert r.exit_code == 0, r.stderr
    assert "sample at step 2 (temperature" in r.stderr and "\nl'\u00e9t\u00e9" in r.stderr
    # with a character the text lacks: that one alone, where it is as typed
    typed = unicodedata.normalize("NFD", "l'étéZ")
    line = assert_one_error(env([*args, "--sample-prime", typed, "--name", "fr2"]))
    assert line.endswith("the corpus lacks: 'Z' (U+005A) at character 8; leave them out")


@pytest.mark.parametrize("quiet", [False, True])
def test_a_stop_during_start_up_says_that_nothing_was_trained(env, monkeypatch, corpus_file, quiet):
    """Ctrl-C while the text is read or the model built: one line (not silence), exit 130; after
    the first step the trainer says where it stopped (the tests above and below)."""
    from charrnn.cli.signals import Interrupted
    from charrnn.train import open as opening

    def interrupted(*args, **kwargs):
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(opening, "open_run", interrupted)
    r = env(["train", str(corpus_file), *TINY_CLI, "--steps", "5", *(["-q"] * quiet)])
    said = "Stopped during start-up, before the first step: nothing was trained or saved.\n"
    assert (r.exit_code, r.stdout, r.stderr) == (130, "", "" if quiet else said)


def test_a_stop_during_the_start_of_a_force_leaves_the_run_it_would_replace(
    env, monkeypatch, tmp_path, corpus_file
):
    """--force's old run is removed as the new one begins to write: Ctrl-C after the run's lock
    is taken and its first line said (the list notes decode the text) leaves it whole."""
    from charrnn.cli import report
    from charrnn.cli.signals import Interrupted

    args = ["train", str(corpus_file), *TINY_CLI, "--steps", "5", "--name", "x"]
    assert env(args).exit_code == 0
    folder = tmp_path / "checkpoints" / "x"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"}
    assert {"best.pt", "last.pt", "metrics.jsonl"} <= set(before)

    def interrupted(*args, **kwargs):
        raise Interrupted(signal.SIGINT)

    with monkeypatch.context() as m:
        m.setattr(report, "list_notes", interrupted)
        r = env([*args, "--force"])
    assert r.exit_code == 130 and r.stderr.endswith(
        "Stopped during start-up, before the first step: nothing was trained or saved (the run "
        "--force would replace is as it was).\n"
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"} == before
    r = env([*args, "--force", "--steps", "3"])  # and --force replaces it
    assert r.exit_code == 0 and torch.load(folder / "last.pt")["trainer"]["step"] == 3


def test_ctrl_c_saves_last_and_resume_matches_an_uninterrupted_run(tmp_path, corpus_file):
    # the installed command: the one beside this Python, whether or not its folder is on PATH
    exe = shutil.which("charrnn", path=os.path.dirname(sys.executable)) or shutil.which("charrnn")
    assert exe, "the charrnn command is not installed (pip install -e .)"
    args = [exe, "train", str(corpus_file), *TINY_CLI, "--steps", "240", "--dropout", "0.1"]
    args += ["--eval-every", "60"]  # the cold-start check at every evaluation is most of the time
    run = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": DEADLINE}
    assert subprocess.run([*args, "--name", "whole"], **run).returncode == 0

    p = subprocess.Popen(
        [*args, "--name", "cut"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    metrics = tmp_path / "checkpoints/cut/metrics.jsonl"
    deadline = time.time() + DEADLINE
    while (not metrics.is_file() or not metrics.read_text()) and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 130, err
    assert "Resume with: charrnn train --resume cut" in err and "Traceback" not in err
    step = torch.load(tmp_path / "checkpoints/cut/last.pt", weights_only=True)["trainer"]["step"]
    assert 0 < step < 240

    r = subprocess.run([exe, "train", "--resume", "cut"], **run)
    assert r.returncode == 0, r.stderr
    whole = torch.load(tmp_path / "checkpoints/whole/last.pt", weights_only=True)
    cut = torch.load(tmp_path / "checkpoints/cut/last.pt", weights_only=True)
    assert cut["trainer"]["step"] == 240
    for name, w in whole["model"].items():
        assert torch.equal(w, cut["model"][name]), name


def test_a_run_state_goes_to_a_file_and_back_unchanged(trained_run):
    """checkpoint.py alone turns a RunState into a file and back: nothing is lost on the way."""
    from charrnn import checkpoint

    payload = checkpoint.load(trained_run.last)
    again = checkpoint.to_payload(checkpoint.load_run(trained_run.last))
    for part in ("format", "format_version", "digests"):
        payload.pop(part)
    assert set(again) == set(payload)
    assert checkpoint._digest(again) == checkpoint._digest(payload)


def test_open_run_starts_then_resumes_one_run_holding_its_lock(tmp_path, corpus_file):
    """The CLI's one call: a new run from files, its folder locked while it trains; the same
    call with `resume` continues it."""
    from charrnn.train.open import RunRequest, TextReader, open_run

    reader = TextReader(tmp_path / "cache")
    train = {**TINY_TRAIN, "max_steps": 10}
    new = RunRequest(tmp_path / "ck", corpus=(str(corpus_file),), model=TINY_MODEL, train=train)
    told = []
    with open_run(new, reader, on_open=told.append) as opened:
        assert told == [opened] and opened.trainer.run_dir.name == "tiny"
        with pytest.raises(RunError, match=r"is open already in this process \(pid \d+\)"):
            opened.trainer.run_dir.session().__enter__()
        drain(opened.trainer)
    # a new run left before it trains leaves no folder behind (its lock alone)
    with open_run(RunRequest(tmp_path / "ck", corpus=(str(corpus_file),), name="left"), reader):
        assert (tmp_path / "ck" / "left").is_dir()
    assert not (tmp_path / "ck" / "left").exists()
    shutil.copytree(tmp_path / "ck" / "tiny", tmp_path / "ck" / "copy")
    again = RunRequest(tmp_path / "ck", corpus=(str(corpus_file),), name="copy", replace=True)
    with open_run(again, reader):  # replacing a run: its files go as the new one first writes
        assert (tmp_path / "ck" / "copy" / "best.pt").exists()
    assert (tmp_path / "ck" / "copy" / "best.pt").exists()  # left before: the old run as it was
    with open_run(again, reader) as opened:
        opened.trainer.config.max_steps = 1
        drain(opened.trainer)
    assert sorted(p.name for p in (tmp_path / "ck" / "copy").iterdir()) == [
        ".lock", "best.pt", "last.pt", "metrics.jsonl",
    ]  # fmt: skip
    assert torch.load(tmp_path / "ck" / "copy" / "last.pt")["trainer"]["step"] == 1
    # a cell that is not the base's is refused with a base, as `--cell` with `--init-from` is
    base = str(tmp_path / "ck" / "tiny")
    corpus = (str(corpus_file),)
    tune = RunRequest(tmp_path / "ck", corpus=corpus, name="t", init_from=base, cell="gru")
    with pytest.raises(ConfigError, match="cell gru contradicts the model to start from"):
        open_run(tune, reader).__enter__()
    # what the run keeps its own of is refused, as `train --resume` refuses it, not dropped
    for train, why in [
        ({"max_steps": 20, "seed": 3}, "seed cannot change when resuming"),
        ({"max_step": 20}, "unknown train option.*max_step"),
    ]:
        with (
            pytest.raises(ConfigError, match=why),
            open_run(RunRequest(tmp_path / "ck", resume="tiny", train=train), reader),
        ):
            pass
    for kept in ({"cell": "gru"}, {"size": "large"}, {"model": {"hidden_size": 9}}, {"name": "x"}):
        with pytest.raises(ConfigError, match="cannot be given when resuming a run"):
            RunRequest(tmp_path / "ck", resume="tiny", **kept)
    resumed = RunRequest(str(tmp_path / "ck"), resume="tiny", train={"max_steps": 20})
    with open_run(resumed, reader) as opened:
        assert opened.trainer.pos.step == 10 and opened.chars == len(corpus_file.read_text())
        assert drain(opened.trainer)[-1].step == 20
    # a hook that cannot be called is refused before a run to be replaced is touched
    again = RunRequest(tmp_path / "ck", resume="tiny", train={"max_steps": 30})
    replace = RunRequest(tmp_path / "ck", corpus=(str(corpus_file),), name="tiny", replace=True)
    for wrong in ({"on_open": 3}, {"dist": "x"}):
        with pytest.raises(ConfigError, match=next(iter(wrong))):
            open_run(replace, reader, **wrong).__enter__()
    assert (tmp_path / "ck" / "tiny" / "best.pt").is_file()
    # its lock released, a run made inside the block trains no more: another may own it now
    with open_run(again, reader) as opened:
        events = opened.trainer.run()
        next(events)
    with pytest.raises(RunError, match="open_run block has ended"):
        list(events)
    assert checkpoint.load(tmp_path / "ck" / "tiny" / "last.pt")["trainer"]["step"] == 20


@pytest.mark.parametrize("as_given", [str, Path, lambda p: [str(p)]])
def test_a_run_requests_corpus_may_be_one_path(tmp_path, corpus_file, as_given):
    """A library caller's one file, as a str or a Path, is that file: not a corpus a character."""
    from charrnn.train.open import RunRequest

    request = RunRequest(str(tmp_path / "ck"), corpus=as_given(corpus_file))
    assert request.corpus == (str(corpus_file),) and request.checkpoint_dir == tmp_path / "ck"
    for wrong in (3, [corpus_file, None], b"a.txt"):
        with pytest.raises(ConfigError, match="corpus must be a path or a tuple of paths"):
            RunRequest(tmp_path / "ck", corpus=wrong)


def test_a_new_model_starts_from_the_training_parts_character_frequencies(tmp_path, trained_run):
    """A new run's output bias is the log of each character's add-one frequency in the part it
    trains on (not validation's); a fine-tune keeps its base's, as it keeps every weight."""
    from charrnn import checkpoint
    from charrnn.train.open import RunRequest, TextReader, open_run

    corpus = tmp_path / "c.txt"
    corpus.write_text("a" * 550 + "b" * 300 + "ab" * 25 + "c" * 100)  # the last 100: validation
    reader = TextReader(tmp_path / "cache")
    new = RunRequest(tmp_path / "ck", corpus=(str(corpus),), model=TINY_MODEL, train=TINY_TRAIN)
    with open_run(new, reader) as opened:
        bias = opened.trainer.trained.net.head.bias.detach()
        chars = opened.trainer.vocab.chars
        stored = opened.trainer.corpus["char_counts"]
    counts = {"a": 575, "b": 325, "c": 0}  # (+1 each): the first 900 characters
    expected = torch.tensor([math.log((counts[ch] + 1) / 903) for ch in chars])
    torch.testing.assert_close(bias, expected)
    assert dict(zip(chars, stored, strict=True)) == {"a": 575, "b": 325, "c": 100}  # the whole
    base = checkpoint.load(trained_run.best)["model"]["head.bias"]
    text = tmp_path / "t.txt"
    text.write_text(make_text(2000, seed=3))  # the base's kind of text: no new characters
    tune = RunRequest(tmp_path / "ck", corpus=(str(text),), init_from=str(trained_run.best))
    with open_run(tune, reader) as opened:
        torch.testing.assert_close(opened.trainer.trained.net.head.bias.detach(), base)


def test_a_short_text_trains_on_the_streams_that_fit_it_unless_a_batch_is_given(env, tmp_path):
    corpus = tmp_path / "short.txt"  # 1,000 characters: its last 100 validate, 3 windows of 32
    corpus.write_text(make_text(1_000, seed=5))
    shape = ["--hidden", "16", "--embedding", "8", "--steps", "2"]
    r = env(["train", str(corpus), *shape, "--name", "s"])
    assert r.exit_code == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert "batch 3x32" in first and "(3 streams, not 32, to fit 1,000 characters)" in first
    r = env(["train", str(corpus), *shape, "--name", "b", "--batch-size", "32"])
    assert r.exit_code == 1 and "--batch-size 3 --seq-len 32 fits this text" in r.stderr
    # a split given: the note names the part too short, not the whole text
    for frac, said in (("0.05", "the validation split's 50"), ("0.96", "the training split's 40")):
        r = env(["train", str(corpus), *shape, "--name", "v", "--force", "--val-frac", frac])
        assert r.exit_code == 0, r.stderr
        assert f"(1 stream, not 32, to fit {said} characters (--val-frac {frac}))" in r.stderr


@pytest.mark.parametrize("chars", [12, 25, 60, 219, 700, 2_000, 9_000])
@pytest.mark.parametrize("batch, window", [(32, 32), (4, 16), (7, 100)])
def test_a_text_too_short_for_the_batch_is_told_values_that_fit_it(tmp_path, chars, batch, window):
    """Each way out the error gives trains at once: smaller values, another --val-frac, or the
    length of text it names; the other split does not refuse them next."""
    text = make_text(chars, seed=chars)
    try:
        make_trainer(text, tmp_path / "r", batch_size=batch, seq_len=window, max_steps=2)
        return  # it fits as asked
    except ConfigError as e:
        message = str(e)
    shape = dict(batch_size=batch, seq_len=window)
    tries = []
    if found := re.search(r"--batch-size (\d+) --seq-len (\d+) fits this text", message):
        b, t = map(int, found.groups())
        assert b >= 1 and 1 <= t <= window
        tries.append((text, dict(batch_size=b, seq_len=t)))
    if found := re.search(r"--val-frac (0\.\d+)", message):
        tries.append((text, dict(**shape, val_frac=float(found.group(1)))))
    found = re.search(r"or more text \(([\d,]+) characters or more for these values\)$", message)
    assert found, message
    enough = int(found.group(1).replace(",", ""))
    tries.append((make_text(enough, seed=chars), shape))
    for i, (given, values) in enumerate(tries):
        events = drain(make_trainer(given, tmp_path / f"f{i}", **values, max_steps=2))
        assert isinstance(events[-1], DoneEvent) and events[-1].reason == "steps"


def test_a_run_whose_validation_loss_rose_well_after_its_best_says_it_learned_the_text_by_heart():
    from types import SimpleNamespace

    from charrnn.cli.report import memorised_note
    from charrnn.text.data import char_counts

    def run(losses, patience=None, val="abcab", one_text=False):
        metrics = [{"kind": "train", "step": 5, "train_loss": 0.1}]
        metrics += [
            {"kind": "eval", "step": 10 * (i + 1), "val_loss": v} for i, v in enumerate(losses)
        ]
        vocab = CharVocab.from_text("abcé")
        ids = lambda text: SimpleNamespace(ids=torch.tensor(vocab.encode(text)))  # noqa: E731
        return SimpleNamespace(
            pos=SimpleNamespace(metrics=metrics),
            config=SimpleNamespace(patience=patience, val_frac=0.1),
            vocab=vocab,
            one_text=one_text,
            train_batches=ids("abcabcabc" * 20),
            val_batches=ids(val),
            train_char_counts=lambda: char_counts(ids("abcabcabc" * 20).ids, len(vocab)),
        )

    note = memorised_note(run([3.0, 2.0, 2.5]))
    assert note.startswith("Note: the validation loss rose from 2.0000 nats at step 20 to 2.5000")
    assert "by heart" in note and "best.pt holds the best" in note and "--patience 4" in note
    # a validation part in characters the training part never has (a last file in French): no
    # training teaches them; that, not learning by heart, is why the loss rose
    note = memorised_note(run([3.0, 2.0, 2.5], val="abcé" * 25))
    assert "by heart" not in note and note.endswith(
        ": 25% of the validation characters (the text's last 10%) never occur in the training "
        "part, and no training teaches them; with several files, the last in sorted order "
        "validate: put one like the rest last, or give --val-frac."
    )
    # in one text, no file order to change: they come only in its last part
    note = memorised_note(run([3.0, 2.0, 2.5], val="abcé" * 25, one_text=True))
    assert note.endswith(
        "they come only in the text's last part: put some of it earlier if they matter."
    )
    # a rise far beyond what so few such characters can add (1% of them: 0.2 nats at most) is
    # learning by heart, said as such (the Zen of Python's one '!': 2.4 nats of rise)
    one_in_100 = "abcab" * 19 + "abcaé"
    assert "by heart" in memorised_note(run([3.0, 2.0, 4.4], val=one_in_100))
    assert "by heart" not in memorised_note(run([3.0, 2.0, 2.15], val=one_in_100))
    assert memorised_note(run([3.0, 2.0, 2.09])) is None  # within the noise of a short split
    assert memorised_note(run([3.0, 2.0, 2.5], patience=4)) is None  # its early stop says so
    assert memorised_note(run([])) is None


def test_a_list_sorted_or_of_repeats_is_told_of_as_its_run_starts(env, tmp_path):
    """A list of names sorted A to Z validates on its T-Z alone, which training never reads; one
    of repeated lines validates on lines training holds (0.3 bits a character, samples copies):
    each said as the run starts; a list shuffled once, of each name once, is not."""
    import random

    rng = random.Random(0)
    names = sorted({"".join(rng.choice("bdklmnrst") + rng.choice("aeiou") for _ in range(3))
                    for _ in range(400)})  # fmt: skip
    shuffled = rng.sample(names, len(names))
    lists = {"sorted": names, "reversed": names[::-1], "repeats": shuffled * 4, "plain": shuffled}
    lists["ties"] = sorted(names + names[::4])  # sorted, some lines twice: in order all the same
    said = {}
    for name, lines in lists.items():
        (tmp_path / f"{name}.txt").write_text("Names\n\n" + "\n".join(lines) + "\n")
        args = ["train", f"{name}.txt", *TINY_CLI[: TINY_CLI.index("--eval-every")], "--steps", "1"]
        r = env([*args, "--seq-len", "8"])
        assert r.exit_code == 0, r.stderr
        said[name] = [line for line in r.stderr.splitlines() if line.startswith("Note: ")]
    assert len(said["sorted"]) == 1 and "lines are in sorted order ('Names'" in said["sorted"][0]
    assert len(said["reversed"]) == 1 and "lines are in sorted order" in said["reversed"][0]
    assert any("lines are in sorted order" in note for note in said["ties"])
    assert "shuf" in said["sorted"][0]
    assert (
        len(said["repeats"]) == 1 and "% of the lines of the validation part" in said["repeats"][0]
    )
    assert said["plain"] == []
    lead = checkpoint.load(tmp_path / "checkpoints/plain/best.pt")["model_config"]["lead_in"]
    assert lead == "\n"  # a list whose title ends in a blank line is still a list


def test_a_new_run_whose_validation_part_holds_characters_training_lacks_says_so_first(env):
    """The text's last part in characters its first part never has (a table of figures at the
    end): said as the run starts, naming them, so that a validation loss no training lowers is
    not read as a model that learns nothing. Once: a resume does not say it again."""
    with open("t.txt", "w") as f:
        f.write(make_text(4000) + "0123456789" * 40)  # the last 440 validate: 400 are figures
    r = env(["train", "t.txt", *TINY_CLI, "--steps", "2", "--name", "t"])
    assert r.exit_code == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "never occur in the training" in line]
    assert notes == [
        "Note: 91% of the validation characters (the text's last 10%) never occur in the training "
        "part ('0', '1', '2', '3', '4', '5', '6', '7' and 2 more): no training teaches them, and "
        "the validation loss counts them however well the model learns; they come only in the "
        "text's last part: put some of it earlier if they matter."
    ]
    again = env(["train", "--resume", "t", "--steps", "3"])
    assert again.exit_code == 0 and "never occur" not in again.stderr, again.stderr
    with open("p.txt", "w") as f:
        f.write("0123456789" * 40 + make_text(4000))  # the figures first: trained on
    plain = env(["train", "p.txt", *TINY_CLI, "--steps", "2", "--name", "p"])
    assert plain.exit_code == 0 and "never occur" not in plain.stderr, plain.stderr


def test_eval_every_under_a_time_budget_says_how_many_of_its_evaluations_were_made(env, tmp_path):
    """--time keeps evaluations within its share; an --eval-every given that it thins is said,
    once, after the Done line (stderr), with the count the run's records show."""
    from charrnn.cli.report import thinned_note
    from charrnn.train.config import TrainConfig

    timed = TrainConfig(batch_size=4, seq_len=8, lr=1e-3, eval_every=50, max_time=60.0)
    assert thinned_note(timed, 0, 210, 4) is None  # 50, 100, 150, 200: all made
    assert "1 of the 4 evaluations --eval-every 50 asked for was made" in thinned_note(
        timed, 0, 210, 1
    )
    assert thinned_note(dataclasses.replace(timed, max_time=None), 0, 210, 1) is None
    one = thinned_note(timed, 0, 60, 0)
    assert "0 of the 1 evaluation --eval-every 50 asked for was made" in one
    assert one.endswith("; give --steps or --epochs to evaluate on your own schedule")
    both = thinned_note(dataclasses.replace(timed, max_steps=210), 0, 210, 2)
    assert "2 of the 4 evaluations" in both and "; leave out --time to evaluate" in both
    (tmp_path / "t.txt").write_text(make_text(40_000))
    r = env(["train", "t.txt", *TINY_CLI, "--time", "6s", "--eval-every", "1"])
    assert r.exit_code == 0 and "Note:" not in r.stdout
    lines = r.stderr.splitlines()
    notes = [i for i, line in enumerate(lines) if "evaluations --eval-every 1 asked" in line]
    assert len(notes) == 1 and lines[notes[0] - 1].startswith("Done (")
    said = re.findall(r"Note: ([\d,]+) of the ([\d,]+) ", lines[notes[0]])[0]
    made, asked = (int(n.replace(",", "")) for n in said)
    records = [json.loads(line) for line in (tmp_path / "checkpoints/t/metrics.jsonl").open()]
    steps = [e["step"] for e in records if e["kind"] == "eval"]
    assert made < asked == max(steps) and made == len([s for s in steps if s > 0])


def test_the_training_parts_counts_a_new_run_is_given_are_those_of_its_split(tmp_path):
    """start counts the characters of the part trained on (the output layer starts from them)
    and hands them to the trainer, so that a note never reads a large text a second time: they
    must be the counts of the trainer's own training part."""
    from charrnn.text.data import char_counts

    trainer = make_trainer(make_text(3000) + "é" * 40, tmp_path / "r", val_frac=0.2)
    given = trainer.train_char_counts()
    assert given == char_counts(trainer.train_batches.ids, len(trainer.vocab))
    assert given[trainer.vocab.index["é"]] == 0 and sum(given) == len(trainer.train_batches.ids)


def test_a_time_budget_is_said_as_given_however_short():
    """`--time 0.001s` said as `budget 0s` read as no budget at all."""
    from charrnn.cli.report import _budget_time

    said = [_budget_time(s) for s in (0.001, 0.05, 0.5, 2.0, 90.0)]
    assert said == ["0.001s", "0.05s", "0.5s", "2s", "1m30s"]
