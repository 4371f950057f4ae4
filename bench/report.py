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


def cores() -> str:
    """Cores this process may run on, and the machine's count where that differs (`taskset`)."""
    total = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    return f"{usable} cores" if usable == total else f"{usable} of {total} cores"


def header() -> str:
    """One Markdown line: the command as run, the date, the CPU, Python and torch."""
    script = Path(sys.argv[0])
    command = shlex.join(["python", f"bench/{script.name}", *sys.argv[1:]])
    try:
        torch = importlib.metadata.version("torch")  # without importing it: scale.py times that
    except importlib.metadata.PackageNotFoundError:
        torch = "not installed"
    # The kernels' instruction sets, where limited (e.g. an AVX2 machine seen on an AVX-512 one)
    limits = [f"{k}={os.environ[k]}" for k in ISA_LIMITS if os.environ.get(k)]
    limited = f", with {' '.join(limits)}" if limits else ""
    return (
        f"`{command}`: {time.strftime('%Y-%m-%d %H:%M %Z')}, {cpu_model()} ({cores()}{limited}), "
        f"Python {platform.python_version()}, torch {torch}\n"
    )
