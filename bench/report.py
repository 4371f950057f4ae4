"""The line above every table a benchmark prints: the command, the date and the machine.

docs/ keeps each table under this line as printed, so a table is regenerated, not retyped.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_isa() -> str:
    """The CPU's widest vector instructions, from /proc/cpuinfo's flags: the same model name covers
    machines with AVX-512 and machines with AVX2 alone, 2-3x apart in these benchmarks."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    if "avx512f" in flags:
        extras = [
            name for flag, name in (("avx512_bf16", "BF16"), ("amx_tile", "AMX")) if flag in flags
        ]
        return "AVX-512" + "".join(f", {e}" for e in extras)
    return "AVX2" if "avx2" in flags else ""


def cores() -> str:
    """Cores this process may run on, and the machine's count where that differs (`taskset`)."""
    total = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    return f"{usable} cores" if usable == total else f"{usable} of {total} cores"


def header(device: str = "cpu") -> str:
    """One Markdown line: the command as run, the date, the CPU (and the GPU where `device` is
    cuda), Python and torch."""
    script = Path(sys.argv[0])
    command = shlex.join(["python", f"bench/{script.name}", *sys.argv[1:]])
    try:
        torch = importlib.metadata.version("torch")  # without importing it: scale.py times that
    except importlib.metadata.PackageNotFoundError:
        torch = "not installed"
    # The kernels' instruction sets, where limited (e.g. an AVX2 machine seen on an AVX-512 one)
    limits = [f"{k}={os.environ[k]}" for k in ISA_LIMITS if os.environ.get(k)]
    limited = f", with {' '.join(limits)}" if limits else ""
    isa = f", {isa}" if (isa := vector_isa()) else ""
    machine = f"{cpu_model()} ({cores()}{isa}{limited})"
    if device == "cuda":
        import torch as gpu_torch  # `torch` above is its version's string

        gpu = gpu_torch.cuda.get_device_name()
        machine = f"{gpu} GPU (CUDA {gpu_torch.version.cuda}), {machine}"
    return (
        f"`{command}`: {time.strftime('%Y-%m-%d %H:%M %Z')}, {machine}, "
        f"Python {platform.python_version()}, torch {torch}\n"
    )
