"""How far back each cell remembers, measured: `python bench/memory.py`.

Two tables, from models trained here, each cell at the same parameter count (`--size` scales the
GRU and the RNN to the LSTM's) and the same budget:

  recall     each cell, for each backprop window T, trained on the recall corpus (memory.py:
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
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

from charrnn import checkpoint
from charrnn.model.config import CELLS
from charrnn.model.presets import PRESETS, for_cell
from charrnn.runs import RunDir
from charrnn.text import recall
from charrnn.text.encoded import encode_text
from charrnn.train.start import start
from charrnn.train.trainer import EvalEvent
from charrnn.use import memory

QUICK_GAPS = (4, 16, 64, 256)


@dataclasses.dataclass(frozen=True)
class RecallJob:
    """One model trained on the recall task and measured at every gap."""

    cell: str
    seq_len: int
    chars: int  # characters trained: the same budget for every cell and T
    size: str = "tiny"
    batch_size: int = 32
    gaps: tuple[int, ...] = recall.GAPS
    kinds: int = recall.KINDS
    corpus_chars: int = 2_000_000
    eval_chars: int = 200_000
    hidden_size: int | None = None  # None: the preset's, scaled to the cell
    seed: int = 0


def train_recall(job: RecallJob) -> dict:
    """Train `job`'s model on a recall text (seed 0), then read a fresh one (seed 1)."""
    torch.set_num_threads(1)
    text = recall.recall_text(job.corpus_chars, job.gaps, job.kinds, seed=0)
    fresh = recall.recall_text(job.eval_chars, job.gaps, job.kinds, seed=1)
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
        trainer = start(
            encode_text(text, "recall"),
            RunDir(Path(tmp)),
            size=job.size,
            cell=job.cell,
            model=model_options,
            train=train,
        ).trainer
        began = time.perf_counter()
        evals = [e.record for e in trainer.run() if isinstance(e, EvalEvent)]
        seconds = time.perf_counter() - began
        best = trainer.run_dir.best
        model = checkpoint.load_model(best, verify=True)
    results = memory.recall_loss(model, fresh, kinds=job.kinds)
    return {
        **dataclasses.asdict(job),
        "hidden": model.config.hidden_size,
        "params": model.net.num_params(),
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
    from charrnn.text.encoded import encode_corpus
    from charrnn.text.resolve import resolve

    cache = Path(folder) / "cache"
    corpus = encode_corpus(resolve([job.corpus], cache), cache)
    run = RunDir(Path(folder) / f"{Path(job.corpus).stem}-{job.cell}")
    run.path.mkdir(parents=True, exist_ok=True)
    train = {"max_time": job.seconds}
    trainer = start(corpus, run, size=job.size, cell=job.cell, train=train).trainer
    for _ in trainer.run():
        pass
    return {
        **dataclasses.asdict(job),
        "run": str(run.path),
        **closers(run.best, job.limit),
    }


def closers(path: Path, limit: int, text_file: Path | None = None) -> dict:
    """The closer table of a checkpoint, over the start of its validation split: of its own
    corpus, or of `text_file` (the same text, moved: e.g. a run trained on another machine)."""
    payload = checkpoint.load(path)
    model = checkpoint.restore(payload, path)
    from charrnn.text.resolve import resolve

    specs = [str(text_file)] if text_file else payload["corpus"]["sources"]
    cache = Path(tempfile.gettempdir()) / "charrnn-memory-cache"
    text = "".join(resolve(specs, cache).text_chunks())
    n_train = int(len(text) * (1.0 - payload["train_config"]["val_frac"]))  # as data.split cuts
    held_out = text[n_train:][:limit]
    bins = memory.merged(memory.closer_loss_by_distance(model, held_out, limit=limit))
    return {
        "run": path.parent.name,  # the row's name: runs given (--closers) may share a cell
        "cell": model.config.cell,
        "params": model.net.num_params(),
        "val_bpc": min(r["val_bpc"] for r in payload["metrics"] if "val_bpc" in r),
        "closers": {b.label: (b.count, b.bits) for b in bins},  # all pairs together
    }


def closers_job(args: tuple) -> dict:
    torch.set_num_threads(1)
    return closers(*args)


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
    named = "run" in rows[0]  # each by its run's name (absent in a --from-json of before)
    lines = [
        f"| {'run | ' * named}cell | val bpc | " + " | ".join(f"{b} back" for b in labels) + " |",
        "|" + " --- |" * (len(labels) + 2 + named),
    ]
    for r in rows:
        cells = " | ".join(f"{bits:.2f} ({n})" for n, bits in r["closers"].values())
        run = f"{r['run']} | " if named else ""
        lines.append(f"| {run}{r['cell'].upper()} | {r['val_bpc']:.3f} | {cells} |")
    return "\n".join(lines)


def draw(out: dict, path: Path) -> None:
    """The two tables as one figure (needs matplotlib: pip install 'charrnn[plot]')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("recall", "real") if out[k]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    colours = {"lstm": "tab:blue", "gru": "tab:green", "rnn": "tab:red"}
    styles = ["-", "--", ":", "-."]
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "recall":
            windows = sorted({r["seq_len"] for r in out["recall"]})
            for r in out["recall"]:
                gaps = r["gaps"]
                ax.plot(
                    gaps,
                    [r["bits"][d] for d in gaps],
                    styles[windows.index(r["seq_len"]) % 4],
                    marker="o",
                    color=colours[r["cell"]],
                    label=f"{r['cell'].upper()} T={r['seq_len']}",
                )
            ax.axhline(out["recall"][0]["chance"], color="grey", lw=0.8)
            ax.text(gaps[0], out["recall"][0]["chance"] + 0.05, "chance", color="grey")
            ax.set_xscale("log")
            ax.set_xlabel("gap d: random characters between opener and closer")
            ax.set_title("Recall: bits on the closer")
        else:
            for r in out["real"]:
                labels = [k for k, (n, _) in r["closers"].items() if n]
                ax.plot(
                    labels,
                    [r["closers"][k][1] for k in labels],
                    marker="o",
                    color=colours[r["cell"]],
                    label=r["cell"].upper(),
                )
            ax.set_xlabel("characters back to the opener")
            ax.set_title("Python source: bits on each closing bracket")
        ax.set_ylabel("bits")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def quick() -> list[dict]:
    """The CI-sized run: an LSTM (1x24) and an RNN as big, K=4, gaps 4/16/64/256, T=32."""
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
            hidden_size=for_cell(replace(PRESETS["tiny"], hidden_size=24), cell, 20).hidden_size,
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
    p.add_argument(
        "--closers",
        nargs="+",
        metavar="CKPT",
        help="only the real-text table, of these trained checkpoints (nothing is trained)",
    )
    p.add_argument("--closers-text", metavar="FILE", help="their corpus, if it moved")
    p.add_argument("--limit", type=int, default=100_000, help="validation characters read")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    p.add_argument("--png", metavar="FILE", help="draw both tables (needs matplotlib)")
    p.add_argument("--from-json", metavar="FILE", help="print (and draw) a saved --json again")
    args = p.parse_args()
    from report import header  # here: tests load this file by its path, bench/ not on sys.path

    print(header())
    if args.quick:
        rows = quick()
        print("\n" + recall_table(rows))
        lstm, rnn = rows
        beats = [d for d in QUICK_GAPS if lstm["bits"][d] < rnn["bits"][d] - 0.2]
        print(f"\nThe LSTM beats the RNN by 0.2+ bits at gaps: {beats or 'none'}.")
        sys.exit(0 if beats else 1)
    if args.from_json:
        out = json.loads(Path(args.from_json).read_text())
        for part in out.values():  # JSON keys are strings; the gaps are ints
            for r in part:
                for key in ("bits", "accuracy"):
                    if key in r:
                        r[key] = {int(k): v for k, v in r[key].items()}
        report(out, args)
        return
    cells = args.cells.split(",")
    seq_lens = [int(t) for t in args.seq_lens.split(",")]
    out: dict = {"recall": [], "real": []}
    folder = args.keep or tempfile.mkdtemp(prefix="charrnn-memory-")
    doing = "measuring" if args.closers else "training"
    print(f"{args.jobs} process{'es' * (args.jobs != 1)} of 1 thread at once, {doing}.")
    with ProcessPoolExecutor(args.jobs) as pool:
        recall = [] if args.no_recall or args.closers else [
            pool.submit(train_recall, RecallJob(cell, t, int(args.chars), size=args.size))
            for cell in cells for t in seq_lens
        ]  # fmt: skip
        real = [] if args.no_real or args.closers else [
            pool.submit(
                train_real,
                RealJob(cell, args.real_corpus, args.real_time, args.real_size, args.limit),
                folder,
            )
            for cell in cells
        ]  # fmt: skip
        if args.closers:
            text = Path(args.closers_text) if args.closers_text else None
            real = [pool.submit(closers_job, (Path(c), args.limit, text)) for c in args.closers]
        out["recall"] = [f.result() for f in recall]
        out["real"] = [f.result() for f in real]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    report(out, args)


def report(out: dict, args) -> None:
    if out["recall"]:
        r = out["recall"][0]
        print(
            f"\n## Recall: bits on the closer after d random letters (chance {r['chance']:.2f}; "
            f"{r['chars'] / 1e6:g}M characters trained each, B {r['batch_size']}, K {r['kinds']})"
        )
        print(recall_table(out["recall"]))
    if out["real"]:
        r = out["real"][0]
        how = f"{r['corpus']}, {r['seconds']:g} s each" if "corpus" in r else "the runs given"
        print(
            f"\n## Real text: bits on each closing bracket by distance to its opener "
            f"({how}, the first {args.limit:,} characters of the validation split; "
            "bits (count))"
        )
        print(real_table(out["real"]))
    if args.png:
        draw(out, Path(args.png))


if __name__ == "__main__":
    main()
