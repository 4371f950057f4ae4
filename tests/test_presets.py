"""--size auto: the preset follows the characters this machine can train in the budget and the
corpus size; explicit options win."""

import math

import pytest
import torch
from helpers.cli import invoke

from charrnn.model.config import ModelConfig
from charrnn.model.presets import BIG_CORPUS, MEDIUM_FROM_CHARS, PRESETS, SMALL_FLOAT32, choose
from charrnn.train import start
from charrnn.train.config import TrainConfig
from charrnn.train.speed import training_speed


def test_auto_picks_by_the_characters_the_budget_buys_here():
    rate = 10_000.0  # medium's chars/s
    edge = MEDIUM_FROM_CHARS / rate  # seconds
    assert choose("auto", 0.99 * edge, 1_115_394, rate).name == "small"
    assert choose("auto", 1.01 * edge, 1_115_394, rate).name == "medium"
    # the same budget on a machine three times slower buys a third of the characters
    assert choose("auto", 1.01 * edge, 1_115_394, rate / 3).name == "small"
    assert choose("auto", 1.01 * edge / 3, 1_115_394, 3 * rate).name == "medium"
    small = choose("auto", 136.5, 1_115_394, rate)
    assert small.preset == PRESETS["small"] and "1.36M characters" in small.reason
    assert choose("auto", None, 1_115_394).name == "medium"  # a --steps or --epochs budget
    assert PRESETS["medium"].dropout > 0


def test_auto_picks_a_narrower_small_for_an_lstm_trained_in_float32():
    rate = 10_000.0
    small = choose("auto", 136.5, 1_115_394, rate, float32_lstm=True)
    assert small.name == "small" and small.preset == SMALL_FLOAT32
    assert "1x384 over 16 streams, as it trains in float32" in small.reason
    assert choose("auto", 136.5, 1_115_394, rate).preset == PRESETS["small"]  # bfloat16
    # medium, and a size asked for by name, are what they are in either precision
    assert choose("auto", 600.0, 1_115_394, rate, float32_lstm=True).preset == PRESETS["medium"]
    assert choose("small", 136.5, 1_115_394, rate, float32_lstm=True).preset == PRESETS["small"]


def test_auto_drops_dropout_on_a_big_corpus_and_named_sizes_are_kept():
    choice = choose("auto", 600.0, BIG_CORPUS, 10_000.0)
    assert choice.name == "medium" and choice.preset.dropout == 0.0
    assert choice.preset.hidden_size == PRESETS["medium"].hidden_size
    assert choose("large", 60.0, BIG_CORPUS).preset == PRESETS["large"]


def test_the_speed_measurement_leaves_the_random_state_and_threads_as_they_were():
    torch.manual_seed(5)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    for vocab_size in (20, 3000):  # past uint8 ids: a corpus of Chinese text
        config = ModelConfig(vocab_size=vocab_size, embedding_dim=8, hidden_size=16, num_layers=1)
        rate = training_speed(config, TrainConfig(batch_size=4, seq_len=8, lr=1e-3))
        assert math.isfinite(rate) and rate > 0
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads


@pytest.mark.parametrize(
    ("rate", "bf16", "options", "size", "shape"),
    [
        (2_000.0, True, [], "small", ("1x512 LSTM", "batch 32x32")),
        (2_000.0, False, [], "small", ("1x384 LSTM", "batch 16x32")),  # SMALL_FLOAT32
        (2_000.0, False, ["--cell", "gru"], "small", ("GRU", "batch 32x32")),
        (200_000.0, False, [], "medium", ("1x768 LSTM", "batch 32x32")),
        # options that shape the model: the one timed is named, and small stays small
        (2_000.0, False, ["--hidden", "40"], "small", ("1x40 LSTM", "batch 32x32", "(1x40)")),
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
    timed = "medium as the options shape it" if "--hidden" in options else "medium"
    assert f"(--size auto: {size}: {timed}" in r.stderr and " would train " in r.stderr
    assert f"({rate:,.0f}/s measured)" in r.stderr
    assert ("as it trains in float32" in r.stderr) == (shape[0] == "1x384 LSTM")


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
