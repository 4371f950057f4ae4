"""What dropout's mask costs a training step: `python bench/dropout_mask.py [--rate P]`.

For the small and medium presets (LSTM, dropout P after the layer, input dropout 0.1, as `auto`
gives a text read about six times) and the large one (three layers: dropout P between them too),
the real training step (Trainer.train_step, in the arithmetic `charrnn train` uses here) with
three masks in turn, a turn each so that the machine's drift hits them alike (each mask first in
a turn as often as the others): PyTorch's (nn.Dropout, and between layers the LSTM kernel's own),
charrnn's (model.network.Dropout: four values a 64-bit draw), and none (dropout 0). It prints the
median milliseconds a step of each, and the share of the step PyTorch's mask costs that charrnn's
saves.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from report import header
from throughput import make_trainer
from torch import nn

from charrnn.model.network import Dropout
from charrnn.model.presets import PRESETS


def step_ms(name: str, rate: float, turns: int, steps: int) -> dict[str, float]:
    """Median ms per training step of preset `name` under each mask, over `turns` turns."""
    preset = replace(PRESETS[name], dropout=rate)
    between = rate if preset.num_layers > 1 else 0.0
    # each: (after the layer, at the input, between layers, the kernel's own between layers)
    masks = {
        "PyTorch's (nn.Dropout)": lambda: (nn.Dropout(rate), nn.Dropout(0.1), Dropout(0), between),
        "charrnn's (Dropout)": lambda: (Dropout(rate), Dropout(0.1), Dropout(between), 0.0),
        "none": lambda: (Dropout(0.0), Dropout(0.0), Dropout(0.0), 0.0),
    }
    times: dict[str, list[float]] = {kind: [] for kind in masks}
    with tempfile.TemporaryDirectory() as tmp:
        tr = make_trainer(preset, "lstm", Path(tmp))
        order = list(masks)
        for turn in range(turns):  # each mask takes each place in a turn in turn
            for kind in order[turn % 3 :] + order[: turn % 3]:
                m = tr.model
                m.drop, m.drop_in, m.drop_between, m.rnn.dropout = masks[kind]()
                tr.model.train()
                for _ in range(3):  # warm-up: the first steps after a change are slower
                    tr.train_step()
                start = time.perf_counter()
                for _ in range(steps):
                    tr.train_step()
                times[kind].append((time.perf_counter() - start) / steps * 1e3)
    return {kind: statistics.median(t) for kind, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rate", type=float, default=0.3, help="the dropout after the layers (and between them)"
    )
    p.add_argument("--turns", type=int, default=6, help="turns of each mask")
    p.add_argument("--steps", type=int, default=10, help="timed steps a turn")
    args = p.parse_args()
    print(header())
    where = "after the layers (and between them)"
    print(f"ms a training step, dropout {args.rate:g} {where} and 0.1 at the input:\n")
    kinds = None
    for name in ("small", "medium", "large"):
        ms = step_ms(name, args.rate, args.turns, args.steps)
        if kinds is None:
            kinds = list(ms)
            print("| model | " + " | ".join(kinds) + " | of the mask's cost, saved |")
            print("| --- |" + " --- |" * (len(kinds) + 1))
        torch_ms, ours, none = ms[kinds[0]], ms[kinds[1]], ms[kinds[2]]
        saved = "n/a (PyTorch's mask no slower than none)"  # noise, or --rate 0
        if torch_ms > none:
            saved = f"**{(torch_ms - ours) / (torch_ms - none):.0%}**"
        cells = " | ".join(f"{ms[k]:.1f}" for k in kinds)
        print(f"| {name}: {PRESETS[name].describe()} | {cells} | {saved} |")


if __name__ == "__main__":
    main()
