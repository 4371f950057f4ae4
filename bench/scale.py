"""Corpus scale: `python bench/scale.py [--sizes 10,100,1000] [--workdir DIR]` (sizes in MB).

For each size it writes a synthetic text corpus (made-up English-like words, 34 characters),
then measures, each in its own process so that peak memory is that process's alone:
  encode   encoding into the cache from cold (library call, as `charrnn train` makes it): MB/s
           and peak resident memory
  start    `charrnn train` on the now-cached corpus: seconds from launch to the line it prints
           just before its first step (hashing the corpus, checking and mapping the cache,
           building the model), and the same minus `import torch`
  train    peak resident memory of that `charrnn train` run (default model, 100 steps)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from report import header

MB = 1_000_000
ENCODE = """
import sys, time
from pathlib import Path
from charrnn.text import resolve
from charrnn.text import encoded
t = time.perf_counter()
e = encoded.encode_corpus(resolve.resolve([sys.argv[1]], Path(sys.argv[2])), Path(sys.argv[2]))
print(time.perf_counter() - t, len(e), e.ids.dtype, len(e.vocab), e.hit)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,100,1000", help="corpus sizes in MB, comma-separated")
    p.add_argument("--workdir", help="where to write corpora and the cache (default: a temp dir)")
    p.add_argument("--steps", type=int, default=100, help="training steps per size")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="charrnn-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    torch_import = median_of(3, lambda: run_time([sys.executable, "-c", "import torch"]))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(work, size, args.steps, torch_import))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    report(rows, torch_import, args.steps)


def measure(work: Path, size_mb: int, steps: int, torch_import: float) -> dict:
    corpus = work / f"synthetic-{size_mb}MB.txt"
    if not corpus.is_file() or corpus.stat().st_size != size_mb * MB:
        write_corpus(corpus, size_mb * MB)
    cache = work / f"cache-{size_mb}"
    shutil.rmtree(cache, ignore_errors=True)
    out, rss, _ = run_measured([sys.executable, "-c", ENCODE, str(corpus), str(cache)])
    seconds, n_chars, dtype, vocab, hit = out.split()
    assert hit == "False", "the cache was not cold"
    env = {**os.environ, "CHARRNN_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--steps", str(steps)]
    cmd += ["--eval-every", "100000", "--checkpoint-dir", str(work / "ck"), "--force"]
    out, train_rss, start = run_measured(cmd, env=env, mark="Training '")
    return {
        "size_mb": size_mb,
        "chars": int(n_chars),
        "dtype": dtype.removeprefix("torch."),
        "vocab": int(vocab),
        "encode_s": float(seconds),
        "encode_mb_s": size_mb / float(seconds),
        "encode_rss_mb": rss,
        "start_s": start,
        "start_minus_torch_s": start - torch_import,
        "train_rss_mb": train_rss,
        "cache_mb": sum(f.stat().st_size for f in (cache / "encoded").iterdir()) / MB,
    }


def write_corpus(path: Path, size: int) -> None:
    """English-like text: a few thousand made-up words in lines and paragraphs, blocks shuffled."""
    rng = random.Random(size)
    syllables = ["th", "e", "an", "re", "on", "at", "er", "in", "ou", "st", "ly", "ch", "a", "o"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(3000)]
    blocks = []
    for _ in range(16):  # 16 different 1 MB blocks, in a different order each time round
        lines, n = [], 0
        while n < MB:
            line = " ".join(rng.choices(words, k=rng.randint(3, 12)))
            line = line.capitalize() + rng.choice([".", ",", ";", "!", "?", ":", " 1832."])
            lines.append(line)
            n += len(line) + 1
        blocks.append(("\n".join(lines) + "\n\n").encode()[:MB])
    with open(path, "wb") as f:
        written = 0
        while written < size:
            for block in rng.sample(blocks, len(blocks)):
                piece = block[: size - written]
                f.write(piece)
                written += len(piece)
                if written >= size:
                    break


def run_measured(cmd, env=None, mark: str | None = None) -> tuple[str, float, float]:
    """Run cmd; return its stdout, its own peak RSS in MB, and when `mark` appeared on stderr."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[float] = []
    err: list[str] = []

    def watch() -> None:
        for line in p.stderr:
            err.append(line)
            if mark and mark in line and not seen:
                seen.append(time.perf_counter() - start)

    t = threading.Thread(target=watch)
    t.start()
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    t.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{''.join(err)[-2000:]}")
    return out, usage.ru_maxrss / 1024, seen[0] if seen else float("nan")


def run_time(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def median_of(n: int, f) -> float:
    return sorted(f() for _ in range(n))[n // 2]


def report(rows: list[dict], torch_import: float, steps: int) -> None:
    print(header())
    print(f"`import torch` took {torch_import:.2f} s; training: default model, {steps} steps.\n")
    print(
        "| corpus | chars | ids | encode (cold) | encode MB/s | encode peak RSS "
        "| start to first step (cached) | minus import torch | training peak RSS | cache |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['size_mb']:,} MB | {r['chars']:,} | {r['dtype']} ({r['vocab']} chars) "
            f"| {r['encode_s']:.2f} s | {r['encode_mb_s']:.0f} | {r['encode_rss_mb']:.0f} MB "
            f"| {r['start_s']:.2f} s | {r['start_minus_torch_s']:.2f} s "
            f"| {r['train_rss_mb']:.0f} MB | {r['cache_mb']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
