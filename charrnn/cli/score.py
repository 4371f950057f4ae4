"""`charrnn score`: how typical a text is for a model, in bits per character."""

from __future__ import annotations

import math

import click

from charrnn.cli.common import (
    count,
    known_text,
    load_model,
    read_stdin,
    refuse_run_as_file,
    say,
    say_unknown,
    stdin_chunks,
)
from charrnn.cli.options import (
    checkpoint_dir_option,
    checkpoint_option,
    device_option,
    encoding_option,
    not_empty,
    quiet_option,
    unknown_option,
)

SCORE_HINT = "to score a stream, pipe it in and use - to read standard input"


@click.command(
    epilog="""\b
Examples:
  charrnn score poem.txt                        # bits per character of the whole text
  charrnn score --per-line lines.txt            # one number per input line
  paste <(charrnn score --per-line f.txt) f.txt | sort -g | head   # the most typical lines
  fortune | charrnn score - -c shakespeare
"""
)
@click.argument("file", default="-", callback=not_empty)
@checkpoint_option
@click.option(
    "--per-line",
    is_flag=True,
    help="One number per input line, as `wc -l` and `paste` count lines (ended by \\n; the last "
    "may lack it); each line read on its own, with its line break, and its number written as the "
    "line arrives (`tail -f log | charrnn score --per-line -`).",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Read a long text as one stream, character after character. Without it, a text of 8,192 "
    "characters or more is read as up to 32 streams side by side, each warmed up on the 256 "
    "characters before its piece: several times faster, and within 0.0001 nats per character of "
    "it on the texts measured (on one that repeats a character thousands of times, a few "
    "thousandths). --per-line is exact either way.",
)
@unknown_option(
    "Characters the model never saw: refuse, skip or replace them. With --per-line, "
    "'error' prints nan for such a line (one warning on stderr names them) and goes on."
)
@encoding_option()
@quiet_option("No summary on stderr.")
@device_option("cpu")
@checkpoint_dir_option
def score(file, checkpoint, per_line, exact, unknown, encoding, quiet, device, checkpoint_dir):
    """Print the model's bits per character on FILE ('-' or nothing: stdin): lower is more
    typical of what the model was trained on."""
    from charrnn.text.sources import input_file, read_all
    from charrnn.use.bits import text_nats

    label = "standard input" if file == "-" else file
    refuse_run_as_file(file, checkpoint_dir)
    # Checked before the model loads (a folder, a device: refused), read after it.
    source = None if file == "-" else input_file(file, label, SCORE_HINT)
    path, model = load_model(checkpoint, checkpoint_dir, device)
    if per_line:
        size = 1 << 16  # what has arrived, at most this: lines scored as they come
        if source is None:
            chunks = stdin_chunks(size, quiet, live=True)
        else:
            chunks = source.chunks(size, live=True)
        _score_lines(model, chunks, label, encoding, unknown, quiet)
        return
    if source is None:
        _, text = read_stdin(label, encoding)
    else:
        _, text = read_all(source.chunks(), label, encoding)
    text = known_text(text, model.vocab, unknown, label, "score", quiet)
    nats = text_nats(model, text, path, exact)
    click.echo(f"{nats / math.log(2):.4f}")
    say(
        f"{label}: {count(len(text), 'character')}, {nats:.4f} nats = {nats / math.log(2):.4f} "
        f"bits per character under {path}",
        quiet,
    )


def _score_lines(model, chunks, label: str, encoding: str, unknown: str, quiet: bool) -> None:
    """One number a line on stdout, each group of lines as it arrives (a pipe's lines are not
    held until it ends); what --unknown changed and the lines scored nan said at the end."""
    from charrnn.text.decode import decode_lines
    from charrnn.use.bits import LineBits, lines_bits

    seen = LineBits([], [])  # over all the lines: which scored nan, and why
    try:
        for found in lines_bits(model, decode_lines(chunks, label, encoding), unknown):
            click.echo("".join(f"{b:.4f}\n" for b in found.bits), nl=False)  # and flushed
            seen.where = seen.where or found.where
            seen.unseen += found.unseen
            seen.emptied += found.emptied
            seen.changed += found.changed
    finally:  # also where Ctrl-C or an error ends the stream: the numbers written are explained
        say_unknown(seen.changed, unknown, quiet)
        _warn_unseen(seen, label)


def _warn_unseen(found, label: str) -> None:
    """One warning for the lines scored nan for characters the model never saw, and one for the
    lines left with nothing to score."""
    if found.emptied:
        n = len(found.emptied)
        click.echo(
            f"Warning: {count(n, 'line')} of {label} {'has' if n == 1 else 'have'} no character "
            f"the model reads, scored nan ({_line_numbers(found.emptied)})",
            err=True,
        )
    if found.unseen:
        n = len(found.unseen)
        first = f"; line {found.unseen[0] + 1}" if n > 1 else ""  # where found.where is
        click.echo(
            f"Warning: {count(n, 'line')} of {label} {'has' if n == 1 else 'have'} characters "
            f"the model has never seen, scored nan ({_line_numbers(found.unseen)}{first}: "
            f"{found.where}); pass --unknown skip or --unknown replace to score them",
            err=True,
        )


def _line_numbers(indices: list[int], most: int = 10) -> str:
    """`line 4` or `lines 2, 4, 9, ...`: 1-based, the first `most` of them."""
    shown = ", ".join(str(i + 1) for i in indices[:most]) + (", ..." if len(indices) > most else "")
    return f"line{'s' * (len(indices) > 1)} {shown}"
