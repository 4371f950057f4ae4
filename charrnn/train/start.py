"""Starting a new run on a text in memory, complete (nothing is set on its Trainer afterwards): from
a preset scaled to the cell with the options over it, or from a trained model's weights
(`init_from`: its vocabulary grown to the new text, with presets.FINE_TUNE's defaults).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from charrnn import checkpoint
from charrnn.defaults import CELL, SIZE, VAL_FRAC
from charrnn.devices import as_device, autocast_dtype
from charrnn.errors import (
    CheckpointError,
    ConfigError,
    DamagedCheckpoint,
    RunError,
    foreign_number,
)
from charrnn.model.config import DROPOUTS, parameter_count
from charrnn.model.network import CELLS, CharRNN, ModelConfig, grown_weights
from charrnn.model.presets import (
    DENSE_EVALS_FROM,
    FINE_TUNE,
    INPUT_DROPOUT_CELLS,
    MEDIUM_FROM_CHARS,
    PRESETS,
    Choice,
    Preset,
    choose,
    for_cell,
    for_passes,
    untimed,
)
from charrnn.model.trained import lead_in_for
from charrnn.runs import RunDir, check_not_replacing
from charrnn.text import data
from charrnn.text.encoded import EncodedCorpus
from charrnn.text.vocab import lookalike
from charrnn.train.config import MIN_EVALS_PER_EPOCH, TrainConfig
from charrnn.train.distributed import SINGLE, Dist
from charrnn.train.fits import refuse_too_large
from charrnn.train.speed import training_speed
from charrnn.train.state import Generators, RunState
from charrnn.train.trainer import Trainer

DEFAULT_TIME = 600.0  # seconds of training when no steps, epochs or time budget is given
BUDGETS = ("max_steps", "max_epochs", "max_time")
# What a resumed run may change: its budget, how often it evaluates and keeps a checkpoint, and the
# step's arithmetic. The rest shapes the model or the data, fixed for the life of a run.
RESUMABLE = (*BUDGETS, "eval_every", "keep_every", "patience", "precision")


@dataclass
class Opened:
    """A run ready to train, and what opening it chose, for the caller to tell."""

    trainer: Trainer
    choice: Choice | None = None  # the preset: what `size` stood for, and why (a new run's)
    notes: list[str] = field(default_factory=list)  # what was chosen for this text, and why
    resumed_from: Path | None = None  # the file a resume continues from, where not last.pt
    chars: int = 0  # characters of the text
    warnings: list[str] = field(default_factory=list)  # what the caller should warn of


def start(
    corpus: EncodedCorpus,
    run: RunDir | str | os.PathLike,
    *,
    replace: bool = False,
    size: str = SIZE,
    cell: str | None = None,
    model: dict | None = None,
    train: dict | None = None,
    init_from: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    dist: Dist = SINGLE,
    started: float | None = None,
) -> Opened:
    """A new run of `cell` ("lstm", "gru", "rnn") on `corpus`, writing into the folder `run` (one
    that holds a run already is refused unless `replace`). `size` names a preset ("auto": by the
    time budget and the corpus size); `model` and `train` are ModelConfig and TrainConfig fields
    over it (e.g. {"hidden_size": 256}, {"max_steps": 500}); without a budget, DEFAULT_TIME; a
    text too short for the preset's streams gets as many as fit, unless a batch size is given.
    `init_from`, a checkpoint file, starts from its model instead (see _start_from). `started`:
    when the caller began, by time.perf_counter: a time budget counts from there (Trainer)."""
    model, train = dict(model or {}), dict(train or {})
    device = as_device(device)
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    if cell is not None and cell not in CELLS:
        raise ConfigError(f"unknown cell {cell!r}: one of {', '.join(CELLS)}")
    if size != "auto" and size not in PRESETS:
        raise ConfigError(f"unknown size {size!r}: auto or one of {', '.join(PRESETS)}")
    check_fields(model, ModelConfig, "model", exclude=("vocab_size", "cell", "lead_in"))
    check_fields(train, TrainConfig, "train")
    check_not_replacing(None if init_from is None else Path(init_from), run)
    if run.has_checkpoint() and not replace:
        raise RunError(f"{run.path} holds a run already; resume it (resume), or pass replace=True")
    if init_from is not None:
        base = Path(init_from)
        opened = _start_from(corpus, run, base, size, cell, model, train, device, dist, started)
    else:
        opened = _start_new(corpus, run, size, cell, model, train, device, dist, started)
    opened.trainer.replaces_run = replace  # removed as it begins to write, not before
    return opened


def _start_new(corpus, run, size, cell, model, train, device, dist, started) -> Opened:
    """A new run on `corpus` from untrained weights, of the preset `size` names (auto: chosen)."""
    cell = cell or CELL
    if all(train.get(k) is None for k in BUDGETS):
        train["max_time"] = DEFAULT_TIME
    choice = _choose(size, cell, model, train, corpus, device, dist, started)
    if choice.patience is not None:
        train["patience"] = choice.patience
    if choice.max_epochs is not None:
        train["max_epochs"] = choice.max_epochs
    preset = _with_options(choice.preset, cell, len(corpus.vocab), model)
    config, notes = _fitted(_train_config(preset, train), train, len(corpus), dist)
    # A run `auto` stops early evaluates every other pass before DENSE_EVALS_FROM (presets.py).
    sparse = DENSE_EVALS_FROM if choice.patience is not None else None
    config = _evaluating(config, train, len(corpus), MIN_EVALS_PER_EPOCH, dist, sparse)
    model_config = _shape(preset, cell, len(corpus.vocab), model)
    model_config.lead_in = lead_in_for(corpus.ids, corpus.vocab)
    ids, vocab = corpus.ids, corpus.vocab
    told = {"started": started, "choice": choice, "notes": notes}
    return _opened(corpus, ids, vocab, model_config, config, run, device, dist, **told)


def _opened(
    corpus, ids, vocab, model_config, config, run, device, dist, weights=None, origin=None, **told
) -> Opened:
    """The run's Trainer on `ids` (the text of `corpus` in the model's `vocab`), its network
    seeded (`weights`, if given, over the initial ones) alike on every rank, each rank's
    generator then seeded apart so that its dropout masks differ; and what the checkpoint records
    of the text."""
    refuse_too_large(model_config, device, config.batch_size, config.seq_len)
    n_train = data.train_length(len(ids), config.val_frac)
    counts = data.char_counts(ids[:n_train], len(vocab))  # (V,) of the part trained on
    val_counts = data.char_counts(ids[n_train:], len(vocab))
    # seeded in a fork of torch's generator: the run's own from here, the caller's as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = CharRNN(model_config)
        if weights is not None:
            net.load_state_dict(weights)
        else:
            net.start_from_frequencies(counts)
        net.to(device)
        if dist.rank:
            torch.manual_seed(config.seed + dist.rank)
        drawn = Generators(cpu=torch.get_rng_state())  # this rank's, for its dropout
    provenance = {
        "name": corpus.name,
        "sources": corpus.sources,
        "chars": len(corpus),
        "sha256": corpus.sha256,
        "encoding": corpus.encoding,
        # the whole text's: sample checks by it
        "char_counts": [a + b for a, b in zip(counts, val_counts, strict=True)],
    }
    state = RunState(net, vocab, config, provenance, origin=origin, generators=drawn)
    started = told.pop("started", None)
    trainer = Trainer(
        state, ids, run, dist, started=started, files=corpus.files, train_counts=counts
    )
    return Opened(trainer, chars=len(corpus), **told)


def _start_from(corpus, run, base, size, cell, model, train, device, dist, started) -> Opened:
    """A new run on `corpus` from the weights of the checkpoint `base`: step 0, a fresh optimizer
    and schedule, the defaults of presets.FINE_TUNE under the options given. Characters of the
    text that the model never saw are appended to its vocabulary (model.grown_weights): the ones
    it knows keep their ids, and its predictions over them start as they were."""
    payload, base_model, base_shape = _load_base(base)
    c, base_vocab = base_model.config, base_model.vocab
    shape = {k: getattr(c, k) for k in _fields(ModelConfig) - {*DROPOUTS, "lead_in"}}
    asked = {**model, **({"cell": cell} if cell is not None else {})}
    if clash := {k: v for k, v in asked.items() if k in shape and v != shape[k]}:
        given = ", ".join(f"{k} {v}" for k, v in clash.items())
        raise ConfigError(
            f"{given} contradicts the model to start from ({base}: {c.num_layers}x"
            f"{c.hidden_size} {c.cell.upper()}, embedding {c.embedding_dim}): its shape and cell "
            "are kept; leave them out"
        )
    if size != "auto":
        raise ConfigError(f"a size cannot be given with a model to start from ({base}): its own")
    vocab = base_vocab.grown(corpus.vocab.chars)
    new = vocab.chars[len(base_vocab) :]
    like = [base_vocab.index[t[0]] if (t := lookalike(ch, base_vocab)) else None for ch in new]
    ids = data.reindex(corpus.ids, corpus.vocab, vocab)
    config, notes = _fine_tune_config(base_shape, train, len(ids), dist)
    dropouts = {k: model.get(k, getattr(c, k)) for k in DROPOUTS}  # the base's unless given
    lead = lead_in_for(ids, vocab)  # the new text's, not the base's
    tuned = dataclasses.replace(c, vocab_size=len(vocab), lead_in=lead, **dropouts)
    base_run = payload.get("corpus", {})
    origin = {
        "checkpoint": str(base.resolve()),
        "run": base.parent.name if _a_runs_own(base) else base.stem,
        "step": _base_step(payload),
        "corpus": base_run.get("name") if isinstance(base_run, dict) else None,
        "vocab_size": len(base_vocab),
        "new_chars": "".join(new),
    }
    weights = grown_weights(base_model.net, like)
    counts = data.char_counts(corpus.ids, len(corpus.vocab))  # by the text's own ids
    unknown = sum(n for ch, n in zip(corpus.vocab.chars, counts, strict=True) if ch in new)
    if (unknown := unknown / len(ids)) > MOSTLY_NEW:
        notes.append(
            f"{unknown:.0%} of the text is characters new to the model started from: little "
            "of what it learned applies, and a new run, without --init-from, may learn it better"
        )
    told = {"notes": notes, "started": started}
    return _opened(corpus, ids, vocab, tuned, config, run, device, dist, weights, origin, **told)


# A fine-tune's text mostly made of characters the base never saw (another script) is said to be
# so: a German base fine-tuned on 2 KB of Russian (53 of its 59 characters new) ended at 5.73
# bits a character where a new run of the same 30 s read 4.44.
MOSTLY_NEW = 0.5


def _a_runs_own(path: Path) -> bool:
    """Whether a checkpoint is one a run writes in its folder (best.pt, last.pt, --keep-every's
    step-N.pt), in a run's folder (with its metrics.jsonl), whose run is the folder's."""
    named = path.name in ("best.pt", "last.pt") or re.fullmatch(r"step-\d+\.pt", path.name)
    return bool(named) and (path.parent / "metrics.jsonl").is_file()


def _load_base(path: Path):
    """The payload and model of the checkpoint to start from, and the batch shape and peak rate it
    was trained with."""
    try:
        # the model's parts checked, as sample's: a fine-tune reads no optimizer or trainer state
        payload = checkpoint.load(path, verify=checkpoint.MODEL_PARTS)
        model = checkpoint.restore(payload, path)
        train = payload["train_config"]
        if not isinstance(train, dict):
            raise CheckpointError(f"{path} is inconsistent: its training config is broken")
        shape = {k: train.get(k) for k in ("batch_size", "seq_len", "lr")}
        shape["fine_tuned"] = isinstance(payload.get("origin"), dict)  # itself a fine-tune
        numbers = [shape[k] for k in ("batch_size", "seq_len", "lr")]
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in numbers
        ):
            raise CheckpointError(f"its training config is broken ({shape})")
    except DamagedCheckpoint as e:
        instead = checkpoint.instead_of_damaged(path, "--init-from")
        raise CheckpointError(f"{e.what}; cannot start a run from it: {instead}") from None
    except CheckpointError as e:
        raise CheckpointError(f"{e}; cannot start a run from it") from None
    return payload, model, shape


def _base_step(payload: dict) -> int:
    """The step the model started from was trained to, for the record (0 where its trainer's
    state, which a fine-tune does not read, is not what it should be)."""
    trainer = payload.get("trainer")
    step = trainer.get("step") if isinstance(trainer, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else 0


def _fine_tune_config(base: dict, train: dict, n_chars: int, dist: Dist):
    """TrainConfig for fine-tuning: the base run's batch shape (`base`, from _load_base) at
    FINE_TUNE.lr_scale of its rate (a base itself a fine-tune: its own rate, already scaled, not
    a fifth of a fifth), FINE_TUNE's budget, patience and evaluations, under the options given; a
    batch size that fits a text too small for the base run's (unless given), with the note
    saying so (_fitted)."""
    scale = 1.0 if base.get("fine_tuned") else FINE_TUNE.lr_scale
    defaults = {
        "batch_size": int(base["batch_size"]),
        "seq_len": int(base["seq_len"]),
        "lr": base["lr"] * scale,
        "weight_decay": FINE_TUNE.weight_decay,
        "patience": FINE_TUNE.patience,
        "eval_at_start": True,
    }
    if all(train.get(k) is None for k in BUDGETS):
        defaults["max_time"] = FINE_TUNE.max_time
    config, notes = _fitted(
        TrainConfig(**{**defaults, **train}), train, n_chars, dist, "the base's "
    )
    return _evaluating(config, train, n_chars, FINE_TUNE.evals_per_epoch, dist), notes


def _fitted(config: TrainConfig, train: dict, n_chars: int, dist: Dist, whose: str = ""):
    """`config` with as many streams as a text of `n_chars` fits where that is fewer than its
    own (`whose`: the preset's or the base run's) and the batch size was not given, and the note
    saying so for the first line."""
    if "batch_size" in train:
        return config, []
    b = config.batch_size
    fits = _fitting_batch(n_chars, config.val_frac, config.seq_len, dist.world)
    if fits >= b:
        return config, []
    what = f"{n_chars:,} characters"
    if config.val_frac != VAL_FRAC:  # a split of the user's: say which part is too short
        n_train = data.train_length(n_chars, config.val_frac)
        part, n = min(("training", n_train), ("validation", n_chars - n_train), key=lambda p: p[1])
        what = f"the {part} split's {n:,} characters (--val-frac {config.val_frac:g})"
    note = f"{fits} stream{'s' * (fits != 1)}, not {whose}{b}, to fit {what}"
    return dataclasses.replace(config, batch_size=fits), [note]


def _evaluating(
    config: TrainConfig,
    train: dict,
    n_chars: int,
    per_epoch: int,
    dist: Dist,
    sparse_passes: float | None = None,
) -> TrainConfig:
    """`config` evaluating every EVAL_CHARS characters trained, but at least `per_epoch` times an
    epoch of a text of `n_chars`: a small text is learned by heart within a few epochs, and
    best.pt can only keep the best model if an evaluation sees it. With `sparse_passes` (early
    stopping's), `per_epoch` times an epoch whatever the text's length, every other pass before
    that many. An eval_every given wins."""
    if train.get("eval_every") is not None:
        return dataclasses.replace(config, eval_every_given=True)
    n_train = data.train_length(n_chars, config.val_frac)
    steps_per_epoch = n_train // (config.batch_size * dist.world) // config.seq_len
    every = max(1, steps_per_epoch // per_epoch)
    if sparse_passes is None:
        return dataclasses.replace(config, eval_every=min(every, config.steps_per_eval))
    until = round(sparse_passes * steps_per_epoch)
    return dataclasses.replace(config, eval_every=every, sparse_evals_until=until)


def _fitting_batch(n_chars: int, val_frac: float, seq_len: int, world: int) -> int:
    """The most streams per process that both splits of `n_chars` characters can fill with one
    window of `seq_len` (and the target after it); a ConfigError saying how long the text must
    be if not even one fits."""

    def streams(n: int) -> int:
        n_train = data.train_length(n, val_frac)
        return min(n_train - 1, n - n_train - 1) // (seq_len * world)

    if (fits := streams(n_chars)) >= 1:
        return fits
    advice = data.fit_advice(n_chars, 1, seq_len, val_frac, world, batch_given=False)
    raise ConfigError(
        f"the text has {n_chars:,} characters, too few for windows of {seq_len}: its last "
        f"{val_frac * 100:.10g}% validates, and each split needs {seq_len * world + 1} characters; "
        f"{advice}"
    )


SHAPING = ("hidden_size", "num_layers", "embedding_dim")  # options that shape auto's model


def _choose(size, cell, model, train, corpus, device, dist: Dist, started=None) -> Choice:
    """The preset (for `auto` with a time budget, by _by_speed), and unless the options give
    them, the dropout and early stopping for the passes over the text that the budget allows the
    model chosen (presets.for_passes)."""
    max_time = train.get("max_time")
    if size != "auto":
        return choose(size, max_time)
    vocab = len(corpus.vocab)
    medium = _with_options(PRESETS["medium"], cell, vocab, model)
    if max_time is None:
        choice, rate = choose(size, None), None
        if any(k in model for k in SHAPING):  # medium's settings, around the user's shape
            shape = _shape(medium, cell, vocab, model)
            given = []
            if "hidden_size" in model or "num_layers" in model:
                given.append(f"{shape.num_layers}x{shape.hidden_size} shape")
            if "embedding_dim" in model:
                given.append(f"embedding of {shape.embedding_dim}")
            around = f"medium's other settings around the {' and '.join(given)} given"
            choice = dataclasses.replace(choice, reason=f"{choice.reason}; {around}")
    else:
        choice, rate = _by_speed(medium, cell, model, train, vocab, device, dist, started)
    chosen = _with_options(choice.preset, cell, vocab, model)
    # the streams the run will train with: a short text fits fewer than the preset's, and reads
    # fewer characters a step
    config, _ = _fitted(_train_config(chosen, train), train, len(corpus), dist)
    shape = _shape(chosen, cell, vocab, model)
    if rate is not None and choice.name == "tiny":  # timed itself: steps cost beyond arithmetic
        within = PROBE_SHARE * config.max_time
        rate = dist.all_sum([training_speed(shape, config, device, within)])[0]
    elif rate:  # the chosen model's speed, from medium's by their arithmetic a character
        rate *= parameter_count(_shape(medium, cell, vocab, model)) / parameter_count(shape)
    if rate:
        _refuse_a_step_too_long(shape, config, rate / dist.world, started)
    spent = 0.0 if started is None else time.perf_counter() - started  # reading, timing medium
    read = passes(config, len(corpus), rate, dist.world, spent)
    if read is None:
        return choice
    # Early stopping only where the time budget is what ends the run: steps or epochs given are
    # the user's measure of it, and a patience given is the user's own.
    early_stop = all(train.get(k) is None for k in ("max_steps", "max_epochs", "patience"))
    schedule = train.get("eval_every") is None  # an --eval-every given is the user's schedule
    mine = {
        "dropout": "dropout" not in model,
        "input_dropout": "input_dropout" not in model and cell in INPUT_DROPOUT_CELLS,
    }
    return for_passes(choice, read, early_stop=early_stop, schedule=schedule, **mine)


# How far one step may take a run past its --time before the model is refused: the budget's
# allowance (its whole command within T + 5%). A start-up that took the budget trains a step still.
STEP_OVERRUN = 0.05


def _refuse_a_step_too_long(shape: ModelConfig, config: TrainConfig, rate: float, started):
    """A ConfigError where one training step (`config`'s batch at `rate` characters a second)
    takes the run more than STEP_OVERRUN of the budget past what the budget leaves after start-up
    (which began at `started`, by time.perf_counter): said now, not after a budget overrun several
    times over."""
    step_s = config.batch_size * config.seq_len / rate
    spent = 0.0 if started is None else time.perf_counter() - started  # this included
    left = config.max_time - spent
    if step_s - max(left, 0.0) > STEP_OVERRUN * config.max_time:
        raise ConfigError(
            f"one training step of a {shape.num_layers}x{shape.hidden_size} model takes about "
            f"{_seconds(step_s)} here, more than the time budget ({config.max_time:g}s) has left "
            f"after {_seconds(spent)} of start-up ({_seconds(left) if left > 0 else 'none'}); "
            f"give a --time of {math.ceil(spent + 10 * step_s)}s or more, or a smaller model "
            "(--hidden, --layers) or batch (--batch-size, --seq-len)"
        )


def _seconds(s: float) -> str:
    """Seconds said so that two of them compare as they are: 0.04s, 0.4s, 12s (never "0s")."""
    return f"{s:.0f}s" if s >= 10 else f"{max(s, 0.0):.{1 if s >= 0.1 else 2}f}s"


# The share of a time budget that measuring the speed may take (after one step, and a timed one):
# about a dozen steps of medium are half a second, but a model of a few thousand units can take a
# second a step, and `--time` is what the user waits, start-up included.
PROBE_SHARE = 0.03
# The most characters a second medium is taken to train on a CPU: twice the fastest measured
# (22,000, the Intel machine with AMX). A --time too short for small even at this speed picks tiny
# without timing medium, whose first steps took 3 s of a 10 s budget on a busy machine.
FASTEST_CPU_MEDIUM = 40_000.0
# Where the first reading of medium's speed puts the budget at this share of MEDIUM_FROM_CHARS or
# more, but under it, `auto` reads the speed again (a second or so more of start-up).
NEAR_THE_LINE = 0.6


def _by_speed(
    medium, cell, model, train, vocab, device, dist: Dist, started: float | None = None
) -> tuple[Choice, float]:
    """`auto`'s preset by the `medium` model's speed measured here (characters a second), shaped
    as this run would shape it (cell, options given), summed over the ranks so that every rank
    makes the same choice; and whether this run's LSTM would train in float32 on a CPU, where
    small is SMALL_FLOAT32 (unless the options give its width, depth or streams)."""
    shape = _shape(medium, cell, vocab, model)
    config = _train_config(medium, train)
    within = PROBE_SHARE * config.max_time
    on = torch.device(device)
    float32 = on.type == "cpu" and autocast_dtype(config.precision, on) is None
    # A user who gives the width, the depth or the streams shapes the model: small stays small.
    shaped = any(k in model for k in ("hidden_size", "num_layers")) or "batch_size" in train
    float32_ranks = dist.all_sum([float(float32)])[0]  # every rank takes part, whatever it has
    float32_lstm = cell == "lstm" and not shaped and float32_ranks == dist.world
    ceiling = FASTEST_CPU_MEDIUM * dist.world
    if (
        on.type == "cpu"
        and not shaped
        and (seconds := untimed(config.max_time, float32_lstm, ceiling))
    ):
        return seconds, 0.0  # no rate measured: the model chosen is timed itself
    rate = dist.all_sum([training_speed(shape, config, device, within)])[0]
    if NEAR_THE_LINE * MEDIUM_FROM_CHARS <= rate * config.max_time < MEDIUM_FROM_CHARS:
        # Small by a reading that a moment's slowness could make: read again, keep the faster.
        # (Seen: one reading of eight a third below the rest, which put a run on small where
        # medium, at the line, did 0.036 better: docs/performance.md, "medium or small".)
        again = dist.all_sum([training_speed(shape, config, device, within)])[0]
        rate = max(rate, again)
    timed = "medium"
    if any(k in model for k in SHAPING):
        timed = f"the {shape.num_layers}x{shape.hidden_size} model the options shape"
    choice = choose(
        "auto", config.max_time, rate, float32_lstm=float32_lstm, timed=timed, shaped=shaped
    )
    return choice, rate


def _shape(preset: Preset, cell: str, vocab: int, model: dict) -> ModelConfig:
    return dataclasses.replace(preset.model_config(vocab, cell), **model)


def passes(
    config: TrainConfig,
    n_chars: int,
    chars_per_s: float | None,
    world: int = 1,
    spent: float = 0.0,
) -> float | None:
    """About how many times a run of `config` reads the training split of a text of `n_chars`
    characters: the least its budgets allow, a time budget at `chars_per_s` (all `world` ranks
    together) less the `spent` seconds of its start-up; None where no budget says."""
    n_train = max(1, data.train_length(n_chars, config.val_frac))
    read = []
    if config.max_epochs is not None:
        read.append(config.max_epochs)
    if config.max_steps is not None:
        read.append(config.max_steps * config.batch_size * config.seq_len * world / n_train)
    if config.max_time is not None and chars_per_s:
        read.append(max(0.0, config.max_time - spent) * chars_per_s / n_train)
    return min(read, default=None)


def _train_config(preset: Preset, train: dict) -> TrainConfig:
    """TrainConfig from the preset's batch shape, rate and weight decay, with the options given
    over them."""
    shape = {"batch_size": preset.batch_size, "seq_len": preset.seq_len, "lr": preset.lr}
    return TrainConfig(**{**shape, "weight_decay": preset.weight_decay, **train})


def _with_options(preset: Preset, cell: str, vocab_size: int, model: dict) -> Preset:
    """The preset sized for `cell`, counting the layers and embedding given (an option given for
    anything else overrides the preset where the configs are built)."""
    shape = {k: model[k] for k in ("num_layers", "embedding_dim") if k in model}
    return for_cell(dataclasses.replace(preset, **shape), cell, vocab_size)


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def check_fields(options: dict, cls, what: str, exclude: Sequence[str] = ()) -> None:
    """Every option must be a field of `cls`, and a number where the field is one."""
    unknown = set(options) - (_fields(cls) - set(exclude))
    if unknown:
        raise ConfigError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for name, value in options.items():
        numeric = any(t in types[name] for t in ("int", "float"))
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and not is_number and not (value is None and "None" in types[name]):
            kind = "int" if "int" in types[name] and "float" not in types[name] else "float"
            raise ConfigError(
                f"{what} option {name} must be a number, not {value!r}{foreign_number(value, kind)}"
            )
        if types[name] == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{what} option {name} must be True or False, not {value!r}")
        if types[name] == "str" and not isinstance(value, str):
            raise ConfigError(f"{what} option {name} must be a str, not {value!r}")
