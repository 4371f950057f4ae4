"""Quality per minute of training: `python bench/quality.py [--budget 136.5] [-- TRAIN OPTIONS]`.

Runs `charrnn train` on tinyshakespeare (1,115,394 characters; validation = the last 10%, as
nanoGPT splits it) with charrnn's own defaults for the given wall-clock budget, then prints the
best validation loss beside the reference figures measured on the development machine (2 cores).
Anything after `--` is passed to `charrnn train` (that is how the search in the README was run).

    python bench/quality.py                      # 136.5 s, the defaults
    python bench/quality.py --budget 600         # 10 minutes
    python bench/quality.py -- --hidden 384 --lr 4e-3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charrnn import checkpoint
from charrnn.runs import is_evaluation

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "tinyshakespeare.txt"
# (system, best val nats/char in 136.5 s, chars/s): measured on this 2-core machine (issue 3)
REFERENCES = [
    ("nanoGPT baby GPT (4x128, 0.8M params)", 1.886, 11_200),
    ("plain PyTorch LSTM 2x256, Adam 2e-3", 1.642, 17_000),
    ("plain PyTorch LSTM 2x512", 1.942, 5_000),
]


def main() -> None:
    args, extra = parse()
    corpus = Path(args.corpus)
    if not corpus.is_file():
        sys.exit(f"no corpus at {corpus}: give --corpus PATH (tinyshakespeare.txt)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        cmd = [
            sys.executable, "-m", "charrnn", "train", str(corpus), "--name", "bench",
            "--time", f"{args.budget}s", "--checkpoint-dir", tmp, *extra,
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # its progress: on stderr
        wall = time.perf_counter() - start
        lines = (Path(tmp) / "bench" / "metrics.jsonl").read_text().splitlines()
        records = [r for r in map(json.loads, lines) if is_evaluation(r)]  # not training records
        saved = checkpoint.load(Path(tmp) / "bench" / "last.pt")
    tc, mc = saved["train_config"], saved["model_config"]
    best = min(records, key=lambda r: r["val_loss"])
    last = records[-1]
    chars = last["step"] * tc["batch_size"] * tc["seq_len"]
    result = {
        "budget_s": args.budget,
        "options": " ".join(extra) or "(defaults)",
        "model": f"{mc.get('cell', 'lstm').upper()} {mc['num_layers']}x{mc['hidden_size']} "
        f"emb {mc['embedding_dim']} "
        f"dropout {mc['dropout']}",
        "train": f"B {tc['batch_size']} T {tc['seq_len']} lr {tc['lr']:g}",
        "best_val": best["val_loss"],
        "best_val_bpc": round(best["val_loss"] / math.log(2), 4),
        "best_at_step": best["step"],
        "steps": last["step"],
        "epochs": last["epoch"],
        "chars_per_s": round(chars / last["elapsed"]),
        "wall_s": round(wall, 1),
        # soundness from a cold start, at every evaluation (None: a split too short to check)
        "cold_runaways": [_runaways(r.get("cold_start")) for r in records],
        "cold_gap_last": _gap(last.get("cold_start")),
        "val_worst_last": last.get("val_worst"),
    }
    report(args, result)
    if args.log:
        with open(args.log, "a") as f:
            f.write(json.dumps(result) + "\n")


def _runaways(c: dict | None) -> int | None:
    """Starts that ran away, from a zero state or after the lead-in, whichever is more."""
    return None if not c else max(c["runaways"], c["runaways_lead_in"])


def _gap(c: dict | None) -> float | None:
    return None if not c else round(max(c["gap"], c["gap_lead_in"]), 4)


def parse() -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=136.5, help="seconds of training")
    p.add_argument("--corpus", default=str(CORPUS.resolve()))
    p.add_argument("--log", help="append the result as a JSON line to this file")
    p.add_argument("--keep", metavar="DIR", help="checkpoint folder to keep (default: temporary)")
    return p.parse_args(argv), extra


def report(args, r: dict) -> None:
    print(f"# quality: {platform.node()} {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"# charrnn train tinyshakespeare --time {args.budget}s {r['options']}")
    print(f"# model {r['model']}; {r['train']}")
    print("| system | best val (nats/char) | bits/char | chars/s |")
    print("| --- | --- | --- | --- |")
    print(
        f"| charrnn {r['options']} | **{r['best_val']:.4f}** | {r['best_val_bpc']:.3f} "
        f"| {r['chars_per_s']:,} |"
    )
    if args.budget == 136.5:
        for name, val, speed in REFERENCES:
            print(f"| {name} | {val:.3f} | {val / math.log(2):.3f} | {speed:,} |")
    print(
        f"# {r['steps']:,} steps, {r['epochs']} epochs, best at step {r['best_at_step']:,}; "
        f"{r['wall_s']} s wall clock with start-up and the last evaluation"
    )
    print(
        f"# cold starts: runaways of 256 at each evaluation {r['cold_runaways']}; "
        f"last gap {r['cold_gap_last']} nats; worst validation stream {r['val_worst_last']}"
    )


if __name__ == "__main__":
    main()
