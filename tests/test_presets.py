"""--size auto: the preset follows the characters this machine can train in the budget and the
corpus size; explicit options win."""

import math

import pytest
import torch
from helpers.cli import invoke

from charrnn.model.config import ModelConfig
from charrnn.model.presets import BIG_CORPUS, MEDIUM_FROM_CHARS, PRESETS, choose
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


@pytest.mark.parametrize(("rate", "size"), [(2_000.0, "small"), (200_000.0, "medium")])
def test_the_cli_says_what_auto_chose_and_why(tmp_path, monkeypatch, corpus_file, rate, size):
    """The choice follows the measured speed (stood in for here: no test depends on timing)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(start, "training_speed", lambda *a, **k: rate)
    r = invoke(["train", str(corpus_file), "--time", "1m", "--steps", "1"])
    assert r.exit_code == 0, r.stderr
    hidden = PRESETS[size].hidden_size
    assert f"1x{hidden} LSTM" in r.stderr and "batch 32x32" in r.stderr
    assert f"(--size auto: {size}: medium would train" in r.stderr
    assert f"({rate:,.0f}/s measured)" in r.stderr


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
