"""Sampling text from a trained CharLSTM, one character at a time with the state carried.

Priming reads the whole prime in one forward pass; after that each new character costs one
`model.step` (O(1) work: the prefix is never read again, its memory is the (h, c) state).

Why a lead-in: stateful training carries the state across batches, so the model sees a blank
(all-zero) state only where a stream starts, a few dozen times an epoch. Primed straight from a
blank state with a short text ("ROMEO:") it is out of its depth and writes noise. So the sampler
first reads a paragraph break, the way most texts in a corpus start, and only then the prime.
Randomness comes only from the sampler's own torch.Generator: same seed, same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from charrnn.errors import ConfigError, VocabError
from charrnn.model import CharLSTM, State
from charrnn.tokenizer import CharVocab, describe_unknown


@dataclass
class SampleConfig:
    """How to pick each next character."""

    temperature: float = 0.8  # 0 = always the most likely character; 1 = the model's own odds
    top_k: int | None = None  # keep only the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches p (nucleus)
    seed: int | None = None  # None: a fresh random seed

    def __post_init__(self):
        if self.temperature < 0:
            raise ConfigError(f"--temp must be 0 or more, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"--top-p must be in (0, 1], not {self.top_p}")


class Sampler:
    """Generates characters from `model`, primed with text."""

    def __init__(self, model: CharLSTM, vocab: CharVocab, config: SampleConfig):
        self.model, self.vocab, self.config = model.eval(), vocab, config
        self.device = model.head.weight.device
        seed = config.seed if config.seed is not None else int(torch.seed() % 2**63)
        self.seed = seed
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.state: State | None = None
        self.logits: torch.Tensor | None = None  # (V,) for the next character

    @torch.no_grad()
    def prime(self, text: str) -> None:
        """Read a lead-in, then `text`, in one pass: the state and odds for what comes next."""
        unknown = self.vocab.unknown(text)
        if unknown:
            raise VocabError(
                f"the prime has {describe_unknown(unknown)} that the model has never seen; "
                "remove them, or train on text that has them"
            )
        text = lead_in(self.vocab) + text
        idx = torch.tensor([self.vocab.encode(text)], device=self.device)  # (1, P)
        logits, self.state = self.model(idx, self.model.init_state(1))  # (1, P, V)
        self.logits = logits[0, -1]

    @torch.no_grad()
    def generate(self, length: int) -> Iterator[str]:
        """Yield `length` characters, each as soon as it is chosen."""
        if self.logits is None:
            self.prime("")
        for _ in range(length):
            idx = self.choose(self.logits)  # (1,)
            yield self.vocab.chars[int(idx)]
            logits, self.state = self.model.step(idx, self.state)  # (1, V)
            self.logits = logits[0]

    def choose(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (V,) -> one id (1,), by temperature, top-k and top-p."""
        c = self.config
        if c.temperature == 0:
            return logits.argmax().view(1)
        logits = logits / c.temperature
        if c.top_k is not None and c.top_k < logits.numel():
            kth = torch.topk(logits, c.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if c.top_p is not None and c.top_p < 1.0:
            probs = _nucleus(probs, c.top_p)
        return torch.multinomial(probs, 1, generator=self.generator)


def lead_in(vocab: CharVocab) -> str:
    """What the sampler reads before the prime: a paragraph break, or a space, or a first char."""
    if "\n" in vocab:
        return "\n\n"
    return " " if " " in vocab else vocab.chars[0]


def _nucleus(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Zero all but the most likely characters whose total reaches p, then renormalise."""
    sorted_probs, order = probs.sort(descending=True)
    before = sorted_probs.cumsum(0) - sorted_probs  # mass of strictly more likely characters
    sorted_probs[before >= p] = 0.0  # the most likely one always survives (before = 0)
    kept = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return kept / kept.sum()
