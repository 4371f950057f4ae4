"""Sampling speed, measured in one run: `python bench/sample_speed.py`.

Builds checkpoints of the default model (2x512) and of --size small (2x256) over a 65-character
vocabulary (tinyshakespeare's size; speed does not depend on what the weights learned), then
measures characters per second for one stream and for -n 16, through the library and through the
`charrnn` command, the cold start of `charrnn sample --length 1` and `charrnn --help`, and the
baseline of calling nn.LSTM once per character.
"""

from __future__ import annotations

import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from charrnn.encoded import encode_text
from charrnn.model import CharRNN, ModelConfig
from charrnn.runs import RunDir
from charrnn.sampler import SampleConfig, Sampler
from charrnn.start import start_run

ALPHABET = string.ascii_letters + string.digits + " \n.,;:!?'-"  # 65 characters


def make_checkpoint(folder: Path, hidden: int) -> Path:
    corpus = encode_text((ALPHABET * 400)[:20_000])
    folder.mkdir(parents=True)
    shape = {"embedding_dim": 64, "hidden_size": hidden, "num_layers": 2}
    train = {"batch_size": 4, "seq_len": 16, "max_steps": 1}
    for _ in start_run(corpus, RunDir(folder), model=shape, train=train).run():
        pass
    return folder / "best.pt"


def library_speed(path: Path, n: int, chars: int) -> float:
    from charrnn import checkpoint

    model, vocab = checkpoint.restore_model(checkpoint.load(path), path)
    speeds = []
    for _ in range(3):  # the median of three runs
        config = SampleConfig(temperature=0.8, seed=1, num_samples=n)
        s = Sampler(model, vocab, config, track_logprob=False)  # as `charrnn sample` without --json
        s.prime("The ")
        for _ in s.generate(200):  # warm up
            pass
        start = time.perf_counter()
        for _ in s.generate(chars):
            pass
        speeds.append(n * chars / (time.perf_counter() - start))
    return statistics.median(speeds)


def wall(cmd: list[str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def nn_lstm_per_char(hidden: int, chars: int = 300) -> float:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(65, 64, hidden, 2)).eval()
    idx, state = torch.zeros(1, 1, dtype=torch.long), model.init_state(1)
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(chars):
            logits, state = model(idx, state)  # the fused kernel, one character per call
            idx = logits[:, -1].argmax(-1, keepdim=True)
    return chars / (time.perf_counter() - start)


def main() -> None:
    charrnn = [sys.executable, "-m", "charrnn"]
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = {
            name: make_checkpoint(Path(tmp) / name, h)
            for name, h in (("default 2x512", 512), ("small 2x256", 256))
        }
        print(f"machine: {torch.get_num_threads()} threads, torch {torch.__version__}")
        print(
            "| model | 1 stream, library | -n 16 total, library | 1 stream, command | "
            "nn.LSTM per char |"
        )
        print("| --- | --- | --- | --- | --- |")
        for name, path in ckpts.items():
            one = library_speed(path, 1, 3000)
            sixteen = library_speed(path, 16, 1000)
            base = [*charrnn, "sample", "-c", str(path), "-s", "1"]
            t_long, t_short = wall([*base, "-l", "20001"]), wall([*base, "-l", "1"])
            command = 20000 / (t_long - t_short)
            lstm = nn_lstm_per_char(512 if "512" in name else 256)
            print(
                f"| {name} | {one:,.0f} chars/s | {sixteen:,.0f} chars/s | "
                f"{command:,.0f} chars/s | {lstm:,.0f} chars/s |"
            )
        path = ckpts["default 2x512"]
        cold = wall([*charrnn, "sample", "-c", str(path), "-l", "1"], repeat=5)
        torch_import = wall([sys.executable, "-c", "import torch"], repeat=5)
        help_time = wall([*charrnn, "--help"], repeat=5)
        print(f"`import torch` alone: {torch_import:.2f} s")
        print(
            f"`charrnn sample --length 1` (cold, default model): {cold:.2f} s "
            f"= torch import + {cold - torch_import:.2f} s"
        )
        print(f"`charrnn --help`: {help_time:.2f} s")


if __name__ == "__main__":
    main()
