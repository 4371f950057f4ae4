"""Ids on disk and in memory: compact encoding, the train/val split, and stateful stream batching
(docs/how-it-works.md). Knows nothing of the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch

from charrnn.errors import ConfigError, CorpusError, VocabError
from charrnn.text.vocab import CharVocab, locate_unknown

MAX_VOCAB = 65_536  # a character model needs an output per character; beyond this it is not text
_ENCODE_BLOCK = 1 << 22  # characters per block, so encoding a huge text never holds int64 of it all


def id_dtype(vocab_size: int) -> torch.dtype:
    """The smallest integer dtype that holds every id: uint8 up to 256 characters."""
    if vocab_size <= 256:
        return torch.uint8
    if vocab_size <= 32768:
        return torch.int16
    return torch.int32


def code_points(text: str) -> torch.Tensor:
    """str -> (n,) code points: uint8 for ASCII (its bytes), else int32 (lone surrogates too)."""
    if not text:
        return torch.empty(0, dtype=torch.uint8)
    if text.isascii():  # O(1) in CPython
        return torch.frombuffer(bytearray(text.encode("ascii")), dtype=torch.uint8)
    raw = text.encode("utf-32-le", "surrogatepass")
    return torch.frombuffer(bytearray(raw), dtype=torch.int32)


def encode(text: str, vocab: CharVocab) -> torch.Tensor:
    """str -> (N,) ids in the smallest dtype; vectorised, about 100x faster than a dict per char.

    ASCII text with a one-byte vocabulary goes through bytes.translate (code point -> id) at
    memory speed; anything else through a binary search of the code points, sorted.
    """
    dtype = id_dtype(len(vocab))
    out = torch.empty(len(text), dtype=dtype)
    points = torch.tensor([ord(c) for c in vocab.chars], dtype=torch.int32)
    table, order = points.sort()  # sorted code points, and the id of each (a grown vocabulary)
    ascii_ids = bytearray(256)
    for i, c in enumerate(vocab.chars):
        if ord(c) < 128:
            ascii_ids[ord(c)] = i
    ascii_known = bytes(ord(c) for c in vocab.chars if ord(c) < 128)
    for start in range(0, len(text), _ENCODE_BLOCK):
        piece = text[start : start + _ENCODE_BLOCK]
        if dtype == torch.uint8 and piece.isascii():
            raw = piece.encode("ascii")
            if raw.translate(None, ascii_known):  # bytes left after deleting every known one
                raise VocabError(f"the vocabulary lacks {locate_unknown(piece, vocab, start)}")
            ids = torch.frombuffer(bytearray(raw.translate(ascii_ids)), dtype=torch.uint8)
        else:
            points = code_points(piece).to(torch.int32)
            at = torch.searchsorted(table, points).clamp_(max=len(table) - 1)
            if not torch.equal(table[at], points):
                raise VocabError(f"the vocabulary lacks {locate_unknown(piece, vocab, start)}")
            ids = order[at]
        out[start : start + len(piece)] = ids.to(dtype)
    return out


def reindex(ids: torch.Tensor, source: CharVocab, target: CharVocab) -> torch.Tensor:
    """`ids` (N,) of `source` as ids of `target` (a vocabulary grown from another that holds every
    character of `source`), in blocks; `ids` itself, still memory-mapped, if the two are one."""
    if source.chars == target.chars:
        return ids
    if missing := [c for c in source.chars if c not in target]:
        raise VocabError(f"the vocabulary lacks {locate_unknown(''.join(missing), target)}")
    table = torch.tensor([target.index[c] for c in source.chars])  # source id -> target id
    dtype = id_dtype(len(target))
    out = torch.empty(len(ids), dtype=dtype)
    for start in range(0, len(ids), _ENCODE_BLOCK):
        out[start : start + _ENCODE_BLOCK] = table[ids[start : start + _ENCODE_BLOCK].long()]
    return out


def char_counts(ids: torch.Tensor, vocab_size: int) -> list[int]:
    """How often each id occurs in `ids` (N,), read in blocks (a memory-mapped corpus stays put)."""
    counts = torch.zeros(vocab_size, dtype=torch.int64)
    for start in range(0, len(ids), _ENCODE_BLOCK):
        counts += torch.bincount(ids[start : start + _ENCODE_BLOCK].int(), minlength=vocab_size)
    return counts.tolist()


def unseen_share(train_counts: list[int], val_ids: torch.Tensor) -> float:
    """The share of the validation characters `val_ids` (N,) that the training part (its
    char_counts, `train_counts`) never has: what no training can teach (a last file in another
    language, a table at the end)."""
    if not len(val_ids):
        return 0.0
    return sum(unseen_chars(train_counts, val_ids).values()) / len(val_ids)


def unseen_chars(train_counts: list[int], val_ids: torch.Tensor) -> dict:
    """{id: its count in `val_ids`} for the ids of the validation part that the training part
    (its char_counts, `train_counts`) never has, most frequent first."""
    vocab_size = len(train_counts)
    never = [n == 0 for n in train_counts]
    counts = char_counts(val_ids, vocab_size)
    found = {i: c for i, (c, unseen) in enumerate(zip(counts, never, strict=True)) if unseen and c}
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


# Characters of a list (one item a line) that list_shape reads at most: lists are short, and
# it holds the lines as Python strings
LIST_SHAPE_CHARS = 5_000_000


@dataclass
class ListShape:
    """How a list's split reads (list_shape): whether its lines are in sorted order (the share of
    neighbours in strict order, either way, the first and last line), and the share of the
    validation part's whole lines that the training part holds too."""

    in_order: float
    first: str
    last: str
    repeated: float


def list_shape(train_ids: torch.Tensor, val_ids: torch.Tensor, vocab: CharVocab):
    """A text of one item a line, its training (N,) and validation (M,) ids: its ListShape, or
    None where it is too long (LIST_SHAPE_CHARS) or holds too few lines to say."""
    if len(train_ids) + len(val_ids) > LIST_SHAPE_CHARS:
        return None
    chars = vocab.chars
    train = "".join(map(chars.__getitem__, train_ids.tolist())).split("\n")
    val = "".join(map(chars.__getitem__, val_ids.tolist())).split("\n")[1:-1]  # whole lines
    lines = [line for line in train + val if line.strip()]
    val = [line for line in val if line.strip()]
    if len(lines) < 20 or len(val) < 5:
        return None
    folded = [line.casefold() for line in lines]
    pairs = list(pairwise(folded))
    up, down = sum(a < b for a, b in pairs), sum(a > b for a, b in pairs)
    # A to Z, or Z to A, of the neighbours that differ (a line repeated, `And` beside `and`, is
    # in either order), where most do (one line repeated is no order)
    in_order = max(up, down) / (up + down) if up + down >= len(pairs) / 2 else 0.0
    known = set(train)
    repeated = sum(line in known for line in val) / len(val)
    return ListShape(in_order, lines[0], lines[-1], repeated)


def train_length(n_chars: int, val_frac: float) -> int:
    """Characters of a text of `n_chars` that `split` gives to training."""
    return int(n_chars * (1.0 - val_frac))


def split(ids: torch.Tensor, val_frac: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (1 - val_frac) of the text to train on, the contiguous rest to validate on."""
    if not 0.0 < val_frac < 1.0:
        raise ConfigError(f"--val-frac must be between 0 and 1 (exclusive), not {val_frac}")
    n_train = train_length(len(ids), val_frac)
    return ids[:n_train], ids[n_train:]


def check_vocab(vocab: CharVocab) -> None:
    """A corpus must have something to learn, and be text: 2 to MAX_VOCAB distinct characters."""
    if len(vocab) < 2:
        raise CorpusError(
            f"the corpus is one character ({vocab.chars[0]!r}) repeated: there is nothing to "
            "learn; train on real text"
        )
    if lone := [c for c in vocab.chars if 0xD800 <= ord(c) <= 0xDFFF]:
        raise CorpusError(
            f"the corpus holds U+{ord(lone[0]):04X}, a lone surrogate (half of a UTF-16 pair, no "
            "character, which text read as UTF-7 or broken UTF-16 can hold): a model could not "
            "write it as text; take it out of the text"
        )
    if len(vocab) > MAX_VOCAB:
        raise CorpusError(
            f"the corpus has {len(vocab):,} distinct characters, more than the {MAX_VOCAB:,} a "
            "character model can handle well; is it really text? (check --encoding)"
        )


def check_fits(n_chars: int, batch_size: int, seq_len: int, what: str, fix: str) -> None:
    """Raise a ConfigError that says how small a split is and what to change, if it is too small."""
    need = batch_size * seq_len + 1
    if n_chars < need:
        raise ConfigError(
            f"the {what} split has {n_chars:,} character{'s' * (n_chars != 1)}, fewer than one "
            f"batch needs ({batch_size} stream{'s' * (batch_size != 1)} x {seq_len} "
            f"character{'s' * (seq_len != 1)} + 1 "
            f"= {need:,}); {fix}"
        )


def fit_advice(
    n_chars: int, batch_size: int, seq_len: int, val_frac: float, world: int = 1, batch_given=True
) -> str:
    """What lets a text of `n_chars` train where a split is too short for one batch, each way
    with the value that works and only the ways that would: a smaller batch or window (that fits
    both splits: the user is not refused next by the other), another --val-frac, and always the
    length of text these values need. `batch_given`: False where a preset picks the batch, so
    only --seq-len is the user's to change."""
    need = batch_size * world * seq_len + 1
    fixes = []
    n_train = train_length(n_chars, val_frac)
    smaller = min(n_train, n_chars - n_train)  # the split a batch must fit
    window = min(seq_len, (smaller - 1) // world)
    if window >= 1 and batch_given:
        batch = (smaller - 1) // (window * world)
        fixes.append(
            f"a smaller --batch-size or --seq-len (--batch-size {batch} --seq-len {window} fits "
            "this text)"
        )
    elif 1 <= window < seq_len:
        fixes.append(f"a shorter --seq-len (--seq-len {window} fits this text)")
    if (frac := _val_frac_fitting(n_chars, need)) is not None:
        fixes.append(f"--val-frac {frac:g}")
    # the least text: each split holds at most one character more than its share, so none
    # shorter fits; both splits grow with the text, so the first length that fits is it
    enough = max(2 * need, int((need - 1) / min(val_frac, 1 - val_frac)))
    while not _splits_fit(enough, val_frac, need):
        enough += 1
    fixes.append(f"more text ({enough:,} characters or more for these values)")
    return "use " + ", ".join(fixes[:-1]) + (", or " if len(fixes) > 1 else "") + fixes[-1]


def _splits_fit(n_chars: int, val_frac: float, need: int) -> bool:
    n_train = train_length(n_chars, val_frac)
    return n_train >= need and n_chars - n_train >= need


def _val_frac_fitting(n_chars: int, need: int) -> float | None:
    """The smallest --val-frac, in hundredths, with which both splits hold `need` characters."""
    for hundredths in range(1, 100):
        if _splits_fit(n_chars, hundredths / 100, need):
            return hundredths / 100
    return None


EVAL_MIN_COLS = 32  # the presets' T: their evaluations read as they always have


class StreamBatcher:
    """Cuts ids into B contiguous streams of L = (N-1)//B and serves (x, y) batches of shape
    (B, T), in order: row b of batch k+1 continues row b of batch k, so the state batch k leaves is
    where batch k+1 starts (docs/how-it-works.md draws it). At most T-1 characters per stream are
    left over each epoch."""

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, rank=0, world=1):
        """`world` processes share B x world streams; this one (`rank`) serves B of them."""
        self.batch_size, self.seq_len = batch_size, seq_len
        streams = batch_size * world
        stream_len = (len(ids) - 1) // streams
        if stream_len < seq_len:
            raise ConfigError(
                f"{len(ids):,} characters cannot fill one batch of {streams} x {seq_len}"
            )
        n = streams * stream_len
        rows = slice(rank * batch_size, (rank + 1) * batch_size)
        self.x = ids[:n].view(streams, stream_len)[rows]  # views: no copy of the corpus
        self.y = ids[1 : n + 1].view(streams, stream_len)[rows]
        self.ids, self.stream_len, self.n = ids, stream_len, n
        self.first_stream = rank * batch_size  # rows of the whole (B x world, L) block served here
        self.last_rank = rank == world - 1  # its last stream is the one the leftover continues

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.stream_len // self.seq_len

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch k: inputs and targets, each (B, T) int64."""
        if not 0 <= k < len(self):
            raise IndexError(k)
        cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return self.x[:, cols].long(), self.y[:, cols].long()

    @property
    def eval_cols(self) -> int:
        """Columns per evaluation chunk: T, or EVAL_MIN_COLS where T is shorter. The state is
        carried from chunk to chunk, so the width changes no loss; a call of the recurrent kernel
        per character or two (`--seq-len 1`) costs a hundred times the reading."""
        return max(self.seq_len, EVAL_MIN_COLS)

    def eval_chunks(self):
        """Every target of the split exactly once, in order: (x, y, tail) chunks for evaluation.

        The (B, L) block comes in chunks of eval_cols columns (the last one shorter); then the
        r < B characters that do not fill a whole row come as one (1, r) row with tail=True, which
        continues stream B-1 (so an evaluator carries that row's state into it).
        """
        for start in range(0, self.stream_len, self.eval_cols):
            cols = slice(start, start + self.eval_cols)
            yield self.x[:, cols].long(), self.y[:, cols].long(), False
        n = self.n
        if self.last_rank and n + 1 < len(self.ids):
            yield self.ids[n:-1].long().unsqueeze(0), self.ids[n + 1 :].long().unsqueeze(0), True
