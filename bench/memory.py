"""How far back each cell remembers, measured: `python bench/memory.py`.

Two tables, from models trained here, each cell at the same parameter count (`--size` scales the
GRU and the RNN to the LSTM's) and the same budget:

  recall     each cell, for each backprop window T, trained on the recall corpus (charrnn/memory.py:
             an opener of K kinds, d random letters, '=', the matching closer) for the same number
             of characters; then the bits it spends on the closer at each gap d, read on a fresh
             text (another seed). Chance is log2 K bits; 0 is perfect memory. Beside it: the
             validation bits per character, the training speed, and the minutes it took.
  real text  each cell trained on a real corpus (default: pystdlib, Python source) for the same
             time; then the bits on each closing bracket by how far back its opener is, read over
             the validation split (Karpathy, Johnson & Fei-Fei 2015 did this for `}` in Linux).

Runs go side by side in `--jobs` processes of one thread each (the same conditions for every
cell). `--quick` is a CI-sized version: a tiny model, a short corpus, a few seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from charrnn import checkpoint, memory
from charrnn.config import CELLS
from charrnn.encoded import encode_text
from charrnn.runs import RunDir
from charrnn.start import start_run
from charrnn.trainer import EvalEvent

QUICK_GAPS = (2, 8, 24)


@dataclasses.dataclass(frozen=True)
class RecallJob:
    """One model trained on the recall task and measured at every gap."""

    cell: str
    seq_len: int
    chars: int  # characters trained: the same budget for every cell and T
    size: str = "tiny"
    batch_size: int = 32
    gaps: tuple[int, ...] = memory.GAPS
    kinds: int = memory.KINDS
    corpus_chars: int = 2_000_000
    eval_chars: int = 200_000
    hidden_size: int | None = None  # None: the preset's, scaled to the cell
    seed: int = 0


def train_recall(job: RecallJob) -> dict:
    """Train `job`'s model on a recall text (seed 0), then read a fresh one (seed 1)."""
    torch.set_num_threads(1)
    text = memory.recall_text(job.corpus_chars, job.gaps, job.kinds, seed=0)
    fresh = memory.recall_text(job.eval_chars, job.gaps, job.kinds, seed=1)
    model_options = {"hidden_size": job.hidden_size} if job.hidden_size else {}
    steps = max(1, job.chars // (job.batch_size * job.seq_len))
    train = {
        "batch_size": job.batch_size,
        "seq_len": job.seq_len,
        "max_steps": steps,
        "eval_every": max(1, steps // 4),
        "seed": job.seed,
    }
    with tempfile.TemporaryDirectory() as tmp:
        trainer = start_run(
            encode_text(text, "recall"),
            RunDir(Path(tmp)),
            size=job.size,
            cell=job.cell,
            model=model_options,
            train=train,
        )
        start = time.perf_counter()
        evals = [e.record for e in trainer.run() if isinstance(e, EvalEvent)]
        seconds = time.perf_counter() - start
        best = trainer.run_dir.best
        model, vocab = checkpoint.restore_model(checkpoint.load(best), best)
    results = memory.recall_loss(model, vocab, fresh, kinds=job.kinds)
    return {
        **dataclasses.asdict(job),
        "hidden": model.config.hidden_size,
        "params": model.num_params(),
        "steps": steps,
        "seconds": seconds,
        "chars_per_s": steps * job.batch_size * job.seq_len / seconds,
        "val_bpc": min(r["val_bpc"] for r in evals),
        "bits": {r.gap: r.bits for r in results.values()},
        "accuracy": {r.gap: r.accuracy for r in results.values()},
        "chance": math.log2(job.kinds),
    }


@dataclasses.dataclass(frozen=True)
class RealJob:
    """One model trained on a real corpus for a time budget, then read closer by closer."""

    cell: str
    corpus: str  # a path, or a catalog name (pystdlib is built offline)
    seconds: float
    size: str = "auto"
    limit: int = 100_000  # validation characters read for the closer table


def train_real(job: RealJob, folder: str) -> dict:
    """Train `job` through the CLI's own path (a run folder), then measure its closers."""
    torch.set_num_threads(1)
    from charrnn.corpus import resolve
    from charrnn.encoded import encode_corpus

    cache = Path(folder) / "cache"
    corpus = encode_corpus(resolve([job.corpus], cache), cache)
    run = RunDir(Path(folder) / f"{Path(job.corpus).stem}-{job.cell}")
    run.path.mkdir(parents=True, exist_ok=True)
    train = {"max_time": job.seconds}
    trainer = start_run(corpus, run, size=job.size, cell=job.cell, train=train)
    evals = [e.record for e in trainer.run() if isinstance(e, EvalEvent)]
    return {
        **dataclasses.asdict(job),
        "run": str(run.path),
        "val_bpc": min(r["val_bpc"] for r in evals),
        **closers(run, job.limit),
    }


def closers(run: RunDir, limit: int) -> dict:
    """The closer table of a trained run, over the start of its validation split."""
    payload = checkpoint.load(run.best)
    model, vocab = checkpoint.restore_model(payload, run.best)
    from charrnn.corpus import resolve
    from charrnn.data import split

    cache = run.path.parent / "cache"
    sources = payload["corpus"]["sources"]
    text = "".join(resolve(sources, cache).text_chunks())
    _, val = split(torch.arange(len(text)), payload["train_config"]["val_frac"])
    held_out = text[int(val[0]) :][:limit]
    table = memory.closer_loss_by_distance(model, vocab, held_out, limit=limit)
    bins = {}  # all closers together, per distance bin
    for found in table.values():
        for b in found:
            total = bins.setdefault(b.label, [0, 0.0])
            if b.count:
                total[0] += b.count
                total[1] += b.count * b.bits
    return {
        "cell": model.config.cell,
        "params": model.num_params(),
        "closers": {k: (n, s / n if n else math.nan) for k, (n, s) in bins.items()},
    }


def recall_table(rows: list[dict]) -> str:
    gaps = rows[0]["gaps"]
    head = "| cell | T | " + " | ".join(f"d={d}" for d in gaps) + " | val bpc | chars/s | min |"
    lines = [head, "|" + " --- |" * (len(gaps) + 5)]
    for r in sorted(rows, key=lambda r: (CELLS.index(r["cell"]), r["seq_len"])):
        bits = " | ".join(f"{r['bits'][d]:.2f}" for d in gaps)
        lines.append(
            f"| {r['cell'].upper()} 1x{r['hidden']} | {r['seq_len']} | {bits} | "
            f"{r['val_bpc']:.3f} | {r['chars_per_s']:,.0f} | {r['seconds'] / 60:.1f} |"
        )
    return "\n".join(lines)


def real_table(rows: list[dict]) -> str:
    labels = list(rows[0]["closers"])
    lines = [
        "| cell | val bpc | " + " | ".join(f"{b} back" for b in labels) + " |",
        "|" + " --- |" * (len(labels) + 2),
    ]
    for r in rows:
        cells = " | ".join(f"{bits:.2f} ({n})" for n, bits in r["closers"].values())
        lines.append(f"| {r['cell'].upper()} | {r['val_bpc']:.3f} | {cells} |")
    return "\n".join(lines)


def quick() -> list[dict]:
    """The CI-sized run: an LSTM and an RNN of ~10k parameters, K=4, gaps 2/8/24, T=32."""
    jobs = [
        RecallJob(
            cell,
            seq_len=32,
            chars=1_600_000,
            size="tiny",
            batch_size=16,
            gaps=QUICK_GAPS,
            kinds=4,
            corpus_chars=100_000,
            eval_chars=20_000,
            hidden_size={"lstm": 24, "gru": 28, "rnn": 48}[cell],
        )
        for cell in ("lstm", "rnn")
    ]
    return [train_recall(job) for job in jobs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI-sized check (seconds)")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    p.add_argument("--seq-lens", default="32,128,512", help="backprop windows T to compare")
    p.add_argument("--chars", type=float, default=4e6, help="characters trained per recall model")
    p.add_argument("--size", default="tiny", help="preset for the recall models")
    p.add_argument("--real-corpus", default="pystdlib", help="corpus for the real-text table")
    p.add_argument("--real-time", type=float, default=136.5, help="seconds per real-text model")
    p.add_argument("--real-size", default="auto", help="preset for the real-text models")
    p.add_argument("--no-real", action="store_true", help="only the recall table")
    p.add_argument("--no-recall", action="store_true", help="only the real-text table")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes at once")
    p.add_argument("--keep", metavar="DIR", help="keep the real-text runs in DIR")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = p.parse_args()
    print(f"# memory: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, ")
    print(f"# {args.jobs} processes of 1 thread, {time.strftime('%Y-%m-%d %H:%M')}")
    if args.quick:
        rows = quick()
        print(recall_table(rows))
        lstm, rnn = rows
        beats = [d for d in QUICK_GAPS if lstm["bits"][d] < rnn["bits"][d] - 0.2]
        print(f"# LSTM beats the RNN by 0.2+ bits at gaps: {beats or 'none'}")
        sys.exit(0 if beats else 1)
    cells = args.cells.split(",")
    seq_lens = [int(t) for t in args.seq_lens.split(",")]
    out: dict = {"recall": [], "real": []}
    folder = args.keep or tempfile.mkdtemp(prefix="charrnn-memory-")
    with ProcessPoolExecutor(args.jobs) as pool:
        recall = [] if args.no_recall else [
            pool.submit(train_recall, RecallJob(cell, t, int(args.chars), size=args.size))
            for cell in cells for t in seq_lens
        ]  # fmt: skip
        real = [] if args.no_real else [
            pool.submit(
                train_real,
                RealJob(cell, args.real_corpus, args.real_time, size=args.real_size),
                folder,
            )
            for cell in cells
        ]  # fmt: skip
        out["recall"] = [f.result() for f in recall]
        out["real"] = [f.result() for f in real]
    if out["recall"]:
        r = out["recall"][0]
        print(
            f"\n## Recall: bits on the closer after d random letters (chance {r['chance']:.2f}; "
            f"{r['chars'] / 1e6:g}M characters trained each, B {r['batch_size']}, K {r['kinds']})"
        )
        print(recall_table(out["recall"]))
    if out["real"]:
        r = out["real"][0]
        print(
            f"\n## Real text: bits on each closing bracket by distance to its opener "
            f"({r['corpus']}, {r['seconds']:g} s each, first {r['limit']:,} validation chars)"
        )
        print(real_table(out["real"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
