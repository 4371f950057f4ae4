"""Starting from a trained model (train --init-from): the vocabulary grows and keeps the old ids,
the model predicts as before at step 0, it learns the new characters, a fine-tuning run resumes
exactly, and every bad base checkpoint or too-short text is refused before anything is written."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_CLI, TINY_MODEL, TINY_TRAIN, drain, make_text, make_trainer
from helpers.cli import assert_one_error
from hypothesis import example, given
from hypothesis import strategies as st

from charrnn import checkpoint
from charrnn.cli.common import shown_chars
from charrnn.cli.report import done_line
from charrnn.errors import CheckpointError, ConfigError, RunError
from charrnn.model.presets import FINE_TUNE
from charrnn.model.trained import Model, lead_in
from charrnn.text import data
from charrnn.text.encoded import encode_text
from charrnn.text.vocab import CharVocab
from charrnn.train.resume import resume
from charrnn.train.start import start
from charrnn.train.trainer import EvalEvent, RollbackEvent, StepEvent
from charrnn.use.sampler import sample_text

# A new text in the base's style with characters it never saw: one with a lookalike (é reads as
# e), the others without one.
NEW_TEXT = (
    make_text(8000, seed=3).replace("the ", "thé ").replace("sun", "{sun}").replace("a", "a7")
)


def base_checkpoint(runs_by_cell, cell: str):
    return runs_by_cell / cell / "best.pt"


def fine_tune(folder, base, text=NEW_TEXT, **train):
    return start(
        encode_text(text, "new"),
        folder,
        init_from=base,
        train={"warmup_steps": 5, "eval_every": 10, "seed": 1, **train},
    ).trainer


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_vocabulary_grows_and_old_predictions_are_unchanged_at_step_0(
    tmp_path, runs_by_cell, cell
):
    path = base_checkpoint(runs_by_cell, cell)
    trained = checkpoint.restore(checkpoint.load(path), path)
    base, old = trained.net, trained.vocab
    trainer = fine_tune(tmp_path / "tuned", path, max_steps=1)
    new = trainer.vocab
    assert new.chars[: len(old)] == old.chars  # every old character keeps its id
    assert sorted(new.chars[len(old) :]) == sorted(set(NEW_TEXT) - set(old.chars)) == list("7{}é")
    x = torch.randint(0, len(old), (3, 50))  # text of old characters only: (B, T)
    with torch.no_grad():
        before = F.log_softmax(base(x)[0], dim=-1)  # (B, T, V_old)
        after = F.log_softmax(trainer.model.eval()(x)[0], dim=-1)  # (B, T, V_new)
    assert torch.allclose(after[..., : len(old)], before, atol=1e-5)  # the old predictions
    assert after[..., len(old) :].exp().max() < 1e-5  # the new characters start all but unseen
    assert trainer.pos.step == 0 and trainer.model.config.cell == cell
    assert trainer.origin["run"] == cell and trainer.origin["new_chars"] == "7{}é"


@pytest.fixture(scope="module")
def base_128(tmp_path_factory):
    """A base model wide enough to learn new characters as a real one does (1x128, 300 steps):
    the tiny models' 24 units move a new character's logit too little per step."""
    folder = tmp_path_factory.mktemp("base") / "base128"
    model = {"embedding_dim": 16, "hidden_size": 128, "num_layers": 1, "dropout": 0.0}
    train = {"batch_size": 8, "seq_len": 32, "lr": 1e-2, "max_steps": 300, "eval_every": 100}
    drain(start(encode_text(make_text(20_000), "base"), folder, model=model, train=train).trainer)
    return folder / "best.pt"


def test_it_learns_the_new_characters_and_keeps_the_old(tmp_path, base_128):
    trainer = fine_tune(tmp_path / "tuned", base_128, max_steps=150, eval_every=25)
    ids = data.encode(NEW_TEXT[-2000:], trainer.vocab).long()[None]  # (1, T): validation text
    is_new = ids[0, 1:] >= trainer.origin["vocab_size"]

    def nats() -> torch.Tensor:  # (T-1,) per character
        with torch.no_grad():
            logits = trainer.model.eval()(ids[:, :-1])[0][0]  # (T-1, V)
        trainer.model.train()
        return F.cross_entropy(logits, ids[0, 1:], reduction="none")

    before = nats()
    assert before[is_new].mean() > 15  # unseen: NEW_CHAR_GAP below their lookalikes
    drain(trainer)
    after = nats()
    # measured: 1.3 nats after 150 steps (16 at step 0), most of it in '{', which nothing
    # foretells; 7 after 'a', 0.6 nats
    assert after[is_new].mean() < 2.0
    assert after[~is_new].mean() < before[~is_new].mean()  # and the old ones did not suffer
    evals = [r["val_loss"] for r in trainer.pos.metrics if r["kind"] == "eval"]
    assert evals[-1] < evals[0] - 1.0


def test_a_text_of_mostly_new_characters_trains_from_where_it_starts(tmp_path, base_128):
    # Digits and tabs are new to the base: the loss starts near NEW_CHAR_GAP, far worse than
    # guessing, and that is where fine-tuning starts, not a blow-up to roll back from. The model
    # as it starts is evaluated first, so best.pt can keep it.
    rng = random.Random(0)
    text = "".join(f"{rng.randint(0, 99999)}\t{rng.random():.3f}\n" for _ in range(600))
    trainer = fine_tune(tmp_path / "tsv", base_128, text, max_steps=100, eval_every=20)
    events = drain(trainer)
    assert not [e for e in events if isinstance(e, RollbackEvent)]
    evals = [e.record for e in events if isinstance(e, EvalEvent)]
    assert evals[0]["step"] == 0 and evals[0]["val_loss"] > trainer.explode_at
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 5  # measured: 19.7 to 2.6 nats
    # strict JSON: the step-0 evaluation has no training loss, null rather than NaN
    lines = (tmp_path / "tsv" / "metrics.jsonl").read_text().splitlines()
    first = json.loads(lines[0], parse_constant=lambda c: pytest.fail(f"{c} in metrics.jsonl"))
    assert first["step"] == 0 and first["train_loss"] is None
    # Its lines have no blank line between them: the model reads a line break before any text,
    # as its text has one, not the base's paragraph break (after which it wrote the base's habit)
    model = trainer.model
    assert lead_in(trainer.vocab, model) == "\n" and model.config.lead_in == "\n"
    text = sample_text(Model(model, trainer.vocab), length=200, seed=1)
    assert sum(ch.isdigit() or ch in "\t.\n" for ch in text) > 0.9 * len(text), text


def test_a_fine_tuning_run_resumes_exactly(tmp_path, runs_by_cell):
    base = base_checkpoint(runs_by_cell, "gru")
    whole = fine_tune(tmp_path / "whole", base, max_steps=30)
    drain(whole)
    half = fine_tune(tmp_path / "half", base, max_steps=30)
    for event in half.run():
        if isinstance(event, StepEvent) and event.step == 15:
            half.request_stop()
    resumed = resume(
        tmp_path / "half", lambda s, e: encode_text(NEW_TEXT, "new"), corpus_specs=["-"]
    ).trainer
    assert resumed.origin == whole.origin and resumed.vocab == whole.vocab
    drain(resumed)
    for (name, p), q in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    saved = checkpoint.load(tmp_path / "half" / "last.pt")
    assert saved["origin"]["run"] == "gru" and saved["trainer"]["step"] == 30


def test_the_fine_tune_rate_is_a_share_of_the_base_rate_and_an_lr_given_wins(tmp_path):
    text = make_text(6000)
    for rate in (2e-3, 3e-2):
        base = tmp_path / f"base{rate}"
        drain(make_trainer(text, base, **{**TINY_TRAIN, "lr": rate, "max_steps": 2}))
        tuned = fine_tune(tmp_path / f"tuned{rate}", base / "best.pt", max_steps=1)
        assert tuned.config.lr == pytest.approx(FINE_TUNE.lr_scale * rate)
    given = fine_tune(tmp_path / "given", base / "best.pt", max_steps=1, lr=5e-3)
    assert given.config.lr == 5e-3
    # a fine-tune of a fine-tune: its base's own rate, not a fifth of a fifth (which stalled)
    drain(tuned)
    again = fine_tune(tmp_path / "again", tmp_path / f"tuned{rate}" / "best.pt", max_steps=1)
    assert again.config.lr == pytest.approx(tuned.config.lr)


def test_shape_options_that_contradict_the_base_are_refused(tmp_path, runs_by_cell):
    base = base_checkpoint(runs_by_cell, "lstm")
    corpus = encode_text(NEW_TEXT, "new")
    with pytest.raises(ConfigError, match="hidden_size 32 contradicts"):
        start(corpus, tmp_path / "a", init_from=base, model={"hidden_size": 32})
    with pytest.raises(ConfigError, match="cell gru contradicts"):
        start(corpus, tmp_path / "a", init_from=base, cell="gru")
    with pytest.raises(ConfigError, match="a size cannot be given"):
        start(corpus, tmp_path / "a", init_from=base, size="small")
    same = {"hidden_size": TINY_MODEL["hidden_size"], "dropout": 0.3}  # agreeing, and dropout
    trainer = start(corpus, tmp_path / "a", init_from=base, model=same, cell="lstm").trainer
    assert trainer.model.config.dropout == 0.3 and not (tmp_path / "a").exists()


def test_a_text_too_small_for_the_base_batch_gets_one_that_fits_or_a_clear_error(
    tmp_path, runs_by_cell
):
    base = base_checkpoint(runs_by_cell, "lstm")  # trained with 4 streams of 16
    train = {"warmup_steps": 5, "eval_every": 10, "seed": 1}
    opened = start(encode_text(NEW_TEXT[:300], "new"), tmp_path / "a", init_from=base, train=train)
    small = opened.trainer  # validates on 30 characters
    assert small.config.batch_size == 1 and opened.notes == [
        "1 stream, not the base's 4, to fit 300 characters"
    ]
    with pytest.raises(ConfigError, match=r"too few for windows of 16.*more text") as e:
        fine_tune(tmp_path / "b", base, text=NEW_TEXT[:100])
    found = re.search(r"more text \(([\d,]+) characters or more", e.value.args[0])
    need = int(found.group(1).replace(",", ""))
    fine_tune(tmp_path / "c", base, text=NEW_TEXT[:need])  # as long as it says is enough...
    with pytest.raises(ConfigError, match="too few for windows"):
        fine_tune(tmp_path / "d", base, text=NEW_TEXT[: need - 1])  # ... and no longer


def test_patience_stops_a_run_that_no_longer_improves_and_resume_says_so(tmp_path, text):
    corpus = encode_text(text, "tiny")
    train = {**TINY_TRAIN, "lr": 1e-9, "patience": 2, "max_steps": 1000}  # nothing improves
    trainer = start(corpus, tmp_path / "r", model=TINY_MODEL, train=train).trainer
    done = drain(trainer)[-1]
    assert done.reason == "patience" and done.step == 30  # evaluations at 10, 20, 30
    assert "(stopped early: no better validation loss in 2 evaluations)" in done_line(trainer, done)
    with pytest.raises(RunError, match=r"stopped early: .* its last 2 evaluations; .* above 2"):
        resume(tmp_path / "r", lambda s, e: corpus, corpus_specs=["-"])
    again = resume(
        tmp_path / "r", lambda s, e: corpus, corpus_specs=["-"], train={"patience": 3}
    ).trainer
    assert drain(again)[-1].step == 40
    # a run that ended by its steps, given a patience its evaluations already exhaust: it did
    # not stop early, and the patience that lets it go on is said, not found by trial
    train = {**TINY_TRAIN, "lr": 1e-9, "max_steps": 40, "eval_every": 10}
    drain(start(corpus, tmp_path / "s", model=TINY_MODEL, train=train).trainer)
    more = {"max_steps": 80, "patience": 1}
    with pytest.raises(RunError) as e:
        resume(tmp_path / "s", lambda s, e: corpus, corpus_specs=["-"], train=more)
    found = re.search(
        r"in its last (\d+) evaluations?, so --patience 1 would stop it at once; "
        r"to go on, give a --patience above (\d+)$",
        str(e.value),
    )
    assert found and found[1] == found[2] and int(found[1]) >= 1, str(e.value)
    more["patience"] = int(found[1]) + 1
    assert resume(tmp_path / "s", lambda s, e: corpus, corpus_specs=["-"], train=more).trainer


@given(st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_a_grown_vocabulary_encodes_and_decodes_every_text(first, second):
    vocab = CharVocab.from_text(first).grown(second)
    assert vocab.chars[: len(set(first))] == sorted(set(first))
    text = second + first
    assert vocab.decode(data.encode(text, vocab).tolist()) == text


# ------------------------------------------------------------------------------- the CLI


@given(st.text())
@example("e\u0301\U000e0100")  # a mark beyond 16 bits (a variation selector) is written \U...
def test_new_characters_are_shown_as_a_literal_without_a_mark_to_stack(text):
    """The first line's list of new characters reads back as the characters (a Python literal),
    and no combining mark in it stacks on the quote or character before it on a terminal."""
    import ast
    import unicodedata

    shown = shown_chars(text)
    assert ast.literal_eval(shown) == text
    assert not any(unicodedata.category(c).startswith("M") for c in shown)


def test_the_cli_fine_tunes_a_run_and_lists_where_it_came_from(env, tmp_path):
    (tmp_path / "base.txt").write_text(make_text(6000))
    (tmp_path / "new.txt").write_text(NEW_TEXT)
    assert env(["train", "base.txt", *TINY_CLI, "--steps", "20"]).exit_code == 0
    r = env(["train", "new.txt", "--init-from", "base", "--steps", "20", "--eval-every", "10"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "checkpoints/new/best.pt\n"
    first = r.stderr.splitlines()[0]
    assert first.startswith("Fine-tuning 'new'") and "from 'base' at step 20" in first
    assert "4 new characters: '7{}é'" in first
    assert f"{len(set(NEW_TEXT))} distinct;" in first
    runs = [json.loads(line) for line in env(["runs", "--json"]).stdout.splitlines()]
    assert {r["run"]: r["from"] for r in runs} == {"new": "base", "base": None}
    new = next(r for r in runs if r["run"] == "new")
    assert new["from_step"] == 20
    assert new["from_checkpoint"] == str(tmp_path / "checkpoints" / "base" / "best.pt")
    sample = env(["sample", "-c", "new", "--prime", "thé {sun", "-l", "20", "-s", "1"])
    assert sample.exit_code == 0 and sample.stdout.startswith("thé {sun")
    resumed = env(["train", "--resume", "new", "--steps", "30"])
    assert resumed.exit_code == 0 and "Resuming at step 20" in resumed.stderr
    # a text with fewer characters than the base knows: its own count, and the vocabulary's
    (tmp_path / "few.txt").write_text("thé {sun} " * 300)
    few = env(["train", "few.txt", "--init-from", "base", "--steps", "1"])
    assert few.exit_code == 0, few.stderr
    vocab = len(set(make_text(6000) + "é{}"))
    first = few.stderr.splitlines()[0]
    assert (
        f"3,000 characters, 9 distinct (vocabulary {vocab});" in first and "budget 1 step;" in first
    )
    assert "new to the model started from" not in first + r.stderr.splitlines()[0]
    # a text mostly of characters the base never saw (another script): said, with what to do
    letters = "abcdefghijklmnopqrstuvwxyz"
    greek_letters = "".join(chr(0x3B1 + i) for i in range(26))  # α, β, ... (new to the base)
    greek = make_text(3000, seed=4).translate(str.maketrans(letters, greek_letters))
    (tmp_path / "greek.txt").write_text(greek)
    r = env(["train", "greek.txt", "--init-from", "base", "--steps", "1"])
    assert r.exit_code == 0, r.stderr
    share = sum(ch in greek_letters for ch in greek) / len(greek)
    assert share > 0.5
    assert (
        f"({share:.0%} of the text is characters new to the model started from: little of what "
        "it learned applies, and a new run, without --init-from, may learn it better)"
    ) in r.stderr.splitlines()[0]


def test_a_fine_tune_that_finds_nothing_better_says_best_pt_is_where_it_started(env, tmp_path):
    # Its validation part (the last tenth) is a table of digits the training part never has:
    # every evaluation reads worse than the start, so best.pt stays the model it started from.
    (tmp_path / "base.txt").write_text(make_text(6000))
    assert env(["train", "base.txt", *TINY_CLI, "--steps", "20"]).exit_code == 0
    words = make_text(5400, seed=5)
    rng = random.Random(0)
    table = "".join(f"{rng.randrange(10**6):06d}{'|' if i % 8 else chr(10)}" for i in range(90))
    (tmp_path / "odd.txt").write_text(words + table[: 6000 - len(words)])
    # (not every 10 steps: after 10 steps in warm-up the model is the start's, within the noise)
    r = env(["train", "odd.txt", "--init-from", "base", "--steps", "40", "--eval-every", "20"])
    assert r.exit_code == 0, r.stderr
    records = [json.loads(line) for line in (tmp_path / "checkpoints/odd/metrics.jsonl").open()]
    losses = [e["val_loss"] for e in records if e.get("val_loss") is not None]
    assert min(losses) == losses[0] and len(losses) > 1
    assert (
        "Note: no evaluation found a better model than the one this fine-tune started from: "
        "best.pt is that model; checkpoints/odd/last.pt holds the fine-tuned one."
    ) in r.stderr.splitlines()
    plain = env(["train", "base.txt", "--init-from", "base", "--steps", "40", "--name", "same"])
    assert plain.exit_code == 0 and "no evaluation found a better model" not in plain.stderr


def test_replacing_the_run_it_starts_from_is_refused_and_the_base_survives(env, tmp_path):
    (tmp_path / "base.txt").write_text(make_text(6000))
    (tmp_path / "new.txt").write_text(NEW_TEXT)
    assert env(["train", "base.txt", *TINY_CLI, "--steps", "10"]).exit_code == 0
    best = tmp_path / "checkpoints" / "base" / "best.pt"
    before = best.read_bytes()
    for force in (["--force"], []):
        r = env(["train", "new.txt", "--init-from", "base", "--name", "base", *force])
        assert_one_error(r, 1, "another --name")
        assert best.read_bytes() == before
    with pytest.raises(RunError, match="another --name"):
        start(encode_text(NEW_TEXT, "new"), best.parent, replace=True, init_from=best)


@pytest.mark.parametrize("option", [["--hidden", "24"], ["--size", "small"], ["--cell", "gru"]])
def test_shape_options_with_init_from_are_a_usage_error(env, tmp_path, option):
    (tmp_path / "new.txt").write_text(NEW_TEXT)
    r = env(["train", "new.txt", "--init-from", "base", *option])
    assert r.exit_code == 2 and "cannot be given with --init-from" in r.stderr
    both = env(["train", "--resume", "new", "--init-from", "base"])
    assert both.exit_code == 2 and "give one of them" in both.stderr


def _newer(path):
    torch.save({"format": "charrnn", "format_version": 99}, path)


def _truncated(path, good):
    path.write_bytes(good.read_bytes()[:3000])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, g: p.write_text("hello"), "not a charrnn checkpoint"),
        (lambda p, g: _newer(p), "newer than this charrnn reads"),
        (_truncated, "truncated"),
        (lambda p, g: torch.save({"format": "charrnn", "format_version": 2}, p), "incomplete"),
    ],
)
def test_a_bad_base_checkpoint_is_one_error_line_and_nothing_is_written(
    env, tmp_path, runs_by_cell, make, message
):
    (tmp_path / "new.txt").write_text(NEW_TEXT)
    bad = tmp_path / "bad.pt"
    make(bad, base_checkpoint(runs_by_cell, "lstm"))
    r = env(["train", "new.txt", "--init-from", str(bad), "--steps", "5"])
    assert_one_error(r, 1, message)
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(CheckpointError, match="cannot start a run from it"):
        start(encode_text(NEW_TEXT, "new"), tmp_path / "x", init_from=bad)


def test_a_missing_base_run_is_an_error_that_names_it(env, tmp_path):
    (tmp_path / "new.txt").write_text(NEW_TEXT)
    r = env(["train", "new.txt", "--init-from", "nosuchrun"])
    assert_one_error(r, 1, "nosuchrun")
    assert not (tmp_path / "checkpoints" / "new").exists()


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_checkpoint_resumes_and_is_a_base_to_start_from(tmp_path, text, version):
    corpus = encode_text(text, "tiny")
    train = {**TINY_TRAIN, "max_steps": 20}
    drain(start(corpus, tmp_path / "r", model=TINY_MODEL, train=train).trainer)
    old = tmp_path / f"v{version}"
    old.mkdir()
    for name in ("last.pt", "best.pt"):  # as charrnn wrote them before --init-from (2), or
        payload = checkpoint.load(tmp_path / "r" / name)  # before --input-dropout (3)
        model = {k: v for k, v in payload["model_config"].items() if k != "input_dropout"}
        payload = {**payload, "format_version": version, "model_config": model}
        if version == 2:
            config = {k: v for k, v in payload["train_config"].items() if k != "patience"}
            v2 = {k: v for k, v in payload.items() if k != "digests"}  # format 2 had none
            torch.save({**v2, "train_config": config}, old / name)
        else:
            checkpoint.save(payload, old / name)
        assert checkpoint.load(old / name)["format_version"] == version
    resumed = resume(old, lambda s, e: corpus, corpus_specs=["-"], train={"max_steps": 30}).trainer
    assert resumed.model.config.input_dropout == 0.0 and drain(resumed)[-1].step == 30
    assert version > 2 or resumed.config.patience is None
    tuned = fine_tune(tmp_path / "tuned", old / "best.pt", max_steps=5)
    assert drain(tuned)[-1].step == 5
    saved = checkpoint.load(tmp_path / "tuned" / "last.pt")
    assert saved["format_version"] == checkpoint.FORMAT_VERSION
    assert saved["model_config"]["input_dropout"] == 0.0
