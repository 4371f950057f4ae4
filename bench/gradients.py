"""How far back the gradient reaches in each cell, measured: `python bench/gradients.py`.

Each cell (LSTM, GRU, vanilla RNN) at the `tiny` preset (the same parameter count), untrained and
after the same number of steps on each corpus; then `charrnn memory --gradients`'s library call
(memory.gradient_by_distance) on the corpus's held-out end: how much of the gradient of a
character's loss reaches 1-5, 6-10, ... 201-400 characters back, over its size one character
back, and its size itself (absolute). Prints two tables per corpus, with the command, date and
machine; `--quick` is CI-sized.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from report import header

from charrnn import checkpoint
from charrnn.model.config import CELLS
from charrnn.runs import RunDir
from charrnn.text.encoded import encode_corpus
from charrnn.text.resolve import resolve
from charrnn.train.start import start
from charrnn.use import memory

HELD_OUT = 100_000  # characters at the corpus's end read (its validation split holds them)


def measured(corpus_spec: str, cell: str, steps: int, folder: Path) -> tuple[list, list]:
    """(untrained bins, trained bins) of one cell on one corpus."""
    cache = folder / "cache"
    corpus = encode_corpus(resolve([corpus_spec], cache), cache)
    text = corpus.vocab.decode(corpus.ids[-HELD_OUT:].tolist())
    run = RunDir(folder / f"{Path(corpus_spec).stem}-{cell}")
    run.path.mkdir(parents=True, exist_ok=True)
    opened = start(corpus, run, size="tiny", cell=cell, train={"max_steps": steps})
    before = memory.gradient_by_distance(opened.trainer.trained, text)
    for _ in opened.trainer.run():
        pass
    after = memory.gradient_by_distance(checkpoint.load_model(run.best), text)
    return before, after


def table(rows: list[tuple[str, list]], field: str) -> str:
    """A markdown table of each model's bins, their `relative` or `absolute` size."""
    labels = [b.label for b in rows[0][1]]
    lines = [
        "| model | " + " | ".join(f"{label} back" for label in labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, bins in rows:
        lines.append(f"| {name} | " + " | ".join(f"{getattr(b, field):.2g}" for b in bins) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpora", nargs="*", default=["recall"], help="files or catalog names")
    p.add_argument("--steps", type=int, default=1500, help="training steps of each model")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    p.add_argument("--quick", action="store_true", help="a CI-sized run: 20 steps")
    args = p.parse_args()
    steps = 20 if args.quick else args.steps
    print(header())
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.corpora:
            rows = []
            for cell in args.cells.split(","):
                before, after = measured(spec, cell, steps, Path(tmp))
                name = cell.upper()
                rows += [(f"{name} untrained", before), (f"{name} {steps:,} steps", after)]
            print(f"\n{spec}: the gradient's size k characters back, over its size 1 back\n")
            print(table(rows, "relative"))
            print(f"\n{spec}: the gradient's size k characters back (absolute)\n")
            print(table(rows, "absolute"))
            sys.stdout.flush()


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
