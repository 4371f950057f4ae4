"""Shared fixtures: a small synthetic corpus, tiny models, one trained run per session."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from charrnn.runs import RunDir
from charrnn.text.encoded import encode_text
from charrnn.train.start import start_run
from charrnn.train.trainer import Trainer

# One thread, here and in every process the tests start: the tiny models gain nothing from more,
# and with another process busy on the cores (CI beside a build, a CPU hog) OpenMP's threads wait
# on each other at every operation and training runs 20x slower (measured: 246 s against 12 s).
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

# CI (which sets CI=true) draws the same property-test examples every run, so a landing is judged
# on the code, not on the luck of the draw; a developer's runs explore new examples each time.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# How long a test waits for an event from another process: far beyond what it takes here, so that
# a machine three times slower, or busy with other work, still passes (tests wait for events,
# never for a fixed time).
DEADLINE = 300.0
SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"

# Tiny enough that a training step takes about a millisecond.
TINY_MODEL = {"embedding_dim": 8, "hidden_size": 24, "num_layers": 2, "dropout": 0.0}
TINY_TRAIN = {"batch_size": 4, "seq_len": 16, "lr": 1e-2, "warmup_steps": 5, "eval_every": 10}
TINY_CLI = [
    "--layers",
    "2",
    "--hidden",
    "24",
    "--embedding",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--lr",
    "1e-2",
    "--eval-every",
    "10",
]


def make_text(n_chars: int = 12_000, seed: int = 0) -> str:
    """Deterministic English-like text with structure a tiny model learns in a few steps."""
    rng = random.Random(seed)
    names = ["ANNA", "BORIS", "CLARA"]
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "and",
        "the",
        "dog",
        "ran",
        "to",
        "the",
        "sun",
        "while",
        "we",
        "all",
        "sang",
    ]
    lines = []
    while sum(len(line) for line in lines) < n_chars:
        lines.append(f"{rng.choice(names)}:\n")
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 9))) + ".\n\n")
    return "".join(lines)[:n_chars]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the encoded-corpus cache of every test (and every subprocess) out of ~/.cache."""
    import os

    old = os.environ.get("CHARRNN_CACHE_DIR")
    os.environ["CHARRNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["CHARRNN_CACHE_DIR"]
    else:
        os.environ["CHARRNN_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def text() -> str:
    return make_text()


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, text) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return path


def make_trainer(
    text: str, folder: Path, seed: int = 0, cell: str = "lstm", model: dict | None = None, **train
) -> Trainer:
    """A Trainer for a tiny model of `cell` on `text`, writing into `folder` (as the CLI starts
    one: the library's start_run)."""
    folder.mkdir(parents=True, exist_ok=True)
    return start_run(
        encode_text(text, "tiny"),
        RunDir(folder),
        replace=True,  # tests build one over a stopped run, then load its state by hand
        cell=cell,
        model={**TINY_MODEL, **(model or {})},
        train={**TINY_TRAIN, "seed": seed, **train},
    )


def drain(trainer: Trainer) -> list:
    return list(trainer.run())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, text) -> RunDir:
    """A tiny run trained once per session: 200 steps, best.pt and last.pt on disk."""
    trainer = make_trainer(text, tmp_path_factory.mktemp("runs") / "tiny", max_steps=200)
    drain(trainer)
    return trainer.run_dir


@pytest.fixture(scope="session")
def runs_by_cell(tmp_path_factory):
    """A tiny trained run of each cell (40 steps), in one checkpoint folder."""
    base = tmp_path_factory.mktemp("inspect-runs")
    text = make_text(6000)
    for cell in ("lstm", "gru", "rnn"):
        drain(make_trainer(text, base / cell, cell=cell, max_steps=40))
    return base


def shakespeare() -> str:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} is not here")
    return SHAKESPEARE.read_text(encoding="utf-8")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Run in an empty folder with a private cache; returns an invoke(args, input) helper."""
    from click.testing import CliRunner

    from charrnn.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    runner = CliRunner()
    return lambda args, input=None: runner.invoke(cli, args, input=input, catch_exceptions=False)


@pytest.fixture(autouse=True)
def _speed_stood_in(monkeypatch):
    """`--size auto` times medium's training steps at start-up (a few seconds on one thread);
    in-process tests get a fixed rate instead (tests/test_presets.py checks the real one)."""
    from charrnn.train import start

    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 10_000.0)
