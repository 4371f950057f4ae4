"""How many logits a reader makes at once: `python bench/logits_pieces.py [TEXT RUN]`.

`CharRNN.nats` turns the top layer's outputs into losses a piece at a time, LOGITS_BUDGET floats
of logits in each (charrnn/model/network.py), so that reading a long text holds a bounded amount
whatever the vocabulary. The piece's size trades the head's matrix product (larger is better)
against memory the process must fault in and the cache (smaller is better). In one run on one
machine, for several budgets:

  nats    `net.nats` of (32, 256) outputs for three shapes: tinyshakespeare's vocabulary (65) on
          1x512, a large one (2,504, as 3 MB of source code) on 1x512, a very large one (5,387,
          as a corpus of Chinese poetry) on 1x768; the best of --repeats, budgets in turn
  command with TEXT and RUN: `charrnn score -c RUN TEXT` as a whole command at each budget, in
          turn for --repeats rounds: the best wall time, the process's minor page faults and its
          system time in that round

and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch
from report import header

import charrnn.model.network as network
from charrnn.model.network import CharRNN, ModelConfig

BUDGETS = (24, 22, 20, 18)  # log2 of the floats of logits in a piece
SHAPES = ((65, 512), (2504, 512), (5387, 768))  # (vocabulary, hidden size)

# One `charrnn score` with the budget set first; prints its wall time, faults and system time.
COMMAND = """
import resource, sys, time
import charrnn.model.network as network
network.LOGITS_BUDGET = 1 << int(sys.argv[1])
from charrnn.cli import cli
start = time.perf_counter()
try:
    cli(sys.argv[2:], prog_name="charrnn")
except SystemExit as e:
    if e.code:
        raise
usage = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - start, usage.ru_minflt, usage.ru_stime, file=sys.stderr)
"""


def time_nats(repeats: int) -> dict[tuple[int, int], dict[int, float]]:
    """(vocabulary, hidden) -> budget -> the best seconds of one `nats` call."""
    torch.manual_seed(0)
    best: dict[tuple[int, int], dict[int, float]] = {}
    for vocab, hidden in SHAPES:
        config = ModelConfig(vocab_size=vocab, embedding_dim=64, hidden_size=hidden, num_layers=1)
        net = CharRNN(config).eval()
        out, targets = torch.randn(32, 256, hidden), torch.randint(0, vocab, (32, 256))
        times = best.setdefault((vocab, hidden), {})
        with torch.inference_mode():
            for _ in range(repeats):
                for budget in BUDGETS:  # in turn, so a drift in speed hits every budget alike
                    network.LOGITS_BUDGET = 1 << budget
                    start = time.perf_counter()
                    net.nats(out, targets)
                    seconds = time.perf_counter() - start
                    times[budget] = min(times.get(budget, float("inf")), seconds)
    return best


def time_command(text: str, run: str, repeats: int) -> dict[int, tuple[float, int, float]]:
    """budget -> (seconds, minor faults, system seconds) of the fastest `charrnn score`."""
    best: dict[int, tuple[float, int, float]] = {}
    for _ in range(repeats):
        for budget in BUDGETS:
            argv = [sys.executable, "-c", COMMAND, str(budget), "score", "-c", run, text]
            done = subprocess.run(argv, capture_output=True, text=True, check=True)
            seconds, faults, system = done.stderr.split()[-3:]
            measured = (float(seconds), int(faults), float(system))
            if budget not in best or measured[0] < best[budget][0]:
                best[budget] = measured
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", help="a text for `charrnn score` (with RUN)")
    parser.add_argument("run", nargs="?", help="a run name or checkpoint for `charrnn score`")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    print(header())
    print("| vocabulary, hidden | " + " | ".join(f"2^{b} floats" for b in BUDGETS) + " |")
    print("| --- " * (len(BUDGETS) + 1) + "|")
    for (vocab, hidden), times in time_nats(args.repeats).items():
        cells = " | ".join(f"{times[b] * 1e3:.0f} ms" for b in BUDGETS)
        print(f"| {vocab:,}, 1x{hidden} | {cells} |")
    if args.text and args.run:
        print(f"\n`charrnn score -c {args.run} {args.text}`, the fastest of {args.repeats}:\n")
        print("| floats of logits at once | wall time | minor page faults | system time |")
        print("| --- | --- | --- | --- |")
        for budget, (seconds, faults, system) in time_command(
            args.text, args.run, args.repeats
        ).items():
            print(f"| 2^{budget} | {seconds:.1f} s | {faults:,} | {system:.2f} s |")


if __name__ == "__main__":
    main()
