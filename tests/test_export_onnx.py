"""`charrnn export MODEL.onnx`'s graph (charrnn.use.onnx_export): run by onnxruntime, one step at a
time, it reads text as the model does, carries what the model needs in its metadata, and samples
what `charrnn sample` writes. Skipped where onnxruntime is not installed (the test extra has it)."""

from __future__ import annotations

import json
import re
import string
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_text, tiny
from helpers.cli import ended

import charrnn
from charrnn import checkpoint
from charrnn.errors import ExportError
from charrnn.model.trained import Model
from charrnn.text.vocab import CharVocab
from charrnn.use.sampler import SampleConfig, Sampler

COMMANDS = Path(__file__).resolve().parents[1] / "docs" / "commands.md"
TEXT = make_text(200, seed=3)  # 200 characters read after the lead-in
CASES = [(cell, layers) for cell in ("lstm", "gru", "rnn") for layers in (1, 2)]


def session_of(model: Model):
    """An onnxruntime session of `model`'s exported step (skips the test without onnxruntime)."""
    ort = pytest.importorskip("onnxruntime")
    from charrnn.use.onnx_export import onnx_bytes

    return ort.InferenceSession(onnx_bytes(model), providers=["CPUExecutionProvider"])


class Stream:
    """Streams read through the graph one character per step, from the zero state."""

    def __init__(self, session, model: Model, batch: int = 1):
        names = [i.name for i in session.get_inputs()[1:]]  # the state, after `char`
        shape = (model.config.num_layers, batch, model.config.hidden_size)
        self.session, self.state = session, {n: np.zeros(shape, np.float32) for n in names}

    def step(self, ids) -> np.ndarray:
        """ids (batch,) -> logits (batch, V); the state carried."""
        logits, *new = self.session.run(None, {"char": np.asarray(ids, np.int64), **self.state})
        self.state = dict(zip(self.state, new, strict=True))
        return logits


@pytest.fixture(scope="module", params=CASES, ids=[f"{c}-{n}" for c, n in CASES])
def exported(request):
    """(model, session): a tiny model of each cell and depth, with a lead-in of its own, exported
    once for every test of this module."""
    cell, layers = request.param
    vocab = CharVocab(sorted(set(make_text())))
    net = tiny(cell, layers, vocab_size=len(vocab.chars))
    net.config.lead_in = "\n"  # not what the vocabulary alone would give ("\n\n")
    model = Model(net, vocab)
    return model, session_of(model)


@torch.no_grad()
def test_reads_text_as_the_model_does(exported):
    """Every position's logits and the final state equal the model's own read (its fused kernel)
    of the lead-in and 200 characters, from the zero state."""
    model, session = exported
    ids = model.with_lead_in(torch.tensor([model.vocab.encode(TEXT)]))  # (1, T)
    out, state = model.net.read(ids)
    expected = model.net.logits(out)[0].numpy()  # (T, V)
    stream = Stream(session, model)
    got = np.concatenate([stream.step([i]) for i in ids[0].tolist()])  # (T, V)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert len(stream.state) == len(state)
    for mine, theirs in zip(stream.state.values(), state, strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-4, rtol=0)


@torch.no_grad()
def test_streams_of_a_batch_are_apart(exported):
    """Three streams in one batch each read what they would alone: the batch is dynamic."""
    model, session = exported
    texts = [model.vocab.encode(t) for t in ("the cat", "ANNA:\nw", "we all.")]
    batch = Stream(session, model, batch=3)
    for column in zip(*texts, strict=True):
        together = batch.step(column)
    for row, ids in enumerate(texts):
        alone = Stream(session, model)
        for i in ids:
            logits = alone.step([i])
        np.testing.assert_allclose(together[row : row + 1], logits, atol=1e-5, rtol=0)


def test_metadata_says_how_to_use_it(exported):
    model, session = exported
    meta = session.get_modelmeta().custom_metadata_map
    chars = json.loads(meta["vocab"])
    assert chars == model.vocab.chars and "".join(chars) == "".join(model.vocab.chars)
    assert json.loads(meta["lead_in"]) == model.lead_in == "\n"
    c = model.config
    assert (meta["cell"], int(meta["num_layers"]), int(meta["hidden_size"])) == (
        c.cell,
        c.num_layers,
        c.hidden_size,
    )
    assert int(meta["vocab_size"]) == len(chars) == session.get_outputs()[0].shape[1]
    assert meta["charrnn_version"] == charrnn.__version__
    assert "zero state" in meta["how_to_start"] and "lead-in" in meta["how_to_start"]
    state = json.loads(meta["state"])
    assert [i.name for i in session.get_inputs()] == ["char", *state]
    assert [o.name for o in session.get_outputs()] == ["logits", *(n + "_next" for n in state)]


def draw_through_onnx(session, model: Model, prime: str, config: SampleConfig, length: int) -> str:
    """A sample drawn from onnxruntime's logits exactly as `charrnn sample` draws: a Sampler's
    own choose() (its torch.Generator seeded --seed, the same temperature and Gumbel-max draw)
    picks each character from logits that the graph computed, not the model."""
    sampler = Sampler(model, config, track_logprob=False)
    stream = Stream(session, model)
    for i in model.vocab.encode(model.lead_in + prime):
        logits = stream.step([i])
    text = prime
    for t in range(length):
        idx = sampler.choose(torch.from_numpy(logits), t)  # (1,)
        text += model.vocab.chars[int(idx[0])]
        logits = stream.step(idx.numpy())
    return text


@pytest.mark.parametrize("seed", [0, 7])
def test_a_sample_through_onnxruntime_is_charrnn_samples(trained_run, env, seed):
    model = checkpoint.load_model(trained_run.best)
    session = session_of(model)
    r = env(["sample", "-c", str(trained_run.best), "--seed", str(seed), "-l", "300", "-p", "AN"])
    assert r.exit_code == 0, r.stderr
    config = SampleConfig(temperature=0.8, seed=seed)
    assert r.stdout == ended(draw_through_onnx(session, model, "AN", config, 300))


def test_the_documented_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """docs/commands.md's Python lines, run as written on a model.onnx of a vocabulary they can
    prime (ROMEO:): the prime, then 200 characters of the vocabulary."""
    vocab = CharVocab(sorted(set(string.ascii_letters + " \n.,:;!?'")))
    net = tiny("lstm", 2, vocab_size=len(vocab.chars))
    session_of(Model(net, vocab))  # skips without onnxruntime
    from charrnn.use.onnx_export import onnx_bytes

    part = COMMANDS.read_text(encoding="utf-8").split("### Text from the ONNX file", 1)[1]
    code = re.search(r"```python\n(.*?)```", part, re.S).group(1)
    (tmp_path / "model.onnx").write_bytes(onnx_bytes(Model(net, vocab)))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "commands.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out) == len("ROMEO:") + 200 + 1
    assert set(out) <= set(vocab.chars)


@pytest.mark.parametrize("package", ["onnx", "numpy"])
def test_without_the_extra_it_says_what_to_install(monkeypatch, exported_free_model, package):
    from charrnn.use.onnx_export import onnx_bytes

    monkeypatch.setitem(sys.modules, package, None)  # `import PACKAGE` raises ImportError
    with pytest.raises(ExportError, match=re.escape("pip install onnx")):
        onnx_bytes(exported_free_model)


@pytest.fixture
def exported_free_model() -> Model:
    vocab = CharVocab(sorted(set("abc \n")))
    return Model(tiny("gru", 1, vocab_size=len(vocab.chars)), vocab)
