"""What a run's checkpoints say of it (`charrnn runs`): its step, evaluations, cell and shape, the
run it was fine-tuned from, or why it cannot be read."""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass, field

from charrnn.errors import CharRNNError, RunError
from charrnn.jsonl import number
from charrnn.runs.advice import pipe_sources, resume_command, text_to_give, train_longer
from charrnn.runs.folder import (
    RunDir,
    best_candidates,
    first_of,
    is_evaluation,
    path_kind,
    records_differ,
)
from charrnn.train.events import ENDINGS

BUDGET_ENDINGS = ("steps", "epochs", "time")  # how a run that spent its budget ended
# Seconds of a time budget under which a resume is refused as spent: about what starting one takes
# (reading the text, building the model), which counts to the run's time; with less left it
# would train nothing and only add its start-up to the time the run has used.
# how a resume writes a run's lost best.pt again (train.resume)
BEST_AGAIN = " (a copy of last.pt where that holds the best model, else at its first evaluation)"
START_UP_S = 5.0


def times(n: int) -> str:
    """'once', '2 times': how often a run was evaluated, as a sentence says it."""
    return "once" if n == 1 else f"{n:,} times"


@dataclass(frozen=True)
class RunInfo:
    """One run as its checkpoints tell it; `problem` says why a file of it cannot be read."""

    run: RunDir
    step: int | None = None  # the trainer step of its newest checkpoint (last.pt)
    elapsed: float | None = None  # seconds of training, across resumes
    metrics: tuple[dict, ...] = ()  # its evaluations, from that checkpoint
    has_best: bool = False  # best.pt is there and loads: it trained to one evaluation at least
    problem: str | None = None
    mismatch: Mismatch | None = None  # why best.pt and last.pt are not of one run (in `problem`)
    broken: tuple[str, ...] = ()  # its checkpoint files that are there and do not load
    cell: str | None = None  # "lstm", "gru" or "rnn"
    shape: str | None = None  # layers x width, e.g. "1x512"
    dropout: float | None = None  # what it trains with (--size auto sets it by the passes)
    input_dropout: float | None = None  # ... of the embedded characters
    lr: float | None = None  # its peak learning rate (its preset's, or a share of its base's)
    origin: str | None = None  # the run it was fine-tuned from (train --init-from), if any
    origin_step: int | None = None  # ... at that run's step
    origin_checkpoint: str | None = None  # ... from this file (its absolute path then)
    # How it ended (events.ENDINGS: a budget spent, "patience", "stopped" by a signal);
    # None while it trains, or from a charrnn that did not keep it.
    ended: str | None = None
    # It ended without saying how (killed, out of memory, the machine stopped): its newest
    # checkpoint was saved while it trained, and no process trains it now.
    cut_off: bool = False
    # What it was trained on (absolute paths, catalog names, "-" for standard input), for the
    # advice to continue it; None where unknown.
    sources: tuple[str, ...] | None = None
    # The process id of a `charrnn train` training it now (0: not written yet), or None.
    trainer: int | None = None
    # Its text's SHA-256 and the share of it at the end that validates: runs alike in both
    # validate on the same characters (None where unknown)
    validates_on: tuple[str, float] | None = None
    # The budget it trains to (max_steps, max_epochs, max_time: None where not given)
    limits: dict = field(default_factory=dict)
    # Every setting it trains with, as its newest checkpoint keeps them (ModelConfig and
    # TrainConfig as dicts: batch_size, seq_len, weight_decay, seed, precision, ...)
    model_config: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)

    def _repair(self) -> str:
        """What to do about a damaged file: use or resume from the run's other one, which loads
        (a resume from last.pt writes a new best.pt at its first evaluation), or train again; a
        folder where a checkpoint goes is moved out first (a resume refuses to start)."""
        in_the_way = [n for n in self.broken if os.path.isdir(self.run.path / n)]
        rest = self._what_then()
        if not in_the_way or self.resumes_from is None:  # a new run, or --force, needs no move
            return f"; {rest}" if rest else ""
        folders = f"the folder{'s' * (len(in_the_way) > 1)} {' and '.join(in_the_way)}"
        then = f", then {rest}" if rest else ""
        return f"; first move {folders} out of the run folder{then}"

    def _what_then(self) -> str:
        """_repair's advice, with nothing in the way."""
        given = text_to_give(self.sources) if self.sources is not None else []
        if self.resumes_from is None and self.has_best:  # best.pt's model alone is sound
            return (
                f"nothing resumes it, but its best.pt reads text ({MODEL_READERS}): train "
                f"on from its weights as a new run, `{self._from_best()}`"
            )
        if self.resumes_from is None and self.broken:  # (not a folder without permission)
            return "no checkpoint of it loads: train it again, with --force to replace it"
        if self.resumes_from == "last.pt" and "best.pt" in self.broken:
            spent = self.ended in BUDGET_ENDINGS
            more = " with a larger --steps, --epochs or --time" if spent else ""
            return (
                f"its last.pt loads: give -c {self.run.file_ref('last.pt')}, or resume the "
                f"run (`{resume_command(self.run.ref, given, {})}`{more}), which writes a new "
                "best.pt at its first evaluation"
            )
        if "last.pt" in self.broken:
            again = resume_command(self.run.file_ref("best.pt"), given, {})
            return (
                f"go on from its best.pt: `{again}` (with a larger --steps, --epochs or "
                "--time if its budget is spent)"
            )
        return ""

    def _from_best(self) -> str:
        """The new run that starts from best.pt's weights on the run's own text (--init-from)."""
        pipes = pipe_sources(self.sources or ())
        texts = ["FILE" if s in pipes else shlex.quote(s) for s in self.sources or ()]
        piped = "... | " if "-" in texts else ""
        best = shlex.quote(self.run.file_ref("best.pt"))
        return f"{piped}charrnn train {' '.join(texts) or 'CORPUS'} --init-from {best}"

    def go_on(self) -> str:
        """What trains the run on, as advice: its resume, or, where it diverged at the rate a
        resume keeps, a new start."""
        if self.ended == "diverged":
            return "start it over with a lower --lr and --force (a resume keeps its rate)"
        return f"train it on: {self.resume_advice()}"

    def train_longer(self) -> str | None:
        """The resume that trains the run longer (advice.train_longer), or None where it cannot
        resume from its last.pt or its text is not known."""
        if "last.pt" in self.broken or None in (self.step, self.elapsed, self.sources):
            return None
        last = self.metrics[-1] if self.metrics else {}
        at = {"step": self.step, "epoch": last.get("epoch", 0.0), "elapsed": self.elapsed}
        return train_longer(self.run.ref, self.sources, self.limits, at)

    def resume_advice(self) -> str:
        """The command that continues the run, with the text it must be given again."""
        given = text_to_give(self.sources) if self.sources is not None else []
        return resume_command(self.run.ref, given, {})

    def summary(self) -> dict:
        """Plain values (None where unknown), as `charrnn runs --json` writes them."""
        last = self.metrics[-1] if self.metrics else {}
        scores = [_number(r.get("val_bpc"), float) for r in best_candidates(self.metrics)]
        return {
            "run": self.run.name,
            "folder": str(self.run.path),
            "status": self.status,
            "cell": self.cell,
            "shape": self.shape,
            "dropout": self.dropout,
            "input_dropout": self.input_dropout,
            "lr": self.lr,
            "from": self.origin,
            "from_step": self.origin_step,
            "from_checkpoint": self.origin_checkpoint,
            "step": self.step,
            "train_seconds": self.elapsed,
            # null where no checkpoint was read: its count is unknown, not 0
            "evaluations": len(self.metrics) if self.step is not None else None,
            "best_val_bpc": min((v for v in scores if v is not None), default=None),
            "val_chars": self.val_chars,
            "last_val_bpc": _number(last.get("val_bpc"), float),
            "last_eval_step": _number(last.get("step"), int),
            "last_eval_epoch": _number(last.get("epoch"), float),
            "note": self.note,
            "ended": self.ended,
            "training_pid": self.trainer,
            "model_config": self.model_config or None,
            "train_config": self.train_config or None,
            "kept": [str(p) for p in self.run.kept()],  # --keep-every's checkpoints, by step
        }

    @property
    def val_chars(self) -> int | None:
        """Validation characters its evaluations read (a time budget reads part of the split)."""
        return _number(self.metrics[-1].get("val_chars"), int) if self.metrics else None

    @property
    def status(self) -> str:
        """'damaged' (a file cannot be read, best.pt is gone though the run was evaluated, or
        last.pt is gone), 'untrained' (no evaluation yet) or 'ok'."""
        if self.problem or self.lost_best or self.lost_last:
            return "damaged"
        return "ok" if self.has_best else "untrained"

    @property
    def resumes_from(self) -> str | None:
        """The file a resume of the run goes on from: last.pt where it loads, else best.pt where
        that loads, else None (nothing can resume it)."""
        if os.path.isfile(self.run.last) and "last.pt" not in self.broken and self.step is not None:
            return "last.pt"
        return "best.pt" if self.has_best and "best.pt" not in self.broken else None

    @property
    def lost_last(self) -> bool:
        """last.pt is missing beside best.pt: the steps after best.pt are gone (not while a
        trainer replaces the run's files: --force clears them, then writes them again)."""
        return self.has_best and not os.path.lexists(self.run.last) and self.trainer is None

    @property
    def lost_best(self) -> bool:
        """best.pt is missing though the run was evaluated (it is written at the first one), and
        no trainer is writing it now (last.pt, then best.pt)."""
        return not self.has_best and bool(self.metrics) and self.trainer is None

    @property
    def note(self) -> str:
        """Why the run is not 'ok', and what to do; empty when it is."""
        if self.problem:
            return f"damaged: {self.problem}{self._repair()}"
        if self.lost_best:
            return (
                f"damaged: its best.pt is missing, though it was evaluated "
                f"{times(len(self.metrics))}; its latest weights are in {self.run.last} (give "
                f"-c {self.run.file_ref('last.pt')}), and a resume writes a new best.pt"
                f"{BEST_AGAIN}"
            )
        if self.lost_last:
            at = f" (step {self.step:,})" if self.step is not None else ""
            return (
                f"damaged: its last.pt is missing; a resume goes on from its best.pt{at}: "
                f"`{self.resume_advice()}` (with a larger --steps, --epochs or --time where "
                "the run spent its budget)"
            )
        if self.ended == "diverged":
            return f"diverged: training blew up at every rate it tried; {self.go_on()}"
        if not self.has_best and self.trainer is not None:  # its last.pt: as it started
            who = pid_text(self.trainer)
            return f"being trained now ({who}); best.pt comes with its first evaluation"
        if not self.has_best:
            at = f" (step {self.step:,})" if self.step is not None else ""
            return (
                f"not trained to its first evaluation yet{at}; continue it with "
                f"`{self.resume_advice()}`"
            )
        if self.cut_off:
            at = f" at step {self.step:,}" if self.step is not None else ""
            cut = (
                f"cut off: it ended without saying how (killed, interrupted twice, out of memory, "
                f"or the machine stopped), after its save{at}"
            )
            if (spent := self._spent()) and (longer := self.train_longer()):
                finished = f"its {spent} spent: it had finished training"
                return f"{cut}, {finished}; to train it on: `{longer}`"
            return f"{cut}; continue it with `{self.resume_advice()}`"
        return ""

    def _spent(self) -> str | None:
        """The budget a run's last.pt had reached ("--steps", "--epochs", "--time"), as its
        resume finds it (its last evaluation's epoch standing for the checkpoint's), or None."""
        evals = [r for r in self.metrics if is_evaluation(r)]
        if self.step is None or not evals or evals[-1].get("step") != self.step:
            return None  # its final evaluation to make: a resume goes on to make it
        limits = (self.limits.get(k) for k in ("max_steps", "max_epochs", "max_time"))
        steps, epochs, seconds = limits
        if steps is not None and self.step >= steps:
            return "--steps"
        if epochs is not None and (evals[-1].get("epoch") or 0.0) >= epochs:
            return "--epochs"
        if seconds is not None and (self.elapsed or 0.0) > seconds - START_UP_S:
            return "--time"
        return None


def inspect(run: RunDir, verify: bool = False) -> RunInfo:
    """Read a run's checkpoints (mmap: the weights are not read, unless `verify`: then every
    part is read and checked against the digests saved with it) and what they say."""
    from charrnn import checkpoint  # torch: only where a checkpoint is opened

    loaded, problems, broken, pair = {}, [], [], None
    idle = run.trainer() is None  # before the reads, as after them: no save between the two
    try:
        if path_kind(run.path) != "dir":
            raise RunError(f"{run.path} is not a folder")
        for path in (run.last, run.best):
            try:
                kind = path_kind(path)
            except RunError as e:  # a broken link: this file's problem, not the run's
                if not os.path.islink(path):  # the folder's (no permission): the run's
                    raise
                problems.append(str(e))
                broken.append(path.name)
                continue
            if kind is not None and kind != "file":
                problems.append(f"{path} is {'a folder' if kind == 'dir' else 'not a file'}")
                broken.append(path.name)
            if kind == "file":
                try:
                    loaded[path.name] = checkpoint.load(path, verify=verify)
                except CharRNNError as e:  # what is wrong; the listing says what to do
                    what = getattr(e, "what", str(e))
                    sound = path == run.best and _sound_model(path)
                    if sound:
                        # its training state alone: what reads text reads it as trained, and a
                        # resume goes on from last.pt, where that loads (else from nothing)
                        loaded[path.name] = sound
                        if "last.pt" in loaded:
                            problems.append(
                                f"{what}; its model is sound ({MODEL_READERS} read it), and a "
                                "resume goes on from its last.pt"
                            )
                        else:
                            problems.append(f"{what}, though its model is sound")
                            broken.append(path.name)  # nothing resumes from it
                        continue
                    problems.append(what)
                    broken.append(path.name)
        try:  # a folder where metrics.jsonl goes: a resume refuses to start (a save would fail)
            run.refuse_blocked(None, (run.metrics,))
        except RunError as e:
            problems.append(f"{e} (its checkpoints keep its records: a resume writes it again)")
        # Where one file is damaged or last.pt is gone, the advice names the other: read it whole
        if (broken or not os.path.lexists(run.last)) and not verify:
            for name in [n for n in loaded if n not in broken]:
                try:
                    checkpoint.load(run.path / name, verify=True)
                except CharRNNError as e:
                    problems.append(getattr(e, "what", str(e)))
                    broken.append(name)
                    del loaded[name]
        # as a resume refuses it (resume.py); not while a trainer writes them (one, then the other)
        pid = run.trainer()
        settled = idle and pid is None
        both = "best.pt" in loaded and "last.pt" in loaded and settled
        if pair := both and pair_mismatch(loaded["best.pt"], loaded["last.pt"]):
            again = f"charrnn train --resume {shlex.quote(run.file_ref('best.pt'))}"
            problems.append(f"its {pair.what}: {pair.advice('the run folder', again)}")
        if settled and not (pair and pair.foreign) and (records := records_mismatch(run, loaded)):
            problems.append(f"its {records.what}: {records.advice('the run folder', '')}")
            pair = pair or records
    except CharRNNError as e:
        problems.append(str(e))
        pid = run.trainer()
    newest = loaded.get("last.pt") or loaded.get("best.pt")
    if newest is None and not problems and pid is not None:
        return RunInfo(run, trainer=pid)  # started over (--force): its first save is to come
    if newest is None:
        problem = "; ".join(problems) or (
            f"{run.path} holds no checkpoint (best.pt or last.pt), though its metrics.jsonl is "
            "there (deleted, or never saved): train the run again, with --force to replace it"
        )
        return RunInfo(run, problem=problem, broken=tuple(broken))
    trainer = newest["trainer"] if isinstance(newest["trainer"], dict) else {}
    records = newest["metrics"] if isinstance(newest["metrics"], list) else []
    config = newest["model_config"] if isinstance(newest["model_config"], dict) else {}
    train = newest.get("train_config") if isinstance(newest.get("train_config"), dict) else {}
    layers, width = _number(config.get("num_layers"), int), _number(config.get("hidden_size"), int)
    origin = newest.get("origin") if isinstance(newest.get("origin"), dict) else {}
    base = origin.get("checkpoint")
    return RunInfo(
        run,
        step=_number(trainer.get("step"), int),
        elapsed=_number(trainer.get("elapsed"), float),
        metrics=tuple(r for r in records if is_evaluation(r)),
        has_best="best.pt" in loaded,
        problem="; ".join(problems) or None,
        broken=tuple(broken),
        cell=config.get("cell") if isinstance(config.get("cell"), str) else None,
        shape=f"{layers}x{width}" if layers and width else None,
        dropout=_number(config.get("dropout"), float),
        # 0 in a model from before it was kept
        input_dropout=_number(config.get("input_dropout", 0.0 if config else None), float),
        lr=_number(train.get("lr"), float),
        origin=origin.get("run") if isinstance(origin.get("run"), str) else None,
        origin_step=_number(origin.get("step"), int),
        origin_checkpoint=base if isinstance(base, str) else None,
        ended=trainer.get("ended") if trainer.get("ended") in ENDINGS else None,
        # (a checkpoint from before `ended` was kept has no such key: nothing is known)
        cut_off="ended" in trainer and trainer["ended"] is None and pid is None,
        sources=sources_of(newest.get("corpus")),
        trainer=pid,
        mismatch=pair or None,
        limits={k: train.get(k) for k in ("max_steps", "max_epochs", "max_time")},
        validates_on=_validates_on(newest.get("corpus"), train.get("val_frac")),
        model_config=_settings(config),
        train_config=_settings(train),
    )


def _validates_on(corpus, val_frac) -> tuple[str, float] | None:
    """(the text's SHA-256, its validation share) as a checkpoint keeps them; None if unknown."""
    sha = corpus.get("sha256") if isinstance(corpus, dict) else None
    share = _number(val_frac, float)
    return (sha, share) if isinstance(sha, str) and share is not None else None


MODEL_READERS = "sample, score, inspect and export"


def _sound_model(path) -> dict | None:
    """The checkpoint at `path`, where it holds a sound model: the parts its readers check load
    and match their digests (what else it holds may not); None where they do not."""
    from charrnn import checkpoint

    try:
        return checkpoint.load(path, verify=checkpoint.MODEL_PARTS)
    except CharRNNError:
        return None


@dataclass(frozen=True)
class Mismatch:
    """Why a run's best.pt and last.pt are not two moments of one run: `what` says it (of
    "best.pt" and "last.pt"); `foreign`: one of them was copied in from another run; otherwise
    one was put back from an older copy of this run."""

    what: str
    foreign: bool
    best_step: int | None = None
    last_step: int | None = None

    def advice(self, folder: str, resume: str) -> str:
        """What to do, for a run in `folder` (a path, or "the run folder"); `resume`: the
        command that goes on from its best.pt."""
        if self.foreign:
            return f"{self.cause}; move the one that is not this run's out of {folder}"
        if self.last_older:
            return (
                f"{self.cause}; to go on from best.pt: `{resume}`, or first move best.pt out of "
                f"{folder} to go on from last.pt"
            )
        return f"{self.cause}; a resume writes a new best.pt{BEST_AGAIN}"

    @property
    def cause(self) -> str:
        """How the two came to differ."""
        if self.foreign:
            return "one was copied in from another run"
        if self.last_older:
            return "one was put back from a copy"
        return (
            "a save was cut short (the trainer killed between writing last.pt and copying it to "
            "best.pt), or best.pt was put back from a copy"
        )

    @property
    def last_older(self) -> bool:
        """last.pt is from before best.pt: a resume from it would replace a later best."""
        steps = (self.best_step, self.last_step)
        return None not in steps and self.last_step < self.best_step


BOTH = "best.pt and last.pt"
MODEL_KEYS = ("cell", "num_layers", "hidden_size", "embedding_dim")  # what a model's shape is


def pair_mismatch(best: dict, last: dict) -> Mismatch | None:
    """What makes a run's best.pt and last.pt (loaded payloads) not two moments of one run, or
    None where they are: every save writes last.pt and then copies it to best.pt where the loss
    improved, so the two hold one text, one model's shape and vocabulary, one first record, and
    one best validation loss, best.pt at or before last.pt's step."""
    if None not in (a := _corpus_sha(best), b := _corpus_sha(last)) and a != b:
        return Mismatch(f"{BOTH} hold models of different texts (their SHA-256 differ)", True)
    shapes = [_model_shape(p) for p in (best, last)]
    if None not in shapes and shapes[0] != shapes[1]:
        return Mismatch(f"{BOTH} hold different models ({shapes[0]}; {shapes[1]})", True)
    if best.get("vocab") != last.get("vocab"):
        return Mismatch(f"{BOTH} hold models of different alphabets", True)
    if records_differ(*(first_of(p.get("metrics")) for p in (best, last))):
        return Mismatch(f"{BOTH} are of different runs (their first records differ)", True)
    (sb, vb), (sl, vl) = _trainer_at(best), _trainer_at(last)
    if None not in (sb, sl) and sb > sl:
        return Mismatch(f"last.pt (step {sl:,}) is older than best.pt (step {sb:,})", False, sb, sl)
    if None not in (sb, sl, vb, vl) and vb != vl:
        return Mismatch(
            f"best.pt (step {sb:,}, {vb:.4f} nats) is not the best that last.pt (step {sl:,}) "
            f"records ({vl:.4f} nats)",
            False,
            sb,
            sl,
        )
    return None


def run_mismatch(run: RunDir) -> Mismatch | None:
    """pair_mismatch of `run`'s best.pt and last.pt, read without their weights (where both
    load: a reader of a damaged file says so), else records_mismatch of the one or two that load;
    None while a trainer writes them (last.pt, then best.pt: a moment apart)."""
    from charrnn import checkpoint  # torch: only where a checkpoint is opened

    if run.trainer() is not None:
        return None
    loaded = {}
    for path in (run.best, run.last):
        with contextlib.suppress(CharRNNError, OSError):
            loaded[path.name] = checkpoint.load(path, verify=False)
    if len(loaded) == 2 and (pair := pair_mismatch(loaded["best.pt"], loaded["last.pt"])):
        return pair
    return records_mismatch(run, loaded)


def records_mismatch(run: RunDir, loaded: dict[str, dict]) -> Mismatch | None:
    """Where one of `run`'s checkpoints (`loaded`: payloads by file name) and its metrics.jsonl
    are of different runs (every training session rewrites the file from its checkpoint, so the
    two begin with the same record), what says so; else None."""
    names = [n for n in ("best.pt", "last.pt") if n in loaded]
    first = run.first_record()  # metrics.jsonl's, read once for both
    apart = [n for n in names if records_differ(first, first_of(loaded[n].get("metrics")))]
    if not apart:
        return None
    if len(apart) == 2:
        what = f"{BOTH} are of another run than metrics.jsonl (their first records differ)"
    else:
        what = f"{apart[0]} and metrics.jsonl are of different runs (their first records differ)"
    return Mismatch(what, foreign=True)


def _model_shape(payload: dict) -> str | None:
    """A checkpoint's model as `LSTM 1x128, embedding 32`, where its config says it."""
    config = payload.get("model_config")
    if not isinstance(config, dict) or any(k not in config for k in MODEL_KEYS):
        return None
    cell, layers, width, emb = (config[k] for k in MODEL_KEYS)
    return f"{str(cell).upper()} {layers}x{width}, embedding {emb}"


def _trainer_at(payload: dict) -> tuple[int | None, float | None]:
    """A checkpoint's step and the best validation loss its run had reached (None: not said)."""
    trainer = payload.get("trainer") if isinstance(payload.get("trainer"), dict) else {}
    step, best = trainer.get("step"), number(trainer.get("best_val"))
    return (step if isinstance(step, int) and not isinstance(step, bool) else None), best


def _corpus_sha(payload: dict) -> str | None:
    """The SHA-256 of the text a loaded checkpoint's model was trained on, where it says."""
    corpus = payload.get("corpus")
    sha = corpus.get("sha256") if isinstance(corpus, dict) else None
    return sha if isinstance(sha, str) else None


def sources_of(corpus) -> tuple[str, ...] | None:
    """A checkpoint's corpus sources, where they are a list of strings (None otherwise)."""
    sources = corpus.get("sources") if isinstance(corpus, dict) else None
    if isinstance(sources, list) and all(isinstance(x, str) for x in sources):
        return tuple(sources)
    return None


def pid_text(pid: int) -> str:
    """A trainer's process id as messages give it (0: not written yet)."""
    return f"pid {pid}" if pid else "by another process"


def _settings(config: dict) -> dict:
    """A saved config's plain settings (a damaged or foreign file's other values left out)."""
    plain = (str, int, float, bool, type(None))
    return {k: v for k, v in config.items() if isinstance(k, str) and isinstance(v, plain)}


def _number(value, kind):
    """`value` as an int or float, or None if it is not a number (a damaged or foreign file)."""
    n = number(value)
    return None if n is None else kind(n)
