"""--size auto: the preset follows the characters this machine can train in the budget and the
corpus size; explicit options win."""

import json
import math
import re
import time

import pytest
import torch
from helpers.cli import assert_one_error, invoke

from charrnn import checkpoint
from charrnn.errors import ConfigError
from charrnn.model.config import ModelConfig, parameter_count
from charrnn.model.presets import (
    DENSE_EVALS_FROM,
    EARLY_STOP_PASSES,
    FEW_PASSES,
    INPUT_DROPOUT,
    INPUT_DROPOUT_PASSES,
    MANY_PASSES,
    MANY_PASSES_DROPOUT,
    MAX_PASSES,
    MEDIUM_FROM_CHARS,
    MOST_PASSES,
    MOST_PASSES_DROPOUT,
    NO_DROPOUT_PASSES,
    PATIENCE,
    PRESETS,
    SMALL_FLOAT32,
    SMALL_FLOAT32_FROM_CHARS,
    SMALL_FROM_CHARS,
    choose,
    for_passes,
    untimed,
)
from charrnn.train import config as config_module
from charrnn.train import start
from charrnn.train.config import TrainConfig
from charrnn.train.speed import training_speed


def test_auto_picks_by_the_characters_the_budget_buys_here():
    rate = 10_000.0  # medium's chars/s
    edge = MEDIUM_FROM_CHARS / rate  # seconds
    assert choose("auto", 0.99 * edge, rate).name == "small"
    assert choose("auto", 1.01 * edge, rate).name == "medium"
    # the same budget on a machine three times slower buys a third of the characters
    assert choose("auto", 1.01 * edge, rate / 3).name == "small"
    assert choose("auto", 1.01 * edge / 3, 3 * rate).name == "medium"
    small = choose("auto", 136.5, rate)
    assert small.preset == PRESETS["small"] and "1.36M characters" in small.reason
    # too few for small to learn much: tiny, by a line of its own in float32, unless shaped
    tiny = choose("auto", 0.99 * SMALL_FROM_CHARS / rate, rate)
    assert tiny.name == "tiny" and "under the 0.4M that small needs" in tiny.reason
    assert choose("auto", 1.01 * SMALL_FROM_CHARS / rate, rate).name == "small"
    between = 0.99 * SMALL_FROM_CHARS / rate
    assert between * rate > SMALL_FLOAT32_FROM_CHARS  # a float32 run's small learns more here
    assert choose("auto", between, rate, float32_lstm=True).preset == SMALL_FLOAT32
    assert choose("auto", 0.99 * SMALL_FLOAT32_FROM_CHARS / rate, rate, True).name == "tiny"
    shaped = choose("auto", 1.0, rate, shaped=True)
    assert shaped.name == "small" and "(not tiny: the options shape the model)" in shaped.reason
    assert "not tiny" not in small.reason
    assert choose("auto", None).name == "medium"  # a --steps or --epochs budget
    assert PRESETS["medium"].dropout > 0


def test_auto_picks_a_narrower_small_for_an_lstm_trained_in_float32():
    rate = 10_000.0
    small = choose("auto", 136.5, rate, float32_lstm=True)
    assert small.name == "small" and small.preset == SMALL_FLOAT32
    assert "1x384 over 16 streams, as it trains in float32" in small.reason
    assert choose("auto", 136.5, rate).preset == PRESETS["small"]  # bfloat16
    # medium, and a size asked for by name, are what they are in either precision
    assert choose("auto", 600.0, rate, float32_lstm=True).preset == PRESETS["medium"]
    assert choose("small", 136.5, rate, float32_lstm=True).preset == PRESETS["small"]


def test_auto_sets_dropout_by_the_passes_over_the_text():
    medium = choose("auto", 600.0, 10_000.0)
    once = for_passes(medium, 0.6, early_stop=False)  # a big text: read less than once
    assert once.name == "medium" and once.preset.dropout == 0.0
    assert once.preset.hidden_size == PRESETS["medium"].hidden_size
    assert "dropout 0, as the budget reads the text less than once" in once.reason
    for passes, said in ((1.0, "about once"), (2.0, "about 2 times"), (3.0, "about 3 times")):
        few = for_passes(medium, passes, early_stop=False)  # a few times: none yet, and said
        assert few.preset.dropout == 0.0 and passes <= NO_DROPOUT_PASSES
        assert f"dropout 0, as the budget reads the text {said}" in few.reason
        assert few.preset.input_dropout == 0.0 and "input dropout" not in few.reason
    at_few = for_passes(medium, FEW_PASSES, early_stop=False)  # the preset's dropout, unsaid
    assert at_few.preset.dropout == medium.preset.dropout
    said = "input dropout 0.05, as the budget reads the text about 4 times"
    assert at_few.reason == f"{medium.reason}; {said}"
    assert "reads the text about 1,122 times" in for_passes(medium, 1122, early_stop=False).reason
    # from none it rises in lines, in steps of 0.05, and never falls as the passes grow
    ramp = [for_passes(medium, p / 4, early_stop=False).preset.dropout for p in range(1, 200)]
    halfway = (NO_DROPOUT_PASSES + FEW_PASSES) / 2
    assert for_passes(medium, halfway, early_stop=False).preset.dropout == pytest.approx(
        PRESETS["medium"].dropout / 2, abs=0.03
    )
    assert ramp == sorted(ramp) and {round(d * 20, 9) % 1 for d in ramp} == {0}
    # the input's: none up to NO_DROPOUT_PASSES, then a line to INPUT_DROPOUT, flat on
    ramp_in = [for_passes(medium, p / 4, early_stop=False).preset.input_dropout for p in range(200)]
    assert ramp_in == sorted(ramp_in) and {round(d * 20, 9) % 1 for d in ramp_in} == {0}
    assert ramp_in[4 * int(NO_DROPOUT_PASSES)] == 0.0 and ramp_in[-1] == INPUT_DROPOUT
    halfway = (NO_DROPOUT_PASSES + INPUT_DROPOUT_PASSES) / 2
    assert for_passes(medium, halfway, early_stop=False).preset.input_dropout == pytest.approx(
        INPUT_DROPOUT / 2
    )
    assert for_passes(medium, INPUT_DROPOUT_PASSES, early_stop=False).preset.input_dropout == (
        INPUT_DROPOUT
    )
    middle = for_passes(medium, (FEW_PASSES + MANY_PASSES) / 2, early_stop=False).preset.dropout
    assert middle == pytest.approx((PRESETS["medium"].dropout + MANY_PASSES_DROPOUT) / 2, abs=0.03)
    tiny = for_passes(choose("auto", 10.0, 10_000.0), MOST_PASSES, early_stop=False)
    assert tiny.name == "tiny" and tiny.preset.dropout == 0.0  # too small to learn it by heart
    assert tiny.preset.input_dropout == INPUT_DROPOUT and "; input dropout 0.1, as" in tiny.reason
    for choice in (choose("auto", 60.0, 10_000.0), medium):  # small and medium
        often = for_passes(choice, MANY_PASSES, early_stop=False)
        assert often.name == choice.name and often.preset.dropout == MANY_PASSES_DROPOUT
        assert often.reason.startswith(choice.reason)
        assert often.preset.input_dropout == INPUT_DROPOUT
        assert (
            f"; dropout 0.5 and input dropout {INPUT_DROPOUT:g}, as the budget reads the text "
            f"about {MANY_PASSES:.0f} times" in often.reason
        )
        # on past it, in a second line, to its top from MOST_PASSES
        between = for_passes(
            choice, (MANY_PASSES + MOST_PASSES) / 2, early_stop=False
        ).preset.dropout
        assert between == pytest.approx((MANY_PASSES_DROPOUT + MOST_PASSES_DROPOUT) / 2, abs=0.03)
        for passes in (MOST_PASSES, 10 * MOST_PASSES):
            assert (
                for_passes(choice, passes, early_stop=False).preset.dropout == MOST_PASSES_DROPOUT
            )


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"max_epochs": 3.0}, 3.0),
        ({"max_steps": 100}, 100 * 8 * 16 / 900),  # B x T characters a step
        ({"max_time": 60.0}, 60 * 50 / 900),  # at 50 characters a second
        ({"max_time": 60.0, "max_steps": 10, "max_epochs": 2.0}, 10 * 8 * 16 / 900),  # the least
        ({"max_time": 60.0, "max_epochs": 2.0}, 2.0),
    ],
)
def test_the_passes_a_run_makes_are_the_least_its_budgets_allow(budget, expected):
    config = TrainConfig(batch_size=8, seq_len=16, lr=1e-3, val_frac=0.1, **budget)
    assert start.passes(config, 1000, 50.0) == pytest.approx(expected)
    assert start.passes(TrainConfig(batch_size=8, seq_len=16, lr=1e-3), 1000, 50.0) is None
    if "max_steps" not in budget and "max_epochs" not in budget:  # a start-up's seconds are spent
        assert start.passes(config, 1000, 50.0, spent=15.0) == pytest.approx(45 * 50 / 900)
        assert start.passes(config, 1000, 50.0, spent=99.0) == 0.0


def test_the_speed_measurement_leaves_the_random_state_and_threads_as_they_were():
    torch.manual_seed(5)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    for vocab_size in (20, 3000):  # past uint8 ids: a corpus of Chinese text
        config = ModelConfig(vocab_size=vocab_size, embedding_dim=8, hidden_size=16, num_layers=1)
        rate = training_speed(config, TrainConfig(batch_size=4, seq_len=8, lr=1e-3))
        assert math.isfinite(rate) and rate > 0
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads


def test_the_speed_measurement_times_a_rate_that_would_blow_up():
    """`train --time 20s --lr 1e9`: the run says it diverged, in one Error line; the measurement
    that `auto` makes first must not raise it from inside (a traceback)."""
    config = ModelConfig(vocab_size=20, embedding_dim=8, hidden_size=16, num_layers=1)
    assert training_speed(config, TrainConfig(batch_size=4, seq_len=8, lr=1e9)) > 0


def test_the_speed_measurement_stops_where_its_time_is_up(monkeypatch):
    """A model whose step takes seconds must not spend a short --time being measured: a first
    step that takes `within` seconds or more is all it takes."""
    from charrnn.train.trainer import Trainer

    steps, train_step = [], Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self: steps.append(1) or train_step(self))
    config = ModelConfig(vocab_size=20, embedding_dim=8, hidden_size=16, num_layers=1)
    train = TrainConfig(batch_size=4, seq_len=8, lr=1e-3)
    assert training_speed(config, train, within=0.0) > 0 and len(steps) == 1
    steps.clear()
    assert training_speed(config, train, within=None) > 0 and len(steps) > 4  # a dozen or so


@pytest.mark.parametrize(
    ("rate", "bf16", "options", "size", "shape"),
    [
        (20_000.0, True, [], "small", ("1x512 LSTM", "batch 32x32")),
        (20_000.0, False, [], "small", ("1x384 LSTM", "batch 16x32")),  # SMALL_FLOAT32
        (20_000.0, False, ["--cell", "gru"], "small", ("GRU", "batch 32x32")),
        (2_000.0, True, [], "tiny", ("1x128 LSTM", "batch 32x32")),
        (2_000.0, False, [], "tiny", ("1x128 LSTM", "batch 32x32")),
        (200_000.0, False, [], "medium", ("1x768 LSTM", "batch 32x32")),
        # options that shape the model: the one timed is named, and small stays small
        (2_000.0, False, ["--hidden", "40"], "small", ("1x40 LSTM", "batch 32x32", "the 1x40 ")),
        (2_000.0, False, ["--batch-size", "8"], "small", ("1x512 LSTM", "batch 8x32")),
    ],
)
def test_the_cli_says_what_auto_chose_and_why(
    tmp_path, monkeypatch, corpus_file, rate, bf16, options, size, shape
):
    """The choice follows the measured speed and the precision this CPU trains in (both stood
    in for here: no test depends on timing or on the CPU)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(start, "training_speed", lambda *a, **k: rate)
    monkeypatch.setattr(start, "autocast_dtype", lambda *a: torch.bfloat16 if bf16 else None)
    r = invoke(["train", str(corpus_file), "--time", "1m", "--steps", "1", *options])
    assert r.exit_code == 0, r.stderr
    assert all(part in r.stderr for part in shape)
    timed = "the 1x40 model the options shape" if "--hidden" in options else "medium"
    assert f"(--size auto: {size}: {timed}" in r.stderr and " would train " in r.stderr
    assert f"({rate:,.0f}/s measured)" in r.stderr
    assert ("as it trains in float32" in r.stderr) == (shape[0] == "1x384 LSTM")


def test_auto_without_a_time_budget_names_the_shape_the_options_give(
    tmp_path, monkeypatch, corpus_file
):
    """medium's settings (embedding, weight decay...) around a width or depth given: said so."""
    monkeypatch.chdir(tmp_path)
    r = invoke(["train", str(corpus_file), "--steps", "1", "--hidden", "40", "--layers", "2"])
    assert r.exit_code == 0 and "2x40 LSTM" in r.stderr, r.stderr
    said = "(--size auto: medium: no time budget; medium's other settings around the 2x40 shape"
    assert said in r.stderr
    r = invoke(["train", str(corpus_file), "--steps", "1", "--embedding", "16", "--name", "e"])
    assert "medium's other settings around the embedding of 16 given;" in r.stderr, r.stderr
    r = invoke(["train", str(corpus_file), "--steps", "1", "--name", "plain", "--size", "tiny"])
    assert r.exit_code == 0 and "other settings" not in r.stderr


def test_a_model_whose_step_outlasts_the_whole_budget_is_refused_before_training(
    tmp_path, monkeypatch, corpus_file
):
    """Not a run that ends minutes after its --time: one step of 32x32 characters at 100 a
    second is 10 s, more than a budget of 5 (the speed stood in for: no test depends on timing)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 100.0)
    r = invoke(["train", str(corpus_file), "--time", "5s", "--hidden", "2048"])
    assert_one_error(r, 1, "one training step of a 1x2048 model takes about 10s here, more ")
    assert "give a --time of 10" in r.stderr and not (tmp_path / "checkpoints").exists()
    r = invoke(["train", str(corpus_file), "--time", "15s", "--steps", "1", "--hidden", "16"])
    assert r.exit_code == 0, r.stderr  # 10 s a step fits in 15
    # medium's step (the one timed) would not fit in 5 s, but tiny's, which auto then picks and
    # times itself, does
    rates = {768: 32 * 32 / 6.0, 128: 32 * 32 / 0.1}  # by the model's width
    monkeypatch.setattr(start, "training_speed", lambda shape, *a, **k: rates[shape.hidden_size])
    r = invoke(["train", str(corpus_file), "--time", "5s", "--steps", "1", "--name", "s"])
    assert r.exit_code == 0 and "(--size auto: tiny: " in r.stderr, r.stderr


def test_a_budget_of_seconds_gets_tiny_without_timing_medium(tmp_path, monkeypatch, corpus_file):
    """Where small could not learn enough even were medium as fast as the fastest CPU (twice it),
    medium is not timed (its first steps were 3 s of a 10 s budget): tiny, timed itself, is
    chosen at once, and the first line says why; a longer budget, or a shaped model, is timed."""
    assert untimed(9.5, False, 40_000.0).name == "tiny"
    assert untimed(20.0, False, 40_000.0) is None
    assert untimed(8.0, True, 40_000.0) is None  # float32's small needs only 0.25M
    timed = []

    def speed(shape, *args, **kwargs):
        timed.append(shape.hidden_size)
        return 50_000.0

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(start, "training_speed", speed)
    monkeypatch.setattr(start, "autocast_dtype", lambda *a: torch.bfloat16)
    r = invoke(["train", str(corpus_file), "--time", "8s", "--steps", "1", "--name", "a"])
    assert r.exit_code == 0, r.stderr
    assert "(--size auto: tiny: a --time of 8s is too short for small: " in r.stderr
    assert timed == [PRESETS["tiny"].hidden_size]  # tiny alone, for its passes
    timed.clear()
    r = invoke(["train", str(corpus_file), "--time", "30s", "--steps", "1", "--name", "b"])
    assert r.exit_code == 0 and timed[0] == PRESETS["medium"].hidden_size, r.stderr


def test_a_run_past_its_time_says_so_and_what_budget_trains(tmp_path, monkeypatch, corpus_file):
    """--time is the whole command's wall time: where start-up alone took more (stood in for: the
    command's start moved 3 s back), the run still trains a step, and ends saying it overran and
    what --time would train it; a run within its budget says nothing of it."""
    import importlib
    import time

    train = importlib.import_module("charrnn.cli.train")
    monkeypatch.chdir(tmp_path)
    r = invoke(["train", str(corpus_file), "--time", "60s", "--steps", "2", "--name", "ok"])
    assert r.exit_code == 0 and "Warning" not in r.stderr, r.stderr
    monkeypatch.setattr(train, "_process_started", lambda: time.perf_counter() - 3.0)
    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 1e6)  # a step of 1 ms
    r = invoke(["train", str(corpus_file), "--time", "1s", "--name", "late"])
    assert r.exit_code == 0 and "Done (time budget spent) after 1 step" in r.stderr, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("Warning: the run took ")]
    assert line.endswith(
        "s, over its --time of 1s: a --time of 1s goes mostly to starting the command (the model "
        "trained 1 step); give 10s or more to train it"
    )
    # a budget of seconds that start-up mostly took (stood in for: 2.9 s of its 3), kept or not:
    # the same advice
    monkeypatch.setattr(train, "_process_started", lambda: time.perf_counter() - 2.9)
    r = invoke(["train", str(corpus_file), "--time", "3s", "--name", "short"])
    assert r.exit_code == 0 and "Done (time budget spent)" in r.stderr, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("Warning: ")]
    assert "a --time of 3s goes mostly to starting the command (the model trained " in line


def test_a_start_up_that_took_the_budget_still_trains_a_short_step():
    """Where start-up alone used the budget (a busy machine, --time 3s), a step of a fraction of
    it is trained, as for a named size: the model is not the cause, so not refused; a step that
    would take the run well past it is, saying that the budget has nothing left."""
    shape = ModelConfig(vocab_size=65, embedding_dim=64, hidden_size=512, num_layers=1)
    config = TrainConfig(lr=5e-3, max_time=3.0, batch_size=32, seq_len=32)
    started = time.perf_counter() - 4.8  # start-up took 4.8 s
    start._refuse_a_step_too_long(shape, config, 32 * 32 / 0.1, started)  # 0.1 s a step: trained
    with pytest.raises(ConfigError, match=r"takes about 2\.0s here, .* start-up \(none\); give"):
        start._refuse_a_step_too_long(shape, config, 32 * 32 / 2.0, started)
    started = time.perf_counter()  # 0.1 s over a budget of 3 s: within its 5%
    start._refuse_a_step_too_long(shape, config, 32 * 32 / 3.1, started)


@pytest.mark.parametrize(
    ("first", "second", "chosen"), [(0.7, 1.1, "medium"), (0.3, None, "small")]
)
def test_a_speed_that_puts_the_budget_just_under_the_line_is_read_again(
    tmp_path, monkeypatch, text, first, second, chosen
):
    """A reading a moment's slowness could make: just under the line, auto reads medium's speed
    again and keeps the faster; far under it, once is enough."""
    from charrnn.runs import RunDir
    from charrnn.text.encoded import encode_text

    readings = [r * MEDIUM_FROM_CHARS / 600 for r in (first, second) if r is not None]
    calls = iter(readings)
    monkeypatch.setattr(start, "training_speed", lambda *a, **k: next(calls))
    corpus = encode_text(text, "t")
    model = {"hidden_size": 16, "embedding_dim": 8}
    train = {"max_time": 600.0, "max_steps": 1}
    opened = start.start(corpus, RunDir(tmp_path / "r"), model=model, train=train)
    assert opened.choice.name == chosen
    assert next(calls, None) is None  # every reading taken, and no more
    assert f"({max(readings):,.0f}/s measured)" in opened.choice.reason


def test_options_override_what_auto_chose(tmp_path, monkeypatch, corpus_file):
    monkeypatch.chdir(tmp_path)
    r = invoke(
        [
            "train",
            str(corpus_file),
            "--name",
            "b",
            "--steps",
            "1",
            "--hidden",
            "24",
            "--seq-len",
            "8",
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert "1x24 LSTM" in r.stderr and "batch 32x8" in r.stderr and "auto: medium" in r.stderr


def test_auto_stops_a_text_read_many_times_early_and_says_so_in_one_clause():
    medium = choose("auto", 600.0, 10_000.0)
    assert for_passes(medium, 0.99 * EARLY_STOP_PASSES).patience is None
    stopped = for_passes(medium, EARLY_STOP_PASSES)
    assert stopped.patience == PATIENCE and stopped.max_epochs is None
    assert stopped.reason == (
        f"{medium.reason}; dropout 0.7, input dropout {INPUT_DROPOUT:g} and a stop after "
        f"{PATIENCE} evaluations (one a pass, every other pass before the 6th) without a better "
        "validation loss, as the budget reads the text about 20 times"
    )
    # more passes than help: MAX_PASSES of them, the dropout theirs
    capped = for_passes(medium, 4 * MAX_PASSES)
    assert capped.max_epochs == MAX_PASSES and capped.patience == PATIENCE
    assert capped.preset == for_passes(medium, MAX_PASSES).preset
    assert capped.reason == (
        f"{medium.reason}; dropout 0.7, input dropout {INPUT_DROPOUT:g}, {MAX_PASSES:g} passes and "
        f"a stop after {PATIENCE} evaluations (one a pass, every other pass before the 6th) "
        "without a better validation loss, as the budget would read the text about "
        f"{4 * MAX_PASSES:g} times"
    )
    # the user's dropouts: the preset's kept
    stop_only = for_passes(medium, 40.0, dropout=False, input_dropout=False)
    assert stop_only.patience == PATIENCE and stop_only.preset == medium.preset
    assert stop_only.reason.startswith(f"{medium.reason}; {MAX_PASSES:g} passes and a stop")
    plain = for_passes(
        medium, 40.0, early_stop=False
    )  # steps or epochs given: their passes, no stop
    assert plain.patience is None and plain.max_epochs is None


@pytest.mark.parametrize(
    ("train", "patience"),
    [({}, PATIENCE), ({"max_steps": 10}, None), ({"max_epochs": 50}, None), ({"patience": 2}, 2)],
)
def test_only_a_time_budget_that_reads_the_text_many_times_gets_early_stopping(
    tmp_path, monkeypatch, text, train, patience
):
    """Steps or epochs given measure the run as the user wants it; a patience given is theirs."""
    from charrnn.runs import RunDir
    from charrnn.text.encoded import encode_text

    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 200_000.0)  # medium
    # a pass longer than the characters between evaluations of a run that does not stop early
    monkeypatch.setattr(config_module, "EVAL_CHARS", 4 * 32 * 32)
    corpus = encode_text(text[:20_000], "t")  # 600 s at about 200,000 a second: read ~6,000 times
    model = {"hidden_size": 16, "embedding_dim": 8}
    opened = start.start(corpus, RunDir(tmp_path / "r"), model=model, train=train)
    assert opened.trainer.config.patience == patience
    epochs = opened.trainer.config.max_epochs
    assert epochs == train.get("max_epochs", None if train else MAX_PASSES)
    assert (f"a stop after {PATIENCE} evaluations" in opened.choice.reason) == (
        patience == PATIENCE
    )
    config = opened.trainer.config
    if not train:  # evaluated every epoch: the peak of a short text comes within a few
        steps_per_epoch = len(opened.trainer.train_batches)
        assert config.eval_every == steps_per_epoch  # one a pass, however long the pass
        # ... but every other pass before DENSE_EVALS_FROM: the peak comes after it
        assert config.sparse_evals_until == round(DENSE_EVALS_FROM * steps_per_epoch)
    else:
        assert config.sparse_evals_until is None and config.eval_every <= 4


def test_an_eval_every_given_keeps_its_schedule_and_the_first_line_claims_no_other(
    tmp_path, monkeypatch, text
):
    from charrnn.runs import RunDir
    from charrnn.text.encoded import encode_text

    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 200_000.0)  # medium
    corpus = encode_text(text[:20_000], "t")
    model = {"hidden_size": 16, "embedding_dim": 8}
    opened = start.start(corpus, RunDir(tmp_path / "r"), model=model, train={"eval_every": 5})
    config = opened.trainer.config
    assert config.patience == PATIENCE and config.max_epochs == MAX_PASSES  # still stops early
    assert config.eval_every == 5 and config.sparse_evals_until is None
    assert f"a stop after {PATIENCE} evaluations without a better" in opened.choice.reason


@pytest.mark.parametrize(
    ("options", "dropout", "input_dropout"),
    [
        ([], MANY_PASSES_DROPOUT, INPUT_DROPOUT),
        (["--dropout", "0.2"], 0.2, INPUT_DROPOUT),  # each rate auto's unless given
        (["--input-dropout", "0.3"], MANY_PASSES_DROPOUT, 0.3),
        (["--size", "medium"], 0.1, 0.0),
    ],
)
def test_a_run_that_reads_its_text_many_times_gets_more_dropout_unless_given(
    tmp_path, monkeypatch, corpus_file, options, dropout, input_dropout
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 200_000.0)  # medium
    monkeypatch.setattr(start, "passes", lambda *a, **k: MANY_PASSES)  # as a long budget reads it
    r = invoke(
        ["train", str(corpus_file), "--time", "10m", "--steps", "1", "--name", "d", *options]
    )
    assert r.exit_code == 0, r.stderr
    said = f"dropout 0.5 and input dropout {INPUT_DROPOUT:g}, as the budget reads the text"
    assert (said in r.stderr) == (not options)
    saved = checkpoint.load(tmp_path / "checkpoints" / "d" / "last.pt")
    assert saved["model_config"]["dropout"] == dropout
    assert saved["model_config"]["input_dropout"] == input_dropout
    assert (f"input dropout {input_dropout:g}; batch" in r.stderr) == bool(input_dropout)


def test_the_passes_count_the_model_auto_chose(tmp_path, monkeypatch, corpus_file):
    """auto times medium, but small trains faster and, in float32, over fewer streams: the passes
    are small's, at medium's speed scaled by their arithmetic a character."""
    seen = {}

    def passes(config, n_chars, chars_per_s, world=1, spent=0.0):
        seen.update(streams=config.batch_size, rate=chars_per_s)
        return 2.0

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 20_000.0)  # small is chosen
    monkeypatch.setattr(start, "autocast_dtype", lambda *a: None)  # float32: SMALL_FLOAT32
    monkeypatch.setattr(start, "passes", passes)
    r = invoke(["train", str(corpus_file), "--time", "1m", "--steps", "1", "--name", "s"])
    assert r.exit_code == 0, r.stderr
    assert "1x384 LSTM" in r.stderr and seen["streams"] == SMALL_FLOAT32.batch_size
    vocab = len(checkpoint.load(tmp_path / "checkpoints" / "s" / "last.pt")["vocab"])
    medium, small = (
        parameter_count(p.model_config(vocab)) for p in (PRESETS["medium"], SMALL_FLOAT32)
    )
    assert seen["rate"] == pytest.approx(20_000.0 * medium / small)


def test_the_passes_count_the_streams_a_short_text_fits(tmp_path, monkeypatch):
    """A text too short for the preset's 32 streams trains on fewer, and so reads fewer
    characters a step: the passes the first line claims (and the dropout chosen by them) are
    those the run makes, not 32 streams' (which claimed 5 passes of a run that made 2.2)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.txt").write_text("Grüße aus Köln\n" * 300)  # 4,500 characters: 14 streams
    r = invoke(["train", "short.txt", "--steps", "20", "--name", "s"])
    assert r.exit_code == 0, r.stderr
    assert "(14 streams, not 32, to fit 4,500 characters)" in r.stderr
    claimed = float(re.search(r"reads the text about ([\d.,]+) times", r.stderr)[1])
    records = (tmp_path / "checkpoints" / "s" / "metrics.jsonl").read_text().splitlines()
    made = json.loads(records[-1])["epoch"]
    assert made == pytest.approx(2.22, abs=0.01) and abs(claimed - made) < 0.5
    saved = checkpoint.load(tmp_path / "checkpoints" / "s" / "last.pt")
    assert saved["model_config"]["dropout"] == 0.0  # read fewer than FEW_PASSES times


@pytest.mark.parametrize(
    ("cell", "input_dropout"), [("lstm", INPUT_DROPOUT), ("gru", 0.0), ("rnn", 0.0)]
)
def test_auto_gives_input_dropout_to_the_lstm_alone(
    tmp_path, monkeypatch, text, cell, input_dropout
):
    """The GRU's and the RNN's validation it did not help (presets.INPUT_DROPOUT_CELLS); the
    dropout after the layer each cell gets."""
    from charrnn.runs import RunDir
    from charrnn.text.encoded import encode_text

    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 200_000.0)  # medium
    corpus = encode_text(text, "t")
    model = {"hidden_size": 16, "embedding_dim": 8}
    opened = start.start(corpus, RunDir(tmp_path / "r"), model=model, cell=cell, train={})
    c = opened.trainer.model.config
    assert c.cell == cell and c.input_dropout == input_dropout and c.dropout >= 0.5
    assert ("input dropout" in opened.choice.reason) == (input_dropout > 0)
