"""--size auto: the preset follows the budget and the corpus size; explicit options win."""

from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.presets import BIG_CORPUS, PRESETS, SHORT_BUDGET, choose


def test_auto_picks_small_for_short_budgets_and_medium_otherwise():
    assert choose("auto", 136.5, 1_115_394) == ("small", PRESETS["small"])
    assert choose("auto", SHORT_BUDGET, 1_115_394)[0] == "small"
    assert choose("auto", 600.0, 1_115_394) == ("medium", PRESETS["medium"])
    assert choose("auto", None, 1_115_394)[0] == "medium"  # a --steps or --epochs budget
    assert PRESETS["medium"].dropout > 0


def test_auto_drops_dropout_on_a_big_corpus_and_named_sizes_are_kept():
    name, preset = choose("auto", 600.0, BIG_CORPUS)
    assert name == "medium" and preset.dropout == 0.0
    assert preset.hidden_size == PRESETS["medium"].hidden_size
    assert choose("large", 60.0, BIG_CORPUS) == ("large", PRESETS["large"])


def test_the_cli_says_what_auto_chose_and_options_override_it(tmp_path, monkeypatch, corpus_file):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(cli, ["train", str(corpus_file), "--time", "1m", "--steps", "1"])
    assert r.exit_code == 0, r.stderr
    assert "1x512 LSTM" in r.stderr and "batch 32x32" in r.stderr
    assert "(--size auto: small)" in r.stderr
    r = runner.invoke(
        cli,
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
