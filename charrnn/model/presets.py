"""Model and optimisation presets, and `auto`: the preset that learns most in the time given.

The sizes are the LSTM's; a GRU or an RNN gets a wider layer of about the same parameter count
(`for_cell`). Why these sizes and when `auto` picks which: docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from charrnn.defaults import CELL
from charrnn.model.config import ModelConfig, parameter_count


@dataclass(frozen=True)
class Preset:
    """The defaults a --size stands for; any option given on the command line overrides one."""

    num_layers: int
    hidden_size: int
    embedding_dim: int
    dropout: float
    batch_size: int
    seq_len: int
    lr: float  # the LSTM's peak learning rate
    weight_decay: float  # AdamW's, of the weight matrices (not the biases)
    # The GRU's peak rate where it learns best at another than the LSTM's (None: the LSTM's); the
    # RNN's is RNN_LR_SCALE of it (for_cell).
    gru_lr: float | None = None
    input_dropout: float = 0.0  # of the embedded characters (for_passes sets it for `auto`)

    def describe(self) -> str:
        return f"{self.num_layers}x{self.hidden_size}"

    def model_config(self, vocab_size: int, cell: str = CELL) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
            input_dropout=self.input_dropout,
            cell=cell,
        )


PRESETS = {
    "tiny": Preset(1, 128, 32, 0.0, 32, 32, 1e-2, 0.01),
    "small": Preset(1, 512, 64, 0.0, 32, 32, 5e-3, 0.01),  # one wide layer: fastest to learn
    # Weight decay 0.1: ahead at every evaluation over 10 minutes on tinyshakespeare, where 0.01
    # elsewhere: not measured to help small or tiny (docs/performance-history.md). A peak rate of
    # 0.012: 0.02-0.05 nats below 0.005 at 136.5 s and 10 minutes, in float32 and bfloat16, on short
    # texts under early stopping and on Python's standard library; the GRU of the same size was 0.05
    # worse at 0.012 than at its 0.005 (docs/performance-history.md, "a higher learning rate").
    "medium": Preset(1, 768, 64, 0.1, 32, 32, 1.2e-2, 0.1, gru_lr=5e-3),
    "large": Preset(3, 512, 128, 0.25, 32, 64, 3e-3, 0.01),
}
# Characters the medium model must be able to train in the budget (as its start-up probe measures
# them) for `auto` to pick it over small. With the output layer started at the text's character
# frequencies, on tinyshakespeare (the AMD machine, by time): small 0.020 nats ahead at 1.2M,
# medium 0.018-0.024 ahead at 1.6M, in bfloat16 and in float32 (docs/performance.md, "auto's lines
# measured again"); the line sits between the two.
MEDIUM_FROM_CHARS = 1_500_000
# ... and for it to pick small over tiny: below this many (medium's) characters small makes too
# few steps to learn much, and writes runaways from a cold start; tiny makes 5-7 times its steps.
# Tinyshakespeare, the AMD machine, bfloat16 (medium 10,000-12,000/s): tiny ahead by 0.066 nats
# at 20 s (0.23M), behind by 0.034 at 40 s (0.46M) (docs/performance.md).
SMALL_FROM_CHARS = 400_000
# ... where small is SMALL_FLOAT32, which learns more in a short time (in float32, medium 8,700/s:
# tiny ahead of it by 0.12 at 10 s and 0.05 at 20 s (0.17M), behind by 0.05 at 40 s (0.35M)).
SMALL_FLOAT32_FROM_CHARS = 250_000
# What `auto` picks in small's place where a CPU trains in float32 (no native bfloat16: an AVX2
# machine, or --precision float32): there small's step costs about 1.4x more, and a narrower
# model over half the streams makes 2.1-2.6x the steps: 0.014-0.022 nats better in 136.5-180 s,
# level by 240 s (docs/performance-history.md). Measured for the LSTM; a GRU or an RNN keeps small.
SMALL_FLOAT32 = replace(PRESETS["small"], hidden_size=384, batch_size=16)
# Dropout by how many times the run will read its training text (`auto` only): text read a few times
# needs none (dropout slows learning, and pays only where text repeats often); text read many times
# is memorised without more (docs/performance-history.md, "dropout by the passes over the text"). It
# rises in lines, from none at NO_DROPOUT_PASSES to the preset's at FEW_PASSES, to
# MANY_PASSES_DROPOUT at MANY_PASSES and on to MOST_PASSES_DROPOUT at MOST_PASSES, so that a little
# more budget never flips it: medium on tinyshakespeare at 1.9 and 3 passes was 0.004-0.010 better
# without dropout than with its 0.1 (same steps, three seeds and one; the GRU of medium's size
# level, 0.003 better without in the mean of two seeds); at 136.5 s on texts of 0.6M, 0.3M and 0.1M
# characters (5, 10 and 29 passes) best at 0.1-0.3, 0.5 and 0.5 of 0.1, 0.3 and 0.5; by steps, 0.7
# beat 0.5 on texts read 22 and 43 times by 0.03.
NO_DROPOUT_PASSES = 3.0  # passes: up to here, no dropout
FEW_PASSES = 4.0  # passes: here, the preset's
MANY_PASSES = 10.0  # passes: here, MANY_PASSES_DROPOUT
MANY_PASSES_DROPOUT = 0.5
MOST_PASSES = 20.0  # passes: from here, MOST_PASSES_DROPOUT
MOST_PASSES_DROPOUT = 0.7
# ... but not for tiny, too small to learn a text by heart in the passes `auto` allows: 25 passes
# over the first 10 K, 50 K and 200 K characters of tinyshakespeare (input dropout 0.1) read
# 2.2107, 1.6744 and 1.6364 nats without dropout, 2.2550, 1.8711 and 1.7562 at 0.7, what the
# ramp gives there (0.3: 2.1959, 1.7066, 1.6551). It keeps the preset's (none).
UNDROPPED = ("tiny",)
# `auto` also drops this much of the characters' embeddings from INPUT_DROPOUT_PASSES, rising to
# it from none at NO_DROPOUT_PASSES (docs/performance.md, "input dropout"): medium on
# tinyshakespeare read 0.007 nats worse with 0.1 than without at 2 passes, 0.006 better at 5 and
# 0.012 better at 10 (with 0.5 after the layer, against 0.55 alone); on 100 K characters read 25
# times, 0.014 better. It costs no speed.
INPUT_DROPOUT = 0.1
INPUT_DROPOUT_PASSES = 5.0
# ... for the LSTM only: by steps at 5 passes (dropout 0.15), the GRU (1x888) read 1.4339 with 0.1
# against 1.4334 without, and the RNN (1x1552) 1.5637 against 1.5489.
INPUT_DROPOUT_CELLS = ("lstm",)
# From here (passes of a time budget) `auto` also stops a run early, after PATIENCE evaluations
# in a row (one a pass: DENSE_EVALS_FROM) without a better validation loss: medium on texts of
# 14 K to 300 K characters reached its best validation loss at 11-18 passes, whether the run was
# to read the text 15, 25, 40, 60 or 310 times, and only worsened after it; a 10-minute budget
# that reads a 50 K text 310 times ran nine minutes for nothing (docs/performance-history.md,
# "a short text read 25 times at most").
EARLY_STOP_PASSES = 20.0
PATIENCE = 4
# Such a run evaluates every other pass before this one (the second and the fourth), and every
# pass from it: each evaluation reads the whole validation split, a tenth of the text, so that
# one every pass cost 3.1-3.3% of a 2-minute budget, more than evaluations may spend; and the best
# came at pass 9 or later in every run measured, the loss still falling fast at pass 5
# (docs/evaluation-cost.md, "under early stopping").
DENSE_EVALS_FROM = 6.0
# A time budget that would read the text more often reads it MAX_PASSES times (`auto`): the
# learning rate's decay then comes around the best validation loss, not long after it. Medium at
# dropout 0.7 on 50 K characters, best within runs of 15, 20, 25 passes 1.6343, 1.6320, 1.6337,
# of 40 and 60 1.6466 and 1.6459; on 100 K, of 20 (and 22) 1.4808 (1.4776), of 40 1.4904.
MAX_PASSES = 25.0


@dataclass(frozen=True)
class FineTune:
    """The defaults of a run started from a trained model on a small text (--init-from); any
    option given overrides one. Why each (docs/fine-tuning.md):"""

    # Of the base run's peak rate: the weights are good already; the full rate on a few
    # kilobytes would overwrite in a few hundred steps what the base learned from megabytes.
    # (From a medium base trained at 0.012, 0.0015 read 0.012 nats better than this 0.0024, but
    # a fixed cap lost as much from a tiny base, which does best at 0.2 of its 0.01:
    # docs/performance-history.md, "a fine-tune from a base trained at 0.012".)
    lr_scale: float = 0.2
    # Seconds, without another budget: a small text is seen dozens of times in two minutes,
    # and early stopping ends the run sooner once more passes only memorise it.
    max_time: float = 120.0
    # Evaluations in a row without a new best validation loss before stopping (best.pt keeps
    # the best): a small text is learned by heart quickly, and then validation only worsens.
    patience: int = 4
    evals_per_epoch: int = 2  # a small text's epoch is a few seconds: evaluate at each half
    # Whatever the base's: the rate and budget above were measured with it (docs/fine-tuning.md).
    weight_decay: float = 0.01


FINE_TUNE = FineTune()


@dataclass(frozen=True)
class Choice:
    """The preset a --size stands for, and for `auto` why (for the first line of a run)."""

    name: str
    preset: Preset
    reason: str = ""
    patience: int | None = None  # evaluations without a better loss before stopping (early stop)
    max_epochs: float | None = None  # passes over the text at most, where the budget allows more


def choose(
    size: str,
    max_time: float | None,
    medium_chars_per_s: float | None = None,
    float32_lstm: bool = False,
    timed: str = "medium",
    shaped: bool = False,
) -> Choice:
    """The preset for --size `size`. For "auto": small when the medium model could train fewer
    than MEDIUM_FROM_CHARS characters in `max_time` seconds at `medium_chars_per_s` (this
    machine's rate, measured: speed.training_speed), tiny when fewer than SMALL_FROM_CHARS
    (SMALL_FLOAT32_FROM_CHARS for `float32_lstm`; unless the options shape the model: `shaped`),
    else medium; medium without a time budget
    or a measured rate (`timed` names the model measured, for the reason). Small is
    SMALL_FLOAT32 for an LSTM trained in float32 on a CPU (`float32_lstm`). Its dropout is the
    preset's: for_passes sets it by the passes over the text."""
    if size != "auto":
        return Choice(size, PRESETS[size])
    if max_time is None or not medium_chars_per_s:
        name, reason = "medium", "no time budget" if max_time is None else "speed not measured"
    else:
        budget = max_time * medium_chars_per_s
        least = _small_from(float32_lstm)
        needs = "it needs" if timed == "medium" else "that medium's settings need"
        if budget >= MEDIUM_FROM_CHARS:
            name, line = "medium", f"over the {MEDIUM_FROM_CHARS / 1e6:g}M {needs}"
        elif budget >= least or shaped:
            name, line = "small", f"under the {MEDIUM_FROM_CHARS / 1e6:g}M {needs}"
            if budget < least:  # tiny would be chosen, but for the options
                line += " (not tiny: the options shape the model)"
        else:
            name, line = "tiny", f"under the {least / 1e6:g}M that small needs"
        reason = (
            f"{timed} would train {budget / 1e6:.2f}M characters here "
            f"({medium_chars_per_s:,.0f}/s measured), {line}"
        )
    preset = PRESETS[name]
    if name == "small" and float32_lstm:
        preset = SMALL_FLOAT32
        reason += f"; {preset.describe()} over {preset.batch_size} streams, as it trains in float32"
    return Choice(name, preset, reason)


def _small_from(float32_lstm: bool) -> int:
    """Medium's characters in the budget from which `auto` picks small over tiny."""
    return SMALL_FLOAT32_FROM_CHARS if float32_lstm else SMALL_FROM_CHARS


def untimed(max_time: float, float32_lstm: bool, ceiling: float) -> Choice | None:
    """tiny, for `auto`, where `max_time` is too short for small even were medium as fast as
    `ceiling` (characters a second): said without timing medium, whose first steps would take a
    good part of such a budget. None where it must be timed."""
    least = _small_from(float32_lstm)
    if max_time * ceiling >= least:
        return None
    return Choice(
        "tiny",
        PRESETS["tiny"],
        f"a --time of {max_time:g}s is too short for small: medium would train under the "
        f"{least / 1e6:g}M characters small needs even at {ceiling:,.0f}/s, more than any CPU "
        "measured, so it was not timed",
    )


def for_passes(
    choice: Choice,
    passes: float,
    dropout: bool = True,
    early_stop: bool = True,
    schedule: bool = True,
    input_dropout: bool = True,
) -> Choice:
    """`choice` (of `auto`) fitted to a run that reads its text about `passes` times: the dropout
    and the input dropout for them (each unless not `dropout`, `input_dropout`: the user's) and,
    for a time budget (`early_stop`), at most MAX_PASSES and from EARLY_STOP_PASSES early
    stopping, with its evaluations a pass (unless not `schedule`: the user's --eval-every); the
    reason saying what changed and why, in one clause."""
    most = MAX_PASSES if early_stop and passes > MAX_PASSES else None
    read = min(passes, most or passes)
    rate = dropout_for(read, choice.preset) if dropout and choice.name not in UNDROPPED else None
    rate_in = input_dropout_for(read) if input_dropout else None
    patience = PATIENCE if early_stop and passes >= EARLY_STOP_PASSES else None
    when = f" (one a pass, every other pass before the {DENSE_EVALS_FROM:.0f}th)"
    when = when if schedule else ""  # an --eval-every given says when
    stop = f"a stop after {PATIENCE} evaluations{when} without a better validation loss"
    changes = [
        f"dropout {rate:g}" if rate is not None and rate != choice.preset.dropout else "",
        f"input dropout {rate_in:g}" if rate_in and rate_in != choice.preset.input_dropout else "",
        f"{most:g} passes" if most else "",
        stop if patience else "",
    ]
    changes = [c for c in changes if c]
    if not changes:
        return choice
    listed = " and ".join([", ".join(changes[:-1]), changes[-1]] if changes[1:] else changes)
    reads = "would read" if most else "reads"
    why = f"{choice.reason}; {listed}, as the budget {reads} the text {_times(passes)}"
    preset = replace(choice.preset, dropout=rate) if rate is not None else choice.preset
    preset = replace(preset, input_dropout=rate_in) if rate_in is not None else preset
    return Choice(choice.name, preset, why, patience, most)


def dropout_for(passes: float, preset: Preset) -> float:
    """The dropout for `preset` in a run that reads its training text about `passes` times."""
    ramp = [
        (NO_DROPOUT_PASSES, 0.0),
        (FEW_PASSES, preset.dropout),
        (MANY_PASSES, MANY_PASSES_DROPOUT),
        (MOST_PASSES, MOST_PASSES_DROPOUT),
    ]
    dropout = _along(ramp, passes)
    if passes >= FEW_PASSES:  # from there never below the preset's own
        dropout = max(preset.dropout, dropout)
    return round(dropout * 20) / 20  # in steps of 0.05: a figure the first line can say


def input_dropout_for(passes: float) -> float:
    """The input dropout for a run that reads its training text about `passes` times."""
    ramp = [(NO_DROPOUT_PASSES, 0.0), (INPUT_DROPOUT_PASSES, INPUT_DROPOUT)]
    return round(_along(ramp, passes) * 20) / 20  # in steps of 0.05, as the dropout


def _along(points: list[tuple[float, float]], x: float) -> float:
    """The value at x of the line through `points` (by increasing x), flat beyond its ends."""
    (x0, y0), *rest = points
    if x <= x0:
        return y0
    for x1, y1 in rest:
        if x <= x1:
            return y0 + (x - x0) / (x1 - x0) * (y1 - y0)
        x0, y0 = x1, y1
    return y0


def _times(passes: float) -> str:
    if passes < 1.5:
        return "less than once" if passes < 1 else "about once"
    return f"about {passes:,.0f} times"


def for_cell(preset: Preset, cell: str, vocab_size: int) -> Preset:
    """`preset` (an LSTM's size) for `cell`: as wide as gives about the LSTM's parameter count,
    rounded to a multiple of 8 (what matrix kernels like), at the cell's peak rate: the GRU's
    (gru_lr, where the preset has one), and for the RNN a lower one."""
    if cell == "lstm":
        return replace(preset, gru_lr=None)
    target = parameter_count(preset.model_config(vocab_size))

    def miss(width: int) -> int:
        config = replace(preset, hidden_size=width).model_config(vocab_size, cell)
        return abs(parameter_count(config) - target)

    width = min(range(8, 8 * preset.hidden_size + 1, 8), key=miss)
    gru = preset.lr if preset.gru_lr is None else preset.gru_lr
    lr = gru * RNN_LR_SCALE if cell == "rnn" else gru
    return replace(preset, hidden_size=width, lr=lr, gru_lr=None)


# A vanilla RNN has no gate to damp a large step: at the GRU's peak rate its tanh units saturate
# and it stops learning (docs/commands.md, --cell).
RNN_LR_SCALE = 0.4
