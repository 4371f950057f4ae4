"""Mixed precision: a training step autocast to bfloat16 where the CPU has it natively, float32
elsewhere; it learns as the float32 step does, reproduces, and leaves the weights, the carried
state and the checkpoint in float32."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_CLI, drain, make_trainer
from helpers.cli import assert_one_error

from charrnn import checkpoint, devices
from charrnn.errors import ConfigError
from charrnn.model.config import ModelConfig
from charrnn.model.network import CharRNN
from charrnn.text.encoded import encode_text
from charrnn.train import precision
from charrnn.train.evaluate import evaluate
from charrnn.train.resume import resume
from charrnn.train.trainer import EvalEvent, StepEvent

CPU = torch.device("cpu")


@pytest.fixture
def native(monkeypatch):
    """native(True/False): make this machine's CPU one with (or without) native bf16. Autocast
    to bf16 works on any CPU, only slower where emulated, except oneDNN's LSTM (see BF16_CELL)."""
    return lambda value: monkeypatch.setattr(devices, "_native_bf16", lambda device: value)


def _bf16_lstm_runs_here() -> bool:
    """Whether nn.LSTM runs under bf16 autocast on this CPU: oneDNN, which it runs on, has no bf16
    LSTM on a CPU without AVX-512 (it refuses to build one), where the GRU and RNN still run."""
    lstm = torch.nn.LSTM(2, 2)
    try:
        with torch.autocast("cpu", torch.bfloat16):
            lstm(torch.zeros(1, 1, 2))
    except RuntimeError:
        return False
    return True


BF16_LSTM = _bf16_lstm_runs_here()
# The cell of the tests of mixed precision's plumbing: the LSTM where it runs in bf16 here.
BF16_CELL = "lstm" if BF16_LSTM else "gru"


def test_auto_is_bf16_only_on_a_cpu_that_has_it_and_bf16_is_refused_where_it_is_not(native):
    native(True)
    assert devices.autocast_dtype("auto", CPU) == torch.bfloat16
    assert devices.autocast_dtype("bfloat16", CPU) == torch.bfloat16
    assert devices.autocast_dtype("float32", CPU) is None
    assert devices.autocast_dtype("auto", torch.device("cuda")) is None  # measured on CPUs only
    native(False)
    assert devices.autocast_dtype("auto", CPU) is None
    with pytest.raises(ConfigError, match="give --precision float32"):
        devices.autocast_dtype("bfloat16", CPU)
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        devices.autocast_dtype("fp16", CPU)


def test_the_probe_of_native_bf16_answers_on_this_machine():
    assert devices._native_bf16(CPU) in (True, False)  # the private probes exist, or say no
    assert devices._native_bf16(torch.device("meta")) is False


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_bf16_run_learns_as_a_float32_run_and_keeps_float32(tmp_path, text, native, cell):
    if cell == "lstm" and not BF16_LSTM:
        pytest.skip("oneDNN has no bf16 LSTM on this CPU (no AVX-512)")
    native(True)
    runs = {
        p: make_trainer(text, tmp_path / p, cell=cell, max_steps=60, eval_every=60, precision=p)
        for p in ("float32", "bfloat16")
    }
    losses = {}
    for p, trainer in runs.items():
        steps = [e.loss for e in drain(trainer) if isinstance(e, StepEvent)]
        losses[p] = (steps[0], trainer.pos.best_val)
        assert all(s.dtype == torch.float32 for s in trainer.streams)  # the state carried
        assert all(w.dtype == torch.float32 for w in trainer.model.parameters())
    (first32, val32), (first16, val16) = losses["float32"], losses["bfloat16"]
    assert runs["bfloat16"].autocast == torch.bfloat16 and runs["float32"].autocast is None
    assert first16 == pytest.approx(first32, abs=0.02)  # the same model, rounded to bf16
    assert val16 < first16 - 0.5  # it learns...
    assert val16 == pytest.approx(val32, abs=0.05)  # ... as the float32 run does
    saved = checkpoint.load(runs["bfloat16"].run_dir.last)  # weights_only, as every load is
    assert saved["train_config"]["precision"] == "bfloat16"
    assert all(t.dtype == torch.float32 for t in saved["model"].values() if t.is_floating_point())


def test_a_bf16_run_evaluates_in_bf16_a_hair_from_float32(tmp_path, text, native):
    """A run's evaluations read in its step's arithmetic (about twice as fast): its record is the
    bf16 read of its model, a hair from the float32 read that `score` gives."""
    native(True)
    trainer = make_trainer(
        text, tmp_path / "r", cell=BF16_CELL, max_steps=30, eval_every=30, precision="bfloat16"
    )
    record = [e.record for e in drain(trainer) if isinstance(e, EvalEvent)][-1]
    with torch.autocast("cpu", torch.bfloat16):
        half = evaluate(trainer.trained, trainer.val_batches).loss
    full = evaluate(trainer.trained, trainer.val_batches).loss
    assert record["val_loss"] == pytest.approx(half, abs=1e-5)  # (the record keeps 5 decimals)
    assert half != full and half == pytest.approx(full, abs=2e-3)


def test_the_same_seed_gives_the_same_bf16_weights(tmp_path, text, native):
    native(True)
    a, b = (
        make_trainer(text, tmp_path / n, seed=5, cell=BF16_CELL, max_steps=12, precision="bfloat16")
        for n in "ab"
    )
    drain(a), drain(b)
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


def test_a_resume_may_change_the_precision(tmp_path, text, native):
    native(True)
    drain(make_trainer(text, tmp_path / "run", cell=BF16_CELL, max_steps=10, precision="bfloat16"))
    read = lambda specs, encoding: encode_text(text, "tiny")  # noqa: E731
    native(False)  # resumed where bf16 is not: its saved setting is refused, and says what to do
    with pytest.raises(ConfigError, match=r"this run's or --precision's\).*--precision float32"):
        resume(tmp_path / "run", read, corpus_specs=["-"], train={"max_steps": 20})
    native(True)
    again = resume(
        tmp_path / "run",
        read,
        corpus_specs=["-"],
        train={"max_steps": 20, "precision": "float32"},
    ).trainer
    assert again.config.precision == "float32" and again.autocast is None
    drain(again)
    assert again.pos.step == 20


def test_bf16_asked_for_without_it_is_one_error_line(env, corpus_file, native):
    native(False)
    r = env(["train", str(corpus_file), *TINY_CLI, "--steps", "5", "--precision", "bfloat16"])
    assert_one_error(r, 1, "precision bfloat16", "--precision float32")
    native(True)
    bf16 = ["--steps", "5", "--precision", "bfloat16", "--cell", BF16_CELL]
    r = env(["train", str(corpus_file), *TINY_CLI, *bf16])
    assert r.exit_code == 0, r.stderr
    assert "(bfloat16 mixed precision)" in r.stderr.splitlines()[0]


# ---------------------------------------------------------------------------------------------
# bfloat16 kept only where its gradients are float32's (train/precision.py)


@pytest.fixture
def faulty(monkeypatch):
    """Make every bf16 kernel look wrong: its gradients this far from float32's."""
    precision._agree.cache_clear()
    monkeypatch.setattr(precision, "distance", lambda exact, fast: 0.5)
    yield
    precision._agree.cache_clear()


def test_a_right_bf16_kernel_passes_the_probe_and_the_run_keeps_bf16(tmp_path, text, native):
    native(True)
    precision._agree.cache_clear()
    trainer = make_trainer(text, tmp_path / "r", cell=BF16_CELL, max_steps=2)
    assert trainer.autocast == torch.bfloat16 and trainer.precision_note == ""


def test_where_bf16_gradients_are_wrong_auto_trains_in_float32_and_bf16_asked_for_is_refused(
    tmp_path, text, native, faulty
):
    native(True)
    trainer = make_trainer(text, tmp_path / "auto", cell=BF16_CELL, max_steps=2)
    assert trainer.autocast is None
    assert trainer.precision_note.startswith("float32, as bfloat16 does not give float32's")
    with pytest.raises(ConfigError, match=r"gradients.*give --precision float32 or auto"):
        make_trainer(text, tmp_path / "bf16", cell=BF16_CELL, max_steps=2, precision="bfloat16")
    # The probe draws from its own generators: the same seed trains the same weights with it
    # (faulty: float32 after the probe) and without it (no bf16 here: no probe), dropout too.
    runs = []
    for native_here, name in ((True, "probed"), (False, "plain")):
        native(native_here)
        run = make_trainer(text, tmp_path / name, 3, BF16_CELL, {"dropout": 0.3}, max_steps=3)
        assert run.autocast is None
        drain(run)
        runs.append(run)
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_kernel_that_refuses_bf16_is_float32_under_auto(tmp_path, text, native, monkeypatch):
    native(True)
    precision._agree.cache_clear()
    real = precision._gradients

    def refuses(net, x, dtype):
        if dtype is not None:
            raise RuntimeError("no bf16 kernel here")
        return real(net, x, dtype)

    monkeypatch.setattr(precision, "_gradients", refuses)
    trainer = make_trainer(text, tmp_path / "r", cell=BF16_CELL, max_steps=2)
    assert trainer.autocast is None
    assert "does not give float32's gradients" in trainer.precision_note
    precision._agree.cache_clear()


def test_the_first_line_says_why_a_run_trains_in_float32(env, corpus_file, native, faulty):
    native(True)
    r = env(["train", str(corpus_file), *TINY_CLI, "--steps", "2", "--cell", BF16_CELL])
    assert r.exit_code == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert "(float32, as bfloat16 does not give float32's gradients for a 2x" in first
    assert "mixed precision" not in first
    bf16 = ["--steps", "2", "--precision", "bfloat16", "--name", "bf16"]
    r = env(["train", str(corpus_file), *TINY_CLI, *bf16])
    assert_one_error(r, 1, "does not give float32's gradients", "--precision float32")


@pytest.mark.skipif(not BF16_LSTM, reason="oneDNN has no bf16 LSTM on this CPU (no AVX-512)")
def test_the_probe_of_a_wide_lstm_says_what_another_batch_says():
    """At 1024 wide, PyTorch's bf16 LSTM on a CPU with AMX gives wrong gradients; elsewhere right
    ones. Whichever this machine gives, the probe's verdict is the one another batch and other
    weights give: it is not an accident of its own draw."""
    precision._agree.cache_clear()
    config = ModelConfig(vocab_size=40, embedding_dim=16, hidden_size=1024, num_layers=1)
    torch.manual_seed(7)
    net = CharRNN(config)
    x = torch.randint(40, (8, 9), generator=torch.Generator().manual_seed(7))
    far = precision.distance(
        precision._gradients(net, x, None), precision._gradients(net, x, torch.bfloat16)
    )
    agree = precision.gradients_agree(net, 8, 32, torch.bfloat16)
    assert agree == (far <= precision.AGREEMENT), far
    assert far < precision.AGREEMENT / 3 or far > 2 * precision.AGREEMENT  # never near the line
