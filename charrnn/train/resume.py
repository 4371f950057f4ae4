"""Continuing a run exactly where its checkpoint stopped, on the same text read again."""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from charrnn import checkpoint
from charrnn.devices import as_device
from charrnn.errors import CheckpointError, ConfigError, CorpusError, DamagedCheckpoint, RunError
from charrnn.runs import RunDir, best_candidates, is_evaluation
from charrnn.runs.advice import pipe_sources, resume_command, text_to_give
from charrnn.runs.info import BUDGET_ENDINGS, START_UP_S, pair_mismatch
from charrnn.text import data
from charrnn.text.encoded import EncodedCorpus
from charrnn.train import records, schedule
from charrnn.train.config import TrainConfig
from charrnn.train.distributed import SINGLE, Dist
from charrnn.train.start import BUDGETS, RESUMABLE, Opened, check_fields
from charrnn.train.trainer import Trainer

ReadCorpus = Callable[[Sequence[str], str], EncodedCorpus]  # (specs, encoding) -> corpus


def resume(
    run: RunDir | str | os.PathLike,
    read_corpus: ReadCorpus,
    *,
    corpus_specs: Sequence[str] | None = None,
    train: dict | None = None,
    device: torch.device | str = "cpu",
    dist: Dist = SINGLE,
    checkpoint_file: str | os.PathLike | None = None,
    started: float | None = None,
) -> Opened:
    """Run `run` continued exactly where last.pt stopped (best.pt where there is no last.pt, or
    `checkpoint_file`, e.g. its best.pt beside a damaged last.pt), with its own text read again
    through `read_corpus` (from `corpus_specs` if given: the text moved, or came from stdin).

    `train` may change only what start.RESUMABLE lists: the budget (replacing all three
    limits), eval_every, patience and precision; `started` as start.start's. A checkpoint that
    cannot be read is an error that offers the run's other one where that one loads."""
    train = dict(train or {})
    device = as_device(device)
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    check_fields(train, TrainConfig, "train")
    if fixed := set(train) - set(RESUMABLE):
        raise ConfigError(f"{', '.join(sorted(fixed))} cannot change when resuming a run")
    run.refuse_blocked("resume")
    if checkpoint_file is not None:
        path = Path(checkpoint_file)
    else:
        path = run.last if run.last.is_file() else run.best
    # how to name this resume again, in advice: the file, if one was given
    again = str(path) if checkpoint_file is not None else run.ref
    try:
        payload = checkpoint.load(path)
        model = checkpoint.restore(payload, path)
    except CheckpointError as e:
        what = e.what if isinstance(e, DamagedCheckpoint) else e  # without a reader's advice
        raise CheckpointError(
            f"{what}; {_resume_instead(run, path, corpus_specs, train)}"
        ) from None
    saved = payload["corpus"]
    # the run's other checkpoint, read once: whether best.pt still holds its best model, and that
    # the two are this run's
    best_problem = _pair_problem(run, path, payload)
    if run.metrics_disagree(payload["metrics"]):
        raise CheckpointError(
            f"{path} and {run.metrics} are of different runs (their first records differ): one "
            f"was copied in from another run; move the one that is not this run's out of "
            f"{run.path} (a resume writes metrics.jsonl again from its checkpoint), then resume"
        )
    specs = corpus_specs or _saved_sources(saved["sources"], run, again, train)
    corpus = read_corpus(specs, saved.get("encoding", "utf-8"))  # as the run first read it
    # The model's vocabulary is the text's, or grown from a base model's to hold it (init_from).
    if corpus.sha256 != saved["sha256"] or not set(corpus.vocab.chars) <= set(model.vocab.chars):
        raise CorpusError(
            f"the corpus differs from the one run {run.name!r} was trained on "
            f"({len(corpus):,} vs {saved['chars']:,} characters, SHA-256 differs); "
            "resume with the same text, or start a new run on this one from its weights "
            f"(--init-from {shlex.quote(run.ref)} --name NEW)"
        )
    state = checkpoint.run_state(payload, model.to(device))
    config = _extended(state.config, train)
    provenance = {**saved, "sources": corpus.sources}  # where it is now, if it moved
    state = dataclasses.replace(state, config=config, corpus=provenance)
    # From another file than last.pt: last.pt (damaged, or further on) is replaced by this state
    # as training starts, so that a rollback, or a resume after a stop, goes back to it.
    elsewhere = path.absolute() != run.last.absolute()
    ids = data.reindex(corpus.ids, corpus.vocab, model.vocab)
    trainer = Trainer(
        state, ids, run, dist, save_last_first=elsewhere, started=started, files=corpus.files
    )
    warnings, mended = [], False
    lost = None  # why best.pt does not hold the run's best model, where it does not
    if path.absolute() != run.best.absolute():
        lost = best_problem
        if lost is None and not run.best.exists() and any(map(is_evaluation, trainer.pos.metrics)):
            lost = f"{run.best} {_gone(run.best)}, though the run was evaluated"
    if lost is not None and _holds_best(trainer):  # best.pt's copy of last.pt failed: made now
        run.best_from_last()
        step = f"step {trainer.pos.step:,}"
        warnings.append(f"{lost}; written again from last.pt, which holds its best model ({step})")
        lost, mended = None, True
    elif lost is not None:
        trainer.replace_best = True
        warnings.append(f"{lost}; the resume's first evaluation writes a new one")
    # Another budget: the rate follows its cosine from where the run is (a finished run given
    # more goes back up, as a run of the whole budget would be there; docs/performance.md)
    trainer = _check_budget(trainer, lost, mended=mended)
    given = Path(checkpoint_file) if checkpoint_file is not None and elsewhere else None
    warnings += [late] if (late := _past_budget(trainer, train)) else []
    if checkpoint_file is None and path == run.best:  # last.pt is gone: the steps after best.pt
        given = run.best
        warnings.append(
            f"{run.last} {_gone(run.last)}: the run goes on from its best.pt, at step "
            f"{trainer.pos.step:,}"
        )
    if given is not None and (later := _later_step(run.last, trainer.pos.step)) is not None:
        warnings.append(
            f"{run.last} is at step {later:,}: this resume from step {trainer.pos.step:,} "
            "replaces it, and the steps after it are trained again"
        )
    return Opened(trainer, resumed_from=given, chars=saved["chars"], warnings=warnings)


def _pair_problem(run: RunDir, path: Path, payload: dict) -> str | None:
    """Why `run`'s best.pt no longer holds its best model (damaged, or older than the best
    last.pt records: replaced at the first evaluation, with a warning), or None, for a resume
    from `path` (loaded as `payload`). A CheckpointError where best.pt and last.pt are not of one
    run (runs.pair_mismatch): a file copied in from another run, whose model a resume would train
    here, or, going on from last.pt, a last.pt older than best.pt, whose resume would replace the
    later best (a resume from best.pt replaces last.pt with a warning: see _later_step)."""
    from_best = path.absolute() == run.best.absolute()
    other = run.last if from_best else run.best
    if not other.exists():
        return None
    try:  # best.pt, as a resume from it would read it: whole; last.pt as runs reads it
        loaded = checkpoint.load(other, verify=not from_best)
    except CheckpointError as e:
        if from_best:  # last.pt damaged: why a resume goes on from best.pt
            return None
        return e.what if isinstance(e, DamagedCheckpoint) else str(e)
    best, last = (payload, loaded) if from_best else (loaded, payload)
    if (pair := pair_mismatch(best, last)) is None or (from_best and not pair.foreign):
        return None
    if not (pair.foreign or pair.last_older):  # best.pt is stale
        return f"in {run.path}, {pair.what}: {pair.cause}"
    again = f"charrnn train --resume {shlex.quote(run.file_ref('best.pt'))}"
    said = f"in {run.path}, {pair.what}: {pair.advice(str(run.path), again)}"
    raise CheckpointError(f"{said}, then resume" if pair.foreign else said)


def _later_step(last: Path, step: int) -> int | None:
    """The step of `last` (a run's last.pt) where it loads and is past `step`, else None."""
    try:
        trainer = checkpoint.load(last, verify=False)["trainer"]
    except CheckpointError:
        return None
    later = trainer.get("step") if isinstance(trainer, dict) else None
    return later if isinstance(later, int) and later > step else None


def _gone(path: Path) -> str:
    """How a checkpoint file that is not there is not there."""
    return "is a broken link" if path.is_symlink() else "is missing"


def _holds_best(trainer: Trainer) -> bool:
    """Whether the run's last evaluation, at the step it is at, is its best: the model last.pt
    holds is the one best.pt should."""
    evals = best_candidates(trainer.pos.metrics)
    if not evals or evals[-1].get("step") != trainer.pos.step:
        return False
    losses = [r.get("val_loss") for r in evals]
    if not all(isinstance(x, (int, float)) for x in losses):
        return False
    return losses[-1] < min(losses[:-1], default=math.inf)  # a tie: the earlier one is best


def _check_budget(trainer: Trainer, lost: str | None = None, mended: bool = False) -> Trainer:
    """`trainer`, if its budget (as extended) is not spent yet, or if a resume that trains no
    further `mended` its best.pt; else a RunError saying so (and where best.pt is `lost`, how
    a new one is written)."""
    name = trainer.run_dir.name
    c, pos = trainer.config, trainer.pos
    if trainer.budget_spent() == "patience":
        since = schedule.evals_since_best(pos.metrics)
        evals = f"{since} evaluation{'s' * (since != 1)}"
        if pos.ended == "patience":
            said = f"run {name!r} stopped early: no better validation loss in its last {evals}"
        else:  # a patience given now, which the evaluations since the best already exhaust
            said = (
                f"run {name!r} has had no better validation loss in its last {evals}, so "
                f"--patience {c.patience} would stop it at once"
            )
        raise RunError(f"{said}; to go on, give a --patience above {since}")
    if pos.ended == "diverged":
        raise RunError(
            f"run {name!r} diverged at its learning rate of {c.lr:g}, which a resume keeps: "
            "start it over with a lower --lr and --force"
        )
    left = None if c.max_time is None else c.max_time - pos.elapsed
    if trainer.last_evaluated() != pos.step:  # its final evaluation to make: it goes on
        return trainer
    if (reason := trainer.budget_spent()) and not mended:  # which limit: the one to give larger
        flag = {"steps": "--steps", "epochs": "--epochs", "time": "--time"}.get(reason)
        which = f" (its {flag} is spent)" if flag else ""
        then = ""
        if lost is not None:  # the best model is lost with it: the resume's evaluations make one
            last = trainer.run_dir.file_ref("last.pt")
            then = (
                f" (its best model is lost: {lost}; the resume's first evaluation writes a new "
                f"best.pt, or sample its last.pt with -c {shlex.quote(last)})"
            )
        raise RunError(
            f"run {name!r} has already used its budget ({pos.step:,} steps, "
            f"{pos.elapsed:.0f}s){which}; give a larger --steps, --epochs or --time in all{then}"
        )
    if left is not None and left < START_UP_S:
        raise RunError(
            f"run {name!r} has {left:.1f}s of its --time {c.max_time:g}s left, less than starting "
            f"it takes ({pos.step:,} steps trained); give a --time well above {pos.elapsed:.0f}s "
            f"in all, e.g. {math.ceil(pos.elapsed) + MORE_TIME_S}s"
        )
    return trainer


def _past_budget(trainer: Trainer, train: dict) -> str | None:
    """Where a limit given with this resume is one the run has already passed (it stopped before
    its final evaluation, which is all the resume will do): that the limit counts in all, and
    what to give for more; else None."""
    reason = trainer.budget_spent()
    if reason not in BUDGET_ENDINGS or train.get(f"max_{reason}") is None:
        return None
    if trainer.last_evaluated() == trainer.pos.step:  # refused by _check_budget
        return None
    pos = trainer.pos
    epochs = records.epochs(pos, len(trainer.train_batches))
    done, more = {
        "steps": (f"at step {pos.step:,}", f"--steps {pos.step + 1000} for 1,000 more"),
        "epochs": (f"{epochs:.2f} epochs in", f"an --epochs above {epochs:.2f}"),
        "time": (
            f"{pos.elapsed:.0f}s in",
            f"--time {math.ceil(pos.elapsed) + MORE_TIME_S}s for {MORE_TIME_S}s more",
        ),
    }[reason]
    return (
        f"--{reason} counts the run's {reason} in all and run {trainer.run_dir.name!r} is {done}: "
        f"this resume only makes its final evaluation; give {more}"
    )


MORE_TIME_S = 60  # seconds more than the run has used that the refusal offers as an example


def _extended(config: TrainConfig, train: dict) -> TrainConfig:
    """`config` with the budget given (all three limits replaced), eval_every (every one of its
    evaluations: none left out early on), keep_every, patience and precision."""
    changeable = ("eval_every", "keep_every", "patience", "precision")
    given = {k: train[k] for k in changeable if train.get(k)}
    if "eval_every" in given:
        given |= {"sparse_evals_until": None, "eval_every_given": True}
    if any(train.get(k) is not None for k in BUDGETS):
        given.update({k: train.get(k) for k in BUDGETS})
    return dataclasses.replace(config, **given)


def _resume_instead(
    run: RunDir, path: Path, corpus_specs: Sequence[str] | None, train: dict
) -> str:
    """What to do when `path`, a checkpoint of `run`, cannot be resumed from: go on from the
    run's other checkpoint where that one loads (named in the folder as the user gave it, with
    the text and budget given); never --force, which would throw that one away too."""
    others = {run.last.absolute(): run.best, run.best.absolute(): run.last}
    other = others.get(path.absolute())
    if other is not None and other.is_file():
        try:
            payload = checkpoint.load(other)
            checkpoint.restore(payload, other)  # as resuming from it will
        except CheckpointError:
            pass
        else:
            trainer = payload.get("trainer")
            step = trainer.get("step") if isinstance(trainer, dict) else None
            if corpus_specs is None:  # the text it needs given again (stdin, a pipe), if any
                corpus_specs = text_to_give(payload["corpus"]["sources"])
            at = f" (step {step:,})" if isinstance(step, int) and not isinstance(step, bool) else ""
            more = ""  # a budget given is the user's; none given may be spent already
            if all(train.get(k) is None for k in BUDGETS):
                more = ", with a larger --steps, --epochs or --time where the run spent its budget"
            return (
                f"run {run.ref!r} can go on from its {other.name}{at} instead{more}: "
                f"{resume_command(run.file_ref(other.name), corpus_specs, train)}"
            )
    return (
        f"run {run.ref!r} has no other checkpoint that loads, so it cannot be resumed; "
        "train it again, with --force to replace it (or under another --name)"
    )


def _saved_sources(sources: list[str], run: RunDir, again: str, train: dict) -> list[str]:
    """The corpus a run was trained on, to read again; an error saying how to pass it where it
    cannot be read again (standard input, a pipe, or files that moved), with the whole command:
    `again`, how the user named the run (or the file it resumes from), and the `train` given."""
    if "-" in sources or not sources:
        raise CorpusError(
            f"run {run.name!r} was trained on standard input or a text in memory; pipe the same "
            f"text again: {resume_command(again, text_to_give(sources), train)}"
        )
    # A pipe (mkfifo, or a shell's <(...)) gave its text once: opened again it would wait, silent,
    # for a writer, or it is gone with the shell that made it.
    if pipes := pipe_sources(sources):
        raise CorpusError(
            f"run {run.name!r} was trained on {', '.join(pipes)}, a pipe, whose text is not "
            f"kept; give the text again: {resume_command(again, ['FILE'], train)} (or the pipe, "
            "with a writer ready)"
        )
    gone = [s for s in sources if os.path.isabs(s) and not os.path.exists(s)]
    if gone:
        raise CorpusError(
            f"run {run.name!r} was trained on {', '.join(gone)}, which is not there any more; "
            f"if it moved, give its new place: {resume_command(again, ['NEWPATH'], train)}"
        )
    return sources
