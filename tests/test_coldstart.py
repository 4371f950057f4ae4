"""Soundness from a cold start: training restarts streams cold, the check sees runaways, validation
agrees with `score`, and `sample` flags a sample whose characters show a runaway."""

import json
import math
import random
import shlex

import pytest
import torch
from conftest import drain, make_text, make_trainer, tiny
from helpers.cli import ended, invoke

from charrnn import checkpoint
from charrnn.model import runaway
from charrnn.model.network import restart_streams
from charrnn.model.trained import Model
from charrnn.text import data
from charrnn.train import coldstart, evalplan
from charrnn.train.evaluate import Validation, evaluate
from charrnn.train.trainer import EvalEvent
from charrnn.use.sampler import SampleConfig, Sampler
from charrnn.use.scoring import score_text


@pytest.fixture(scope="session")
def long_text() -> str:
    """Long enough for a validation split whose streams leave room for the check's windows."""
    return make_text(60_000, seed=5)


@pytest.fixture(scope="session")
def mid_epoch(tmp_path_factory, long_text):
    """A tiny model trained 300 steps: about a third of its first epoch (843 batches)."""
    trainer = make_trainer(long_text, tmp_path_factory.mktemp("mid") / "mid", max_steps=300)
    trainer.config.eval_every = 100
    events = drain(trainer)
    assert trainer.pos.epoch == 0 and trainer.pos.batch == 300
    return trainer, [e.record for e in events if isinstance(e, EvalEvent)]


def test_restart_streams_zeroes_exactly_the_chosen_rows():
    state = (torch.randn(2, 5, 3), torch.randn(2, 5, 3))
    rows = torch.tensor([False, True, False, False, True])
    h, c = restart_streams(state, rows)
    for new, old in ((h, state[0]), (c, state[1])):
        assert torch.equal(new[:, rows], torch.zeros(2, 2, 3))
        assert torch.equal(new[:, ~rows], old[:, ~rows])


def test_training_meets_cold_starts_all_through_an_epoch(long_text, tmp_path):
    """The root of the runaway: without restarts a stream meets a zero state only at the start of
    an epoch. With them, zero states arrive mid-epoch at the configured rate."""
    trainer = make_trainer(long_text, tmp_path / "r", max_steps=400, cold_start_prob=1 / 16)
    seen = []  # per step: how many streams began it from an all-zero state
    forward = trainer.net

    def spy(x, state):
        # an epoch's first batch starts every stream cold anyway; a read in eval mode is the
        # check of the next batch before an evaluation saves, not a step
        if trainer.pos.batch > 0 and trainer.model.training:
            seen.append(int((state[0].abs().sum(dim=(0, 2)) == 0).sum()))
        return forward(x, state)

    trainer.net = spy
    drain(trainer)
    restarts, expected = sum(seen), len(seen) * trainer.config.batch_size / 16
    assert len(seen) == 399 and 0.6 * expected < restarts < 1.4 * expected  # ~100, binomial
    assert sum(seen[:200]) > 0 and sum(seen[200:]) > 0  # early and late in the epoch alike


def test_a_model_in_the_middle_of_its_first_epoch_is_sound_from_a_cold_start(mid_epoch, long_text):
    trainer, records = mid_epoch
    assert len(records) == 3
    for r in records:  # the check ran at every evaluation, on every position it asks for
        assert r["cold_start"]["starts"] == 256
        assert r["cold_start"]["runaways"] == 0 and r["cold_start"]["runaways_lead_in"] == 0
        assert r["val_runaway_streams"] == 0 and r["val_worst"] >= r["val_loss"]
    assert abs(records[-1]["cold_start"]["gap_lead_in"]) < 0.05
    # and what it writes has the corpus's characters, from any seed, with or without a prime
    vocab = trainer.vocab
    counts = data.char_counts(data.encode(long_text, vocab), len(vocab))
    for seed, prime in [(1, ""), (2, ""), (3, "ANNA:"), (4, "ww"), (5, "the mat")]:
        s = Sampler(Model(trainer.model, vocab), SampleConfig(temperature=1.0, seed=seed))
        s.prime(prime)
        text = "".join(chars[0] for chars in s.generate(300))
        surprise = runaway.char_surprise(text, vocab, counts)
        assert surprise < 0.5, (seed, prime, surprise, text)


def test_validation_agrees_with_score_of_the_same_text(mid_epoch):
    trainer, records = mid_epoch
    val_text = trainer.vocab.decode(trainer.val_batches.ids.tolist())
    model = checkpoint.restore(checkpoint.load(trainer.run_dir.last), "last").net
    scored = score_text(Model(model, trainer.vocab), val_text) / len(val_text)
    assert records[-1]["val_loss"] == pytest.approx(scored, abs=0.05)


def test_the_check_counts_a_start_that_runs_away(mid_epoch):
    """Warm losses far below what a cold read achieves make every start a runaway; equal ones
    make none: the counting, not the model, under test."""
    trainer, _ = mid_epoch
    ids = trainer.val_batches.ids
    real = coldstart.check(trainer.trained, ids, _evaluation(trainer))
    assert real.starts == 256 and real.runaways == 0
    fake = _evaluation(trainer)
    fake.nats = fake.nats - 2 * coldstart.RUNAWAY_NATS  # the warm reads, much better than they are
    report = coldstart.check(trainer.trained, ids, fake)
    assert report.starts == 256
    assert report.runaways == 256 and report.runaways_lead_in == 256
    assert report.gap == pytest.approx(real.gap + 2 * coldstart.RUNAWAY_NATS, abs=1e-4)


def test_a_stream_far_worse_for_its_text_is_told_from_one_that_ran_away(mid_epoch):
    """A validation stream of random characters reads far worse than the rest, and fresh starts
    read it no better: text unlike the rest, kept as the check's warm reference. The same stream
    read 3 nats worse than the model reads it (a carried state gone wrong) ran away."""
    from charrnn.model.network import select_streams
    from charrnn.train.evaluate import _ran_away

    trainer, _ = mid_epoch
    val = trainer.val_batches
    ids, length = val.ids.clone(), val.stream_len
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(len(trainer.vocab), (length,), generator=g).to(ids.dtype)
    ids[2 * length : 3 * length] = noise  # stream 2 of 4: random characters of the vocabulary
    batches = data.StreamBatcher(ids, val.batch_size, val.seq_len)
    result = evaluate(trainer.trained, batches)
    assert (result.runaway_streams, result.unlike_streams) == (0, 1)
    others = torch.cat([result.nats[: 2 * length], result.nats[3 * length :]])  # the tail: 3's
    assert result.typical == pytest.approx(others.double().mean().item(), rel=1e-6)
    assert (result.context[2 * length : 3 * length] >= 0).all()  # still a warm reference
    stream, plain = (2 * length, 3 * length), (length, 2 * length)
    # a sound state: stream 0's, warm after reading the split's first characters
    with trainer.trained.evaluating():
        sound = select_streams(trainer.net(ids[None, :500].long())[1], slice(0, 1))
    judged = _ran_away(trainer.trained, ids, result.nats, [stream, plain], sound)
    assert judged == [False, False]
    ran = result.nats.clone()
    ran[2 * length : 3 * length] += 3.0
    assert _ran_away(trainer.trained, ids, ran, [stream, plain], sound) == [True, False]
    short = (2 * length, 2 * length + 40)  # too short for windows: not judged
    assert _ran_away(trainer.trained, ids, ran, [short], sound) == [False]


def test_the_check_reads_only_warm_windows_within_one_stream():
    # two streams of 1,000 targets each; the second ran away (context -1: no warm reference)
    context = torch.cat([torch.arange(1000), torch.full((1000,), -1)]).int()
    starts = coldstart._positions(context, 500, skip=100, span=200, min_context=300, seed=0)
    first_scored = starts + 100
    assert len(starts) == 500 and len(set(starts.tolist())) == 500
    assert first_scored.min() >= 300 and (first_scored + 199).max() <= 999
    again = coldstart._positions(context, 500, skip=100, span=200, min_context=300, seed=0)
    assert torch.equal(starts, again)  # the same positions at every evaluation
    too_short = torch.arange(400).int()
    assert len(coldstart._positions(too_short, 256, 100, 200, 300, 0)) == 0


def test_char_surprise_tells_corpus_like_text_from_garbage(long_text):
    vocab = data.CharVocab.from_text(long_text + "$&Q")
    counts = data.char_counts(data.encode(long_text + "$&Q", vocab), len(vocab))
    assert abs(runaway.char_surprise(long_text[:500], vocab, counts)) < 0.3
    assert runaway.char_surprise("$&Q" * 100, vocab, counts) > 5
    assert runaway.char_surprise("$&Q", vocab, counts) is None  # too short to judge
    assert runaway.looks_runaway("$&Q" * 100, vocab, None) is None  # older checkpoints
    found = runaway.looks_runaway("$&Q" * 100, vocab, counts)
    assert "nats a character rarer than the corpus's" in found
    # the mean surprise of the characters less the corpus's entropy, under add-one frequencies
    p = (torch.tensor(counts, dtype=torch.float64) + 1) / (sum(counts) + len(counts))
    ids = data.encode(long_text[:500], vocab).long()
    direct = float(-p.log()[ids].mean() + (p * p.log()).sum())
    assert runaway.char_surprise(long_text[:500], vocab, counts) == pytest.approx(direct)
    # A draw of the likeliest characters that closes on a loop of rare ones (a line of code
    # written again and again at --temp 0) is the draw's nature; the same loop from a draw that
    # follows the model's odds, or rare characters that never settle into one, still show.
    loop = long_text[:40] + "'MODULE_$&Q': 'yes',\n" * 8
    assert runaway.char_surprise(loop, vocab, counts) > runaway.RUNAWAY_NATS
    assert runaway.looks_runaway(loop, vocab, counts, repeats=False) is None
    assert "rarer than the corpus's" in runaway.looks_runaway(loop, vocab, counts)
    draw = random.Random(0)
    noise = "".join(draw.choice("$&Q") for _ in range(300))
    assert "rarer than the corpus's" in runaway.looks_runaway(noise, vocab, counts, repeats=False)
    made = runaway._surprise.cache_info().misses
    for i in range(100):  # the samples of a batch: the table is made once for all of them
        runaway.looks_runaway(long_text[i : i + 100], vocab, counts)
    assert runaway._surprise.cache_info().misses == made


@pytest.mark.parametrize("char", ["e", " ", "z", "\n"])
def test_one_character_repeated_is_a_runaway_whatever_the_character(long_text, char):
    """A stuck state writes one character for ever: a common one passes the surprise test, and
    must not pass as sound (a NaN model writes the last character of its vocabulary)."""
    vocab = data.CharVocab.from_text(long_text + "z")
    counts = data.char_counts(data.encode(long_text, vocab), len(vocab))
    for known in (counts, None):  # also from checkpoints without character counts
        assert runaway.looks_runaway(char * 60, vocab, known) == (
            f"it is one character repeated ({char!r})"
        )
    assert runaway.looks_runaway(char * (runaway.MIN_JUDGED - 1), vocab, counts) is None
    assert runaway.looks_runaway(char * 59 + "a", vocab, counts) is None or char == "z"


def test_sample_flags_a_runaway_on_stderr_and_in_json(mid_epoch, tmp_path):
    trainer, _ = mid_epoch
    payload = checkpoint.load(trainer.run_dir.last)
    vocab = trainer.vocab
    ids = torch.cat([trainer.train_batches.ids, trainer.val_batches.ids])
    payload["corpus"]["char_counts"] = data.char_counts(ids, len(vocab))  # as `train` records
    good = tmp_path / "good.pt"
    checkpoint.save(payload, good)
    # The same model, told that its corpus is all spaces: everything it writes is "rare".
    payload["corpus"]["char_counts"] = [10**6 if ch == " " else 0 for ch in vocab.chars]
    odd = tmp_path / "odd.pt"
    checkpoint.save(payload, odd)
    ok = invoke(["sample", "-c", str(good), "-l", "200", "-s", "1"])
    assert ok.exit_code == 0 and ok.stderr == "" and ok.stdout == ended(ok.stdout[:200])
    bad = invoke(["sample", "-c", str(odd), "-l", "200", "-s", "1"])
    assert bad.exit_code == 0 and bad.stdout == ok.stdout  # the text is still written
    assert bad.stderr.startswith("Warning: the sample looks like a runaway")
    two = invoke(["sample", "-c", str(odd), "-n", "2", "-l", "200", "-s", "1"])
    assert two.output == two.stdout + two.stderr  # a terminal: every sample, then the warnings
    both = invoke(["sample", "-c", str(odd), "-n", "2", "-l", "200", "--json"])
    lines = [json.loads(line) for line in both.stdout.splitlines()]
    assert [x["runaway"] for x in lines] == [True, True]
    assert both.stderr.count("Warning: sample") == 2
    assert both.stderr.count("unsound from a cold start") == 1  # the advice once, after the last
    # In a run's folder the advice is the resume that trains it longer: 3 times its time so far.
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best.pt", "last.pt"):
        checkpoint.save(payload, run / name)
    told = invoke(["sample", "-c", str(run), "-l", "200", "-s", "1"])
    again = shlex.split(told.stderr.split("train it longer: ", 1)[1])
    steps = 3 * payload["trainer"]["step"]  # by steps, as it trained (--steps)
    assert again[-4:] == ["--resume", str(run), "--steps", str(steps)]
    assert "charrnn train" in " ".join(again)  # after `... |` where the text came on stdin
    many = invoke(["sample", "-c", str(odd), "-n", "9", "-l", "200", "--json"])
    assert [json.loads(line)["runaway"] for line in many.stdout.splitlines()] == [True] * 9
    counted = (
        "Warning: 9 of 9 samples look like runaways (samples 1, 2, 3, 4, 5 and 4 more; sample 1:"
    )
    assert many.stderr.startswith(counted) and many.stderr.count("\n") == 1  # one line, not nine
    clean = invoke(["sample", "-c", str(good), "-n", "2", "-l", "200", "--json"])
    assert [json.loads(x)["runaway"] for x in clean.stdout.splitlines()] == [False, False]
    # Above temperature 1 rare characters are what was asked for: not judged, no warning.
    hot = invoke(["sample", "-c", str(odd), "-l", "200", "-t", "1.5", "--json"])
    assert hot.exit_code == 0 and hot.stderr == "" and json.loads(hot.stdout)["runaway"] is None


def _evaluation(trainer) -> Validation:
    from charrnn.train.evaluate import evaluate

    result = evaluate(trainer.trained, trainer.val_batches)
    assert math.isfinite(result.loss)
    return result


def test_a_small_corpus_gets_a_smaller_check_not_none(tmp_path, text):
    """Validation streams under 300 characters (a 12,000-character text): the windows shrink."""
    trainer = make_trainer(text, tmp_path / "small", max_steps=20)
    records = [e.record for e in drain(trainer) if isinstance(e, EvalEvent)]
    report = records[-1]["cold_start"]
    assert trainer.val_batches.stream_len < 300
    assert report["starts"] == 256 and report["span"] < 200 and report["skip"] < 100
    assert report["runaways"] == 0 and report["runaways_lead_in"] == 0


def test_a_part_of_the_split_reads_streams_spread_over_it_as_the_whole_read_reads_them(mid_epoch):
    """A time budget's part reads the first and the last stream and ones between (the first few
    alone are the start of the split only), each target scored as the whole read scores it."""
    trainer, _ = mid_epoch
    batches = trainer.val_batches
    length, count = batches.stream_len, batches.batch_size
    part = evaluate(trainer.trained, batches, streams=3, chars=100)
    read = (part.context >= 0).nonzero()[:, 0]  # the targets read: stream s's start at s * L
    assert sorted(set((read // length).tolist())) == [0, (count - 1) // 2, count - 1]
    assert len(read) == 3 * 100
    whole = evaluate(trainer.trained, batches)
    torch.testing.assert_close(part.nats[read], whole.nats[read], rtol=1e-4, atol=1e-4)
    assert part.loss == pytest.approx(float(whole.nats[read].mean()), abs=1e-4)


def test_the_smallest_check_of_a_time_budget_still_counts_a_runaway(mid_epoch):
    """A time budget's floor (evalplan: a few streams, a few hundred characters of each, 64
    starts) finds no runaway in a sound model, and finds the starts in a stream planted to run
    away (its warm reads far better than a cold read achieves), as the full check does."""
    trainer, _ = mid_epoch
    ids, few = trainer.val_batches.ids, evalplan.MIN_STARTS
    warm = evaluate(trainer.trained, trainer.val_batches, streams=2, chars=evalplan.MIN_CHARS)
    sound = coldstart.check(trainer.trained, ids, warm, few)
    assert sound.starts == few and sound.runaways == 0 and sound.runaways_lead_in == 0
    length = trainer.val_batches.stream_len
    warm.nats[:length] -= 2 * coldstart.RUNAWAY_NATS  # stream 0's windows: every one runs away
    planted = coldstart.check(trainer.trained, ids, warm, few)
    assert planted.starts == few
    assert few // 4 <= planted.runaways <= 3 * few // 4  # about half: one stream of the two
    assert planted.runaways == planted.runaways_lead_in


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("work", [1, 5_000, 1 << 33])
def test_span_loss_in_blocks_equals_one_whole_read(monkeypatch, cell, work):
    """The check reads its rows ROWS at a time, in blocks of columns with the state carried: the
    losses are those of reading each row whole from a zero state, however the blocks fall."""
    torch.manual_seed(0)
    net = tiny(cell, vocab_size=11)
    x = torch.randint(0, 11, (7, 30))
    targets = torch.randint(0, 11, (7, 12))
    out, _ = net.read(x)  # (7, 30, H): every row whole, from a zero state
    expected = net.nats(out[:, -12:], targets).mean(1)
    monkeypatch.setattr(coldstart, "_WORK_BUDGET", work)  # 1: a column a block, 5,000: a few
    monkeypatch.setattr(coldstart, "ROWS", 3)  # rows in groups of 3, 3 and 1
    got = coldstart.span_loss(net, x, targets, torch.device("cpu"))
    torch.testing.assert_close(got, expected)
