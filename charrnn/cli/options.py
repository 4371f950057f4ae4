"""What `sample`, `score` and `inspect` share: their options, and how they restore a model."""

from __future__ import annotations

import click

from charrnn.cli.common import Encoding, Text, say
from charrnn.defaults import ENCODING, MAX_SEED, TEMPERATURE, UNKNOWN
from charrnn.text.vocab import UNKNOWN_POLICIES


class Temperatures(click.ParamType):
    """`0.8`, or a schedule `0.5,1.0,0.8` cycled per character."""

    name = "T[,T...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            temps = tuple(float(t) for t in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a temperature or a comma-separated list of them")
        if any(not 0 <= t < float("inf") for t in temps):  # also nan
            self.fail(f"{value!r}: temperatures must be 0 or more, and finite")
        return temps


def temperature_option(help: str):
    """-t/--temp, as `sample` and `inspect --sample` take it."""
    return click.option(
        "-t",
        "--temp",
        "temperature",
        type=Temperatures(),
        default=str(TEMPERATURE),
        help=help,
    )


def seed_option(help: str):
    return click.option("-s", "--seed", type=click.IntRange(0, MAX_SEED), help=help)


def prime_option(help: str):
    return click.option("-p", "--prime", type=Text(), default="", show_default=False, help=help)


def unknown_option(help: str):
    """--unknown: what to do with characters the model never saw."""
    return click.option(
        "--unknown",
        type=click.Choice(UNKNOWN_POLICIES),
        default=UNKNOWN,
        help=help,
    )


def encoding_option(help: str = "Encoding of FILE."):
    return click.option("--encoding", type=Encoding(), default=ENCODING, help=help)


def json_option(help: str):
    return click.option("--json", "as_json", is_flag=True, help=help)


def quiet_option(help: str):
    return click.option("-q", "--quiet", is_flag=True, help=help)


def unescape(text: str) -> str:
    r"""`\n`, `\t` and `\\` typed on a command line, as the characters they stand for."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def load_model(checkpoint: str | None, checkpoint_dir, device: str | None):
    """The checkpoint -c names (or the latest run's), restored onto --device (None: left on the
    CPU, for a command that checks more before it picks one): (path, the model whole)."""
    from charrnn import checkpoint as ckpt
    from charrnn import runs
    from charrnn.devices import resolve_device

    path = runs.resolve_checkpoint(checkpoint, checkpoint_dir, note=say)
    model = ckpt.load_model(path)
    if device is not None:
        model = model.to(resolve_device(device))
    return path, model
