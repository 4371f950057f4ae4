"""Every sampling feature: paths, batches, schedules, stops, primes, JSON, files, scoring."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from conftest import DEADLINE

from charrnn import checkpoint
from charrnn.cli import cli
from charrnn.errors import VocabError
from charrnn.model.trained import Model, lead_in, lead_in_for
from charrnn.text.vocab import CharVocab, apply_unknown
from charrnn.use.sampler import SampleConfig, Sampler, StopCutter
from charrnn.use.scoring import score_lines, score_text


@pytest.fixture(scope="module")
def model_vocab(trained_run):
    return checkpoint.restore_model(checkpoint.load(trained_run.best), trained_run.best)


def texts(model, vocab, length=300, prime="ANNA:", **cfg):
    s = Sampler(Model(model, vocab), SampleConfig(**cfg))
    s.prime(prime)
    rows = ["" for _ in range(s.config.num_samples)]
    for chars in s.generate(length):
        rows = [r + ch for r, ch in zip(rows, chars, strict=True)]
    return rows


def test_a_batch_of_n_is_n_single_runs_with_seeds_seed_plus_i(model_vocab):
    model, vocab = model_vocab
    batch = texts(model, vocab, seed=40, num_samples=4, temperature=1.0)
    assert len(set(batch)) == 4  # different samples
    for i in range(4):
        assert texts(model, vocab, seed=40 + i, temperature=1.0) == [batch[i]]


def test_temperature_schedule_is_cycled_per_character(model_vocab):
    model, vocab = model_vocab
    s = Sampler(Model(model, vocab), SampleConfig(temperature=(0.0, 5.0), seed=3))
    s.prime("ANNA:")
    logits = torch.randn(1, len(vocab))
    assert [int(s.choose(logits, t)) for t in (0, 2, 4)] == [int(logits.argmax())] * 3
    hot = {int(s.choose(logits, t)) for t in range(1, 400, 2)}
    assert len(hot) > 5  # t odd: temperature 5, nearly uniform
    assert texts(model, vocab, seed=1, temperature=(0.8, 0.8)) == texts(
        model, vocab, seed=1, temperature=0.8
    )


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_the_draws_follow_softmax_of_the_logits_over_the_temperature(model_vocab, temperature):
    # The draw must give each id its probability under softmax(logits / T): 20,000 draws put each
    # frequency within 0.015 of it (4 standard deviations at p = 0.5).
    model, vocab = model_vocab
    logits = torch.randn(1, len(vocab), generator=torch.Generator().manual_seed(0)) * 2
    s = Sampler(Model(model, vocab), SampleConfig(temperature=temperature, seed=9))
    draws = torch.cat([s.choose(logits) for _ in range(20_000)])
    seen = torch.bincount(draws, minlength=len(vocab)) / len(draws)
    assert (seen - torch.softmax(logits[0] / temperature, -1)).abs().max() < 0.015


def test_top_k_and_top_p_never_pick_outside_their_set(model_vocab):
    model, vocab = model_vocab
    logits = torch.linspace(0, 10, len(vocab))[None]  # id V-1 likeliest, then V-2, ...
    for cfg, allowed in (
        ({"top_k": 2}, {len(vocab) - 1, len(vocab) - 2}),
        ({"top_p": 1e-9}, {len(vocab) - 1}),
    ):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=3.0, seed=0, **cfg))
        assert {int(s.choose(logits)) for _ in range(300)} == allowed
    # A p that is 0 in float32 still keeps the likeliest, here the first id (a mask that dropped
    # everything fell through to the last).
    s = Sampler(Model(model, vocab), SampleConfig(temperature=3.0, seed=0, top_p=1e-300))
    assert {int(s.choose(logits.flip(-1))) for _ in range(50)} == {0}
    # ... and so do top-k 1 and a tiny p at a temperature that flattens every logit to a tie.
    for cfg in ({"top_k": 1}, {"top_p": 1e-300}):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=1e39, seed=0, **cfg))
        assert {int(s.choose(logits.flip(-1))) for _ in range(50)} == {0}


def test_mean_logprob_is_what_the_model_gives_the_text(model_vocab):
    model, vocab = model_vocab
    s = Sampler(Model(model, vocab), SampleConfig(temperature=1.0, seed=5))
    s.prime("ANNA:")
    text = "".join(chars[0] for chars in s.generate(50))
    context = lead_in(vocab) + "ANNA:"
    with torch.no_grad():
        logits, _ = model(torch.tensor([vocab.encode(context + text)]))
    logp = torch.log_softmax(logits[0, len(context) - 1 : -1], -1)
    expected = logp.gather(1, torch.tensor(vocab.encode(text))[:, None]).mean().item()
    assert s.mean_logprob()[0] == pytest.approx(expected, abs=1e-5)


def test_stop_cutter_ends_before_the_stop_and_streams_the_rest():
    cut = StopCutter(2, ["\n\n", "END"])
    out0 = "".join(cut.feed(0, ch) for ch in "one line\nnext\n\nlost")
    assert out0 == "one line\nnext" and cut.done[0]
    streamed = [cut.feed(1, ch) for ch in "abcEN"]
    assert "".join(streamed) == "abc" and streamed[1] == "" and streamed[2] == "a"  # held 2 chars
    assert cut.flush(1) == "EN" and not cut.all_done()
    plain = StopCutter(1)
    assert [plain.feed(0, ch) for ch in "xy"] == ["x", "y"]  # no stops: nothing held back


def test_unknown_characters_error_skip_or_replace():
    vocab = CharVocab.from_text("abcde \"'-.")
    with pytest.raises(VocabError, match=r"'é' \(U\+00E9\) at 2, 5; 'z' \(U\+007A\) at 4"):
        apply_unknown("aébzé", vocab)
    assert apply_unknown("aébzé", vocab, "skip") == "ab"
    assert apply_unknown("café “déjà” — ok…", vocab, "replace") == 'ca e "de a" -   ...'


def test_scores_are_the_models_own_cross_entropy(model_vocab):
    model, vocab = model_vocab
    text = "ANNA:\nthe cat sat on a mat.\n\nBORIS:\nwe all sang.\n"
    context = lead_in(vocab)
    with torch.no_grad():
        logits, _ = model(torch.tensor([vocab.encode(context + text)]))
    expected = torch.nn.functional.cross_entropy(
        logits[0, len(context) - 1 : -1], torch.tensor(vocab.encode(text)), reduction="sum"
    )
    assert score_text(Model(model, vocab), text, chunk=7) == pytest.approx(
        expected.item(), rel=1e-5
    )
    lines = text.splitlines(keepends=True)
    per_line = score_lines(Model(model, vocab), lines, batch=2)
    for line, nats in zip(lines, per_line, strict=True):  # each line as if alone
        assert nats == pytest.approx(score_text(Model(model, vocab), line) / len(line), rel=1e-4)
    assert score_lines(Model(model, vocab), lines[::-1]) == pytest.approx(per_line[::-1], rel=1e-5)


# --------------------------------------------------------------------------- the command


@pytest.fixture
def env(tmp_path, monkeypatch, trained_run):
    monkeypatch.chdir(tmp_path)
    run = CliRunner()
    ckpt = str(trained_run.best)
    return lambda args, input=None: run.invoke(cli, [args[0], "-c", ckpt, *args[1:]], input=input)


def test_prime_from_a_file_or_stdin_never_implicitly(env, tmp_path):
    (tmp_path / "p.txt").write_bytes(b"\xef\xbb\xbfANNA:\r\n")
    a = env(["sample", "--prime-file", "p.txt", "-l", "20", "-s", "1"])
    b = env(["sample", "--prime", "-", "-l", "20", "-s", "1"], input="ANNA:\n")
    assert a.exit_code == 0 and a.stdout.startswith("ANNA:\n") and a.stdout == b.stdout
    c = env(["sample", "-l", "20", "-s", "1"], input="ANNA:\n")  # stdin given but not asked for
    assert not c.stdout.startswith("ANNA:")
    both = env(["sample", "--prime", "x", "--prime-file", "p.txt"])
    assert both.exit_code == 2 and "not both" in both.stderr


def test_unknown_policy_on_the_command_line(env):
    bad = env(["sample", "--prime", "ANNÁ:"])
    assert bad.exit_code == 1 and "'Á' (U+00C1) at 4" in bad.stderr
    for policy, echoed in (("skip", "ANN:"), ("replace", "ANNA:")):
        r = env(["sample", "--prime", "ANNÁ:", "--unknown", policy, "-l", "5"])
        assert r.exit_code == 0 and r.stdout.startswith(echoed), r.stderr


def test_several_samples_with_a_separator(env):
    r = env(
        [
            "sample",
            "-n",
            "3",
            "-l",
            "40",
            "-s",
            "7",
            "--prime",
            "ANNA:",
            "--separator",
            "\\n=====\\n",
        ]
    )
    parts = r.stdout.split("\n=====\n")
    assert r.exit_code == 0 and len(parts) == 3
    assert all(p.startswith("ANNA:") and len(p) == 45 for p in parts)
    one = env(["sample", "-l", "40", "-s", "8", "--prime", "ANNA:"])
    assert one.stdout == parts[1]  # sample i is seed + i


def test_json_lines_for_scripts(env, trained_run):
    r = env(
        ["sample", "-n", "2", "-l", "30", "-s", "100", "--json", "--top-k", "5", "--temp", "0.5,1"]
    )
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["seed"] for row in rows] == [100, 101]
    for row in rows:
        assert len(row["text"]) == 30 and row["prime"] == ""
        assert row["checkpoint"] == str(trained_run.best)
        assert row["settings"]["top_k"] == 5 and row["settings"]["temperature"] == [0.5, 1.0]
        assert -math.log(64) < row["mean_logprob"] < 0


def test_stop_strings_end_each_sample(env):
    r = env(
        [
            "sample",
            "--prime",
            "ANNA:",
            "--stop",
            "\\n\\n",
            "-l",
            "2000",
            "-s",
            "2",
            "--no-echo-prime",
        ]
    )
    assert r.exit_code == 0 and "\n\n" not in r.stdout and 0 < len(r.stdout) < 2000
    r = env(["sample", "-n", "4", "--stop", "\\n", "--stop", ".", "-l", "500", "--json"])
    assert all(
        "\n" not in json.loads(x)["text"] and "." not in json.loads(x)["text"]
        for x in r.stdout.splitlines()
    )


def test_output_to_a_file(env, tmp_path):
    r = env(["sample", "-o", "out.txt", "-l", "64", "-s", "3"])
    assert r.exit_code == 0 and r.stdout == ""
    assert (tmp_path / "out.txt").read_text() == env(["sample", "-l", "64", "-s", "3"]).stdout
    bad = env(["sample", "-o", str(tmp_path / "no" / "such" / "dir.txt")])
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: cannot write")


def test_top_p_and_top_k_on_the_command_line(env):
    a = env(["sample", "--top-p", "0.5", "--top-k", "3", "-l", "50", "-s", "4"])
    assert a.exit_code == 0 and len(a.stdout) == 50 and a.stderr == ""
    greedy = env(["sample", "-t", "0", "-l", "50"]).stdout
    assert env(["sample", "--top-p", "0.000001", "-t", "2", "-l", "50", "-s", "4"]).stdout == greedy


def test_score_options(env, tmp_path):
    (tmp_path / "l1.txt").write_bytes("the cat sat ñ\n".encode("latin-1"))
    assert env(["score", "l1.txt"]).exit_code == 1  # not UTF-8
    r = env(["score", "l1.txt", "--encoding", "latin-1", "--unknown", "skip", "-q"])
    assert r.exit_code == 0 and r.stderr == "" and float(r.stdout) > 0


def test_bad_temperature_lists_are_usage_errors(env):
    for temp in ("hot", "0.5,-1", "0.5,,1"):
        r = env(["sample", "--temp", temp])
        assert r.exit_code == 2 and "--temp" in r.stderr, temp


def test_score_a_file_whole_and_per_line(env, tmp_path):
    (tmp_path / "t.txt").write_text("ANNA:\nthe cat sat.\n\nmgmgrwrwuu\n")
    whole = env(["score", "t.txt"])
    assert whole.exit_code == 0 and float(whole.stdout) > 0 and "bits per character" in whole.stderr
    lines = env(["score", "--per-line", "t.txt"]).stdout.split()
    assert len(lines) == 4 and float(lines[1]) < float(lines[3])  # words beat gibberish
    assert env(["score", "-"], input="ANNA:\n").exit_code == 0
    unknown = env(["score", "-"], input="Ω\n")
    assert unknown.exit_code == 1 and "'Ω' (U+03A9) at 1" in unknown.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_prints_what_was_made_and_exits_128_plus_it(tmp_path, trained_run, sig):
    p = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "sample", "-c", str(trained_run.best), "-l", "100000000"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = p.stdout.read(200)  # it is streaming
    p.send_signal(sig)
    rest, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 128 + sig and len(first) == 200 and b"Traceback" not in err
    assert len(first + rest) < 100_000_000


def test_sigterm_leaves_no_half_written_output_file(tmp_path, trained_run):
    """A stop signal ends `sample -o FILE` as Ctrl-C does: the file holds what was made, whole,
    and no temporary file is left beside it."""
    out = tmp_path / "out.txt"
    args = ["sample", "-c", str(trained_run.best), "-l", "100000000", "-o", str(out)]
    p = subprocess.Popen(
        [sys.executable, "-m", "charrnn", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + DEADLINE
    while not list(tmp_path.glob(".out.txt.*.tmp")):  # the sample is being written
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 143 and b"Traceback" not in err, err
    assert 0 < len(out.read_text()) < 100_000_000
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize(
    "text, expected",
    [("a b\n\nc d\n", "\n\n"), ("1\t2\n3\t4\n", "\n"), ("a b c", " "), ("abc", "a")],
)
def test_a_model_reads_how_its_own_text_starts_a_paragraph(text, expected):
    # The vocabulary may hold a line break the text never doubles (a fine-tune keeps its base's)
    vocab = CharVocab.from_text(text + "\n ")
    ids = torch.tensor(vocab.encode(text))
    assert lead_in_for(ids, vocab) == expected
    config = type("Config", (), {"lead_in": expected})()
    assert lead_in(vocab, type("Model", (), {"config": config})()) == expected
    assert lead_in(vocab) == "\n\n"  # a checkpoint from before: the vocabulary's rule
