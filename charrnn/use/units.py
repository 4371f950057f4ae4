"""Units that mean something: which cells track a property of the text, and how gates saturate.

After Karpathy, Johnson & Fei-Fei (2015): every unit's state is ranked by its correlation with
properties computed from the text alone, beside a chance level (the best correlation with the
property shifted along the text). What each measure means: docs/commands.md (`inspect`).
"""

from __future__ import annotations

import bisect
import numbers
from dataclasses import dataclass

import torch

from charrnn.errors import ConfigError, require_type, require_whole, shown_value
from charrnn.model.config import GATES, STATES
from charrnn.use.inspection import Recording

OPENING, CLOSING = "([{", ")]}"
TAB_WIDTH = 8  # columns a tab counts for in the indentation, as terminals show it


@dataclass(frozen=True)
class Property:
    name: str
    description: str


PROPERTIES = (
    Property("double quotes", 'inside "double quotes" (a blank line ends an unclosed one)'),
    Property(
        "single quotes",
        "inside 'single quotes' closed on the same line (not an apostrophe: don't, or a ' at a "
        "word's edge with no partner on its line)",
    ),
    Property("in brackets", "inside (), [] or {} (a blank line ends unclosed ones)"),
    Property("bracket depth", "how many (), [] or {} are open"),
    Property("line position", "characters since the start of the line"),
    Property("to line end", "characters left before the next line break"),
    Property("indentation", f"leading spaces of the line (a tab counts {TAB_WIDTH})"),
    Property("word start", "the first character of a word"),
    Property("upper-case run", "a letter of an upper-case word of two letters or more"),
)


def text_properties(text: str) -> dict[str, torch.Tensor]:
    """Each property's value at each character of `text`, (T,) float64 each: what holds once the
    character has been read."""
    require_type("text", text, str, "a str")
    n = len(text)
    double, inside, depth, column, indent, start, upper = ([0.0] * n for _ in range(7))
    single = _single_quotes(text)
    in_double = False
    open_brackets = col = lead = 0
    leading = True  # still in the line's leading whitespace
    for t, ch in enumerate(text):
        before = text[t - 1] if t else "\n"
        if ch == "\n":
            if before == "\n":  # a blank line ends an unbalanced quote or bracket
                in_double, open_brackets = False, 0
            col, lead, leading = 0, 0, True
        else:
            col += 1
            if leading and ch in " \t":
                lead += TAB_WIDTH if ch == "\t" else 1
            else:
                leading = False
        if ch == '"':
            in_double = not in_double
        elif ch in OPENING:
            open_brackets += 1
        elif ch in CLOSING:
            open_brackets = max(0, open_brackets - 1)
        double[t] = float(in_double)
        inside[t], depth[t] = float(open_brackets > 0), float(open_brackets)
        column[t], indent[t] = float(col), float(lead)
        start[t] = float(ch.isalnum() and not (before.isalnum() or before == "_"))
    to_end, left = [0.0] * n, 0
    for t in range(n - 1, -1, -1):  # counted back from each line break
        to_end[t] = float(left)
        left = 0 if text[t] == "\n" else left + 1
    for word_start, word_end in _words(text):
        letters = [ch for ch in text[word_start:word_end] if ch.isalpha()]
        if len(letters) >= 2 and all(ch.isupper() for ch in letters):
            for t in range(word_start, word_end):
                upper[t] = float(text[t].isalpha())
    columns = (double, single, inside, depth, column, to_end, indent, start, upper)
    return {
        p.name: torch.tensor(values, dtype=torch.float64)
        for p, values in zip(PROPERTIES, columns, strict=True)
    }


# Letters that may come right before a string's opening quote in code (r'...', b'...', f'...')
STRING_PREFIXES = {"r", "b", "f", "u", "rb", "br", "fr", "rf"}


def _single_quotes(text: str) -> list[float]:
    """1.0 from an opening ' to its closing one on the same line (the closing one 0.0, as the
    state once it is read), else 0.0. An opening ' follows no letter or digit (but may follow a
    string prefix, as r'), and its closing one is the next ' before no letter or digit. One with
    no closing one on its line is an apostrophe ('tis, boys'), as is one inside a word (don't).
    Elisions can still pair ('tis ... o' the): English gives no surer sign."""
    inside, t = [0.0] * len(text), 0
    for line in text.split("\n"):
        # where a quote may close: a ' before no letter or digit (found once: a line of many
        # quotes is read in one pass, not once a quote)
        closes = [j for j, ch in enumerate(line) if ch == "'" and not line[j + 1 : j + 2].isalnum()]
        i = 0
        while (i := line.find("'", i)) >= 0:
            start = i  # the word right before it: a string prefix at most (two letters)
            while (
                start > 0
                and i - start < 3
                and (line[start - 1].isalnum() or line[start - 1] == "_")
            ):
                start -= 1
            word = line[start:i]  # three characters where the word is longer: no prefix
            if word and word.lower() not in STRING_PREFIXES:
                i += 1  # inside or at the end of a word: an apostrophe
                continue
            k = bisect.bisect_right(closes, i)
            if k == len(closes):  # no partner on its line: an apostrophe that starts a word
                i += 1
                continue
            close = closes[k]
            inside[t + i : t + close] = [1.0] * (close - i)
            i = close + 1
        t += len(line) + 1
    return inside


def _words(text: str):
    """(start, end) of each run of letters and apostrophes."""
    t = 0
    while t < len(text):
        if text[t].isalpha():
            end = t
            while end < len(text) and (text[end].isalpha() or text[end] == "'"):
                end += 1
            yield t, end
            t = end
        else:
            t += 1


@dataclass(frozen=True)
class Unit:
    """One unit's state: `field` ("cell" or "hidden") of unit `index` of layer `layer`."""

    layer: int
    index: int
    field: str

    def __str__(self) -> str:
        return f"{self.field} {self.layer}:{self.index}"


@dataclass
class Found:
    """The units whose state correlates best with a property, best first, and the chance level."""

    property: Property
    units: list[tuple[Unit, float]]  # (unit, Pearson r); empty where `unfound` says why
    chance: float | None  # the best |r| of any unit against the property shifted along the text
    unfound: str = ""  # why no unit is given: TOO_RARE or CONSTANT
    # The best |r| of any unit of an untrained network of the same shape, on the same text: what
    # following the characters read gives, before any learning (None: not measured)
    untrained: float | None = None

    @property
    def best(self) -> float:
        return abs(self.units[0][1]) if self.units else 0.0


def _require_recording(recording) -> None:
    """A ConfigError unless `recording` is what inspection.record returns."""
    if not isinstance(recording, Recording):
        raise ConfigError(f"the recording must be a Recording, not {type(recording).__name__}")


def find_units(recording: Recording, top: int = 3) -> list[Found]:
    """For each property of the recorded text, the `top` units that track it best."""
    _require_recording(recording)
    require_whole("top", top, 1)
    if not recording.text:  # nothing read: no property occurs
        return [Found(prop, [], None, CONSTANT) for prop in PROPERTIES]
    labels, columns = [], []
    for field in STATES[recording.cell]:
        values = recording.values[field]  # (L, T, H)
        num_layers, _, hidden = values.shape
        labels += [Unit(layer, i, field) for layer in range(num_layers) for i in range(hidden)]
        columns.append(values.permute(1, 0, 2).reshape(values.shape[1], -1))  # (T, L*H)
    # float32, standardised in place: one copy of the states beside the recording
    states = _standardise(torch.cat(columns, 1))  # (T, U)
    properties, found = text_properties(recording.text), []
    for prop in PROPERTIES:
        values = properties[prop.name]
        if episodes(values) < MIN_EPISODES:  # too little of it in this text to track
            unfound = CONSTANT if bool((values == values[0]).all()) else TOO_RARE
            found.append(Found(prop, [], None, unfound))  # not measured: no chance level
            continue
        values = _standardise(values[:, None])[:, 0].float()  # (T,)
        r = values @ states / len(values)  # (U,)
        order = r.abs().argsort(descending=True)[:top].tolist()
        shifts = [len(values) * k // 4 for k in (1, 2, 3)]
        chance = max(float((values.roll(s) @ states).abs().max()) / len(values) for s in shifts)
        found.append(Found(prop, [(labels[i], float(r[i])) for i in order], chance))
    return found


# How many times a property must come back to its resting value (a line ends, a word starts and
# is over, a bracket closes) for a correlation with it to say anything: in 500 characters of one
# word, "word start" is a single spike and "to line end" one ramp, and a unit that only drifts
# from its cold start correlates with either at 0.99.
MIN_EPISODES = 5
TOO_RARE = "too rare in this text"  # fewer than MIN_EPISODES
CONSTANT = "does not vary in this text"  # (all one line, no word, no bracket: nothing to follow)


def episodes(values: torch.Tensor) -> int:
    """How many times `values` (T,) returns to its least value after leaving it (a property's
    occurrences: lines for a position on the line, words for a word start); 0 for a constant."""
    if not isinstance(values, torch.Tensor) or values.dim() != 1 or values.is_complex():
        raise ConfigError(f"values must be a real tensor (T,), not {shown_value(values)}")
    if values.numel() == 0:
        return 0
    at_least = values == values.min()  # (T,)
    return int((at_least[1:] & ~at_least[:-1]).sum())


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Columns of x (T, U), in place, to mean 0 and (population) standard deviation 1; constant
    ones to 0."""
    mean, std = x.mean(0), x.std(0, unbiased=False)
    return x.sub_(mean).div_(torch.where(std > 0, std, torch.ones_like(std)))


@dataclass
class Saturation:
    """How often each unit's gate sits at an end: left (below `low`), right (above `high`)."""

    gate: str
    left: torch.Tensor  # (L, H): the share of characters with the gate below `low`
    right: torch.Tensor  # (L, H): above `high`


def gate_saturation(recording: Recording, low: float = 0.1, high: float = 0.9) -> list[Saturation]:
    """Each gate's saturation per unit, as in the paper's figure (empty for the RNN: no gates)."""
    _require_recording(recording)
    for name, value in (("low", low), ("high", high)):
        require_type(name, value, numbers.Real, "a number")
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigError(f"low and high must be 0 <= low <= high <= 1, not {low!r} and {high!r}")
    if not recording.text:  # no character: no share of them (nan)
        raise ConfigError("nothing was recorded: record a text of one character at least")
    return [
        Saturation(
            gate,
            (recording.values[gate] < low).double().mean(1),
            (recording.values[gate] > high).double().mean(1),
        )
        for gate in GATES[recording.cell]
    ]


def most_varied(recording: Recording, field: str) -> tuple[int, int]:
    """(layer, index) of the unit whose `field` varies most over the recording."""
    _require_recording(recording)
    if field not in recording.values:
        raise ConfigError(f"field must be one of {', '.join(recording.values)}, not {field!r}")
    values = recording.values[field]  # (L, T, H)
    if values.shape[1] == 0:
        raise ConfigError("nothing was recorded: record a text of one character at least")
    std = values.std(1) if values.shape[1] > 1 else values.abs()[:, 0]  # (L, H)
    flat = int(std.flatten().argmax())
    return flat // values.shape[2], flat % values.shape[2]
