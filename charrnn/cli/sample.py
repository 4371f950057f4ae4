"""`charrnn sample`: stream new text from a checkpoint to stdout (or a file)."""

from __future__ import annotations

import os
import signal
import sys
import time

import click

from charrnn.cli.common import (
    Encoding,
    Number,
    Text,
    checkpoint_dir_option,
    checkpoint_option,
    device_option,
    not_empty,
    read_stdin,
    say,
    user_errors,
    write_output,
)
from charrnn.cli.signals import exit_status
from charrnn.defaults import ENCODING, MAX_SEED, TEMPERATURE, UNKNOWN
from charrnn.jsonl import json_line
from charrnn.text.vocab import UNKNOWN_POLICIES

MAX_LENGTH = 10**9
PRIME_HINT = "to prime from a stream, pipe it in and use --prime - to read standard input"


class Temperatures(click.ParamType):
    """`0.8`, or a schedule `0.5,1.0,0.8` cycled per character."""

    name = "T[,T...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            temps = tuple(float(t) for t in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a temperature or a comma-separated list of them")
        if any(not 0 <= t < float("inf") for t in temps):  # also nan
            self.fail(f"{value!r}: temperatures must be 0 or more, and finite")
        return temps


def temperature_option(help: str):
    """-t/--temp, as `sample` and `inspect --sample` take it."""
    return click.option(
        "-t",
        "--temp",
        "temperature",
        type=Temperatures(),
        default=str(TEMPERATURE),
        show_default=True,
        help=help,
    )


def unescape(text: str) -> str:
    r"""`\n`, `\t` and `\\` typed on a command line, as the characters they stand for."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@click.command(
    epilog="""\b
Examples:
  charrnn sample                                # 500 characters from the latest run
  charrnn sample --temp 0.5 --length 2000       # safer, more repetitive text
  charrnn sample --prime "ROMEO:" --seed 1      # the same text every time
  charrnn sample --temp 0.4,1.2 --top-p 0.95    # a temperature schedule, nucleus sampling
  charrnn sample -n 4 --stop '\\n\\n' --prime "JULIET:"   # four speeches, one paragraph each
  charrnn sample -n 8 --json | jq -r .text      # one JSON object per sample
  echo "To be" | charrnn sample --prime - --no-echo-prime
  charrnn sample --length 1000000 | head -c 200 # stops quietly when the reader leaves
"""
)
@checkpoint_option
@temperature_option(
    "Temperature: 0 greedy, <1 safer, >1 wilder; a list (0.5,1.0) is cycled per character."
)
@click.option("--top-k", type=click.IntRange(1), help="Sample among the k likeliest characters.")
@click.option(
    "--top-p",
    type=Number(0, 1, min_open=True),
    help="Sample among the likeliest characters holding probability p (nucleus).",
)
@click.option(
    "-l",
    "--length",
    type=click.IntRange(0, MAX_LENGTH),
    default=500,
    show_default=True,
    help="Characters to generate (at most; see --stop).",
)
@click.option(
    "-p", "--prime", type=Text(), default="", help="Text to start from; '-' reads it from stdin."
)
@click.option(
    "--prime-file",
    type=click.Path(),  # read by sources.input_file, as every command reads a file
    metavar="FILE",
    callback=not_empty,
    help="Read the prime from a file.",
)
@click.option(
    "--encoding",
    type=Encoding(),
    default=ENCODING,
    show_default=True,
    help="Encoding of the prime read from --prime-file or stdin.",
)
@click.option(
    "--unknown",
    type=click.Choice(UNKNOWN_POLICIES),
    default=UNKNOWN,
    show_default=True,
    help="Prime characters the model never saw: refuse, drop them, "
    "or replace them (é -> e, else a space).",
)
@click.option("--no-echo-prime", is_flag=True, help="Print only the continuation.")
@click.option(
    "-n",
    "--num-samples",
    type=click.IntRange(1, 4096),
    default=1,
    show_default=True,
    help="Samples, generated together as one batch; sample i uses seed+i.",
)
@click.option(
    "--separator",
    type=Text(),
    default="\\n\\n",
    show_default=True,
    help="Between samples (\\n and \\t understood).",
)
@click.option(
    "--stop",
    type=Text(),
    callback=not_empty,
    multiple=True,
    metavar="TEXT",
    help="End a sample where TEXT appears (not printed); repeatable; \\n understood.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per sample: text, seed, settings, mean log-probability.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    callback=not_empty,
    help="Write to this file instead of stdout ('-': stdout; all or nothing: a failed write "
    "leaves FILE as it was).",
)
@click.option(
    "-s",
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    help="The same seed, the same text: 0 to 2^53-1, which a JSON reader keeps exactly "
    "(sample i uses seed+i, which must stay in that range).",
)
@device_option("cpu", " One character at a time is fastest on the CPU.")
@checkpoint_dir_option
@user_errors
def sample(
    checkpoint, checkpoint_dir, device, prime, prime_file, encoding, unknown, output, **opts
):
    """Write new text in the style of a trained run, streamed to stdout as it is generated."""
    from charrnn import checkpoint as ckpt
    from charrnn import runs
    from charrnn.devices import resolve_device
    from charrnn.text.vocab import apply_unknown
    from charrnn.use.sampler import SampleConfig, Sampler

    if opts["seed"] is not None and opts["seed"] + opts["num_samples"] - 1 > MAX_SEED:
        raise click.BadParameter(
            f"with -n {opts['num_samples']} it must be at most {MAX_SEED - opts['num_samples'] + 1}"
            " (sample i uses seed+i, at most 2^53-1)",
            param_hint="'-s' / '--seed'",
        )
    config = SampleConfig(
        temperature=opts["temperature"],
        top_k=opts["top_k"],
        top_p=opts["top_p"],
        seed=opts["seed"],
        num_samples=opts["num_samples"],
    )
    path = runs.resolve_checkpoint(checkpoint, checkpoint_dir, note=say)
    model = ckpt.load_model(path)
    counts = model.char_counts  # None in older checkpoints
    text = apply_unknown(read_prime(prime, prime_file, encoding), model.vocab, unknown)
    sampler = Sampler(model.to(resolve_device(device)), config, track_logprob=opts["as_json"])
    sampler.prime(text)
    # Ctrl-C stops sampling (what was made is printed, exit 130) even where we were started with
    # SIGINT ignored, as a non-interactive shell starts background jobs; `train` does the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def emit(out) -> int:
        """Sample onto `out`; the exit status of the stop signal that cut it short (what was made
        is still written), else 0."""
        job = _Job(sampler, text, opts, str(path), out, counts)
        try:
            job.run()
        except KeyboardInterrupt as e:
            job.finish()
            return exit_status(e)
        return 0

    if status := write_output(output, emit):
        sys.exit(status)


class _Job:
    """One sampling command: live output for a single sample, the whole batch otherwise."""

    def __init__(self, sampler, prime, opts, checkpoint, out, counts=None):
        from charrnn.use.sampler import StopCutter

        self.sampler, self.prime, self.opts, self.checkpoint, self.out = (
            sampler,
            prime,
            opts,
            checkpoint,
            out,
        )
        self.counts = counts  # the corpus's character counts: how a runaway is noticed
        n = sampler.config.num_samples
        self.cutter = StopCutter(n, [unescape(s) for s in opts["stop"]])
        self.pieces: list[list[str]] = [[] for _ in range(n)]
        self.live = n == 1 and not opts["as_json"]
        self.echo = "" if opts["no_echo_prime"] else prime
        self.finished = False
        self.tty, self.flushed = out.isatty(), time.monotonic()

    def run(self) -> None:
        if self.live:
            self.out.write(self.echo)
        for chars in self.sampler.generate(self.opts["length"]):
            for row, ch in enumerate(chars):
                if piece := self.cutter.feed(row, ch):
                    self._add(row, piece)
            if self.cutter.all_done():
                break
        self.finish()

    def _add(self, row: int, piece: str) -> None:
        self.pieces[row].append(piece)
        if self.live:
            self.out.write(piece)
            # Live: every character on a terminal; on a pipe at a line end or every 20 ms, which
            # `| tee` still shows as it is made, without a system call per character.
            now = time.monotonic()
            if self.tty or piece.endswith("\n") or now - self.flushed > 0.02:
                self.out.flush()
                self.flushed = now

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        for row in range(len(self.pieces)):
            if rest := self.cutter.flush(row):
                self._add(row, rest)
        texts = ["".join(p) for p in self.pieces]
        self.runaways = self._check(texts)
        self.judged = bool(self.counts) and max(self.sampler.config.temperature) <= 1.0
        if self.opts["as_json"]:
            for line in self._json_lines(texts):
                self.out.write(line + "\n")
        elif not self.live:
            self.out.write(unescape(self.opts["separator"]).join(self.echo + t for t in texts))
        last = (self.echo + texts[-1])[-1:] if not self.opts["as_json"] else "\n"
        if self.out.isatty() and last != "\n":
            self.out.write("\n")
        self.out.flush()

    def _check(self, texts) -> list[str | None]:
        """Warn on stderr about each sample whose characters show a runaway state."""
        from charrnn.train.coldstart import looks_runaway

        # above temperature 1 only the repetition is judged: rarer characters were asked for
        counts = self.counts if max(self.sampler.config.temperature) <= 1.0 else None
        found = [looks_runaway(t, self.sampler.model.vocab, counts) for t in texts]
        for i, value in enumerate(found):
            if value is not None:
                which = (
                    f"sample {i + 1} (seed {self.sampler.seeds[i]})"
                    if len(texts) > 1
                    else "the sample"
                )
                click.echo(
                    f"Warning: {which} looks like a runaway: {value}; the model is unsound from "
                    "a cold start (train it longer, or retrain it if it was trained before "
                    "charrnn's cold starts)",
                    err=True,
                )
        return found

    def _json_lines(self, texts):
        from charrnn.train.coldstart import MIN_JUDGED  # a shorter sample is not judged

        o, s = self.opts, self.sampler
        settings = {
            "temperature": list(s.config.temperature),
            "top_k": o["top_k"],
            "top_p": o["top_p"],
            "length": o["length"],
            "stop": [unescape(x) for x in o["stop"]],
        }
        # Each mean covers exactly the characters of its text: not a stop string, nor what a sample
        # that had stopped went on generating while the rest of the batch ran.
        logprobs = s.mean_logprob([len(t) for t in texts])
        rows = zip(texts, s.seeds, logprobs, self.runaways, strict=True)
        for text, seed, logprob, runaway in rows:
            yield json_line(
                {
                    "text": text,
                    "prime": self.prime,
                    "seed": seed,
                    # A path's bytes that are not UTF-8 show as U+FFFD: JSON holds text only.
                    "checkpoint": os.fsencode(self.checkpoint).decode("utf-8", "replace"),
                    "settings": settings,
                    "mean_logprob": round(logprob, 6),
                    # null where not judged (a temperature above 1, or an older checkpoint)
                    # and nothing showed one (one character repeated shows one anywhere)
                    "runaway": True
                    if runaway is not None
                    else (False if self.judged and len(text) >= MIN_JUDGED else None),
                }
            )


def read_prime(prime: str, prime_file: str | None, encoding: str) -> str:
    """The prime: --prime as given, '-' for stdin, or --prime-file."""
    from charrnn.text.sources import input_file, read_all

    if prime and prime_file:
        raise click.UsageError("give --prime or --prime-file, not both")
    if prime == "-":  # read stdin only when asked to, never implicitly
        return read_stdin("the prime on stdin", encoding)[1]
    if prime_file:
        source = input_file(prime_file, f"the prime file {prime_file}", PRIME_HINT)
        return read_all(source.chunks(), source.label, encoding)[1]
    return prime
