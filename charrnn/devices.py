"""Where a model runs: a device's name ("auto", "cpu", "cuda", "mps") as a torch.device.

torch is imported when a device is asked for: the command line imports this at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from charrnn.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str, index: int = 0) -> torch.device:
    """`name` as a torch.device, "auto" picking cuda, then mps, then cpu; `index` picks this
    process's GPU under torchrun. A device asked for that is not here is a ConfigError."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", index)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "cuda":
        return torch.device("cuda", index)
    if name == "mps" and not (torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for, but MPS is not available")
    return torch.device(name)
