"""How typical is a text for a model: bits per character, for a whole text or line by line.

Texts and lines are read at most `chunk` positions (rows x characters) and PASS_COLS characters
of each row per forward pass, with the state carried from pass to pass: the (B, T, V) logits and
the recurrent kernel's buffers stay bounded, so a text, or a line, of any length costs time and
no more memory than a short one (oneDNN refuses one sequence of a few hundred thousand
characters).

A long text is read as several streams side by side (`split`), each after a warm-up on the text
just before its piece, which is several times faster than one stream and agreed with it within
0.0001 nats per character on the texts measured (docs/commands.md, `charrnn score`; more on a
text that repeats itself for thousands of characters, whose state 256 do not reach);
`streams=1` reads it as one stream, exactly. The end of each warm-up is the end of the piece
before it, read by both streams: where the two readings differ (a young model's cold start that
runs away and stays away), the pieces are read again as one stream, or the whole text is
(`_read_split`).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.nn.utils.rnn import pad_sequence

from charrnn.errors import ConfigError, VocabError, require_callable, require_whole
from charrnn.model.network import select_streams
from charrnn.model.trained import CHUNK, PASS_COLS, TRIAL_COLS, Model, require_model
from charrnn.text.data import encode
from charrnn.text.vocab import locate_unknown
from charrnn.threads import ThreadTuner, timed, tuned_threads

# How a long text is split, chosen by measurement (bench/score_speed.py, docs/commands.md):
STREAMS = 32  # streams at most: about the most that still speeds up a pass on a CPU
WARMUP = 256  # characters each later stream reads, unscored, before its piece
MIN_PIECE = 4096  # characters scored per stream at least: a shorter text is read as one stream
CHECKED = 64  # characters at the end of each warm-up: the stream before reads them too
AGREE = 0.05  # nats a character the two readings of them may differ by, on the mean (measured:
# 0.001 at most for sound models, 5.5-5.9 where a young model's warm-up ran away)


class Row(NamedTuple):
    """One stream of a split text: it reads text[start:end] and scores text[scored:end]."""

    start: int
    scored: int
    end: int


def split(length: int, streams: int | None = None, warmup: int = WARMUP) -> list[Row]:
    """How a text of `length` characters is read: `streams` rows (None: as many as the length
    makes worth it, up to STREAMS; 1: one row, the exact one-stream read) whose scored pieces
    cover every character once, in order; each row after the first starts `warmup` characters
    before its piece."""
    if streams is None:
        streams = min(STREAMS, length // MIN_PIECE)
    streams = max(1, min(streams, length))
    bounds = [j * length // streams for j in range(streams + 1)]
    return [
        Row(max(0, a - warmup) if j else 0, a, b)
        for j, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


@torch.inference_mode()
def score_text(
    model: Model,
    text: str,
    chunk: int = CHUNK,
    streams: int | None = None,
    warmup: int = WARMUP,
    between: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> float:
    """Total nats the model spends on `text`, from a cold start: read as one stream where
    `streams` is 1 (or the text is short), else as `split` cuts it, in at most one stream per
    MIN_PIECE characters (more would read the warm-ups more than the text). Read without
    dropout, whatever mode the network is in (and left in it). `between` is called after each
    pass: what it raises ends the read (the command's reader has left); `progress(done, total)`
    too, with the characters read so far of those the round reads (a round that reads pieces
    again starts from 0)."""
    require_model(model)
    if not isinstance(text, str):
        raise ConfigError(f"the text must be a str, not {type(text).__name__}")
    require_whole("chunk", chunk, 1)
    require_whole("warmup", warmup, 0)
    require_callable("between", between)
    require_callable("progress", progress)
    if streams is not None:  # None: as many as the length makes worth it
        require_whole("streams", streams, 1)
        streams = max(1, min(streams, len(text) // MIN_PIECE))
    if not set(text) <= model.vocab.index.keys():  # named where they are in the whole text
        model.vocab.encode(text)  # (its VocabError, not one a piece of a split text would give)
    rows = split(len(text), streams, warmup)
    # the text's ids once, in the vocabulary's smallest dtype (a byte a character, mostly): the
    # rows read views of them, where the text's pieces and their ids would be copies
    ids = encode(text, model.vocab)  # (N,)
    with model.evaluating(), tuned_threads(model.device.type == "cpu") as tuner:
        checked = min(CHECKED, warmup)
        return _read_split(model, ids, rows, chunk, tuner, checked, between, progress)


def _read_split(
    model: Model,
    ids: torch.Tensor,
    rows: list[Row],
    chunk: int,
    tuner: ThreadTuner | None,
    checked: int,
    between: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> float:
    """Total nats of a text, its `ids` (N,), read as `rows` (in the text's order) side by side.
    Where a row's warm-up reads its last `checked` characters differently from the row before,
    whose piece ends with them, the warm-up has not brought the row to the state the text had
    there: the two rows are read again as one. Where that is not enough after one such round, or
    would read half the text again, the whole text is read as one stream: the cost stays under
    twice the exact read's (a young model on random text merged round after round, reading its
    text 7 times)."""
    totals, heads, tails = [0.0] * len(rows), [0.0] * len(rows), [0.0] * len(rows)
    todo = range(len(rows))  # the rows not read yet, by index
    for rounds in itertools.count():  # rounds of reading done so far
        rereading = sum(rows[i].end - rows[i].start for i in todo)
        if rounds == 2 or (rounds == 1 and rereading > len(ids) / 2):
            rows, todo = [Row(0, 0, len(ids))], [0]  # the exact read
            totals, heads, tails = [0.0], [0.0], [0.0]
        order = sorted(todo, key=lambda i: rows[i].end - rows[i].start)  # shortest first
        pieces = [ids[rows[i].start : rows[i].end] for i in order]  # views
        skips = [rows[i].scored - rows[i].start for i in order]
        read = _total_nats(model, pieces, chunk, tuner, skips, checked, between, progress)
        for k, i in enumerate(order):
            totals[i], heads[i], tails[i] = (float(x[k]) for x in read)
        apart = {j for j in range(1, len(rows)) if abs(heads[j] - tails[j - 1]) > AGREE * checked}
        if not apart:
            return sum(totals)
        merged, kept, again = [], [], set()  # a row apart from the one before joins it
        for j, row in enumerate(rows):
            if j in apart:  # never the first
                merged[-1] = Row(merged[-1].start, merged[-1].scored, row.end)
                again.add(len(merged) - 1)
            else:
                merged.append(row)
                kept.append((totals[j], heads[j], tails[j]))
        rows, todo = merged, sorted(again)
        totals, heads, tails = (list(x) for x in zip(*kept, strict=True))


@torch.inference_mode()
def score_lines(model: Model, lines: list[str], batch: int = 64, chunk: int = CHUNK) -> list[float]:
    """Nats per character of each line, each read on its own from a cold start, so lines compare
    whatever their order; nan for an empty line. A line is scored as given: with the \\n that ends
    it, as `charrnn score --per-line` reads it. Runs lines of similar length as one batch; without
    dropout, as score_text."""
    require_model(model)
    given = lines if isinstance(lines, list | tuple) else None  # not one text, a line a character
    if given is None or not all(isinstance(line, str) for line in given):
        raise ConfigError("the lines must be a list of str, each with the \\n that ends it")
    require_whole("batch", batch, 1)
    require_whole("chunk", chunk, 1)
    known = model.vocab.index.keys()
    for i, line in enumerate(lines):
        if not set(line) <= known:
            raise VocabError(
                f"lines[{i}]: the vocabulary lacks {locate_unknown(line, model.vocab)}"
            )
    scores = [float("nan")] * len(lines)
    order = sorted((i for i, line in enumerate(lines) if line), key=lambda i: len(lines[i]))
    with model.evaluating(), tuned_threads(model.device.type == "cpu") as tuner:
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            texts = [encode(lines[i], model.vocab) for i in rows]
            totals, _, _ = _total_nats(model, texts, chunk, tuner)
            for i, total in zip(rows, totals.tolist(), strict=True):
                scores[i] = total / len(lines[i])
    return scores


def _total_nats(
    model: Model,
    ids: list[torch.Tensor],
    chunk: int,
    tuner: ThreadTuner | None,
    skips: list[int] | None = None,
    checked: int = 0,
    between: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total nats of each of the texts whose `ids` are given ((n_i,) each, in any integer dtype;
    shortest first), read side by side from a cold start, all but the first skips[i] characters
    of text i (a warm-up) scored; each pass timed for `tuner`
    by the characters it reads. Also the nats of the last `checked` characters of each warm-up
    (0 where there is none) and of each text: (n,) float64 each. `between`: called after each
    pass, and `progress(done, total)` with the characters read of all of them."""
    device, net = model.device, model.net
    lengths = [len(x) for x in ids]
    assert lengths == sorted(lengths), "texts must come shortest first"
    n = len(ids)
    skip = torch.tensor(skips or [0] * n, device=device)  # (n,)
    _, last, state = model.start(n)  # last (B, 1, H): each row's h before its next character
    totals = torch.zeros(n, dtype=torch.float64)
    heads, tails = torch.zeros_like(totals), torch.zeros_like(totals)  # the checked ends
    done, t = 0, 0  # rows before `done` have ended; t characters of the others were read
    while (first := bisect.bisect_right(lengths, t)) < n:
        # Rows that ended drop out: time goes to the characters left, not to padding.
        k, done = first - done, first
        state, last = select_streams(state, slice(k, None)), last[k:]
        trial = tuner is not None and tuner.before()  # the count this pass runs on is set here
        width = max(1, min(TRIAL_COLS if trial else PASS_COLS, chunk // (n - done)))
        # a pass's few columns as int64 (the whole text as int64 would be 8 bytes a character)
        y = pad_sequence([x[t : t + width].long() for x in ids[done:]], batch_first=True)
        y = y.to(device)  # (B, w)
        with timed(tuner, y.numel()):
            out, state = net.read(y, state)  # (B, w, H)
            before = torch.cat([last, out[:, :-1]], 1)  # (B, w, H): the h each y was read after
            nats = net.nats(before, y)  # (B, w), the logits a piece at a time
        left = torch.tensor(lengths[done:], device=device) - t
        at = torch.arange(y.shape[1], device=device)
        real = at < left[:, None]  # not padding
        scored = at >= (skip[done:] - t)[:, None]  # not a warm-up
        # summed in float64, for long texts, on the CPU, as MPS has no float64
        totals[done:] += (nats * (real & scored)).sum(1).cpu().double()
        if checked:
            head = ~scored & (at >= (skip[done:] - checked - t)[:, None])
            tail = real & (at >= left[:, None] - checked)
            heads[done:] += (nats * head).sum(1).cpu().double()
            tails[done:] += (nats * tail).sum(1).cpu().double()
        last, t = out[:, -1:], t + y.shape[1]
        if between is not None:
            between()
        if progress is not None:
            progress(sum(min(t, n) for n in lengths), sum(lengths))
    return totals, heads, tails
