"""Training throughput against the machine's matmul peak: `python bench/throughput.py`.

In one run: the best fp32 GEMM rate torch reaches here (square matrices, all threads), and the
bfloat16 one where the presets' steps run in bfloat16 (a CPU with native bfloat16), then for
charrnn's default models and for 2x512 (of any cell, `--cell`, sized as --size sizes it) the
characters per second of the real training step (Trainer.train_step: batch, forward,
cross-entropy, backward, clipping, AdamW, in the arithmetic `charrnn train` uses) and the share
of each peak it reaches, counting 6 x non-embedding parameters FLOPs per character. A breakdown
of one step shows where the rest of the time goes; evaluation speed is given too.

Then a machine that is not idle: the small and medium presets' training (Trainer.run, thread
count tuned as `charrnn train` tunes it) idle and beside one busy process (`while True: pass`),
each beside the same run on every fixed thread count under the same load, the runs taking turns
(`--turn`) so that other work on the machine hits them alike. `--steps 0` skips the first part.

`--device cuda` measures the first part on the GPU, against its fp32 and TF32 matmul peaks
(cuDNN's LSTM may do its products in TF32, as torch lets it by default); the second part is the
CPU's threads and is skipped there.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from report import header

from charrnn.devices import arithmetic as step_arithmetic
from charrnn.devices import autocast_dtype
from charrnn.model.config import CELLS
from charrnn.model.network import CharRNN
from charrnn.model.presets import PRESETS, SMALL_FLOAT32, Preset, for_cell
from charrnn.runs import RunDir
from charrnn.text.encoded import encode_text
from charrnn.train.evaluate import evaluate
from charrnn.train.start import start
from charrnn.train.trainer import StepEvent, Trainer

VOCAB = 65  # tinyshakespeare's; speed does not depend on what the text says
FLOAT32_ROW = "small for float32"  # trained in float32, as `auto` trains it (where it picks it)


def matmul_peak(
    seconds: float = 1.0, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[float, int]:
    """The best GFLOP/s of torch.mm in `dtype` over a few square sizes (each timed for about
    `seconds`)."""
    best = (0.0, 0)
    sizes = (512, 1024, 2048, 3072) if device == "cpu" else (2048, 4096, 8192)
    for n in sizes:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        for _ in range(3):
            torch.mm(a, b)
        sync(device)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            reps += 1
            sync(device)
        rate = 2 * n**3 * reps / (time.perf_counter() - start) / 1e9
        best = max(best, (rate, n))
    return best


def sync(device: str) -> None:
    """Wait for the GPU's queued work: a GPU's calls return before their work is done."""
    if device != "cpu":
        torch.cuda.synchronize()


def make_trainer(
    p: Preset,
    cell: str,
    folder: Path,
    eval_every: int | None = None,
    device: str = "cpu",
    precision: str = "auto",
) -> Trainer:
    """A run of preset `p` (sized for `cell`) on 2M random characters, as `train` starts one."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (2_000_000,), generator=g).tolist()
    corpus = encode_text("".join(chr(32 + i) for i in ids), "random")
    shape = {"num_layers": p.num_layers, "hidden_size": p.hidden_size}
    shape |= {"embedding_dim": p.embedding_dim, "dropout": p.dropout}
    train = {"batch_size": p.batch_size, "seq_len": p.seq_len, "lr": p.lr, "max_steps": 10**9}
    train["eval_every"], train["precision"] = eval_every, precision
    return start(corpus, RunDir(folder), cell=cell, model=shape, train=train, device=device).trainer


def non_embedding_params(model: CharRNN) -> int:
    return model.num_params() - model.embed.weight.numel()


def time_steps(fn, steps: int, warmup: int = 5, device: str = "cpu") -> float:
    """Median seconds per call over `steps` calls (after warm-up), each waited for to its end."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def arithmetic(tr: Trainer):
    """The context the trainer's step runs in: autocast to its dtype, or float32 all through."""
    return step_arithmetic(tr.device, tr.autocast)


def breakdown(tr: Trainer) -> dict[str, float]:
    """Seconds per step in its parts, each timed on its own, in the step's arithmetic."""
    m, c, device = tr.model, tr.config, tr.device
    x, y = (t.to(device) for t in tr.train_batches[0])
    state = m.init_state(c.batch_size)
    params = list(m.parameters())

    def cells():  # the embedding, the input dropout and the recurrent layers
        with arithmetic(tr):
            out, _ = m.read(x, state)  # (B, T, H)
        out.float().sum().backward()

    with torch.no_grad(), arithmetic(tr):  # the head reads h in the dtype the layers give it
        dtype = m.read(x, state)[0].dtype
    hidden = torch.randn(c.batch_size, c.seq_len, m.config.hidden_size, device=device, dtype=dtype)
    hidden.requires_grad_()

    def head():  # the dropout after the layers, the output layer and the loss
        with arithmetic(tr):
            logits = m.logits(hidden)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()

    def optimizer():
        torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
        tr.optimizer.step()

    def batch():
        tr.train_batches[7]

    d = device.type
    return {
        f"{m.config.cell.upper()} forward+backward": time_steps(cells, 20, device=d),
        "dropout + head + cross-entropy forward+backward": time_steps(head, 20, device=d),
        "clip + AdamW": time_steps(optimizer, 20, device=d),
        "fetch batch": time_steps(batch, 20, device=d),
    }


def measure(name: str, p: Preset, cell: str, steps: int, peaks: dict, device: str) -> dict:
    b, t = p.batch_size, p.seq_len
    precision = "float32" if name == FLOAT32_ROW else "auto"  # as `auto` trains each
    with tempfile.TemporaryDirectory() as tmp:
        tr = make_trainer(p, cell, Path(tmp), device=device, precision=precision)
        step = time_steps(tr.train_step, steps, device=device)
        start = time.perf_counter()
        evaluate(tr.trained, tr.val_batches, cold=False)
        eval_rate = (len(tr.val_batches.ids) - 1) / (time.perf_counter() - start)
        parts = breakdown(tr)  # last: its optimizer steps on piled-up gradients spoil the weights
    chars = b * t / step
    n = non_embedding_params(tr.model)
    gflops = 6 * n * chars / 1e9
    return {
        "name": name,
        "shape": f"{p.describe()} {cell.upper()} dropout {p.dropout:g}, B {b} T {t}",
        "params": n,
        "step_ms": step * 1e3,
        "chars_s": chars,
        "gflops": gflops,
        "shares": {kind: gflops / peak for kind, peak in peaks.items()},
        "arithmetic": "bf16" if tr.autocast == torch.bfloat16 else "fp32",
        "parts": parts,
        "eval_chars_s": eval_rate,
    }


def interleaved(trainers: dict, steps: int, turn: int) -> dict:
    """Characters per second of each of `trainers` (by thread count, None: tuned as `charrnn
    train` tunes it) over `steps` steps of Trainer.run, the runs taking turns of `turn` steps
    (A B C A B C ...) so that a load that comes and goes hits them alike. Only the seconds inside
    each run count (its tuner's trials included); the first step of each run is not timed."""
    runs, seconds, tuned_at = {}, dict.fromkeys(trainers, 0.0), []
    for threads, tr in trainers.items():
        tr.tune_threads = threads is None
        runs[threads] = tr.run()
    tuned, step = trainers[None], trainers[None].train_step

    def logged_step() -> float:  # the count each step of the tuned run ran on
        tuned_at.append(torch.get_num_threads())
        return step()

    tuned.train_step = logged_step
    done = dict.fromkeys(trainers, -1)  # steps timed so far; -1: the untimed first
    while min(done.values()) < steps:
        for threads, run in runs.items():
            before = torch.get_num_threads()  # the tuned run's count, left as its tuner set it
            torch.set_num_threads(threads or before)
            try:
                for _ in range(min(turn, steps - done[threads])):
                    start = time.perf_counter()
                    while not isinstance(next(run), StepEvent):  # evaluations: none are due
                        pass
                    if done[threads] >= 0:
                        seconds[threads] += time.perf_counter() - start
                    done[threads] += 1
            finally:
                if threads is not None:  # the tuner's own count stays: it knows what it set
                    torch.set_num_threads(before)
    for threads, run in runs.items():
        trainers[threads].request_stop()
        torch.set_num_threads(threads or torch.get_num_threads())
        for _ in run:  # the stop: a last checkpoint
            pass
    c = next(iter(trainers.values())).config
    rates = {n: steps * c.batch_size * c.seq_len / s for n, s in seconds.items()}
    return {"rates": rates, "tuned_at": tuned_at[1:]}


def under_load(models: list, cell: str, steps: int, turn: int) -> list[tuple[str, str, dict]]:
    """chars/s of each (name, preset) idle and beside one busy process, tuned and at each fixed
    count, interleaved (see `interleaved`)."""
    rows = []
    for load in ("idle", "beside one busy process"):
        hog = None
        if load != "idle":
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for name, p in models:
                with tempfile.TemporaryDirectory() as tmp:
                    counts = (None, *range(1, torch.get_num_threads() + 1))
                    trainers = {
                        n: make_trainer(p, cell, Path(tmp, str(n)), eval_every=10**9)
                        for n in counts
                    }
                    rows.append((load, name, interleaved(trainers, steps, turn)))
        finally:
            if hog:
                hog.kill()
                hog.wait()
    return rows


def print_load_table(loads: list, steps: int, turn: int) -> None:
    counts = [n for n in loads[0][2]["rates"] if n is not None]
    print(
        f"\n{steps} steps of Trainer.run each, the runs taking turns of {turn} steps "
        "(tuned, then each fixed count):\n"
    )
    print(
        "| load | model | tuned (charrnn's default) | "
        + " | ".join(f"{n} thread{'s' * (n > 1)}" for n in counts)
        + " | tuned against the best fixed | tuned steps on each count |"
    )
    print("|" + " --- |" * (len(counts) + 5))
    for load, name, r in loads:
        rates, at = r["rates"], r["tuned_at"]
        best = max(rates[n] for n in counts)
        fixed = " | ".join(f"{rates[n]:,.0f}" for n in counts)
        spent = ", ".join(f"{n}: {at.count(n)}" for n in sorted(set(at)))
        print(
            f"| {load} | {name} | {rates[None]:,.0f} | {fixed} "
            f"| **{rates[None] / best:.1%}** | {spent} |"
        )


def throughput_table(cells: tuple, steps: int, device: str) -> None:
    peaks, sizes = {}, {}
    peaks["fp32"], sizes["fp32"] = matmul_peak(device=device)
    if device == "cuda":  # the rate cuDNN's products may reach: TF32 (torch's default for cuDNN)
        torch.backends.cuda.matmul.allow_tf32 = True
        peaks["TF32"], sizes["TF32"] = matmul_peak(device=device)
        torch.backends.cuda.matmul.allow_tf32 = False
    elif autocast_dtype("auto", torch.device(device)) == torch.bfloat16:
        # the presets' steps run in bfloat16 here: their share is of bfloat16's own peak
        peaks["bf16"], sizes["bf16"] = matmul_peak(device=device, dtype=torch.bfloat16)
    models = [(name, PRESETS[name]) for name in ("small", "medium")]  # what --size auto picks
    models.insert(1, (FLOAT32_ROW, SMALL_FLOAT32))  # auto's small without bfloat16
    models.append(("2x512", Preset(2, 512, 64, 0.0, 32, 32, 5e-3, 0.01)))
    if device == "cuda":  # what a GPU could do with more streams than the CPU's presets take
        models.append(("large", PRESETS["large"]))
        models.append(("medium, 256 streams", replace(PRESETS["medium"], batch_size=256)))
    rows = [
        measure(name, for_cell(p, cell, VOCAB), cell, steps, peaks, device)
        for name, p in models
        for cell in cells
    ]
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    measured = "; ".join(
        f"{kind} {peak:,.1f} GFLOP/s ({sizes[kind]}x{sizes[kind]} torch.mm)"
        for kind, peak in peaks.items()
    )
    print(
        f"{where}, {torch.get_num_threads()} CPU threads; matmul peak measured in this run: "
        f"{measured}.\n"
    )
    of = " | ".join(f"of {kind} peak" for kind in peaks)
    print(
        "| model | arithmetic | non-embedding params | ms/step | chars/s trained "
        f"| GFLOP/s (6N) | {of} |"
    )
    print("| --- | --- | --- | --- | --- | --- |" + " --- |" * len(peaks))
    for r in rows:
        own = r["arithmetic"] if r["arithmetic"] in peaks else "fp32"  # on a GPU: fp32 and TF32
        shares = " | ".join(
            f"**{share:.0%}**" if kind == own or device == "cuda" else f"{share:.0%}"
            for kind, share in r["shares"].items()
        )
        print(
            f"| {r['name']}: {r['shape']} | {r['arithmetic']} | {r['params'] / 1e6:.2f}M "
            f"| {r['step_ms']:.1f} | {r['chars_s']:,.0f} | {r['gflops']:.1f} | {shares} |"
        )
    print(
        "\nA share in bold is of the peak of the arithmetic the step runs in (bf16: autocast to "
        "bfloat16, as `--precision auto` trains on a CPU with native bfloat16)."
    )
    print()
    for r in rows:
        parts = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in r["parts"].items())
        print(f"- {r['name']} step parts: {parts}; evaluation {r['eval_chars_s']:,.0f} chars/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="timed training steps per model")
    p.add_argument(
        "--load-steps", type=int, default=300, help="steps per run idle and under load (0: none)"
    )
    p.add_argument("--turn", type=int, default=20, help="steps a run takes before the next's turn")
    p.add_argument(
        "--cell", choices=[*CELLS, "all"], default="lstm", help="the cell (all: each in turn)"
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train")
    args = p.parse_args()
    cells = CELLS if args.cell == "all" else (args.cell,)
    print(header(args.device))
    if args.steps:
        throughput_table(cells, args.steps, args.device)
    if args.load_steps and args.device == "cpu":
        loaded = [(name, for_cell(PRESETS[name], cells[0], VOCAB)) for name in ("small", "medium")]
        loads = under_load(loaded, cells[0], args.load_steps, args.turn)
        print_load_table(loads, args.load_steps, args.turn)


if __name__ == "__main__":
    main()
