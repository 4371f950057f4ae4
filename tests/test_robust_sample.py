"""`charrnn sample` against any arguments, and every command against an output it cannot write:
exit 0 with the documented output, or one `Error:` line and exit 1 (2 for usage), never a
traceback, nothing on stdout on failure, no file left half-written."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import DEADLINE, TINY_CLI, make_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.model.trained import Model, lead_in
from charrnn.use.sampler import MAX_SEED, SampleConfig, Sampler, sampling_threads

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TINY_TEMPS = ["1e-39", "1e-30", "5e-324", "2.2e-308", "1e-300"]


@pytest.fixture(scope="module")
def model_vocab(trained_run):
    return checkpoint.restore_model(checkpoint.load(trained_run.best), trained_run.best)


@pytest.fixture
def invoke(trained_run, tmp_path, monkeypatch):
    """sample with the session's tiny run, in an empty folder; tracebacks are kept, not raised."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(cli, ["sample", "-c", str(trained_run.best), *args], input=input)

    return run


def assert_one_error(r, code=None):
    """Failed as a user error: one `Error:` line on stderr, nothing on stdout, no traceback."""
    assert r.exit_code in ((1, 2) if code is None else (code,)), (r.exit_code, r.stderr)
    assert isinstance(r.exception, SystemExit | None), r.exception
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("Error:")] == [
        r.stderr.rstrip("\n").splitlines()[-1]
    ], r.stderr


# --- the contract, for any combination of sample's options --------------------------------------

texts = st.text(alphabet=st.sampled_from("ANB:th e.\n\\nxé\t"), max_size=6)


@PROPERTY
@given(
    prime=texts,
    stops=st.lists(texts, max_size=3),
    separator=texts,
    n=st.integers(1, 3),
    temps=st.lists(st.sampled_from(["0", "0.5", "1", "3", *TINY_TEMPS]), min_size=1, max_size=3),
    top_k=st.none() | st.integers(1, 8),
    top_p=st.none() | st.floats(0.01, 1.0),
    length=st.integers(0, 25),
    as_json=st.booleans(),
    seed=st.integers(0, MAX_SEED - 2),
)
def test_sample_keeps_its_contract_for_any_options(
    invoke, model_vocab, prime, stops, separator, n, temps, top_k, top_p, length, as_json, seed
):
    args = ["-n", str(n), "-l", str(length), "-s", str(seed), "-t", ",".join(temps)]
    args += ["--prime", prime, "--separator", separator, "--unknown", "error"]
    for stop in stops:
        args += ["--stop", stop]
    args += ["--top-k", str(top_k)] * (top_k is not None) + ["--top-p", str(top_p)] * bool(top_p)
    r = invoke(*args, *["--json"] * as_json)
    if r.exit_code != 0:
        assert_one_error(r)
        # the user errors here: characters the model never saw, an empty --stop (exit 2)
        assert set(prime) - set(model_vocab[1].chars) or (r.exit_code == 2 and "" in stops)
        return
    cuts = [s.replace("\\n", "\n").replace("\\t", "\t") for s in stops if s]
    cuts = [s.replace("\\\\", "\\") for s in cuts]
    if as_json:
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        assert [row["seed"] for row in rows] == [seed + i for i in range(n)]
        for row in rows:
            assert len(row["text"]) <= length and row["prime"] == prime
            assert not any(c in row["text"] for c in cuts)
            assert -math.inf < row["mean_logprob"] <= 0
    elif n == 1:
        assert r.stdout.startswith(prime) and len(r.stdout) <= len(prime) + length
        assert not any(c in r.stdout[len(prime) :] for c in cuts)


# --- 1. output that cannot be written -----------------------------------------------------------


def run_main(args, stdout, monkeypatch, capsys):
    """The whole command, as `charrnn ARGS` runs it, with sys.stdout being `stdout`."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as e:
        cli.main(args, prog_name="charrnn")
    monkeypatch.undo()
    return e.value.code, capsys.readouterr().err


@pytest.fixture
def commands(trained_run, tmp_path, monkeypatch):
    """Every command that writes to stdout, with the arguments to make it write."""
    monkeypatch.chdir(tmp_path)  # train makes its runs here, in ./checkpoints
    best = str(trained_run.best)
    lines = tmp_path / "lines.txt"
    lines.write_text("ANNA:\nthe cat sat.\n\nBORIS:\nwe all sang.\n")
    small = tmp_path / "small.txt"
    small.write_text(make_text(3000))
    runs_here = ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    return {
        "sample": ["sample", "-c", best, "-l", "50", "-s", "1"],
        "sample -n 2 --json": ["sample", "-c", best, "-n", "2", "-l", "50", "--json"],
        "score": ["score", "-c", best, str(lines)],
        "score --per-line": ["score", "-c", best, "--per-line", str(lines)],
        "runs": ["runs", "--checkpoint-dir", str(trained_run.path.parent)],
        "plot": ["plot", trained_run.name, "--checkpoint-dir", str(trained_run.path.parent)],
        "plot --json": ["plot", str(trained_run.path), "--train", "--json"],
        "corpus list": ["corpus", "list"],
        "inspect": ["inspect", "-c", best, str(lines), "--unit", "1:2"],
        "inspect --json": ["inspect", "-c", best, str(lines), "--json", "--find-units", "-q"],
        "inspect --sample": ["inspect", "-c", best, "--sample", "30", "--find-units", "-q"],
        # its own --checkpoint-dir: run_main's monkeypatch.undo() also undoes the chdir above,
        # and a run must never land in the checkout's checkpoints/
        "train": ["train", str(small), *TINY_CLI, "--steps", "3", "-q", "--force", *runs_here],
    }


FULL = (
    "Error: cannot write the output: No space left on device; free some space on that disk, or "
    "send the output elsewhere"
)


@pytest.mark.parametrize(
    "name",
    [
        "sample",
        "sample -n 2 --json",
        "score",
        "score --per-line",
        "runs",
        "plot",
        "plot --json",
        "corpus list",
        "inspect",
        "inspect --json",
        "inspect --sample",
        "train",
    ],
)
def test_every_command_reports_output_it_cannot_write(name, commands, monkeypatch, capsys):
    args = commands[name]
    with open("/dev/full", "w") as full:  # a full disk: ENOSPC on the first flush
        code, err = run_main(args, full, monkeypatch, capsys)
    assert code == 1 and err == f"{FULL}\n", err
    code, err = run_main(args, None, monkeypatch, capsys)  # started with stdout closed (>&-)
    assert code == 1 and err.startswith("Error: cannot write the output: Bad file descriptor")
    assert err.count("\n") == 1
    r, w = os.pipe()
    os.close(r)  # the reader left (`| head`): quiet, exit 0
    with open(w, "w") as gone:
        code, err = run_main(args, gone, monkeypatch, capsys)
    assert code == 0 and err == ""


def test_a_full_disk_or_closed_stdout_in_a_real_process(trained_run):
    base = [sys.executable, "-m", "charrnn", "sample", "-c", str(trained_run.best), "-l", "99"]
    with open("/dev/full", "wb") as full:
        p = subprocess.run(base, stdout=full, stderr=subprocess.PIPE, timeout=DEADLINE)
    assert p.returncode == 1
    assert p.stderr.decode().splitlines()[-1:] == [FULL]
    p = subprocess.run(
        base, stderr=subprocess.PIPE, timeout=DEADLINE, preexec_fn=lambda: os.close(1)
    )
    assert p.returncode == 1 and b"Traceback" not in p.stderr and b"Exception" not in p.stderr
    assert b"Error: cannot write the output: Bad file descriptor" in p.stderr


def test_output_file_is_all_or_nothing(invoke, tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("the previous text\n")
    real_fsync = os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)  # the disk fills as the file is made durable
    r = invoke("-o", str(target), "-l", "300")
    assert_one_error(r, 1)
    assert "cannot write the output" in r.stderr and "No space left on device" in r.stderr
    assert target.read_text() == "the previous text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp file left
    monkeypatch.setattr(os, "fsync", real_fsync)
    ok = invoke("-o", str(target), "-l", "40", "-s", "4", "--prime", "ANNA:")
    assert ok.exit_code == 0 and ok.stdout == ""
    assert target.read_text() == invoke("-l", "40", "-s", "4", "--prime", "ANNA:").stdout
    full = invoke("-o", "/dev/full", "-l", "40")  # a device is written in place, never replaced
    assert_one_error(full, 1)
    assert "/dev/full: No space left on device" in full.stderr
    assert Path("/dev/full").is_char_device()


@pytest.mark.parametrize("option", ["-o", "--prime-file"])
def test_an_empty_file_argument_is_a_usage_error(invoke, option):
    r = invoke(option, "", "-l", "5")
    assert_one_error(r, 2)
    assert "is empty" in r.stderr


# --- 2. arguments that are not UTF-8 ------------------------------------------------------------


@PROPERTY
@given(
    option=st.sampled_from(["--prime", "--stop", "--separator"]),
    raw=st.binary(min_size=1, max_size=6),
    as_json=st.booleans(),
)
def test_text_options_refuse_bytes_that_are_not_utf8(invoke, option, raw, as_json):
    value = raw.decode("utf-8", "surrogateescape")  # what Python makes of such an argv
    r = invoke(option, value, "-n", "2", "-l", "10", "--unknown", "skip", *["--json"] * as_json)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert_one_error(r, 2)
        assert f"'{option}': holds a byte that is not UTF-8" in r.stderr
    else:
        assert r.exit_code == 0 or r.stdout == "", r.stderr
        assert "Traceback" not in r.stderr


def test_raw_bytes_on_a_real_command_line(trained_run):
    cmd = [sys.executable, "-m", "charrnn", "sample", "-c", str(trained_run.best), "-n", "2"]
    cmd = [os.fsencode(x) for x in cmd] + [b"--json", b"--separator", b"\xff\xfe", b"-l", b"5"]
    p = subprocess.run(cmd, capture_output=True, timeout=DEADLINE)
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.splitlines()[-1].startswith(b"Error: Invalid value for '--separator'")


# --- 3. mean_logprob covers exactly what was output ---------------------------------------------


def model_mean_logprob(model, vocab, prime: str, text: str) -> float:
    context = lead_in(vocab) + prime
    with torch.no_grad():
        logits, _ = model(torch.tensor([vocab.encode(context + text)]))
    logp = torch.log_softmax(logits[0, len(context) - 1 : -1], -1)
    return logp.gather(1, torch.tensor(vocab.encode(text))[:, None]).mean().item()


@pytest.mark.parametrize("n", [1, 3])
def test_mean_logprob_covers_exactly_the_characters_output(invoke, model_vocab, n):
    model, vocab = model_vocab
    r = invoke("-n", str(n), "-l", "80", "-s", "9", "--prime", "ANNA:", "--stop", "at", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == n and any(len(row["text"]) < 80 for row in rows)  # some were cut
    for row in rows:
        expected = model_mean_logprob(model, vocab, "ANNA:", row["text"])
        assert row["mean_logprob"] == pytest.approx(expected, abs=1e-5)


# --- 4. seeds a JSON reader keeps ---------------------------------------------------------------


@settings(PROPERTY, max_examples=25)
@given(seed=st.integers(MAX_SEED - 5, MAX_SEED) | st.integers(0, MAX_SEED), n=st.integers(1, 3))
def test_seeds_round_trip_through_json(invoke, seed, n):
    r = invoke("-s", str(seed), "-n", str(n), "-l", "3", "--json")
    if seed + n - 1 > MAX_SEED:
        assert_one_error(r, 2)
        return
    seeds = [json.loads(line)["seed"] for line in r.stdout.splitlines()]
    assert seeds == [seed + i for i in range(n)]
    assert [int(float(s)) for s in seeds] == seeds  # what a reader with only doubles gets


@pytest.mark.parametrize(
    "seed", ["-1", str(2**53), str(2**62), str(2**64), "-99999999999999999999"]
)
def test_seeds_out_of_range_are_usage_errors(invoke, seed):
    assert_one_error(invoke("-s", seed, "-l", "3"), 2)


def test_a_random_seed_is_one_a_json_reader_keeps_and_replays(invoke):
    row = json.loads(invoke("-l", "30", "--json").stdout)
    assert 0 <= row["seed"] <= MAX_SEED
    again = json.loads(invoke("-l", "30", "--json", "-s", str(row["seed"])).stdout)
    assert again["text"] == row["text"]


# --- 5. a tiny temperature is greedy ------------------------------------------------------------


@settings(PROPERTY, max_examples=15)
@given(
    temp=st.sampled_from(TINY_TEMPS) | st.floats(5e-324, 1e-30).map(repr),
    seed=st.integers(0, 1000),
)
def test_a_tiny_temperature_is_greedy(invoke, temp, seed):
    greedy = invoke("-t", "0", "-l", "60", "-s", str(seed), "--prime", "ANNA:").stdout
    assert invoke("-t", temp, "-l", "60", "-s", str(seed), "--prime", "ANNA:").stdout == greedy


def test_choose_at_a_tiny_temperature_is_the_argmax_whatever_the_logits(model_vocab):
    model, vocab = model_vocab
    logits = torch.randn(4, len(vocab)) * 1e3
    for t in (1e-39, 5e-324, 1e-300):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=t, seed=0, num_samples=4))
        assert torch.equal(s.choose(logits), logits.argmax(-1))


# --- 6. threads ---------------------------------------------------------------------------------


def test_sampling_runs_on_one_thread_for_small_steps_and_restores_the_setting(model_vocab):
    model, vocab = model_vocab
    assert all(sampling_threads(model, n) == 1 for n in (1, 2, 16, 4096))  # a tiny model
    before = torch.get_num_threads()
    s = Sampler(Model(model, vocab), SampleConfig(seed=0, num_samples=8))
    seen = []
    for _ in s.generate(3):
        seen.append(torch.get_num_threads())
    assert seen == [1, 1, 1] and torch.get_num_threads() == before


# --- 7. --encoding for the prime ----------------------------------------------------------------


def test_a_prime_file_in_another_encoding(invoke, tmp_path):
    (tmp_path / "p.txt").write_bytes("ANNA:\xa0".encode("latin-1"))
    bad = invoke("--prime-file", "p.txt", "-l", "5")
    assert_one_error(bad, 1)
    assert "--encoding" in bad.stderr
    ok = invoke("--prime-file", "p.txt", "--encoding", "latin-1", "--unknown", "skip", "-l", "5")
    assert ok.exit_code == 0 and ok.stdout.startswith("ANNA:"), ok.stderr


# --- 8. Ctrl-C during start-up ------------------------------------------------------------------

# Runs `charrnn ARGS`, but says READY on stderr and waits for a signal where torch is first
# imported: the start-up every command goes through before its work begins.
STARTUP_DRIVER = """
import signal, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            sys.stderr.write("READY\\n")
            sys.stderr.flush()
            signal.pause()

sys.meta_path.insert(0, Block())
sys.argv[0] = "charrnn"
from charrnn.cli import main
main()
"""


@pytest.mark.parametrize(
    "args",
    [
        ["sample", "-l", "5"],
        ["score", "x.txt"],
        ["inspect", "x.txt"],
        ["train", "x.txt", "--steps", "1"],
    ],
)
def test_ctrl_c_during_start_up_exits_130_quietly(args, tmp_path):
    p = subprocess.Popen(
        [sys.executable, "-c", STARTUP_DRIVER, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stderr.readline() == b"READY\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 130 and out == b"" and err.count(b"\n") <= 1, err
    assert b"Traceback" not in err and b"Aborted" not in err
