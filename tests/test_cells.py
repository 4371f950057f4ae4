"""The three cells: one readable step each, equal to PyTorch's fused kernel; the opaque state;
sizes at equal parameter count; and each cell through training, resume, sampling and scoring."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI, TINY_MODEL, drain, make_text, make_trainer, tiny

from charrnn import checkpoint
from charrnn.model.config import CELLS
from charrnn.model.network import (
    CharRNN,
    Dropout,
    ModelConfig,
    drop_share,
    expand_state,
    gru_step,
    lstm_step,
    parameter_count,
    parameter_shapes,
    select_streams,
    state_from_list,
    state_to_list,
)
from charrnn.model.presets import PRESETS, RNN_LR_SCALE, for_cell
from charrnn.model.trained import Model
from charrnn.runs import RunDir
from charrnn.text.encoded import encode_text
from charrnn.train.start import start
from charrnn.train.trainer import DoneEvent, StepEvent
from charrnn.use.sampler import SampleConfig, Sampler
from charrnn.use.scoring import score_text

V1 = Path(__file__).parent / "data" / "v1"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_readable_step_equals_the_fused_kernel(cell, num_layers, batch):
    """40 characters read one at a time through the cell's named-gate step give the logits and the
    state that one fused-kernel pass gives (1 and 3 streams: the Stepper lays weights out apart)."""
    model = tiny(cell, num_layers)
    idx = torch.randint(0, 11, (batch, 40))
    start = tuple(torch.randn_like(s) for s in model.init_state(batch))  # a warm state
    with torch.no_grad():
        whole, state = model(idx, start)  # (B, T, V)
    stepper = model.stepper(batch)
    stepper.start(start)
    stepped = torch.stack([stepper(idx[:, t]) for t in range(40)], 1)
    torch.testing.assert_close(stepped, whole, atol=2e-5, rtol=1e-4)
    for a, b in zip(stepper.state(), state, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_one_call_per_layer_step_equals_the_readable_step(cell, num_layers, batch):
    """The sampler's step (PyTorch's cell kernel, one call a layer) gives the readable step's
    logits and state, character after character, from the same warm state."""
    model = tiny(cell, num_layers)
    idx = torch.randint(0, 11, (batch, 40))
    start = tuple(torch.randn_like(s) for s in model.init_state(batch))
    readable, fused = model.stepper(batch, fused=False), model.stepper(batch)
    readable.start(start)
    fused.start(start)
    for t in range(40):
        torch.testing.assert_close(fused(idx[:, t]), readable(idx[:, t]), atol=1e-5, rtol=1e-5)
    for a, b in zip(fused.state(), readable.state(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if num_layers == 1 and cell != "gru":  # the same operations in the same order: same floats
        assert torch.equal(fused(idx[:, 0]), readable(idx[:, 0]))


@pytest.mark.parametrize("cell", CELLS)
def test_a_seed_writes_the_same_text_through_the_readable_step(cell):
    from charrnn.text.vocab import CharVocab

    model = tiny(cell, vocab_size=40)
    vocab = CharVocab.from_text("".join(chr(65 + i) for i in range(39)) + "\n")

    def write(readable: bool) -> list[str]:
        s = Sampler(Model(model, vocab), SampleConfig(seed=5, num_samples=2, top_p=0.95))
        if readable:
            s.stepper = model.stepper(2, fused=False)
        s.prime("AB")
        return ["".join(x) for x in zip(*s.generate(300), strict=True)]

    with torch.inference_mode():
        assert write(readable=False) == write(readable=True) == write(readable=False)


@pytest.mark.parametrize("cell", CELLS)
def test_nats_by_pieces_equal_the_loss_of_the_whole_logits(cell, monkeypatch):
    """What evaluation, scoring and the cold-start check read (the recurrent part, then the
    output layer a bounded piece at a time) is the forward pass's cross-entropy."""
    import torch.nn.functional as F

    from charrnn.model import network as model_module

    model = tiny(cell, vocab_size=37)
    idx, targets = torch.randint(0, 37, (3, 29)), torch.randint(0, 37, (3, 29))
    logits, state = model(idx)
    whole = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (3, 29)
    monkeypatch.setattr(model_module, "LOGITS_BUDGET", 37 * 5)  # pieces of 5 rows, one short
    out, state_read = model.read(idx)
    assert torch.allclose(model.nats(out, targets), whole, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(state, state_read, strict=True))


@pytest.mark.parametrize("cell", CELLS)
def test_the_state_is_the_models_own_form_and_survives_the_checkpoint_round_trip(cell):
    model = tiny(cell)
    logits, state = model(torch.randint(0, 11, (3, 7)))
    assert logits.shape == (3, 7, 11)
    assert len(state) == (2 if cell == "lstm" else 1)  # (h, c) or (h,)
    assert all(s.shape == (2, 3, 24) for s in state)
    assert all(s.shape == (2, 5, 24) for s in expand_state(select_streams(state, [1]), 5))
    saved = state_to_list(state)
    restored = state_from_list(model, saved, slice(1, 3))
    for a, b in zip(restored, state, strict=True):
        assert torch.equal(a, b[:, 1:3])
    other = next(c for c in CELLS if (c == "lstm") != (cell == "lstm"))
    with pytest.raises(ValueError):  # a GRU's state is not an LSTM's
        state_from_list(tiny(other), saved)


def test_input_dropout_acts_in_training_only():
    """The embedded input is dropped while training (a new mask each call); evaluation,
    sampling and scoring read it whole, as a model without input dropout would."""
    plain = tiny("lstm")
    dropping = CharRNN(dataclasses.replace(plain.config, input_dropout=0.5)).eval()
    dropping.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 11, (3, 7))
    assert torch.equal(dropping(idx)[0], plain(idx)[0])  # eval mode: no dropout
    dropping.train()
    a, b = dropping(idx)[0], dropping(idx)[0]
    assert not torch.allclose(a, b) and not torch.allclose(a, plain(idx)[0])
    torch.manual_seed(3)
    first = dropping(idx)[0]
    torch.manual_seed(3)
    assert torch.equal(dropping(idx)[0], first)  # the masks come from torch's generator


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.55, 0.7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_drops_its_share_and_scales_the_rest_as_torchs_does(p, dtype):
    """The cheaper mask keeps torch's contract: each value dropped with probability p (in every
    one of the four places a 64-bit draw gives a value, so no place is biased), the rest scaled
    by 1 / (1 - p), gradients through the kept values alone, nothing in evaluation."""
    torch.manual_seed(0)
    n = 400_000
    x = torch.ones(n, dtype=dtype, requires_grad=True)
    y = Dropout(p)(x)
    dropped = y.detach() == 0
    sd = (p * (1 - p) / (n / 4)) ** 0.5  # of one place's share
    for place in range(4):
        assert abs(dropped[place::4].float().mean().item() - p) < 5 * sd
    kept, scale = y.detach()[~dropped].float(), 1 / (1 - drop_share(p))  # p to 1/65536
    assert abs(drop_share(p) - p) <= 2**-17
    assert torch.equal(kept, torch.full_like(kept, float(torch.tensor(scale, dtype=dtype))))
    y.float().sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(y)/d(x) is the mask itself
    assert Dropout(p).eval()(x) is x
    # the mask is fresh each call and torch's generator decides it
    torch.manual_seed(1)
    a = Dropout(p)(x.detach())
    assert not torch.equal(a, Dropout(p)(x.detach()))
    torch.manual_seed(1)
    assert torch.equal(a, Dropout(p)(x.detach()))


def test_dropout_of_one_or_none_and_of_any_shape():
    x = torch.randn(3, 5, 7)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    assert Dropout(0.0)(x) is x
    y = Dropout(0.5)(x)  # an odd count of values, not a multiple of the four a draw gives
    assert y.shape == x.shape and torch.all((y == 0) | torch.isclose(y, 2 * x))
    # a rate a hair from 0 or 1 (a user may give 0.999995) neither drops nothing nor everything
    assert 0 < drop_share(1e-7) <= 2**-16 and 1 - 2**-16 <= drop_share(0.999995) < 1
    torch.manual_seed(0)
    kept = Dropout(0.999995)(torch.ones(1_000_000)) != 0
    assert 0 < kept.sum() < 100


@pytest.mark.parametrize("cell", CELLS)
def test_a_stack_in_training_is_one_layer_kernels_with_charrnns_mask_between(cell):
    """Training a stack on a CPU, dropout between layers is charrnn's mask (the kernel's own is
    PyTorch's slow one): the read, its state and its gradients are those of one-layer kernels of
    the same weights with Dropout between them, drawing the same masks from the same seed."""
    plain = tiny(cell, num_layers=3)
    model = CharRNN(dataclasses.replace(plain.config, dropout=0.3, input_dropout=0.1)).train()
    model.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 11, (4, 9))
    start = tuple(torch.randn_like(s) for s in model.init_state(4))
    torch.manual_seed(7)
    out, state = model.read(idx, start)  # (B, T, H)
    out.square().sum().backward()

    names, ones = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), []
    for layer, width in enumerate(
        (model.config.embedding_dim, 24, 24)
    ):  # one layer of the same kind, the same weights
        ones.append(type(model.rnn)(width, 24, batch_first=True))
        ones[-1].load_state_dict(dict(zip(names, model.layer_weights(layer), strict=True)))
    torch.manual_seed(7)  # the same draws in the same order: input, then between each two layers
    x, ref_state = model.drop_in(model.embed(idx)), []
    for layer, one in enumerate(ones):
        hx = tuple(s[layer : layer + 1] for s in start)
        x = Dropout(0.3)(x) if layer > 0 else x
        x, after = one(x, hx if cell == "lstm" else hx[0])
        ref_state.append(after if cell == "lstm" else (after,))
    x.square().sum().backward()
    assert torch.equal(out, x)
    for a, b in zip(state, map(torch.cat, zip(*ref_state, strict=True)), strict=True):
        assert torch.equal(a, b)
    ours = [w.grad for layer in range(3) for w in model.layer_weights(layer)]
    for a, b in zip(ours, (w.grad for one in ones for w in one.parameters()), strict=True):
        torch.testing.assert_close(a, b)
    torch.manual_seed(7)  # and the mask between does act: without it the read differs
    model.drop_between.p = 0.0
    assert not torch.allclose(model.read(idx, start)[0], out)


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_shapes_are_the_models(cell):
    model = tiny(cell, num_layers=3)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert parameter_shapes(model.config) == shapes
    assert parameter_count(model.config) == model.num_params()


def test_lstm_gates_behave_as_the_essays_say():
    c, zeros = torch.full((1, 3), 5.0), torch.zeros(1, 12)
    open_belt = zeros.clone()
    open_belt[:, 3:6] = 50.0  # forget gate wide open; input gate at 0.5 with a zero candidate
    probe = {}
    h, c_new = lstm_step(open_belt, zeros, (torch.zeros(1, 3), c), probe)
    torch.testing.assert_close(c_new, c)  # the belt carries the memory unchanged
    assert set(probe) == {"forget", "input", "candidate", "output", "cell", "hidden"}
    torch.testing.assert_close(h, 0.5 * torch.tanh(c))  # output gate at 0.5 shows half the belt
    shut = zeros.clone()
    shut[:, 3:6] = -50.0  # forget gate shut: the old memory is gone
    _, c_new = lstm_step(shut, zeros, (torch.zeros(1, 3), c))
    torch.testing.assert_close(c_new, torch.zeros_like(c))


def test_gru_update_gate_keeps_or_replaces_the_memory():
    h, zeros = torch.full((1, 3), 0.7), torch.zeros(1, 9)
    keep = zeros.clone()
    keep[:, 3:6] = 50.0  # update gate at 1: h is kept whatever the candidate
    probe = {}
    (h_new,) = gru_step(keep, zeros, (h,), probe)
    torch.testing.assert_close(h_new, h)
    assert set(probe) == {"reset", "update", "candidate", "hidden"}
    replace = zeros.clone()
    replace[:, 3:6] = -50.0  # update gate at 0: h becomes the candidate, tanh(0) here
    (h_new,) = gru_step(replace, zeros, (h,))
    torch.testing.assert_close(h_new, torch.zeros_like(h))


def test_the_forget_gate_bias_is_the_lstms_alone():
    lstm = CharRNN(ModelConfig(vocab_size=11, cell="lstm", **TINY_MODEL))
    _, _, b_ih, b_hh = lstm.layer_weights(1)
    assert torch.all(b_ih[24:48] + b_hh[24:48] == 1.0)
    for cell in ("gru", "rnn"):  # PyTorch's own init (within 1/sqrt(H)): no gate starts open
        model = CharRNN(ModelConfig(vocab_size=11, cell=cell, **TINY_MODEL))
        assert model.layer_weights(0)[2].abs().max() < 1.0


@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_sizes_give_every_cell_about_the_lstms_parameter_count(size):
    counts = {
        cell: parameter_count(for_cell(PRESETS[size], cell, 65).model_config(65, cell))
        for cell in CELLS
    }
    for cell in ("gru", "rnn"):
        assert abs(counts[cell] / counts["lstm"] - 1) < 0.02, counts
    assert for_cell(PRESETS[size], "rnn", 65).hidden_size > PRESETS[size].hidden_size


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_trains_at_its_own_peak_rate_and_an_lr_given_wins(tmp_path, cell):
    medium = PRESETS["medium"]  # the preset whose GRU learns best at another rate than its LSTM
    gru = medium.lr if medium.gru_lr is None else medium.gru_lr
    rate = {"lstm": medium.lr, "gru": gru, "rnn": gru * RNN_LR_SCALE}[cell]
    text, train = encode_text(make_text(3000), "t"), {"batch_size": 4, "seq_len": 16}

    def lr(name: str, **given) -> float:
        run = RunDir(tmp_path / name)
        opened = start(text, run, size="medium", cell=cell, model=TINY_MODEL, train=train | given)
        return opened.trainer.config.lr

    assert lr("preset") == pytest.approx(rate)
    assert lr("given", lr=3e-3) == 3e-3


class FusedStepper:
    """The sampler's stepper done with the fused kernel, one character per call: the reference."""

    def __init__(self, model):
        self.model = model

    def start(self, state):
        self.s = state

    def __call__(self, idx):
        logits, self.s = self.model(idx[:, None], self.s)  # (B, 1, V)
        return logits[:, 0]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "cfg", [{"temperature": 1.0}, {"temperature": 0.7, "top_k": 5}, {"temperature": (0, 1.5)}]
)
def test_sampling_through_the_readable_step_writes_what_the_fused_kernel_writes(cell, cfg):
    model = tiny(cell, vocab_size=40)
    from charrnn.text.vocab import CharVocab

    vocab = CharVocab.from_text("".join(chr(65 + i) for i in range(39)) + "\n")

    def write(reference: bool) -> list[str]:
        s = Sampler(Model(model, vocab), SampleConfig(seed=11, num_samples=3, **cfg))
        if reference:
            s.stepper = FusedStepper(model)
        s.prime("ABC")
        return ["".join(x) for x in zip(*s.generate(200), strict=True)]

    with torch.inference_mode():
        assert write(reference=False) == write(reference=True)


# ---------------------------------------------------------------------------------------------
# Each cell through the product: the invariants the LSTM's tests hold, for the GRU and the RNN.


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_learns_resumes_exactly_samples_and_scores(tmp_path, text, cell):
    # dropout on (of the input too), so the random state must come back too; past an epoch, so
    # that the resumed
    # half crosses the epoch rollover
    steps = len(make_trainer(text, tmp_path / "probe", cell=cell).train_batches) + 7
    whole = make_trainer(text, tmp_path / "whole", cell=cell, max_steps=steps)
    whole.model.drop.p = whole.model.drop_in.p = 0.2
    events = drain(whole)
    first = next(e for e in events if isinstance(e, StepEvent)).loss
    assert whole.pos.best_val < 0.75 * first  # it learns

    cut = make_trainer(text, tmp_path / "cut", cell=cell, max_steps=steps)
    cut.model.drop.p = cut.model.drop_in.p = 0.2
    for event in cut.run():
        if isinstance(event, StepEvent) and event.step == steps // 2 + 3:  # mid-epoch, not at eval
            cut.request_stop()
    assert cut.pos.step == steps // 2 + 3
    payload = checkpoint.load(cut.run_dir.last)
    assert payload["model_config"]["cell"] == cell
    torch.manual_seed(12345)  # a resumed process starts with some other RNG state
    resumed = make_trainer(text, tmp_path / "cut", cell=cell, seed=99, max_steps=steps)
    resumed.model.drop.p = resumed.model.drop_in.p = 0.2
    resumed.restore(checkpoint.run_state(payload, checkpoint.restore(payload, "x")))
    events = drain(resumed)
    assert isinstance(events[-1], DoneEvent) and events[-1].reason == "steps"
    for (name, p), q in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    assert whole.pos.best_val == resumed.pos.best_val

    trained = checkpoint.restore(checkpoint.load(whole.run_dir.best), whole.run_dir.best)
    model, vocab = trained.net, trained.vocab
    assert model.config.cell == cell

    def sample(seed):
        s = Sampler(Model(model, vocab), SampleConfig(temperature=0.8, seed=seed, num_samples=2))
        s.prime("ANNA:")
        return ["".join(x) for x in zip(*s.generate(80), strict=True)]

    assert sample(1) == sample(1) and sample(1) != sample(2)
    assert 0 < score_text(Model(model, vocab), text[:300]) / 300 < first


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_the_cli_trains_resumes_samples_scores_and_lists_each_cell(env, corpus_file, cell):
    options = ["--cell", cell, "--steps", "20", "--name", "c", "--input-dropout", "0.2"]
    r = env(["train", str(corpus_file), *options, *TINY_CLI])
    assert r.exit_code == 0, r.stderr
    assert f"2x24 {cell.upper()}" in r.stderr and "input dropout 0.2; batch" in r.stderr
    r = env(["train", "--resume", "c", "--steps", "30"])
    assert r.exit_code == 0, r.stderr
    r = env(["train", "--resume", "c", "--steps", "40", "--cell", "lstm"])
    assert r.exit_code == 2 and "--cell is not taken with --resume" in r.stderr
    r = env(["sample", "-c", "c", "--seed", "1", "-l", "50"])
    assert r.exit_code == 0 and len(r.stdout) >= 50, r.stderr
    r = env(["score", "-c", "c", str(corpus_file)])
    assert r.exit_code == 0 and float(r.stdout.split()[0]) > 0, r.stderr
    r = env(["runs", "--json"])
    (record,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert (record["cell"], record["shape"], record["step"]) == (cell, "2x24", 30)
    saved = checkpoint.load(Path(record["folder"]) / "last.pt")
    assert record["dropout"] == saved["model_config"]["dropout"]
    assert record["input_dropout"] == saved["model_config"]["input_dropout"] == 0.2  # resumed so
    assert record["lr"] == saved["train_config"]["lr"]  # the cell's own peak rate


def test_an_unknown_cell_is_a_usage_error(env, corpus_file):
    r = env(["train", str(corpus_file), "--cell", "transformer"])
    assert r.exit_code == 2 and "transformer" in r.stderr and not r.stdout


# ---------------------------------------------------------------------------------------------
# Checkpoints written before the cells (format 1) keep loading, as LSTMs, and resume exactly.


def test_a_format_1_checkpoint_samples_scores_and_resumes_as_before(tmp_path):
    expected = json.loads((V1 / "expected.json").read_text())
    payload = checkpoint.load(V1 / "last.pt")
    assert payload["format_version"] == checkpoint.FORMAT_VERSION
    trained = checkpoint.restore(payload, V1 / "last.pt")
    model, vocab = trained.net, trained.vocab
    assert model.config.cell == "lstm"
    s = Sampler(Model(model, vocab), SampleConfig(temperature=0.8, seed=5, num_samples=2))
    s.prime(expected["prime"])
    # the text this version's draw writes from it (the weights as read are held by the score)
    assert ["".join(x) for x in zip(*s.generate(200), strict=True)] == expected["samples"]
    text = make_text()
    assert score_text(Model(model, vocab), text[:500]) == pytest.approx(
        expected["score_text_first500"], rel=1e-5
    )
    # what wrote it (in float32, as every run then), 10 steps more
    resumed = make_trainer(text, tmp_path / "v1", max_steps=40, precision="float32")
    state = checkpoint.run_state(payload, checkpoint.restore(payload, "x"))
    assert state.config.precision == "float32"  # what a resume of it reads
    resumed.restore(state)
    drain(resumed)
    assert resumed.model.head.bias.tolist() == pytest.approx(expected["head_bias_after_40"], 1e-6)


def test_the_runs_listing_reads_a_format_1_run_as_an_lstm(env, tmp_path):
    import shutil

    run = tmp_path / "checkpoints" / "old"
    run.mkdir(parents=True)
    shutil.copy(V1 / "last.pt", run / "last.pt")
    r = env(["runs", "--json"])
    record = json.loads(r.stdout)
    assert (record["cell"], record["shape"], record["step"]) == ("lstm", "2x24", 30)
