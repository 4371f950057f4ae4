"""Bits per character, as `charrnn score` reports them: of a whole text, or of each line as
`wc -l` and `paste` count lines (so a number can be pasted beside its line)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import CheckpointError
from charrnn.model.trained import Model
from charrnn.text.decode import encoding_read, text_encoding
from charrnn.text.vocab import apply_unknown, locate_unknown
from charrnn.use.scoring import score_lines, score_text


def text_nats(model: Model, text: str, checkpoint: Path | str, exact: bool = False) -> float:
    """Nats per character of `text` (every character in the vocabulary, one at least), read as
    one stream if `exact`, else split as score_text splits a long text; a loss that is not a
    number is the `checkpoint`'s fault, an error."""
    nats = score_text(model, text, streams=1 if exact else None) / len(text)
    if not math.isfinite(nats):  # finite weights so large that the logits overflow
        raise CheckpointError(
            f"{checkpoint} gives this text a loss that is not a number ({nats}): its weights are "
            "broken; use the run's other checkpoint, or train again"
        )
    return nats


@dataclass
class LineBits:
    """Bits per character of each line; nan for a line with nothing to score, and for each line
    in `unseen` (by index): characters the model never saw, under --unknown "error". `where`
    says where the first of those has one. `emptied`: lines that had characters and lost them
    all (skipped as unknown, or a line break the model never saw), scored nan too."""

    bits: list[float]
    unseen: list[int]
    where: str = ""
    emptied: list[int] = field(default_factory=list)


def line_bits(model: Model, lines: list[str], unknown: str) -> LineBits:
    """Each line read on its own, its characters the model never saw handled by `unknown`; under
    "error" such a line scores nan: one odd line must not cost a pipeline the others, and the
    output keeps one number per input line."""
    vocab = model.vocab
    given = lines
    if "\n" not in vocab:  # a model that never saw a line break scores lines without theirs
        lines = [line.removesuffix("\n") for line in lines]
    if unknown != "error":
        lines = [apply_unknown(line, vocab, unknown) for line in lines]
    emptied = [i for i, line in enumerate(lines) if given[i] and not line]
    unseen = [i for i, line in enumerate(lines) if not set(line) <= vocab.index.keys()]
    where = locate_unknown(lines[unseen[0]], vocab) if unseen else ""
    blank = set(unseen)
    lines = ["" if i in blank else line for i, line in enumerate(lines)]  # the caller's kept
    bits = [nats / math.log(2) for nats in score_lines(model, lines)]
    return LineBits(bits, unseen, where, emptied)


def split_lines(text: str, raw: bytes, encoding: str) -> list[str]:
    """`text` (`raw` decoded, \\r\\n and a lone \\r read as \\n) cut into lines where `wc -l`
    and `paste` cut `raw`: after each \\n, never at a lone \\r; the last line may lack its \\n."""
    parts = text.split("\n")
    segments = [part + "\n" for part in parts[:-1]] + [parts[-1]] * bool(parts[-1])
    if b"\r" not in raw:  # no \r in the input (every encoding writes \r with a byte 0x0d)
        return segments
    # Join the segments a lone \r cut: each input line is 1 + (its lone \r's) segments.
    pieces = raw.decode(encoding_read(raw, text_encoding(encoding)), "replace").split("\n")
    lines, at = [], 0
    for j, piece in enumerate(pieces):
        cuts = 1 + piece.count("\r") - (j < len(pieces) - 1 and piece.endswith("\r"))
        lines.append("".join(segments[at : at + cuts]))
        at += cuts
    return [line for line in lines if line]  # not the empty "line" after a final \n
