"""bfloat16 mixed precision against float32: `python bench/precision.py [--steps 1200] [--turns 6]`.

Two questions, each answered in one run on one machine, the two precisions side by side:

  speed     ms per training step of each preset (and of small's GRU and RNN), the real
            Trainer.train_step, float32 and bfloat16 taking turns of a few steps each, so that a
            drift in the machine's speed falls on both alike (the median of the turns)
  learning  small on tinyshakespeare for --steps steps in each precision, the same seed, so the
            same initial weights and batches; validation read in float32 over the whole split
            at a third, two thirds and the end: what a step in bfloat16 learns against a float32
            step's

`--precision bfloat16` must be possible here (a CPU with AVX-512 BF16 or AMX); with
ONEDNN_MAX_CPU_ISA=AVX2 the script says so and stops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from report import header

from charrnn.devices import autocast_dtype
from charrnn.errors import ConfigError
from charrnn.text.encoded import encode_text
from charrnn.train.events import EvalEvent
from charrnn.train.start import start

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "tinyshakespeare.txt"
MODELS = [("tiny", "lstm"), ("small", "lstm"), ("medium", "lstm"), ("large", "lstm")]
MODELS += [("small", "gru"), ("small", "rnn")]
PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1200, help="steps of each learning run")
    p.add_argument("--turns", type=int, default=6, help="turns of each precision in the timing")
    p.add_argument("--corpus", default=str(CORPUS.resolve()))
    args = p.parse_args()
    if not Path(args.corpus).is_file():
        sys.exit(f"no corpus at {args.corpus}: give --corpus PATH (tinyshakespeare.txt)")
    try:
        autocast_dtype("bfloat16", torch.device("cpu"))
    except ConfigError as e:
        sys.exit(f"nothing to compare here: {e}")
    corpus = encode_text(Path(args.corpus).read_text(encoding="utf-8"), "tinyshakespeare")
    print(header())
    print(f"{torch.get_num_threads()} threads.\n")
    with tempfile.TemporaryDirectory() as tmp:
        speed(corpus, Path(tmp), args.turns)
        learning(corpus, Path(args.corpus), Path(tmp), args.steps)


def speed(corpus, tmp: Path, turns: int, per_turn: int = 5) -> None:
    print("| model | float32 ms/step | bfloat16 ms/step | bfloat16 / float32 |")
    print("| --- | ---: | ---: | ---: |")
    for size, cell in MODELS:
        trainers = {}
        for precision in PRECISIONS:
            train = {"max_steps": 10**6, "precision": precision}
            opened = start(
                corpus, tmp / f"{size}-{cell}-{precision}", size=size, cell=cell, train=train
            )
            trainers[precision] = opened.trainer
        times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for trainer in trainers.values():
            for _ in range(3):  # allocations, kernel choice
                trainer.train_step()
        for _ in range(turns):
            for precision, trainer in trainers.items():
                begin = time.perf_counter()
                for _ in range(per_turn):
                    trainer.train_step()
                times[precision].append((time.perf_counter() - begin) / per_turn * 1e3)
        f32, b16 = (statistics.median(times[p]) for p in PRECISIONS)
        m = trainers["float32"].model.config
        name = f"{size} ({m.cell.upper()} {m.num_layers}x{m.hidden_size})"
        print(f"| {name} | {f32:.1f} | {b16:.1f} | {b16 / f32:.2f} |", flush=True)
    print()


def learning(corpus, path: Path, tmp: Path, steps: int) -> None:
    from quality import full_validation

    print(f"small on tinyshakespeare, {steps:,} steps each, the same seed; validation over the "
          "whole split, in float32:\n")  # fmt: skip
    rows = {}
    for precision in PRECISIONS:
        train = {"max_steps": steps, "eval_every": steps // 3, "precision": precision}
        opened = start(corpus, tmp / f"learn-{precision}", size="small", train=train)
        trainer, begin = opened.trainer, time.perf_counter()
        trainer.tune_threads = False  # the same count for both
        evals = [e.record for e in trainer.run() if isinstance(e, EvalEvent)]
        took = time.perf_counter() - begin
        whole = full_validation(trainer.run_dir.best, path)
        rows[precision] = ([r["val_loss"] for r in evals], whole, took)
    steps_row = " | ".join(f"val at step {(i + 1) * (steps // 3):,}" for i in range(3))
    print(f"| precision | {steps_row} | best.pt, whole split | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for precision, (vals, whole, took) in rows.items():
        cells = " | ".join(f"{v:.4f}" for v in vals[:3])
        print(f"| {precision} | {cells} | **{whole:.4f}** | {took:.0f} |")
    gap = rows["bfloat16"][1] - rows["float32"][1]
    print(f"\nbfloat16 minus float32 after the same steps: {gap:+.4f} nats.")


if __name__ == "__main__":
    main()
