"""The training loop: stateful batches, AdamW, warm-up + cosine decay, clipping, evaluation,
best/last checkpoints, exact resume. Yields events; never prints.

The loop, per step:
    x, y = batch k of the streams                 # (B, T) each; row b continues row b of batch k-1
    state = restart a few streams at random       # cold starts mid-text: see TrainConfig
    logits, state = model(x, state)               # state carried in from the previous batch
    state = detach(state)                         # truncated BPTT: keep the values, cut the graph
    loss.backward(); clip; optimizer.step()
and where the schedule has one (config.evaluates_at): evaluate, write last.pt (and best.pt if
better); under a time budget, as the budget's share for evaluations pays, in time for the final
one (evalplan.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from charrnn import checkpoint
from charrnn.devices import arithmetic
from charrnn.errors import CharRNNError, CheckpointError, RunError, TrainingError
from charrnn.model.network import (
    State,
    detach_state,
    float32_default,
    map_state,
    restart_streams,
    state_from_list,
    state_to_list,
)
from charrnn.model.trained import Model
from charrnn.runs import RunDir, is_evaluation
from charrnn.text.data import (
    StreamBatcher,
    char_counts,
    check_fits,
    check_vocab,
    fit_advice,
    split,
)
from charrnn.text.places import Places
from charrnn.threads import ThreadTuner, timed, tuned_threads
from charrnn.train import coldstart, evalplan, records, schedule
from charrnn.train.config import TrainConfig
from charrnn.train.distributed import SINGLE, Dist
from charrnn.train.evaluate import evaluate
from charrnn.train.events import DoneEvent, EvalEvent, Event, RollbackEvent, StepEvent
from charrnn.train.precision import step_arithmetic
from charrnn.train.state import Generators, Position, RunState

# A step's seconds now: the median of the last few. A time budget keeps that and the final
# evaluation's (scaled by how much slower steps got) from its end, so a lasting slowdown must
# count at once, but a stall of a step or two (the machine paused) must not end the run early.
PACE_STEPS = 9


class Trainer:
    """Trains one run from what it is at a step (a RunState, complete: see start.py) on `ids`, the
    whole text in the model's vocabulary (split by config.val_frac), writing into `run`.

    `save_last_first`: write last.pt before the first step even where one is there, as when
    resumed from another file (best.pt beside a damaged last.pt), which last.pt must then hold.
    `started`: when the command began, by `clock`: a time budget counts from there (None: run()).
    `files`: each file's label and length where the text is several files (EncodedCorpus.files),
    so that a note can say in which file something in the validation split is. `train_counts`:
    how often each id occurs in the training part, where the caller has counted it (else it is
    counted when first asked for: a pass over what may be gigabytes)."""

    def __init__(
        self,
        state: RunState,
        ids: torch.Tensor,
        run: RunDir,
        dist: Dist = SINGLE,
        save_last_first: bool = False,
        started: float | None = None,
        clock=time.perf_counter,
        files: Sequence[tuple[str, int]] = (),
        train_counts: list[int] | None = None,
    ):
        c, d, model, vocab = state.config, dist, state.model, state.vocab
        check_vocab(vocab)
        train_ids, val_ids = split(ids, c.val_frac)
        streams, val_ids = c.batch_size * d.world, val_ids[: c.max_val_chars]
        fix = fit_advice(len(ids), c.batch_size, c.seq_len, c.val_frac, d.world)
        check_fits(len(train_ids), streams, c.seq_len, "training", fix)
        check_fits(len(val_ids), streams, c.seq_len, "validation", fix)
        self.model, self.vocab, self.config, self.run_dir = model, vocab, c, run
        self.corpus, self.origin, self.dist = state.corpus, state.origin, dist
        self.device = model.device
        self.train_batches = StreamBatcher(train_ids, c.batch_size, c.seq_len, d.rank, d.world)
        self.val_batches = StreamBatcher(val_ids, c.batch_size, c.seq_len, d.rank, d.world)
        # the model whole, as evaluation and samples read it (and as a checkpoint restores it)
        self.trained = Model(model, vocab, (state.corpus or {}).get("char_counts"))
        # Where the validation split's characters are, to say where something is (_where): the
        # lines (or characters) of a text that is one file (a pipe, a built-in corpus's file, a
        # string), and of several files (a folder) which file too, where their lengths are known.
        sources = state.corpus.get("sources") or []
        self.one_text = not sources or (len(sources) == 1 and not os.path.isdir(sources[0]))
        nl = vocab.index.get("\n")  # a fine-tune's vocabulary may have it, its text not
        parts = [(None, len(ids))] if self.one_text else list(files)
        self._places = Places(ids, len(train_ids), nl, parts) if parts else None
        self._train_counts = train_counts
        self.net = d.wrap(model)  # what the training step calls
        # None: float32 all through. Evaluations read in it too (_precision). `precision_note`:
        # why it is float32 where `precision` would be bfloat16 ("" where it is not).
        self.autocast, self.precision_note = step_arithmetic(
            model, c.precision, c.batch_size, c.seq_len
        )
        self.optimizer = _adamw(model, c)
        self.cold_rng = torch.Generator().manual_seed(c.seed + 7919 * d.rank)  # _cold_starts
        self.pos = Position()
        self.streams: State = model.init_state(c.batch_size)  # this rank's carried state
        self._stop = False  # agreed by every rank (set only between steps when distributed)
        # Set where open_run's block ends: the run's folder is no longer locked, so a run() made
        # inside it and iterated after it must not write there (another trainer may own it now)
        self.released = False
        self._requested = False  # asked for on this rank (by a signal)
        # Told what an evaluation reads ("validation", "cold starts") at each of its looks for a
        # stop, a few a second: for a progress display (a wide model's takes minutes).
        self.on_evaluating: Callable[[str], None] | None = None
        self._rollbacks = 0  # in a row, since the last good checkpoint
        self._time_up = False  # an evaluation found the time left only for itself (_ends_after)
        # Fit torch's thread count to the cores free now (threads.py); False keeps the count the
        # caller set (a user's OMP_NUM_THREADS, a bench's fixed count). Ranks of a distributed
        # run each have their share of the cores already.
        self.tune_threads = self.device.type == "cpu" and not d.active
        self.tuner: ThreadTuner | None = None  # while run() runs, if tune_threads
        self.save_last_first = save_last_first
        # A previous run's files in the folder, which this run replaces (start's `replace`, the
        # command's --force): removed as run() begins to write, so that a start stopped before
        # then (Ctrl-C while the text is read) leaves that run as it was.
        self.replaces_run = False
        # best.pt lost or damaged (a resume found it so): the next evaluation writes it, better
        # than the loss recorded as best or not, so that the run's best.pt is a model again.
        self.replace_best = False
        self.clock, self.started, self._tick = clock, started, 0.0
        self.budget = evalplan.Unbounded(evalplan.whole(c, self.val_batches))  # run() plans one
        self._step_s = self._save_s = 0.0  # a step's seconds now (PACE_STEPS), a file's to write
        self._recent: deque[float] = deque(maxlen=PACE_STEPS)  # the last steps' seconds
        # Far worse than guessing uniformly: the optimisation has blown up, not merely stalled.
        self.explode_at = 2.0 * math.log(max(len(vocab), 2)) + 5.0
        # torch's generator as the run's dropout draws it: the run's own (seeded by its builder,
        # or its checkpoint's), in torch's place only while run() works, the caller's kept
        self._rng, self._rng_in_place = torch.get_rng_state(), False
        self.restore(state)

    # ------------------------------------------------------------------ the loop
    def run(self) -> Iterator[Event]:
        """Train until the budget is spent or a stop is requested; checkpoints on the way. torch's
        generator is the run's own while it trains, and the caller's at each event."""
        return self._with_own_rng(self._run())

    def _with_own_rng(self, events: Iterator[Event]) -> Iterator[Event]:
        """`events`, each made with the run's generator in torch's place, the caller's put back
        while the caller has it (whatever the caller draws leaves the run's draws as they were)."""
        try:
            while True:
                with self._own_rng():
                    event = next(events, None)
                if event is None:
                    return
                yield event
        finally:  # closed early (a loop left with break): its clean-up draws as the run
            with self._own_rng():
                events.close()

    @contextlib.contextmanager
    def _own_rng(self):
        """The run's generator in torch's place for the block (and float32_default's)."""
        caller = torch.get_rng_state()
        torch.set_rng_state(self._rng)
        self._rng_in_place = True
        try:
            with float32_default():
                yield
        finally:
            self._rng, self._rng_in_place = torch.get_rng_state(), False
            torch.set_rng_state(caller)

    def _run(self) -> Iterator[Event]:
        self._refuse_released()
        self._tick = self.clock() if self.started is None else self.started
        self.pos.ended = None  # a resumed run goes on
        self._kept = self.pos.step  # keep_every counts from here (a resume: from its step)
        if self.dist.is_main:
            try:  # a library caller need not make the folder first
                self.run_dir.path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise TrainingError(f"cannot create {self.run_dir.path}: {e.strerror}") from None
            if self.replaces_run:
                self.run_dir.remove_run_files()
                self.replaces_run = False
            self.run_dir.rewrite_metrics(self.pos.metrics)
        # From step 0 on there is a state to go back to (rank 0's disk decides, for every rank).
        missing = self.dist.is_main and not self.run_dir.last.is_file()
        if self.save_last_first or self.dist.all_sum([float(missing)])[0]:
            self._save()  # (timed: the final evaluation writes two such files)
        with tuned_threads(self.tune_threads) as self.tuner:
            if self.config.max_time is not None:  # its evaluations, from a probe of their cost
                with self._precision():  # as the evaluations will read
                    cost = evalplan.probe(self.trained, self.val_batches, self.clock, self.dist)
                cost.fixed = 2 * self._save_s
                self.budget = evalplan.plan(self.config, self.budget.size, cost, self.pos)
            yield from self._loop()

    def _loop(self) -> Iterator[Event]:
        """The run to its end; a step or an evaluation that blows up rolls back and goes on."""
        while True:
            try:
                yield from self._train_to_end()
                return
            except _Diverged as e:  # the run goes on from last.pt, at half the rate
                yield self._roll_back(str(e))

    def _train_to_end(self) -> Iterator[Event]:
        c, pos = self.config, self.pos
        at_start = c.eval_at_start and pos.step == 0 and self.last_evaluated() is None
        if at_start and (event := self._evaluate_and_save(math.nan)):  # no training loss yet
            yield event
        # An evaluation that a stop cut short is made first on resume, as the run would have made
        # it; the run's last one, where the budget ends here, is the final evaluation below.
        if pos.eval_due and self.budget_spent(final=True):
            pos.eval_due = False
        elif pos.eval_due and (event := self._evaluate_and_save(self._train_loss())):
            yield event
        last_eval = self.last_evaluated()  # a resume after a stop in the final evaluation makes it
        while True:
            self._refuse_released()
            self._advance()
            self._agree()
            reason = self.budget_spent(final=True) or ("time" if self._time_up else None)
            if reason is not None or self._stop:
                break
            start = self.clock()
            with timed(self.tuner):
                loss = self.train_step()
            took = self.clock() - start
            self._recent.append(took)
            self._step_s = statistics.median(self._recent)
            self.budget.stepped(self._step_s)
            pos.eval_window_loss += loss
            pos.eval_window_steps += 1
            due = c.evaluates_at(self.pos.step) and self.budget.due(self.pos.elapsed)
            pos.eval_due = due  # saved as such if a stop cuts the evaluation short
            self._add_to_window(loss, ends=due)
            chars_per_s = c.batch_size * c.seq_len * self.dist.world / max(took, 1e-9)
            epoch, elapsed = records.epochs(self.pos, len(self.train_batches)), self.pos.elapsed
            yield StepEvent(
                self.pos.step, loss, self.lr(), self.progress(), chars_per_s, epoch, elapsed
            )
            if due and not self._stop and (event := self._evaluate_and_save(self._train_loss())):
                last_eval = self.pos.step
                yield event
        if not self._stop and self.pos.window_steps:
            self._record_training()  # the budget's last steps, saved by the evaluation below
        final = not self._stop and last_eval != self.pos.step  # steps since the last evaluation
        self.pos.ended = reason  # for the files written from here: how the run ended
        if final and (event := self._evaluate_and_save(self._train_loss(), final=True)):
            last_eval = self.pos.step
            yield event
        # Stopped: before the budget was spent or before its final evaluation was made (also when
        # the stop cut that evaluation short). A stop after it, as the run ends, finds it whole.
        if self._stop and (reason is None or last_eval != self.pos.step):
            reason = self.pos.ended = "stopped"
            self._save()
        elif not final:  # the last step's evaluation wrote last.pt before the run knew it ended
            self._save()
        yield DoneEvent(reason, self.pos.step, self.pos.best_val)

    def train_step(self) -> float:
        """One optimizer step on the next batch of every stream; returns its loss in nats."""
        if self.pos.batch == 0:  # a new epoch restarts every stream from the beginning
            self.streams = self.model.init_state(self.config.batch_size)
        self.streams = restart_streams(self.streams, self._cold_starts())
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        self.model.train()
        loss, state = self._batch_loss(self.streams)
        self.streams = detach_state(state)  # carried to the next batch, cut from this graph
        value = self._over_ranks(loss.item())
        if self.pos.start_loss is None and math.isfinite(value):
            self.pos.start_loss = value
        if self._exploded(value):
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

    def _batch_loss(self, streams: State) -> tuple[torch.Tensor, State]:
        """The loss on the batch the next step trains on, read from `streams`, in the step's
        arithmetic: (the scalar loss, the streams' state after the batch)."""
        x, y = self.train_batches[self.pos.batch]  # (B, T), (B, T)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with self._precision():
            logits, state = self.net(x, streams)  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten()), state

    def _over_ranks(self, loss: float) -> float:
        """The mean of `loss` over the ranks: every rank must agree to roll back."""
        return self.dist.all_sum([loss])[0] / self.dist.world if self.dist.active else loss

    def _exploded(self, loss: float) -> bool:
        """Whether a training loss says the weights blew up: not a number, or far above where
        the run began (on a batch of the training text, which holds every character it has)."""
        return not math.isfinite(loss) or loss > max(self.explode_at, self.pos.start_loss + 5.0)

    @torch.no_grad()
    def _sound(self) -> str | None:
        """Why the weights are not fit to save, read on the batch the next step trains on (as a
        step reads it, by _exploded), or None. A step's loss is read before its update, so an
        update that blew the weights up shows only at the next step: an evaluation (the last of
        a run, or the first, which any model passes as best) must not save them first."""
        if self.pos.start_loss is None:  # no step yet: the weights are those the run began with
            return None
        batch = self.config.batch_size
        streams = self.model.init_state(batch) if self.pos.batch == 0 else self.streams
        self.model.eval()  # no dropout: it would draw from the run's random state
        loss = self._over_ranks(self._batch_loss(streams)[0].item())
        if self._exploded(loss):
            return f"the loss became {loss:.4g} after step {self.pos.step}"
        return None

    def _precision(self):
        """The training step's arithmetic (autocast to bfloat16 where the CPU has it, or none),
        in which evaluations read too: on the AMD machine with AVX-512 BF16, 1.6-2.1x faster than in
        float32, the loss about 0.0002 nats from float32's (docs/evaluation-cost.md)."""
        return arithmetic(self.device, self.autocast)

    def _cold_starts(self) -> torch.Tensor:
        """(B,) bool: this rank's streams that restart cold at this step. Drawn from the run's
        own generator, whose state the checkpoint keeps, so a resumed run restarts the same ones
        (and nothing else drawing random numbers in the process changes them)."""
        c = self.config
        draws = torch.rand(c.batch_size, generator=self.cold_rng)
        return (draws < c.cold_start_prob).to(self.device)

    def _evaluate_and_save(self, train_loss: float, final: bool = False) -> EvalEvent | None:
        """Evaluate, then write last.pt (and best.pt if better); None if a stop cut it short.
        `final`: the run ends after it (one that ends by its patience or a limit is found out)."""
        if blown := self._sound():
            raise _Diverged(blown)
        size, t0 = self.budget.size, self.clock()
        batches, stop, dist = self.val_batches, self._polled("validation split"), self.dist
        with self._precision():
            result = evaluate(
                self.trained, batches, stop, dist, streams=size.streams, chars=size.chars
            )
        if result is None:
            return None
        if not math.isfinite(result.loss):  # what _sound's batch did not show
            raise _Diverged(f"the validation loss became {result.loss:.4g} at step {self.pos.step}")
        t1, ids = self.clock(), self.val_batches.ids
        improved = result.loss < self.pos.best_val or self.replace_best
        ends, time_up = self._ends_after(result.loss, t1 - t0)
        checked = self.budget.check_due(self.progress(), final or ends, t1 - t0)
        # every rank alike (the check is a collective; the loop ends on every rank or none)
        agreed = dist.all_sum([float(checked), float(time_up)], self.device)
        checked, self._time_up = agreed[0] > 0, agreed[1] > 0
        cold = None
        if checked:
            with self._precision():
                polled = self._polled("cold starts")
                cold = coldstart.check(
                    self.trained, ids, result, size.starts, dist=dist, should_stop=polled
                )
        if self._stop:  # asked to stop during the check: the evaluation as a whole is cut short
            return None
        t2 = self.clock()
        if improved:
            self.pos.best_val = result.loss
        self._advance()  # the record and the checkpoint count the evaluation's time
        per_epoch, chars, lr = len(self.train_batches), self._chars_seen(), self.lr()
        cost = {"val_chars": size.streams * size.chars * dist.world, "eval_seconds": t2 - t0}
        where = {**self._where(result.unlike_at), "new_chars": self._new_in(result.unlike_at)}
        record = records.evaluation(
            self.pos, per_epoch, chars, lr, train_loss, result, cold, cost, where
        )
        if self.replace_best:  # the best before it is lost with the old best.pt
            record["best_restarted"] = True
        self.pos.metrics.append(record)
        self.pos.eval_window_loss, self.pos.eval_window_steps, self.pos.eval_due = 0.0, 0, False
        self._save(best=improved)
        self._keep_a_copy()
        self.replace_best = False
        if self.dist.is_main:
            self.run_dir.append_metrics(record)
        took = self.dist.all_sum([t1 - t0, t2 - t1, self.clock() - t2])  # every rank plans alike
        read_s, check_s, save_s = (x / self.dist.world for x in took)
        self.budget.measured(self.pos.elapsed, read_s, check_s if checked else None, save_s)
        self._rollbacks = 0
        return EvalEvent(record, improved)

    def _where(self, spans: list[tuple[int, int]]) -> dict[str, list]:
        """Where characters start .. end-1 of the validation split are, for each (start, end) of
        `spans` (records.evaluation): in a text of one file its first and last line (1-based), or
        character where it has no line breaks; in several files, which file as well."""
        if self._places is None or not spans:
            return {}
        places = self._places.where(self.val_batches.ids, spans)
        if places[0].file is None:  # one text
            key = "lines" if places[0].unit == "line" else "chars"
            return {key: [[p.first, p.last] for p in places]}
        return {"files": [[p.file, p.unit, p.first, p.last] for p in places]}

    def _new_in(self, spans: list[tuple[int, int]]) -> str:
        """The characters new to the model a fine-tune started from (its base lacked them) that
        characters start .. end-1 of the validation split hold, for each (start, end) of `spans`:
        a stream far worse than the rest may owe it to them, not yet learned, not to its text."""
        base = (self.origin or {}).get("vocab_size")
        if not isinstance(base, int) or not spans:
            return ""
        ids = self.val_batches.ids
        held = {int(t) for i, j in spans for t in ids[i:j].unique() if t >= base}
        return "".join(self.trained.vocab.chars[t] for t in sorted(held))

    def _ends_after(self, loss: float, read_s: float) -> tuple[bool, bool]:
        """Whether the run ends after the evaluation under way, whose read found `loss` in
        `read_s` seconds: by a limit, its patience counting this evaluation; and whether by the
        time: what is left of the budget, less the rest of this evaluation (as predicted), is what
        will be kept for a step and the final one once this one is measured (so the loop ends
        after this one, rather than train a step and evaluate again)."""
        rest, reserve = self.budget.after_read(read_s)
        # the time kept for a step and the final one, this evaluation's rest, the step and read
        keep = self._step_s + reserve + rest + self.clock() - self._tick
        pending = {"kind": "eval", "val_loss": round(loss, 5)}  # as its record will say
        pos = dataclasses.replace(self.pos, metrics=[*self.pos.metrics, pending])
        reason = schedule.budget_spent(self.config, pos, len(self.train_batches), keep)
        if reason == "time" and pos.step == 0:  # a new run trains a step (budget_spent)
            reason = None
        return reason is not None, reason == "time"

    def _refuse_released(self) -> None:
        if self.released:
            raise RunError(
                f"the run in {self.run_dir.path} was released (its open_run block has ended, and "
                "with it the lock that keeps other trainers out): train it inside the block, or "
                "open it again"
            )

    def _advance(self) -> None:
        """Count the wall clock since the last count (start-up, steps, evaluations) as elapsed."""
        now, then = self.clock(), self._tick
        self.pos.elapsed, self._tick = self.pos.elapsed + now - then, now

    def _add_to_window(self, loss: float, ends: bool) -> None:
        """Count a step's loss towards the next training record; write one where the config's
        spacing says (records_at) and where an evaluation follows (`ends`: its checkpoint ends
        a window)."""
        self.pos.window_loss += loss
        self.pos.window_steps += 1
        if ends or self.config.records_at(self.pos.step):
            self._record_training()

    def _record_training(self) -> None:
        """Add a training record to the metrics: the mean loss of the steps since the last one."""
        per_epoch, chars = len(self.train_batches), self._chars_seen()
        record = records.training(self.pos, per_epoch, chars, self.lr())
        self.pos.metrics.append(record)
        self.pos.window_loss, self.pos.window_steps = 0.0, 0
        if self.dist.is_main:
            self.run_dir.append_metrics(record)

    def _roll_back(self, reason: str) -> RollbackEvent:
        """Go back to last.pt with half the learning rate; give up after repeated failures."""
        self._rollbacks += 1
        if self._rollbacks > self.config.max_rollbacks:
            error = TrainingError(
                f"training diverged {self._rollbacks} times in a row ({reason}), even at "
                f"{self.pos.lr_scale:g} of the learning rate: start the run over with a lower "
                f"--lr (and --force: a resume keeps its rate of {self.config.lr:g}), or check "
                "the corpus"
            )
            self._mark_diverged()  # (which goes back to last.pt's rate: said first)
            raise error
        elapsed, scale = self.pos.elapsed, self.pos.lr_scale / 2
        self.restore(checkpoint.load_run(self.run_dir.last))
        self.pos.elapsed, self.pos.lr_scale = elapsed, scale  # the clock does not go back
        if self.dist.is_main:  # drop the training records made since last.pt: redone from it
            self.run_dir.rewrite_metrics(self.pos.metrics)
        return RollbackEvent(reason, self.pos.step, scale)

    def _mark_diverged(self) -> None:
        """Keep in last.pt, the last good state, that the run diverged from it: `runs` and a
        resume say so (a resume keeps the rate that blew up), not that it is waiting to go on."""
        try:
            self.restore(checkpoint.load_run(self.run_dir.last))
            self.pos.ended = "diverged"
            self._save()
        except (CharRNNError, OSError):  # unreadable or unwritable: the error says the rest
            pass

    # ------------------------------------------------------------------ budget and schedule
    def train_char_counts(self) -> list[int]:
        """How often each id occurs in the training part (V,), counted once."""
        if self._train_counts is None:
            self._train_counts = char_counts(self.train_batches.ids, len(self.vocab))
        return self._train_counts

    def val_read(self) -> tuple[int, int]:
        """Validation characters each evaluation reads, and those a whole read would (all the
        streams of the split, up to max_val_chars): fewer where a time budget made it a part."""
        whole = evalplan.whole(self.config, self.val_batches)
        size, world = self.budget.size, self.dist.world
        return size.streams * size.chars * world, whole.streams * whole.chars * world

    def progress(self) -> float:
        return schedule.progress(self.config, self.pos, len(self.train_batches), self._keep())

    def lr(self) -> float:
        return schedule.learning_rate(self.config, self.pos, len(self.train_batches), self._keep())

    def _keep(self) -> float:
        """Seconds of a time budget kept for a step and the final evaluation."""
        return self._step_s + self.budget.reserve()

    def budget_spent(self, final: bool = False) -> str | None:
        """Which limit is reached; `final`: keeping the time of a step and the final evaluation
        (but a new run trains a step, and so evaluates, whatever its start-up took)."""
        keep = self._keep() if final else 0.0
        reason = schedule.budget_spent(self.config, self.pos, len(self.train_batches), keep)
        return None if final and reason == "time" and self.pos.step == 0 else reason

    def _chars_seen(self) -> int:
        """Characters trained on so far, by every rank together."""
        return self.pos.step * self.config.batch_size * self.config.seq_len * self.dist.world

    # ------------------------------------------------------------------ stopping
    def request_stop(self) -> None:
        """Ask the loop to stop at the next step boundary, saving last.pt (safe from a signal)."""
        self._requested = True
        if not self.dist.active:
            self._stop = True

    def must_stop(self) -> bool:
        """Whether work done between the run's events (a sample at a step) should end now: a stop
        was asked for, or the clock has spent the time budget, less what is kept for a step and
        the final evaluation."""
        if self._stop:
            return True
        if self.config.max_time is None:
            return False
        elapsed = self.pos.elapsed + self.clock() - self._tick
        return elapsed + self._keep() >= self.config.max_time

    def _train_loss(self) -> float:
        """The mean training loss since the last evaluation (nan: no step since)."""
        steps = self.pos.eval_window_steps
        return self.pos.eval_window_loss / steps if steps else math.nan

    def last_evaluated(self) -> int | None:
        """The step of the run's last evaluation (None: none yet). Short of the step the run is
        at, where a stop cut the final evaluation short: the run is not done until it is made."""
        steps = [r.get("step") for r in self.pos.metrics if is_evaluation(r)]
        return steps[-1] if steps else None

    def _stopping(self) -> bool:
        """Whether a stop was asked for: what an evaluation looks at between its pieces of work."""
        return self._stop

    def _polled(self, what: str) -> Callable[[], bool]:
        """_stopping, telling on_evaluating that the evaluation is reading `what` at each look."""
        if self.on_evaluating is None:
            return self._stopping

        def stopping() -> bool:
            self.on_evaluating(what)
            return self._stop

        return stopping

    def _agree(self) -> None:
        """Distributed: every rank takes the mean clock and stops if any rank was asked to, so all
        ranks make the same decisions (a rank that left a collective alone would hang the rest)."""
        if self.dist.active:
            elapsed, asked = self.dist.all_sum([self.pos.elapsed, float(self._requested)])
            self.pos.elapsed, self._stop = elapsed / self.dist.world, asked > 0

    # ------------------------------------------------------------------ the run's state
    def snapshot(self) -> RunState:
        """What the run is now (a collective when distributed: every rank calls it, and the
        state and generators of every rank's streams are gathered)."""
        streams = map_state(self.streams, lambda s: self.dist.all_gather(s.detach(), dim=1))
        rng = torch.get_rng_state() if self._rng_in_place else self._rng
        generators = Generators(
            cpu=rng,
            ranks=self.dist.all_gather(rng.unsqueeze(0), dim=0),
            cold=self.dist.all_gather(self.cold_rng.get_state().unsqueeze(0), dim=0),
            cuda=torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
        )
        return RunState(
            self.model,
            self.vocab,
            self.config,
            self.corpus,
            self.pos,
            optimizer=self.optimizer.state_dict(),
            streams=state_to_list(streams),
            generators=generators,
            world_size=self.dist.world,
            origin=self.origin,
        )

    def restore(self, state: RunState) -> None:
        """Continue exactly where `state` (this run at a step, as snapshot() or a checkpoint has
        it) stopped: a new run's state sets nothing but the position."""
        try:
            if state.model is not self.model:
                self.model.load_state_dict(state.model.state_dict())
            if state.optimizer is not None:
                self.optimizer.load_state_dict(state.optimizer)
            if state.world_size is not None and state.world_size != self.dist.world:
                raise CheckpointError(
                    f"run {self.run_dir.name!r} was trained by {state.world_size} "
                    f"process{'es' * (state.world_size != 1)}; "
                    "resume it with the same number (torchrun --nproc_per_node ... for more "
                    "than one)"
                )
            streams = self.model.init_state(self.config.batch_size)
            if state.streams is not None:
                streams = self._own_streams(state.streams)
            if not 0 <= state.position.batch < len(self.train_batches):
                raise ValueError(f"batch {state.position.batch} is outside the epoch")
            if (g := state.generators) is not None:
                rank = self.dist.rank
                rng = (g.cpu if g.ranks is None else g.ranks[rank]).clone()
                if self._rng_in_place:  # a rollback, while the run draws
                    torch.set_rng_state(rng)
                else:
                    with torch.random.fork_rng(devices=[]):
                        torch.set_rng_state(rng)  # checked, as torch checks it
                    self._rng = rng
                if g.cold is not None:  # absent before cold starts were trained
                    self.cold_rng.set_state(g.cold[rank].clone())
                if g.cuda is not None and self.device.type == "cuda":
                    torch.cuda.set_rng_state(g.cuda)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(f"the checkpoint's training state is broken: {e}") from None
        self.pos, self.streams = state.position, streams

    def _own_streams(self, streams: list[torch.Tensor]) -> State:
        """This rank's rows (rank*B .. rank*B+B-1) of every rank's listed state."""
        b, rank = self.config.batch_size, self.dist.rank
        state = state_from_list(self.model, streams, slice(rank * b, (rank + 1) * b))
        if any(s.shape[1] != b for s in state):
            raise ValueError("the carried state does not fit the batch size")
        return state

    def _keep_a_copy(self) -> None:
        """last.pt copied to step-N.pt where keep_every steps have passed since the step of the
        last one kept (or, the first, since this trainer's start)."""
        every = self.config.keep_every
        if every and self.pos.step // every > self._kept // every:
            if self.dist.is_main:
                self.run_dir.keep(self.pos.step)
            self._kept = self.pos.step

    def _save(self, best: bool = False) -> None:
        """Write last.pt (and best.pt): rank 0 only, but every rank helps gather the state."""
        start, state = self.clock(), self.snapshot()
        if self.dist.is_main:
            self.run_dir.save(state, best=best)
        self._save_s = (self.clock() - start) / (1 + best)


def _adamw(model, c: TrainConfig) -> torch.optim.AdamW:
    # Decay weight matrices only: shrinking biases (e.g. the forget-gate bias) would fight the init.
    groups = [
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": c.weight_decay},
        {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0},
    ]
    try:  # the fused kernel: one pass over all parameters, ~3x faster than the loop on CPU
        return torch.optim.AdamW(groups, lr=c.lr, betas=(0.9, 0.99), fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without it
        return torch.optim.AdamW(groups, lr=c.lr, betas=(0.9, 0.99))


class _Diverged(Exception):
    """The loss or gradient blew up on this step, or the weights an evaluation would save
    (internal: turned into a rollback)."""
