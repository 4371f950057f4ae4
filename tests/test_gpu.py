"""The CUDA paths: training, the one-character step, sampling, scoring, the speed measurement and a
checkpoint written on the GPU and read on the CPU. Skipped where there is no CUDA (CI never has
one); run on a lent GPU machine with `pytest tests/test_gpu.py`."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_MODEL, TINY_TRAIN, make_text

from charrnn import checkpoint
from charrnn.model.config import ModelConfig
from charrnn.model.trained import Model
from charrnn.text.encoded import encode_text
from charrnn.train.speed import training_speed
from charrnn.train.start import start
from charrnn.train.trainer import DoneEvent, EvalEvent, TrainConfig
from charrnn.use.sampler import SampleConfig, Sampler
from charrnn.use.scoring import score_text

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    """A tiny LSTM trained 60 steps on the GPU: its folder and its validation losses."""
    folder = tmp_path_factory.mktemp("gpu") / "run"
    corpus = encode_text(make_text(12_000), "synthetic")
    train = {**TINY_TRAIN, "max_steps": 60, "eval_every": 20}
    trainer = start(
        corpus, folder, size="small", model=TINY_MODEL, train=train, device="cuda"
    ).trainer
    assert trainer.tune_threads is False  # threads are the CPU's business
    losses = [e.record["val_loss"] for e in trainer.run() if isinstance(e, EvalEvent)]
    return folder, losses


def test_training_on_the_gpu_learns(gpu_run):
    _, losses = gpu_run
    assert losses[-1] < losses[0] - 0.2


def test_a_gpu_checkpoint_loads_on_the_cpu_and_agrees_with_the_gpu(gpu_run):
    folder, _ = gpu_run
    payload = checkpoint.load(folder / "best.pt")  # weights_only, mapped to the CPU
    trained = checkpoint.restore(payload, folder / "best.pt")
    model, vocab = trained.net, trained.vocab
    ids = torch.tensor([vocab.encode(make_text(300, seed=3))])
    cpu_logits, _ = model(ids)
    gpu_logits, _ = model.to("cuda")(ids.to("cuda"))
    torch.testing.assert_close(gpu_logits.cpu(), cpu_logits, rtol=1e-3, atol=1e-3)
    model.to("cpu")


def test_the_step_equals_the_fused_kernel_on_the_gpu(gpu_run):
    folder, _ = gpu_run
    trained = checkpoint.restore(checkpoint.load(folder / "best.pt"), folder)
    model, vocab = trained.net, trained.vocab
    model = model.to("cuda")
    ids = torch.tensor([vocab.encode(make_text(100, seed=4))], device="cuda")
    fused, _ = model(ids)
    step = model.stepper(1)
    stepped = torch.stack([step(ids[:, t]) for t in range(ids.shape[1])], 1)
    torch.testing.assert_close(stepped, fused, rtol=1e-3, atol=1e-3)


def test_sampling_and_scoring_on_the_gpu(gpu_run):
    folder, _ = gpu_run
    trained = checkpoint.restore(checkpoint.load(folder / "best.pt"), folder)
    model, vocab = trained.net, trained.vocab
    text = make_text(400, seed=5)
    on_cpu = score_text(Model(model, vocab), text)
    model = model.to("cuda")
    torch.testing.assert_close(score_text(Model(model, vocab), text), on_cpu, rtol=1e-3, atol=1e-3)

    def sample(seed: int) -> str:
        s = Sampler(Model(model, vocab), SampleConfig(temperature=0.8, seed=seed, num_samples=3))
        s.prime("ANNA:")
        return "|".join("".join(col) for col in zip(*s.generate(80), strict=True))

    assert sample(7) == sample(7) and sample(7) != sample(8)


def test_the_speed_measurement_runs_on_the_gpu():
    config = ModelConfig(vocab_size=30, embedding_dim=8, hidden_size=32, num_layers=1)
    assert training_speed(config, TrainConfig(batch_size=8, seq_len=16, lr=1e-3), "cuda") > 0


def test_a_gpu_run_resumes_on_the_cpu(gpu_run):
    from charrnn.train.resume import resume

    folder, _ = gpu_run
    corpus = encode_text(make_text(12_000), "synthetic")
    trainer = resume(
        folder, lambda *_: corpus, corpus_specs=["synthetic"], train={"max_steps": 70}
    ).trainer
    events = list(trainer.run())
    assert isinstance(events[-1], DoneEvent) and events[-1].step == 70
