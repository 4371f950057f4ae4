"""Does a text look like a runaway model wrote it? Judged by the training text's character counts
(Model.char_counts): a runaway state writes one character over and over, or rare ones."""

from __future__ import annotations

import functools
import math

import torch

from charrnn.text.vocab import CharVocab

RUNAWAY_NATS = 1.0  # a sound cold start is within hundredths of a nat of warm by character 100
MIN_JUDGED = 50  # characters a sample needs before its characters say anything


def char_surprise(text: str, vocab: CharVocab, counts: list[int]) -> float | None:
    """How much rarer the characters of `text` are than the corpus's: their mean surprise under
    the corpus's character frequencies (`counts`, per vocabulary id) minus the corpus's own mean
    surprise, in nats per character. About 0 for text like the corpus; a runaway writes rare
    characters (`$&3QZ...` in English) and scores several nats. None for text too short to judge.
    """
    if len(text) < MIN_JUDGED or len(counts) != len(vocab) or not sum(counts):
        return None
    surprise, entropy = _surprise(tuple(counts))
    seen = [surprise[i] for c in text if (i := vocab.index.get(c)) is not None]
    return sum(seen) / len(seen) - entropy if seen else None


@functools.lru_cache(maxsize=8)
def _surprise(counts: tuple[int, ...]) -> tuple[list[float], float]:
    """Each character's surprise under the add-one frequencies `counts` (nats), and their mean
    (the corpus's own): made once for all the samples of a batch (-n 4096 of 4,000 distinct
    characters judged in 33 s, each making its own, after a stop signal that asked for an end)."""
    freq = torch.tensor(counts, dtype=torch.float64) + 1.0  # (V,), no character impossible
    surprise = -(freq / freq.sum()).log()  # (V,) nats
    return surprise.tolist(), float((freq / freq.sum() * surprise).sum())


# Below this temperature, or under a --top-k or --top-p below these, a sample keeps only the
# model's likeliest few characters, and one character repeated is what such a draw does from a
# sound state too (a line of spaces in indented code): only the rarity of its characters is judged
# there. Above them (--top-p 0.9, --top-k 40) a repetition still is.
REPEATS_JUDGED_TEMP = 0.5
REPEATS_JUDGED_TOP_K = 10
REPEATS_JUDGED_TOP_P = 0.9
# ... unless the model itself gave the sample's characters this much on average (log 0.99): a cut
# that keeps what the model is sure of changes nothing, and the repetition is the model's.
CERTAIN_LOGPROB = math.log(0.99)


def repeats_judged(
    temperatures, top_k: int | None, top_p: float | None, mean_logprob: float | None
) -> bool:
    """Whether one character repeated says something of the model, not of the draw: the draw
    follows the model's odds closely (see REPEATS_JUDGED_TEMP), or the model itself was sure of
    the sample (its `mean_logprob`, None where not tracked, over CERTAIN_LOGPROB)."""
    follows = (
        min(temperatures) >= REPEATS_JUDGED_TEMP
        and (top_k is None or top_k >= REPEATS_JUDGED_TOP_K)
        and (top_p is None or top_p >= REPEATS_JUDGED_TOP_P)
    )
    return follows or (mean_logprob is not None and mean_logprob > CERTAIN_LOGPROB)


def looks_runaway(
    text: str, vocab: CharVocab, counts: list[int] | None, repeats: bool = True
) -> str | None:
    """What shows that a sample comes from a runaway state (as a phrase about the sample), or
    None: one character repeated throughout (unless `repeats` is False: a draw of the likeliest
    characters, whose loops are its nature: 300 spaces of indented code), or characters far rarer
    than the corpus's (their char_surprise over RUNAWAY_NATS; for such a draw, unless the sample
    ends in a loop). Too short a sample (under MIN_JUDGED) is not judged."""
    if repeats and len(text) >= MIN_JUDGED and len(set(text)) == 1:  # a stuck state
        return f"it is one character repeated ({text[0]!r})"
    value = char_surprise(text, vocab, counts) if counts else None
    if value is None or value <= RUNAWAY_NATS:
        return None
    if not repeats and loops(text):
        # A draw of the likeliest characters closes on a loop (one line of code written again and
        # again): which line it closes on, not the model's state, makes its characters rare.
        return None
    return f"its characters are {value:.1f} nats a character rarer than the corpus's"


MAX_LOOP = 1000  # characters: the longest cycle `loops` looks for


def loops(text: str) -> bool:
    """Whether the second half of `text` is one stretch of up to MAX_LOOP characters written
    again and again (twice at least)."""
    tail = text[len(text) // 2 :]
    return any(tail[p:] == tail[:-p] for p in range(1, min(MAX_LOOP, len(tail) // 2) + 1))
