"""Bits per character, as `charrnn score` reports them: of a whole text, or of each line as
`wc -l` and `paste` count lines (decode.decode_lines: so a number can be pasted beside its line)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import CheckpointError
from charrnn.model.trained import Model
from charrnn.text.vocab import apply_unknown, known_form, locate_unknown_as_typed
from charrnn.use.scoring import score_lines, score_text


def text_nats(
    model: Model,
    text: str,
    checkpoint: Path | str,
    exact: bool = False,
    between: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> float:
    """Nats per character of `text` (every character in the vocabulary, one at least), read as
    one stream if `exact`, else split as score_text splits a long text (`between`, `progress`:
    as there); a loss that is not a number is the `checkpoint`'s fault, an error."""
    streams = 1 if exact else None
    nats = score_text(model, text, streams=streams, between=between, progress=progress)
    nats /= len(text)
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
    all (skipped as unknown, or a line break the model never saw), scored nan too. `changed`:
    the characters --unknown skip or replace left out or replaced."""

    bits: list[float]
    unseen: list[int]
    where: str = ""
    emptied: list[int] = field(default_factory=list)
    changed: int = 0


def line_bits(model: Model, lines: list[str], unknown: str, first: int = 0) -> LineBits:
    """Each line read on its own, its characters the model never saw handled by `unknown`; under
    "error" such a line scores nan: one odd line must not cost a pipeline the others, and the
    output keeps one number per input line. `first`: the index the lines' numbers start at."""
    vocab = model.vocab
    given = lines
    if "\n" not in vocab:  # a model that never saw a line break scores lines without theirs
        lines = [line.removesuffix("\n") for line in lines]
    else:  # a text's last line, unended, is read as if ended: a line scores the same anywhere
        lines = [line if not line or line.endswith("\n") else line + "\n" for line in lines]
    typed = lines
    # an accent in the other Unicode form than the model's text (e + U+0301 for é) is read in
    # the model's, as a whole text is
    lines = [known_form(line, vocab) for line in lines]
    changed = 0
    if unknown != "error":
        changed = sum(ch not in vocab.index for line in lines for ch in line)
        lines = [apply_unknown(line, vocab, unknown) for line in lines]
    # lines that had characters and lost them all: a line break the model never saw, or all
    # but the line break (which alone is not a reading of the line)
    text = lambda line: line.removesuffix("\n")  # noqa: E731
    emptied = [
        i
        for i, line in enumerate(lines)
        if given[i] and (not line or (text(given[i]) and not text(line)))
    ]
    unseen = [i for i, line in enumerate(lines) if not set(line) <= vocab.index.keys()]
    where = locate_unknown_as_typed(typed[unseen[0]], vocab) if unseen else ""  # as typed
    blank = set(unseen) | set(emptied)
    lines = ["" if i in blank else line for i, line in enumerate(lines)]  # the caller's kept
    bits = [nats / math.log(2) for nats in score_lines(model, lines)]
    numbered = lambda indices: [first + i for i in indices]  # noqa: E731
    return LineBits(bits, numbered(unseen), where, numbered(emptied), changed)
