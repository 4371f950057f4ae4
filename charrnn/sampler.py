"""Sampling text from a trained CharLSTM, one character at a time with the state carried.

Priming reads the whole prime in one forward pass; after that each new character costs one step
(O(1) work: the prefix is never read again, its memory is the (h, c) state). N samples run as one
batch of N streams. Sample i draws its randomness from its own torch.Generator, seeded seed + i, by
inverse-CDF sampling, so the same seed gives the same text, and sample i of a batch is the text
`--seed seed+i` gives alone.

Why a lead-in: stateful training carries the state across batches, so the model sees a blank
(all-zero) state only where a stream starts, a few dozen times an epoch. Primed straight from a
blank state with a short text ("ROMEO:") it is out of its depth and writes noise. So the sampler
first reads a paragraph break, the way most texts in a corpus start, and only then the prime.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from charrnn.errors import ConfigError
from charrnn.model import CharLSTM, Stepper
from charrnn.tokenizer import CharVocab


@dataclass
class SampleConfig:
    """How to pick each next character."""

    temperature: Sequence[float] = (0.8,)  # cycled per character; 0 = the likeliest character
    top_k: int | None = None  # keep only the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches p (nucleus)
    seed: int | None = None  # None: a fresh random seed
    num_samples: int = 1

    def __post_init__(self):
        if isinstance(self.temperature, int | float):
            self.temperature = (float(self.temperature),)
        self.temperature = tuple(float(t) for t in self.temperature)
        if not self.temperature or any(t < 0 for t in self.temperature):
            raise ConfigError(f"--temp must be 0 or more, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.num_samples < 1:
            raise ConfigError(f"--num-samples must be at least 1, not {self.num_samples}")

    def to_dict(self) -> dict:
        return asdict(self)


class Sampler:
    """Generates N samples at once from `model`, after a common prime."""

    def __init__(
        self,
        model: CharLSTM,
        vocab: CharVocab,
        config: SampleConfig,
        fast: bool = True,
        track_logprob: bool = True,
    ):
        self.model, self.vocab, self.config = model.eval(), vocab, config
        self.device = model.head.weight.device
        n = config.num_samples
        base = config.seed if config.seed is not None else int(torch.seed() % 2**62)
        self.seeds = [base + i for i in range(n)]
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]
        self._uniforms = torch.empty(n, 0)  # (N, k): drawn a block at a time, used one per step
        self._step = Stepper(model, n) if fast else None  # fast=False: the reference model.step
        self.track_logprob = track_logprob
        self.h: list[torch.Tensor] = []  # per layer (N, H)
        self.c: list[torch.Tensor] = []
        self.logits: torch.Tensor | None = None  # (N, V): odds for the next character
        self.logprob = torch.zeros(n, dtype=torch.float64)  # model log-prob of what was generated
        self.count = 0

    @torch.inference_mode()
    def prime(self, text: str) -> None:
        """Read a lead-in, then `text`, in one pass; every sample starts from that state."""
        idx = torch.tensor([self.vocab.encode(lead_in(self.vocab) + text)], device=self.device)
        logits, (h, c) = self.model(idx, self.model.init_state(1))  # (1, P, V), (L, 1, H)
        n = self.config.num_samples
        self.h = [x.expand(n, -1).contiguous() for x in h.unbind(0)]
        self.c = [x.expand(n, -1).contiguous() for x in c.unbind(0)]
        self.logits = logits[:, -1].expand(n, -1).contiguous()

    @torch.inference_mode()
    def generate(self, length: int) -> Iterator[list[str]]:
        """Yield `length` steps; each is the list of N new characters, one per sample."""
        if self.logits is None:
            self.prime("")
        chars = self.vocab.chars
        for t in range(length):
            idx = self.choose(self.logits, t)  # (N,)
            yield [chars[i] for i in idx.tolist()]
            self.logits = self._advance(idx)

    def _advance(self, idx: torch.Tensor) -> torch.Tensor:
        if self._step is not None:
            return self._step(idx, self.h, self.c)
        logits, (h, c) = self.model.step(idx, (torch.stack(self.h), torch.stack(self.c)))
        self.h, self.c = list(h.unbind(0)), list(c.unbind(0))
        return logits

    def choose(self, logits: torch.Tensor, t: int = 0) -> torch.Tensor:
        """logits (N, V) -> ids (N,), by the temperature for step t, top-k and top-p."""
        c = self.config
        temperature = c.temperature[t % len(c.temperature)]
        if temperature == 0:
            idx = logits.argmax(-1)
        else:
            z = logits / temperature
            if c.top_k is not None and c.top_k < z.shape[-1]:
                kth = torch.topk(z, c.top_k, dim=-1).values[:, -1:]
                z = z.masked_fill(z < kth, float("-inf"))
            probs = torch.softmax(z, dim=-1)
            if c.top_p is not None and c.top_p < 1.0:
                probs = _nucleus(probs, c.top_p)
            idx = self._draw(probs)
        if self.track_logprob:
            self.logprob += F.log_softmax(logits, -1).gather(1, idx[:, None])[:, 0].double()
        self.count += 1
        return idx

    def _draw(self, probs: torch.Tensor) -> torch.Tensor:
        """One id per row by inverse CDF, row i with its own generator: (N, V) -> (N,)."""
        if not self._uniforms.shape[1]:  # row i's stream depends on its own seed only
            block = [
                torch.rand(UNIFORM_BLOCK, generator=g, device=self.device) for g in self.generators
            ]
            self._uniforms = torch.stack(block)
        u, self._uniforms = self._uniforms[:, 0], self._uniforms[:, 1:]
        cdf = probs.cumsum(-1)  # (N, V)
        # side="right": the first id whose cumulative probability exceeds u, never a zero-odds id
        idx = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
        return idx.clamp_(max=probs.shape[-1] - 1)

    def mean_logprob(self) -> list[float]:
        """Per sample: mean log-probability (nats) the model gave to each generated character."""
        return (self.logprob / max(self.count, 1)).tolist()


UNIFORM_BLOCK = 256  # random numbers drawn per generator at a time


class StopCutter:
    """Ends each sample just before the first stop string in its generated text.

    It holds back the last len(longest stop) - 1 characters, which might be the start of a stop
    string, and lets everything before them through at once, so streaming stays live.
    """

    def __init__(self, num_samples: int, stops: Sequence[str] = ()):
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.pending = [""] * num_samples
        self.done = [False] * num_samples

    def feed(self, row: int, ch: str) -> str:
        """Add a generated character to sample `row`; return the text now safe to emit."""
        if self.done[row]:
            return ""
        text = self.pending[row] + ch
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.done[row], self.pending[row] = True, ""
            return text[: min(cuts)]
        keep = len(text) - self.hold if self.hold else len(text)
        self.pending[row] = text[keep:]
        return text[:keep]

    def flush(self, row: int) -> str:
        """The held-back text, at the end of a sample."""
        text, self.pending[row] = self.pending[row], ""
        return text

    def all_done(self) -> bool:
        return all(self.done)


def lead_in(vocab: CharVocab) -> str:
    """What the sampler reads before the prime: a paragraph break, or a space, or a first char."""
    if "\n" in vocab:
        return "\n\n"
    return " " if " " in vocab else vocab.chars[0]


def _nucleus(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Per row, zero all but the most likely characters whose total reaches p: (N, V) -> (N, V)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of strictly more likely characters
    sorted_probs = sorted_probs.masked_fill(before >= p, 0.0)  # the likeliest always survives
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
