"""Starting and resuming a run: the one library call for each, used by the CLI, tests and benches.

    start_run(corpus, run, size=, cell=, model=, train=)   preset (scaled to the cell), options over
                                                         it, seeding, corpus provenance -> Trainer
    start_run(corpus, run, init_from=CHECKPOINT, ...)      the same from a trained model's weights:
                                                         its vocabulary grown to the new text,
                                                         fine-tuning defaults (presets.FINE_TUNE)
    resume_run(run, read_corpus, ...)                      last.pt read, the same text found and
                                                         checked, budget extended -> Trainer

Neither prints nor reads the environment: the caller reads the corpus (with its own progress bars)
and drives the Trainer it gets.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from charrnn import checkpoint
from charrnn.errors import CheckpointError, ConfigError, CorpusError, RunError
from charrnn.model.network import CELLS, CharRNN, ModelConfig, grown_weights
from charrnn.model.presets import FINE_TUNE, PRESETS, Choice, Preset, choose, for_cell
from charrnn.model.trained import lead_in_for
from charrnn.runs import RunDir, check_not_replacing
from charrnn.text import data
from charrnn.text.encoded import EncodedCorpus
from charrnn.text.vocab import lookalike
from charrnn.train.distributed import SINGLE, Dist
from charrnn.train.speed import training_speed
from charrnn.train.trainer import MIN_EVALS_PER_EPOCH, TrainConfig, Trainer

DEFAULT_TIME = 600.0  # seconds of training when no steps, epochs or time budget is given
BUDGETS = ("max_steps", "max_epochs", "max_time")
# What a resumed run may change: its budget and how often it evaluates. The rest shapes the model
# or the data, fixed for the life of a run.
RESUMABLE = (*BUDGETS, "eval_every", "patience")

ReadCorpus = Callable[[Sequence[str], str], EncodedCorpus]  # (specs, encoding) -> corpus


def start_run(
    corpus: EncodedCorpus,
    run: RunDir | str | os.PathLike,
    *,
    replace: bool = False,
    size: str = "auto",
    cell: str | None = None,
    model: dict | None = None,
    train: dict | None = None,
    init_from: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    dist: Dist = SINGLE,
) -> Trainer:
    """A new run of `cell` on `corpus`, writing into the folder `run` (made when training starts);
    a folder that holds a run already is refused unless `replace` (its checkpoints are then
    overwritten as training goes).

    `size` names a preset ("auto": chosen from the time budget and the corpus size, see
    presets.choose); `model` and `train` are ModelConfig and TrainConfig fields that override it
    (e.g. {"hidden_size": 256}, {"max_steps": 500, "seed": 3}). Without a budget, DEFAULT_TIME.
    `cell` is "lstm" (default), "gru" or "rnn".

    `init_from`, a checkpoint file, starts from that model's weights instead (see _start_from):
    its cell and shape are kept (only dropout may change), and its vocabulary grows to the text.
    """
    model, train = dict(model or {}), dict(train or {})
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    if cell is not None and cell not in CELLS:
        raise ConfigError(f"unknown cell {cell!r}: one of {', '.join(CELLS)}")
    if size != "auto" and size not in PRESETS:
        raise ConfigError(f"unknown size {size!r}: auto or one of {', '.join(PRESETS)}")
    _check_fields(model, ModelConfig, "model", exclude=("vocab_size", "cell", "lead_in"))
    _check_fields(train, TrainConfig, "train")
    check_not_replacing(None if init_from is None else Path(init_from), run)
    if run.has_checkpoint() and not replace:
        raise RunError(
            f"{run.path} holds a run already; resume it (resume_run), or pass replace=True"
        )
    if init_from is not None:
        return _start_from(corpus, run, Path(init_from), size, cell, model, train, device, dist)
    cell = cell or "lstm"
    if all(train.get(k) is None for k in BUDGETS):
        train["max_time"] = DEFAULT_TIME
    choice = _choose(size, cell, model, train, corpus, device, dist)
    preset = _with_options(choice.preset, cell, len(corpus.vocab), model)
    config = _train_config(preset, train)
    if train.get("eval_every") is None:
        config = _evaluating(config, len(corpus), MIN_EVALS_PER_EPOCH, dist)
    model_config = dataclasses.replace(preset.model_config(len(corpus.vocab), cell), **model)
    model_config.lead_in = lead_in_for(corpus.ids, corpus.vocab)
    train_ids, val_ids = data.split(corpus.ids, config.val_frac)
    torch.manual_seed(config.seed)
    net = CharRNN(model_config).to(device)
    if dist.rank:  # same initial weights everywhere, different dropout masks on each rank
        torch.manual_seed(config.seed + dist.rank)
    provenance = _provenance(corpus, corpus.ids, len(corpus.vocab))
    trainer = Trainer(net, corpus.vocab, train_ids, val_ids, config, run, provenance, dist)
    trainer.size_choice = choice
    return trainer


def _provenance(corpus: EncodedCorpus, ids: torch.Tensor, vocab_size: int) -> dict:
    """What a checkpoint records of the text it was trained on (`ids` in the model's vocabulary)."""
    return {
        "name": corpus.name,
        "sources": corpus.sources,
        "chars": len(corpus),
        "sha256": corpus.sha256,
        "encoding": corpus.encoding,
        "char_counts": data.char_counts(ids, vocab_size),  # sample checks by it
    }


def _start_from(corpus, run, base, size, cell, model, train, device, dist: Dist) -> Trainer:
    """A new run on `corpus` from the weights of the checkpoint `base`: step 0, a fresh optimizer
    and schedule, the defaults of presets.FINE_TUNE under the options given. Characters of the
    text that the model never saw are appended to its vocabulary (model.grown_weights): the ones
    it knows keep their ids, and its predictions over them start as they were."""
    payload, base_model, base_vocab, base_shape = _load_base(base)
    c = base_model.config
    shape = {k: getattr(c, k) for k in _fields(ModelConfig) - {"dropout", "lead_in"}}
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
    config = _fine_tune_config(base_shape, train, len(ids), dist)
    train_ids, val_ids = data.split(ids, config.val_frac)
    torch.manual_seed(config.seed)
    dropout = model.get("dropout", c.dropout)
    lead = lead_in_for(ids, vocab)  # the new text's, not the base's
    net = CharRNN(dataclasses.replace(c, vocab_size=len(vocab), dropout=dropout, lead_in=lead))
    net.load_state_dict(grown_weights(base_model, like))
    net.to(device)
    if dist.rank:  # different dropout masks on each rank (the weights are the base's everywhere)
        torch.manual_seed(config.seed + dist.rank)
    provenance = _provenance(corpus, ids, len(vocab))
    trainer = Trainer(net, vocab, train_ids, val_ids, config, run, provenance, dist)
    base_run = payload.get("corpus", {})
    trainer.origin = {
        "checkpoint": str(base.resolve()),
        "run": base.parent.name if base.name in ("best.pt", "last.pt") else base.stem,
        "step": int(payload["trainer"].get("step", 0)),
        "corpus": base_run.get("name") if isinstance(base_run, dict) else None,
        "vocab_size": len(base_vocab),
        "new_chars": "".join(new),
    }
    base_b, b = base_shape["batch_size"], config.batch_size
    if "batch_size" not in train and b < base_b:
        trainer.notes.append(
            f"{b} stream{'s' * (b != 1)}, not the base's {base_b}, to fit {len(ids):,} characters"
        )
    return trainer


def _load_base(path: Path):
    """The payload, model, vocabulary and batch shape (_base_shape) of the checkpoint to start
    from."""
    try:
        payload = checkpoint.load(path)
        model, vocab = checkpoint.restore_model(payload, path)
        if not isinstance(payload["train_config"], dict) or not isinstance(
            payload["trainer"], dict
        ):
            raise CheckpointError(f"{path} is inconsistent: its training config is broken")
        shape = _base_shape(payload["train_config"])
    except CheckpointError as e:
        raise CheckpointError(f"{e}; cannot start a run from it") from None
    return payload, model, vocab, shape


def _base_shape(train_config: dict) -> dict:
    """The batch shape and peak rate a base checkpoint was trained with."""
    shape = {k: train_config.get(k) for k in ("batch_size", "seq_len", "lr")}
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in shape.values()
    ):
        raise CheckpointError(f"its training config is broken ({shape})")
    return shape


def _fine_tune_config(base: dict, train: dict, n_chars: int, dist: Dist) -> TrainConfig:
    """TrainConfig for fine-tuning: the base run's batch shape (`base`, from _base_shape) at
    FINE_TUNE.lr_scale of its rate, FINE_TUNE's budget, patience and evaluations, under the
    options given; a batch size that fits a text too small for the base run's (unless given)."""
    defaults = {
        "batch_size": int(base["batch_size"]),
        "seq_len": int(base["seq_len"]),
        "lr": base["lr"] * FINE_TUNE.lr_scale,
        "weight_decay": FINE_TUNE.weight_decay,
        "patience": FINE_TUNE.patience,
        "eval_at_start": True,
    }
    if all(train.get(k) is None for k in BUDGETS):
        defaults["max_time"] = FINE_TUNE.max_time
    config = TrainConfig(**{**defaults, **train})
    if "batch_size" not in train:
        fits = _fitting_batch(n_chars, config.val_frac, config.seq_len, dist.world)
        config = dataclasses.replace(config, batch_size=min(config.batch_size, fits))
    if train.get("eval_every") is None:
        config = _evaluating(config, n_chars, FINE_TUNE.evals_per_epoch, dist)
    return config


def _evaluating(config: TrainConfig, n_chars: int, per_epoch: int, dist: Dist) -> TrainConfig:
    """`config` evaluating every EVAL_CHARS characters trained, but at least `per_epoch` times an
    epoch of a text of `n_chars`: a small text is learned by heart within a few epochs, and
    best.pt can only keep the best model if an evaluation sees it."""
    n_train = int(n_chars * (1 - config.val_frac))
    steps_per_epoch = n_train // (config.batch_size * dist.world) // config.seq_len
    every = max(1, steps_per_epoch // per_epoch)
    return dataclasses.replace(config, eval_every=min(every, config.steps_per_eval))


def _fitting_batch(n_chars: int, val_frac: float, seq_len: int, world: int) -> int:
    """The most streams per process that both splits of `n_chars` characters can fill with one
    window of `seq_len` (and the target after it); a ConfigError saying how long the text must
    be if not even one fits."""

    def streams(n: int) -> int:
        n_train = int(n * (1.0 - val_frac))
        return min(n_train - 1, n - n_train - 1) // (seq_len * world)

    if (fits := streams(n_chars)) >= 1:
        return fits
    need = n_chars
    while streams(need) < 1:
        need += max(1, need // 64)
    raise ConfigError(
        f"the text has {n_chars:,} characters, too few for windows of {seq_len}: its last "
        f"{val_frac * 100:g}% validates, and each split needs {seq_len * world + 1} characters, so "
        f"it needs about {need:,} characters; give more text, or a shorter --seq-len or a "
        "larger --val-frac"
    )


def _choose(size, cell, model, train, corpus, device, dist: Dist) -> Choice:
    """The preset: for `auto` with a time budget, from the medium model's speed measured here,
    shaped as this run would shape it (cell, options given); summed over the ranks, so that
    every rank makes the same choice."""
    max_time = train.get("max_time")
    if size != "auto" or max_time is None:
        return choose(size, max_time, len(corpus))
    medium = _with_options(PRESETS["medium"], cell, len(corpus.vocab), model)
    shape = dataclasses.replace(medium.model_config(len(corpus.vocab), cell), **model)
    rate = training_speed(shape, _train_config(medium, train), device)
    return choose(size, max_time, len(corpus), dist.all_sum([rate])[0])


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


def _check_fields(options: dict, cls, what: str, exclude: Sequence[str] = ()) -> None:
    """Every option must be a field of `cls`, and a number where the field is one."""
    unknown = set(options) - (_fields(cls) - set(exclude))
    if unknown:
        raise ConfigError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for name, value in options.items():
        numeric = any(t in types[name] for t in ("int", "float"))
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and not is_number and not (value is None and "None" in types[name]):
            raise ConfigError(f"{what} option {name} must be a number, not {value!r}")


def resume_run(
    run: RunDir | str | os.PathLike,
    read_corpus: ReadCorpus,
    *,
    corpus_specs: Sequence[str] | None = None,
    train: dict | None = None,
    device: torch.device | str = "cpu",
    dist: Dist = SINGLE,
    checkpoint_file: str | os.PathLike | None = None,
) -> Trainer:
    """Run `run` continued exactly where last.pt stopped (best.pt where there is no last.pt, or
    `checkpoint_file`, e.g. its best.pt beside a damaged last.pt), with its own text read again
    through `read_corpus` (from `corpus_specs` if given: the text moved, or came from stdin).

    `train` may change only the budget (replacing all three limits) and eval_every. A checkpoint
    that cannot be read is an error that offers the run's other one where that one loads."""
    train = dict(train or {})
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    _check_fields(train, TrainConfig, "train")
    if fixed := set(train) - set(RESUMABLE):
        raise ConfigError(f"{', '.join(sorted(fixed))} cannot change when resuming a run")
    if checkpoint_file is not None:
        path = Path(checkpoint_file)
    else:
        path = run.last if run.last.is_file() else run.best
    # how to name this resume again, in advice: the file, if one was given
    again = shlex.quote(str(path) if checkpoint_file is not None else run.ref)
    try:
        payload = checkpoint.load(path)
        model, vocab = checkpoint.restore_model(payload, path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; {_resume_instead(run, path)}") from None
    saved = payload["corpus"]
    specs = corpus_specs or _saved_sources(saved["sources"], run, again)
    corpus = read_corpus(specs, saved.get("encoding", "utf-8"))  # as the run first read it
    # The model's vocabulary is the text's, or grown from a base model's to hold it (init_from).
    if corpus.sha256 != saved["sha256"] or not set(corpus.vocab.chars) <= set(vocab.chars):
        raise CorpusError(
            f"the corpus differs from the one run {run.name!r} was trained on "
            f"({len(corpus):,} vs {saved['chars']:,} characters, SHA-256 differs); "
            "resume with the same text, or start a new run"
        )
    config = TrainConfig.from_dict(payload["train_config"])
    if any(train.get(k) is not None for k in BUDGETS):
        config = dataclasses.replace(config, **{k: train.get(k) for k in BUDGETS})
    for key in ("eval_every", "patience"):
        if train.get(key):
            config = dataclasses.replace(config, **{key: train[key]})
    train_ids, val_ids = data.split(data.reindex(corpus.ids, corpus.vocab, vocab), config.val_frac)
    provenance = {**saved, "sources": corpus.sources}  # where it is now, if it moved
    trainer = Trainer(model.to(device), vocab, train_ids, val_ids, config, run, provenance, dist)
    trainer.load_state(payload)
    trainer.origin = payload.get("origin")
    # From another file than last.pt: last.pt (damaged, or further on) is replaced by this state
    # as training starts, so that a rollback, or a resume after a stop, goes back to it.
    trainer.save_last_first = path.absolute() != run.last.absolute()
    if trainer.budget_spent() == "patience":
        raise RunError(
            f"run {run.name!r} stopped early: no better validation loss in its last "
            f"{config.patience} evaluations; to go on, give a larger --patience"
        )
    if trainer.budget_spent():
        raise RunError(
            f"run {run.name!r} has already used its budget ({trainer.pos.step:,} steps, "
            f"{trainer.pos.elapsed:.0f}s); give a larger --steps, --epochs or --time in all"
        )
    return trainer


def _resume_instead(run: RunDir, path: Path) -> str:
    """What to do when `path`, a checkpoint of `run`, cannot be resumed from: go on from the
    run's other checkpoint where that one loads (named in the folder as the user gave it); never
    --force, which would throw that one away too."""
    others = {run.last.absolute(): run.best, run.best.absolute(): run.last}
    other = others.get(path.absolute())
    if other is not None and other.is_file():
        try:
            payload = checkpoint.load(other)
            checkpoint.restore_model(payload, other)  # as resuming from it will
        except CheckpointError:
            pass
        else:
            trainer = payload.get("trainer")
            step = trainer.get("step") if isinstance(trainer, dict) else None
            at = f" (step {step:,})" if isinstance(step, int) and not isinstance(step, bool) else ""
            return (
                f"run {run.ref!r} can go on from its {other.name}{at} instead: "
                f"charrnn train --resume {shlex.quote(run.file_ref(other.name))}"
            )
    return (
        f"run {run.ref!r} has no other checkpoint that loads, so it cannot be resumed; "
        "train a new run under another --name"
    )


def _saved_sources(sources: list[str], run: RunDir, again: str) -> list[str]:
    """The corpus a run was trained on, to read again; an error saying how to pass it where it
    cannot be read again (standard input, or files that moved). `again`: how the user named the
    run (or the file it resumes from), for the advice."""
    if "-" in sources or not sources:
        raise CorpusError(
            f"run {run.name!r} was trained on standard input or a text in memory; pipe the same "
            f"text again: ... | charrnn train - --resume {again}"
        )
    gone = [s for s in sources if os.path.isabs(s) and not os.path.exists(s)]
    if gone:
        raise CorpusError(
            f"run {run.name!r} was trained on {', '.join(gone)}, which is not there any more; "
            f"if it moved, give its new place: charrnn train NEWPATH --resume {again}"
        )
    return sources
