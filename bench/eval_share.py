"""What evaluations cost a run, as a user runs it: `python bench/eval_share.py TEXT [OPTIONS]`.

Runs `charrnn train TEXT OPTIONS` in a folder of its own (OPTIONS as the command takes them, e.g.
`--time 3m`; the run an `--init-from RUN` names is copied from where `charrnn train` would find it,
`--checkpoint-dir DIR` or its default, which is only read) and prints a Markdown row: which code
ran, the command's wall time, the steps and how the run ended, its evaluations and how many of
them ran the cold-start check, the seconds they took to read and check (metrics.jsonl's
eval_seconds; the checkpoints each writes are not in it) as a share of the wall time and of the
time budget, and the best validation loss. With PYTHONPATH set to another checkout (Python 3.11+),
the row is that code's, as its `code` column says: two versions compared one after the other, on
one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import header

from charrnn.cli.options import parse_duration  # as `train --time` reads it

COLUMNS = (
    "code", "wall", "steps", "ended", "evaluations", "checked", "evaluating", "of wall",
    "of budget", "best val",
)  # fmt: skip


def code(env: dict) -> str:
    """Which charrnn a child process with `env` imports: its checkout's commit, with `+` where
    its code has changes, else its folder."""
    where = [sys.executable, "-c", "import charrnn; print(charrnn.__file__)"]
    found = subprocess.run(where, capture_output=True, text=True, env=env)  # as the run's child
    folder = Path(found.stdout.strip()).parent.parent
    git = ["git", "-C", str(folder)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "charrnn"], capture_output=True)
    except OSError:
        return str(folder)
    name = commit.stdout.decode().strip() or str(folder)
    return name + "+" * bool(dirty.stdout.strip())


def option(options: list[str], name: str) -> str | None:
    """The value of `name` in OPTIONS (`--name V` or `--name=V`), or None."""
    for i, given in enumerate(options):
        if given == name and i + 1 < len(options):
            return options[i + 1]
        if given.startswith(name + "="):
            return given.split("=", 1)[1]
    return None


def without(options: list[str], name: str, takes_value: bool = True) -> list[str]:
    """OPTIONS without `name` (and its value)."""
    kept, skip = [], False
    for given in options:
        if skip:
            skip = False
        elif given == name:
            skip = takes_value
        elif not given.startswith(name + "="):
            kept.append(given)
    return kept


def measure(text: str, options: list[str], budget: float | None) -> list[str]:
    # The child must import the charrnn that PYTHONPATH names, not one in the folder it runs in
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    # where `charrnn train` would look for an --init-from run: the run is copied from there
    given = option(options, "--checkpoint-dir")
    base_dir = given or os.environ.get("CHARRNN_CHECKPOINT_DIR") or "checkpoints"
    options = without(options, "--checkpoint-dir")
    for quiet in ("-q", "--quiet"):  # the last line of the progress says how the run ended
        options = without(options, quiet, takes_value=False)
    with tempfile.TemporaryDirectory() as folder:
        base = option(options, "--init-from")
        if base is not None and (Path(base_dir) / base).is_dir():
            shutil.copytree(Path(base_dir) / base, Path(folder) / base)  # read, never written
        command = [sys.executable, "-m", "charrnn", "train", text, *options]
        command += ["--checkpoint-dir", folder]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"charrnn train failed ({done.returncode}): {done.stderr.strip()}")
        run = Path(done.stdout.strip().splitlines()[-1]).parent
        records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    evals = [r for r in records if r.get("val_loss") is not None]
    seconds = sum(r.get("eval_seconds") or 0.0 for r in evals)
    checked = sum(r.get("cold_start") is not None for r in evals)
    done_line = next((line for line in done.stderr.splitlines() if line.startswith("Done (")), "")
    ended = done_line[len("Done (") :].split(")")[0].split(":")[0]  # e.g. "stopped early"
    share = f"{seconds / budget:.1%}" if budget else "-"
    best = min(r["val_loss"] for r in evals)
    return [
        code(env), f"{wall:.1f} s", f"{evals[-1]['step']:,}", ended, str(len(evals)),
        str(checked), f"{seconds:.1f} s", f"{seconds / wall:.1%}", share, f"{best:.4f}",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text")
    args, options = parser.parse_known_args()
    budget = parse_duration(given) if (given := option(options, "--time")) else None
    row = measure(args.text, options, budget)
    print(header(), end="")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
