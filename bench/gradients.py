"""How far back the gradient reaches in each cell, measured: `python bench/gradients.py`.

Each cell (LSTM, GRU, vanilla RNN) at the `tiny` preset (the same parameter count), untrained and
after the same number of steps on each corpus; then `charrnn memory --gradients`'s library call
(memory.gradient_by_distance) on the corpus's held-out end: how much of the gradient of a
character's loss reaches 1-5, 6-10, ... 201-400 characters back, over its size one character
back, and its size itself (absolute); on the recall corpus, also the loss of its closers alone
(the characters that depend on what came long before). Prints two tables per corpus and trace,
with the command, date and machine; `--quick` is CI-sized.
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
from charrnn.text.recall import PAIRS
from charrnn.text.resolve import resolve
from charrnn.train.start import start
from charrnn.use import memory

HELD_OUT = 100_000  # characters at the corpus's end read (its validation split holds them)


def measured(corpus_spec: str, cell: str, steps: int, folder: Path) -> dict[str, tuple]:
    """{what is traced: (untrained bins, trained bins)} of one cell on one corpus: every
    character's loss, and on the recall corpus its closers' alone."""
    cache = folder / "cache"
    corpus = encode_corpus(resolve([corpus_spec], cache), cache)
    text = corpus.vocab.decode(corpus.ids[-HELD_OUT:].tolist())
    run = RunDir(folder / f"{Path(corpus_spec).stem}-{cell}")
    run.path.mkdir(parents=True, exist_ok=True)
    opened = start(corpus, run, size="tiny", cell=cell, train={"max_steps": steps})
    traced = {"every character": None}
    if corpus_spec == "recall":  # the closers, whose loss depends on their opener far back
        traced["the closers"] = [c for _, c in memory.match_pairs(text, PAIRS)]
    before = {k: memory.gradient_by_distance(opened.trainer.trained, text, among=among)
              for k, among in traced.items()}  # fmt: skip
    for _ in opened.trainer.run():
        pass
    model = checkpoint.load_model(run.best)
    return {
        k: (before[k], memory.gradient_by_distance(model, text, among=among))
        for k, among in traced.items()
    }


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
            rows: dict[str, list] = {}
            for cell in args.cells.split(","):
                name = cell.upper()
                for what, (before, after) in measured(spec, cell, steps, Path(tmp)).items():
                    pair = [(f"{name} untrained", before), (f"{name} {steps:,} steps", after)]
                    rows.setdefault(what, []).extend(pair)
            for what, found in rows.items():
                title = f"{spec}, the loss of {what}: its gradient k characters back"
                print(f"\n{title}, over 1 back\n")
                print(table(found, "relative"))
                print(f"\n{title} (absolute)\n")
                print(table(found, "absolute"))
            sys.stdout.flush()


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
