"""A sampling job, as `charrnn sample` runs it: a batch of samples cut at stop strings and streamed
piece by piece as each becomes safe to show, then each sample's result: its text, its seed, its
mean log-probability and whether it looks like a runaway, and the JSON record of it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from charrnn.model.runaway import MIN_JUDGED, looks_runaway, repeats_judged
from charrnn.model.trained import Model
from charrnn.use.sampler import SampleConfig, Sampler, StopCutter, stop_strings


@dataclass
class SampleResult:
    """One sample of a job: its text (cut before a stop string) and its seed. `runaway` says what
    shows it comes from a runaway state (None: nothing did); `judged`, whether its characters were
    weighed against the corpus's (a temperature up to 1, counts known, long enough); `ended`, why
    it ends where it does: "length" (all the characters asked for), "stop" (a stop string) or
    "stopped" (sampling was cut short: a stop signal)."""

    text: str
    seed: int
    mean_logprob: float | None  # nats per character of `text`; None where not tracked or empty
    runaway: str | None
    judged: bool
    ended: str = "length"
    # one character repeated throughout by a draw of the likeliest characters, whose loops are
    # its nature (see runaway.repeats_judged): not judged a runaway, nor called sound
    stuck: bool = False

    @property
    def looks_runaway(self) -> bool | None:
        """True, False, or None where not judged and nothing showed a runaway (one character
        repeated shows one at any temperature)."""
        if self.runaway is not None:
            return True
        return False if self.judged else None


def judge(
    model: Model,
    text: str,
    seed: int,
    config: SampleConfig,
    mean_logprob: float | None,
    ended: str = "length",
    reread: Callable[[str], float | None] | None = None,
) -> SampleResult:
    """What a sample the model wrote with `config` is: its runaway judgement by the training
    text's character counts (model.char_counts) and, where the draw keeps the likeliest
    characters, by how sure the model was of it: its `mean_logprob` (None where the draws were not
    tracked; then `reread`, given the text, reads it again where the verdict needs it)."""
    # above temperature 1 only the repetition is judged: rarer characters were asked for
    cool = max(config.temperature) <= 1.0
    long, one = len(text) >= MIN_JUDGED, len(set(text)) == 1
    # a colder draw, or a narrow top-k or top-p, keeps the likeliest few characters and loops by
    # its nature (--temp 0.1 writes what --temp 0 does): no verdict on a loop, unless the model
    # itself was that sure of it (so that the verdict is the same whether the draws were tracked)
    certainty = mean_logprob
    if certainty is None and reread is not None and long and one:
        certainty = reread(text)
    repeats = repeats_judged(config.temperature, config.top_k, config.top_p, certainty)
    stuck = not repeats and long and one
    counts = model.char_counts if cool else None
    return SampleResult(
        text=text,
        seed=seed,
        mean_logprob=mean_logprob,
        runaway=looks_runaway(text, model.vocab, counts, repeats),
        judged=bool(model.char_counts) and cool and long and not stuck,
        ended=ended,
        stuck=stuck,
    )


class SampleJob:
    """`config.num_samples` samples of up to `length` characters after `prime`. Iterating yields
    (sample, piece) as text becomes safe to show: a stop string, and whatever a sample writes
    after it, never shows. It ends after `length` characters or once every sample has met a stop
    string; then `results()` says what each sample is. `char_counts`, the corpus's character
    counts, are how a runaway is noticed; `track_logprob`, whether the mean log-probability is."""

    def __init__(
        self,
        model: Model,
        config: SampleConfig,
        length: int,
        prime: str = "",
        stops: Sequence[str] | str | None = (),
        track_logprob: bool = True,
    ):
        self.stops = stop_strings(stops)  # (checked before a long prime is read)
        self.sampler = Sampler(model, config, track_logprob=track_logprob)
        self.sampler.prime(prime)
        self.length, self.prime = length, prime
        self.counts = model.char_counts
        n = config.num_samples
        self.cutter = StopCutter(n, self.stops)
        self.pieces: list[list[str]] = [[] for _ in range(n)]
        self.flushed = False
        self.steps = 0  # characters generated for every sample, and fed to the cutter

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for chars in self.sampler.generate(self.length):
            for row, ch in enumerate(chars):
                if piece := self.cutter.feed(row, ch):
                    self.pieces[row].append(piece)
                    yield row, piece
            self.steps += 1
            if self.cutter.all_done():
                break
        yield from self.flush()

    def flush(self) -> list[tuple[int, str]]:
        """The text held back in case it began a stop string: at the end, or when sampling was
        cut short (a stop signal). Given once; empty after that."""
        if self.flushed:
            return []
        self.flushed = True
        rests = [(row, self.cutter.flush(row)) for row in range(len(self.pieces))]
        for row, rest in rests:
            self.pieces[row].append(rest)
        return [(row, rest) for row, rest in rests if rest]

    def results(self) -> list[SampleResult]:
        """Each sample's text so far, its seed, mean log-probability and runaway judgement."""
        texts = ["".join(p) for p in self.pieces]
        # Each mean covers exactly the characters of its text: not a stop string, nor what a sample
        # that had stopped went on generating while the rest of the batch ran.
        tracked = self.sampler.track_logprob
        lengths = [len(t) for t in texts]
        logprobs = self.sampler.mean_logprob(lengths) if tracked else [None] * len(texts)
        reread = functools.cache(self.sampler.reread_logprob)  # every sample began alike
        whole = "length" if self.steps >= self.length else "stopped"
        return [
            judge(
                self.sampler.model,
                text,
                seed,
                self.sampler.config,
                logprob,
                "stop" if met else whole,
                None if tracked else reread,
            )
            for text, seed, logprob, met in zip(
                texts, self.sampler.seeds, logprobs, self.cutter.done, strict=True
            )
        ]

    def records(self, results: list[SampleResult], checkpoint: str) -> Iterator[dict]:
        """The `sample --json` objects, one per result (`checkpoint`: the path as text)."""
        c = self.sampler.config
        settings = {
            "temperature": list(c.temperature),
            "top_k": c.top_k,
            "top_p": c.top_p,
            "length": self.length,
            "stop": self.stops,
        }
        for result in results:
            yield {
                "text": result.text,
                "prime": self.prime,
                "seed": result.seed,
                "checkpoint": checkpoint,
                "settings": settings,
                # null for an empty text (`-l 0`, a stop string at its start): nothing to average
                "mean_logprob": None if (x := result.mean_logprob) is None else round(x, 6),
                # null where not judged (a temperature above 1, an older checkpoint, a cold draw
                # stuck on one character)
                "runaway": result.looks_runaway,
                "ended": result.ended,  # "stopped": cut short by Ctrl-C or another stop signal
            }
