"""Plumbing shared by the commands: units, shared options, standard input, progress bars, output
and its errors (signals and the command boundary, which maps errors: signals.py)."""

from __future__ import annotations

import codecs
import errno
import os
import re
import sys
from pathlib import Path

import click

from charrnn.errors import CharRNNError

CHECKPOINT_DIR_ENV = "CHARRNN_CHECKPOINT_DIR"
CACHE_DIR_ENV = "CHARRNN_CACHE_DIR"


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


class Number(click.FloatRange):
    """click.FloatRange of finite numbers: every comparison with nan is false, so a range lets it
    through, and inf (or 1e400) passes a range without an upper end; the library then fails on
    either with a traceback (an inf epoch budget has no step count)."""

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


def read_stdin(
    label: str, encoding: str, quiet: bool = False, text: bool = True
) -> tuple[bytes, str]:
    """All of standard input and its text (text=False: checked only, "" returned), read as every
    file is (sources.read_all): in chunks, binary content or bytes that are not `encoding` text
    stopping the reading at the chunk that holds them, with the message train gives."""
    from charrnn.text.sources import read_all

    return read_all(stdin_chunks(1 << 20, quiet), label, encoding, text)


def stdin_chunks(size: int = 1 << 16, quiet: bool = False):
    """Standard input, `size` bytes at a time, for a reader that may stop early (sources.read_all
    checks each chunk as it comes: binary content stops the reading there, as for a file). A
    closed or unreadable standard input is one `Error:` line, not a traceback."""
    try:
        stream = click.get_binary_stream("stdin")  # RuntimeError when stdin is closed (<&-)
        if stream.isatty():
            say("Reading standard input until Ctrl-D (or pipe a file into it)...", quiet)
        while chunk := stream.read(size):
            yield chunk
            if len(chunk) < size:  # a buffered read is short only at the end: one Ctrl-D ends
                return  # a terminal's input, not a second one
    except (RuntimeError, ValueError, OSError) as e:  # ValueError: a closed file object
        reason = getattr(e, "strerror", None) or "it is closed"
        raise click.ClickException(
            f"cannot read standard input ({reason}); pipe the text into it, or name a file "
            "instead of -"
        ) from None


class _Folder(click.Path):
    """A folder given as an option or in the environment: `~` expanded (no shell does it in a
    variable's value), and an empty value a usage error rather than the current folder."""

    def convert(self, value, param, ctx):
        if value == "":
            self.fail("is empty; give a folder ('.' for the current one)", param, ctx)
        if isinstance(value, str):
            value = os.path.expanduser(value)
        try:
            return super().convert(value, param, ctx)
        except ValueError:  # a NUL byte: no system takes it in a path
            self.fail(f"{value!r} is not a possible folder name", param, ctx)


def checkpoint_dir_option(fn):
    return click.option(
        "--checkpoint-dir",
        type=_Folder(path_type=Path, file_okay=False),
        default="checkpoints",
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


def cache_dir() -> Path:
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "charrnn"


def device_option(default: str, why: str = ""):
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda", "mps"]),
        default=default,
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


def cannot_write(e: OSError, path: str | None = None) -> click.ClickException:
    """The one-line error for output that cannot be written."""
    from charrnn.fsutil import write_advice

    where = f"{os.fsdecode(path or e.filename)}: " if path or e.filename else ""
    hint = " (was standard output closed, `>&-`?)" if e.errno == errno.EBADF else ""
    advice = write_advice(e, "write to another file" if where else "send the output elsewhere")
    advice = f"; {advice}" if advice else ""
    return click.ClickException(f"cannot write the output: {where}{e.strerror or e}{hint}{advice}")


def drop_stdout() -> None:
    """Point stdout at /dev/null, so that Python's own final flush of what could not be written
    cannot fail a second time (a traceback at exit)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a real file (tests' in-memory streams)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def stdout_console(**options):
    """A rich Console onto stdout that leaves a reader that went away (`| head`) to the command
    boundary, like every other output (rich on its own exits 1)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return _Console(file=sys.stdout, **options)


class Text(click.ParamType):
    """Text given on the command line. Bytes that are not UTF-8 (which Python passes on as
    surrogate escapes) are a usage error that names the option, never text that cannot be printed
    or put in JSON later."""

    name = "TEXT"

    def convert(self, value, param, ctx):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            self.fail(
                f"holds a byte that is not UTF-8 text (at character {e.start}); "
                "give the text in UTF-8",
                param,
                ctx,
            )
        return value


def not_empty(ctx, param, value):
    """An option callback: an empty argument (`-o ''`, often an unset shell variable) is a usage
    error, never a silent default."""
    if value == "" or (isinstance(value, tuple) and "" in value):
        raise click.BadParameter("is empty; give a value, or leave the option out")
    return value


def write_output(output: str | None, emit):
    """emit(stream) onto stdout (None or '-': the command boundary handles write errors), or FILE:
    atomically for a regular or new file (a failed write leaves no half-written FILE, and an
    existing one as it was), straight for a device or a pipe (`-o /dev/stderr`, a FIFO), which
    cannot be replaced. A symbolic link is followed: the file it points to is what is written."""
    from charrnn.fsutil import atomic_write

    if output is None or output == "-":  # '-' is stdout, as for every Unix tool
        return emit(click.get_text_stream("stdout"))
    try:
        if os.path.exists(output) and not os.path.isfile(output):  # /dev/stdout, a FIFO, >(cmd)
            with open(output, "w", encoding="utf-8", newline="") as out:
                return emit(out)
        target = os.path.realpath(output)  # a link stays a link; its target gets the text
        result = []
        atomic_write(Path(target), lambda f: result.append(emit(codecs.getwriter("utf-8")(f))))
        return result[0]
    except OSError as e:
        raise cannot_write(e, output) from None


def count(n: int, noun: str) -> str:
    """`1 character`, `2,000 characters`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
