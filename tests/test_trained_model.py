"""The trained model whole: restored in one call, and one cold start that every reader shares."""

from __future__ import annotations

import pytest
import torch
from test_cells import tiny

from charrnn import checkpoint
from charrnn.model.config import CELLS, ModelConfig
from charrnn.model.network import CharRNN
from charrnn.model.trained import Model
from charrnn.text.vocab import CharVocab
from charrnn.train.evaluate import evaluate
from charrnn.use.inspection import record
from charrnn.use.scoring import score_lines, score_text

VOCAB = CharVocab.from_text("abcdefg \n")


def test_a_checkpoint_restores_the_model_whole(trained_run):
    payload = checkpoint.load(trained_run.best)
    model = checkpoint.load_model(trained_run.best)
    assert model.vocab.chars == payload["vocab"]
    assert model.char_counts == payload["corpus"]["char_counts"]
    assert model.lead_in == payload["model_config"]["lead_in"]
    assert not model.net.training and model.device.type == "cpu"
    weights = model.net.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in payload["model"].items())
    corpus = {k: v for k, v in payload["corpus"].items() if k != "char_counts"}
    assert checkpoint.restore({**payload, "corpus": corpus}, trained_run.best).char_counts is None


@pytest.mark.parametrize("cell", CELLS)
def test_a_cold_start_is_the_lead_in_and_prime_read_in_one_pass(cell):
    """Model.start(n, prime): what a forward pass over lead-in + prime gives from a zero state,
    whatever the pieces it was read in, the same for each of the n streams."""
    model = Model(tiny(cell, vocab_size=len(VOCAB)).eval(), VOCAB)
    prime = "abc de\nfg" * 3
    ids = torch.tensor([VOCAB.encode(model.lead_in + prime)])
    with torch.no_grad():
        logits, state = model.net(ids)  # (1, T, V)
        out, _ = model.net.read(ids)  # (1, T, H)
    for chunk in (1, 4, 10**6):
        start = model.start(3, prime, chunk=chunk)
        assert start.logits.shape == (3, len(VOCAB)) and start.h.shape == (3, 1, 24)
        torch.testing.assert_close(start.logits, logits[:, -1].expand(3, -1))
        torch.testing.assert_close(start.h, out[:, -1:].expand(3, -1, -1))
        for got, want in zip(start.state, state, strict=True):
            torch.testing.assert_close(got, want.expand(-1, 3, -1))


def test_rows_read_cold_begin_with_the_lead_in_and_passes_stay_bounded():
    model = Model(tiny("gru", vocab_size=len(VOCAB)).eval(), VOCAB)
    rows = torch.tensor([VOCAB.encode("abcdefg"), VOCAB.encode("gfedcba")])  # (2, 7)
    cold = model.with_lead_in(rows)
    assert cold.tolist() == [VOCAB.encode("\n\nabcdefg"), VOCAB.encode("\n\ngfedcba")]
    passes = list(model.read(cold, chunk=6))  # 3 characters per row a pass
    assert [t for t, _, _ in passes] == [0, 3, 6]
    assert [out.shape[1] for _, out, _ in passes] == [3, 3, 3]
    with torch.no_grad():
        whole, state = model.net.read(cold)
    torch.testing.assert_close(torch.cat([o for _, o, _ in passes], 1), whole)
    torch.testing.assert_close(passes[-1][2], state)


def test_evaluation_starts_each_stream_from_the_cold_start(trained_run, monkeypatch):
    model = checkpoint.load_model(trained_run.best)
    seen = []
    read = model.net.read

    def first_state(idx, state=None):
        seen.append(state)
        return read(idx, state)

    from charrnn.text.data import StreamBatcher

    batches = StreamBatcher(torch.tensor(model.vocab.encode("the cat sat on the mat. " * 8)), 2, 8)
    cold = model.start(2).state
    monkeypatch.setattr(model.net, "read", first_state)
    evaluate(model, batches)
    assert all(torch.equal(a, b) for a, b in zip(seen[1], cold, strict=True))  # after the lead-in
    seen.clear()
    evaluate(model, batches, cold=False)
    assert all(not s.any() for s in seen[0])  # a zero state alone
    assert model.net.training is False  # the mode it was in


def test_a_network_in_training_mode_is_read_without_dropout_and_left_training():
    """A library caller's fresh CharRNN is in training mode: every reader gives the numbers of
    eval mode (the same at each call, whatever the dropouts) and hands the network back as it
    found it."""
    torch.manual_seed(0)
    config = ModelConfig(len(VOCAB), 8, 16, 2, dropout=0.5, input_dropout=0.5)
    model = Model(CharRNN(config), VOCAB)
    text, lines = "abc de fg\ngfe dcba\n" * 30, ["abc de\n", "fg gfe dcba\n"]
    model.net.eval()
    want = score_text(model, text), score_lines(model, lines), record(model, text[:40]).surprise
    model.net.train()
    for _ in range(2):
        torch.testing.assert_close(score_text(model, text), want[0], rtol=1e-6, atol=0)
        torch.testing.assert_close(score_lines(model, lines), want[1], rtol=1e-6, atol=0)
        torch.testing.assert_close(record(model, text[:40]).surprise, want[2])
        assert model.net.training
