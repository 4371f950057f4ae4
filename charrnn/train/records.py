"""The metrics records a run writes (metrics.jsonl, and every checkpoint's `metrics`): one for each
window of training steps, one for each evaluation (runs/folder.py says how they are told apart)."""

from __future__ import annotations

import math

from charrnn.train.evaluate import Validation
from charrnn.train.state import Position


def training(pos: Position, per_epoch: int, chars: int, lr: float) -> dict:
    """The mean loss of the steps since the previous training record (pos.window_*)."""
    loss = pos.window_loss / pos.window_steps
    return {
        **_where("train", pos, per_epoch, chars),
        "steps": pos.window_steps,  # the steps averaged: those after the previous record
        "train_loss": round(loss, 5),
        "train_bpc": round(loss / math.log(2), 5),
        "lr": lr,
    }


def evaluation(
    pos: Position,
    per_epoch: int,
    chars: int,
    lr: float,
    train_loss: float,
    val: Validation,
    cold,
    cost: dict | None = None,
    unlike_where: dict | None = None,
) -> dict:
    """An evaluation: `train_loss` the mean since the previous one (NaN: no step), `cold` the
    cold-start check's report (None: none made, the split being too short or early stopping's
    schedule skipping it), `cost` what it read
    and took (val_chars, eval_seconds), `unlike_where` where in the text the streams of text
    unlike the rest are (val.unlike_at as "lines" and "chars": [first, last] each, 1-based) and,
    in a fine-tune, which characters new to its model they hold ("new_chars")."""
    return {
        **_where("eval", pos, per_epoch, chars),
        # null where no step was trained since the last evaluation (NaN is not JSON)
        "train_loss": round(train_loss, 5) if math.isfinite(train_loss) else None,
        "val_loss": round(val.loss, 5),
        "val_bpc": round(val.loss / math.log(2), 5),
        "val_worst": round(val.worst, 5),  # the worst stream's mean: a runaway shows here
        "val_runaway_streams": val.runaway_streams,  # far worse: a state that ran away
        "val_unlike_streams": val.unlike_streams,  # far worse: text unlike the rest
        # the loss over the streams not far worse (null where none is): what the rest would read
        "val_typical": round(val.typical, 5) if math.isfinite(val.typical) else None,
        # where they are: [first, last] line of the text, or character in a text of one line
        "val_unlike_lines": (unlike_where or {}).get("lines", []),
        "val_unlike_chars": (unlike_where or {}).get("chars", []),
        # in a text of several files: [file, "line" or "character", first, last]
        "val_unlike_files": (unlike_where or {}).get("files", []),
        # in a fine-tune: the characters new to the model started from that they hold
        "val_unlike_new_chars": (unlike_where or {}).get("new_chars", ""),
        "lr": lr,
        "cold_start": cold.to_dict() if cold is not None else None,
        **{k: round(v, 3) for k, v in (cost or {}).items()},
    }


def epochs(pos: Position, per_epoch: int) -> float:
    """Epochs trained at `pos`, with `per_epoch` batches an epoch (a record's "epoch")."""
    return round(pos.epoch + pos.batch / per_epoch, 4)


def _where(kind: str, pos: Position, per_epoch: int, chars: int) -> dict:
    """What every record begins with: its kind, and where training was."""
    epoch = epochs(pos, per_epoch)
    return dict(kind=kind, step=pos.step, epoch=epoch, elapsed=round(pos.elapsed, 2), chars=chars)
