"""Plumbing shared by the commands: error mapping, units, shared options, devices, signals."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sys
from pathlib import Path

import click

from charrnn.errors import CharRNNError

CHECKPOINT_DIR_ENV = "CHARRNN_CHECKPOINT_DIR"
CACHE_DIR_ENV = "CHARRNN_CACHE_DIR"


def user_errors(fn):
    """Turn errors a user can cause into `Error: ...` and exit 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CharRNNError as e:
            raise click.ClickException(str(e)) from None

    return wrapper


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '1.5h' or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"{text!r} is not a duration; try 90s, 10m or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        seconds = parse_duration(value)
        if seconds <= 0:
            self.fail("must be more than zero", param, ctx)
        return seconds


def checkpoint_dir_option(fn):
    return click.option(
        "--checkpoint-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default="checkpoints",
        envvar=CHECKPOINT_DIR_ENV,
        show_default=True,
        show_envvar=True,
        help="Base folder of the run folders.",
    )(fn)


def cache_dir() -> Path:
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charrnn"


def resolve_device(name: str, index: int = 0):
    """--device to a torch.device; `index` picks this process's GPU under torchrun."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", index)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise click.ClickException("--device cuda was asked for, but no CUDA GPU is available")
    if name == "cuda":
        return torch.device("cuda", index)
    if name == "mps" and not (torch.backends.mps.is_available()):
        raise click.ClickException("--device mps was asked for, but MPS is not available")
    return torch.device(name)


def device_option(default: str, why: str = ""):
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda", "mps"]),
        default=default,
        show_default=True,
        help=f"Where to run: auto picks cuda, then mps, then cpu.{why}",
    )


def download_bar(quiet: bool):
    """A progress callback for downloads: a tqdm bar on stderr, made on first use."""
    bar = phase_bar(quiet)
    return lambda done, total: bar("download", done, total)


def phase_bar(quiet: bool, min_total: int = 1 << 26):
    """A progress callback (phase, done, total) in bytes: one tqdm bar per phase on stderr, shown
    only for work big enough to wait for (64 MB and up, or a download of any size)."""
    bar, current = None, None

    def progress(phase: str, done: int, total: int | None) -> None:
        nonlocal bar, current
        if phase != current:
            if bar is not None:
                bar.close()
            from tqdm import tqdm

            small = phase != "download" and (total or 0) < min_total
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=phase,
                file=sys.stderr,
                disable=quiet or small or not sys.stderr.isatty(),
                leave=False,
            )
            current = phase
        bar.update(done - bar.n)

    return progress


def say(message: str, quiet: bool = False) -> None:
    """A message for the person at the terminal: stderr, never stdout."""
    if not quiet:
        click.echo(message, err=True)


@contextlib.contextmanager
def stop_signals(on_stop):
    """Route SIGINT and SIGTERM to `on_stop` (a second SIGINT interrupts at once)."""
    received: list[int] = []

    def handler(signum, frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        on_stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
