"""What `charrnn inspect` computes: a recording of a text (or of a sample as it is written), the
units that track the text, how the gates saturate, and all of it as JSON records."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from charrnn.model.trained import Model
from charrnn.use.inspection import Recording, record
from charrnn.use.sample_job import SampleResult, judge
from charrnn.use.sampler import SampleConfig
from charrnn.use.units import Found, Saturation, find_units, gate_saturation

FEW_CHARS = 500  # below this, the units found correlate mostly by chance


@dataclass
class Inspection:
    """A recording, and what was found in it: units that track the text (`found`) and each gate's
    saturation (`gates`); None where not asked for."""

    recording: Recording
    found: list[Found] | None = None
    gates: list[Saturation] | None = None
    sample: SampleResult | None = None  # what the written part is (a runaway?), where sampled

    @property
    def few_chars(self) -> bool:
        """Whether the units were found over so few characters that chance explains most."""
        return self.found is not None and len(self.recording.text) < FEW_CHARS

    def records(self, checkpoint: str) -> Iterator[dict]:
        """The `inspect --json` objects: a header (`checkpoint`: the path as text), one per
        character (every layer's values, its surprise, the likeliest next characters), then the
        units found and each gate's saturation per layer; values to 4 places."""
        r = self.recording
        yield {
            "kind": "header",
            "checkpoint": checkpoint,
            "cell": r.cell,
            "num_layers": r.num_layers,
            "hidden_size": r.hidden_size,
            "fields": list(r.values),
            "text": r.text,
            "given": r.given,
            "seed": r.seed,
            # of the sampled part, as `sample --json` says it (null: not judged, or not sampled)
            "runaway": self.sample.looks_runaway if self.sample is not None else None,
        }
        yield from _char_records(r)
        for f in self.found or []:
            units = [
                {"layer": u.layer, "unit": u.index, "field": u.field, "r": round(v, 4)}
                for u, v in f.units
            ]
            yield {
                "kind": "units",
                "property": f.property.name,
                "description": f.property.description,
                "chance": None if f.chance is None else round(f.chance, 4),
                "untrained": None if f.untrained is None else round(f.untrained, 4),
                "units": units,
                "unfound": f.unfound or None,  # why `units` is empty: too rare, or no change
            }
        for s in self.gates or []:
            for layer in range(s.left.shape[0]):
                yield {
                    "kind": "gates",
                    "gate": s.gate,
                    "layer": layer,
                    "below_0.1": [round(x, 4) for x in s.left[layer].tolist()],
                    "above_0.9": [round(x, 4) for x in s.right[layer].tolist()],
                }


def _char_records(r: Recording) -> Iterator[dict]:
    surprise = _rounded(r.surprise)
    probs = _rounded(r.top_probs)
    chars = r.vocab.chars
    for t, ch in enumerate(r.text):  # one character at a time: no second copy of the recording
        layers = {f: _rounded(v[:, t]) for f, v in r.values.items()}  # (L, H) each
        yield {
            "kind": "char",
            "t": t,
            "char": ch,
            "given": t < r.given,
            "surprise": surprise[t],
            "top": [[chars[i], p] for i, p in zip(r.top_ids[t].tolist(), probs[t], strict=True)],
            "layers": [{f: v[layer] for f, v in layers.items()} for layer in range(r.num_layers)],
        }


def _rounded(x: torch.Tensor):
    """A tensor as lists of floats to 4 places (float64 first: 0.1234, not 0.12340000271; + 0.0:
    a value that rounds to zero from below is 0.0, not -0.0)."""
    return ((x.double() * 1e4).round() / 1e4 + 0.0).tolist()


def inspect(
    model: Model,
    text: str | None = None,
    *,
    length: int = 0,
    prime: str = "",
    config: SampleConfig | None = None,
    units: bool = False,
    gates: bool = False,
    between: Callable[[], None] | None = None,
) -> Inspection:
    """Record `text` (every character in the vocabulary) through the model or, with `text` None,
    `prime` and then `length` characters sampled with `config` (the same seed, the same text as
    `charrnn sample`); with `units`, find the units that track the text, with `gates`, how the
    gates saturate. `between`: as record's."""
    sample = None
    if text is not None:
        recording = record(model, text, between=between)
    else:
        config = config or SampleConfig()
        recording = record(model, prime, length, config, between)
        written = recording.surprise[recording.given :]  # bits
        nats = -float(written.double().mean()) * math.log(2) if len(written) else None
        text = recording.text[recording.given :]
        sample = judge(model, text, recording.seed, config, nats)  # as `sample` judges it
    found = None
    if units:
        found = find_units(recording)
        # the same text through the same shape untrained: how far a unit follows a property from
        # the characters alone (a space starts a word), which a learnt unit must pass
        blank = untrained(model)
        blank_found = find_units(record(blank, recording.text, between=between))
        for f, level in zip(found, blank_found, strict=True):
            f.untrained = level.best if f.units else None
    return Inspection(recording, found, gate_saturation(recording) if gates else None, sample)


UNTRAINED_SEED = 0  # the untrained network's: the same level for a model, run after run


def untrained(model: Model) -> Model:
    """A network of `model`'s shape, vocabulary and lead-in at its initial weights (seeded, the
    caller's generator as it was), on its device."""
    from charrnn.model.network import initial_network

    net = initial_network(model.config, UNTRAINED_SEED)
    return Model(net.to(model.device).eval(), model.vocab)
