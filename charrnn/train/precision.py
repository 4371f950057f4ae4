"""The training step's arithmetic, checked: bfloat16 only where its gradients are float32's.

bfloat16 mixed precision is chosen by what the CPU has (devices.autocast_dtype). That says the
arithmetic is fast, not that the kernel behind it is right: PyTorch 2.13's bfloat16 LSTM on a CPU
with AMX (oneDNN's brgemm kernel) computes wrong gradients for layers 1024 wide and wider, whose
weights it lays out in blocks of 64 (docs/performance.md, "a fault of the bfloat16 LSTM"); a
model trained on them learns far less a step, and nothing says why. So before a run trains in
bfloat16, one batch of its own shape goes through the step in both precisions, and bfloat16 is
kept only where the two gradients agree.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from charrnn.devices import arithmetic, autocast_dtype
from charrnn.errors import ConfigError
from charrnn.model.config import ModelConfig
from charrnn.model.network import CharRNN

# How far bfloat16's gradient may be from float32's, relative to float32's size: a right kernel
# reads 0.5-1.6% (bfloat16 keeps 8 bits of each number), the faulty one 18-100%.
AGREEMENT = 0.08
PROBE_SEED = 12345  # the probe's batch and weights: the same whatever the run's seed
# Characters a stream in the probe's batch (the run's streams, at most this many of its): the
# fault shows at any length, and the probe's cost grows with it (float32 is the slow half).
PROBE_CHARS = 8


def step_arithmetic(
    model: CharRNN, precision: str, batch_size: int, seq_len: int
) -> tuple[torch.dtype | None, str]:
    """The dtype a run of `model` over batches (batch_size, seq_len) trains in for `precision`
    (None: float32 all through), and why where it is not what `precision` would give alone ("":
    it is). bfloat16 asked for by name where its gradients are wrong is a ConfigError."""
    dtype = autocast_dtype(precision, model.device)
    if dtype is None or gradients_agree(model, batch_size, seq_len, dtype):
        return dtype, ""
    c = model.config
    shape = f"{c.num_layers}x{c.hidden_size} {c.cell.upper()}"
    wrong = f"bfloat16 does not give float32's gradients for a {shape} on this CPU"
    if precision != "auto":
        raise ConfigError(
            f"{wrong} (a fault of PyTorch's bfloat16 kernel here); give --precision float32 or auto"
        )
    return None, f"float32, as {wrong}"


def gradients_agree(model: CharRNN, batch_size: int, seq_len: int, dtype: torch.dtype) -> bool:
    """Whether one training step of a model shaped as `model` (its weights drawn afresh), over
    batch_size streams (of PROBE_CHARS characters at most), gives the same gradients autocast to
    `dtype` as in float32, within AGREEMENT. Cached by shape: the kernel depends on them alone."""
    c = model.config
    key = (c.cell, c.vocab_size, c.embedding_dim, c.hidden_size, c.num_layers)
    return _agree(key, batch_size, min(seq_len, PROBE_CHARS), dtype, str(model.device))


@functools.cache
def _agree(key: tuple, batch_size: int, seq_len: int, dtype: torch.dtype, device: str) -> bool:
    cell, vocab_size, embedding_dim, hidden_size, num_layers = key
    # The run's random state is not touched: the probe draws from its own generator, under a
    # forked global one (the kernels' own initialisation draws from it).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PROBE_SEED)
        net = CharRNN(
            ModelConfig(
                vocab_size=vocab_size,
                embedding_dim=embedding_dim,
                hidden_size=hidden_size,
                num_layers=num_layers,
                # no dropout of any kind: the two passes would draw different masks, and their
                # gradients would differ whatever the kernel
                dropout=0.0,
                input_dropout=0.0,
                cell=cell,
            )
        ).to(device)
        g = torch.Generator().manual_seed(PROBE_SEED)
        x = torch.randint(vocab_size, (batch_size, seq_len + 1), generator=g).to(device)
        exact = _gradients(net, x, None)
        try:
            fast = _gradients(net, x, dtype)
        except RuntimeError:  # a kernel that refuses the dtype here (oneDNN without AVX-512)
            return False
    return distance(exact, fast) <= AGREEMENT


def _gradients(net: CharRNN, x: torch.Tensor, dtype: torch.dtype | None) -> list[torch.Tensor]:
    """The recurrent layers' weight gradients of one step's loss over x (B, T+1), autocast to
    `dtype` (None: float32), as the trainer's step computes them."""
    with arithmetic(x.device, dtype):
        logits, _ = net(x[:, :-1])  # (B, T, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
    return list(torch.autograd.grad(loss, list(net.rnn.parameters())))


def distance(exact: list[torch.Tensor], fast: list[torch.Tensor]) -> float:
    """The largest, over the tensors, of |fast - exact| / |exact| (norms): 0 for the same."""
    return max(
        ((f.float() - e).norm() / e.norm().clamp_min(1e-30)).item()
        for e, f in zip(exact, fast, strict=True)
    )
