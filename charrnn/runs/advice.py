"""Advice that names a command: how to resume a run, with the text it must be given again."""

from __future__ import annotations

import math
import os
import shlex
import stat
from collections.abc import Sequence

# The option that gives each field a resume may change, to repeat them in advice.
RESUME_FLAGS = {
    "max_steps": "--steps",
    "max_epochs": "--epochs",
    "max_time": "--time",
    "eval_every": "--eval-every",
    "patience": "--patience",
    "precision": "--precision",
}


def resume_command(file: str, corpus_specs: Sequence[str] | None, train: dict) -> str:
    """`charrnn train [TEXT...] --resume FILE [budget...]`: the resume asked for, from `file` (a
    run or its checkpoint), with the text and options given, so that advice is the whole command
    (`... | ` before it for standard input)."""
    specs = [shlex.quote(s) for s in corpus_specs or ()]
    options = []
    for field, flag in RESUME_FLAGS.items():
        value = train.get(field)
        if value is not None:
            value = f"{value:g}s" if field == "max_time" else value
            options += [flag, shlex.quote(str(value))]
    piped = "... | " if "-" in (corpus_specs or ()) else ""
    return " ".join([f"{piped}charrnn train", *specs, "--resume", shlex.quote(file), *options])


# A run whose state runs away from cold starts has trained too little: the resume advised gives it
# this many times the time it has had (--time counts the whole run, 20 s at least): a few times
# more steps, not a few more.
RUNAWAY_MORE = 3


def train_longer(ref: str, sources: Sequence[str], train: dict, at: dict) -> str:
    """The resume that trains a run (`ref`, as --resume takes it) RUNAWAY_MORE times as long as
    it has: advice for a model whose state runs away from cold starts. By the budget it trained
    by (`train`: its train_config; `at`: its step, epoch and elapsed seconds): steps or epochs
    where it had no time budget, so that it evaluates on the schedule it had (a time budget
    plans evaluations to fit the time), else time."""
    timed = train.get("max_time") is not None
    if not timed and train.get("max_steps") is not None:
        more = {"max_steps": RUNAWAY_MORE * max(int(at["step"]), 1)}
    elif not timed and train.get("max_epochs") is not None:
        more = {"max_epochs": max(round(RUNAWAY_MORE * float(at["epoch"]), 2), 0.01)}
    else:
        more = {"max_time": RUNAWAY_MORE * math.ceil(max(float(at["elapsed"]), 20.0))}
    return resume_command(ref, text_to_give(sources), more)


def text_to_give(sources: Sequence[str]) -> list[str]:
    """What a resume of a run trained on `sources` must be given (the corpus argument): standard
    input (`-`) again, in its place among the files read with it, or a pipe's text again
    (`FILE`), or nothing: its files are read again."""
    if "-" in sources or not sources:
        return list(sources) if len(sources) > 1 else ["-"]
    return ["FILE"] if pipe_sources(sources) else []


def pipe_sources(sources: Sequence[str]) -> list[str]:
    """The sources that were pipes: their text was read once and is gone."""
    return [s for s in sources if os.path.isabs(s) and _is_pipe(s)]


def _is_pipe(path: str) -> bool:
    """A FIFO, or a descriptor a shell passed (`<(...)`: /dev/fd/63, gone or a pipe by now)."""
    if path.startswith(("/dev/fd/", "/proc/self/fd/")):
        return True
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False
