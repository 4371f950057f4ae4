"""How typical is a text for a model: bits per character, for a whole text or line by line.

Texts and lines are read `chunk` positions (rows x characters) per forward pass, with the state
carried from pass to pass: the (B, T, V) logits and the recurrent kernel's buffers stay bounded,
so a text, or a line, of any length costs time and no more memory than a short one (oneDNN
refuses one sequence of a few hundred thousand characters).
"""

from __future__ import annotations

import bisect

import torch
from torch.nn.utils.rnn import pad_sequence

from charrnn.model.network import select_streams
from charrnn.model.trained import CHUNK, Model
from charrnn.threads import ThreadTuner, timed, tuned_threads


@torch.inference_mode()
def score_text(model: Model, text: str, chunk: int = CHUNK) -> float:
    """Total nats the model spends on `text` read in one go, from a cold start."""
    with tuned_threads(model.device.type == "cpu") as tuner:
        return float(_total_nats(model, [text], chunk, tuner)[0])


@torch.inference_mode()
def score_lines(model: Model, lines: list[str], batch: int = 64, chunk: int = CHUNK) -> list[float]:
    """Nats per character of each line (with its line break), each read on its own from a cold
    start, so lines compare whatever their order; nan for an empty line. Runs lines of similar
    length as one batch."""
    scores = [float("nan")] * len(lines)
    order = sorted((i for i, line in enumerate(lines) if line), key=lambda i: len(lines[i]))
    with tuned_threads(model.device.type == "cpu") as tuner:
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            totals = _total_nats(model, [lines[i] for i in rows], chunk, tuner)
            for i, total in zip(rows, totals.tolist(), strict=True):
                scores[i] = total / len(lines[i])
    return scores


def _total_nats(
    model: Model, texts: list[str], chunk: int, tuner: ThreadTuner | None
) -> torch.Tensor:
    """Total nats of each of `texts` (shortest first), read side by side from a cold start;
    each pass timed for `tuner` by the characters it reads."""
    device, net = model.device, model.net
    ids = [torch.tensor(model.vocab.encode(t), dtype=torch.long) for t in texts]
    lengths = [len(x) for x in ids]
    assert lengths == sorted(lengths), "texts must come shortest first"
    n = len(texts)
    _, last, state = model.start(n)  # last (B, 1, H): each row's h before its next character
    totals = torch.zeros(n, dtype=torch.float64)
    done, t = 0, 0  # rows before `done` have ended; t characters of the others were read
    while (first := bisect.bisect_right(lengths, t)) < n:
        # Rows that ended drop out: time goes to the characters left, not to padding.
        k, done = first - done, first
        state, last = select_streams(state, slice(k, None)), last[k:]
        width = max(1, chunk // (n - done))
        y = pad_sequence([x[t : t + width] for x in ids[done:]], batch_first=True).to(device)
        with timed(tuner, y.numel()):
            out, state = net.read(y, state)  # (B, w, H)
            before = torch.cat([last, out[:, :-1]], 1)  # (B, w, H): the h each y was read after
            nats = net.nats(before, y)  # (B, w), the logits a piece at a time
        left = torch.tensor(lengths[done:], device=device) - t
        real = torch.arange(y.shape[1], device=device) < left[:, None]  # not padding
        # summed in float64, for long texts, on the CPU, as MPS has no float64
        totals[done:] += (nats * real).sum(1).cpu().double()
        last, t = out[:, -1:], t + y.shape[1]
    return totals
