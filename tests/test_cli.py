"""The command line through click's CliRunner (stdout and stderr apart) and as real processes."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import DEADLINE, TINY_CLI

from charrnn.cli.common import parse_duration


def train(invoke, corpus, *extra, steps=30):
    return invoke(["train", str(corpus), *TINY_CLI, "--steps", str(steps), *extra])


def test_train_prints_only_the_checkpoint_path_on_stdout(env, corpus_file, tmp_path):
    result = train(env, corpus_file)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == os.path.join("checkpoints", "tiny", "best.pt") + "\n"
    assert "Training 'tiny'" in result.stderr and "Done (steps budget spent)" in result.stderr
    assert "val" in result.stderr and "bits per character" in result.stderr
    run = tmp_path / "checkpoints" / "tiny"
    assert {p.name for p in run.iterdir()} == {"best.pt", "last.pt", "metrics.jsonl", ".lock"}


def test_sample_uses_the_latest_run_and_writes_only_text(env, corpus_file):
    train(env, corpus_file)
    a = env(["sample", "--length", "80", "--seed", "3"])
    assert a.exit_code == 0 and a.stderr == ""
    assert len(a.stdout) == 80
    assert env(["sample", "--length", "80", "--seed", "3"]).stdout == a.stdout
    primed = env(["sample", "--prime", "ANNA:", "--length", "20", "--seed", "3"])
    assert primed.stdout.startswith("ANNA:") and len(primed.stdout) == 25
    quiet = env(["sample", "--prime", "ANNA:", "-l", "20", "-s", "3", "--no-echo-prime"])
    assert quiet.stdout == primed.stdout[5:]


def test_checkpoint_option_takes_a_file_a_folder_or_a_name(env, corpus_file, tmp_path):
    train(env, corpus_file)
    train(env, corpus_file, "--name", "other", "--seed", "5")
    for ref in (
        "tiny",
        "checkpoints/tiny",
        "checkpoints/tiny/last.pt",
        str(tmp_path / "checkpoints/tiny"),
    ):
        r = env(["sample", "-c", ref, "-l", "10", "-s", "1", "-t", "0"])
        assert r.exit_code == 0 and len(r.stdout) == 10, (ref, r.stderr)


def test_checkpoint_dir_option_and_environment_variable(env, corpus_file, tmp_path, monkeypatch):
    r = train(env, corpus_file, "--checkpoint-dir", "elsewhere")
    assert r.stdout.startswith(os.path.join("elsewhere", "tiny"))
    monkeypatch.setenv("CHARRNN_CHECKPOINT_DIR", str(tmp_path / "elsewhere"))
    assert env(["sample", "-l", "5"]).exit_code == 0
    assert "tiny" in env(["runs"]).stdout


def test_an_existing_run_is_never_overwritten_silently(env, corpus_file, tmp_path):
    train(env, corpus_file)
    before = (tmp_path / "checkpoints/tiny/best.pt").read_bytes()
    r = train(env, corpus_file)
    assert r.exit_code == 1 and "already exists" in r.stderr and "--resume tiny" in r.stderr
    assert (tmp_path / "checkpoints/tiny/best.pt").read_bytes() == before
    assert train(env, corpus_file, "--force", "--seed", "9").exit_code == 0


def test_resume_continues_the_step_count(env, corpus_file, tmp_path):
    train(env, corpus_file, "--weight-decay", "0.5", steps=20)
    r = env(["train", "--resume", "tiny", "--steps", "40", "-q"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr == "" and r.stdout.strip().endswith("best.pt")
    last = torch.load(tmp_path / "checkpoints/tiny/last.pt", weights_only=True)
    assert last["trainer"]["step"] == 40
    assert last["train_config"]["weight_decay"] == 0.5  # the run's own, kept on resume
    decay = env(["train", "--resume", "tiny", "--weight-decay", "0", "--steps", "50"])
    assert decay.exit_code == 2 and "--weight-decay cannot change" in decay.stderr
    for bad in ("inf", "1.5", "-0.1"):  # refused before anything is read or written
        r = env(["train", str(corpus_file), "--name", "x", "--weight-decay", bad])
        assert r.exit_code == 2 and "--weight-decay" in r.stderr and not r.stdout
    again = env(["train", "--resume", "tiny"])
    assert again.exit_code == 1 and "already used its budget" in again.stderr
    fixed = env(["train", "--resume", "tiny", "--lr", "1", "--steps", "50"])
    assert fixed.exit_code == 2 and "--lr cannot change" in fixed.stderr


def test_stdin_training_with_a_name(env, text, tmp_path):
    r = env(["train", "-", "--name", "mixed", *TINY_CLI, "--steps", "10"], input=text)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "checkpoints/mixed/best.pt").is_file()
    r = env(["train", "--resume", "mixed", "--steps", "20"])
    assert r.exit_code == 1 and "standard input" in r.stderr


def _bad_inputs(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin.txt").write_bytes("naïve".encode("latin-1") * 100)
    (tmp_path / "small.txt").write_text("just a few words\n")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    return [
        (["train", "empty.txt"], 1, "corpus is empty"),
        (["train", "latin.txt"], 1, "offset 2"),
        (["train", "small.txt"], 1, "split has"),
        (["train", "missing.txt"], 1, "no such file"),
        (["train", "-"], 1, "corpus is empty"),
        (["train"], 2, "give a CORPUS"),
        (["train", "small.txt", "--time", "soon"], 2, "not a duration"),
        (["train", "small.txt", "--batch-size", "0"], 2, "batch-size"),
        (["train", "--resume", "nothing"], 1, "no run 'nothing'"),
        (["sample"], 1, "no trained runs"),
        (["sample", "-c", "junk.pt"], 1, "not a charrnn checkpoint"),
        (["sample", "-c", "nowhere.pt"], 1, "no checkpoint file or run folder"),
        (["sample", "--temp", "-1"], 2, "--temp"),
        (["sample", "--top-p", "0"], 2, "--top-p"),
        (["corpus", "get", "nonesuch"], 1, "no corpus named"),
    ]


def test_user_errors_are_one_line_with_the_right_exit_code(env, tmp_path):
    for args, code, message in _bad_inputs(tmp_path):
        r = env(args)
        assert r.exit_code == code, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert r.stdout == "" and "Traceback" not in r.stderr, args
        if code == 1:
            assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "checkpoints").exists()  # no failed start left a folder behind


def test_unseen_prime_characters_are_named(env, corpus_file):
    train(env, corpus_file)
    r = env(["sample", "--prime", "Zebra €"])
    assert r.exit_code == 1 and "'Z' (U+005A)" in r.stderr and "'€'" in r.stderr


def test_every_command_has_help_with_examples(env):
    for args in ([], ["train"], ["sample"], ["runs"], ["corpus", "get"], ["corpus", "list"]):
        r = env([*args, "--help"])
        assert r.exit_code == 0 and "Example" in r.stdout, args


def test_corpus_list_and_get(env, tmp_path):
    listing = env(["corpus", "list"]).stdout
    assert "tinyshakespeare" in listing and "pystdlib" in listing
    r = env(["corpus", "get", "pystdlib"])
    assert r.exit_code == 0 and r.stdout.startswith(str(tmp_path / "cache"))
    assert os.path.getsize(r.stdout.strip()) > 1_000_000


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400), ("45", 45)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


# --------------------------------------------------------------------------- real processes


def run(args, cwd, **kw):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=DEADLINE, **kw)


def test_help_does_not_import_torch():
    code = (
        "import sys; from charrnn.cli import cli; cli(['--help'], standalone_mode=False); "
        "assert 'torch' not in sys.modules"
    )
    assert run([sys.executable, "-c", code], cwd=".").returncode == 0


def test_ctrl_c_saves_last_and_resume_matches_an_uninterrupted_run(tmp_path, corpus_file):
    # the installed command: the one beside this Python, whether or not its folder is on PATH
    exe = shutil.which("charrnn", path=os.path.dirname(sys.executable)) or shutil.which("charrnn")
    assert exe, "the charrnn command is not installed (pip install -e .)"
    args = [exe, "train", str(corpus_file), *TINY_CLI, "--steps", "400", "--dropout", "0.1"]
    assert run([*args, "--name", "whole"], tmp_path).returncode == 0

    p = subprocess.Popen(
        [*args, "--name", "cut"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "checkpoints/cut/metrics.jsonl"
    deadline = time.time() + DEADLINE
    while (not metrics.is_file() or not metrics.read_text()) and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 130, err
    assert "Resume with: charrnn train --resume cut" in err and "Traceback" not in err
    step = torch.load(tmp_path / "checkpoints/cut/last.pt", weights_only=True)["trainer"]["step"]
    assert 0 < step < 400

    r = run([exe, "train", "--resume", "cut"], tmp_path)
    assert r.returncode == 0, r.stderr
    whole = torch.load(tmp_path / "checkpoints/whole/last.pt", weights_only=True)
    cut = torch.load(tmp_path / "checkpoints/cut/last.pt", weights_only=True)
    assert cut["trainer"]["step"] == 400
    for name, w in whole["model"].items():
        assert torch.equal(w, cut["model"][name]), name


@pytest.mark.parametrize(
    "args",
    [
        ["train", ""],  # an empty argument is not "the current folder"
        ["train", "corpus.txt", "--name", ""],
        ["train", "corpus.txt", "--seed", str(2**64)],  # what torch cannot take
        ["train", "corpus.txt", "--seed", "-1"],
        ["sample", "--stop", ""],
    ],
)
def test_empty_and_out_of_range_arguments_are_usage_errors(env, args):
    r = env(args)
    assert r.exit_code == 2 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr


def test_json_lines_stay_one_line_whatever_the_text():
    import json

    from charrnn.jsonl import json_line

    record = {"text": "a\x85b\u2028c\u2029d\ne", "run": "x\x85y"}
    line = json_line(record)
    assert len(line.splitlines()) == 1 and json.loads(line) == record
