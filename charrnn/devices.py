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
        if torch.version.cuda is None:
            why = (
                f"this torch ({torch.__version__}) is built without CUDA; install a CUDA build "
                "of torch (pytorch.org), or"
            )
        else:
            why = "none is visible (see nvidia-smi and CUDA_VISIBLE_DEVICES); or"
        raise ConfigError(
            f"--device cuda was asked for, but no CUDA GPU is available: {why} "
            "give --device cpu (or auto)"
        )
    if name == "cuda":
        return torch.device("cuda", index)
    if name == "mps" and not (torch.backends.mps.is_available()):
        raise ConfigError(
            "--device mps was asked for, but MPS (an Apple GPU) is not available here; give "
            "--device cpu (or auto)"
        )
    return torch.device(name)


def as_device(device: torch.device | str) -> torch.device:
    """A device a library caller gave (a torch.device, or a name: "cpu", "cuda", "cuda:1", "mps",
    "auto"), checked to be here: a ConfigError, as for --device, where it is not."""
    import torch

    if isinstance(device, str) and device in ("auto", "cuda", "mps"):
        return resolve_device(device)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"{device!r} is not a device: give cpu, cuda, cuda:N, mps or auto"
        ) from None
    if device.type not in ("cpu", "cuda", "mps"):  # meta, xpu, ...: nothing charrnn runs on
        raise ConfigError(
            f"{device} is not a device charrnn runs on: give cpu, cuda, cuda:N or mps"
        )
    if device.type in ("cuda", "mps"):
        resolve_device(device.type)  # is there one at all
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"there is no {device}: {torch.cuda.device_count()} CUDA GPUs here")
    return device


# A training step's arithmetic (TrainConfig.precision).
PRECISIONS = ("auto", "float32", "bfloat16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype a training step on `device` autocasts to for `precision` (None: float32 all
    through). "auto" is bfloat16 only where it is native and fast: a CPU with AVX-512 BF16 or AMX
    that oneDNN may use (ONEDNN_MAX_CPU_ISA can forbid it), never a GPU or MPS; "bfloat16" asked for
    where it would be emulated or is not there is a ConfigError."""
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision == "float32":
        return None
    native = _native_bf16(device)
    if precision == "auto":
        return torch.bfloat16 if native and device.type == "cpu" else None
    if not native:
        raise ConfigError(
            f"precision bfloat16 (this run's or --precision's) needs native bfloat16 arithmetic, "
            f"which {device.type} has not here; give --precision float32 (or auto)"
        )
    return torch.bfloat16


def arithmetic(device: torch.device, dtype: torch.dtype | None):
    """The context a step or a read runs in: autocast to `dtype` (autocast_dtype's), or float32
    all through where it is None."""
    import torch

    return torch.autocast(device.type, dtype or torch.bfloat16, enabled=dtype is not None)


def _native_bf16(device: torch.device) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:  # private probes: a torch without them is taken to have no native bf16
        usable = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # oneDNN may use it here
        fast = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except (AttributeError, RuntimeError):
        return False
    return bool(usable and fast)


def free_memory(device: torch.device) -> int | None:
    """Bytes of memory a new allocation can take on `device` now: a GPU's free memory; on a
    CPU, what the system says is available (MemAvailable), less where this process's control
    group (a container's limit) or its address-space limit (`ulimit -v`) leaves less; None where
    it cannot be told (macOS, mps)."""
    import torch

    if device.type == "cuda":
        try:
            return torch.cuda.mem_get_info(device)[0]
        except RuntimeError:
            return None
    if device.type != "cpu":
        return None
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v2: the group's limit ("max": none) less what it holds now
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                found.append(max(int(limit) - int(f.read().strip()), 0))
    except (OSError, ValueError):
        pass
    if (left := _address_space_left()) is not None:
        found.append(left)
    return min(found, default=None)


def address_space_limit() -> int | None:
    """Bytes of this process's address-space limit (`ulimit -v`); None where there is none."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if limit == resource.RLIM_INFINITY else limit


def _address_space_left() -> int | None:
    """Bytes this process may still map under its address-space limit (`ulimit -v`); None where
    there is none, or it cannot be told."""
    if (limit := address_space_limit()) is None:
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):  # what the process has mapped already
                    return max(limit - int(line.split()[1]) * 1024, 0)
    except (OSError, ValueError, IndexError):
        pass
    return None
