"""Memory, measured: the bits a model spends on a closer, by how far back its opener is, and how
much of the gradient of a character's loss reaches each character before it.

On a recall text (text/recall.py) per gap d, where only memory of *which* opener predicts the
closer; on real text per distance bin (brackets in code, quotes in prose). What the two show and
why: docs/cells-and-memory.md. Both read like scoring.py: from the model's cold start, a few
thousand positions per forward pass with the state carried (Model.read). The gradient's reach
(gradient_by_distance) is why a vanilla RNN forgets, measured on any text.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from charrnn.errors import ConfigError, require_callable
from charrnn.text.recall import PAIRS, parse_recall

if TYPE_CHECKING:
    import torch

    from charrnn.model.trained import Model

CHUNK = 8192  # positions (streams x characters) per forward pass, as in scoring.py

CODE_PAIRS = ("()", "[]", "{}")
DISTANCE_BINS = (5, 10, 20, 50, 100, 200, 400)  # upper ends; the last bin is everything above


@dataclass(frozen=True)
class GapResult:
    """The closers of one gap d: how many, the mean bits the model spent on them, how often the
    likeliest of the K closers was the right one, and chance (log2 K bits)."""

    gap: int
    count: int
    bits: float
    accuracy: float
    chance: float


def recall_loss(
    model: Model,
    text: str,
    kinds: int | None = None,
    streams: int = 64,
    chunk: int = CHUNK,
) -> dict[int, GapResult]:
    """Per gap d (ascending): the model's loss on the closer of each record of a recall text.

    `kinds` is K (default: as many as the text shows, i.e. up to its highest kind); it sets
    chance and the closers the accuracy chooses among. Records are independent, so the text is
    read as `streams` side-by-side streams cut at line starts, each from a cold start; only the
    first record of each stream starts cold.
    """
    records = parse_recall(text)
    seen = 1 + max(r.kind for r in records)
    kinds = seen if kinds is None else kinds
    if not seen <= kinds <= len(PAIRS):
        raise ConfigError(f"the text holds {seen} kinds of record; kinds={kinds} cannot score it")
    closers = model.vocab.encode("".join(pair[1] for pair in PAIRS[:kinds]))  # (K,) ids
    targets, starts = [r.closer_at for r in records], _line_starts(text, streams)
    bits, right = _closer_bits(model, text, targets, starts, closers, chunk)
    by_gap = _groups(r.gap for r in records)
    return {
        d: GapResult(d, len(mine), _mean(bits, mine), _mean(right, mine), math.log2(kinds))
        for d, mine in sorted(by_gap.items())
    }


def _line_starts(text: str, streams: int) -> list[int]:
    """Where each of up to `streams` pieces of about equal length starts: 0, then line starts."""
    starts = [0]
    for s in range(1, max(1, streams)):
        cut = text.find("\n", s * len(text) // streams) + 1
        if 0 < cut < len(text) and cut > starts[-1]:
            starts.append(cut)
    return starts


# ---------------------------------------------------------------------------------------------
# Real text: closers by the distance back to their openers


def match_pairs(text: str, pairs: Sequence[str] = CODE_PAIRS) -> list[tuple[int, int]]:
    """(opener offset, closer offset) of every matched pair in `text`, in the closers' order.

    Distinct-character pairs nest, matched with one stack: a closer matches the nearest open
    opener of its kind, and openers above that one are dropped as never closed (`( [ )`); a closer
    with no open opener of its kind is ignored (`( ] )`). A pair of one character (`""`) cannot
    nest, so it alternates within a line: the 1st, 3rd, ... occurrence opens, the next closes, one
    left open at a line end is dropped (an apostrophe or a triple quote then makes short, wrong
    pairs, which is why `'` suits code, not prose). Brackets inside quotes count as brackets.
    """
    _check_pairs(pairs)
    opener_of = {p[1]: p[0] for p in pairs if p[0] != p[1]}
    openers = {p[0] for p in pairs if p[0] != p[1]}
    quotes = {p[0] for p in pairs if p[0] == p[1]}
    stack: list[tuple[str, int]] = []
    open_quote: dict[str, int] = {}  # quote char -> offset of the one open on this line
    found = []
    for i, ch in enumerate(text):
        if ch in openers:
            stack.append((ch, i))
        elif ch in opener_of:
            want = opener_of[ch]
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == want:
                    found.append((stack[depth][1], i))
                    del stack[depth:]
                    break
        elif ch in quotes:
            if ch in open_quote:
                found.append((open_quote.pop(ch), i))
            else:
                open_quote[ch] = i
        elif ch == "\n":
            open_quote.clear()
    return found


def _check_pairs(pairs: Sequence[str]) -> None:
    chars = "".join(pairs)
    if (
        not pairs
        or any(not isinstance(p, str) or len(p) != 2 for p in pairs)
        or "\n" in chars
        or len(set(chars)) != len(chars) - sum(p[0] == p[1] for p in pairs)
    ):
        raise ConfigError(
            f"pairs must be two-character strings (opener, closer; one character twice for "
            f"quotes) with no character in two pairs, not {list(pairs)}"
        )


@dataclass(frozen=True)
class DistanceBin:
    """The closers whose opener is lo to hi characters back (hi None: no upper end): how many,
    mean bits the model spent on them (nan for none), and how often the model's likeliest next
    character was the closer."""

    lo: int
    hi: int | None
    count: int
    bits: float
    accuracy: float

    @property
    def label(self) -> str:
        return f"{self.lo}+" if self.hi is None else f"{self.lo}-{self.hi}"


def closer_loss_by_distance(
    model: Model,
    text: str,
    pairs: Sequence[str] = CODE_PAIRS,
    bins: Sequence[int] = DISTANCE_BINS,
    limit: int | None = 200_000,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[DistanceBin]]:
    """Per pair (in the order given): the model's loss on its closers, binned by the distance in
    characters from opener to closer (1 for `()`); bins' upper ends ascending, the last bin open.

    Reads the first `limit` characters (None: all) as one stream, from a cold start, so every
    opener the model is asked to remember is in what it has read. Pairs are matched by
    match_pairs. `progress(done, total)` is called after each pass with the characters read.
    """
    require_callable("progress", progress)
    bins = list(bins)
    if not bins or bins[0] < 1 or bins != sorted(set(bins)):
        raise ConfigError(f"the distance bins must be ascending whole numbers from 1, not {bins}")
    text = text if limit is None else text[:limit]
    found = match_pairs(text, pairs)
    bits, right = _closer_bits(model, text, [c for _, c in found], [0], None, chunk, progress)
    pair_of = {p[1]: p for p in pairs}
    # (pair, bin) -> indices into found
    cells = _groups((pair_of[text[c]], bisect.bisect_left(bins, c - o)) for o, c in found)
    results = {}
    for p in pairs:
        results[p] = []
        for b, (lo, hi) in enumerate(zip([1, *(e + 1 for e in bins)], [*bins, None], strict=True)):
            mine = cells.get((p, b), [])
            results[p].append(DistanceBin(lo, hi, len(mine), _mean(bits, mine), _mean(right, mine)))
    return results


def merged(found: dict[str, list[DistanceBin]]) -> list[DistanceBin]:
    """closer_loss_by_distance's bins of every pair together: per distance bin, all its
    closers, their mean bits and how often the closer was the likeliest character."""
    out = []
    for same in zip(*found.values(), strict=True):  # one bin, of each pair
        counted = [b for b in same if b.count]  # (an empty bin's means are nan)
        n = sum(b.count for b in counted)
        bits = sum(b.count * b.bits for b in counted) / n if n else math.nan
        right = sum(b.count * b.accuracy for b in counted) / n if n else math.nan
        out.append(DistanceBin(same[0].lo, same[0].hi, n, bits, right))
    return out


def _groups(keys: Iterable) -> dict:
    """key -> the indices of `keys` that hold it, in order."""
    groups: dict = {}
    for n, key in enumerate(keys):
        groups.setdefault(key, []).append(n)
    return groups


def _mean(values: list, which: list[int]) -> float:
    return sum(float(values[n]) for n in which) / len(which) if which else math.nan


# ---------------------------------------------------------------------------------------------
# Reading a text through a model


def _closer_bits(
    model: Model,
    text: str,
    targets: Sequence[int],
    starts: Sequence[int],
    choices: Sequence[int] | None,
    chunk: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[float], list[bool]]:
    """Per target p, read as _log_probs_at reads: the bits the model spent on text[p], and whether
    text[p] was the likeliest of `choices` (ids; None: of every character)."""
    import torch

    if not targets:
        return [], []
    logp = _log_probs_at(model, text, targets, starts, chunk, progress)  # (N, V)
    truth = torch.tensor(model.vocab.encode("".join(text[p] for p in targets)))  # (N,)
    bits = -logp.gather(1, truth[:, None])[:, 0] / math.log(2)  # (N,)
    ids = torch.arange(logp.shape[1]) if choices is None else torch.tensor(choices)  # (K,)
    right = ids[logp[:, ids].argmax(1)] == truth  # (N,): ties go to the first of `choices`
    return bits.tolist(), right.tolist()


def _log_probs_at(
    model: Model,
    text: str,
    targets: Sequence[int],
    starts: Sequence[int],
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """(N, V) log-probabilities the model gave text[targets[i]] before reading it; the text is
    read as len(starts) streams side by side, stream s from starts[s] to the next start, each
    from a cold start, `chunk` positions per pass with the state carried."""
    import torch
    import torch.nn.functional as F

    from charrnn.threads import tuned_threads

    device, lead = model.device, len(model.lead_in)
    pairs = itertools.pairwise([*starts, len(text)])
    rows = [torch.tensor(model.vocab.encode(text[a:b]), dtype=torch.long) for a, b in pairs]
    # (B, P + L); padding is read after a stream's end only, so it never reaches a prediction
    # that is asked for
    ids = model.with_lead_in(torch.nn.utils.rnn.pad_sequence(rows, batch_first=True))
    stream = [bisect.bisect_right(starts, p) - 1 for p in targets]
    # the column whose logits predict text[p]: the one before p's own
    col = [lead + p - starts[s] - 1 for p, s in zip(targets, stream, strict=True)]
    order = sorted(range(len(targets)), key=col.__getitem__)
    cols = [col[i] for i in order]
    out = torch.empty(len(targets), len(model.vocab))
    # a thread count fitted to the load of the moment, as `score` reads: one stream's passes
    # are small, and two threads where another process holds a core wait at every character
    cpu = model.device.type == "cpu"
    with model.evaluating(), torch.inference_mode(), tuned_threads(cpu) as tuner:
        for t, h, _ in model.read(ids, chunk=chunk, tuner=tuner):  # h (B, w, H)
            if progress is not None:
                progress(min(t + h.shape[1] - lead, len(text)), len(text))
            a, b = bisect.bisect_left(cols, t), bisect.bisect_left(cols, t + h.shape[1])
            if a == b:
                continue
            logits = model.net.logits(h)  # (B, w, V)
            which = order[a:b]
            r = torch.tensor([stream[i] for i in which], device=device)
            c = torch.tensor([col[i] - t for i in which], device=device)
            out[which] = F.log_softmax(logits[r, c].float(), -1).cpu()  # (n, V)
    return out


# ---------------------------------------------------------------------------------------------
# The gradient's reach: how much of a character's loss reaches back to each character read


@dataclass(frozen=True)
class GradientBin:
    """The characters lo to hi back from the one predicted: the typical size (geometric mean over
    the positions read) of the gradient of its loss with respect to their embedded input,
    `absolute`, and that size over the size one character back, `relative`."""

    lo: int
    hi: int
    absolute: float
    relative: float

    @property
    def label(self) -> str:
        return f"{self.lo}-{self.hi}"


# Positions whose loss is traced back: the profile's noise, and its cost (in float64, about
# 2.5 s for a tiny model on 2 cores, a minute for medium)
GRADIENT_TARGETS = 128
GRADIENT_BATCH = 16  # of them traced back at once (a progress display moves with each batch)


def gradient_profile(
    model: Model,
    text: str,
    window: int = DISTANCE_BINS[-1],
    targets: int = GRADIENT_TARGETS,
    batch: int = GRADIENT_BATCH,
    progress: Callable[[int, int], None] | None = None,
    among: Sequence[int] | None = None,
) -> torch.Tensor:
    """(window,) log10 of the typical size of d nats(text[p]) / d x_{p-k}, k = 1 to window (index
    k - 1): x is a character's embedding as the first layer reads it, the mean taken over up to
    `targets` positions p spread over the text, each read from a cold start `window` characters
    before it. What backprop through time would carry from p's loss to k characters before it:
    a vanilla RNN's shrinks by a factor at every step; an LSTM's cell state carries it on.
    `among`: the positions to choose from (e.g. closers, whose loss depends on what came long
    before), default every one. `progress(done, total)` is called after each batch with the
    positions traced."""
    import copy

    import torch
    import torch.nn.functional as F

    require_callable("progress", progress)
    if window < 1 or targets < 1 or batch < 1:
        given = (window, targets, batch)
        raise ConfigError(f"window, targets and batch must be 1 or more, not {given}")
    ids = torch.tensor(model.vocab.encode(text), dtype=torch.long)  # (N,)
    if len(ids) <= window:
        raise ConfigError(
            f"the text is {len(ids):,} characters: tracing a loss {window:,} characters back "
            f"needs {window + 1:,} or more"
        )
    at = traced_positions(len(ids), window, targets, among)  # (n,)
    if not len(at):
        raise ConfigError(f"none of the positions given stands {window:,} characters into the text")
    # In float64: a vanilla RNN's gradient 100 characters back is far below float32's smallest
    # number (1e-38), where float32 would read 0 and the curve would stop; its size is measured.
    # (Apple's MPS has no float64: there the CPU computes it)
    device = torch.device("cpu") if model.device.type == "mps" else model.device
    net, captured = copy.deepcopy(model.net).to(device).double().eval(), []

    def leaf(module, inputs, output):  # the embedded input, made a leaf its gradient is taken of
        captured.append(output.detach().requires_grad_(True))
        return captured[-1]

    total = torch.zeros(window, dtype=torch.float64)  # sum over positions of log10 |grad|
    done = 0
    if progress is not None:  # a display shown from the start: a batch of a large model is slow
        progress(0, len(at))
    net.embed.register_forward_hook(leaf)
    tiny = torch.finfo(torch.float64).tiny  # a gradient that underflows even float64: at its floor
    # a GPU's fused RNN takes its backward pass in training mode only: the plain kernel
    with torch.enable_grad(), _plain_kernels(device):
        for rows in at.split(batch):
            windows = torch.stack([ids[p - window : p] for p in rows.tolist()])  # (b, W)
            captured.clear()
            out, _ = net.read(windows.to(device))  # (b, W, H), from a cold start
            logits = net.logits(out[:, -1])  # (b, V)
            nats = F.cross_entropy(logits, ids[rows].to(device), reduction="sum")
            (grad,) = torch.autograd.grad(nats, captured[0])  # (b, W, E)
            size = grad.norm(dim=-1).clamp_min(tiny).log10()  # (b, W)
            total += size.flip(1).sum(0).cpu()  # column k - 1: k characters back
            done += len(rows)
            if progress is not None:
                progress(done, len(at))
    return total / len(at)  # (W,)


def traced_positions(
    length: int, window: int, targets: int, among: Sequence[int] | None = None
) -> torch.Tensor:
    """The characters whose loss gradient_profile traces back (n,): up to `targets` spread over
    a text of `length` (or over the positions `among` it), from `window` on (each has a window
    before it)."""
    import torch

    if among is None:
        count = min(targets, length - window)
        return torch.linspace(window, length - 1, count).round().long().unique()
    fit = torch.tensor(sorted({p for p in among if window <= p < length}), dtype=torch.long)
    if len(fit) <= targets:
        return fit
    return fit[torch.linspace(0, len(fit) - 1, targets).round().long().unique()]


def _plain_kernels(device):
    """cuDNN's RNN kernels without their training-mode-only backward, where the device has them."""
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


def gradient_by_distance(
    model: Model,
    text: str,
    bins: Sequence[int] = DISTANCE_BINS,
    targets: int = GRADIENT_TARGETS,
    progress: Callable[[int, int], None] | None = None,
    among: Sequence[int] | None = None,
) -> list[GradientBin]:
    """gradient_profile binned by distance (bins' upper ends, ascending; the last is the window
    traced back): each bin's typical size, absolute and over the size one character back;
    `among` as gradient_profile takes it."""
    bins = list(bins)
    if not bins or bins[0] < 1 or bins != sorted(set(bins)):
        raise ConfigError(f"the distance bins must be ascending whole numbers from 1, not {bins}")
    logs = gradient_profile(
        model, text, window=bins[-1], targets=targets, progress=progress, among=among
    )
    first = float(logs[0])
    out = []
    for lo, hi in zip([1, *(e + 1 for e in bins[:-1])], bins, strict=True):
        mean = float(logs[lo - 1 : hi].mean())  # the bin's typical size: a mean of logs
        out.append(GradientBin(lo, hi, 10**mean, 10 ** (mean - first)))
    return out
