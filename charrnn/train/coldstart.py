"""Is the model sound from a cold start? The check behind every evaluation (docs/cold-starts.md).

At `starts` fixed random positions p of the validation text it scores the characters p+skip+1 ..
p+skip+span three ways: warm (as the validation pass read them), from a zero state, and after the
model's lead-in (as `sample` starts). A cold start *runs away* when it is more than RUNAWAY_NATS
worse than warm; the *gap* is the mean excess over all starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import torch

from charrnn.model.runaway import RUNAWAY_NATS
from charrnn.model.trained import Model
from charrnn.train.distributed import SINGLE, Dist

MIN_SPAN = 20  # the fewest characters per start the check scores (after at least 10 cold ones)
# Multiply-adds between two looks for a stop: a tenth of a second on a laptop core, so that a stop
# asked for during the check is seen within a second, whatever the model and the vocabulary.
_WORK_BUDGET = 1 << 33
ROWS = 256  # rows read side by side at most (a check's starts: 256 by default)
SKIP, SPAN = 100, 200  # after each start, characters read unscored, then scored


@dataclass
class ColdStartReport:
    """What the check found: runaway counts and mean gaps (nats/char) for both kinds of start."""

    starts: int  # positions checked
    runaways: int  # zero-state starts that ran away
    runaways_lead_in: int  # starts after the model's lead-in that ran away
    gap: float  # mean (zero-state loss - warm loss) over the span, nats/char
    gap_lead_in: float
    warm_loss: float  # mean warm loss over the span: the reference
    skip: int = SKIP  # the characters scored: skip+1 .. skip+span after each start
    span: int = SPAN

    def to_dict(self) -> dict:
        # + 0.0: a gap that rounds to zero from below is 0.0 in the record, not -0.0
        fields = asdict(self).items()
        return {k: round(v, 5) + 0.0 if isinstance(v, float) else v for k, v in fields}


@torch.no_grad()
def check(
    model: Model,
    ids: torch.Tensor,
    warm: Warm,
    starts: int = 256,
    skip: int = SKIP,
    span: int = SPAN,
    min_context: int = 300,
    seed: int = 0,
    dist: Dist = SINGLE,
    should_stop: Callable[[], bool] | None = None,
) -> ColdStartReport | None:
    """Check `starts` seeded positions of `ids` (N,) against the warm losses of its evaluation.
    Where the validation streams are shorter than twice min_context + span (a small corpus), every
    window shrinks in proportion; None where even that leaves under MIN_SPAN to score, or where
    `should_stop()` turns true on the way (it is asked before each bounded piece of work).

    Distributed, each rank checks positions in its own streams and the counts are added up."""
    longest = int(dist.all_max(float(warm.context.max()) + 1, model.device))
    if longest < 2 * (min_context + span):  # room for starts at many places in each stream
        f = longest / (2 * (min_context + span))
        skip, span, min_context = int(skip * f), int(span * f), int(min_context * f)
    if span < MIN_SPAN:
        return None
    share = starts // dist.world + (dist.rank < starts % dist.world)
    mine = _positions(warm.context, share, skip, span, min_context, seed)  # (n,) window starts
    n = len(mine)
    device = model.device
    sums = [0.0] * 6
    if n:
        at = mine.tolist()
        cold = torch.stack([ids[p : p + skip + span].long() for p in at])  # (n, skip + span)
        targets = torch.stack([ids[p + skip + 1 : p + skip + span + 1].long() for p in at])
        loss_warm = torch.stack([warm.nats[p + skip : p + skip + span].mean() for p in at])
        with model.evaluating():
            loss_zero = span_loss(model.net, cold, targets, device, should_stop)  # (n,)
            loss_lead = None
            if loss_zero is not None:
                lead_cold = model.with_lead_in(cold)
                loss_lead = span_loss(model.net, lead_cold, targets, device, should_stop)
        if loss_lead is None:  # asked to stop (every rank is asked alike: see Trainer._agree)
            return None
        sums = [
            float(n),
            float((loss_zero - loss_warm > RUNAWAY_NATS).sum()),
            float((loss_lead - loss_warm > RUNAWAY_NATS).sum()),
            float((loss_zero - loss_warm).sum()),
            float((loss_lead - loss_warm).sum()),
            float(loss_warm.sum()),
        ]
    t, run_zero, run_lead, gap_zero, gap_lead, warm_sum = dist.all_sum(sums, device)
    if not t:
        return None
    return ColdStartReport(
        int(t), int(run_zero), int(run_lead), gap_zero / t, gap_lead / t, warm_sum / t, skip, span
    )


class Warm(Protocol):
    """The validation pass's per-target record (trainer.Validation): index j-1 is ids[j]."""

    nats: torch.Tensor  # (N - 1,) loss of each target, NaN where this rank did not read it
    context: torch.Tensor  # (N - 1,) characters its stream had read before it, -1 likewise


def _positions(context, share, skip, span, min_context, seed) -> torch.Tensor:
    """Up to `share` window starts p whose scored targets (p+skip .. p+skip+span-1 in `context`)
    lie in one stream with at least `min_context` characters read before them; seeded, so the
    same positions come back at every evaluation and the figures compare across a run."""
    first = context[: len(context) - span + 1] if len(context) >= span else context[:0]
    last = context[span - 1 :]  # the window's last target, for each first one
    ok = (first >= min_context) & (last - first == span - 1)
    q = ok.nonzero()[:, 0]  # first scored target indices
    q = q[q >= skip]
    g = torch.Generator().manual_seed(seed)
    chosen = q[torch.randperm(len(q), generator=g)[:share]].sort().values
    return chosen - skip


def span_loss(model, x, targets, device, should_stop=None) -> torch.Tensor | None:
    """Mean nats per character on the last targets.shape[1] predictions of reading x from a zero
    state: x (n, t), targets (n, span) -> (n,); None if `should_stop()` turns true on the way.

    The rows are read side by side, ROWS at a time, a block of columns after another with the
    state carried between them: each block about _WORK_BUDGET multiply-adds, with a look at
    `should_stop` between two, whatever the model and the vocabulary. Many rows at once keep each
    character's products matrix products: a few rows at a time, a wide model reads all its
    weights again for each character of each few (a 2x1536 LSTM's check, a row at a time, took
    20 minutes). The scored positions go through the output layer (whose cost grows with the
    vocabulary) in pieces of their own."""
    n, t = x.shape
    span = targets.shape[1]
    c = model.config
    recurrent = model.num_params(embedding=False) - model.head.weight.numel() - c.vocab_size
    rows = min(n, ROWS)
    cols = max(1, _WORK_BUDGET // (rows * recurrent))  # columns of a block
    positions = max(1, _WORK_BUDGET // (c.hidden_size * c.vocab_size))  # through the head at once
    out = []
    for i in range(0, n, rows):
        xs, ys = x[i : i + rows].to(device), targets[i : i + rows].to(device)  # (r, t), (r, span)
        state, total = None, torch.zeros(len(xs), device=device)  # (r,): nats summed per row
        for a in range(0, t, cols):
            if should_stop is not None and should_stop():
                return None
            hidden, state = model.read(xs[:, a : a + cols], state)  # (r, k, H)
            first = max(a, t - span)  # the block's first scored column
            if first >= a + hidden.shape[1]:  # the block is all lead (nothing scored yet)
                continue
            scored = hidden[:, first - a :].reshape(-1, c.hidden_size)  # (r * s, H)
            ys_block = ys[:, first - (t - span) : a + cols - (t - span)].reshape(-1)  # (r * s,)
            nats = torch.empty(len(ys_block), device=device)
            for j in range(0, len(ys_block), positions):
                if should_stop is not None and should_stop():
                    return None
                piece = slice(j, j + positions)
                nats[piece] = model.nats(scored[piece], ys_block[piece])
            total += nats.view(len(xs), -1).sum(1)
        out.append((total / span).cpu())
    return torch.cat(out)
