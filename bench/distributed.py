"""Training under torchrun against one process: `python bench/distributed.py [--procs 2]`.

Trains the same model for the same number of steps per process on tinyshakespeare (or
--corpus), once as a single process using all cores and once as `torchrun --standalone
--nproc_per_node=N` with the cores split between the ranks (gloo on CPU), and prints the
characters trained per second of each, the validation loss reached, and whether the torchrun
checkpoint loads in a single process. On one CPU machine this measures the cost of the
collectives (the ranks share the same cores); across machines the ranks add cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import header

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--corpus", default=str(CORPUS))
    p.add_argument("--size", default="small")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    train = ["train", args.corpus, "--size", args.size, "--steps", str(args.steps), "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        one = [sys.executable, "-m", "charrnn", *train]
        many = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        many += [f"--nproc_per_node={args.procs}", "-m", "charrnn", *train]
        rows = [
            run("1 process", one, cores, tmp, "one"),
            run(f"torchrun, {args.procs} processes", many, cores // args.procs, tmp, "many"),
        ]
        from charrnn import checkpoint

        path = Path(tmp) / "many" / "best.pt"
        model = checkpoint.restore(checkpoint.load(path), path)
        loads = f"loads in one process: {model.config.num_layers}x{model.config.hidden_size}"
    print(header())
    print(f"`charrnn train {Path(args.corpus).name} --size {args.size} --steps {args.steps}`\n")
    print("| run | threads per process | streams in all | chars/s | val nats/char | wall |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['name']} | {r['threads']} | {r['streams']} | {r['chars_s']:,.0f} "
            f"| {r['val']:.4f} | {r['wall']:.1f} s |"
        )
    print(f"\nThe torchrun checkpoint {loads}.")


def run(name, cmd, threads, tmp, run_name) -> dict:
    threads = max(1, threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CHARRNN_CHECKPOINT_DIR": tmp}
    start = time.perf_counter()
    subprocess.run([*cmd, "--name", run_name], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    from charrnn import checkpoint
    from charrnn.runs import is_evaluation

    lines = (Path(tmp) / run_name / "metrics.jsonl").read_text().splitlines()
    last = [r for r in map(json.loads, lines) if is_evaluation(r)][-1]  # not a training record

    saved = checkpoint.load(Path(tmp) / run_name / "last.pt")
    tc = saved["train_config"]
    streams = tc["batch_size"] * int(saved["trainer"]["world_size"])
    chars = last["step"] * streams * tc["seq_len"]
    return {
        "name": name,
        "threads": threads,
        "streams": streams,
        "chars_s": chars / last["elapsed"],
        "val": last["val_loss"],
        "wall": wall,
    }


if __name__ == "__main__":
    main()
