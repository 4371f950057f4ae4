"""Sampling speed against its memory limit, measured in one run: `python bench/sample_speed.py`.

One stream of a large model is bound by reading its weights once per character. For each preset
(and 2x512), over a 65-character vocabulary (tinyshakespeare's size; speed does not depend on what
the weights learned), this measures in the same run:

  limit     the matrix-vector products of one step and nothing else: the Stepper's own weight
            tensors, in its own layout, one after another (characters per second if a step
            cost only those), on 1 thread and on all
  1 stream  `Sampler.generate` as `charrnn sample` runs it (no --json; on the thread count its
            tuner settles on where the weights are large enough to share), and its share of the
            1-thread limit and of the better of the two (each measured three times in turn with
            the limits; the medians)
  -n 16     sixteen streams at once, in total (the median of three)

then the cold start of `charrnn sample --length 1` and of `charrnn --help`.
"""

from __future__ import annotations

import argparse
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from report import header

from charrnn import checkpoint
from charrnn.model.network import CharRNN
from charrnn.model.presets import PRESETS
from charrnn.model.trained import Model
from charrnn.runs import RunDir
from charrnn.text.encoded import encode_text
from charrnn.train.start import start
from charrnn.use.sampler import SampleConfig, Sampler

ALPHABET = string.ascii_letters + string.digits + " \n.,;:!?'-"  # 65 characters
MODELS = {  # name: (size, shape options over it)
    **{f"{name} {p.describe()}": (name, {}) for name, p in PRESETS.items()},
    "2x512": ("small", {"num_layers": 2}),
}


def make_checkpoint(folder: Path, size: str, shape: dict) -> Path:
    corpus = encode_text((ALPHABET * 400)[:20_000])
    train = {"batch_size": 4, "seq_len": 16, "max_steps": 1}
    for _ in start(corpus, RunDir(folder), size=size, model=shape, train=train).trainer.run():
        pass
    return folder / "best.pt"


def load(path: Path) -> Model:
    """The model of a checkpoint."""
    return checkpoint.load_model(path, verify=True)


def sampling_speed(model: Model, n: int, chars: int) -> tuple[float, int]:
    """Characters per second in total of `n` streams, one run, and the threads it ended on."""
    config = SampleConfig(temperature=0.8, seed=1, num_samples=n)
    s = Sampler(model, config, track_logprob=False)  # as `charrnn sample` without --json
    s.prime("The ")
    for _ in s.generate(200):  # warm up
        pass
    start = time.perf_counter()
    for _ in s.generate(chars):
        pass
    return n * chars / (time.perf_counter() - start), s.tuner.threads if s.tuner else 1


@torch.inference_mode()
def matvec_limit(model: CharRNN, threads: int, chars: int = 2000) -> float:
    """Characters per second if a one-stream step were only its matrix-vector products: the
    Stepper's weight tensors (layer 0's recurrent one, each upper layer's, the head), each read
    once per character through the same addmm, on `threads` threads."""
    st = model.stepper(1, fused=False)  # the readable layout: upper layers as one product
    h = model.config.hidden_size
    products = []  # (bias, input, weight^T): what Stepper.__call__ multiplies
    for w_ih, w_hh, _, _ in st.layers:
        if w_ih is not None:
            products.append((torch.zeros(w_ih.shape[0]), torch.randn(1, w_ih.shape[1]), w_ih.T))
        if w_hh is not None:
            products.append((torch.zeros(w_hh.shape[0]), torch.randn(1, h), w_hh.T))
    products.append((st.head_b, torch.randn(1, h), st.head_w.T))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(chars):
                for bias, x, w in products:
                    torch.addmm(bias, x, w)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return chars / min(times)


def wall(cmd: list[str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chars", type=int, default=3000, help="characters timed per stream")
    args = p.parse_args()
    charrnn = [sys.executable, "-m", "charrnn"]
    cores = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (size, shape) in MODELS.items():
            path = make_checkpoint(Path(tmp) / name.replace(" ", "-"), size, shape)
            model = load(path)
            # The limits and one stream are measured in turn, three times, and a share is the
            # median of the three: a drift in the machine's speed between them would skew it.
            runs = []
            for _ in range(3):
                limit_1, limit_all = matvec_limit(model.net, 1), matvec_limit(model.net, cores)
                runs.append((limit_1, limit_all, *sampling_speed(model, 1, args.chars)))
            limit_1, limit_all, one = (statistics.median(r[i] for r in runs) for i in range(3))
            threads = sorted(r[3] for r in runs)
            share_1 = statistics.median(r[2] / r[0] for r in runs)
            share = statistics.median(r[2] / max(r[:2]) for r in runs)
            sixteen = statistics.median(
                sampling_speed(model, 16, args.chars // 3)[0] for _ in range(3)
            )
            mb = sum(p.numel() for p in model.net.parameters()) * 4 / 1e6
            rows.append((name, mb, limit_1, limit_all, one, threads, share_1, share, sixteen))
        path = Path(tmp) / "medium-1x768" / "best.pt"
        cold = wall([*charrnn, "sample", "-c", str(path), "-l", "1"], repeat=5)
        torch_import = wall([sys.executable, "-c", "import torch"], repeat=5)
        help_time = wall([*charrnn, "--help"], repeat=5)
    print(header())
    print(
        "One stream samples as `charrnn sample` runs it: on the threads its tuner settles on "
        "(the count each of the three runs ended on), on one where the weights are too small "
        "to share.\n"
    )
    print(
        "| model | fp32 weights | matvec limit, 1 thread | matvec limit, "
        f"{cores} thread{'s' * (cores > 1)} | 1 stream (threads) | of the 1-thread limit "
        "| of the better limit | -n 16 in total |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, mb, limit_1, limit_all, one, threads, share_1, share, sixteen in rows:
        print(
            f"| {name} | {mb:.1f} MB | {limit_1:,.0f} chars/s | {limit_all:,.0f} chars/s "
            f"| {one:,.0f} chars/s ({', '.join(map(str, threads))}) | {share_1:.0%} "
            f"| **{share:.0%}** | {sixteen:,.0f} chars/s |"
        )
    print(f"\n`import torch` alone: {torch_import:.2f} s;")
    print(
        f"`charrnn sample --length 1` (cold, medium): {cold:.2f} s "
        f"= torch import + {cold - torch_import:.2f} s; `charrnn --help`: {help_time:.2f} s."
    )


if __name__ == "__main__":
    main()
