"""TrainConfig: how a run trains (batch shape, schedule, budgets, evaluations, cold starts)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from charrnn.defaults import GRAD_CLIP, SEED, VAL_FRAC
from charrnn.errors import ConfigError, require_whole

# Characters trained between evaluations by default: an evaluation costs ~10% of that much
# training, where every 250 steps of 32x32 (the old default) spent a sixth of a short budget.
EVAL_CHARS = 1 << 20
# ... but at least this often an epoch (start.py): on a text of 40,000 characters a million
# characters are 25 epochs, and the model has learned the text by heart long before an
# evaluation would see its best.
MIN_EVALS_PER_EPOCH = 1
# Training records at the full rate (TrainConfig.records_at) before they thin: each is kept in
# every checkpoint (~150 bytes), and an hour of a tiny model on a 35 K text, evaluated once an
# epoch of 30 steps, wrote one a step: 96,901 records, 16.8 MB of metrics.jsonl.
FULL_RATE_RECORDS = 1024


@dataclass
class TrainConfig:
    """How to train; budgets (steps, epochs, time) are totals for the run, across resumes."""

    batch_size: int  # streams side by side (B); these three have their defaults in presets.py
    seq_len: int  # characters per stream per step: the backprop window (T)
    lr: float  # peak learning rate
    min_lr_frac: float = 0.05  # the learning rate decays to lr * min_lr_frac at the budget's end
    warmup_steps: int = 50
    weight_decay: float = 0.01  # of the weight matrices, not the biases; presets set theirs
    grad_clip: float = GRAD_CLIP
    # The training step's arithmetic (devices.PRECISIONS): "auto" is bfloat16 mixed precision
    # where the CPU computes bf16 natively (its steps ~1.4x faster, learning per step about the
    # same: docs/performance.md), float32 elsewhere. The run's evaluations read in it too; the
    # weights and sampling stay float32 whatever this says.
    precision: str = "auto"
    val_frac: float = VAL_FRAC
    # Evaluate on at most this many characters from the start of the validation split: enough to
    # rank checkpoints, and an evaluation of a 1 GB corpus's 100 MB split would take an hour.
    max_val_chars: int = 250_000
    # Steps between evaluations (and checkpoints); None: about every EVAL_CHARS characters trained.
    eval_every: int | None = None
    # Whether eval_every is the user's (each of its evaluations gets a line, and thinning them
    # is said), not the schedule's
    eval_every_given: bool = False
    # Keep a copy of the checkpoint of the first evaluation after each this many steps, as
    # step-N.pt beside best.pt and last.pt (each of those is written over); None: keep none.
    keep_every: int | None = None
    max_steps: int | None = None
    max_epochs: float | None = None
    max_time: float | None = None  # seconds of wall-clock training
    # Evaluate (and save best.pt) before the first step: a run from a trained model (--init-from)
    # must be able to keep that model as it was, if training on the new text never beats it.
    eval_at_start: bool = False
    # Early stopping: stop after this many evaluations in a row without a new best validation
    # loss (best.pt holds the best); None: train to the budget.
    patience: int | None = None
    # Before this step only every other evaluation of the schedule runs (None: every one). `auto`
    # sets it for a short text it stops early (start.py): the best came late in every run
    # measured, and an evaluation of each early pass, reading the whole validation split, cost
    # more than the share of the budget that evaluations may spend (evalplan.SHARE).
    sparse_evals_until: int | None = None
    seed: int = SEED
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

    def __post_init__(self):
        """A library caller's values held to what the command line accepts: a budget of 0 steps
        or a negative rate would make a run folder that trained nothing, or fail deep inside."""
        at_least = {"batch_size": 1, "seq_len": 1, "warmup_steps": 0, "max_val_chars": 1}
        at_least |= {"eval_every": 1, "max_steps": 1, "patience": 1, "cold_start_checks": 1}
        at_least |= {"keep_every": 1}
        at_least |= {"records_per_eval": 1, "max_rollbacks": 0, "seed": 0}
        for name, least in at_least.items():
            if getattr(self, name) is not None:
                require_whole(name, getattr(self, name), least)
        if self.seed > 2**63 - 1:  # what torch's generators take
            raise ConfigError(f"seed must be at most 2^63-1, not {self.seed}")
        above_zero = ("lr", "grad_clip", "max_epochs", "max_time")
        for name in above_zero:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ConfigError(f"{name} must be a number above 0, not {value!r}")
        for name, low, high in (
            ("min_lr_frac", 0.0, 1.0),
            ("weight_decay", 0.0, 1.0),
            ("cold_start_prob", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and low <= value <= high):
                raise ConfigError(f"{name} must be from {low:g} to {high:g}, not {value!r}")
        if not (isinstance(self.val_frac, int | float) and 0 < self.val_frac < 1):
            raise ConfigError(f"val_frac must be between 0 and 1, not {self.val_frac!r}")

    @property
    def steps_per_eval(self) -> int:
        return self.eval_every or max(1, round(EVAL_CHARS / (self.batch_size * self.seq_len)))

    def evaluates_at(self, step: int) -> bool:
        """Whether the schedule has an evaluation after `step`: every steps_per_eval steps, and
        of those before sparse_evals_until every other one (the second, the fourth, ...)."""
        turn, rest = divmod(step, self.steps_per_eval)
        if rest or step == 0:
            return False
        dense = self.sparse_evals_until is None or step >= self.sparse_evals_until
        return dense or turn % 2 == 0

    @property
    def steps_per_record(self) -> int:
        return max(1, self.steps_per_eval // max(self.records_per_eval, 1))

    def records_at(self, step: int) -> bool:
        """Whether a training record ends at `step` (besides those an evaluation ends): every
        steps_per_record steps for the first FULL_RATE_RECORDS, then at twice the spacing with
        each doubling of the steps, so that a long run on a short text (an evaluation an epoch
        of a few steps) keeps about FULL_RATE_RECORDS / 2 records a doubling, not one a step."""
        every = self.steps_per_record
        span = FULL_RATE_RECORDS * every  # the steps recorded at the full rate
        if step > span:
            every <<= ((step - 1) // span).bit_length()
        return step % every == 0
