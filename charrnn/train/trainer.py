"""TrainConfig and the training loop: stateful batches, AdamW, warm-up + cosine decay, clipping,
evaluation, best/last checkpoints, exact resume. Yields events; never prints.

The loop, per step:
    x, y = batch k of the streams                 # (B, T) each; row b continues row b of batch k-1
    state = restart a few streams at random       # cold starts mid-text: see TrainConfig
    logits, state = model(x, state)               # state carried in from the previous batch
    state = detach(state)                         # truncated BPTT: keep the values, cut the graph
    loss.backward(); clip; optimizer.step()
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from charrnn import checkpoint
from charrnn.errors import CheckpointError, TrainingError
from charrnn.model.network import (
    CharRNN,
    State,
    detach_state,
    map_state,
    restart_streams,
    state_from_list,
    state_to_list,
)
from charrnn.model.trained import Model
from charrnn.runs import is_evaluation
from charrnn.text.data import StreamBatcher, check_fits, check_vocab
from charrnn.threads import ThreadTuner, timed, tuned_threads
from charrnn.train import coldstart
from charrnn.train.distributed import SINGLE, Dist
from charrnn.train.evaluate import evaluate

# Characters trained between evaluations by default: an evaluation costs ~10% of that much
# training, where every 250 steps of 32x32 (the old default) spent a sixth of a short budget.
EVAL_CHARS = 1 << 20
# ... but at least this often an epoch (start.py): on a text of 40,000 characters a million
# characters are 25 epochs, and the model has learned the text by heart long before an
# evaluation would see its best.
MIN_EVALS_PER_EPOCH = 1


@dataclass
class TrainConfig:
    """How to train; budgets (steps, epochs, time) are totals for the run, across resumes."""

    batch_size: int  # streams side by side (B); these three have their defaults in presets.py
    seq_len: int  # characters per stream per step: the backprop window (T)
    lr: float  # peak learning rate
    min_lr_frac: float = 0.05  # the learning rate decays to lr * min_lr_frac at the budget's end
    warmup_steps: int = 50
    weight_decay: float = 0.01  # of the weight matrices, not the biases; presets set theirs
    grad_clip: float = 1.0
    val_frac: float = 0.1
    # Evaluate on at most this many characters from the start of the validation split: enough to
    # rank checkpoints, and an evaluation of a 1 GB corpus's 100 MB split would take an hour.
    max_val_chars: int = 250_000
    # Steps between evaluations (and checkpoints); None: about every EVAL_CHARS characters trained.
    eval_every: int | None = None
    max_steps: int | None = None
    max_epochs: float | None = None
    max_time: float | None = None  # seconds of wall-clock training
    # Evaluate (and save best.pt) before the first step: a run from a trained model (--init-from)
    # must be able to keep that model as it was, if training on the new text never beats it.
    eval_at_start: bool = False
    # Early stopping: stop after this many evaluations in a row without a new best validation
    # loss (best.pt holds the best); None: train to the budget.
    patience: int | None = None
    seed: int = 1337
    max_rollbacks: int = 3  # give up after this many rollbacks in a row without a good checkpoint
    # Each step, each stream restarts from a zero state with this chance, wherever it is in the
    # text. Why: sampling, scoring and validation all begin from a zero state, but stateful
    # training carries the state through a whole epoch, so without these cold starts the model
    # meets a zero state only at epoch boundaries, forgets how to recover from one, and from a
    # cold start falls into a runaway state that writes garbage (coldstart.py measures it).
    cold_start_prob: float = 1 / 64
    cold_start_checks: int = 256  # positions the cold-start check reads at each evaluation
    # Training-loss records in metrics per evaluation interval (plus one at every evaluation):
    # four evaluations in a short run are too few points for a learning curve, and the records
    # are small (every one is kept in the checkpoint: ~150 bytes, 16 per million characters).
    records_per_eval: int = 16

    @property
    def steps_per_eval(self) -> int:
        return self.eval_every or max(1, round(EVAL_CHARS / (self.batch_size * self.seq_len)))

    @property
    def steps_per_record(self) -> int:
        return max(1, self.steps_per_eval // max(self.records_per_eval, 1))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**d)


@dataclass
class Position:
    """Where training is: restored exactly on resume."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batch: int = 0  # next batch of the epoch
    elapsed: float = 0.0  # seconds of training so far, across resumes
    best_val: float = math.inf
    lr_scale: float = 1.0  # halved by each rollback after the loss blew up
    metrics: list[dict] = field(default_factory=list)
    # Training loss summed over the steps since the last training record, and their count: saved,
    # so that after a resume the next record covers the same steps as in an uninterrupted run.
    window_loss: float = 0.0
    window_steps: int = 0
    # The loss of the run's first step, before any update: a run started from a trained model
    # whose vocabulary grew (--init-from) starts far worse than guessing on its new characters,
    # and that is where it starts, not a blow-up (train_step's limit).
    start_loss: float | None = None


@dataclass
class StepEvent:
    step: int
    loss: float  # nats per character on this batch
    lr: float
    progress: float  # 0..1 of the budget (0 when there is none)
    chars_per_s: float


@dataclass
class EvalEvent:
    record: dict  # the metrics.jsonl line
    improved: bool  # best.pt was updated


@dataclass
class RollbackEvent:
    reason: str  # what went wrong, e.g. "the loss became nan at step 812"
    to_step: int  # the checkpoint training went back to
    lr_scale: float  # the learning rate is now this share of the schedule's


@dataclass
class DoneEvent:
    reason: str  # "steps", "epochs", "time" or "stopped"
    step: int
    best_val: float


class Trainer:
    """Owns the model, optimizer, batches and position of one run; `run()` trains and yields."""

    def __init__(self, model, vocab, train_ids, val_ids, config, run, corpus, dist: Dist = SINGLE):
        c, d = config, dist
        check_vocab(vocab)
        streams, val_ids = c.batch_size * d.world, val_ids[: c.max_val_chars]
        check_fits(len(train_ids), streams, c.seq_len, "training", _FIX_TRAIN)
        check_fits(len(val_ids), streams, c.seq_len, "validation", _FIX_VAL)
        self.model, self.vocab, self.config, self.run_dir = model, vocab, config, run
        self.corpus, self.dist = corpus, dist
        self.device = model.device
        self.train_batches = StreamBatcher(train_ids, c.batch_size, c.seq_len, d.rank, d.world)
        self.val_batches = StreamBatcher(val_ids, c.batch_size, c.seq_len, d.rank, d.world)
        self.trained = Model(model, vocab)  # the model whole, as evaluation and samples read it
        self.net = _data_parallel(model, d)  # what the training step calls
        self.optimizer = _adamw(model, c)
        self.pos = Position()
        self.cold_rng = torch.Generator().manual_seed(c.seed + 7919 * d.rank)  # _cold_starts
        self.state: State = model.init_state(c.batch_size)
        self._stop = False  # agreed by every rank (set only between steps when distributed)
        self._requested = False  # asked for on this rank (by a signal)
        self._rollbacks = 0  # in a row, since the last good checkpoint
        # Fit torch's thread count to the cores free now (threads.py); False keeps the count the
        # caller set (a user's OMP_NUM_THREADS, a bench's fixed count). Ranks of a distributed
        # run each have their share of the cores already.
        self.tune_threads = self.device.type == "cpu" and not d.active
        self.tuner: ThreadTuner | None = None  # while run() runs, if tune_threads
        self.size_choice = None  # what start_run's --size stood for (a presets.Choice)
        self.notes: list[str] = []  # what run setup chose for this text and why (start.py)
        # The run this one was started from (start_run's init_from), kept in every checkpoint.
        self.origin: dict | None = None
        # Write last.pt before the first step even where one is there: resumed from another file
        # (best.pt beside a damaged last.pt, see start.resume_run), which last.pt must then hold.
        self.save_last_first = False
        # Far worse than guessing uniformly: the optimisation has blown up, not merely stalled.
        self.explode_at = 2.0 * math.log(max(len(vocab), 2)) + 5.0

    # ------------------------------------------------------------------ state in, state out
    def payload(self) -> dict:
        """Everything needed to sample from, or resume, this run (a collective when distributed:
        every rank calls it, and the state of all B x world streams is gathered)."""
        state = map_state(self.state, lambda s: self.dist.all_gather(s.detach(), dim=1))
        rng = torch.get_rng_state()
        return {
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "vocab": self.vocab.to_list(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": {
                "step": self.pos.step,
                "epoch": self.pos.epoch,
                "batch": self.pos.batch,
                "elapsed": self.pos.elapsed,
                "best_val": self.pos.best_val,
                "lr_scale": self.pos.lr_scale,
                "window_loss": self.pos.window_loss,
                "window_steps": self.pos.window_steps,
                "start_loss": self.pos.start_loss,
                "state": state_to_list(state),  # the streams of every rank, in rank order
                "world_size": self.dist.world,
                "rng_cpu": rng,  # rank 0's; every rank's below (dropout masks differ by rank)
                "rng_ranks": self.dist.all_gather(rng.unsqueeze(0), dim=0),
                "rng_cold": self.dist.all_gather(self.cold_rng.get_state().unsqueeze(0), dim=0),
                "rng_cuda": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            },
            "metrics": list(self.pos.metrics),
            "corpus": self.corpus,
            **({"origin": self.origin} if self.origin is not None else {}),
        }

    def load_state(self, payload: dict) -> None:
        """Continue exactly where `payload` (a checkpoint of this run) stopped."""
        try:
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            t = payload["trainer"]
            self.pos = Position(
                step=int(t["step"]),
                epoch=int(t["epoch"]),
                batch=int(t["batch"]),
                elapsed=float(t["elapsed"]),
                best_val=float(t["best_val"]),
                lr_scale=float(t.get("lr_scale", 1.0)),
                metrics=list(payload["metrics"]),
                window_loss=float(t.get("window_loss", 0.0)),  # absent before training records
                window_steps=int(t.get("window_steps", 0)),
                start_loss=_optional_float(t.get("start_loss")),  # absent in older checkpoints
            )
            world = int(t.get("world_size", 1))
            if world != self.dist.world:
                raise CheckpointError(
                    f"run {self.run_dir.name!r} was trained by {world} process(es); resume it "
                    f"with the same number (torchrun --nproc_per_node ... for more than one)"
                )
            b = self.config.batch_size  # this rank's streams: rows rank*B .. rank*B+B-1
            rows = slice(self.dist.rank * b, (self.dist.rank + 1) * b)
            state = state_from_list(self.model, t["state"], rows)
            if any(s.shape[1] != b for s in state):
                raise ValueError("the carried state does not fit the batch size")
            if not 0 <= self.pos.batch < len(self.train_batches):
                raise ValueError(f"batch {self.pos.batch} is outside the epoch")
            ranks = t.get("rng_ranks")
            torch.set_rng_state((t["rng_cpu"] if ranks is None else ranks[self.dist.rank]).clone())
            if t.get("rng_cold") is not None:  # absent before cold starts were trained
                self.cold_rng.set_state(t["rng_cold"][self.dist.rank].clone())
            if t.get("rng_cuda") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(t["rng_cuda"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(f"the checkpoint's training state is broken: {e}") from None
        self.state = state

    def request_stop(self) -> None:
        """Ask the loop to stop at the next step boundary, saving last.pt (safe from a signal)."""
        self._requested = True
        if not self.dist.active:
            self._stop = True

    def _stopping(self) -> bool:
        """Whether a stop was asked for: what a long computation inside a step boundary (an
        evaluation, the cold-start check) looks at between its pieces of work."""
        return self._stop

    def _agree(self) -> None:
        """Distributed: every rank takes the mean clock and stops if any rank was asked to, so all
        ranks make the same decisions (a rank that left a collective alone would hang the rest)."""
        if self.dist.active:
            elapsed, asked = self.dist.all_sum([self.pos.elapsed, float(self._requested)])
            self.pos.elapsed, self._stop = elapsed / self.dist.world, asked > 0

    # ------------------------------------------------------------------ budget and schedule
    @property
    def total_steps(self) -> int | None:
        c, per_epoch = self.config, len(self.train_batches)
        limits = [c.max_steps] if c.max_steps is not None else []
        if c.max_epochs is not None:
            limits.append(math.ceil(c.max_epochs * per_epoch))
        return min(limits) if limits else None

    def progress(self) -> float:
        """Fraction of the budget used, by whichever limit is nearest."""
        fractions = []
        if (total := self.total_steps) is not None:
            fractions.append(self.pos.step / max(total, 1))
        if self.config.max_time is not None:
            fractions.append(self.pos.elapsed / max(self.config.max_time, 1e-9))
        return min(max(fractions, default=0.0), 1.0)

    def lr(self) -> float:
        """Linear warm-up, then cosine decay to lr * min_lr_frac at the end of the budget."""
        c = self.config
        warm = min(1.0, (self.pos.step + 1) / max(c.warmup_steps, 1))
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress()))
        return warm * c.lr * self.pos.lr_scale * (c.min_lr_frac + (1 - c.min_lr_frac) * cosine)

    def budget_spent(self) -> str | None:
        c = self.config
        if c.max_steps is not None and self.pos.step >= c.max_steps:
            return "steps"
        if (total := self.total_steps) is not None and self.pos.step >= total:
            return "epochs"
        if c.max_time is not None and self.pos.elapsed >= c.max_time:
            return "time"
        if c.patience is not None and self.evals_since_best() >= c.patience:
            return "patience"
        return None

    def evals_since_best(self) -> int:
        """Evaluations after the one with the best validation loss (0: the last was the best)."""
        losses = [r["val_loss"] for r in self.pos.metrics if is_evaluation(r)]
        return len(losses) - 1 - losses.index(min(losses)) if losses else 0

    # ------------------------------------------------------------------ the loop
    def run(self) -> Iterator[StepEvent | EvalEvent | RollbackEvent | DoneEvent]:
        """Train until the budget is spent or a stop is requested; checkpoints on the way."""
        if self.dist.is_main:
            try:  # a library caller need not make the folder first
                self.run_dir.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise TrainingError(f"cannot create {self.run_dir.path}: {e.strerror}") from None
            self.run_dir.rewrite_metrics(self.pos.metrics)
        # From step 0 on there is a state to go back to (rank 0's disk decides, for every rank).
        missing = self.dist.is_main and not self.run_dir.last.is_file()
        if self.save_last_first or self.dist.all_sum([float(missing)])[0]:
            self._save(self.run_dir.last)
        with tuned_threads(self.tune_threads) as self.tuner:
            yield from self._loop()

    def _loop(self) -> Iterator[StepEvent | EvalEvent | RollbackEvent | DoneEvent]:
        last_eval, losses = self.pos.step, []
        evaluated = any(is_evaluation(r) for r in self.pos.metrics)
        at_start = self.config.eval_at_start and self.pos.step == 0 and not evaluated
        if at_start and (event := self._evaluate_and_save(math.nan)):  # no training loss yet
            yield event
        tick = time.perf_counter()
        while True:
            self._agree()
            if (reason := self.budget_spent()) is not None or self._stop:
                break
            start = time.perf_counter()
            try:
                with timed(self.tuner):
                    loss = self.train_step()
            except _Diverged as e:
                yield self._roll_back(str(e))
                losses = []
                continue
            now = time.perf_counter()
            self.pos.elapsed += now - tick  # wall clock: evaluations and saves count too
            tick = now
            chars = self.config.batch_size * self.config.seq_len * self.dist.world
            chars_per_s = chars / max(now - start, 1e-9)
            losses.append(loss)
            self.pos.window_loss += loss
            self.pos.window_steps += 1
            step, c = self.pos.step, self.config
            if step % c.steps_per_record == 0 or step % c.steps_per_eval == 0:
                self._record_training()  # at every evaluation too: its checkpoint ends a window
            yield StepEvent(self.pos.step, loss, self.lr(), self.progress(), chars_per_s)
            if self.pos.step % self.config.steps_per_eval == 0 and not self._stop:
                if event := self._evaluate_and_save(sum(losses) / len(losses)):
                    yield event
                last_eval, losses = self.pos.step, []
        if not self._stop and self.pos.window_steps:
            self._record_training()  # the budget's last steps, saved by the evaluation below
        if not self._stop and last_eval != self.pos.step:
            train_loss = sum(losses) / len(losses) if losses else math.nan
            if event := self._evaluate_and_save(train_loss):
                yield event
        if self._stop:  # also when the stop came during the evaluation just above
            self._save(self.run_dir.last)
            yield DoneEvent("stopped", self.pos.step, self.pos.best_val)
            return
        yield DoneEvent(reason, self.pos.step, self.pos.best_val)

    def train_step(self) -> float:
        """One optimizer step on the next batch of every stream; returns its loss in nats."""
        if self.pos.batch == 0:  # a new epoch restarts every stream from the beginning
            self.state = self.model.init_state(self.config.batch_size)
        self.state = restart_streams(self.state, self._cold_starts())
        x, y = self.train_batches[self.pos.batch]  # (B, T), (B, T)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        self.model.train()
        logits, state = self.net(x, self.state)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        self.state = detach_state(state)  # carried to the next batch, cut from this graph
        value = loss.item()
        if self.dist.active:  # the mean over ranks: every rank must agree to roll back
            value = self.dist.all_sum([value])[0] / self.dist.world
        if self.pos.start_loss is None and math.isfinite(value):
            self.pos.start_loss = value
        if not math.isfinite(value) or value > max(self.explode_at, self.pos.start_loss + 5.0):
            raise _Diverged(f"the loss became {value:.4g} at step {self.pos.step + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if not math.isfinite(norm := float(norm)):
            raise _Diverged(f"the gradient norm became {norm} at step {self.pos.step + 1}")
        self.optimizer.step()
        self.pos.step += 1
        self.pos.batch += 1
        if self.pos.batch == len(self.train_batches):
            self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0
        return value

    def _cold_starts(self) -> torch.Tensor:
        """(B,) bool: this rank's streams that restart cold at this step. Drawn from the run's
        own generator, whose state the checkpoint keeps, so a resumed run restarts the same ones
        (and nothing else drawing random numbers in the process changes them)."""
        c = self.config
        draws = torch.rand(c.batch_size, generator=self.cold_rng)
        return (draws < c.cold_start_prob).to(self.device)

    def _save(self, *paths) -> None:
        """Write the payload to each path (rank 0 only; every rank helps gather it)."""
        payload = self.payload()
        if self.dist.is_main:
            for path in paths:
                if path is not None:
                    checkpoint.save(payload, path)

    def _roll_back(self, reason: str) -> RollbackEvent:
        """Go back to last.pt with half the learning rate; give up after repeated failures."""
        self._rollbacks += 1
        if self._rollbacks > self.config.max_rollbacks:
            raise TrainingError(
                f"training diverged {self._rollbacks} times in a row ({reason}), even at "
                f"{self.pos.lr_scale:g} of the learning rate; {self.run_dir.last} holds the last "
                "good state: try a lower --lr, or check the corpus"
            )
        elapsed, scale = self.pos.elapsed, self.pos.lr_scale / 2
        self.load_state(checkpoint.load(self.run_dir.last))
        self.pos.elapsed, self.pos.lr_scale = elapsed, scale  # the clock does not go back
        if self.dist.is_main:  # drop the training records made since last.pt: redone from it
            self.run_dir.rewrite_metrics(self.pos.metrics)
        return RollbackEvent(reason, self.pos.step, scale)

    def _chars_seen(self) -> int:
        """Characters trained on so far, by every rank together."""
        c = self.config
        return self.pos.step * c.batch_size * c.seq_len * self.dist.world

    def _record_training(self) -> None:
        """Add a training record to the metrics: the mean loss of the steps since the last one."""
        p = self.pos
        loss = p.window_loss / p.window_steps
        record = {
            "kind": "train",
            "step": p.step,
            "epoch": round(p.epoch + p.batch / len(self.train_batches), 4),
            "elapsed": round(p.elapsed, 2),
            "chars": self._chars_seen(),
            "steps": p.window_steps,  # the steps averaged: those after the previous record
            "train_loss": round(loss, 5),
            "train_bpc": round(loss / math.log(2), 5),
            "lr": self.lr(),
        }
        p.metrics.append(record)
        p.window_loss, p.window_steps = 0.0, 0
        if self.dist.is_main:
            self.run_dir.append_metrics(record)

    def _evaluate_and_save(self, train_loss: float) -> EvalEvent | None:
        """Evaluate, then write last.pt (and best.pt if better); None if a stop cut it short."""
        result = evaluate(self.trained, self.val_batches, self._stopping, self.dist)
        if result is None:
            return None
        val = result.loss
        ids, starts = self.val_batches.ids, self.config.cold_start_checks
        cold = coldstart.check(
            self.trained, ids, result, starts, dist=self.dist, should_stop=self._stopping
        )
        if self._stop:  # asked to stop during the check: the evaluation as a whole is cut short
            return None
        improved = val < self.pos.best_val
        if improved:
            self.pos.best_val = val
        record = {
            "kind": "eval",
            "step": self.pos.step,
            "epoch": round(self.pos.epoch + self.pos.batch / len(self.train_batches), 4),
            "elapsed": round(self.pos.elapsed, 2),
            "chars": self._chars_seen(),
            # null where no step was trained since the last evaluation (NaN is not JSON)
            "train_loss": round(train_loss, 5) if math.isfinite(train_loss) else None,
            "val_loss": round(val, 5),
            "val_bpc": round(val / math.log(2), 5),
            "val_worst": round(result.worst, 5),  # the worst stream's mean: a runaway shows here
            "val_runaway_streams": result.runaway_streams,
            "lr": self.lr(),
            "cold_start": cold.to_dict() if cold is not None else None,
        }
        self.pos.metrics.append(record)
        self._save(self.run_dir.last, self.run_dir.best if improved else None)
        if self.dist.is_main:
            self.run_dir.append_metrics(record)
        self._rollbacks = 0
        return EvalEvent(record, improved)


def _data_parallel(model: CharRNN, d: Dist):
    """The model as training calls it: wrapped by DDP (gradients averaged over ranks) if needed."""
    if not d.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = model.device
    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _adamw(model: CharRNN, c: TrainConfig) -> torch.optim.AdamW:
    # Decay weight matrices only: shrinking biases (e.g. the forget-gate bias) would fight the init.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": c.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    try:  # the fused kernel: one pass over all parameters, ~3x faster than the loop on CPU
        return torch.optim.AdamW(groups, lr=c.lr, betas=(0.9, 0.99), fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without it
        return torch.optim.AdamW(groups, lr=c.lr, betas=(0.9, 0.99))


class _Diverged(Exception):
    """The loss or gradient blew up on this step (internal: turned into a rollback)."""


_FIX_TRAIN = "use a smaller --batch-size or --seq-len, or more text"
_FIX_VAL = "use a smaller --batch-size or --seq-len, a larger --val-frac, or more text"


def _optional_float(x) -> float | None:
    return None if x is None else float(x)
