"""Inside a trained model: every layer's state, gates and prediction, one character at a time.

A text (or a sample as it is written) is read from a cold start through `Stepper`, the readable
step sampling uses, with a probe on every layer (the fields of model/config.py's FIELDS).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charrnn.errors import (
    ConfigError,
    foreign_number,
    require_callable,
    require_whole,
    shown_value,
)
from charrnn.model.config import FIELDS
from charrnn.model.trained import Model, require_model
from charrnn.text.vocab import CharVocab
from charrnn.use.sampler import SampleConfig, Sampler, step_threads

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
        """The likeliest characters after character t (as a list indexes: -1 is the last), with
        their probabilities."""
        n = len(self.text)
        if not isinstance(t, int) or isinstance(t, bool) or not -n <= t < n:
            raise ConfigError(
                f"t must be a position in the {n:,} characters recorded, not {shown_value(t)}"
                f"{foreign_number(t, 'int')}"
            )
        ids, probs = self.top_ids[t].tolist(), self.top_probs[t].tolist()
        return [(self.vocab.chars[i], p) for i, p in zip(ids, probs, strict=True)]


@torch.no_grad()  # not inference mode: what it returns is a caller's to use in any torch code
def record(
    model: Model,
    given: str,
    length: int = 0,
    config: SampleConfig | None = None,
    between: Callable[[], None] | None = None,
) -> Recording:
    """Read `given` (every character in the vocabulary) and, with a sampling `config`, then write
    `length` characters as `charrnn sample` would (one sample: the same seed gives the same text),
    recording every character of both. Read without dropout, the network left in its mode.
    `between` is called every BETWEEN characters: what it raises ends the recording (the
    command's reader has left)."""
    require_model(model)
    if not isinstance(given, str):
        raise ConfigError(f"the text must be a str, not {type(given).__name__}")
    require_whole("the length", length, 0)
    require_callable("between", between)
    if config is not None and not isinstance(config, SampleConfig):
        raise ConfigError(f"the config must be a SampleConfig, not {type(config).__name__}")
    if config is not None and config.num_samples != 1:
        raise ConfigError(
            f"record writes one sample: num_samples must be 1, not {config.num_samples}"
        )
    if length and config is None:
        raise ConfigError("writing characters after the text needs a SampleConfig: give config")
    with model.evaluating():
        return _record(model, given, length, config, between)


BETWEEN = 64  # characters recorded between two calls of `between`


def _record(
    model: Model,
    given: str,
    length: int,
    config: SampleConfig | None,
    between: Callable[[], None] | None,
) -> Recording:
    sampler = None
    if config is not None:  # for its choice of characters
        sampler = Sampler(model, config, track_logprob=False)
    c, ids = model.config, model.vocab.encode(given)
    n, k = len(ids) + length, min(TOP_K, len(model.vocab))
    values = {f: torch.zeros(c.num_layers, n, c.hidden_size) for f in FIELDS[c.cell]}  # (L, T, H)
    surprise = torch.zeros(n)
    top_ids, top_probs = torch.zeros(n, k, dtype=torch.long), torch.zeros(n, k)
    stepper, start = model.net.stepper(1, fused=False), model.start(1)
    stepper.start(start.state)
    logits = start.logits  # (1, V): the odds for the next character
    with step_threads(1):  # one stream, untimed: no tuner to tell whether two threads pay
        for t in range(n):
            if between is not None and t % BETWEEN == 0:
                between()
            if t >= len(given):  # past the given text: the sampler's choice
                ids.append(int(sampler.choose(logits, t - len(given))[0]))
            idx = ids[t]
            # how surprising it was, the state after it, and the odds for the one after it
            # (at least 0: a certain guess's log-probability can round above 0, or read -0)
            nats = -F.log_softmax(logits[0].float(), -1)[idx]
            surprise[t] = nats.clamp(min=0.0) / math.log(2) + 0.0
            probes: list[dict] = [{} for _ in range(c.num_layers)]
            logits = stepper(torch.tensor([idx], device=model.device), probes)
            for layer, probe in enumerate(probes):
                for f, v in values.items():
                    v[layer, t] = probe[f][0].cpu()
            probs, top = torch.softmax(logits[0].float(), -1).topk(k)
            top_ids[t], top_probs[t] = top.cpu(), probs.cpu()
    return Recording(
        text="".join(model.vocab.chars[i] for i in ids),
        cell=c.cell,
        values=values,
        surprise=surprise,
        top_ids=top_ids,
        top_probs=top_probs,
        given=len(given),
        vocab=model.vocab,
        seed=sampler.seeds[0] if sampler else None,
    )
