"""`charrnn score`: how typical a text is for a model, in bits per character."""

from __future__ import annotations

import math

import click

from charrnn.cli.common import (
    checkpoint_dir_option,
    checkpoint_option,
    count,
    device_option,
    read_stdin,
    say,
    user_errors,
)
from charrnn.cli.options import encoding_option, load_model, quiet_option, unknown_option

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
@click.argument("file", default="-")
@checkpoint_option
@click.option(
    "--per-line",
    is_flag=True,
    help="One number per input line, as `wc -l` and `paste` count lines (ended by \\n; the last "
    "may lack it); each line read on its own, with its line break.",
)
@unknown_option(
    "Characters the model never saw: refuse, drop or replace them. With --per-line, "
    "'error' prints nan for such a line (one warning on stderr names them) and goes on."
)
@encoding_option()
@quiet_option("No summary on stderr.")
@device_option("cpu")
@checkpoint_dir_option
@user_errors
def score(file, checkpoint, per_line, unknown, encoding, quiet, device, checkpoint_dir):
    """Print the model's bits per character on FILE ('-' or nothing: stdin): lower is more
    typical of what the model was trained on."""
    from charrnn.errors import CheckpointError, CorpusError
    from charrnn.text.corpus import input_file, read_all
    from charrnn.text.vocab import apply_unknown
    from charrnn.use.scoring import score_text

    label = "standard input" if file == "-" else file
    # Checked before the model loads (a folder, a device: refused), read after it.
    source = None if file == "-" else input_file(file, label, SCORE_HINT)
    path, model, vocab, _ = load_model(checkpoint, checkpoint_dir, device)
    if source is None:
        raw, text = read_stdin(label, encoding)
    else:
        raw, text = read_all(source.chunks(), label, encoding)
    if per_line:
        bits = _bits_per_line(model, vocab, _lines(text, raw, encoding), unknown, label)
        click.echo("".join(f"{b:.4f}\n" for b in bits), nl=False)
        return
    text = apply_unknown(text, vocab, unknown, label)
    if not text:
        raise CorpusError(f"{label} is empty: there is nothing to score")
    nats = score_text(model, vocab, text) / len(text)
    if not math.isfinite(nats):  # finite weights so large that the logits overflow
        raise CheckpointError(
            f"{path} gives this text a loss that is not a number ({nats}): its weights are "
            "broken; use the run's other checkpoint, or train again"
        )
    click.echo(f"{nats / math.log(2):.4f}")
    say(
        f"{label}: {count(len(text), 'character')}, {nats:.4f} nats = {nats / math.log(2):.4f} "
        f"bits per character under {path}",
        quiet,
    )


def _lines(text: str, raw: bytes, encoding: str) -> list[str]:
    """`text` (`raw` decoded, \\r\\n and a lone \\r read as \\n) cut into lines where `wc -l`
    and `paste` cut `raw`: after each \\n, never at a lone \\r; the last line may lack its \\n."""
    parts = text.split("\n")
    segments = [part + "\n" for part in parts[:-1]] + [parts[-1]] * bool(parts[-1])
    if b"\r" not in raw:  # no \r in the input (every encoding writes \r with a byte 0x0d)
        return segments
    # Join the segments a lone \r cut: each input line is 1 + (its lone \r's) segments.
    pieces = raw.decode(encoding, "replace").split("\n")
    lines, at = [], 0
    for j, piece in enumerate(pieces):
        cuts = 1 + piece.count("\r") - (j < len(pieces) - 1 and piece.endswith("\r"))
        lines.append("".join(segments[at : at + cuts]))
        at += cuts
    return [line for line in lines if line]  # not the empty "line" after a final \n


def _bits_per_line(model, vocab, lines: list[str], unknown: str, label: str) -> list[float]:
    """Bits per character of each line. Under `--unknown error` a line with characters the model
    never saw scores nan, with one warning: one odd line must not cost a pipeline the others, and
    the output keeps one number per input line. A line with nothing left to score: nan too."""
    from charrnn.text.vocab import apply_unknown, locate_unknown
    from charrnn.use.scoring import score_lines

    if "\n" not in vocab:  # a model that never saw a line break scores lines without theirs
        lines = [line.removesuffix("\n") for line in lines]
    if unknown != "error":
        lines = [apply_unknown(line, vocab, unknown) for line in lines]
    unseen = [i for i, line in enumerate(lines) if not set(line) <= vocab.index.keys()]
    if unseen:
        first = unseen[0]
        click.echo(
            f"Warning: {count(len(unseen), 'line')} of {label} "
            f"{'has' if len(unseen) == 1 else 'have'} characters the model has never seen, "
            f"scored nan (line {first + 1}: {locate_unknown(lines[first], vocab)}); pass "
            "--unknown skip or --unknown replace to score them",
            err=True,
        )
        for i in unseen:
            lines[i] = ""
    return [nats / math.log(2) for nats in score_lines(model, vocab, lines)]
