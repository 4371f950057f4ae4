"""Do smaller evaluations still choose the same best.pt and still catch a runaway?
`python bench/eval_policy.py CORPUS CHECKPOINT...`

For checkpoints of one run (saved at its evaluations), this evaluates each as `charrnn train` does,
at the whole size of a run without a time budget and at smaller sizes a time budget chooses
(train/evalplan.py: streams x characters of each read, cold starts checked), and prints, for
each size, the validation loss and the runaway cold starts (zero state / after the lead-in) of
every checkpoint, the checkpoint each size would keep as best.pt, and the seconds it took.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from report import header

from charrnn import checkpoint
from charrnn.text.data import StreamBatcher, split
from charrnn.text.encoded import encode_text
from charrnn.train import coldstart, evalplan
from charrnn.train.evalplan import EvalSize
from charrnn.train.evaluate import evaluate


def sizes(batches: StreamBatcher, starts: int) -> list[EvalSize]:
    """The whole, a time budget's floor, its floor on few streams, and its least."""
    b, length = batches.batch_size, batches.stream_len
    return [
        EvalSize(b, length, starts),
        EvalSize(b, evalplan.MIN_CHARS, evalplan.MIN_STARTS),
        EvalSize(evalplan.MIN_STREAMS, evalplan.MIN_CHARS, evalplan.MIN_STARTS),
        EvalSize(*evalplan.LEAST),
    ]


def measure(path: Path, ids) -> list[tuple[float, int, int, float]]:
    """(val loss, runaways, runaways after the lead-in, seconds) at each size for one checkpoint
    of a run on the text `ids` (in the run's vocabulary)."""
    payload = checkpoint.load(path)
    model = checkpoint.restore(payload, path)
    batches = validation(checkpoint.run_state(payload, model).config, ids)
    out = []
    for size in sizes(batches, payload["train_config"]["cold_start_checks"]):
        start = time.perf_counter()
        warm = evaluate(model, batches, streams=size.streams, chars=size.chars)
        report = coldstart.check(model, batches.ids, warm, size.starts)
        seconds = time.perf_counter() - start
        out.append((warm.loss, report.runaways, report.runaways_lead_in, seconds))
    return out


def validation(c, ids) -> StreamBatcher:
    """The validation streams a run of config `c` evaluates on."""
    _, val = split(ids, c.val_frac)
    return StreamBatcher(val[: c.max_val_chars], c.batch_size, c.seq_len)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("checkpoints", type=Path, nargs="+")
    args = p.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    print(header())
    corpus = encode_text(text, "bench")  # the vocabulary of a run on this text alone
    first = checkpoint.load_run(args.checkpoints[0])
    if list(first.vocab.chars) != list(corpus.vocab.chars):
        raise SystemExit(f"{args.checkpoints[0]} was not trained on {args.corpus}")
    batches = validation(first.config, corpus.ids)
    names = [f"{s.streams}x{s.chars}, {s.starts} starts" for s in sizes(batches, 256)]
    print("| step | " + " | ".join(names) + " |")
    print("| ---: |" + " ---: |" * len(names))
    rows, steps = [], []
    for path in args.checkpoints:
        steps.append(checkpoint.load_run(path).position.step)
        rows.append(measure(path, corpus.ids))
        cells = [f"{loss:.4f}, {z}/{lead} ({s:.1f} s)" for loss, z, lead, s in rows[-1]]
        print(f"| {steps[-1]:,} | " + " | ".join(cells) + " |", flush=True)
    best = [steps[min(range(len(rows)), key=lambda i: rows[i][k][0])] for k in range(len(names))]
    print("| best.pt | " + " | ".join(f"step {s:,}" for s in best) + " |")


if __name__ == "__main__":
    main()
