"""Evaluations in bfloat16 against float32: `python bench/eval_precision.py CKPT TEXT [...]`.

Each CKPT (a best.pt) is read over the validation split of TEXT, the text it was trained on,
as its run's evaluations read it (its streams, its split): the loss over the whole split and the
seconds of the read and of a cold-start check of 64 starts, in float32 and under autocast to
bfloat16 (what a run whose steps are bfloat16 evaluates in), the two taking turns (the median of
--turns each), so that a drift in the machine's speed falls on both alike. One Markdown row a
checkpoint. bfloat16 must be native here (AVX-512 BF16 or AMX).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from report import header

from charrnn import checkpoint
from charrnn.devices import autocast_dtype
from charrnn.errors import ConfigError
from charrnn.text.data import StreamBatcher, split
from charrnn.train import coldstart
from charrnn.train.evaluate import evaluate

STARTS = 64  # cold starts checked: what a time budget's plan checks at least (evalplan.MIN_STARTS)


def read(model, batches: StreamBatcher, ids: torch.Tensor, bf16: bool) -> tuple[float, ...]:
    """(loss, read seconds, check seconds) of one evaluation, in bfloat16 or float32."""
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        result = evaluate(model, batches)
        mid = time.perf_counter()
        coldstart.check(model, ids, result, STARTS)
        end = time.perf_counter()
    return result.loss, mid - start, end - mid


def row(path: Path, text: Path, turns: int) -> str:
    payload = checkpoint.load(path)
    model = checkpoint.restore(payload, path)
    c = payload["train_config"]
    ids = torch.as_tensor(model.vocab.encode(text.read_text(encoding="utf-8")))
    _, val = split(ids, c["val_frac"])
    batches = StreamBatcher(val, c["batch_size"], c["seq_len"])
    runs: dict[bool, list] = {False: [], True: []}
    for _ in range(turns):
        for bf16 in (False, True):
            runs[bf16].append(read(model, batches, val, bf16))
    (f32, *_), (b16, *_) = runs[False][0], runs[True][0]  # the same figure at every turn
    secs = {k: [statistics.median(r[i] for r in v) for i in (1, 2)] for k, v in runs.items()}
    m = model.net.config
    name = f"{path.parent.name} ({m.cell.upper()} {m.num_layers}x{m.hidden_size})"
    return (
        f"| {name} | {len(val):,} | {f32:.5f} | {b16:.5f} | {b16 - f32:+.5f} "
        f"| {secs[False][0]:.3f} | {secs[True][0]:.3f} | {secs[False][0] / secs[True][0]:.2f}x "
        f"| {secs[False][1]:.3f} | {secs[True][1]:.3f} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pairs", nargs="+", help="CKPT TEXT, one pair a model")
    p.add_argument("--turns", type=int, default=3, help="turns of each precision")
    args = p.parse_args()
    if len(args.pairs) % 2:
        sys.exit("give CKPT TEXT pairs: each checkpoint with the text it was trained on")
    try:
        autocast_dtype("bfloat16", torch.device("cpu"))
    except ConfigError as e:
        sys.exit(f"nothing to compare here: {e}")
    print(header())
    print(f"{torch.get_num_threads()} threads; cold-start checks of {STARTS} starts.\n")
    print(
        "| run (model) | validation chars | float32 nats | bfloat16 nats | difference "
        "| read float32 s | read bfloat16 s | faster | check float32 s | check bfloat16 s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for ckpt, text in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        print(row(Path(ckpt), Path(text), args.turns), flush=True)


if __name__ == "__main__":
    main()
