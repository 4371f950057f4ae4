"""`charrnn export`: a trained model in a form that runs without charrnn: a page that writes text
in the browser, offline, or an ONNX file."""

from __future__ import annotations

import os
import sys

import click

from charrnn.cli.common import (
    binary,
    load_model,
    note_unknown,
    say,
    shown_message,
    shown_path,
    write_output,
)
from charrnn.cli.options import (
    checkpoint_dir_option,
    checkpoint_option,
    given,
    output_name,
    prime_option,
    quiet_option,
    unknown_option,
)
from charrnn.fsutil import size_text

FORMATS = {".html": "html", ".htm": "html", ".onnx": "onnx"}


@click.command(
    epilog="""\b
Examples:
  charrnn export -c shakespeare page.html           # open it in a browser: it writes offline
  charrnn export -c shakespeare page.html --prime "ROMEO:" --precision float32
  charrnn export -c shakespeare model.onnx          # for onnxruntime, in any language
  charrnn export -c shakespeare - --format html > page.html
"""
)
@click.argument("out", metavar="OUT", callback=output_name)
@checkpoint_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(set(FORMATS.values()))),
    help="What to write. Default: from OUT's extension (.html or .htm a page, .onnx ONNX); "
    "needed for - (stdout).",
)
@click.option(
    "--precision",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    help="How the page holds the weights: float16 is half the size, for a few millionths of a "
    "nat per character (docs/export.md); float32 is the model's own numbers.",
)
@prime_option("The page's prime box, filled in (the page reads it before writing).")
@unknown_option()
@quiet_option("No message on stderr.")
@checkpoint_dir_option
def export(out, checkpoint, fmt, precision, prime, unknown, quiet, checkpoint_dir):
    """Write the trained model to OUT ('-': stdout) as a self-contained HTML page that writes text
    in any browser, offline (no server, nothing fetched), or as an ONNX model."""
    fmt = fmt or _format_of(out)
    ctx = click.get_current_context()
    page_only = [f"--{n}" for n in ("precision", "prime", "unknown") if given(ctx, n)]
    if fmt == "onnx" and page_only:
        raise click.UsageError(
            f"{', '.join(page_only)} {'is' if len(page_only) == 1 else 'are'} for a page (.html); "
            "an ONNX model holds float32 weights and takes its prime when it runs: leave "
            f"{'it' if len(page_only) == 1 else 'them'} out"
        )
    if fmt == "onnx" and out == "-" and sys.stdout.isatty():
        raise click.UsageError(
            "an ONNX model is binary, not for a terminal: give a file (model.onnx), or redirect "
            "standard output (> model.onnx, | ...)"
        )
    path, model = load_model(checkpoint, checkpoint_dir, None, quiet)
    if checkpoint is None:
        say(f"The latest run's model: {shown_path(path)} (-c picks another).", quiet)
    if fmt == "onnx":
        data = _onnx(model)
        write_output(out, lambda stream: binary(stream).write(data))
        size = len(data)
    else:
        from charrnn.text.vocab import apply_unknown
        from charrnn.use.export_page import export_page

        # the run's name as text: its control characters and bytes that are not UTF-8 escaped
        name = shown_message(path.parent.name or str(path))
        apply_unknown(prime, model.vocab, unknown, typed=True)  # refused as typed, if it is
        page = export_page(model, name, precision, prime, unknown)
        note_unknown(prime, model.vocab, unknown, quiet, prime=True)
        write_output(out, lambda stream: stream.write(page))
        size = len(page.encode())
    hint = ": open it in a browser" if fmt == "html" and os.path.isfile(out) else ""
    what, where = ("page" if fmt == "html" else "ONNX model"), ("stdout" if out == "-" else out)
    say(f"Wrote the {what} to {where} ({size_text(size)}){hint}.", quiet)
    ext = os.path.splitext(out)[1]
    if FORMATS.get(ext.lower(), fmt) != fmt:  # as --format asked, but others go by the name
        held = "a page" if fmt == "html" else "an ONNX model"
        say(f"Note: {out} ends in {ext} but holds {held} (--format {fmt}).", quiet)


def _format_of(out: str) -> str:
    """The format OUT's extension names; a usage error where it names none."""
    if out == "-":
        raise click.UsageError("OUT is - (stdout): say what to write with --format html or onnx")
    name = os.path.basename(out)  # not a folder: output_name refused one
    if name.lower() in FORMATS:
        raise click.UsageError(f"OUT {out!r} is an extension alone; give a name, e.g. page{name}")
    ext = os.path.splitext(out)[1].lower()
    if ext not in FORMATS:
        known = ", ".join(FORMATS)
        raise click.UsageError(
            f"OUT {out!r} has {f'the extension {ext!r}' if ext else 'no extension'}, which "
            f"names no format; end it in {known}, or give --format"
        )
    return FORMATS[ext]


def _onnx(model) -> bytes:
    from charrnn.use.onnx_export import onnx_bytes  # here: `charrnn --help` loads no torch

    return onnx_bytes(model)
