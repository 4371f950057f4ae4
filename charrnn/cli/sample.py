"""`charrnn sample`: stream new text from a checkpoint to stdout (or a file)."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import click

from charrnn.cli.common import (
    check_reader,
    count,
    json_out,
    load_model,
    note_unknown,
    read_stdin,
    refuse_reading_into,
    say,
    write_output,
)
from charrnn.cli.options import (
    Number,
    Text,
    Whole,
    checkpoint_dir_option,
    checkpoint_option,
    device_option,
    encoding_option,
    given,
    json_option,
    not_empty,
    output_name,
    prime_option,
    quiet_option,
    seed_option,
    temperature_option,
    unescape,
    unknown_option,
)
from charrnn.cli.signals import exit_status
from charrnn.defaults import MAX_SEED

MAX_LENGTH = 10**9
PRIME_HINT = "to prime from a stream, pipe it in and use --prime - to read standard input"


@click.command(
    epilog="""\b
Examples:
  charrnn sample                                # 500 characters from the latest run
  charrnn sample --temp 0.5 --length 2000       # safer, more repetitive text
  charrnn sample --prime "ROMEO:" --seed 1      # the same text every time
  charrnn sample --temp 0.4,1.2 --top-p 0.95    # a temperature schedule, nucleus sampling
  charrnn sample -n 4 --stop '\\n\\n' --prime "JULIET:"   # four speeches, one paragraph each
  charrnn sample -n 8 --json | jq -r .text      # one JSON object per sample
  printf "To be" | charrnn sample --prime - --no-echo-prime   # (echo's line end is read too)
  charrnn sample --length 1000000 | head -c 200 # stops quietly when the reader leaves
"""
)
@checkpoint_option
@temperature_option(
    "Temperature: 0 greedy, <1 safer, >1 wilder; a list (0.5,1.0) is cycled per character."
)
@click.option("--top-k", type=Whole(1), help="Sample among the k likeliest characters.")
@click.option(
    "--top-p",
    type=Number(0, 1, min_open=True),
    help="Sample among the likeliest characters holding probability p (nucleus).",
)
@click.option(
    "-l",
    "--length",
    type=Whole(0, MAX_LENGTH),
    default=500,
    help="Characters to generate (at most; see --stop).",
)
@prime_option(
    "Text to start from; '-' reads it from stdin, exactly: a last line end (echo's) is kept."
)
@click.option(
    "--prime-file",
    type=click.Path(readable=False),  # read by corpus.input_file, as every command reads a file
    metavar="FILE",
    callback=not_empty,
    help="Read the prime from a file, exactly, its last line end kept ('-': as --prime -).",
)
@encoding_option("Encoding of the prime read from --prime-file or stdin.")
@unknown_option()
@click.option("--no-echo-prime", is_flag=True, help="Print only the continuation.")
@click.option(
    "-n",
    "--num-samples",
    type=Whole(1, 4096),
    default=1,
    help="Samples, generated together as one batch; sample i uses seed+i.",
)
@click.option(
    "--separator",
    type=Text(),
    default=None,
    show_default=False,
    help="Between samples (\\n, \\r, \\t and \\\\ understood)  [default: a blank line, \\n\\n; "
    "a line break, \\n, where --stop '\\n' makes each sample one line].",
)
@click.option(
    "--stop",
    type=Text(),
    callback=not_empty,
    multiple=True,
    metavar="TEXT",
    help="End a sample where TEXT appears in what it writes (the prime is not searched; TEXT is "
    "not printed): plain text, not a pattern; repeatable (the first to appear ends it); \\n, \\r, "
    "\\t and \\\\ understood.",
)
@json_option(
    "One JSON object per sample, written when the samples are done: text, seed, settings, mean "
    "log-probability, whether it looks like a runaway, and why it ended (length, stop, or "
    "stopped by a signal)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(readable=False),  # output_name refuses a folder; write_output the rest
    callback=output_name,
    help="Write to this file instead of stdout ('-': stdout; all or nothing: a failed write "
    "leaves FILE as it was).",
)
@seed_option(
    "The same seed, the same text: 0 to 2^53-1, which a JSON reader keeps exactly "
    "(sample i uses seed+i, which must stay in that range)."
)
@device_option("cpu", " One character at a time is fastest on the CPU.")
@quiet_option("No notes on stderr (warnings and errors still).")
@checkpoint_dir_option
def sample(
    checkpoint, checkpoint_dir, device, prime, prime_file, encoding, unknown, output, **opts
):
    """Write new text in the style of a trained run, streamed to stdout as it is generated (of
    -n N, the first sample; the others follow it at the end)."""
    from charrnn.devices import resolve_device
    from charrnn.text.vocab import apply_unknown
    from charrnn.use.sample_job import SampleJob
    from charrnn.use.sampler import SampleConfig

    if opts["seed"] is not None and opts["seed"] + opts["num_samples"] - 1 > MAX_SEED:
        raise click.BadParameter(
            f"with -n {opts['num_samples']} it must be at most {MAX_SEED - opts['num_samples'] + 1}"
            " (sample i uses seed+i, at most 2^53-1)",
            param_hint="'-s' / '--seed'",
        )
    if given(click.get_current_context(), "encoding") and not prime_file and prime != "-":
        raise click.UsageError(
            "--encoding is how --prime-file or a prime on stdin (--prime -) is read, and neither "
            "is given (a --prime TEXT is read as typed): leave --encoding out"
        )
    if given(click.get_current_context(), "separator") and opts["as_json"]:
        raise click.UsageError(
            "--separator goes between samples written as text, and --json writes each sample as "
            "a line of its own: leave --separator out"
        )
    read = "-" if prime == "-" and not prime_file else prime_file
    refuse_reading_into(output, [("the prime file" if prime_file else "the prime on stdin", read)])
    # every field of SampleConfig is an option of the same name
    config = SampleConfig(**{f.name: opts[f.name] for f in dataclasses.fields(SampleConfig)})
    quiet = opts["quiet"]
    path, model = load_model(checkpoint, checkpoint_dir, None, quiet)
    typed = read_prime(prime, prime_file, encoding)
    text = apply_unknown(typed, model.vocab, unknown, typed=prime_file is None and prime != "-")
    note_unknown(typed, model.vocab, unknown, quiet, prime=True)
    model = model.to(resolve_device(device))
    stops = _as_written([unescape(s) for s in opts["stop"]], model.vocab, quiet)
    job = SampleJob(model, config, opts["length"], text, stops, opts["as_json"])
    greedy = "--temp 0" if not any(config.temperature) else "--top-k 1" * (config.top_k == 1)

    def emit(out) -> int:
        """Sample onto `out`; the exit status of the stop signal that cut it short (what was made
        is still written), else 0."""
        if config.num_samples > 1 and greedy:  # (said once the output is open: an error that
            say(  # refuses the command is its only line)
                f"Note: {greedy} takes the likeliest character each step, so the "
                f"{config.num_samples} samples are one text; leave it out to draw different ones",
                quiet,
            )
        writer = _Writer(job, out, opts, str(path))  # --json's, exact (json_line)
        try:
            writer.run()
        except KeyboardInterrupt as e:
            writer.finish()
            return exit_status(e)
        return 0

    if status := write_output(output, emit):
        sys.exit(status)


READER_POLL = 0.02  # seconds between two looks at whether the reader of the output has left


class _Writer:
    """Writes a job: the first sample live, piece by piece (of -n N, the others after it at the
    end), or JSON lines at the end. A reader that leaves (`| head`) stops the work within
    READER_POLL seconds, also where nothing was written yet."""

    def __init__(self, job, out, opts, checkpoint: str):
        self.job, self.out, self.opts, self.checkpoint = job, out, opts, checkpoint
        self.live = not opts["as_json"]  # the first sample: samples are written in order
        self.echo = "" if opts["no_echo_prime"] else job.prime
        self.finished = False
        self.tty, self.flushed = out.isatty(), time.monotonic()
        self.polled = self.flushed

    def run(self) -> None:
        if self.live:
            self.out.write(self.echo)
        for row, piece in self.job:
            if row == 0:
                self._write(piece)
            if (now := time.monotonic()) - self.polled > READER_POLL:
                self.polled = now
                check_reader(self.out)
        self.finish()

    def _write(self, piece: str) -> None:
        if not self.live:
            return
        self.out.write(piece)
        # Live: every character on a terminal; on a pipe at a line end or every 20 ms, which
        # `| tee` still shows as it is made, without a system call per character.
        now = time.monotonic()
        if self.tty or piece.endswith("\n") or now - self.flushed > 0.02:
            self.out.flush()
            self.flushed = now

    def separator(self) -> str:
        """--separator's, else a blank line between samples, or a line break where each is one
        line (a --stop at a line break, and no line break in the prime written before each)."""
        if self.opts["separator"] is not None:
            return unescape(self.opts["separator"])
        one_line = "\n" in self.job.stops and "\n" not in self.echo
        return "\n" if one_line else "\n\n"

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        for row, rest in self.job.flush():
            if row == 0:
                self._write(rest)
        results = self.job.results()
        texts = [r.text for r in results]
        if self.opts["as_json"]:
            for record in self.job.records(results, self.checkpoint):
                self.out.write(json_out(record, self.out) + "\n")
        else:  # after the first, written live
            separator = self.separator()
            self.out.write("".join(separator + self.echo + t for t in texts[1:]))
        last = (self.echo + texts[-1])[-1:] if not self.opts["as_json"] else "\n"
        if last != "\n":  # a text file's last line ends with a line break (`wc -l` counts it)
            self.out.write("\n")
        self.out.flush()
        primed = bool(self.job.prime)
        warn_runaways(results, self.checkpoint, self.opts["quiet"], primed)  # after the text


RUNAWAY_LINES = 3  # runaway samples warned about a line each; more are counted in one line
RUNAWAY_NAMED = 5  # samples that one line names by number


def warn_runaways(results, checkpoint: str, quiet: bool = False, primed: bool = False) -> None:
    """Warn on stderr about each sample whose characters show a runaway state; of many (-n 400 of
    a young model), one line that counts them (--json marks each record). The advice names the
    resume that trains the model longer where `checkpoint` is a run's that can resume. Samples
    stuck on one character by a cold draw get a note, unless `quiet`. `primed`: a prime was
    given (the advice is another one)."""
    from charrnn.model.runaway import REPEATS_JUDGED_TEMP

    prime = "another --prime" if primed else "a --prime"
    ran = [(i, r) for i, r in enumerate(results) if r.runaway is not None]
    if (stuck := [i for i, r in enumerate(results) if r.stuck]) and not quiet:
        which = "the sample is" if len(results) == 1 else f"{count(len(stuck), 'sample')} are"
        click.echo(
            f"Note: {which} one character repeated ({results[stuck[0]].text[0]!r}), as a draw of "
            f"the likeliest characters (--temp under {REPEATS_JUDGED_TEMP:g}, or a narrow --top-k "
            f"or --top-p) can loop from a sound state; a higher --temp or {prime} leads it out",
            err=True,
        )
    if not ran:
        return
    if again := _train_longer(checkpoint):
        advice = f"the model is unsound from a cold start: train it longer: {again}"
    else:
        advice = (
            "the model is unsound from a cold start (train it longer, or retrain it if it was "
            "trained before charrnn's cold starts)"
        )
    if all(r.runaway.startswith("it is one character repeated") for _, r in ran):
        # a loop, not noise: a text with long runs of one character (spaces in a table) teaches a
        # young model to stay in them, the more so at a low temperature
        advice = (
            f"the model's state stays in a loop (train it longer; a higher --temp or {prime} "
            "may lead it out)"
        )
    if len(ran) > RUNAWAY_LINES:
        named = ", ".join(str(i + 1) for i, _ in ran[:RUNAWAY_NAMED])
        more = f" and {len(ran) - RUNAWAY_NAMED} more" if len(ran) > RUNAWAY_NAMED else ""
        (first, result), *_ = ran
        click.echo(
            f"Warning: {len(ran)} of {len(results)} samples look like runaways (samples {named}"
            f"{more}; sample {first + 1}: {result.runaway}); {advice}",
            err=True,
        )
        return
    for n, (i, result) in enumerate(ran, 1):
        which = f"sample {i + 1} (seed {result.seed})" if len(results) > 1 else "the sample"
        said = f"; {advice}" if n == len(ran) else ""  # once, after the last
        click.echo(f"Warning: {which} looks like a runaway: {result.runaway}{said}", err=True)


def _train_longer(checkpoint: str) -> str | None:
    """The resume that trains the run of `checkpoint` (its best.pt or last.pt) longer; None
    where it is not a run's file, or the run cannot resume (no sound last.pt, no text known)."""
    from charrnn import runs

    path = Path(checkpoint)
    if path.name not in ("best.pt", "last.pt") or not (path.parent / "last.pt").is_file():
        return None
    return runs.inspect(runs.RunDir(path.parent)).train_longer()


def read_prime(prime: str, prime_file: str | None, encoding: str) -> str:
    """The prime: --prime as given, or --prime-file; '-' for either: stdin."""
    from charrnn.text.sources import input_file, read_all

    if prime and prime_file:
        raise click.UsageError("give --prime or --prime-file, not both")
    if prime == "-" or prime_file == "-":  # stdin only when asked for, never implicitly
        text = read_stdin("the prime on stdin", encoding)[1]
        if not text:  # asked for and not there: an upstream command that wrote nothing
            raise click.ClickException(
                "standard input is empty: there is no prime; pipe text in, or leave the prime out"
            )
        return text
    if prime_file:
        source = input_file(prime_file, f"the prime file {prime_file}", PRIME_HINT)
        text = read_all(source.chunks(), source.label, encoding)[1]
        if not text:  # asked for and not there, as for stdin: never a silently unprimed text
            raise click.ClickException(
                f"the prime file {prime_file} is empty: there is no prime; write one into it, or "
                "leave --prime-file out"
            )
        return text
    return prime


def _as_written(stops: list[str], vocab, quiet: bool = False) -> list[str]:
    """The --stop strings as the model writes text: a line break typed as \r\n or \r is its \n
    where it never writes \r (train reads every line break as \n), an accent in the Unicode form
    it writes (é as e + U+0301, or the other way); a note for a stop with characters it never
    writes, which can never end a sample."""
    from charrnn.text.vocab import known_form

    written = []
    for stop in stops:
        if "\r" not in vocab.index:
            stop = stop.replace("\r\n", "\n").replace("\r", "\n")
        stop = known_form(stop, vocab)
        if missing := "".join(sorted(set(stop) - set(vocab.index))):
            say(
                f"Note: --stop {stop!r} has characters the model never writes ({missing!r}): it "
                "will not end a sample",
                quiet,
            )
        written.append(stop)
    return written
