"""Nothing lost, nothing let in: rollbacks, stops mid-evaluation, locks, full disks, lying files."""

import errno
import json
import os
import subprocess
import tempfile

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_CLI, drain, make_trainer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.errors import CheckpointError, RunError, TrainingError
from charrnn.runs import RunDir
from charrnn.text import data
from charrnn.train.trainer import DoneEvent, EvalEvent, RollbackEvent


def poison(trainer, at_steps, once=True):
    """Make the loss NaN when the trainer takes one of `at_steps` (the first time only, if once)."""
    real, fired = trainer.net, set()

    def net(*args, **kwargs):
        logits, state = real(*args, **kwargs)
        step = trainer.pos.step + 1
        if step in at_steps and not (once and step in fired):
            fired.add(step)
            logits = logits * float("nan")
        return logits, state

    trainer.net = net


def test_a_nan_loss_rolls_back_lowers_the_lr_and_training_goes_on(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    poison(trainer, at_steps={25})
    events = drain(trainer)
    rollbacks = [e for e in events if isinstance(e, RollbackEvent)]
    assert len(rollbacks) == 1
    assert rollbacks[0].to_step == 20 and rollbacks[0].lr_scale == 0.5
    assert "the loss became nan at step 25" in rollbacks[0].reason
    assert events[-1] == DoneEvent("steps", 40, trainer.pos.best_val)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    last = checkpoint.load(trainer.run_dir.last)
    assert last["trainer"]["lr_scale"] == 0.5  # the lower rate survives a resume


def test_it_gives_up_after_repeated_failures_with_a_clear_message(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    poison(trainer, at_steps=set(range(15, 41)), once=False)
    with pytest.raises(TrainingError, match=r"diverged 4 times in a row.*try a lower --lr"):
        drain(trainer)
    assert checkpoint.load(trainer.run_dir.last)["trainer"]["step"] == 10  # the last good state


def test_a_rollback_before_the_first_evaluation_goes_back_to_step_0(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=12, eval_every=10)
    poison(trainer, at_steps={3})
    events = drain(trainer)
    assert [e.to_step for e in events if isinstance(e, RollbackEvent)] == [0]
    assert events[-1].reason == "steps"


def test_a_stop_during_evaluation_cuts_it_short_and_saves_last(tmp_path, text):
    trainer = make_trainer(text, tmp_path / "r", max_steps=40, eval_every=10)
    real_read = trainer.model.read  # what every pass of the recurrent part goes through

    def read(*args, **kwargs):
        if not trainer.model.training:  # evaluating
            trainer.request_stop()
        return real_read(*args, **kwargs)

    trainer.model.read = read
    events = drain(trainer)
    assert not [e for e in events if isinstance(e, EvalEvent)]
    assert events[-1].reason == "stopped" and events[-1].step == 10
    assert checkpoint.load(trainer.run_dir.last)["trainer"]["step"] == 10
    records = [json.loads(line) for line in trainer.run_dir.metrics.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["train"] * 10  # steps 1 to 10, and no evaluation


def test_a_second_trainer_of_the_same_run_is_refused(tmp_path, monkeypatch, corpus_file):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(cli, ["train", str(corpus_file), *TINY_CLI, "--steps", "10"])
    assert r.exit_code == 0
    run = RunDir(tmp_path / "checkpoints" / "tiny")
    before = run.best.read_bytes()
    with run.session():  # another trainer holds the run
        for args in (
            ["train", "--resume", "tiny", "--steps", "20"],
            ["train", str(corpus_file), *TINY_CLI, "--steps", "10", "--force"],
        ):
            r = runner.invoke(cli, args)
            assert r.exit_code == 1, r.stderr
            assert f"being trained by another process (pid {os.getpid()})" in r.stderr
        assert run.best.read_bytes() == before  # --force deleted nothing
        with pytest.raises(RunError), run.session():
            pass
    assert runner.invoke(cli, ["train", "--resume", "tiny", "--steps", "20"]).exit_code == 0


def test_disk_full_mid_run_is_one_line_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, corpus_file
):
    monkeypatch.chdir(tmp_path)
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 4:  # step 0, step 10 (last + best), then the disk is full
            f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    r = CliRunner().invoke(cli, ["train", str(corpus_file), *TINY_CLI, "--steps", "40"])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("Error: cannot write")
    assert "No space left on device" in r.stderr.splitlines()[-1]
    run = RunDir(tmp_path / "checkpoints" / "tiny")
    assert checkpoint.load(run.last)["trainer"]["step"] == 10  # untouched, loads
    assert checkpoint.load(run.best)["trainer"]["step"] == 10
    assert not list(run.path.glob(".*.tmp"))


def test_a_read_only_checkpoint_folder_is_one_line(tmp_path, monkeypatch, corpus_file):
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    r = CliRunner().invoke(cli, ["train", str(corpus_file), *TINY_CLI, "--steps", "10"])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("Error: cannot write")
    assert "Read-only file system" in r.stderr.splitlines()[-1] and r.stderr.count("Error") == 1
    assert not (tmp_path / "checkpoints" / "tiny" / "last.pt").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A real, nearly full disk: a tmpfs with room for 2.5 tiny checkpoints (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size = 2 * 130_000 + 65_000  # a tiny run's checkpoint is ~129 KB
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk(tmp_path, monkeypatch, corpus_file, tiny_disk):
    monkeypatch.chdir(tmp_path)
    args = [
        "train",
        str(corpus_file),
        *TINY_CLI,
        "--steps",
        "40",
        "--checkpoint-dir",
        str(tiny_disk),
    ]
    r = CliRunner().invoke(cli, args)
    # step 0: last.pt; step 10: last.pt and best.pt; step 20: no room for a third file
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("Error: cannot write")
    assert "No space left on device" in r.stderr
    run = tiny_disk / "tiny"
    assert checkpoint.load(run / "last.pt")["trainer"]["step"] == 10
    assert checkpoint.load(run / "best.pt")["trainer"]["step"] == 10
    assert not list(run.glob(".*.tmp"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_really_read_only_folder(tmp_path, monkeypatch, corpus_file):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    r = CliRunner().invoke(cli, ["train", str(corpus_file), "--checkpoint-dir", "ro", *TINY_CLI])
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    (run.path / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    with run.session():
        assert not list(run.path.glob(".*.tmp"))


# --------------------------------------------------------------------------- lying files


@pytest.fixture(scope="module")
def good(tmp_path_factory, text):
    trainer = make_trainer(text, tmp_path_factory.mktemp("good") / "r", max_steps=10)
    drain(trainer)
    return checkpoint.load(trainer.run_dir.last), trainer.run_dir.last


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 10**5}, "do not fit its config"),  # 160 GB if it were built
        ({"hidden_size": 10**9}, "do not fit its config"),  # exabytes, never allocated
        ({"hidden_size": 2**40}, "impossible model config"),
        ({"num_layers": 3}, "not those of a LSTM"),
        ({"cell": "gru"}, "do not fit its config"),  # an LSTM's weights called a GRU's
        ({"cell": "transformer"}, "broken vocabulary or model config"),
        ({"embedding_dim": -4}, "impossible model config"),
        ({"vocab_size": 5}, "inconsistent"),
        ({"colour": "blue"}, "broken vocabulary or model config"),
    ],
)
def test_configs_that_lie_about_the_weights_are_refused(good, change, message):
    payload, path = good
    lying = {**payload, "model_config": {**payload["model_config"], **change}}
    with pytest.raises(CheckpointError, match=message):
        checkpoint.restore_model(lying, path)


def test_other_lies_are_refused(good):
    payload, path = good
    with pytest.raises(CheckpointError, match="broken vocabulary"):
        checkpoint.restore_model({**payload, "vocab": [1, 2, 3]}, path)
    weights = dict(payload["model"])
    weights["head.bias"] = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(CheckpointError, match="do not fit"):
        checkpoint.restore_model({**payload, "model": weights}, path)
    with pytest.raises(CheckpointError, match="format version"):
        checkpoint.validate({**payload, "format_version": "1"}, path)


def test_a_broken_training_state_is_refused_on_resume(good, tmp_path, text):
    payload, _ = good
    trainer = make_trainer(text, tmp_path / "r", max_steps=10)
    state = payload["trainer"]["state"]
    for bad in ([torch.zeros(9, 9, 9)] * 2, state[:1], [state[0][:, :2], state[1][:, :2]], None):
        broken = {**payload, "trainer": {**payload["trainer"], "state": bad}}
        with pytest.raises(CheckpointError, match="training state is broken"):
            trainer.load_state(broken)
    broken = {**payload, "trainer": {**payload["trainer"], "batch": 10**6}}
    with pytest.raises(CheckpointError, match="outside the epoch"):
        trainer.load_state(broken)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=3000))
def test_any_bytes_load_as_a_checkpoint_or_fail_cleanly(tmp_path, blob):
    path = tmp_path / "fuzz.pt"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 2**32 - 1), st.integers(1, 20))
def test_truncating_a_real_checkpoint_anywhere_fails_cleanly(good, seed, cuts):
    _, path = good
    blob = path.read_bytes()
    cut = seed % len(blob)
    broken = path.parent / f"cut-{cut}.pt"
    broken.write_bytes(blob[:cut])
    try:
        with pytest.raises(CheckpointError):
            checkpoint.load(broken)
    finally:
        broken.unlink()


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 5000), batch=st.integers(1, 40), seq=st.integers(1, 64))
def test_every_batch_continues_every_stream(n, batch, seq):
    ids = torch.arange(n)
    if (n - 1) // batch < seq:
        return
    b = data.StreamBatcher(ids, batch, seq)
    prev = None
    for k in range(len(b)):
        x, y = b[k]
        assert x.shape == (batch, seq) and torch.equal(y, x + 1)
        if prev is not None:
            assert torch.equal(x[:, 0], prev[:, -1] + 1)
        prev = x
