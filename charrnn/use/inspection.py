"""Inside a trained model: every layer's state, gates and prediction, one character at a time.

A text (or a sample as it is written) is read from a cold start through `Stepper`, the readable
step sampling uses, with a probe on every layer (the fields of model/config.py's FIELDS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from charrnn.model.config import FIELDS
from charrnn.model.trained import Model
from charrnn.text.vocab import CharVocab
from charrnn.use.sampler import SampleConfig, Sampler, sampling_threads, step_threads

TOP_K = 5  # next characters kept per record


def recorded_values(config, chars: int) -> int:
    """How many values a recording of `chars` characters holds: every field of every unit."""
    return config.num_layers * config.hidden_size * len(FIELDS[config.cell]) * chars


@dataclass
class Recording:
    """What a model held and predicted at each of T characters.

    values[field] is (L, T, H): layer l's `field` after reading character t. surprise (T,) is the
    bits the model spent on character t given everything before it; top_ids and top_probs (T, K)
    are the K likeliest characters to follow character t. The first `given` characters were read
    from the user (a text, or a prime); the rest were written by the model.
    """

    text: str
    cell: str
    values: dict[str, torch.Tensor]
    surprise: torch.Tensor
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    given: int
    vocab: CharVocab
    seed: int | None = None  # the sample's seed, when the model wrote the text

    @property
    def num_layers(self) -> int:
        return next(iter(self.values.values())).shape[0]

    @property
    def hidden_size(self) -> int:
        return next(iter(self.values.values())).shape[2]

    def top(self, t: int) -> list[tuple[str, float]]:
        """The likeliest characters after character t, with their probabilities."""
        ids, probs = self.top_ids[t].tolist(), self.top_probs[t].tolist()
        return [(self.vocab.chars[i], p) for i, p in zip(ids, probs, strict=True)]


class Recorder:
    """Reads characters one at a time through the model's step and records each one."""

    @torch.inference_mode()
    def __init__(self, model: Model, capacity: int, top_k: int = TOP_K):
        self.model, self.vocab, self.device = model, model.vocab, model.device
        model.net.eval()
        c = model.config
        self.fields = FIELDS[c.cell]
        self.values = {
            f: torch.zeros(c.num_layers, capacity, c.hidden_size) for f in self.fields
        }  # (L, T, H) each
        self.surprise = torch.zeros(capacity)
        self.k = min(top_k, len(model.vocab))
        self.top_ids = torch.zeros(capacity, self.k, dtype=torch.long)
        self.top_probs = torch.zeros(capacity, self.k)
        self.chars: list[str] = []
        self.stepper = model.net.stepper(1)
        start = model.start(1)
        self.stepper.start(start.state)
        self.logits = start.logits  # (1, V): the odds for the next character

    @torch.inference_mode()
    def read(self, idx: int) -> None:
        """Read character `idx`: record how surprising it was, the state after it, and the odds
        for the one after it."""
        t = len(self.chars)
        log_probs = F.log_softmax(self.logits[0].float(), -1)  # (V,)
        self.surprise[t] = -log_probs[idx] / math.log(2)
        probes: list[dict] = [{} for _ in range(self.model.config.num_layers)]
        self.logits = self.stepper(torch.tensor([idx], device=self.device), probes)
        for layer, probe in enumerate(probes):
            for f in self.fields:
                self.values[f][layer, t] = probe[f][0].cpu()
        probs, ids = torch.softmax(self.logits[0].float(), -1).topk(self.k)
        self.top_ids[t], self.top_probs[t] = ids.cpu(), probs.cpu()
        self.chars.append(self.vocab.chars[idx])

    def recording(self, given: int, seed: int | None = None) -> Recording:
        """What was read so far (views of the buffers: no second copy of the values)."""
        n = len(self.chars)
        return Recording(
            text="".join(self.chars),
            cell=self.model.config.cell,
            values={f: v[:, :n] for f, v in self.values.items()},
            surprise=self.surprise[:n],
            top_ids=self.top_ids[:n],
            top_probs=self.top_probs[:n],
            given=given,
            vocab=self.vocab,
            seed=seed,
        )


def record(
    model: Model, given: str, length: int = 0, config: SampleConfig | None = None
) -> Recording:
    """Read `given` (every character in the vocabulary) and, with a sampling `config`, then write
    `length` characters as `charrnn sample` would (one sample: the same seed gives the same text),
    recording every character of both."""
    sampler = None
    if config is not None:  # for its choice of characters
        sampler = Sampler(model, replace(config, num_samples=1), track_logprob=False)
    recorder = Recorder(model, len(given) + length)
    with step_threads(sampling_threads(model.net, 1)):
        for idx in model.vocab.encode(given):
            recorder.read(idx)
        for t in range(length):
            idx = sampler.choose(recorder.logits, t)  # (1,)
            recorder.read(int(idx[0]))
    return recorder.recording(given=len(given), seed=sampler.seeds[0] if sampler else None)
