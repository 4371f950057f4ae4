"""The thread tuner on a simulated machine: `python bench/tuner_sim.py`.

No timing: a clock advances by what each thread count costs a unit of work (one thread's cost
against two threads'), each unit off by up to +-noise at random, so the table is the same on any
machine. For each case, the tuner's throughput against the best fixed count's over the same
units (the mean and the worst of 20 seeds), and in how many of them it ended on one thread.
"""

from __future__ import annotations

import random
import statistics

from report import header

from charrnn.threads import ThreadTuner

CASES = {  # name: seconds a unit on (1 thread, 2 threads)
    "one thread 6% faster": (0.94, 1.0),
    "one thread 3% faster": (0.97, 1.0),
    "level": (1.0, 1.0),
    "two threads 3% faster": (1.0, 0.97),
    "two threads 6% faster": (1.0, 0.94),
    "two threads 25% faster": (1.25, 1.0),
}
SEEDS = 20


def run(cost: dict[int, float], noise: float, units: int, seed: int) -> tuple[float, int]:
    """The share of the best fixed count's throughput, and the count the tuner ended on."""
    rng, now, applied, best = random.Random(seed), [0.0], [2], 0.0
    tuner = ThreadTuner(2, clock=lambda: now[0], set_threads=lambda n: applied.__setitem__(0, n))
    for _ in range(units):
        f = 1 + noise * rng.uniform(-1, 1)
        with tuner.measure():
            now[0] += cost[applied[0]] * f
        best += min(cost.values()) * f
    return best / now[0], tuner.threads


def main() -> None:
    print(header())
    print("| case | noise | units | of the best fixed count: mean (worst) | ended on one thread |")
    print("| --- | --- | --- | --- | --- |")
    for name, (one, two) in CASES.items():
        for noise in (0.0, 0.2):
            for units in (100, 6000):  # a unit of 0.01 s: 1 s and a minute of work
                runs = [run({1: one / 100, 2: two / 100}, noise, units, s) for s in range(SEEDS)]
                shares = [share for share, _ in runs]
                ones = sum(threads == 1 for _, threads in runs)
                share = f"{statistics.fmean(shares):.1%} ({min(shares):.1%})"
                print(f"| {name} | {noise:g} | {units:,} | {share} | {ones}/{SEEDS} |")


if __name__ == "__main__":
    main()
