"""How fast this machine trains a model, measured in a second or two: what `--size auto` picks by.

Machines differ far more than a budget in seconds can say (the same step has run 2-3x slower on
one 2-core machine than on another, and a laptop beside a busy process slower still), so `auto`
turns the budget into characters: seconds x this machine's measured rate.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time

import torch

from charrnn.model.network import CharRNN, ModelConfig
from charrnn.runs import RunDir
from charrnn.text.vocab import CharVocab
from charrnn.threads import TRIAL, timed, tuned_threads
from charrnn.train.config import TrainConfig
from charrnn.train.fits import refuse_too_large
from charrnn.train.state import RunState
from charrnn.train.trainer import Trainer

PROBE_LR = 1e-3  # the learning rate of the steps timed


def training_speed(
    config: ModelConfig,
    train: TrainConfig,
    device: torch.device | str = "cpu",
    within: float | None = None,
) -> float:
    """Characters per second that training a fresh `config` model with `train`'s batch shape
    reaches here now: the real training step (Trainer.train_step) on random characters, with
    the thread count tuned as a run tunes it (threads.py), timed over about a dozen steps, or
    fewer where they would take more than `within` seconds (one at least, after the first; the
    first alone where it takes that long): a model whose step takes a second must not spend a
    short budget being measured.

    The global random state is left as it was: a run seeded after this trains the same."""
    refuse_too_large(config, device, train.batch_size, train.seq_len)  # before it is built
    b, t = train.batch_size, train.seq_len
    with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        vocab = CharVocab([chr(32 + i) for i in range(config.vocab_size)])
        # any vocabulary size; a fifth, b * t + 1, validates: one batch's worth
        ids = torch.randint(0, config.vocab_size, (5 * b * t + 3,))
        # The rate changes nothing of a step's time, and one that blows the model up (--lr 1e9)
        # would end the measurement, not the run, which says so itself: a modest rate is timed.
        train = dataclasses.replace(train, val_frac=0.2, cold_start_prob=0.0, lr=PROBE_LR)
        state = RunState(CharRNN(config).to(device), vocab, train, corpus={})
        trainer = Trainer(state, ids, RunDir(tmp))
        with tuned_threads(trainer.tune_threads) as tuner:
            began = time.perf_counter()
            trainer.train_step()  # the first step pays for allocations and kernel choice
            first = time.perf_counter() - began
            if within is not None and first >= within:
                # a step this long is the measurement: a slower one than the next (too slow
                # for a budget this short, whichever)
                return b * t / first
            timings: list[float] = []
            began = time.perf_counter()
            # TRIAL steps; with a tuner on all threads, until its first trial is done: up to TRIAL
            # at a neighbouring count and TRIAL at the first again (two, where the first timing of
            # a count is clearly slower). A tuner started on the cores left free runs on them.
            tuning = tuner is not None and tuner.most > 1
            while len(timings) < TRIAL or (tuning and tuner.first_trial_pending()):
                if timings and within is not None and time.perf_counter() - began >= within:
                    break
                with timed(tuner):
                    start = time.perf_counter()
                    trainer.train_step()  # ends with loss.item(): the device has finished
                    timings.append(time.perf_counter() - start)
            tried = tuner.results if tuning else {}
            per_step = min(tried.values()) if tried else statistics.median(timings[-TRIAL:])
    return b * t / per_step
