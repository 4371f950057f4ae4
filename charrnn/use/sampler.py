"""Sampling text from a trained CharRNN, one character at a time with the state carried.

Every sample begins from the model's cold start (Model.start: its lead-in, then the prime), then
costs one step of the cell per character. N samples run as one batch; sample i draws from its own
generator, seeded seed + i, so sample i of a batch is the text `--seed seed+i` gives alone.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charrnn.defaults import MAX_SEED, SAMPLE_LENGTH, TEMPERATURE
from charrnn.errors import (
    ConfigError,
    foreign_number,
    require_callable,
    require_whole,
    shown_value,
)
from charrnn.model.network import CharRNN, select_streams
from charrnn.model.trained import CHUNK, PASS_COLS, Model, Start, require_model
from charrnn.text.vocab import known_form
from charrnn.threads import ThreadTuner, default_threads, tuned_threads

# When a sampling step may be worth sharing among threads (see sampling_threads), in its
# multiply-adds: for the weights it reads, one stream's (each weight is read once a step, however
# many streams), from a 1x384 LSTM's 1.6 MB: on two cores of an Intel Xeon whose one core reads
# memory at half the speed of two, one stream of 1x512 ran 1.4x faster on two threads, of 1x256
# no faster, on an AMD EPYC no faster at any size (docs/sampling-speed.md); for the arithmetic, the
# whole batch's, from -n 64 of a 1x512 model. From either a ThreadTuner measures which count wins.
STREAM_MACS = 400_000
BATCH_MACS = 64_000_000
TUNED_STEPS = 16  # steps timed as one unit for the tuner: a timing per step cost 5% of small's
TRIAL_STEPS = 4  # a trial's units after each count's first (one step: a count that stalls costs
# one): timed one step each, a trial of one stream of 1x512 read single steps off by up to 2x


@dataclass
class SampleConfig:
    """How to pick each next character."""

    temperature: Sequence[float] = (TEMPERATURE,)  # cycled per character; 0 = the likeliest one
    top_k: int | None = None  # keep only the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches p (nucleus)
    seed: int | None = None  # None: a fresh random seed
    num_samples: int = 1

    def __post_init__(self):
        # Each field named as a library caller gives it, with the option that sets it.
        temps = self.temperature
        # one number, or a sequence of them (not a set or a dict: cycled in an order)
        many = isinstance(temps, Sequence) and not isinstance(temps, str | bytes)
        temps = list(temps) if many else [temps]
        if not temps or any(not _real(t) or not 0 <= t < math.inf for t in temps):  # nan too
            shown = ", ".join(map(repr, temps)) or "none"
            hint = next((foreign_number(t, "float") for t in temps if not _real(t)), "")
            raise ConfigError(
                f"temperature (--temp) must be 0 or more and finite, not {shown}{hint}"
            )
        self.temperature = tuple(float(t) for t in temps)
        require_whole("num_samples (--num-samples)", self.num_samples, 1)
        if self.top_k is not None:
            require_whole("top_k (--top-k)", self.top_k, 1)
        if self.top_p is not None and not (_real(self.top_p) and 0.0 < self.top_p <= 1.0):
            hint = "" if _real(self.top_p) else foreign_number(self.top_p, "float")
            raise ConfigError(
                f"top_p (--top-p) must be a number in (0, 1], not {self.top_p!r}{hint}"
            )
        if self.top_p is not None:  # a Python float, as the temperatures (NumPy's float64 too)
            self.top_p = float(self.top_p)
        if self.seed is not None:
            require_whole("seed (--seed)", self.seed, 0)
            if self.seed > MAX_SEED - self.num_samples + 1:
                raise ConfigError(
                    f"seed (--seed) must be 0 to 2^53-1 for every sample (seed+i), not {self.seed}"
                )


def _real(x) -> bool:
    """A real number (of Python's, NumPy's...), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


class Sampler:
    """Generates N samples at once from `model`, after a common prime; it puts the network in
    eval mode (no dropout) for good: sample_text, below, is the reader that puts it back."""

    def __init__(self, model: Model, config: SampleConfig, track_logprob: bool = True):
        require_model(model)
        if not isinstance(config, SampleConfig):
            raise ConfigError(f"the config must be a SampleConfig, not {type(config).__name__}")
        self.model, self.config = model, config
        model.net.eval()
        self.device = model.device
        n = config.num_samples
        # a fresh seed from the system, not torch.seed(): that would reseed the caller's generator
        base = config.seed if config.seed is not None else secrets.randbelow(MAX_SEED - n + 2)
        self.seeds = [base + i for i in range(n)]
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]
        # log E for the next characters, (N, V) each: drawn a block at a time, one taken a step
        # (split when drawn: indexing the block each step cost more than the draw's arithmetic)
        self._log_e: Sequence[torch.Tensor] = ()
        self._used = 0  # of the block
        self.stepper = model.net.stepper(n)  # holds the N streams' state between characters
        self.threads = sampling_threads(model.net, n)  # the most; a ThreadTuner fits it to the load
        self.tuner: ThreadTuner | None = None
        self.track_logprob = track_logprob
        self.logits: torch.Tensor | None = None  # (N, V): odds for the next character
        self._primed: Start | None = None  # where every sample began: after the lead-in and prime
        # (N, capacity): the model's log-prob of each generated character, so that a mean can
        # cover exactly the characters a caller kept (a stop string cuts a sample short).
        self._logprobs = torch.zeros(n, 0, dtype=torch.float64, device=self.device)
        self.count = 0

    @torch.no_grad()  # not inference mode: `logits` is a caller's to use in any torch code
    def prime(self, text: str, chunk: int = CHUNK) -> None:
        """Read `text` after the model's lead-in; every sample starts from that state. A prime
        of any length fits in memory: it is read `chunk` characters a pass (Model.start), a long
        one on the thread count a ThreadTuner finds fastest under the load of the moment, as
        `score` reads (two threads beside a busy process read it at half the speed of one)."""
        if not isinstance(text, str):
            raise ConfigError(f"the prime must be text (a str), not {type(text).__name__}")
        require_whole("chunk", chunk, 1)
        text = known_form(text, self.model.vocab)  # é typed in the other Unicode form
        long = self.device.type == "cpu" and len(text) > PASS_COLS
        with tuned_threads(long) as tuner:
            start = self.model.start(self.config.num_samples, text, chunk, tuner)
        self.stepper.start(start.state)
        self.logits, self._primed = start.logits, start

    def generate(self, length: int) -> Iterator[list[str]]:
        """Yield `length` steps; each is the list of N new characters, one per sample. (No
        inference mode: nothing here needs a gradient (the stepper's weights are detached), and a
        mode entered at each resume of this generator costs 1.5 µs a character.)"""
        require_whole("the length", length, 0)  # here, not at the first step: a generator's body
        return self._generate(length)

    def _generate(self, length: int) -> Iterator[list[str]]:
        if self.logits is None:
            self.prime("")
        chars = self.model.vocab.chars
        with step_threads(self.threads):  # for this loop only
            if self.tuner is None and self.threads > 1:  # kept from one call to the next
                self.tuner = ThreadTuner.on_free_cores(self.threads)
            tuner, clock = self.tuner, time.perf_counter
            spent, steps, unit = 0.0, 0, 1  # of the unit being timed: the steps, not the draws
            for t in range(length):
                idx = self.choose(self.logits, t)  # (N,)
                yield [chars[i] for i in idx.tolist()]
                if tuner is None:
                    self.logits = self.stepper(idx)  # (N, V)
                    continue
                if steps == 0:  # the count this unit runs on; a trial's units are short: a
                    # count that stalls (a busy core) costs a step (its first), not TUNED_STEPS
                    trial = tuner.before()
                    unit = (1 if tuner.waking() else TRIAL_STEPS) if trial else TUNED_STEPS
                begun = clock()
                self.logits = self.stepper(idx)
                spent, steps = spent + clock() - begun, steps + 1
                if steps == unit:
                    tuner.record(spent, steps)
                    spent, steps = 0.0, 0

    def choose(self, logits: torch.Tensor, t: int = 0) -> torch.Tensor:
        """logits (N, V) -> ids (N,), by the temperature for step t, top-k and top-p."""
        c = self.config
        temperature = c.temperature[t % len(c.temperature)]
        # 0, or a temperature so small that it is 0 or a denormal in the logits' precision: greedy.
        if temperature < _tiny(logits.dtype):
            idx = logits.argmax(-1)
        else:
            # Beyond HOTTEST the draw is uniform (over what top-k and top-p keep) anyway, and
            # float32 turns a larger temperature into inf, and -inf / inf into nan.
            temperature = min(temperature, HOTTEST)
            # Which characters top-k and top-p keep is read in the logits' order: a huge
            # temperature flattens the probabilities to ties in float32.
            z = logits
            if c.top_k is not None and c.top_k < z.shape[-1]:
                kth = torch.topk(logits, c.top_k, dim=-1).values[:, -1:]
                z = z.masked_fill(logits < kth, float("-inf"))
            if c.top_p is not None and c.top_p < 1.0:
                order = logits.argsort(dim=-1, descending=True)
                z = z.masked_fill(_outside_nucleus(z, temperature, c.top_p, order), float("-inf"))
            idx = self._draw(z, temperature)
        if self.track_logprob:
            if self.count == self._logprobs.shape[1]:  # grown by doubling: O(1) per step
                more = self._logprobs.new_zeros(len(idx), max(self.count, NOISE_STEPS))
                self._logprobs = torch.cat([self._logprobs, more], 1)
            logprob = F.log_softmax(logits, -1).gather(1, idx[:, None])[:, 0]
            self._logprobs[:, self.count] = logprob.double()
        self.count += 1
        return idx

    def _draw(self, z: torch.Tensor, temperature: float) -> torch.Tensor:
        """One id per row from softmax(z / temperature), by the Gumbel-max trick: the argmax of
        z / T + g, where g = -log E is Gumbel noise, E exponential (row i's from its own
        generator), which is the argmax of z - T log E: (N, V) -> (N,). Two operations a
        character, where an inverse-CDF draw takes about ten (the softmax, the cumulative sum,
        the search...), each of which costs several microseconds a step of a large model has
        pushed out of the caches (docs/sampling-speed.md)."""
        if self._used == len(self._log_e):
            self._log_e, self._used = self._log_exponentials(z.shape[-1]).unbind(1), 0
        log_e = self._log_e[self._used]  # (N, V)
        self._used += 1
        return torch.add(z, log_e, alpha=-temperature).argmax(-1)  # (N,)

    def _log_exponentials(self, vocab_size: int) -> torch.Tensor:
        """log E, E exponential, for the next k characters of every row: (N, k, V). Row i's are
        drawn from its own generator only, by the same calls however many rows there are (k
        depends on V alone: NOISE_PER_ROW), so sample i of a batch is the text seed + i writes
        alone on any device."""
        k = max(1, min(NOISE_STEPS, NOISE_PER_ROW // vocab_size))
        u = torch.empty(len(self.generators), k, vocab_size, device=self.device)
        for row, g in zip(u, self.generators, strict=True):
            torch.rand(k, vocab_size, generator=g, device=self.device, out=row)
        # E = -log u; a u of exactly 0 (torch.rand can draw one) would make E infinite and its
        # character never drawn, so the clamp keeps every log E finite, between -16.6 and 4.5.
        return u.clamp_(min=_tiny(u.dtype)).log_().neg_().log_()

    def mean_logprob(self, lengths: Sequence[int] | None = None) -> list[float | None]:
        """Per sample: mean log-probability (nats) the model gave to its generated characters, to
        the first lengths[i] of them for sample i (default: all); None for none (no mean)."""
        if not self.track_logprob:
            raise ConfigError(
                "this sampler does not keep the log-probabilities of its draws (track_logprob="
                "False): make it with track_logprob=True, or read a text again (reread_logprob)"
            )
        if lengths is None:
            lengths = [self.count] * len(self.seeds)
        elif (
            isinstance(lengths, str)
            or not isinstance(lengths, Sequence)
            or len(lengths) != len(self.seeds)
            or not all(isinstance(k, int) and not isinstance(k, bool) for k in lengths)
            or not all(0 <= k <= self.count for k in lengths)
        ):
            raise ConfigError(
                f"lengths must be {len(self.seeds)} whole number(s) from 0 to {self.count} "
                f"(one a sample, at most the characters generated), not {shown_value(lengths)}"
            )
        sums = [self._logprobs[i, :k].sum().item() for i, k in enumerate(lengths)]
        return [total / k if k else None for total, k in zip(sums, lengths, strict=True)]

    @torch.inference_mode()
    def reread_logprob(self, text: str) -> float | None:
        """Mean log-probability (nats) the model gives `text` after the prime, read again from
        where every sample began: what mean_logprob says of a sample that wrote `text`, where the
        draws were not tracked (track_logprob False). None for an empty text."""
        if not isinstance(text, str) or not set(text) <= set(self.model.vocab.chars):
            raise ConfigError("the text must be a str of characters in the model's vocabulary")
        if not text:
            return None
        start = self._primed or self.model.start(1)  # a cold start, if nothing was primed yet
        ids = torch.tensor([self.model.vocab.encode(text)], device=self.device)  # (1, L)
        state = select_streams(start.state, slice(0, 1))  # every row's is the same
        last, total = start.h[:1], 0.0  # (1, 1, H): the h the next character is read after
        for t, out, _ in self.model.read(ids, state):  # out (1, w, H)
            before = torch.cat([last, out[:, :-1]], 1)  # (1, w, H): the h each character follows
            y = ids[:, t : t + out.shape[1]]  # (1, w)
            total += self.model.net.nats(before, y).double().sum().item()
            last = out[:, -1:]
        return -total / len(text)


NOISE_STEPS = 256  # characters whose noise a generator draws at a time, at most
NOISE_PER_ROW = 4096  # noise held at once for each sample (16 KB), or one character's if more:
# 63 characters' at 65 distinct, one at a time from 4,096 (-n 1000 of 5,000: 20 MB in all)
HOTTEST = 1e30  # temperatures above it are taken as it (see choose)


@functools.cache
def _tiny(dtype: torch.dtype) -> float:
    """The smallest normal number of `dtype` (torch.finfo costs a microsecond a character)."""
    return torch.finfo(dtype).tiny


STOP_POLL = 64  # characters between two looks at sample_text's should_stop


def sample_text(
    model: Model,
    prime: str = "",
    length: int = SAMPLE_LENGTH,
    temperature: float = TEMPERATURE,
    seed: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> str:
    """`length` characters written after `prime` (the prime itself is not in the text returned),
    at one temperature, from `seed` (None: a fresh one from the system, as `charrnn sample`
    without --seed), as training's samples are written: it draws from its own Generator
    only (the run's random state is untouched, so a run sampled along the way ends with the same
    weights) and leaves the model in the mode it found it in. `should_stop`, asked every
    STOP_POLL characters: True ends the sample there (a stop signal, a time budget spent). The
    prime is read in the Unicode form the model knows (Sampler.prime), as open_run checks a
    RunRequest's prime."""
    require_model(model)
    if not isinstance(prime, str):
        raise ConfigError(f"the prime must be text (a str), not {type(prime).__name__}")
    require_whole("the length", length, 0)
    require_callable("should_stop", should_stop)
    with model.evaluating():
        config = SampleConfig(temperature=temperature, seed=seed)
        sampler = Sampler(model, config, track_logprob=False)
        sampler.prime(prime)
        text = []
        for i, chars in enumerate(sampler.generate(length)):
            if should_stop is not None and i % STOP_POLL == 0 and should_stop():
                break
            text.append(chars[0])
        return "".join(text)


def stop_strings(stops: Sequence[str] | str | None) -> list[str]:
    """The stop strings a caller gave: a list of str; one str is one stop string (not one a
    character), None none; anything else a ConfigError."""
    if stops is None:
        return []
    if isinstance(stops, str):
        return [stops]
    if isinstance(stops, bytes) or not isinstance(stops, Iterable):
        raise ConfigError(f"stops must be a str or a list of str, not {shown_value(stops)}")
    stops = list(stops)
    if not all(isinstance(s, str) for s in stops):
        raise ConfigError(f"stops must be a str or a list of str, not {shown_value(stops)}")
    return stops


class StopCutter:
    """Ends each sample just before the first stop string in its generated text.

    It holds back the last len(longest stop) - 1 characters, which might be the start of a stop
    string, and lets everything before them through at once, so streaming stays live.
    """

    def __init__(self, num_samples: int, stops: Sequence[str] | str | None = ()):
        self.stops = [s for s in stop_strings(stops) if s]
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
        keep = max(0, len(text) - self.hold)  # (never negative: that would hold back too little)
        self.pending[row] = text[keep:]
        return text[:keep]

    def flush(self, row: int) -> str:
        """The held-back text, at the end of a sample."""
        text, self.pending[row] = self.pending[row], ""
        return text

    def all_done(self) -> bool:
        return all(self.done)


def _outside_nucleus(z: torch.Tensor, temperature: float, p: float, order: torch.Tensor):
    """Per row, the characters outside the nucleus of softmax(z / temperature): all but the most
    likely ones whose total reaches p, taken in `order` (ids, likeliest first). (N, V) -> (N, V)
    bool, True where dropped."""
    # Shifted first, so the likeliest character is at 0 and the rest below it: a tiny
    # temperature takes the rest to -inf, where z / T would overflow to inf, and softmax of inf
    # is nan.
    probs = torch.softmax((z - z.amax(-1, keepdim=True)) / temperature, dim=-1)
    sorted_probs = probs.gather(-1, order)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of strictly more likely characters
    drop = before >= p
    drop[:, 0] = False  # the likeliest always survives, even a p that is 0 in float32 (1e-300)
    return torch.zeros_like(drop).scatter_(-1, order, drop)


@contextlib.contextmanager
def step_threads(threads: int):
    """Run the block on at most `threads` threads (see sampling_threads), then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def sampling_threads(model: CharRNN, batch: int) -> int:
    """The most threads for sampling `batch` streams at once: one, unless a step is big enough
    that sharing it may pay (STREAM_MACS, BATCH_MACS); then the generator's ThreadTuner measures
    the count that is fastest on this machine under its load. Why not always: a shared step
    waits at a barrier for its slowest thread every step (docs/performance.md)."""
    c = model.config
    h, v = c.hidden_size, model.head.weight.shape[0]
    gh = model.layer_weights(0)[1].shape[0]  # G*H: the gates' rows (4H LSTM, 3H GRU, H RNN)
    # Stepper's work per stream: layer 0's input is a table row; each upper layer reads x and h.
    macs = gh * h + (c.num_layers - 1) * 2 * gh * h + v * h  # one stream's: the weights read
    if (macs < STREAM_MACS and batch * macs < BATCH_MACS) or model.device.type != "cpu":
        return 1
    return default_threads()
