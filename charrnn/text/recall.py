"""The recall corpus (the built-in `recall`): one record a line, an opener, d random filler
characters, the cue `=` and the opener's closer, e.g. `[jbfhcaeigd=]`, so a model's loss on the
closer measures its memory of the opener (docs/cells-and-memory.md). Plain Python: no torch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from charrnn.errors import ConfigError, CorpusError, require_type, require_whole

GAPS = (5, 10, 20, 50, 100, 200, 400)  # filler characters between opener and cue
# Opener + closer of each kind, in the order kinds are taken: K kinds are the first K.
PAIRS = (
    "()", "[]", "{}", "<>", "/\\", "+-", "!?", "#$",
    "AZ", "BY", "CX", "DW", "EV", "FU", "GT", "HS",
)  # fmt: skip
KINDS = 8
FILLER = "abcdefghij"
CUE = "="
SIZE = 2_000_000  # characters of the built-in `recall` corpus (about 17,000 records)


def recall_text(
    size: int = SIZE,
    gaps: Sequence[int] = GAPS,
    kinds: int = KINDS,
    seed: int = 0,
    filler: str = FILLER,
) -> str:
    """Whole records (opener, d filler chars, cue, closer, newline) until at least `size`
    characters; d drawn uniformly from `gaps`, the kind from the first `kinds` of PAIRS.

    Deterministic across machines and Python versions: only Random.random() is guaranteed to give
    the same numbers for the same seed everywhere, so every draw is made from it.
    """
    require_whole("size", size, 0)
    require_whole("kinds", kinds, 1)
    if not isinstance(gaps, Sequence) or isinstance(gaps, str):
        raise ConfigError(f"the gaps must be a sequence of whole numbers, not {gaps!r}")
    if not isinstance(filler, str):
        raise ConfigError(f"the filler must be a str, not {type(filler).__name__}")
    gaps = list(gaps)
    if not gaps or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in gaps):
        raise ConfigError(f"the gaps must be whole numbers of 0 or more, not {gaps}")
    if not 1 <= kinds <= len(PAIRS):
        raise ConfigError(f"the recall corpus has 1 to {len(PAIRS)} kinds, not {kinds}")
    special = set("".join(PAIRS)) | {CUE, "\n"}
    if not filler or set(filler) & special or len(set(filler)) != len(filler):
        raise ConfigError(
            f"the filler {filler!r} must be distinct characters other than the openers, "
            f"closers, {CUE!r} and the line break"
        )
    rng = random.Random(seed)

    def pick(n: int) -> int:  # an int in [0, n); random() < 1, and n is tiny beside 2^53
        return int(rng.random() * n)

    records, total = [], 0
    while total < size:
        opener, closer = PAIRS[pick(kinds)]
        d = gaps[pick(len(gaps))]
        record = f"{opener}{''.join(filler[pick(len(filler))] for _ in range(d))}{CUE}{closer}\n"
        records.append(record)
        total += len(record)
    return "".join(records)


@dataclass(frozen=True)
class RecallRecord:
    """One parsed record: its line (from 1), kind (index in PAIRS), gap d, and the closer's
    offset in the text."""

    line: int
    kind: int
    gap: int
    closer_at: int


def parse_recall(text: str) -> list[RecallRecord]:
    """Every record of a recall text, found by reading it (not by trusting the generator).

    Each line must be opener, filler (no opener, closer, cue), cue, the opener's closer; a last
    line without a line break (a text cut short) is left out. CorpusError names a line that is
    not a record.
    """
    require_type("text", text, str, "a str")
    kind_of = {pair[0]: k for k, pair in enumerate(PAIRS)}
    special = set("".join(PAIRS)) | {CUE}
    records, at = [], 0
    lines = text.split("\n")[:-1]  # the piece after the last line break is not a whole record
    for number, line in enumerate(lines, 1):
        kind = kind_of.get(line[:1])
        middle = line[1:-2]
        if (
            kind is None
            or len(line) < 3
            or line[-2] != CUE
            or line[-1] != PAIRS[kind][1]
            or not special.isdisjoint(middle)
        ):
            raise CorpusError(
                f"line {number} of the recall text is not a record (opener, filler, {CUE!r}, "
                f"the opener's closer): {line[:60]!r}"
            )
        records.append(RecallRecord(number, kind, len(middle), at + len(line) - 1))
        at += len(line) + 1
    if not records:
        raise CorpusError("the recall text holds no records (one a line)")
    return records
