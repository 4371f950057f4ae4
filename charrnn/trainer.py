"""TrainConfig and the training loop: stateful batches, AdamW, warm-up + cosine decay, clipping,
evaluation, best/last checkpoints, exact resume. Yields events; never prints.

The loop, per step:
    x, y = batch k of the streams                 # (B, T) each; row b continues row b of batch k-1
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
from charrnn.data import StreamBatcher, check_fits
from charrnn.model import CharLSTM, State, detach_state
from charrnn.runs import RunDir


@dataclass
class TrainConfig:
    """How to train; budgets (steps, epochs, time) are totals for the run, across resumes."""

    batch_size: int = 32
    seq_len: int = 128
    lr: float = 3e-3
    min_lr_frac: float = 0.05  # the learning rate decays to lr * min_lr_frac at the budget's end
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    val_frac: float = 0.1
    eval_every: int = 250  # steps between evaluations (and checkpoints)
    max_steps: int | None = None
    max_epochs: float | None = None
    max_time: float | None = None  # seconds of wall-clock training
    seed: int = 1337

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
    metrics: list[dict] = field(default_factory=list)


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
class DoneEvent:
    reason: str  # "steps", "epochs", "time" or "stopped"
    step: int
    best_val: float


class Trainer:
    """Owns the model, optimizer, batches and position of one run; `run()` trains and yields."""

    def __init__(self, model, vocab, train_ids, val_ids, config, run: RunDir, corpus: dict):
        c = config
        check_fits(len(train_ids), c.batch_size, c.seq_len, "training", _FIX_TRAIN)
        check_fits(len(val_ids), c.batch_size, c.seq_len, "validation", _FIX_VAL)
        self.model, self.vocab, self.config, self.run_dir = model, vocab, config, run
        self.corpus = corpus
        self.device = model.head.weight.device
        self.train_batches = StreamBatcher(train_ids, c.batch_size, c.seq_len)
        self.val_batches = StreamBatcher(val_ids, c.batch_size, c.seq_len)
        self.optimizer = _adamw(model, c)
        self.pos = Position()
        self.state: State = model.init_state(c.batch_size)
        self._stop = False

    # ------------------------------------------------------------------ state in, state out
    def payload(self) -> dict:
        """Everything needed to sample from, or resume, this run."""
        h, c = self.state
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
                "state_h": h.detach().cpu(),
                "state_c": c.detach().cpu(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            },
            "metrics": list(self.pos.metrics),
            "corpus": self.corpus,
        }

    def load_state(self, payload: dict) -> None:
        """Continue exactly where `payload` (a checkpoint of this run) stopped."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        t = payload["trainer"]
        self.pos = Position(
            step=t["step"],
            epoch=t["epoch"],
            batch=t["batch"],
            elapsed=t["elapsed"],
            best_val=t["best_val"],
            metrics=list(payload["metrics"]),
        )
        self.state = (t["state_h"].to(self.device), t["state_c"].to(self.device))
        torch.set_rng_state(t["rng_cpu"])
        if t.get("rng_cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(t["rng_cuda"])

    def request_stop(self) -> None:
        """Ask the loop to stop at the next step boundary, saving last.pt (safe from a signal)."""
        self._stop = True

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
        return warm * c.lr * (c.min_lr_frac + (1.0 - c.min_lr_frac) * cosine)

    def budget_spent(self) -> str | None:
        c = self.config
        if c.max_steps is not None and self.pos.step >= c.max_steps:
            return "steps"
        if (total := self.total_steps) is not None and self.pos.step >= total:
            return "epochs"
        if c.max_time is not None and self.pos.elapsed >= c.max_time:
            return "time"
        return None

    # ------------------------------------------------------------------ the loop
    def run(self) -> Iterator[StepEvent | EvalEvent | DoneEvent]:
        """Train until the budget is spent or a stop is requested; checkpoints on the way."""
        self.run_dir.rewrite_metrics(self.pos.metrics)
        last_eval, losses = self.pos.step, []
        tick = time.perf_counter()
        while (reason := self.budget_spent()) is None and not self._stop:
            start = time.perf_counter()
            loss = self.train_step()
            now = time.perf_counter()
            self.pos.elapsed += now - tick  # wall clock: evaluations and saves count too
            tick = now
            chars_per_s = self.config.batch_size * self.config.seq_len / max(now - start, 1e-9)
            losses.append(loss)
            yield StepEvent(self.pos.step, loss, self.lr(), self.progress(), chars_per_s)
            if self.pos.step % self.config.eval_every == 0 and not self._stop:
                yield self._evaluate_and_save(sum(losses) / len(losses))
                last_eval, losses = self.pos.step, []
        if self._stop:
            checkpoint.save(self.payload(), self.run_dir.last)
            yield DoneEvent("stopped", self.pos.step, self.pos.best_val)
            return
        if last_eval != self.pos.step or not self.run_dir.last.is_file():
            train_loss = sum(losses) / len(losses) if losses else math.nan
            yield self._evaluate_and_save(train_loss)
        yield DoneEvent(reason, self.pos.step, self.pos.best_val)

    def train_step(self) -> float:
        """One optimizer step on the next batch of every stream; returns its loss in nats."""
        if self.pos.batch == 0:  # a new epoch restarts every stream from the beginning
            self.state = self.model.init_state(self.config.batch_size)
        x, y = self.train_batches[self.pos.batch]  # (B, T), (B, T)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        self.model.train()
        loss, state = self.model.loss(x, y, self.state)
        self.state = detach_state(state)  # carried to the next batch, cut from this graph
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.pos.step += 1
        self.pos.batch += 1
        if self.pos.batch == len(self.train_batches):
            self.pos.epoch, self.pos.batch = self.pos.epoch + 1, 0
        return loss.item()

    def _evaluate_and_save(self, train_loss: float) -> EvalEvent:
        val = evaluate(self.model, self.val_batches)
        improved = val < self.pos.best_val
        if improved:
            self.pos.best_val = val
        record = {
            "step": self.pos.step,
            "epoch": round(self.pos.epoch + self.pos.batch / len(self.train_batches), 4),
            "elapsed": round(self.pos.elapsed, 2),
            "train_loss": round(train_loss, 5),
            "val_loss": round(val, 5),
            "val_bpc": round(val / math.log(2), 5),
            "lr": self.lr(),
        }
        self.pos.metrics.append(record)
        payload = self.payload()
        checkpoint.save(payload, self.run_dir.last)
        if improved:
            checkpoint.save(payload, self.run_dir.best)
        self.run_dir.append_metrics(record)
        return EvalEvent(record, improved)


@torch.no_grad()
def evaluate(model: CharLSTM, batches: StreamBatcher) -> float:
    """Mean nats per character over every target of the split, with state carried throughout."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    state, total, count = None, 0.0, 0
    for x, y, tail in batches.eval_chunks():
        if tail:  # the leftover row continues the last stream
            state = (state[0][:, -1:].contiguous(), state[1][:, -1:].contiguous())
        logits, state = model(x.to(device), state)  # (B, t, V)
        total += F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), reduction="sum")
        count += y.numel()
    model.train(was_training)
    return float(total) / count


def _adamw(model: CharLSTM, c: TrainConfig) -> torch.optim.AdamW:
    # Decay weight matrices only: shrinking biases (e.g. the forget-gate bias) would fight the init.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": c.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=c.lr, betas=(0.9, 0.99))


_FIX_TRAIN = "use a smaller --batch-size or --seq-len, or more text"
_FIX_VAL = "use a smaller --batch-size or --seq-len, a larger --val-frac, or more text"
