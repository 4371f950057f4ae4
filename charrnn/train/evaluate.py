"""Evaluation: nats per character over a split, each stream from a cold start as a user begins.

Streams are read side by side with their state carried along. A stream far worse than the typical
one has either run away (its carried state reads it far worse than a sound state would: the
cold-start check must not take it as a warm reference) or is text unlike the rest (a table of
symbols in prose, characters the model has not learned); windows of it read on from the state of
the best-read stream tell the two apart."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from charrnn.model.network import expand_state, select_streams
from charrnn.model.runaway import RUNAWAY_NATS
from charrnn.model.trained import Model
from charrnn.text.data import StreamBatcher
from charrnn.train.coldstart import MIN_SPAN
from charrnn.train.distributed import SINGLE, Dist


@dataclass
class Validation:
    """What an evaluation measured; the per-target tensors are this rank's (NaN / -1 elsewhere)."""

    loss: float  # mean nats per character over every target of the split
    worst: float  # mean nats per character of the worst stream: a runaway cannot hide in a mean
    # Streams more than RUNAWAY_NATS worse than the median one, told apart (_ran_away): those whose
    # carried state ran away, and those whose text is unlike the rest.
    runaway_streams: int
    unlike_streams: int
    typical: float  # mean nats per character over the other streams: what text like the rest costs
    # (start, end): the characters of the split (its ids[start:end]) each unlike stream holds
    unlike_at: list[tuple[int, int]]
    nats: torch.Tensor  # (N - 1,): nats[j - 1] is the loss of predicting ids[j]
    context: torch.Tensor  # (N - 1,): characters the stream had read before predicting ids[j]


@torch.no_grad()
def evaluate(
    model: Model,
    batches: StreamBatcher,
    should_stop=None,
    dist: Dist = SINGLE,
    cold: bool = True,
    streams: int | None = None,
    chars: int | None = None,
) -> Validation | None:
    """Nats per character over every target of the split, with state carried along each stream;
    None if `should_stop()` turns true on the way (a stop must not wait for a long evaluation).
    `streams`, `chars`: read only `streams` of this rank's streams, spread evenly over them (the
    first, the last and between: a few first streams would be only the start of the split), the
    first `chars` characters of each (None: all; a part leaves out the leftover that continues
    the last one).

    Each stream begins where `sample` and `score` begin, from the model's cold start (`cold`
    False: a zero state alone), so the figure is what a user of the model will get.
    Distributed, each rank evaluates its own streams and the sums are added up."""
    length = batches.stream_len
    b = min(streams or batches.batch_size, batches.batch_size)
    read_len = min(chars or length, length)
    with model.evaluating():
        read = _read_split(model, batches, should_stop, cold, b, read_len)
    if read is None:
        return None
    per_target, context, carried = read
    device = model.device
    first = batches.first_stream * length  # where this rank's first stream starts in the split
    mine = context >= 0  # (a NaN loss stays in the sums: it must show, not vanish)
    total, count = dist.all_sum([float(per_target[mine].double().sum()), float(mine.sum())], device)
    picked = spread(b, batches.batch_size).tolist()
    spans = [(first + s * length, first + s * length + read_len) for s in picked]  # stream s's
    whole = b == batches.batch_size and read_len == length
    if whole and batches.last_rank:  # the last stream with the tail, if any
        spans[-1] = (spans[-1][0], len(per_target))
    means = torch.stack([per_target[i:j].mean() for i, j in spans])
    every = dist.all_gather(means.to(device), dim=0).cpu()  # (B x world,)
    far = (means > every.median() + RUNAWAY_NATS).tolist()  # far worse than the typical stream
    flagged = [span for span, bad in zip(spans, far, strict=True) if bad]
    # the state of this rank's best-read stream: where the model reads text as it should
    sound = select_streams(carried, means.nan_to_num(math.inf).argmin().view(1))
    ran_away = _ran_away(model, batches.ids, per_target, flagged, sound)
    # A stream that ran away is no warm reference for the cold-start check (which would then see
    # a small gap where there is a large one); text unlike the rest is one.
    for (i, j), bad in zip(flagged, ran_away, strict=True):
        if bad:
            context[i:j] = -1
    kept = [(i, j) for (i, j), bad in zip(spans, far, strict=True) if not bad]
    kept_nats = sum(float(per_target[i:j].double().sum()) for i, j in kept)
    runaways, unlike, kept_nats, kept_count = dist.all_sum(
        [sum(ran_away), len(flagged) - sum(ran_away), kept_nats, sum(j - i for i, j in kept)],
        device,
    )
    typical = kept_nats / kept_count if kept_count else math.nan
    worst = float(every.max())
    unlike_at = torch.full((len(spans), 2), -1, dtype=torch.long)  # (b, 2): a row per stream
    for row, ((i, j), bad) in enumerate(zip(flagged, ran_away, strict=True)):
        if not bad:  # targets i .. j-1 predict ids[i + 1 .. j]: the stream holds ids[i : j + 1]
            unlike_at[row] = torch.tensor([i, j + 1])
    unlike_at = dist.all_gather(unlike_at.to(device), dim=0).cpu()  # every rank's, in order
    at = [(int(i), int(j)) for i, j in unlike_at.tolist() if i >= 0]
    return Validation(
        total / count, worst, int(runaways), int(unlike), typical, at, per_target, context
    )


# A far-worse stream ran away where windows of it read after a sound state read its text this
# much better (nats per character) than its own carried state did; text that is merely unlike
# the rest reads no better after any state.
RAN_AWAY_BY = RUNAWAY_NATS / 2
WINDOWS = 4  # windows read in each far-worse stream
WARM_UP = 100  # characters each window reads before the ones it scores (at most)


@torch.no_grad()
def _ran_away(
    model: Model, ids: torch.Tensor, nats: torch.Tensor, spans: list, sound: tuple
) -> list[bool]:
    """For each span (i, j) of `nats` (a stream's targets: nats[k] is the loss of ids[k + 1]),
    whether its carried state ran away rather than its text being unlike the rest: WINDOWS
    windows inside it, each read on from `sound` (a one-stream state that reads the text as it
    should, e.g. the best-read stream's: not a cold start, which a model may not yet survive),
    read its last characters more than RAN_AWAY_BY better on average than the stream did. A
    stream too short for windows is not judged a runaway: nothing says so."""
    net, verdicts = model.net, []
    for i, j in spans:
        length = j - i
        skip, span = min(WARM_UP, length // 6), min(200, length // 3)  # as the check's, to fit
        room = length - skip - span  # where a window may start
        if span < MIN_SPAN or room < WINDOWS:
            verdicts.append(False)
            continue
        at = [i + k * room // WINDOWS for k in range(1, WINDOWS + 1)]
        x = torch.stack([ids[p : p + skip + span] for p in at]).long()  # (W, skip + span)
        y = torch.stack([ids[p + skip + 1 : p + skip + span + 1] for p in at]).long()  # (W, span)
        warm = torch.stack([nats[p + skip : p + skip + span].mean() for p in at])  # (W,)
        with model.evaluating():
            out, _ = net.read(x.to(model.device), expand_state(sound, WINDOWS))  # (W, t, H)
            fresh = net.nats(out[:, skip:], y.to(model.device)).mean(1).cpu()  # (W,)
        verdicts.append(float((warm - fresh).mean()) > RAN_AWAY_BY)
    return verdicts


def _read_split(model: Model, batches: StreamBatcher, should_stop, cold: bool, b: int, cols: int):
    """(per_target, context) as in Validation, `b` of this rank's streams (`spread`) read side by
    side (their first `cols` characters), and their state after it (b streams, before the tail);
    None if `should_stop()` turns true on the way."""
    net, device, length = model.net, model.device, batches.stream_len
    whole = b == batches.batch_size and cols == length
    state = model.start(b).state if cold else net.init_state(b)
    per_target = torch.full((len(batches.ids) - 1,), math.nan)  # (N - 1,)
    context = torch.full((len(batches.ids) - 1,), -1, dtype=torch.int32)
    first = batches.first_stream * length  # where this rank's first stream starts in the split
    picked = spread(b, batches.batch_size)  # (b,): which streams
    rows = picked[:, None] * length  # (b, 1)
    done = 0  # columns of the (B, L) block read so far
    carried = None  # the b streams' state before the tail, where there is one
    for x, y, tail in batches.eval_chunks():
        if should_stop is not None and should_stop():
            return None
        if (not whole and tail) or (not tail and done >= cols):
            break
        if not tail:
            x, y = x[picked, : cols - done], y[picked, : cols - done]
        if tail:  # the leftover row continues the last stream
            carried, state = state, select_streams(state, slice(-1, None))
        out, state = net.read(x.to(device), state)  # (B, t, H)
        nats = net.nats(out, y.to(device)).cpu()  # (B, t): the logits a piece at a time
        t = y.shape[1]
        if tail:  # targets n+1 .. N-1, after stream B-1's L characters
            at = torch.arange(batches.n, batches.n + t)
            read = torch.arange(length, length + t, dtype=torch.int32)
        else:  # target j of stream s, column k: ids[first + s*L + k + 1]
            at = (first + rows + torch.arange(done, done + t)).flatten()
            read = torch.arange(done, done + t, dtype=torch.int32).repeat(b)
            done += t
        per_target[at], context[at] = nats.flatten().float(), read
    return per_target, context, state if carried is None else carried


def spread(b: int, streams: int) -> torch.Tensor:
    """(b,) indices of `b` of `streams` streams spread evenly over them, first and last among
    them (b == streams: all of them, in order)."""
    if b >= streams:
        return torch.arange(streams)
    if b == 1:
        return torch.zeros(1, dtype=torch.long)
    return torch.div(torch.arange(b) * (streams - 1), b - 1, rounding_mode="floor")
