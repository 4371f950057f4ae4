"""Whether a model can be trained in the memory this machine has free: said before it is built,
not after minutes of swapping and a kill by the system's out-of-memory killer."""

from __future__ import annotations

import torch

from charrnn.devices import free_memory
from charrnn.errors import ConfigError
from charrnn.model.config import ModelConfig, parameter_count

# Bytes a parameter takes in training at the least: float32 weights, their gradients and Adam's
# two moments. (A step's activations, bfloat16 copies and a save's copy add more: a 2x2048 LSTM,
# 51M parameters, peaked at 1.49 GB, about 22 bytes a parameter above torch's own 0.35 GB.)
TRAINING_BYTES_PER_PARAMETER = 16


def refuse_too_large(shape: ModelConfig, device: torch.device | str) -> None:
    """A ConfigError where training a `shape` model cannot fit the memory free on `device`."""
    device = torch.device(device)
    n = parameter_count(shape)
    need, free = n * TRAINING_BYTES_PER_PARAMETER, free_memory(device)
    if free is not None and need > free:
        count = f"{n / 1e9:.2f} billion" if n >= 1e9 else f"{n / 1e6:.1f} million"
        raise ConfigError(
            f"a {shape.num_layers}x{shape.hidden_size} {shape.cell.upper()} has {count} "
            f"parameters: training it takes {_bytes(need)} of memory at least "
            f"({TRAINING_BYTES_PER_PARAMETER} bytes a parameter: its weights, their gradients "
            f"and the optimizer's two moments), more than the {_bytes(free)} free on "
            f"{device.type}; give a smaller --hidden or --layers"
        )


def _bytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"
