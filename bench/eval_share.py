"""What evaluations cost a run, as a user runs it: `python bench/eval_share.py TEXT [OPTIONS]`.

Runs `charrnn train TEXT OPTIONS` (the charrnn this Python imports; OPTIONS as the command takes
them, e.g. `--time 3m`, `--init-from RUN --checkpoint-dir DIR`) and prints a Markdown row: the
command's wall time, the steps and how the run ended, its evaluations and how many of them ran the
cold-start check, the seconds they took to read and check (metrics.jsonl's eval_seconds; the
checkpoints each writes are not in it) as a share of the wall time and of the time budget, and
the best validation loss. Run with PYTHONPATH set to another checkout, the row is that code's:
two versions compared one after the other, on one machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import header

COLUMNS = (
    "code", "wall", "steps", "ended", "evaluations", "checked", "evaluating", "of wall",
    "of budget", "best val",
)  # fmt: skip


def code() -> str:
    """Which charrnn runs: its checkout's commit, with `+` where it has changes."""
    import charrnn

    folder = Path(charrnn.__file__).parent.parent
    git = ["git", "-C", str(folder)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "charrnn"], capture_output=True)
    except OSError:
        return str(folder)
    name = commit.stdout.decode().strip() or str(folder)
    return name + "+" * bool(dirty.stdout.strip())


def measure(text: str, options: list[str], budget: float | None) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        given = "--checkpoint-dir" in options
        where = [] if given else ["--checkpoint-dir", folder]
        command = [sys.executable, "-m", "charrnn", "train", text, *options, *where]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"charrnn train failed ({done.returncode}): {done.stderr.strip()}")
        run = Path(done.stdout.strip().splitlines()[-1]).parent
        records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    evals = [r for r in records if r.get("val_loss") is not None]
    seconds = sum(r.get("eval_seconds") or 0.0 for r in evals)
    checked = sum(r.get("cold_start") is not None for r in evals)
    done_line = next(line for line in done.stderr.splitlines() if line.startswith("Done ("))
    ended = done_line[len("Done (") :].split(")")[0].split(":")[0]  # e.g. "stopped early"
    share = f"{seconds / budget:.1%}" if budget else "-"
    best = min(r["val_loss"] for r in evals)
    return [
        code(), f"{wall:.1f} s", f"{evals[-1]['step']:,}", ended, str(len(evals)), str(checked),
        f"{seconds:.1f} s", f"{seconds / wall:.1%}", share, f"{best:.4f}",
    ]  # fmt: skip


def seconds_of(budget: str) -> float:
    """`3m`, `90s`, `1h30m` as seconds."""
    total, number = 0.0, ""
    for ch in budget:
        if ch.isdigit() or ch == ".":
            number += ch
        else:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[ch]
            number = ""
    return total + float(number or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text")
    args, options = parser.parse_known_args()
    budget = None
    if "--time" in options:
        budget = seconds_of(options[options.index("--time") + 1])
    row = measure(args.text, options, budget)
    print(header(), end="")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
