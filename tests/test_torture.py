"""Kill training hard and often; it must never lose more than a checkpoint interval, never leave a
checkpoint that does not load, and end with the weights of a run that was never interrupted.

Every kill and signal is aimed at an observable event (a step reported on stdout, an evaluation
beginning, a half-written checkpoint), never at a clock, so the tests hold on a machine of any
speed, busy or idle. Slow (a minute or two): skip them locally with `pytest -m "not torture"`;
`.ci/run` runs everything.
"""

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import DEADLINE, TINY_CLI, make_text
from helpers.cli import as_from_a_terminal, popen

from charrnn import checkpoint

pytestmark = pytest.mark.torture
DRIVER = Path(__file__).parent / "helpers" / "train_driver.py"
STEPS, INTERVAL = 240, 10  # TINY_CLI evaluates and checkpoints every 10 steps


class Driven:
    """`charrnn train` under the test driver, its stdout lines readable as they come."""

    def __init__(self, args, cwd, slow_disk=0.0, slow_eval=0, slow_coldstart=False):
        """slow_eval: the step from which evaluations are slow (0: none)."""
        env = {**os.environ, "CHARRNN_SLOW_DISK": str(slow_disk) if slow_disk else ""}
        env["CHARRNN_SLOW_EVAL"] = str(slow_eval) if slow_eval else ""
        env["CHARRNN_SLOW_COLDSTART"] = "1" if slow_coldstart else ""
        self.p = subprocess.Popen(
            [sys.executable, str(DRIVER), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=as_from_a_terminal,
        )
        self.lines: queue.Queue = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.p.stdout, self.out, True)),
            threading.Thread(target=self._read, args=(self.p.stderr, self.err, False)),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream, into: list, announce: bool) -> None:
        for line in stream:
            into.append(line)
            if announce:
                self.lines.put(line)
        if announce:
            self.lines.put(None)  # end of output: the process is gone

    def wait_for(self, wanted) -> str | None:
        """The first stdout line for which wanted(line) holds; None if the process ends first."""
        while (line := self.lines.get(timeout=DEADLINE)) is not None:
            if wanted(line):
                return line
        return None

    def finish(self, sig: int | None = None) -> tuple[int, str, str]:
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        code = self.p.wait(timeout=DEADLINE)
        for t in self._readers:
            t.join(timeout=DEADLINE)
        return code, "".join(self.out), "".join(self.err)


def after_steps(n: int):
    """A wanted(line) for Driven.wait_for: true at the n-th step the process reports."""
    seen = 0

    def wanted(line: str) -> bool:
        nonlocal seen
        seen += line.startswith("step ")
        return seen >= n

    return wanted


def steps_seen(out: str) -> int:
    steps = [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]
    return max(steps, default=0)


def every_checkpoint_loads(run: Path) -> int:
    """Load best.pt and last.pt (if there) as a sampler would; return last.pt's step."""
    for path in (run / "best.pt", run / "last.pt"):
        if path.exists():
            checkpoint.restore(checkpoint.load(path), path)
    return checkpoint.load(run / "last.pt")["trainer"]["step"] if (run / "last.pt").exists() else 0


def test_sigkill_at_random_moments_loses_nothing_beyond_the_interval(tmp_path, corpus_file):
    train = ["train", str(corpus_file), *TINY_CLI, "--steps", str(STEPS), "--dropout", "0.1"]
    whole = Driven([*train, "--name", "whole"], tmp_path)
    code, _, err = whole.finish()
    assert code == 0, err

    run, rng = tmp_path / "checkpoints" / "cut", random.Random(1234)
    kills, mid_write, leftovers = 0, 0, 0
    while kills < 6:
        resume = (run / "last.pt").exists()
        aimed = kills % 2 == 1
        p = Driven(
            ["train", "--resume", "cut"] if resume else [*train, "--name", "cut"],
            tmp_path,
            slow_disk=DEADLINE if aimed else 0.05,  # aimed: a write waits for its kill
        )
        if kills == 0:  # during start-up: the moment the process exists
            pass
        elif aimed:  # in the middle of a checkpoint write
            mid_write += p.wait_for(lambda line: line.startswith("half-written")) is not None
        else:  # anywhere in training, evaluating and saving: a few steps into this session
            p.wait_for(after_steps(rng.randint(1, 3 * INTERVAL)))
        code, out, _ = p.finish(signal.SIGKILL)
        if code == 0:
            break  # it finished before the kill
        kills += 1
        leftovers += bool(list(run.glob(".*.tmp")))
        saved = every_checkpoint_loads(run)  # (a) whatever is on disk loads
        assert saved >= steps_seen(out) - INTERVAL  # (b) at most one interval lost
    assert kills == 6 and mid_write == 3 and leftovers == 3  # we did hit writes mid-way

    final = Driven(["train", "--resume", "cut"], tmp_path)
    code, _, err = final.finish()
    assert code == 0, err
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
    # Half the text is validation, evaluated every 5 steps, slowly: a signal sent when the
    # evaluation at step 10 begins lands inside it.
    args = ["train", str(big_val), *TINY_CLI, "--val-frac", "0.5", "--eval-every", "5"]
    p = Driven([*args, "--steps", "1000"], tmp_path, slow_eval=10)
    assert p.wait_for(lambda line: line == "evaluating 10\n")
    code, _, err = p.finish(signal.SIGTERM)
    assert code == 143, err
    assert "Stopped at step 10" in err
    # promptly: the evaluation was cut short (it would have recorded step 10 had it run its course)
    metrics = tmp_path / "checkpoints" / "big" / "metrics.jsonl"
    evals = [r for r in map(json.loads, metrics.read_text().splitlines()) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [5]
    assert checkpoint.load(metrics.parent / "last.pt")["trainer"]["step"] == 10


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_during_the_cold_start_check_stops_promptly_and_saves(tmp_path, big_val, sig):
    """The check, which reads hundreds of windows (minutes with a large vocabulary), looks for a
    stop between its pieces: the first signal of any kind stops cleanly, with last.pt saved."""
    args = ["train", str(big_val), *TINY_CLI, "--val-frac", "0.5", "--eval-every", "5"]
    p = Driven([*args, "--steps", "1000"], tmp_path, slow_coldstart=True)
    assert p.wait_for(lambda line: line == "evaluating 10\n")
    assert p.wait_for(lambda line: line == "checking\n")
    code, _, err = p.finish(sig)
    assert code == 128 + sig, err
    assert "Stopped at step 10" in err and "Traceback" not in err
    metrics = tmp_path / "checkpoints" / "big" / "metrics.jsonl"
    evals = [r for r in map(json.loads, metrics.read_text().splitlines()) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [5]  # the evaluation at 10 was cut short
    assert checkpoint.load(metrics.parent / "last.pt")["trainer"]["step"] == 10


STOPPED_S = 5  # a stop's length: what is measured (the process stands still meanwhile)


def stopped_a_while(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGSTOP)
    time.sleep(STOPPED_S)
    p.send_signal(signal.SIGCONT)


def assert_the_stop_left_out(run: Path, code: int, err: str, wall: float) -> None:
    said = re.search(r"Note: the process was stopped \(suspended\) for (\d+)s", err)
    assert code == 0 and said and int(said.group(1)) >= STOPPED_S - 1, err
    spent = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["elapsed"]
    assert spent <= wall - (STOPPED_S - 1), (spent, wall)  # the run's own time: without the stop


def test_the_time_the_process_is_stopped_is_left_out_of_its_time_budget(tmp_path, corpus_file):
    """Ctrl-Z's stop (SIGSTOP here) and `fg` (SIGCONT) in the middle of a run with --time: the
    seconds stopped are not spent from the budget (nor taken for a step's or an evaluation's
    cost), and the run says how long it was stopped."""
    args = ["train", str(corpus_file), *TINY_CLI, "--steps", "200", "--time", "10m"]
    began = time.monotonic()
    p = Driven(args, tmp_path)
    assert p.wait_for(after_steps(20))
    stopped_a_while(p.p)
    code, _, err = p.finish()
    assert_the_stop_left_out(
        tmp_path / "checkpoints" / corpus_file.stem, code, err, time.monotonic() - began
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="no /proc to watch threads in")
def test_a_stop_during_start_up_is_left_out_of_the_time_budget_too(tmp_path, corpus_file):
    """A stop while the command starts (importing torch, reading the text), once it watches for
    stops (its watcher thread runs: the process has a second thread)."""
    args = ["train", str(corpus_file), *TINY_CLI, "--steps", "50", "--time", "10m"]
    began = time.monotonic()
    p = popen(args, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while len(os.listdir(f"/proc/{p.pid}/task")) < 2:  # the watcher first: before torch loads
        assert p.poll() is None and time.monotonic() - began < DEADLINE, p.stderr.read()
        time.sleep(0.005)
    stopped_a_while(p)
    _, err = p.communicate(timeout=DEADLINE)
    assert_the_stop_left_out(
        tmp_path / "checkpoints" / corpus_file.stem, p.returncode, err, time.monotonic() - began
    )


def test_a_second_stop_signal_of_any_kind_stops_without_saving(tmp_path, corpus_file):
    p = Driven(["train", str(corpus_file), *TINY_CLI, "--steps", "100000"], tmp_path, slow_disk=30)
    assert p.wait_for(lambda line: line.startswith("half-written"))  # the save at step 0
    p.p.send_signal(signal.SIGTERM)  # a clean stop, waiting for the write to end...
    code, _, err = p.finish(signal.SIGINT)  # ... and then one that will not wait
    assert code in (130, 143), err  # the status of the second (Python may take them in any order)
    assert "Interrupted twice: stopped without saving" in err and "Traceback" not in err


def test_sigint_during_a_save_finishes_the_write_then_stops(tmp_path, corpus_file):
    p = Driven(["train", str(corpus_file), *TINY_CLI, "--steps", "100000"], tmp_path, slow_disk=1)
    assert p.wait_for(lambda line: line.startswith("half-written"))
    code, _, err = p.finish(signal.SIGINT)
    assert code == 130, err
    assert "Stopped at step" in err and "Traceback" not in err
    run = tmp_path / "checkpoints" / "tiny"
    every_checkpoint_loads(run)
    assert not list(run.glob(".*.tmp"))
