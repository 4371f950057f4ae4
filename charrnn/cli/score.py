"""`charrnn score`: how typical a text is for a model, in bits per character."""

from __future__ import annotations

import math
from pathlib import Path

import click

from charrnn.cli.common import checkpoint_dir_option, device_option, say, user_errors
from charrnn.tokenizer import UNKNOWN_POLICIES


@click.command(
    epilog="""\b
Examples:
  charrnn score poem.txt                        # bits per character of the whole text
  charrnn score --per-line lines.txt            # one number per input line
  paste <(charrnn score --per-line f.txt) f.txt | sort -n | head   # the most typical lines
  fortune | charrnn score - -c shakespeare
"""
)
@click.argument("file", default="-")
@click.option("-c", "--checkpoint", metavar="PATH|RUN", help="As for `charrnn sample`.")
@click.option(
    "--per-line",
    is_flag=True,
    help="One number per input line (each line read on its own, with its line break).",
)
@click.option(
    "--unknown",
    type=click.Choice(UNKNOWN_POLICIES),
    default="error",
    show_default=True,
    help="Characters the model never saw: refuse, drop or replace.",
)
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of FILE.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@device_option("cpu")
@checkpoint_dir_option
@user_errors
def score(file, checkpoint, per_line, unknown, encoding, quiet, device, checkpoint_dir):
    """Print the model's bits per character on FILE ('-' or nothing: stdin): lower is more
    typical of what the model was trained on."""
    from charrnn import checkpoint as ckpt
    from charrnn import runs
    from charrnn.cli.common import resolve_device
    from charrnn.corpus import decode_bytes
    from charrnn.errors import CorpusError
    from charrnn.scoring import score_lines, score_text
    from charrnn.tokenizer import apply_unknown

    path = runs.resolve_checkpoint(checkpoint, checkpoint_dir)
    model, vocab = ckpt.restore_model(ckpt.load(path), path)
    model = model.to(resolve_device(device))
    try:
        raw = click.get_binary_stream("stdin").read() if file == "-" else Path(file).read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read {file}: {e.strerror}") from None
    label = "standard input" if file == "-" else file
    text = apply_unknown(decode_bytes(raw, label, encoding), vocab, unknown, f"{label}")
    if per_line:
        for nats in score_lines(model, vocab, text.splitlines(keepends=True)):
            click.echo(f"{nats / math.log(2):.4f}")
        return
    if not text:
        raise CorpusError(f"{label} is empty: there is nothing to score")
    nats = score_text(model, vocab, text) / len(text)
    click.echo(f"{nats / math.log(2):.4f}")
    say(
        f"{label}: {len(text):,} characters, {nats:.4f} nats = {nats / math.log(2):.4f} bits "
        f"per character under {path}",
        quiet,
    )
