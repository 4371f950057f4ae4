"""Training: loss falls, seeds reproduce, resume equals uninterrupted."""

import json
import math

import pytest
import torch
from conftest import drain, make_trainer

from charrnn.model.trained import Model
from charrnn.train.evaluate import evaluate
from charrnn.train.trainer import DoneEvent, EvalEvent, StepEvent


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


def test_resume_follows_the_same_trajectory_as_an_uninterrupted_run(tmp_path, text):
    from charrnn import checkpoint

    # dropout on, so the RNG state must come back too; 2+ epochs, so epoch rollover is crossed
    steps = 2 * len(make_trainer(text, tmp_path / "probe").train_batches) + 7
    whole = make_trainer(text, tmp_path / "whole", max_steps=steps)
    whole.model.drop.p = 0.2
    drain(whole)

    first = make_trainer(text, tmp_path / "cut", max_steps=steps)
    first.model.drop.p = 0.2
    for event in first.run():
        if isinstance(event, StepEvent) and event.step == steps // 2 + 3:  # mid-epoch, not at eval
            first.request_stop()
    assert first.pos.step == steps // 2 + 3

    payload = checkpoint.load(first.run_dir.last)
    torch.manual_seed(12345)  # a resumed process starts with some other RNG state
    second = make_trainer(text, tmp_path / "cut", seed=99, max_steps=steps)
    second.model.drop.p = 0.2
    second.load_state(payload)
    events = drain(second)
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "steps"
    for (name, p), q in zip(
        whole.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    assert whole.pos.best_val == second.pos.best_val


def test_time_budget_stops_and_schedule_decays(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "t", max_time=0.5, eval_every=10_000)
    events = drain(trainer)
    assert events[-1].reason == "time"
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[-1].lr < 0.2 * trainer.config.lr  # cosine decay follows the clock
    assert trainer.pos.elapsed >= 0.5


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
    from charrnn.train.trainer import TrainConfig

    assert TrainConfig(batch_size=32, seq_len=32, lr=1e-3).steps_per_eval == 1024
    assert TrainConfig(batch_size=32, seq_len=64, lr=1e-3).steps_per_eval == 512
    assert TrainConfig(batch_size=32, seq_len=32, lr=1e-3, eval_every=7).steps_per_eval == 7
    assert TrainConfig(batch_size=4096, seq_len=4096, lr=1e-3).steps_per_eval == 1
