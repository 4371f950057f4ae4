"""`charrnn score`: how typical a text is for a model, in bits per character."""

from __future__ import annotations

import math
import sys

import click

from charrnn.cli.common import (
    check_reader,
    count,
    drop_stdout,
    json_out,
    known_text,
    load_model,
    phase_bar,
    read_stdin,
    refuse_reading_into,
    refuse_run_as_file,
    say,
    say_unknown,
    shown_field,
    shown_message,
    stdin_chunks,
)
from charrnn.cli.options import (
    checkpoint_dir_option,
    checkpoint_option,
    device_option,
    encoding_option,
    json_option,
    not_empty,
    quiet_option,
    unknown_option,
)
from charrnn.errors import CharRNNError

SCORE_HINT = "to score a stream, pipe it in and use - to read standard input"


def _files(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    """FILE...: none is standard input; standard input can be read once."""
    value = not_empty(ctx, param, value) or ("-",)
    if value.count("-") > 1:
        raise click.BadParameter("names standard input (-) more than once; it can be read once")
    return value


def _label(file: str) -> str:
    """FILE as messages and the table name it: one field of one line (shown_field)."""
    return "standard input" if file == "-" else shown_field(file)


@click.command(
    epilog="""\b
Examples:
  charrnn score poem.txt                        # bits per character of the whole text
  charrnn score *.txt | sort -g                 # several texts: the number, a tab, the name
  charrnn score --per-line lines.txt            # one number per input line
  paste <(charrnn score --per-line f.txt) f.txt | grep -v ^nan | sort -g | head   # most typical
  charrnn score --per-line --json f.txt | jq -r 'select(.bpc > 3) | .text'   # the odd lines
  fortune | charrnn score - -c shakespeare
"""
)
@click.argument("files", metavar="[FILE]...", nargs=-1, callback=_files)
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
    "it on the texts measured; pieces whose warm-up ends reading the text unlike the piece before "
    "(a young model's runaway) are read again as one stream. On a text with runs of thousands of "
    "one character, a GRU's may differ by a few thousandths. --per-line is exact either way.",
)
@unknown_option(
    "Characters the model never saw: refuse, skip or replace them. With --per-line, "
    "'error' prints nan for such a line (one warning on stderr names them) and goes on."
)
@encoding_option()
@json_option(
    "One JSON object per line of output: per text `file`, `characters`, `bpc`, `nats` (per "
    "character) and `checkpoint`; with --per-line, per line `line` (from 1), `bpc` (null where "
    "the text prints nan) and `text` (the line as read, without its line break)."
)
@quiet_option("No summary or notes on stderr (warnings and errors still).")
@device_option("cpu")
@checkpoint_dir_option
def score(
    files, checkpoint, per_line, exact, unknown, encoding, as_json, quiet, device, checkpoint_dir
):
    """Print the model's bits per character on each FILE ('-' or nothing: stdin): lower is more
    typical of what the model was trained on. Of several files, one line each: the number, a
    tab, the file; one that cannot be scored is an Error line, and the others are still scored
    (exit 1 at the end)."""
    from charrnn.text.sources import input_file

    if per_line and len(files) > 1:
        raise click.UsageError("--per-line reads one FILE; score the files one at a time")
    named, failed = len(files) > 1, False

    def refused(e: CharRNNError) -> None:
        """A file's error: the command's where it is the one file, else said, and the others
        still scored."""
        nonlocal failed
        if not named:
            raise e
        click.echo(f"Error: {shown_message(str(e))}", err=True)
        failed = True

    # Checked before the model loads (missing, a folder, a device: refused), read after it.
    sources = []  # (file, its Source; None for stdin)
    refuse_reading_into(None, [("a text to score", file) for file in files])
    for file in files:
        try:
            refuse_run_as_file(file, checkpoint_dir)
            source = None if file == "-" else input_file(file, _label(file), SCORE_HINT)
            sources.append((file, source))
        except CharRNNError as e:
            refused(e)
    if not sources:  # every file refused: no model to load
        sys.exit(1)
    path, model = load_model(checkpoint, checkpoint_dir, device, quiet)
    if per_line:
        size = 1 << 16  # what has arrived, at most this: lines scored as they come
        file, source = sources[0]
        label = _label(file)
        if source is None:
            chunks = stdin_chunks(size, quiet, live=True)
        else:
            chunks = source.chunks(size, live=True)
        _score_lines(model, chunks, label, encoding, unknown, quiet, as_json)
        return
    try:
        for file, source in sources:
            try:
                _score_text(
                    model, path, file, source, exact, unknown, encoding, quiet, as_json, named
                )
            except CharRNNError as e:
                refused(e)
    except BrokenPipeError:  # the reader left (`| head -1`): quietly, but a file that failed
        if not failed:  # before still decides the status
            raise
        drop_stdout()
    if failed:
        sys.exit(1)


def _score_text(
    model, path, file, source, exact, unknown, encoding, quiet, as_json, named=False
) -> None:
    """One text's number on stdout (after a tab, its name, where `named`), or its JSON object;
    the summary on stderr."""
    from charrnn.text.decode import decode_chunks
    from charrnn.use.bits import text_nats

    label = _label(file)
    if source is None:
        _, text = read_stdin(label, encoding, quiet)
    else:
        # the text alone (read_all would keep the bytes too, a second copy of a long text)
        text = "".join(decode_chunks(source.chunks(), label, encoding))
    text = known_text(text, model.vocab, unknown, label, "score", quiet, label * named)
    # a reader that leaves (`| head -c 1`, `| true`) stops the read, as a failed write would
    between = lambda: check_reader(sys.stdout)  # noqa: E731
    bar = _reading_bar(quiet)
    try:
        nats = text_nats(model, text, path, exact, between=between, progress=bar)
    finally:
        bar.close()
    bpc = nats / math.log(2)
    if as_json:
        record = {"file": file, "characters": len(text), "bpc": round(bpc, 6)}
        click.echo(json_out({**record, "nats": round(nats, 6), "checkpoint": str(path)}))
    else:  # a name as one field of one line, whatever its characters (a tab, a line break)
        click.echo(f"{bpc:.4f}" + f"\t{'-' if file == '-' else label}" * named)
    say(
        f"{label}: {count(len(text), 'character')}, {nats:.4f} nats = {bpc:.4f} "
        f"bits per character under {shown_field(str(path))}",
        quiet,
    )


# characters of a text to score from which a terminal shows a bar: about a minute of reading
# for a medium model on two cores
BAR_FROM_CHARS = 1_000_000


def _reading_bar(quiet: bool):
    """score_text's progress as a bar on stderr (a terminal's, for a text of BAR_FROM_CHARS or
    more): "scoring", then "reading again" for a round that reads pieces again."""
    bar, last = phase_bar(quiet, BAR_FROM_CHARS, unit="char"), [0, "scoring"]

    def progress(done: int, total: int) -> None:
        if done < last[0]:  # a new round, of pieces read again
            last[1] = "reading again"
        last[0] = done
        bar(last[1], done, total)

    progress.close = bar.close
    return progress


def _score_lines(
    model, chunks, label: str, encoding: str, unknown: str, quiet: bool, as_json: bool
) -> None:
    """One number a line on stdout (or one JSON object), each group of lines as it arrives (a
    pipe's lines are not held until it ends); what --unknown changed and the lines scored nan
    said at the end."""
    from charrnn.text.decode import decode_lines
    from charrnn.use.bits import LineBits, line_bits

    seen = LineBits([], [])  # over all the lines: which scored nan, and why
    number = 0  # lines written so far
    try:
        for lines in decode_lines(chunks, label, encoding):
            found = line_bits(model, lines, unknown, first=number)
            if as_json:
                records = (
                    {"line": number + i + 1, "bpc": round(b, 6), "text": line.removesuffix("\n")}
                    for i, (b, line) in enumerate(zip(found.bits, lines, strict=True))
                )
                click.echo("".join(json_out(r) + "\n" for r in records), nl=False)
            else:
                click.echo("".join(f"{b:.4f}\n" for b in found.bits), nl=False)  # and flushed
            number += len(lines)
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
