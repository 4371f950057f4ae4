"""Whether a model can be trained in the memory this machine has free: said before it is built,
not after minutes of swapping and a kill by the system's out-of-memory killer."""

from __future__ import annotations

import torch

from charrnn.devices import free_memory
from charrnn.errors import ConfigError
from charrnn.model.config import GATES, STATES, ModelConfig, parameter_count

# Bytes a parameter takes in training at the least: float32 weights, their gradients and Adam's
# two moments. (A step's activations, bfloat16 copies and a save's copy add more: a 2x2048 LSTM,
# 51M parameters, peaked at 1.49 GB, about 22 bytes a parameter above torch's own 0.35 GB.)
TRAINING_BYTES_PER_PARAMETER = 16


# A step keeps for its backward pass, per character, layer and unit, at the least each gate's and
# the candidate's value and the states (the LSTM's cell and hidden), in 2-byte bfloat16 at the
# least. (A 2x4096 LSTM at a batch of 240x1024 asked for 42.4 GB in one allocation.)
ACTIVATION_BYTES = 2


def refuse_too_large(
    shape: ModelConfig, device: torch.device | str, batch_size: int = 1, seq_len: int = 1
) -> None:
    """A ConfigError where training a `shape` model on batches of `batch_size` x `seq_len`
    characters cannot fit the memory free on `device`."""
    device = torch.device(device)
    n = parameter_count(shape)
    weights = n * TRAINING_BYTES_PER_PARAMETER
    per_unit = len(GATES[shape.cell]) + 1 + len(STATES[shape.cell])  # gates, candidate, states
    kept = per_unit * shape.num_layers * shape.hidden_size
    step = batch_size * seq_len * kept * ACTIVATION_BYTES
    need, free = weights + step, free_memory(device)
    if free is not None and need > free:
        digits = 1 if _bytes(need) != _bytes(free) else 2  # never "2.4 GB, more than 2.4 GB"
        count = f"{n / 1e9:.2f} billion" if n >= 1e9 else f"{n / 1e6:.1f} million"
        raise ConfigError(
            f"a {shape.num_layers}x{shape.hidden_size} {shape.cell.upper()} has {count} "
            f"parameters, and a batch of {batch_size}x{seq_len}: training it takes "
            f"{_bytes(need, digits)} of memory at least ({_bytes(weights)} for its weights, "
            f"their gradients and the optimizer's two moments, {_bytes(step)} for what a step "
            f"keeps for its backward pass), more than the {_bytes(free, digits)} free on "
            f"{device.type}; give "
            "a smaller --hidden or --layers, or a smaller --batch-size or --seq-len"
        )


def _bytes(n: int, digits: int = 1) -> str:
    return f"{n / 1e9:.{digits}f} GB" if n >= 1e9 else f"{n / 1e6:.{digits - 1}f} MB"
