"""CharVocab: Unicode code points <-> integer ids. Pure Python, no torch.

The vocabulary is the sorted set of characters (code points, not bytes) in the training text, so a
Chinese, Russian or emoji corpus works like an English one. It travels inside every checkpoint as a
plain list of strings, so sampling never needs the training data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from charrnn.errors import VocabError


class CharVocab:
    """A fixed, sorted alphabet: id i <-> self.chars[i]."""

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if any(not isinstance(ch, str) or len(ch) != 1 for ch in chars):
            raise VocabError("a vocabulary holds single characters only")
        if chars != sorted(set(chars)):
            raise VocabError("a vocabulary must be sorted and free of duplicates")
        if not chars:
            raise VocabError("a vocabulary needs at least one character")
        self.chars: list[str] = chars
        self.index: dict[str, int] = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every distinct character in `text`."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: str) -> bool:
        return ch in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(tuple(self.chars))

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` not in the vocabulary, in order of first appearance."""
        seen: dict[str, None] = {}
        for ch in text:
            if ch not in self.index:
                seen.setdefault(ch, None)
        return list(seen)

    def encode(self, text: str) -> list[int]:
        """str -> ids; raises VocabError naming every character the vocabulary lacks."""
        try:
            return [self.index[ch] for ch in text]
        except KeyError:
            unknown = describe_unknown(self.unknown(text))
            raise VocabError(f"the vocabulary lacks {unknown}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> str; the inverse of encode."""
        chars = self.chars
        return "".join(chars[i] for i in ids)

    def to_list(self) -> list[str]:
        """The plain-data form stored in checkpoints."""
        return list(self.chars)

    @classmethod
    def from_list(cls, chars: Sequence[str]) -> CharVocab:
        return cls(chars)


def describe_unknown(chars: Sequence[str], limit: int = 20) -> str:
    """Name characters on one line, e.g. `2 characters: 'é' (U+00E9), '€' (U+20AC)`."""
    shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in chars[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    noun = "character" if len(chars) == 1 else "characters"
    return f"{len(chars)} {noun}: {shown}{more}"
