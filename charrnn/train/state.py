"""What a run is at a step: RunState, everything a checkpoint holds and a resume restores
(checkpoint.py alone turns it into a file and back)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from charrnn.model.network import CharRNN
from charrnn.text.vocab import CharVocab
from charrnn.train.config import TrainConfig


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
    # What each evaluation reads under a time budget (evalplan.EvalSize as a dict), chosen once so
    # that every evaluation of the run reads the same text; None: the whole (first) split.
    eval_size: dict | None = None
    # How the run ended, as its DoneEvent says it ("steps", "epochs", "time", "patience",
    # "stopped"); None while it trains (and in files from before it was kept).
    ended: str | None = None
    # The training loss summed over the steps since the last evaluation, and their count (the
    # `train` an evaluation reports): saved, so that a resumed run reports what it would have.
    eval_window_loss: float = 0.0
    eval_window_steps: int = 0
    # An evaluation was due at `step` when a stop cut it short: a resume makes it first, as the
    # run would have (it chooses best.pt and counts towards --patience).
    eval_due: bool = False


@dataclass
class Generators:
    """The random generators' states, so that a resumed run draws what it would have drawn."""

    cpu: torch.Tensor  # torch's global generator on rank 0 (dropout masks)
    ranks: torch.Tensor | None = None  # (world, n): every rank's (dropout masks differ by rank)
    cold: torch.Tensor | None = None  # (world, n): each rank's cold-start draws (absent: older)
    cuda: torch.Tensor | None = None  # this device's, on a GPU


@dataclass
class RunState:
    """A run at a step. A new run has only the first four fields (and `origin` if fine-tuned,
    its seeded `generators`); a checkpoint's has them all. `streams` and the generators cover
    every rank's streams."""

    model: CharRNN  # the weights, with their config and lead-in
    vocab: CharVocab
    config: TrainConfig
    corpus: dict  # what the text is: name, sources, chars, sha256, encoding, char_counts
    position: Position = field(default_factory=Position)
    optimizer: dict | None = None  # AdamW's state_dict (None: a fresh optimizer)
    streams: list[torch.Tensor] | None = None  # the carried state, B x world streams, as the
    # model lists it (model.state_to_list); None: every stream starts cold
    generators: Generators | None = None  # None: torch's as the Trainer is built
    world_size: int | None = None  # processes that trained it (None: none yet)
    origin: dict | None = None  # the model it was fine-tuned from (start.py), kept in every file
