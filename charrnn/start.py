"""Starting and resuming a run: the one library call for each, used by the CLI, tests and benches.

    start_run(corpus, run, size=, cell=, model=, train=)   preset (scaled to the cell), options over
                                                         it, seeding, corpus provenance -> Trainer
    resume_run(run, read_corpus, ...)                      last.pt read, the same text found and
                                                         checked, budget extended -> Trainer

Neither prints nor reads the environment: the caller reads the corpus (with its own progress bars)
and drives the Trainer it gets.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from charrnn import checkpoint, data
from charrnn.distributed import SINGLE, Dist
from charrnn.encoded import EncodedCorpus
from charrnn.errors import CheckpointError, ConfigError, CorpusError, RunError
from charrnn.model import CELLS, CharRNN, ModelConfig
from charrnn.presets import PRESETS, Choice, Preset, choose, for_cell
from charrnn.runs import RunDir
from charrnn.speed import training_speed
from charrnn.trainer import TrainConfig, Trainer

DEFAULT_TIME = 600.0  # seconds of training when no steps, epochs or time budget is given
BUDGETS = ("max_steps", "max_epochs", "max_time")
# What a resumed run may change: its budget and how often it evaluates. The rest shapes the model
# or the data, fixed for the life of a run.
RESUMABLE = (*BUDGETS, "eval_every")

ReadCorpus = Callable[[Sequence[str], str], EncodedCorpus]  # (specs, encoding) -> corpus


def start_run(
    corpus: EncodedCorpus,
    run: RunDir | str | os.PathLike,
    *,
    replace: bool = False,
    size: str = "auto",
    cell: str = "lstm",
    model: dict | None = None,
    train: dict | None = None,
    device: torch.device | str = "cpu",
    dist: Dist = SINGLE,
) -> Trainer:
    """A new run of `cell` on `corpus`, writing into the folder `run` (made when training starts);
    a folder that holds a run already is refused unless `replace` (its checkpoints are then
    overwritten as training goes).

    `size` names a preset ("auto": chosen from the time budget and the corpus size, see
    presets.choose); `model` and `train` are ModelConfig and TrainConfig fields that override it
    (e.g. {"hidden_size": 256}, {"max_steps": 500, "seed": 3}). Without a budget, DEFAULT_TIME.
    """
    model, train = dict(model or {}), dict(train or {})
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    if cell not in CELLS:
        raise ConfigError(f"unknown cell {cell!r}: one of {', '.join(CELLS)}")
    if size != "auto" and size not in PRESETS:
        raise ConfigError(f"unknown size {size!r}: auto or one of {', '.join(PRESETS)}")
    _check_fields(model, ModelConfig, "model", exclude=("vocab_size", "cell"))
    _check_fields(train, TrainConfig, "train")
    if run.has_checkpoint() and not replace:
        raise RunError(
            f"{run.path} holds a run already; resume it (resume_run), or pass replace=True"
        )
    if all(train.get(k) is None for k in BUDGETS):
        train["max_time"] = DEFAULT_TIME
    choice = _choose(size, cell, model, train, corpus, device, dist)
    preset = _with_options(choice.preset, cell, len(corpus.vocab), model)
    config = _train_config(preset, train)
    model_config = dataclasses.replace(preset.model_config(len(corpus.vocab), cell), **model)
    train_ids, val_ids = data.split(corpus.ids, config.val_frac)
    torch.manual_seed(config.seed)
    net = CharRNN(model_config).to(device)
    if dist.rank:  # same initial weights everywhere, different dropout masks on each rank
        torch.manual_seed(config.seed + dist.rank)
    provenance = {
        "name": corpus.name,
        "sources": corpus.sources,
        "chars": len(corpus),
        "sha256": corpus.sha256,
        "encoding": corpus.encoding,
        "char_counts": data.char_counts(corpus.ids, len(corpus.vocab)),  # sample checks by it
    }
    trainer = Trainer(net, corpus.vocab, train_ids, val_ids, config, run, provenance, dist)
    trainer.size_choice = choice
    return trainer


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
    """TrainConfig from the preset's batch shape and rate, with the options given over them."""
    shape = {"batch_size": preset.batch_size, "seq_len": preset.seq_len, "lr": preset.lr}
    return TrainConfig(**{**shape, **train})


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
) -> Trainer:
    """Run `run` continued exactly where last.pt stopped, with its own text read again through
    `read_corpus` (from `corpus_specs` if given: the text moved, or came from stdin).

    `train` may change only the budget (replacing all three limits) and eval_every."""
    train = dict(train or {})
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    _check_fields(train, TrainConfig, "train")
    if fixed := set(train) - set(RESUMABLE):
        raise ConfigError(f"{', '.join(sorted(fixed))} cannot change when resuming a run")
    path = run.last if run.last.is_file() else run.best
    try:
        payload = checkpoint.load(path)
    except CheckpointError as e:
        raise CheckpointError(
            f"{e}; run {run.name!r} cannot be resumed from it: start it again with "
            f"`charrnn train CORPUS --name {run.name} --force`"
        ) from None
    saved = payload["corpus"]
    specs = corpus_specs or _saved_sources(saved["sources"], run)
    corpus = read_corpus(specs, saved.get("encoding", "utf-8"))  # as the run first read it
    model, vocab = checkpoint.restore_model(payload, path)
    if corpus.sha256 != saved["sha256"] or corpus.vocab.chars != vocab.chars:
        raise CorpusError(
            f"the corpus differs from the one run {run.name!r} was trained on "
            f"({len(corpus):,} vs {saved['chars']:,} characters, SHA-256 differs); "
            "resume with the same text, or start a new run"
        )
    config = TrainConfig.from_dict(payload["train_config"])
    if any(train.get(k) is not None for k in BUDGETS):
        config = dataclasses.replace(config, **{k: train.get(k) for k in BUDGETS})
    if train.get("eval_every"):
        config = dataclasses.replace(config, eval_every=train["eval_every"])
    train_ids, val_ids = data.split(corpus.ids, config.val_frac)
    provenance = {**saved, "sources": corpus.sources}  # where it is now, if it moved
    trainer = Trainer(model.to(device), vocab, train_ids, val_ids, config, run, provenance, dist)
    trainer.load_state(payload)
    if trainer.budget_spent():
        raise RunError(
            f"run {run.name!r} has already used its budget ({trainer.pos.step:,} steps, "
            f"{trainer.pos.elapsed:.0f}s); give a larger --steps, --epochs or --time in all"
        )
    return trainer


def _saved_sources(sources: list[str], run: RunDir) -> list[str]:
    """The corpus a run was trained on, to read again; an error saying how to pass it where it
    cannot be read again (standard input, or files that moved)."""
    if "-" in sources or not sources:
        raise CorpusError(
            f"run {run.name!r} was trained on standard input or a text in memory; pipe the same "
            f"text again: ... | charrnn train - --resume {run.name}"
        )
    gone = [s for s in sources if os.path.isabs(s) and not os.path.exists(s)]
    if gone:
        raise CorpusError(
            f"run {run.name!r} was trained on {', '.join(gone)}, which is not there any more; "
            f"if it moved, give its new place: charrnn train NEWPATH --resume {run.name}"
        )
    return sources
