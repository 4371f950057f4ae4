"""How typical is a text for a model: bits per character, for a whole text or line by line."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charrnn.model import CharLSTM
from charrnn.sampler import lead_in
from charrnn.tokenizer import CharVocab


@torch.inference_mode()
def score_text(model: CharLSTM, vocab: CharVocab, text: str, chunk: int = 8192) -> float:
    """Total nats the model spends on `text` read in one go, after the sampler's lead-in."""
    device = model.head.weight.device
    context = torch.tensor(vocab.encode(lead_in(vocab)), device=device)
    ids = torch.tensor(vocab.encode(text), device=device)
    logits, state = model(context[None], model.init_state(1))  # (1, P, V)
    total = F.cross_entropy(logits[0, -1:], ids[:1], reduction="sum") if len(ids) else 0.0
    for start in range(0, len(ids) - 1, chunk):  # targets ids[start + 1 : start + chunk + 1]
        x, y = ids[start : start + chunk], ids[start + 1 : start + chunk + 1]
        logits, state = model(x[None, : len(y)], state)  # (1, t, V)
        total += F.cross_entropy(logits[0], y, reduction="sum")
    return float(total)


@torch.inference_mode()
def score_lines(
    model: CharLSTM, vocab: CharVocab, lines: list[str], batch: int = 64
) -> list[float]:
    """Nats per character of each line (with its line break), each read on its own after the
    lead-in, so lines compare whatever their order. Runs lines of similar length as one batch."""
    device = model.head.weight.device
    context = torch.tensor([vocab.encode(lead_in(vocab))], device=device)
    first_logits, (h, c) = model(context, model.init_state(1))  # odds for each line's first char
    scores = [float("nan")] * len(lines)
    order = sorted(range(len(lines)), key=lambda i: len(lines[i]))
    for start in range(0, len(order), batch):
        rows = [i for i in order[start : start + batch] if lines[i]]
        if not rows:
            continue
        width = max(len(lines[i]) for i in rows)
        y = torch.zeros(len(rows), width, dtype=torch.long, device=device)  # (B, W) targets
        for r, i in enumerate(rows):
            y[r, : len(lines[i])] = torch.tensor(vocab.encode(lines[i]))
        state = (h.expand(-1, len(rows), -1).contiguous(), c.expand(-1, len(rows), -1).contiguous())
        logits, _ = model(y[:, :-1], state)  # (B, W-1, V): predictions for characters 2..W
        logits = torch.cat([first_logits[:, -1:].expand(len(rows), 1, -1), logits], 1)
        nats = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (B, W)
        for r, i in enumerate(rows):
            scores[i] = float(nats[r, : len(lines[i])].mean())
    return scores
