"""Sampling, in the library and through `charrnn sample`: seeds, batches, temperature schedules,
top-k and top-p, primes, stops, JSON, files and signals; and the contract for any options: exit 0
with the documented output, or one `Error:` line and exit 1 (2 for usage), never a traceback."""

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import click
import pytest
import torch
from conftest import DEADLINE
from helpers.cli import as_from_a_terminal, assert_one_error, ended, popen, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.errors import ConfigError, VocabError
from charrnn.model.config import ModelConfig
from charrnn.model.network import CharRNN
from charrnn.model.trained import Model, lead_in, lead_in_for
from charrnn.text.vocab import CharVocab
from charrnn.use import sampler as sampler_module
from charrnn.use.sampler import (
    MAX_SEED,
    SampleConfig,
    Sampler,
    StopCutter,
    sampling_threads,
)


def texts(model, vocab, length=300, prime="ANNA:", **cfg):
    s = Sampler(Model(model, vocab), SampleConfig(**cfg))
    s.prime(prime)
    rows = ["" for _ in range(s.config.num_samples)]
    for chars in s.generate(length):
        rows = [r + ch for r, ch in zip(rows, chars, strict=True)]
    return rows


def logits_over(model, vocab, prime: str, text: str) -> torch.Tensor:
    """(len(text), V): what one forward pass over the lead-in, `prime` and `text` predicts for
    each character of `text`."""
    context = lead_in(vocab) + prime
    with torch.no_grad():
        logits, _ = model(torch.tensor([vocab.encode(context + text)]))
    return logits[0, len(context) - 1 : -1]


def mean_logprob(model, vocab, prime: str, text: str) -> float:
    """The mean log-probability the model gives `text` after `prime`."""
    logp = torch.log_softmax(logits_over(model, vocab, prime, text), -1)
    return logp.gather(1, torch.tensor(vocab.encode(text))[:, None]).mean().item()


@pytest.mark.parametrize("one_at_a_time", [False, True])
def test_a_batch_of_n_is_n_single_runs_with_seeds_seed_plus_i(
    model_vocab, monkeypatch, one_at_a_time
):
    # ... however many characters' noise each draws at a time (NOISE_STEPS, or one at a time as
    # from a vocabulary of NOISE_PER_ROW)
    model, vocab = model_vocab
    if one_at_a_time:
        monkeypatch.setattr(sampler_module, "NOISE_PER_ROW", len(vocab))
    batch = texts(model, vocab, seed=40, num_samples=4, temperature=1.0)
    assert len(set(batch)) == 4 and {len(t) for t in batch} == {300}  # different samples
    monkeypatch.undo()
    for i in range(4):
        assert texts(model, vocab, seed=40 + i, temperature=1.0) == [batch[i]]


def test_greedy_equals_top_k_1_and_a_tiny_nucleus(model_vocab):
    model, vocab = model_vocab
    greedy = texts(model, vocab, 200, "", temperature=0, seed=1)
    assert greedy == texts(model, vocab, 200, "", temperature=0, seed=2)  # no randomness at all
    assert greedy == texts(model, vocab, 200, "", temperature=1.0, top_k=1, seed=3)
    assert greedy == texts(model, vocab, 200, "", temperature=1.0, top_p=1e-6, seed=4)


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
@pytest.mark.parametrize("top_k", [None, 3])
def test_the_draws_follow_softmax_of_the_logits_over_the_temperature(
    model_vocab, temperature, top_k
):
    # The draw must give each id its probability under softmax(logits / T), over the ids top-k
    # keeps: 20,000 draws put each frequency within 0.015 of it (4 standard deviations at 0.5).
    model, vocab = model_vocab
    logits = torch.randn(1, len(vocab), generator=torch.Generator().manual_seed(0)) * 2
    config = SampleConfig(temperature=temperature, seed=9, top_k=top_k)
    s = Sampler(Model(model, vocab), config)
    draws = torch.cat([s.choose(logits) for _ in range(20_000)])
    seen = torch.bincount(draws, minlength=len(vocab)) / len(draws)
    kept = logits[0] >= logits[0].topk(top_k or len(vocab)).values[-1]
    expected = torch.softmax((logits[0] / temperature).masked_fill(~kept, -math.inf), -1)
    assert (seen - expected).abs().max() < 0.015


def test_a_uniform_of_exactly_0_or_almost_1_draws_a_kept_character(model_vocab, monkeypatch):
    # torch.rand can draw 0: its Gumbel noise would be -inf (a character never drawn, and nan
    # beside a character top-k dropped). Every uniform 0, then every one the largest below 1.
    model, vocab = model_vocab
    logits = torch.linspace(0, 10, len(vocab))[None]  # id V-1 likeliest, then V-2, ...
    below_1 = 1 - 2**-24
    for u in (0.0, below_1):
        monkeypatch.setattr(torch, "rand", lambda *shape, out, u=u, **_: out.fill_(u))
        s = Sampler(Model(model, vocab), SampleConfig(temperature=3.0, seed=0, top_k=2))
        assert {int(s.choose(logits)) for _ in range(5)} == {len(vocab) - 1}  # noise all equal


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
    # ... and so do top-k 1 and a tiny p at a temperature that flattens every logit to a tie
    # (and is inf in float32), alone or after a top-k.
    for cfg in ({"top_k": 1}, {"top_p": 1e-300}, {"top_k": 2, "top_p": 1e-9}):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=1e39, seed=0, **cfg))
        assert {int(s.choose(logits.flip(-1))) for _ in range(50)} == {0}
    # There top-p keeps the first of the ties in the logits' order, as many as p asks for.
    s = Sampler(Model(model, vocab), SampleConfig(temperature=1e39, seed=0, top_k=5, top_p=0.3))
    assert {int(s.choose(logits.flip(-1))) for _ in range(300)} == {0, 1}


TINY_TEMPS = ["1e-39", "1e-30", "5e-324", "2.2e-308", "1e-300"]


def test_choose_at_a_tiny_temperature_is_the_argmax_whatever_the_logits(model_vocab):
    model, vocab = model_vocab
    logits = torch.randn(4, len(vocab)) * 1e3
    for t in (1e-39, 5e-324, 1e-300):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=t, seed=0, num_samples=4))
        assert torch.equal(s.choose(logits), logits.argmax(-1))


@pytest.mark.parametrize("bad", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        SampleConfig(**bad)


def test_sampling_runs_on_one_thread_for_small_steps_and_restores_the_setting(model_vocab):
    model, vocab = model_vocab
    assert all(sampling_threads(model, n) == 1 for n in (1, 2, 16, 4096))  # a tiny model
    before = torch.get_num_threads()
    s = Sampler(Model(model, vocab), SampleConfig(seed=0, num_samples=8))
    seen = []
    for _ in s.generate(3):
        seen.append(torch.get_num_threads())
    assert seen == [1, 1, 1] and torch.get_num_threads() == before


def test_a_step_whose_weights_are_large_may_share_its_threads_even_for_one_stream(monkeypatch):
    monkeypatch.setattr(sampler_module, "default_threads", lambda: 2)
    shape = {"vocab_size": 65, "embedding_dim": 16, "num_layers": 1}
    small = CharRNN(ModelConfig(hidden_size=256, **shape))  # 1 MB a step: no machine gained
    large = CharRNN(ModelConfig(hidden_size=512, **shape))  # 4 MB: two cores may read it faster
    assert [sampling_threads(small, n) for n in (1, 16)] == [1, 1]
    assert sampling_threads(small, 4096) == 2  # the arithmetic of a large batch
    assert [sampling_threads(large, n) for n in (1, 16)] == [2, 2]


# ------------------------------------------- what the model is given: the lead-in and the prime


def test_lead_in_is_a_paragraph_break_or_what_the_vocabulary_has():
    assert lead_in(CharVocab.from_text("a\nb")) == "\n\n"
    assert lead_in(CharVocab.from_text("a b")) == " "
    assert lead_in(CharVocab.from_text("xy")) == "x"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a b\n\nc d\n", "\n\n"),
        ("1\t2\n3\t4\n", "\n"),
        ("a b c", " "),
        ("abc", "a"),
        ("Names\n\n" + "Ann\nBo\n" * 40, "\n"),  # a list whose title ends in a blank line
        ("Names\n\n" + "Ann\nBo\n" * 20, "\n\n"),  # one in 41 line breaks: paragraphs
    ],
)
def test_a_model_reads_how_its_own_text_starts_a_paragraph(text, expected):
    # The vocabulary may hold a line break the text never doubles (a fine-tune keeps its base's)
    vocab = CharVocab.from_text(text + "\n ")
    ids = torch.tensor(vocab.encode(text))
    assert lead_in_for(ids, vocab) == expected
    config = type("Config", (), {"lead_in": expected})()
    assert lead_in(vocab, type("Model", (), {"config": config})()) == expected
    assert lead_in(vocab) == "\n\n"  # a checkpoint from before: the vocabulary's rule


def test_generation_carries_state_instead_of_rereading(model_vocab):
    """Each generated character equals what one forward pass over prime + text predicts."""
    model, vocab = model_vocab
    (text,) = texts(model, vocab, 40, "ANNA:\n", temperature=0)
    assert text == vocab.decode(logits_over(model, vocab, "ANNA:\n", text).argmax(-1).tolist())


def test_mean_logprob_is_what_the_model_gives_the_text(model_vocab):
    model, vocab = model_vocab
    s = Sampler(Model(model, vocab), SampleConfig(temperature=1.0, seed=5))
    s.prime("ANNA:")
    text = "".join(chars[0] for chars in s.generate(50))
    expected = mean_logprob(model, vocab, "ANNA:", text)
    assert s.mean_logprob()[0] == pytest.approx(expected, abs=1e-5)
    assert s.mean_logprob([10])[0] == pytest.approx(s._logprobs[0, :10].mean().item())
    assert s.mean_logprob([0]) == [None]
    for bad in ["abc", [51], [-1], [1, 2], [2.5], [True], 3]:
        with pytest.raises(ConfigError, match="lengths must be 1 whole number"):
            s.mean_logprob(bad)
    # read again from where the samples began, after they were drawn (the stepper moved on)
    assert s.reread_logprob(text) == pytest.approx(expected, abs=1e-5)
    assert s.reread_logprob(text[:10]) == pytest.approx(s.mean_logprob([10])[0], abs=1e-5)
    assert s.reread_logprob("") is None
    for bad in ["€", 3]:
        with pytest.raises(ConfigError, match="characters in the model's vocabulary"):
            s.reread_logprob(bad)


def test_a_short_prime_is_continued_as_the_corpus_would(model_vocab):
    model, vocab = model_vocab
    for name in ("ANNA:", "BORIS:", "CLARA:"):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=0))
        s.prime(name)
        assert vocab.chars[int(s.logits[0].argmax())] == "\n"  # a speaker's name ends its line


def test_the_prime_conditions_what_comes_next(model_vocab):
    model, vocab = model_vocab
    odds = {}
    for prime in ("ANNA:", "the dog "):
        s = Sampler(Model(model, vocab), SampleConfig())
        s.prime(prime)
        odds[prime] = torch.softmax(s.logits[0], -1)
    assert vocab.chars[int(odds["ANNA:"].argmax())] == "\n"
    assert vocab.chars[int(odds["the dog "].argmax())] not in "\n :"
    assert (odds["ANNA:"] - odds["the dog "]).abs().sum() > 1.0


@given(prime=st.text("ANBOR: thecasmn.\n", max_size=60), chunk=st.integers(1, 9))
@settings(max_examples=20, deadline=None)
def test_priming_in_chunks_reaches_the_same_state(model_vocab, prime, chunk):
    model, vocab = model_vocab
    whole, parts = (Sampler(Model(model, vocab), SampleConfig(seed=1)) for _ in range(2))
    whole.prime(prime, chunk=10**6)
    parts.prime(prime, chunk=chunk)
    for a, b in zip(
        (*whole.stepper.state(), whole.logits), (*parts.stepper.state(), parts.logits), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_stop_cutter_ends_before_the_stop_and_streams_the_rest():
    cut = StopCutter(2, ["\n\n", "END"])
    out0 = "".join(cut.feed(0, ch) for ch in "one line\nnext\n\nlost")
    assert out0 == "one line\nnext" and cut.done[0]
    streamed = [cut.feed(1, ch) for ch in "abcEN"]
    assert "".join(streamed) == "abc" and streamed[1] == "" and streamed[2] == "a"  # held 2 chars
    assert cut.flush(1) == "EN" and not cut.all_done()
    plain = StopCutter(1)
    assert [plain.feed(0, ch) for ch in "xy"] == ["x", "y"]  # no stops: nothing held back


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="abé\n", max_size=40),
    stops=st.lists(st.text(alphabet="abé\n", min_size=1, max_size=6), max_size=3),
)
def test_stop_cutter_fed_a_character_at_a_time_cuts_where_the_first_stop_begins(text, stops):
    """Whatever the stops' lengths (a stop of 4 characters once never matched: too little was
    held back), what comes out, the held-back rest included, is the text up to where the first
    stop to appear whole begins (as the characters come, the sample ends there), and no
    character of it comes out before."""
    cut = StopCutter(1, stops)
    out = "".join(cut.feed(0, ch) for ch in text)
    ends = {s: text.find(s) + len(s) for s in stops if s in text}  # where each first appears
    first = min(ends.values(), default=None)
    at = min((e - len(s) for s, e in ends.items() if e == first), default=len(text))
    assert out + ("" if cut.done[0] else cut.flush(0)) == text[:at]
    assert cut.done[0] == bool(ends)


# ---------------------------------------------------------------------------------- the command


PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_prime_from_a_file_or_stdin_never_implicitly(sample, tmp_path):
    (tmp_path / "p.txt").write_bytes(b"\xef\xbb\xbfANNA:\r\n")
    a = sample("--prime-file", "p.txt", "-l", "20", "-s", "1")
    b = sample("--prime", "-", "-l", "20", "-s", "1", input="ANNA:\n")
    assert a.exit_code == 0 and a.stdout.startswith("ANNA:\n") and a.stdout == b.stdout
    assert sample("--prime-file", "-", "-l", "20", "-s", "1", input="ANNA:\n").stdout == b.stdout
    typed = sample("--prime", "ANNA:\r\n", "-l", "20", "-s", "1")  # line ends as a file's
    assert (
        typed.stdout == a.stdout
        and sample("--prime", "ANNA:\r", "-l", "20", "-s", "1").stdout == a.stdout
    )
    c = sample("-l", "20", "-s", "1", input="ANNA:\n")  # stdin given but not asked for
    assert not c.stdout.startswith("ANNA:")
    both = sample("--prime", "x", "--prime-file", "p.txt")
    assert_one_error(both, 2, "not both")


def test_unseen_prime_characters_are_named_or_skipped_or_replaced(sample, model_vocab):
    """The library's sampler names them as the command does (the vocabulary's own message,
    tested in test_vocab_and_batches.py), and --unknown skips or replaces them instead."""
    model, vocab = model_vocab
    with pytest.raises(VocabError, match=r"'Z' \(U\+005A\).*'€'"):
        Sampler(Model(model, vocab), SampleConfig()).prime("Zoo €")
    assert_one_error(sample("--prime", "ANNÁ:"), 1, "'Á' (U+00C1) at character 4")
    # a `\n` typed in quotes (two characters) where a line break was meant: how to type one
    assert_one_error(
        sample("--prime", "ANNA:\\n"), 1, "at character 6 (\\n typed in quotes", "$'...\\n'"
    )
    assert "typed in quotes" not in sample("--prime", "ANNA:\\").stderr  # a backslash alone
    Path("p.txt").write_text("ANNA:\\n")  # not typed: no word of typing
    assert "typed in quotes" not in sample("--prime-file", "p.txt").stderr
    for policy, echoed, done in (("skip", "ANN:", "left out"), ("replace", "ANNA:", "replaced")):
        r = sample("--prime", "ANNÁ:", "--unknown", policy, "-l", "5")
        assert r.exit_code == 0 and r.stdout.startswith(echoed), r.stderr
        assert r.stderr == f"Note: --unknown {policy} {done} 1 character the model never saw.\n"
    gone = sample("--prime", "ÁÉ", "--unknown", "skip", "-l", "5")  # nothing left of the prime
    assert gone.exit_code == 0 and gone.stdout == ended(gone.stdout[:5]), gone.stderr
    assert "left out 2 characters the model never saw (the whole prime" in gone.stderr


def test_a_prime_file_in_another_encoding(sample, tmp_path):
    (tmp_path / "p.txt").write_bytes("ANNA:\xa0".encode("latin-1"))
    bad = sample("--prime-file", "p.txt", "-l", "5")
    assert_one_error(bad, 1)
    assert "--encoding" in bad.stderr
    ok = sample("--prime-file", "p.txt", "--encoding", "latin-1", "--unknown", "skip", "-l", "5")
    assert ok.exit_code == 0 and ok.stdout.startswith("ANNA:"), ok.stderr


def test_several_samples_with_a_separator(sample):
    r = sample(
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
    )
    parts = r.stdout.split("\n=====\n")
    assert r.exit_code == 0 and len(parts) == 3 and r.stdout == ended(r.stdout[:-1])
    parts[-1] = parts[-1][:-1]  # less the line break that ends the output
    assert all(p.startswith("ANNA:") and len(p) == 45 for p in parts)
    one = sample("-l", "40", "-s", "8", "--prime", "ANNA:")
    assert one.stdout == ended(parts[1])  # sample i is seed + i


@pytest.mark.parametrize(("prime", "between"), [("AN", "\n"), ("A\nN", "\n\n")])
def test_samples_of_one_line_each_are_one_line_each_by_default(sample, prime, between):
    """`--stop '\n'` makes each sample one line: a line each, no blank line between (a list of
    names was one every other line); a prime of two lines keeps the blank line between them."""
    args = ["-n", "4", "-l", "60", "-s", "3", "--prime", prime, "--stop", "\\n"]
    texts = [json.loads(line)["text"] for line in sample(*args, "--json").stdout.splitlines()]
    r = sample(*args)
    assert r.exit_code == 0 and r.stdout == between.join(prime + t for t in texts) + "\n"


def test_greedy_samples_of_a_batch_are_said_to_be_one_text(sample):
    r = sample("-n", "3", "-t", "0", "-l", "20", "--json")
    assert r.exit_code == 0 and "the 3 samples are one text" in r.stderr
    assert len({json.loads(line)["text"] for line in r.stdout.splitlines()}) == 1
    assert "one text" not in sample("-n", "3", "-t", "0,0.5", "-l", "20").stderr
    assert "--top-k 1 takes the likeliest" in sample("-n", "2", "--top-k", "1", "-l", "5").stderr


def test_json_lines_for_scripts(sample, trained_run):
    r = sample("-n", "2", "-l", "30", "-s", "100", "--json", "--top-k", "5", "--temp", "0.5,1")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["seed"] for row in rows] == [100, 101]
    for row in rows:
        assert len(row["text"]) == 30 and row["prime"] == ""
        assert row["checkpoint"] == str(trained_run.best)
        assert row["settings"]["top_k"] == 5 and row["settings"]["temperature"] == [0.5, 1.0]
        assert -math.log(64) < row["mean_logprob"] < 0


def test_an_empty_sample_has_no_mean_logprob(sample):
    r = sample("-l", "0", "-n", "2", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["text"], row["mean_logprob"]) for row in rows] == [("", None)] * 2


@pytest.mark.parametrize("n", [1, 3])
def test_mean_logprob_covers_exactly_the_characters_output(sample, model_vocab, n):
    model, vocab = model_vocab
    r = sample("-n", str(n), "-l", "80", "-s", "9", "--prime", "ANNA:", "--stop", "at", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == n and any(len(row["text"]) < 80 for row in rows)  # some were cut
    for row in rows:
        expected = mean_logprob(model, vocab, "ANNA:", row["text"])
        assert row["mean_logprob"] == pytest.approx(expected, abs=1e-5)


def test_stop_strings_end_each_sample(sample):
    r = sample(
        "--prime",
        "ANNA:",
        "--stop",
        "\\n\\n",
        "-l",
        "2000",
        "-s",
        "2",
        "--no-echo-prime",
    )
    assert r.exit_code == 0 and "\n\n" not in r.stdout and 0 < len(r.stdout) < 2000
    r = sample("-n", "4", "--stop", "\\n", "--stop", ".", "-l", "500", "--json")
    assert all(
        "\n" not in json.loads(x)["text"] and "." not in json.loads(x)["text"]
        for x in r.stdout.splitlines()
    )


def test_output_to_a_file(sample, tmp_path):
    r = sample("-o", "out.txt", "-l", "64", "-s", "3")
    assert r.exit_code == 0 and r.stdout == ""
    assert (tmp_path / "out.txt").read_text() == sample("-l", "64", "-s", "3").stdout
    bad = sample("-o", str(tmp_path / "no" / "such" / "dir.txt"))
    assert assert_one_error(bad).startswith("Error: cannot write")


def test_top_p_and_top_k_on_the_command_line(sample):
    a = sample("--top-p", "0.5", "--top-k", "3", "-l", "50", "-s", "4")
    assert a.exit_code == 0 and a.stdout == ended(a.stdout[:50]) and a.stderr == ""
    greedy = sample("-t", "0", "-l", "50").stdout
    assert sample("--top-p", "0.000001", "-t", "2", "-l", "50", "-s", "4").stdout == greedy


def test_bad_temperature_lists_are_usage_errors(sample):
    for temp in ("hot", "0.5,-1", "0.5,,1"):
        r = sample("--temp", temp)
        assert_one_error(r, 2, "--temp")


@settings(PROPERTY, max_examples=15)
@given(
    temp=st.sampled_from(TINY_TEMPS) | st.floats(5e-324, 1e-30).map(repr),
    seed=st.integers(0, 1000),
)
def test_a_tiny_temperature_is_greedy(sample, temp, seed):
    greedy = sample("-t", "0", "-l", "60", "-s", str(seed), "--prime", "ANNA:").stdout
    assert sample("-t", temp, "-l", "60", "-s", str(seed), "--prime", "ANNA:").stdout == greedy


@pytest.mark.parametrize("option", ["-o", "--prime-file"])
def test_an_empty_file_argument_is_a_usage_error(sample, option):
    r = sample(option, "", "-l", "5")
    assert_one_error(r, 2)
    assert "is empty" in r.stderr


def test_one_character_written_for_ever_is_a_runaway_when_drawn(trained_run, tmp_path, env):
    """A model stuck on one character (a finite but huge bias) is flagged even above temperature
    1, where rarer characters are not judged, and under any cut or temperature: the model itself
    is sure of it. A model that only leans to one character is not blamed where a cold or cut draw
    keeps the likeliest (it loops by its nature, as on a line of spaces in indented code): such a
    sample is not judged (null) and a Note says what it is. A sample too short to judge says
    null."""
    import json

    payload = checkpoint.load(trained_run.best)
    kept = {k: v for k, v in payload.items() if not k.startswith("format") and k != "digests"}
    (tmp_path / "m").mkdir()

    def sample_with(lean: float, *args: str, as_json: bool = True):
        weights = {k: v.clone() for k, v in payload["model"].items()}
        weights["head.bias"][0] = weights["head.bias"].max() + lean  # character 0, above all
        checkpoint.save({**kept, "model": weights}, tmp_path / "m" / "best.pt")
        r = env(["sample", "-c", str(tmp_path / "m"), *["--json"] * as_json, "-s", "1", *args])
        assert r.exit_code == 0, r.stderr
        return json.loads(r.stdout) if as_json else r.stdout, r.stderr

    everywhere = (["-t", "0.8"], ["-t", "2"], ["-t", "0"], ["-t", "0.1"], ["--top-k", "3"])
    for drawn in (*everywhere, ["--top-p", "0.5"], ["--top-p", "0.9"], ["--top-k", "40"]):
        record, err = sample_with(1e4, *drawn, "-l", "60")
        assert len(set(record["text"])) == 1 and record["runaway"] is True, drawn
        assert "one character repeated" in err
        assert err.rstrip().endswith("a higher --temp or a --prime may lead it out)")  # a loop
    assert sample_with(1e4, "-t", "2", "-l", "49")[0]["runaway"] is None
    # leaning: the likeliest everywhere, but short of sure (the smallest lean that is)
    for lean in range(2, 13):
        greedy, _ = sample_with(float(lean), "-t", "0", "-l", "60")
        if set(greedy["text"]) == {greedy["text"][0]}:
            break
    else:
        pytest.fail("no lean up to 12 nats makes the greedy draw one character")
    assert greedy["mean_logprob"] < math.log(0.99), greedy["mean_logprob"]
    for drawn in (["-t", "0"], ["-t", "0.01"], ["--top-k", "1"]):  # the same text, one verdict
        record, err = sample_with(lean, *drawn, "-l", "60")
        assert len(set(record["text"])) == 1 and record["runaway"] is None, drawn
        assert err.startswith("Note: the sample is one character repeated ("), err
        assert "a higher --temp or a --prime leads it out" in err and "Warning" not in err
    assert sample_with(lean, "-t", "0", "-l", "60", "-q")[1] == ""  # a note: --quiet leaves it
    # without --json (the draws' log-probabilities not tracked), the same verdicts; and
    # `inspect --sample`, which writes the same text, says the same after it
    for how_sure in (lean, 1e4):
        _, err = sample_with(how_sure, "-t", "0", "-l", "60")
        assert sample_with(how_sure, "-t", "0", "-l", "60", as_json=False)[1] == err
        shown = env(["inspect", "-c", str(tmp_path / "m"), "--sample", "60", "-t", "0", "-s", "1"])
        assert shown.exit_code == 0 and shown.stderr.endswith(err), (shown.stderr, err)
        record, _ = sample_with(how_sure, "-t", "0", "-l", "60")
        args = ["inspect", "-c", str(tmp_path / "m"), "--sample", "60", "-t", "0", "-s", "1"]
        header = json.loads(env([*args, "--json"]).stdout.splitlines()[0])
        assert header["runaway"] == record["runaway"]  # True where sure, else null (a loop)
    # a prime given: the advice is another one
    _, err = sample_with(lean, "-t", "0", "-l", "60", "--prime", "a")
    assert "a higher --temp or another --prime leads it out" in err
    assert "Warning: " in sample_with(1e4, "-t", "0", "-l", "60", "-q")[1]  # a warning stays


# -------------------------------------------------------------------- seeds a JSON reader keeps


@settings(PROPERTY, max_examples=25)
@given(seed=st.integers(MAX_SEED - 5, MAX_SEED) | st.integers(0, MAX_SEED), n=st.integers(1, 3))
def test_seeds_round_trip_through_json(sample, seed, n):
    r = sample("-s", str(seed), "-n", str(n), "-l", "3", "--json")
    if seed + n - 1 > MAX_SEED:
        assert_one_error(r, 2)
        return
    seeds = [json.loads(line)["seed"] for line in r.stdout.splitlines()]
    assert seeds == [seed + i for i in range(n)]
    assert [int(float(s)) for s in seeds] == seeds  # what a reader with only doubles gets


@pytest.mark.parametrize(
    "seed", ["-1", str(2**53), str(2**62), str(2**64), "-99999999999999999999"]
)
def test_seeds_out_of_range_are_usage_errors(sample, seed):
    assert_one_error(sample("-s", seed, "-l", "3"), 2)


def test_a_random_seed_is_one_a_json_reader_keeps_and_replays(sample):
    row = json.loads(sample("-l", "30", "--json").stdout)
    assert 0 <= row["seed"] <= MAX_SEED
    again = json.loads(sample("-l", "30", "--json", "-s", str(row["seed"])).stdout)
    assert again["text"] == row["text"]


# ------------------------------------------------- the contract, for any combination of options


option_texts = st.text(alphabet=st.sampled_from("ANB:th e.\n\\nxé\t"), max_size=6)


@PROPERTY
@given(
    prime=option_texts,
    stops=st.lists(option_texts, max_size=3),
    separator=option_texts,
    n=st.integers(1, 3),
    temps=st.lists(st.sampled_from(["0", "0.5", "1", "3", *TINY_TEMPS]), min_size=1, max_size=3),
    top_k=st.none() | st.integers(1, 8),
    top_p=st.none() | st.floats(0.01, 1.0),
    length=st.integers(0, 25),
    as_json=st.booleans(),
    seed=st.integers(0, MAX_SEED - 2),
)
def test_sample_keeps_its_contract_for_any_options(
    sample, model_vocab, prime, stops, separator, n, temps, top_k, top_p, length, as_json, seed
):
    args = ["-n", str(n), "-l", str(length), "-s", str(seed), "-t", ",".join(temps)]
    args += ["--prime", prime, "--unknown", "error"] + ["--separator", separator] * (not as_json)
    for stop in stops:
        args += ["--stop", stop]
    args += ["--top-k", str(top_k)] * (top_k is not None) + ["--top-p", str(top_p)] * bool(top_p)
    r = sample(*args, *["--json"] * as_json)
    if r.exit_code != 0:
        assert_one_error(r, (1, 2))
        # the user errors here: characters the model never saw, an empty --stop or --prime (2)
        empty = "" in stops or prime == ""
        assert set(prime) - set(model_vocab[1].chars) or (r.exit_code == 2 and empty)
        return
    cuts = [s.replace("\\n", "\n").replace("\\t", "\t") for s in stops if s]
    cuts = [s.replace("\\\\", "\\") for s in cuts]
    if as_json:
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        assert [row["seed"] for row in rows] == [seed + i for i in range(n)]
        for row in rows:
            assert len(row["text"]) <= length and row["prime"] == prime
            assert not any(c in row["text"] for c in cuts)
            assert row["ended"] == ("stop" if len(row["text"]) < length else "length")
            if row["text"]:
                assert -math.inf < row["mean_logprob"] <= 0
            else:  # nothing to average
                assert row["mean_logprob"] is None
    elif n == 1:
        # the text is the output, or the output less the line break that ended its last line
        readings = {t for t in (r.stdout, r.stdout[:-1]) if ended(t) == r.stdout}
        assert any(
            t.startswith(prime)
            and len(t) <= len(prime) + length
            and not any(c in t[len(prime) :] for c in cuts)
            for t in readings
        )


@PROPERTY
@given(
    option=st.sampled_from(["--prime", "--stop", "--separator"]),
    raw=st.binary(min_size=1, max_size=6),
    as_json=st.booleans(),
    locale=st.sampled_from(["utf-8", "ascii"]),  # the C locale's, without UTF-8 mode
)
def test_text_options_refuse_bytes_that_are_not_utf8(sample, option, raw, as_json, locale):
    value = raw.decode(locale, "surrogateescape")  # what Python makes of such an argv
    r = sample(option, value, "-n", "2", "-l", "10", "--unknown", "skip", *["--json"] * as_json)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert_one_error(r, 2)
        assert f"'{option}': holds a byte that is not UTF-8" in r.stderr
    else:
        assert r.exit_code == 0 or r.stdout == "", r.stderr
        assert "Traceback" not in r.stderr


def test_text_typed_in_the_c_locale_is_its_utf8():
    """Python in the C locale (no UTF-8 mode) passes on every byte beyond ASCII as a surrogate
    escape: UTF-8 text typed there is that text, in options and in the names shown."""
    from charrnn.cli.common import shown_name
    from charrnn.cli.options import Text

    typed = "café €".encode().decode("ascii", "surrogateescape")
    assert Text().convert(typed, None, None) == "café €"
    assert shown_name(typed) == shown_name("café €") == "café €"
    assert shown_name("caf\udce9") == "caf\\xe9"  # Latin-1's é: a byte that is not UTF-8
    with pytest.raises(click.BadParameter, match="at character 4"):
        Text().convert("caf\udce9", None, None)


def test_raw_bytes_on_a_real_command_line(trained_run):
    args = [os.fsencode(x) for x in ("sample", "-c", str(trained_run.best), "-n", "2")]
    args += [b"--json", b"--separator", b"\xff\xfe", b"-l", b"5"]
    p = run(args, text=False)
    assert assert_one_error(p, 2).startswith("Error: Invalid value for '--separator'")


# -------------------------------------------------------------------------------------- signals


def test_a_stop_is_read_as_the_model_writes_text(sample):
    """A line break typed as \r\n ends a sample where the model's \n does (train reads every line
    break as \n); a stop of characters the model never writes says so, and never ends one."""
    crlf = sample("--stop", "\r\n", "-l", "400", "-s", "2")
    lf = sample("--stop", "\n", "-l", "400", "-s", "2")
    assert crlf.exit_code == 0 and crlf.stdout == lf.stdout and "\n" not in crlf.stdout.rstrip("\n")
    never = sample("--stop", "Ω", "-l", "50", "-s", "2")
    assert never.exit_code == 0 and len(never.stdout.rstrip("\n")) == 50
    assert (
        never.stderr == "Note: --stop 'Ω' has characters the model never writes ('Ω'): it "
        "will not end a sample\n"
    )
    quiet = sample("--stop", "Ω", "-l", "50", "-s", "2", "--prime", "ΩA", "--unknown", "skip", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout.startswith("A")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_prints_what_was_made_and_exits_128_plus_it(tmp_path, trained_run, sig):
    p = popen(
        ["sample", "-c", str(trained_run.best), "-l", "100000000"],
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = p.stdout.read(200)  # it is streaming
    p.send_signal(sig)
    rest, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 128 + sig and len(first) == 200 and b"Traceback" not in err
    assert len(first + rest) < 100_000_000


def test_a_ctrl_c_its_shell_ignores_for_it_stays_ignored(tmp_path, trained_run):
    """Started with SIGINT ignored (a script's `charrnn sample ... &`: a Ctrl-C at the terminal
    is not for it), sampling leaves it ignored, as training does: the SIGTERM sent after it is
    what stops it (143; had the SIGINT been taken, 130)."""

    def ignoring_ctrl_c():
        as_from_a_terminal()
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    args = ["sample", "-c", str(trained_run.best), "-l", "100000000"]
    p = popen(
        args, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=ignoring_ctrl_c
    )
    first = p.stdout.read(200)  # it is streaming
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 128 + signal.SIGTERM and b"Traceback" not in err, err
    assert len(first) == 200 and len(first + rest) < 100_000_000


def test_sigterm_leaves_no_half_written_output_file(tmp_path, trained_run):
    """A stop signal ends `sample -o FILE` as Ctrl-C does: the file holds what was made, whole,
    and no temporary file is left beside it."""
    out = tmp_path / "out.txt"
    args = ["sample", "-c", str(trained_run.best), "-l", "100000000", "-o", str(out)]
    p = popen(
        args,
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + DEADLINE
    # the sample is being written, and some of it has reached the file (the file alone can
    # appear a while before its first block, on a busy core)
    while not [f for f in tmp_path.glob(".out.txt.*.tmp") if f.stat().st_size > 0]:
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 143 and b"Traceback" not in err, err
    assert 0 < len(out.read_text()) < 100_000_000
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]


def test_replace_says_what_it_left_out_where_the_model_has_no_space(env, tmp_path):
    """--unknown replace puts a look-alike or a space in place of a character the model never
    saw; a model with no space gets nothing there, and the note says so."""
    (tmp_path / "t.txt").write_text("abcabc\nabab\n" * 300)
    r = env(["train", "t.txt", "--size", "tiny", "--steps", "5", "-q", "--name", "ns"])
    assert r.exit_code == 0, r.stderr
    r = env(["sample", "-c", "ns", "--prime", "ab Zé", "--unknown", "replace", "-l", "5"])
    assert r.exit_code == 0 and r.stdout.startswith("ab")
    assert r.stderr == (
        "Note: --unknown replace replaced 3 characters the model never saw (3 by nothing: the "
        "model has no space, nor a look-alike).\n"
    )
