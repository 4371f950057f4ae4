"""Kill training hard and often; it must never lose more than a checkpoint interval, never leave a
checkpoint that does not load, and end with the weights of a run that was never interrupted.

Run alone with `pytest -m torture`.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI, make_text

from charrnn import checkpoint

pytestmark = pytest.mark.torture
DRIVER = Path(__file__).parent / "helpers" / "train_driver.py"
STEPS, INTERVAL = 500, 10  # TINY_CLI evaluates and checkpoints every 10 steps


def start(args, cwd, slow_disk=False, **kw):
    env = {**os.environ, "CHARRNN_SLOW_DISK": "1" if slow_disk else ""}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def steps_seen(out: str) -> int:
    steps = [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]
    return max(steps, default=0)


def every_checkpoint_loads(run: Path) -> int:
    """Load best.pt and last.pt (if there) as a sampler would; return last.pt's step."""
    for path in (run / "best.pt", run / "last.pt"):
        if path.exists():
            checkpoint.restore_model(checkpoint.load(path), path)
    return checkpoint.load(run / "last.pt")["trainer"]["step"] if (run / "last.pt").exists() else 0


def kill_during_a_write(p, run: Path, timeout: float = 30) -> bool:
    """SIGKILL as soon as a checkpoint temp file appears; True if one did."""
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        if run.is_dir() and any(run.glob(".*.tmp")):
            p.kill()
            return True
        time.sleep(0.001)
    p.kill()
    return False


def test_sigkill_at_random_moments_loses_nothing_beyond_the_interval(tmp_path, corpus_file):
    train = ["train", str(corpus_file), *TINY_CLI, "--steps", str(STEPS), "--dropout", "0.1"]
    whole = start([*train, "--name", "whole"], tmp_path)
    assert whole.wait(timeout=120) == 0, whole.stderr.read()

    run, rng = tmp_path / "checkpoints" / "cut", random.Random(1234)
    kills, mid_write, leftovers = 0, 0, 0
    while kills < 8:
        resume = (run / "last.pt").exists()
        p = start(
            ["train", "--resume", "cut"] if resume else [*train, "--name", "cut"],
            tmp_path,
            slow_disk=True,
        )
        if kills % 2:  # aim at a checkpoint write
            mid_write += kill_during_a_write(p, run)
        else:  # anywhere: start-up, training, evaluation, saving
            time.sleep(rng.uniform(0.5, 3.0))
            p.kill()
        out, _ = p.communicate(timeout=60)
        if p.returncode == 0:
            break  # it finished before the kill
        kills += 1
        leftovers += bool(list(run.glob(".*.tmp")))
        saved = every_checkpoint_loads(run)  # (a) whatever is on disk loads
        assert saved >= steps_seen(out) - INTERVAL  # (b) at most one interval lost
    assert kills >= 6 and mid_write >= 2 and leftovers >= 1  # we did hit writes mid-way

    final = start(["train", "--resume", "cut"], tmp_path)
    assert final.wait(timeout=120) == 0, final.stderr.read()
    assert not list(run.glob(".*.tmp"))  # a new session cleans up after killed writers
    a = torch.load(tmp_path / "checkpoints/whole/last.pt", weights_only=True)
    b = torch.load(run / "last.pt", weights_only=True)
    assert b["trainer"]["step"] == STEPS
    for name, weight in a["model"].items():  # (c) the same weights as an uninterrupted run
        assert torch.equal(weight, b["model"][name]), name


@pytest.fixture(scope="module")
def big_val(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bigval") / "big.txt"
    path.write_text(make_text(200_000), encoding="utf-8")
    return path


def test_sigterm_during_evaluation_stops_promptly_and_saves(tmp_path, big_val):
    # Half the text is validation, evaluated every 5 steps: nearly all the time is evaluation.
    p = start(
        [
            "train",
            str(big_val),
            *TINY_CLI,
            "--val-frac",
            "0.5",
            "--eval-every",
            "5",
            "--steps",
            "1000",
        ],
        tmp_path,
    )
    metrics = tmp_path / "checkpoints" / "big" / "metrics.jsonl"
    deadline = time.time() + 60
    while (not metrics.exists() or not metrics.read_text()) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # well inside the evaluation at step 10
    p.send_signal(signal.SIGTERM)
    sent = time.time()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert time.time() - sent < 5 and "Stopped at step 10" in err
    assert [line.count('"step": 5,') for line in metrics.read_text().splitlines()] == [1]
    assert checkpoint.load(metrics.parent / "last.pt")["trainer"]["step"] == 10


def test_sigint_during_a_save_finishes_the_write_then_stops(tmp_path, corpus_file):
    p = start(["train", str(corpus_file), *TINY_CLI, "--steps", "100000"], tmp_path, slow_disk=True)
    run = tmp_path / "checkpoints" / "tiny"
    deadline = time.time() + 60
    while not (run.is_dir() and any(run.glob(".*.tmp"))) and time.time() < deadline:
        time.sleep(0.001)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Stopped at step" in err and "Traceback" not in err
    every_checkpoint_loads(run)
    assert not list(run.glob(".*.tmp"))
