"""start_run / resume_run, the library's entry points: what they refuse, and a run they start
resumes exactly through resume_run (the CLI's path)."""

from itertools import pairwise

import pytest
import torch
from conftest import TINY_MODEL, TINY_TRAIN, drain, make_text

from charrnn.errors import ConfigError, CorpusError, RunError
from charrnn.text.encoded import encode_text
from charrnn.train.resume import resume_run
from charrnn.train.start import start_run
from charrnn.train.trainer import EvalEvent, StepEvent


@pytest.fixture
def corpus(text):
    return encode_text(text, "tiny")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": "huge"}, "unknown size 'huge'"),
        ({"cell": "transformer"}, "unknown cell"),
        ({"model": {"hidden": 24}}, "unknown model option"),
        ({"model": {"vocab_size": 3}}, "unknown model option"),
        ({"train": {"max_stepz": 5}}, "unknown train option"),
        ({"train": {"max_steps": "10"}}, "max_steps must be a number"),
        ({"train": {"lr": True}}, "lr must be a number"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, corpus, options, message):
    with pytest.raises(ConfigError, match=message):
        start_run(corpus, tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_a_run_is_never_replaced_unless_asked(tmp_path, corpus):
    folder = str(tmp_path / "run")  # a plain str will do
    drain(start_run(corpus, folder, model=TINY_MODEL, train={**TINY_TRAIN, "max_steps": 10}))
    with pytest.raises(RunError, match="holds a run already"):
        start_run(corpus, folder, model=TINY_MODEL, train={**TINY_TRAIN, "max_steps": 10})
    again = start_run(corpus, folder, replace=True, cell="gru", model=TINY_MODEL, train=TINY_TRAIN)
    assert again.model.config.cell == "gru"


def test_resume_run_continues_exactly_and_refuses_what_cannot_change(tmp_path, corpus, text):
    options = {"model": TINY_MODEL, "cell": "rnn"}
    whole = start_run(corpus, tmp_path / "whole", **options, train={**TINY_TRAIN, "max_steps": 30})
    drain(whole)
    half = start_run(corpus, tmp_path / "half", **options, train={**TINY_TRAIN, "max_steps": 30})
    for event in half.run():
        if isinstance(event, StepEvent) and event.step == 15:
            half.request_stop()  # as Ctrl-C does

    def read(specs, encoding):
        assert specs == ["-"] and encoding == "utf-8"  # what the caller was told to read
        return encode_text(text, "tiny")

    with pytest.raises(ConfigError, match="unknown train option"):
        resume_run(tmp_path / "half", read, corpus_specs=["-"], train={"max_stepz": 30})
    with pytest.raises(ConfigError, match="seq_len cannot change"):
        resume_run(tmp_path / "half", read, corpus_specs=["-"], train={"seq_len": 8})
    with pytest.raises(CorpusError, match="standard input or a text in memory"):
        resume_run(tmp_path / "half", read)  # no sources saved: the caller must give the text
    with pytest.raises(CorpusError, match="differs"):
        resume_run(tmp_path / "half", lambda s, e: encode_text(text[:-1], "x"), corpus_specs=["-"])
    resumed = resume_run(tmp_path / "half", read, corpus_specs=["-"], train={"eval_every": 10})
    drain(resumed)
    for (name, p), q in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    with pytest.raises(RunError, match="already used its budget"):
        resume_run(tmp_path / "half", read, corpus_specs=["-"])


@pytest.mark.parametrize("n_chars", [2_000, 12_000])
def test_a_small_text_is_evaluated_at_least_once_an_epoch(tmp_path, n_chars):
    # a million characters between evaluations would be hundreds of epochs of these texts:
    # best.pt would hold a model long past its best
    corpus = encode_text(make_text(n_chars), "small")
    train = {k: v for k, v in TINY_TRAIN.items() if k != "eval_every"}
    trainer = start_run(
        corpus, tmp_path / "run", model=TINY_MODEL, train={**train, "max_epochs": 3}
    )
    steps = [e.record["step"] for e in drain(trainer) if isinstance(e, EvalEvent)]
    per_epoch = len(trainer.train_batches)
    assert trainer.pos.step >= 3 * per_epoch and len(steps) >= 3
    assert steps[0] <= per_epoch and all(b - a <= per_epoch for a, b in pairwise(steps))


def test_a_run_state_goes_to_a_file_and_back_unchanged(trained_run):
    """checkpoint.py alone turns a RunState into a file and back: nothing is lost on the way."""
    from charrnn import checkpoint

    payload = checkpoint.load(trained_run.last)
    again = checkpoint.to_payload(checkpoint.load_run(trained_run.last))
    for part in ("format", "format_version", "digests"):
        payload.pop(part)
    assert set(again) == set(payload)
    assert checkpoint._digest(again) == checkpoint._digest(payload)


def test_open_run_starts_then_resumes_one_run_holding_its_lock(tmp_path, corpus_file):
    """The CLI's one call: a new run from files, its folder locked while it trains; the same
    call with `resume` continues it."""
    from charrnn.train.open import RunRequest, TextReader, open_run

    reader = TextReader(tmp_path / "cache")
    train = {**TINY_TRAIN, "max_steps": 10}
    new = RunRequest(tmp_path / "ck", corpus=(str(corpus_file),), model=TINY_MODEL, train=train)
    told = []
    with open_run(new, reader, on_open=told.append) as opened:
        assert told == [opened] and opened.trainer.run_dir.name == "tiny"
        with pytest.raises(RunError, match="being trained by another process"):
            opened.trainer.run_dir.session().__enter__()
        drain(opened.trainer)
    resumed = RunRequest(tmp_path / "ck", resume="tiny", train={"max_steps": 20, "seed": 3})
    with open_run(resumed, reader) as opened:
        assert opened.trainer.pos.step == 10 and opened.chars == len(corpus_file.read_text())
        assert drain(opened.trainer)[-1].step == 20
