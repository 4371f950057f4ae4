"""Where a stretch of the validation split is in the files it came from, as a reader looks it up:
the file, and its lines (1-based), or its characters in a file without line breaks (its visible
ones: not the line end that closes it, which is added where a file of several lacks one)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Place:
    """A stretch of one file: its `unit` ("line" or "character") numbers `first` to `last`, 1-based;
    `file` None for a text that is one file."""

    file: str | None
    unit: str
    first: int
    last: int


@dataclass(frozen=True)
class _Part:
    """The validation split's characters [start, end) that one file holds."""

    file: str | None
    start: int
    end: int
    number: int  # the line (or character) number in the file of the split's character `start`
    lines: bool  # counted in lines: the file has a line break before its last character


class Places:
    """Says where characters of the validation split are. `ids`: the whole text (N,); the split
    begins at `val_start`; `files`: each file's label and length in characters, in reading order
    (a text of one file: [(None, N)])."""

    def __init__(
        self,
        ids: torch.Tensor,
        val_start: int,
        newline: int | None,
        files: Sequence[tuple[str | None, int]],
    ):
        self.newline, self.parts = newline, []
        end = 0
        for file, length in files:
            start, end = end, end + length
            if end <= val_start or length == 0:  # wholly in the training part, or empty
                continue
            first = max(start, val_start)
            # line breaks before the split's first character, and after it (but the last's): one
            # pass over the file, which may be most of a large text
            before = int((ids[start:first] == newline).sum()) if newline is not None else 0
            after = int((ids[first : end - 1] == newline).sum()) if newline is not None else 0
            lines = before + after > 0
            number = 1 + (before if lines else first - start)
            self.parts.append(_Part(file, first - val_start, end - val_start, number, lines))
        self._starts = [p.start for p in self.parts]

    def where(self, val_ids: torch.Tensor, spans: Sequence[tuple[int, int]]) -> list[Place]:
        """Each span (start, end) of `val_ids` (the split's first characters, (n,)) as the places
        it covers in the order of the text: one per file it runs through."""
        places = []
        for i, j in spans:
            k = max(bisect.bisect_right(self._starts, i) - 1, 0)
            while True:
                part = self.parts[k]
                places.append(self._place(part, val_ids, i, min(j, part.end) - 1))
                if j <= part.end or k + 1 == len(self.parts):
                    break
                k, i = k + 1, part.end  # on into the next file, which begins there
        return places

    def _place(self, part: _Part, val_ids: torch.Tensor, first: int, last: int) -> Place:
        """Characters first..last of the split, all in `part`'s file, numbered in that file."""
        if part.lines:  # a character's line: the part's first, and the breaks before it
            a = part.number + int((val_ids[part.start : first] == self.newline).sum())
            b = part.number + int((val_ids[part.start : last] == self.newline).sum())
            return Place(part.file, "line", a, b)
        if last > first and last == part.end - 1 and int(val_ids[last]) == self.newline:
            last -= 1  # the line end a file of a line ends with (or was given, to end its line)
        a, b = part.number + first - part.start, part.number + last - part.start
        return Place(part.file, "character", a, b)
