"""CharVocab: Unicode code points <-> integer ids, the sorted characters of the training text
(with those a fine-tune added after them: `grown`), stored in every checkpoint. No torch.
"""

from __future__ import annotations

import operator
import unicodedata
from collections.abc import Iterable, Sequence

from charrnn.defaults import UNKNOWN
from charrnn.errors import ConfigError, VocabError


class CharVocab:
    """A fixed alphabet: id i <-> self.chars[i]; sorted, unless grown."""

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if any(not isinstance(ch, str) or len(ch) != 1 for ch in chars):
            raise VocabError("a vocabulary holds single characters only")
        if len(set(chars)) != len(chars):
            raise VocabError("a vocabulary must be free of duplicates")
        if not chars:
            raise VocabError("a vocabulary needs at least one character")
        self.chars: list[str] = chars
        self.index: dict[str, int] = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every distinct character in `text`."""
        if not isinstance(text, str):
            raise VocabError(f"a vocabulary is made from a str, not {type(text).__name__}")
        return cls(sorted(set(text)))

    def grown(self, text_chars: Iterable[str]) -> CharVocab:
        """This vocabulary with the characters of `text_chars` it lacks appended, sorted: every
        character it has keeps its id."""
        new = sorted(set(text_chars) - set(self.index))
        return CharVocab([*self.chars, *new]) if new else self

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: str) -> bool:
        return ch in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(tuple(self.chars))

    def encode(self, text: str) -> list[int]:
        """str -> ids; raises VocabError naming every character the vocabulary lacks."""
        try:
            return [self.index[ch] for ch in text]
        except KeyError:
            raise VocabError(f"the vocabulary lacks {locate_unknown(text, self)}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> str; the inverse of encode; an id outside the vocabulary (-1 too, which would
        read as the last character) is a VocabError."""
        chars, out = self.chars, []
        for i in ids:
            try:
                k = -1 if isinstance(i, bool) else operator.index(i)  # an int, NumPy's, a tensor's
            except TypeError:
                k = -1
            if not 0 <= k < len(chars):
                raise VocabError(f"{i!r} is not an id of this vocabulary (0 to {len(chars) - 1})")
            out.append(chars[k])
        return "".join(out)

    def to_list(self) -> list[str]:
        """The plain-data form stored in checkpoints."""
        return list(self.chars)

    @classmethod
    def from_list(cls, chars: Sequence[str]) -> CharVocab:
        return cls(chars)


UNKNOWN_POLICIES = ("error", "skip", "replace")
_LOOKALIKES = {"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "\u00a0": " "}


def known_form(text: str, vocab: CharVocab) -> str:
    """`text` in the Unicode form, as typed, NFC or NFD, with the fewest characters `vocab` lacks:
    the same text as the model reads and writes it (é as e + U+0301 where it read that); the text
    itself, unread twice, where the vocabulary has every character of it."""
    if set(text) <= vocab.index.keys():
        return text
    forms = [text, *(unicodedata.normalize(f, text) for f in ("NFC", "NFD"))]
    return min(forms, key=lambda t: sum(ch not in vocab.index for ch in t))


def apply_unknown(
    text: str,
    vocab: CharVocab,
    policy: str = UNKNOWN,
    what: str = "the prime",
    typed: bool = False,
    model: str = "the model",
) -> str:
    """Text the vocabulary can read: unknown characters are an error, skipped, or replaced;
    `typed`: the text was typed on a command line (the error then says how to type a line break
    where it holds a backslash and an n); `model`: the model's name in the error, one of several."""
    if not isinstance(policy, str) or policy not in UNKNOWN_POLICIES:
        raise ConfigError(f"unknown must be one of {', '.join(UNKNOWN_POLICIES)}, not {policy!r}")
    # é typed as one code point to a model that read e + U+0301 (or the other way) is the same
    # text: read in the model's Unicode form, whatever the policy
    given, text = text, known_form(text, vocab)
    if not (set(text) - set(vocab.index)):
        return text
    if policy == "skip":
        return "".join(ch for ch in text if ch in vocab)
    if policy == "replace":  # the nearest the vocabulary has (é -> e, “ -> ", … -> ...), or a space
        space = " " if " " in vocab else ""
        return "".join(ch if ch in vocab else lookalike(ch, vocab) or space for ch in text)
    form = typed_line_breaks(text, vocab) if typed else ""
    raise VocabError(
        f"{what} has characters {model} has never seen: {locate_unknown_as_typed(given, vocab)}"
        f"{form}; remove them, or pass --unknown skip or --unknown replace"
    )


def typed_line_breaks(text: str, vocab: CharVocab) -> str:
    """For a text typed on a command line that the vocabulary cannot read: where it holds `\\n`
    (in quotes, a backslash and an n) and the vocabulary has line breaks but no backslash, how to
    type a line break; else ""."""
    if "\\" in vocab or "\n" not in vocab or "\\n" not in text:
        return ""
    return (
        " (\\n typed in quotes is a backslash and an n: type a line break itself, as $'...\\n'"
        " does in bash)"
    )


def locate_unknown(text: str, vocab: CharVocab, offset: int = 0, limit: int = 10) -> str:
    """e.g. `'é' (U+00E9) at characters 4, 11; '€' (U+20AC) at character 20` (counted from 1,
    as a reader counts, after `offset`)."""
    where: dict[str, list[int]] = {}
    for i, ch in enumerate(text, start=offset + 1):
        if ch not in vocab.index:
            where.setdefault(ch, []).append(i)
    return _places(where, limit)


def locate_unknown_as_typed(text: str, vocab: CharVocab, limit: int = 10) -> str:
    """locate_unknown of what `vocab` lacks in `text` read in its Unicode form (e + U+0301 typed
    where it knows é is no unknown character), each where it is in `text` as typed: a character
    with its combining marks is read in the form with fewest unknown characters, and what is left
    unknown is placed where that character begins."""
    where: dict[str, list[int]] = {}
    starts = [i for i, ch in enumerate(text) if i == 0 or not unicodedata.combining(ch)]
    for a, b in zip(starts, [*starts[1:], len(text)], strict=True):
        if not set(text[a:b]) <= vocab.index.keys():
            for ch in known_form(text[a:b], vocab):
                if ch not in vocab.index:
                    where.setdefault(ch, []).append(a + 1)
    return _places(where, limit)


def _places(where: dict[str, list[int]], limit: int) -> str:
    """Each character at its places (from 1), the first `limit` characters and 5 places each."""
    parts = []
    for ch, places in list(where.items())[:limit]:
        shown = ", ".join(map(str, places[:5])) + (", ..." if len(places) > 5 else "")
        which = "characters" if len(places) > 1 else "character"
        parts.append(f"{ch!r} (U+{ord(ch):04X}) at {which} {shown}")
    more = f"; and {len(where) - limit} more" if len(where) > limit else ""
    return "; ".join(parts) + more


def lookalike(ch: str, vocab: CharVocab) -> str:
    """What `ch` looks like in the vocabulary's characters (é -> e, “ -> ", … -> ...), or the
    other case's where the vocabulary has one case only (Z -> z, É -> e), or ""."""
    nfkd = unicodedata.normalize("NFKD", ch)
    for candidate in (_LOOKALIKES.get(ch, ""), nfkd, nfkd.lower(), nfkd.upper()):
        kept = "".join(c for c in candidate if c in vocab)
        if kept:
            return kept
    return ""
