"""Where a stretch of the validation split is in the files it came from, as a reader looks it up:
the file, and its lines (1-based), or its characters in a file without line breaks (its visible
ones: not the line end that closes it, which is added where a file of several lacks one)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

COUNT_PIECE = 1 << 22  # characters compared at a time when line breaks are counted


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
        # counted when first asked (where): a pass over what may be most of a large text, which
        # a run that never needs to say where something is should not wait for
        self._ids, self._val_start, self._files = ids, val_start, list(files)
        self.newline, self._parts = newline, None

    @property
    def parts(self) -> list[_Part]:
        """The files the validation split runs through, and their numbering (counted once)."""
        if self._parts is None:
            parts, end = [], 0
            for file, length in self._files:
                start, end = end, end + length
                if end <= self._val_start or length == 0:  # in the training part, or empty
                    continue
                first = max(start, self._val_start)
                # line breaks before the split's first character, and after it (but the last's)
                before = self._count(self._ids, start, first)
                after = self._count(self._ids, first, end - 1)
                lines = before + after > 0
                number = 1 + (before if lines else first - start)
                at = first - self._val_start
                parts.append(_Part(file, at, end - self._val_start, number, lines))
            self._parts = parts  # whole: a count cut short (a stop) is made again, not kept
        return self._parts

    def _count(self, ids: torch.Tensor, start: int, end: int) -> int:
        """Line breaks in ids[start:end], read a piece at a time: a mask of a whole large text
        (and its sum, in int64) would hold gigabytes."""
        if self.newline is None:
            return 0
        return sum(
            int((ids[i : min(i + COUNT_PIECE, end)] == self.newline).sum())
            for i in range(start, end, COUNT_PIECE)
        )

    def where(self, val_ids: torch.Tensor, spans: Sequence[tuple[int, int]]) -> list[Place]:
        """Each span (start, end) of `val_ids` (the split's first characters, (n,)) as the places
        it covers in the order of the text: one per file it runs through."""
        parts = self.parts
        starts = [p.start for p in parts]
        places = []
        for i, j in spans:
            k = max(bisect.bisect_right(starts, i) - 1, 0)
            while True:
                part = parts[k]
                places.append(self._place(part, val_ids, i, min(j, part.end) - 1))
                if j <= part.end or k + 1 == len(parts):
                    break
                k, i = k + 1, part.end  # on into the next file, which begins there
        return places

    def _place(self, part: _Part, val_ids: torch.Tensor, first: int, last: int) -> Place:
        """Characters first..last of the split, all in `part`'s file, numbered in that file."""
        if part.lines:  # a character's line: the part's first, and the breaks before it
            a = part.number + self._count(val_ids, part.start, first)
            b = part.number + self._count(val_ids, part.start, last)
            return Place(part.file, "line", a, b)
        if last > first and last == part.end - 1 and int(val_ids[last]) == self.newline:
            last -= 1  # the line end a file of a line ends with (or was given, to end its line)
        a, b = part.number + first - part.start, part.number + last - part.start
        return Place(part.file, "character", a, b)
