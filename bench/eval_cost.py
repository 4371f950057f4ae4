"""What an evaluation costs as the vocabulary grows: `python bench/eval_cost.py`.

For a model of the `medium` preset (1x768 LSTM, embedding 64; its weights need not be trained: the
cost does not depend on what they learned) over vocabularies of 100 and 60,000 characters, in one
run on one machine, this times

  validation   trainer.evaluate over a validation text of --chars characters (32 streams)
  check        coldstart.check: 256 cold starts, each read from a zero state and after the lead-in
  output layer the output layer alone (the head's product and the cross-entropy) over exactly the
               positions each of the two reads scores: what any evaluation at that vocabulary
               must pay

and prints a Markdown table. What the vocabulary adds to an evaluation should be what its output
layer costs, no more: the columns "rest" (the time less its output layer) should not grow with it.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from report import header

from charrnn.model.config import ModelConfig
from charrnn.model.network import CharRNN
from charrnn.model.trained import Model
from charrnn.text.data import StreamBatcher
from charrnn.text.vocab import CharVocab
from charrnn.train import coldstart
from charrnn.train.evaluate import evaluate


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def output_layer(model: CharRNN, positions: int, chunk: int = 4096) -> float:
    """Seconds for the head and the cross-entropy over `positions` positions, in chunks."""
    h = torch.randn(chunk, model.config.hidden_size)
    y = torch.randint(0, model.config.vocab_size, (chunk,))
    start = time.perf_counter()
    for done in range(0, positions, chunk):
        n = min(chunk, positions - done)
        F.cross_entropy(model.logits(h[:n]), y[:n], reduction="none")
    return time.perf_counter() - start


def measure(vocab_size: int, chars: int) -> dict:
    torch.manual_seed(0)
    vocab = CharVocab([chr(0x4E00 + i) for i in range(vocab_size - 2)] + ["\n", " "])
    config = ModelConfig(
        vocab_size=vocab_size, embedding_dim=64, hidden_size=768, num_layers=1, dropout=0.1
    )
    model = CharRNN(config).eval()
    ids = torch.randint(0, vocab_size, (chars,))
    batches = StreamBatcher(ids, 32, 32)
    trained = Model(model, vocab)  # its lead-in: "\n\n"
    result = None

    def validate():
        nonlocal result
        result = evaluate(trained, batches)

    validation = timed(validate)
    check = timed(lambda: coldstart.check(trained, ids, result))
    report = coldstart.check(trained, ids, result)
    if report is None:  # 32 streams of a short text leave no span long enough to check
        raise SystemExit(f"--chars {chars:,} is too short for a cold-start check: try 20,000")
    scored = 2 * report.starts * report.span  # both reads score `span` positions per start
    return {
        "vocab": vocab_size,
        "validation": validation,
        "validation_head": output_layer(model, chars - 1),
        "check": check,
        "check_head": output_layer(model, scored),
        "starts": report.starts,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chars", type=int, default=100_000, help="validation characters")
    p.add_argument("--vocab", type=int, nargs="+", default=[100, 60_000])
    args = p.parse_args()
    print(header())
    print(f"{torch.get_num_threads()} threads; medium (1x768 LSTM), 32 validation streams.\n")
    print(
        "| vocabulary | validation | its output layer | rest | cold-start check (starts) "
        "| its output layer | rest |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for v in args.vocab:
        m = measure(v, args.chars)
        print(
            f"| {v:,} | {m['validation']:.2f} s | {m['validation_head']:.2f} s "
            f"| {m['validation'] - m['validation_head']:.2f} s | {m['check']:.2f} s "
            f"({m['starts']}) | {m['check_head']:.2f} s | {m['check'] - m['check_head']:.2f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
