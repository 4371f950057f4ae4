"""Shared fixtures: a small synthetic corpus, tiny models, trained runs made once per session, and
the helpers more than one test file uses."""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path

import pytest
import torch
from helpers.cli import DEADLINE as DEADLINE  # tests import it from here
from helpers.cli import invoke
from hypothesis import settings
from hypothesis import strategies as st

from charrnn.model.network import CharRNN, ModelConfig
from charrnn.runs import RunDir
from charrnn.text.encoded import encode_text
from charrnn.train.start import start
from charrnn.train.trainer import Trainer

# One thread, here and in every process the tests start: the tiny models gain nothing from more,
# and with another process busy on the cores (CI beside a build, a CPU hog) OpenMP's threads wait
# on each other at every operation and training runs 20x slower (measured: 246 s against 12 s).
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

# The suite runs on its own settings, never the developer's: a CHARRNN_CHECKPOINT_DIR left set in
# the shell would send the tests' runs into that folder (and fail them on a name already there).
for name in [name for name in os.environ if name.startswith("CHARRNN_")]:
    del os.environ[name]

# CI (which sets CI=true) draws the same property-test examples every run, so a landing is judged
# on the code, not on the luck of the draw; a developer's runs explore new examples each time.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# DEADLINE (helpers/cli.py): how long a test waits for an event from another process, far beyond
# what it takes here, so that a machine three times slower, or busy with other work, still passes
# (tests wait for events, never for a fixed time).
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
    text: str,
    folder: Path,
    seed: int = 0,
    cell: str = "lstm",
    model: dict | None = None,
    size: str = "auto",
    **train,
) -> Trainer:
    """A Trainer for a tiny model of `cell` on `text`, writing into `folder` (as the CLI starts
    one: the library's start; `size` a preset's name where auto's choices would be in the way)."""
    folder.mkdir(parents=True, exist_ok=True)
    return start(
        encode_text(text, "tiny"),
        RunDir(folder),
        replace=True,  # tests build one over a stopped run, then load its state by hand
        size=size,
        cell=cell,
        model={**TINY_MODEL, **(model or {})},
        train={**TINY_TRAIN, "seed": seed, **train},
    ).trainer


def drain(trainer: Trainer) -> list:
    return list(trainer.run())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, text) -> RunDir:
    """A tiny run trained once per session: 200 steps, best.pt and last.pt on disk."""
    trainer = make_trainer(text, tmp_path_factory.mktemp("runs") / "tiny", max_steps=200)
    drain(trainer)
    return trainer.run_dir


@pytest.fixture(scope="session")
def model_vocab(trained_run):
    """(model, vocab) of the session's tiny run, restored from its best.pt."""
    from charrnn import checkpoint

    model = checkpoint.restore(checkpoint.load(trained_run.best), trained_run.best)
    return model.net, model.vocab


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
    """Run in an empty folder with a private cache; returns helpers.cli.invoke(args, input)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    return invoke


@pytest.fixture
def sample(trained_run, tmp_path, monkeypatch):
    """sample(*args, input=None): `charrnn sample -c RUN ARGS` with the session's tiny run, in an
    empty folder."""
    monkeypatch.chdir(tmp_path)
    best = str(trained_run.best)
    return lambda *args, input=None: invoke(["sample", "-c", best, *args], input=input)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


def torch_saved_evil() -> bytes:
    """A torch file that would run a command if it were unpickled without weights_only."""
    buf = io.BytesIO()
    torch.save({"format": "charrnn", "format_version": 1, "x": Evil()}, buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """A folder with a run `tiny` trained there by the command (20 steps) and every kind of bad
    file."""
    root = tmp_path_factory.mktemp("bad")
    (root / "ok.txt").write_text(make_text(), encoding="utf-8")
    (root / "empty.txt").write_text("")
    (root / "latin.txt").write_bytes("naïve café ".encode("latin-1") * 100)
    (root / "utf7.txt").write_bytes(b"hello +2D0-" + b" world (x)\n" * 300)  # a lone U+D83D
    (root / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50)
    (root / "small.txt").write_text("just a few words\n")
    (root / "onechar.txt").write_text("a" * 50_000)
    (root / "hugevocab.txt").write_text("".join(chr(0x10000 + i) for i in range(100_000)))
    (root / "emptydir").mkdir()
    (root / "dangling").symlink_to("nowhere.txt")  # a link to nothing
    (root / "hiddenonly").mkdir()
    (root / "hiddenonly" / ".notes").write_text("hidden text " * 1000)
    (root / "blocker").write_text("a file where a folder should be")
    (root / "junk.pt").write_bytes(os.urandom(4096))
    (root / "empty.pt").write_bytes(b"")
    (root / "evil.pt").write_bytes(torch_saved_evil())
    old = os.getcwd()
    os.chdir(root)
    try:
        r = invoke(["train", "ok.txt", "--name", "tiny", *TINY_CLI, "--steps", "20"])
        assert r.exit_code == 0, r.stderr
    finally:
        os.chdir(old)
    weights = torch.load(root / "checkpoints/tiny/best.pt", weights_only=True)["model"]
    torch.save(weights, root / "statedict.pt")  # another tool's plain state_dict
    # ... in the format before PyTorch 1.6, not a zip archive
    legacy = {"_use_new_zipfile_serialization": False}
    torch.save(weights, root / "legacy.pt", **legacy)  # pickle protocol 2, torch.save's default
    torch.save(weights, root / "legacy5.pt", **legacy, pickle_protocol=5)
    newer = torch.load(root / "checkpoints/tiny/best.pt", weights_only=True)
    torch.save({**newer, "format_version": 99}, root / "newer.pt")
    (root / "readonly.txt").write_text("kept\n")
    (root / "readonly.txt").chmod(0o444)  # refused as an output, also to root
    return root


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    """The current folder is the workspace, its cache private, CHARRNN_CHECKPOINT_DIR unset."""
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(workspace / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    return workspace


def tiny(cell: str, num_layers: int = 2, vocab_size: int = 11, seed: int = 0) -> CharRNN:
    """An untrained tiny model of `cell`, its weights away from PyTorch's small init."""
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab_size, cell=cell, **{**TINY_MODEL, "num_layers": num_layers}
    )
    model = CharRNN(config).eval()
    with torch.no_grad():  # weights away from PyTorch's small init, so the gates really move
        for p in model.rnn.parameters():
            p.mul_(2.0)
    return model


def poison(trainer, at_steps, once=True):
    """Make the loss NaN when the trainer takes one of `at_steps` (the first time only, if once):
    the step's own read, not the check of its batch before an evaluation (in eval mode)."""
    real, fired = trainer.net, set()

    def net(*args, **kwargs):
        logits, state = real(*args, **kwargs)
        step = trainer.pos.step + 1
        if trainer.model.training and step in at_steps and not (once and step in fired):
            fired.add(step)
            logits = logits * float("nan")
        return logits, state

    trainer.net = net


def page_data(html: str) -> dict:
    """The record an inspect page carries."""
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    return json.loads(blob.group(1))


def temporaries(*folders: Path) -> list[Path]:
    """The temporary files (an atomic write's, a download's) left in `folders`."""
    return [p for f in folders if f.is_dir() for p in f.rglob("*.tmp")]


# Any JSON value, small: what a damaged or hand-edited file may hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids),
    max_leaves=6,
)


@pytest.fixture(autouse=True)
def _speed_stood_in(monkeypatch):
    """`--size auto` times medium's training steps at start-up (a few seconds on one thread);
    in-process tests get a fixed rate instead (tests/test_presets.py checks the real one)."""
    from charrnn.train import start

    monkeypatch.setattr(start, "training_speed", lambda *a, **k: 10_000.0)


@pytest.fixture(autouse=True)
def _commands_begin_when_invoked(monkeypatch):
    """A command run in-process (CliRunner) begins when it is invoked: its --time counts from
    there, not from the test process's start, which may be minutes before (a real command's
    process starts with it)."""
    import importlib
    import time

    train = importlib.import_module("charrnn.cli.train")  # the module: `train` is its command
    monkeypatch.setattr(train, "_process_started", time.perf_counter)
