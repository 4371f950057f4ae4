"""`charrnn score` read as streams side by side against one stream: `python bench/score_speed.py
TEXT RUN...`.

For each run (a run name or a checkpoint), in one run on one machine:

  speed   `charrnn score -c RUN TEXT` (the split read) and `charrnn score --exact -c RUN TEXT`
          (one stream), each timed as a command, in turn (split, exact, split: the split's time is
          the mean of its two, so a drift in the machine's speed hits both alike), and the nats
          per character each prints
  --sweep the split read through the library at several warm-ups W and stream counts S against
          the one-stream read of the first --sweep-chars characters: the difference in nats per
          character (how WARMUP and STREAMS in charrnn/use/scoring.py were chosen), and the
          fastest split read's share of the machine's fp32 matmul peak measured in the same run
          (2 x the non-embedding parameters FLOPs a character: what bounds a read in streams)
  --beside-busy
          `charrnn score -c RUN` of the text's first --busy-chars characters beside a busy
          process (a loop of 512x512 products on two threads), on torch's thread count (tuned as
          the command tunes it) and on one thread (OMP_NUM_THREADS=1), taking turns for --rounds,
          then idle: the whole command's wall time, start-up included

and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import header

NATS = re.compile(r", ([0-9.]+) nats = ")


def command(run: str, text: Path, exact: bool, env: dict | None = None) -> tuple[float, float]:
    """Seconds and nats per character of `charrnn score` on `text`, as a user runs it (with `env`
    added to the environment)."""
    args = [sys.executable, "-m", "charrnn", "score", "-c", run, str(text)]
    start = time.perf_counter()
    r = subprocess.run(
        args + ["--exact"] * exact,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
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


BUSY = """
import torch
torch.set_num_threads(2)
a = torch.randn(512, 512)
a @ a
print("busy", flush=True)
while True:
    a @ a
"""


@contextlib.contextmanager
def busy():
    """A process keeping two threads busy until the block ends; it has started once it says so."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "busy":
            raise RuntimeError("the busy process did not start")
        yield
    finally:
        proc.kill()
        proc.wait()


def busy_table(runs: list[str], text: Path, lengths: list[int], rounds: int) -> None:
    body = text.read_text(encoding="utf-8")
    ways = {"tuned": {}, "one thread": {"OMP_NUM_THREADS": "1"}}
    print(
        f"`charrnn score -c RUN` of the first characters of {text.name} beside a busy process "
        f"(two threads of 512x512 products), the ways taking turns, {rounds} rounds; then idle. "
        "Whole-command seconds, start-up included:\n"
    )
    print("| run | characters | tuned, beside busy | one thread, beside busy | tuned, idle |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for run in runs:
            for n in lengths:
                part = Path(folder) / f"first-{n}.txt"
                part.write_text(body[:n], encoding="utf-8")
                times = {way: [] for way in ways}
                with busy():
                    for _ in range(rounds):
                        for way, env in ways.items():
                            times[way].append(command(run, part, exact=False, env=env)[0])
                idle = [command(run, part, exact=False)[0] for _ in range(rounds)]
                cells = [", ".join(f"{t:.1f}" for t in ts) for ts in (*times.values(), idle)]
                print(f"| {run} | {len(body[:n]):,} | " + " s | ".join(cells) + " s |", flush=True)


def sweep_table(runs: list[str], text: Path, chars: int, streams: list[int], warmups: list[int]):
    from throughput import matmul_peak

    from charrnn import checkpoint
    from charrnn.runs import resolve_checkpoint
    from charrnn.use.scoring import score_text

    body = text.read_text(encoding="utf-8")[:chars]
    peak, _ = matmul_peak()
    print(
        f"\nSplit read (S streams, warm-up W) minus one stream, nats per character, and its "
        f"speed, over the first {len(body):,} characters; the fp32 matmul peak measured first: "
        f"{peak:.1f} GFLOP/s:\n"
    )
    cols = [(s, w) for s in streams for w in warmups]
    head = " | ".join(f"S={s} W={w}" for s, w in cols)
    print(f"| run | one stream | {head} | fastest split, of the peak |")
    print("| --- | --- |" + " --- |" * (len(cols) + 1))
    for run in runs:
        base = os.environ.get("CHARRNN_CHECKPOINT_DIR", "checkpoints")  # as the command reads it
        model = checkpoint.load_model(resolve_checkpoint(run, base))
        start = time.perf_counter()
        exact = score_text(model, body, streams=1) / len(body)
        cells = [f"{exact:.4f} ({len(body) / (time.perf_counter() - start):,.0f}/s)"]
        fastest = 0.0
        for s, w in cols:
            start = time.perf_counter()
            nats = score_text(model, body, streams=s, warmup=w) / len(body)
            speed = len(body) / (time.perf_counter() - start)
            fastest = max(fastest, speed)
            cells.append(f"{nats - exact:+.5f} ({speed:,.0f}/s)")
        weights = sum(p.numel() for n, p in model.net.named_parameters() if "embed" not in n)
        cells.append(f"{2 * weights * fastest / 1e9 / peak:.0%}")
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
    p.add_argument("--beside-busy", action="store_true", help="the table beside a busy process")
    p.add_argument("--busy-chars", default="20000,200000", help="text lengths, comma-separated")
    p.add_argument("--rounds", type=int, default=2, help="turns of each way beside the process")
    args = p.parse_args()
    print(header())
    if args.beside_busy:
        lengths = [int(n) for n in args.busy_chars.split(",")]
        busy_table(args.runs, args.text, lengths, args.rounds)
    elif not args.no_speed:
        speed_table(args.runs, args.text)
    if args.sweep or args.no_speed:
        streams = [int(s) for s in args.streams.split(",")]
        warmups = [int(w) for w in args.warmups.split(",")]
        sweep_table(args.runs, args.text, args.sweep_chars, streams, warmups)


if __name__ == "__main__":
    main()
