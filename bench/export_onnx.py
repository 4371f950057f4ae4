"""`charrnn export` to ONNX, measured once: `python bench/export_onnx.py CORPUS`.

Trains a `small` model 20 steps on CORPUS (speed does not depend on what the weights learned),
then measures in the same run: how long `onnx_bytes` takes and how large the file is, and one
stream's sampling speed, on one thread each, of onnxruntime reading the graph a character a step
(drawing with NumPy, as the README's example does) against `Sampler.generate` as `charrnn
sample` runs it. Each speed is the median of three runs, taken in turn.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from report import header
from sample_speed import sampling_speed

from charrnn import checkpoint
from charrnn.use.onnx_export import onnx_bytes


def train(corpus: str, folder: Path) -> Path:
    """A small model trained 20 steps: the path of its best.pt."""
    cmd = [sys.executable, "-m", "charrnn", "train", corpus, "--size", "small", "--steps", "20"]
    cmd += ["--checkpoint-dir", str(folder), "-q"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def onnx_speed(session: ort.InferenceSession, model, chars: int) -> float:
    """One stream's characters per second through the graph, drawn with NumPy at 0.8."""
    shape = (model.config.num_layers, 1, model.config.hidden_size)
    state = {i.name: np.zeros(shape, np.float32) for i in session.get_inputs()[1:]}
    rng, idx, start = np.random.default_rng(1), 0, 0.0
    for t in range(200 + chars):  # the first 200 warm up
        if t == 200:
            start = time.perf_counter()
        logits, *new = session.run(None, {"char": np.array([idx]), **state})
        state = dict(zip(state, new, strict=True))
        p = np.exp((logits[0] - logits[0].max()) / 0.8, dtype=np.float64)
        idx = rng.choice(len(p), p=p / p.sum())
    return chars / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", help="the text to train on (a file, or a corpus name)")
    p.add_argument("--chars", type=int, default=3000, help="characters timed per run")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = checkpoint.load_model(train(args.corpus, Path(tmp)))
        times, data = [], b""
        for _ in range(3):
            start = time.perf_counter()
            data = onnx_bytes(model)
            times.append(time.perf_counter() - start)
        export_s = statistics.median(times)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        runs = [
            (onnx_speed(session, model, args.chars), sampling_speed(model, 1, args.chars))
            for _ in range(3)
        ]
        onnx_cps, torch_cps = (statistics.median(x) for x in zip(*runs, strict=True))
    c = model.config
    print(header())
    shape = f"{c.num_layers}x{c.hidden_size} {c.cell.upper()}, embedding {c.embedding_dim}"
    print(f"`small` ({shape}, {c.vocab_size} characters), one stream on 1 thread.\n")
    print("| export (onnx_bytes) | .onnx size | onnxruntime 1 stream | `charrnn sample` 1 stream |")
    print("| --- | --- | --- | --- |")
    print(
        f"| {export_s * 1000:,.0f} ms | {len(data) / 1e6:.1f} MB | {onnx_cps:,.0f} chars/s "
        f"| {torch_cps:,.0f} chars/s |"
    )
    print(f"\nonnxruntime {ort.__version__}.")


if __name__ == "__main__":
    main()
