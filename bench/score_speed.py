"""`charrnn score` read as streams side by side against one stream: `python bench/score_speed.py
TEXT RUN...`.

For each run (a run name or a checkpoint), in one run on one machine:

  speed   `charrnn score -c RUN TEXT` (the split read) and `charrnn score --exact -c RUN TEXT`
          (one stream), each timed as a command, in turn (split, exact, split: the split's time is
          the mean of its two, so a drift in the machine's speed hits both alike), and the nats
          per character each prints
  --sweep the split read through the library at several warm-ups W and stream counts S against
          the one-stream read of the first --sweep-chars characters: the difference in nats per
          character (how WARMUP and STREAMS in charrnn/use/scoring.py were chosen)

and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from report import header

NATS = re.compile(r", ([0-9.]+) nats = ")


def command(run: str, text: Path, exact: bool) -> tuple[float, float]:
    """Seconds and nats per character of `charrnn score` on `text`, as a user runs it."""
    args = [sys.executable, "-m", "charrnn", "score", "-c", run, str(text)]
    start = time.perf_counter()
    r = subprocess.run(args + ["--exact"] * exact, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, float(NATS.search(r.stderr).group(1))


def speed_table(runs: list[str], text: Path) -> None:
    chars = len(text.read_text(encoding="utf-8"))
    print(f"`charrnn score` on {text.name} ({chars:,} characters):\n")
    print("| run | split read | `--exact` | faster | nats/char split | `--exact` | difference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        split_1, nats = command(run, text, exact=False)
        exact, exact_nats = command(run, text, exact=True)
        split_2, _ = command(run, text, exact=False)
        split = (split_1 + split_2) / 2
        print(
            f"| {run} | {split:.1f} s ({chars / split:,.0f}/s) | {exact:.1f} s "
            f"({chars / exact:,.0f}/s) | {exact / split:.1f}x | {nats:.4f} | {exact_nats:.4f} "
            f"| {nats - exact_nats:+.4f} |"
        )


def sweep_table(runs: list[str], text: Path, chars: int, streams: list[int], warmups: list[int]):
    from charrnn import checkpoint
    from charrnn.runs import resolve_checkpoint
    from charrnn.use.scoring import score_text

    body = text.read_text(encoding="utf-8")[:chars]
    print(
        f"\nSplit read (S streams, warm-up W) minus one stream, nats per character, and its "
        f"speed, over the first {len(body):,} characters:\n"
    )
    cols = [(s, w) for s in streams for w in warmups]
    print("| run | one stream | " + " | ".join(f"S={s} W={w}" for s, w in cols) + " |")
    print("| --- | --- |" + " --- |" * len(cols))
    for run in runs:
        base = os.environ.get("CHARRNN_CHECKPOINT_DIR", "checkpoints")  # as the command reads it
        model = checkpoint.load_model(resolve_checkpoint(run, base))
        start = time.perf_counter()
        exact = score_text(model, body, streams=1) / len(body)
        cells = [f"{exact:.4f} ({len(body) / (time.perf_counter() - start):,.0f}/s)"]
        for s, w in cols:
            start = time.perf_counter()
            nats = score_text(model, body, streams=s, warmup=w) / len(body)
            speed = len(body) / (time.perf_counter() - start)
            cells.append(f"{nats - exact:+.5f} ({speed:,.0f}/s)")
        print(f"| {run} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("text", type=Path)
    p.add_argument("runs", nargs="+")
    p.add_argument("--sweep", action="store_true", help="the warm-up and stream-count table too")
    p.add_argument("--no-speed", action="store_true", help="the sweep alone")
    p.add_argument("--sweep-chars", type=int, default=200_000)
    p.add_argument("--streams", default="32", help="stream counts swept, comma-separated")
    p.add_argument("--warmups", default="0,16,64,256,1024", help="warm-ups swept")
    args = p.parse_args()
    print(header())
    if not args.no_speed:
        speed_table(args.runs, args.text)
    if args.sweep or args.no_speed:
        streams = [int(s) for s in args.streams.split(",")]
        warmups = [int(w) for w in args.warmups.split(",")]
        sweep_table(args.runs, args.text, args.sweep_chars, streams, warmups)


if __name__ == "__main__":
    main()
