"""What the commands parse: option types, the options several commands share, and text typed on
a command line."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import click
from click.core import ParameterSource

from charrnn.defaults import CHECKPOINT_DIR, ENCODING, MAX_SEED, TEMPERATURE, UNKNOWN
from charrnn.errors import CharRNNError
from charrnn.fsutil import expand_home
from charrnn.text.decode import line_ends_as_read
from charrnn.text.vocab import UNKNOWN_POLICIES

CHECKPOINT_DIR_ENV = "CHARRNN_CHECKPOINT_DIR"


def given(ctx: click.Context, name: str) -> bool:
    """Whether option `name` was given (on the command line, or through its environment
    variable), not left at its default."""
    source = ctx.get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


MAX_DURATION = 100 * 365.25 * 86400  # seconds: a budget beyond it is a mistake


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '1.5h' or plain seconds -> seconds: hours, minutes and seconds in
    that order, each at most once."""
    given, text = text, text.strip().lower()
    number = r"(\d+(?:\.\d+)?|\.\d+)"  # 90, 1.5, .5
    if re.fullmatch(number, text):
        return float(text)
    found = re.fullmatch(f"(?:{number}h)?(?:{number}m)?(?:{number}s)?", text)
    if not text or found is None:
        raise click.BadParameter(
            f"{given!r} is not a duration; try 90s, 10m or 1h30m (units h, m and s, in that order)"
        )
    return sum(float(n) * unit for n, unit in zip(found.groups(), (3600, 60, 1), strict=True) if n)


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        seconds = parse_duration(value)
        if seconds <= 0:
            self.fail("must be more than zero", param, ctx)
        if seconds > MAX_DURATION:  # 400 digits of hours: no clock (or float) reaches its end
            self.fail(f"{value!r} is longer than any run can take (a century at most)", param, ctx)
        return seconds


class Whole(click.IntRange):
    """click.IntRange, whose refusal of 1.5 says "not a valid integer", not "integer range"."""

    name = "integer"


class Number(click.FloatRange):
    """click.FloatRange of finite numbers: every comparison with nan is false, so a range lets it
    through, and inf (or 1e400) passes a range without an upper end; the library then fails on
    either with a traceback (an inf epoch budget has no step count)."""

    name = "number"  # "'abc' is not a valid number", not "float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number", param, ctx)
        if number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Encoding(click.ParamType):
    """A text encoding Python knows; a codec that is not one (hex, base64, rot13...) or an unknown
    name is a usage error. For every command's --encoding."""

    name = "ENCODING"

    def convert(self, value, param, ctx):
        from charrnn.text.decode import text_encoding

        try:
            text_encoding(value)
        except CharRNNError as e:
            self.fail(str(e), param, ctx)
        return value


class Text(click.ParamType):
    """Text given on the command line, as UTF-8. Python passes on the bytes its locale's encoding
    cannot decode as surrogate escapes: all beyond ASCII in the C locale, where they are UTF-8
    text all the same; bytes that are not UTF-8 are a usage error that names the option, never
    text that cannot be printed or put in JSON later."""

    name = "TEXT"

    def convert(self, value, param, ctx):
        try:
            raw = value.encode("utf-8", "surrogateescape")  # the bytes as typed
            return raw.decode("utf-8")
        except UnicodeError as e:  # (encoding: a surrogate no byte was escaped as)
            typed = isinstance(e, UnicodeEncodeError)
            at = 1 + (e.start if typed else len(raw[: e.start].decode("utf-8")))
            self.fail(
                f"holds a byte that is not UTF-8 text (at character {at}); give the text in UTF-8",
                param,
                ctx,
            )


class Prime(Text):
    """Text a model reads first, typed on the command line: its line ends read as a file's are
    (\\r\\n or a lone \\r as \\n), so that a prime copied from a Windows file is text the model
    knows, as the file itself would be."""

    def convert(self, value, param, ctx):
        return line_ends_as_read(super().convert(value, param, ctx))


def not_empty(ctx, param, value):
    """An option's or argument's callback: an empty value (`-o ''`, often an unset shell variable)
    is a usage error, never a silent default (the current folder, stdin)."""
    if value == "" or (isinstance(value, tuple) and "" in value):
        if isinstance(param, click.Argument):
            raise click.BadParameter("is empty (an unset shell variable?); give a value")
        raise click.BadParameter(
            "is empty (an unset shell variable?); give a value, or leave the option out"
        )
    return value


def output_name(ctx, param, value):
    """not_empty, for a file to write: a name of blanks only (`-o " "`, a variable of spaces) is a
    usage error too, where it would write a file no listing shows plainly."""
    value = not_empty(ctx, param, value)
    if value is None or value == "-":  # not given, or stdout
        return value
    if not value.strip():
        raise click.BadParameter(f"is only blanks ({value!r}); give a file's name")
    not_an_option(ctx, param, value)
    value = expand_home(value)  # `-o '~/out.txt'`, as every path read is
    names_a_file(value)
    return value


def not_an_option(ctx, param, value: str) -> None:
    """A usage error where an option's file to write is spelt as one of the command's options
    (`sample -o -l5`, the file's name forgotten): click takes it for the name, and a file `-l5`
    would be written with the length left at its default."""
    if not isinstance(param, click.Option) or not value.startswith("-") or value == "-":
        return
    names = {o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts)} | {"-h"}
    name = value.split("=", 1)[0]
    if name not in names and value[:2] in names and value[1] != "-":  # -l5, -qc, -length
        name = value[:2]
    if name in names or name == "--help":
        raise click.BadParameter(
            f"{value!r} is an option ({name}), not a file's name: give the file's name first "
            f"(./{value} for a file of that name)"
        )


def names_a_file(value: str) -> None:
    """A usage error unless `value`, as typed, can name a file to write: not a folder (`dir`),
    nor a name spelt as one (`new/`, `new/.`, `best.pt/.`, `ok.txt/x/..`), which the writer would
    read as another file (`best.pt` itself) and replace; the shell refuses `echo > best.pt/.`."""
    separators = tuple(s for s in (os.sep, os.altsep) if s)
    spelt = value.endswith(separators) or os.path.basename(value) in (".", "..")
    if spelt:
        try:
            os.stat(value)
        except NotADirectoryError as e:  # a file's name, spelt as a folder's
            raise click.BadParameter(f"cannot write {value!r}: {e.strerror}") from None
        except (OSError, ValueError):  # nothing there
            pass
    if os.path.isdir(value):
        raise click.BadParameter(f"{value!r} is a folder; give a file's name in it")
    if spelt:  # no folder there: say what makes it read as one
        tail = value[-1] if value.endswith(separators) else os.sep + os.path.basename(value)
        raise click.BadParameter(
            f"{value!r} ends in {tail!r}, as a folder's name does; give a file's name"
        )


class _Folder(click.Path):
    """A folder given as an option or in the environment: `~` expanded (no shell does it in a
    variable's value), and an empty value a usage error rather than the current folder."""

    def convert(self, value, param, ctx):
        if value == "":
            self.fail("is empty; give a folder ('.' for the current one)", param, ctx)
        if isinstance(value, str):
            value = expand_home(value)
            try:  # as typed: `best.pt/` is no folder, though Path reads it as best.pt
                mode = os.stat(value).st_mode
            except NotADirectoryError as e:
                self.fail(f"cannot read {value!r}: {e.strerror}", param, ctx)
            except (OSError, ValueError):  # not there (made when needed), or not a name at all
                mode = None
            if mode is not None and not stat.S_ISDIR(mode):  # said here: click's message would
                self.fail(f"{value!r} is a file, not a folder", param, ctx)  # lose its bytes
        try:
            return super().convert(value, param, ctx)
        except ValueError:  # a NUL byte: no system takes it in a path
            self.fail(f"{value!r} is not a possible folder name", param, ctx)


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


def checkpoint_dir_option(fn):
    return click.option(
        "--checkpoint-dir",
        type=_Folder(
            path_type=Path, file_okay=False, readable=False
        ),  # scan says what it cannot read
        default=CHECKPOINT_DIR,
        envvar=CHECKPOINT_DIR_ENV,
        show_envvar=True,
        help="Base folder of the run folders.",
    )(fn)


def checkpoint_option(fn):
    """-c/--checkpoint, as `sample` and `score` take it; `runs.is_path` is the rule it states."""
    return click.option(
        "-c",
        "--checkpoint",
        metavar="PATH|RUN",
        callback=not_empty,
        help="A run name (its best.pt, under --checkpoint-dir), or a path: a value with a / or "
        "ending in .pt is a checkpoint file or a run folder (write ./NAME for a folder here). "
        "Default: the most recently updated run trained to one evaluation at least.",
    )(fn)


def device_option(default: str, why: str = ""):
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda", "mps"]),
        default=default,
        help=f"Where to run: auto picks cuda, then mps, then cpu.{why}",
    )


def temperature_option(help: str):
    """-t/--temp, as `sample` and `inspect --sample` take it."""
    return click.option(
        "-t", "--temp", "temperature", type=Temperatures(), default=str(TEMPERATURE), help=help
    )


def seed_option(help: str):
    return click.option("-s", "--seed", type=Whole(0, MAX_SEED), help=help)


def prime_option(help: str):
    return click.option(
        "-p", "--prime", type=Prime(), show_default=False, callback=_prime, help=help
    )


def _prime(ctx, param, value):
    """--prime, "" where it is not given; `--prime ""` typed (often an unset shell variable) is
    a usage error, as an empty prime file is an error, never an unprimed text."""
    return "" if value is None else not_empty(ctx, param, value)


PRIME_UNKNOWN = (
    "Prime characters the model never saw: refuse, drop them, or replace them (é -> e, Z -> z "
    "where the model saw one case only, else a space, or nothing where it has no space)."
)


def unknown_option(help: str = PRIME_UNKNOWN):
    """--unknown: what to do with characters the model never saw (by default, in a prime)."""
    return click.option(
        "--unknown", type=click.Choice(UNKNOWN_POLICIES), default=UNKNOWN, help=help
    )


def encoding_option(help: str = "Encoding of FILE."):
    return click.option("--encoding", type=Encoding(), default=ENCODING, help=help)


def json_option(help: str):
    return click.option("--json", "as_json", is_flag=True, help=help)


def quiet_option(help: str):
    return click.option("-q", "--quiet", is_flag=True, help=help)


def unescape(text: str) -> str:
    r"""`\n`, `\r`, `\t` and `\\` typed on a command line, as the characters they stand for."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nrt\\":
            out.append({"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
