"""`charrnn inspect`: every cell and gate of a model on every character, in the terminal, as data,
or as a page in the browser."""

from __future__ import annotations

import os
import sys

import click

from charrnn.cli.common import (
    cannot_write,
    check_reader,
    count,
    json_out,
    known_text,
    load_model,
    note_unknown,
    output_place,
    refuse_reading_into,
    refuse_run_as_file,
    refuse_to_replace,
    say,
    shown_path,
    stdin_chunks,
    write_output,
)
from charrnn.cli.inspect_view import draw_unit, print_found, print_gates
from charrnn.cli.options import (
    Whole,
    checkpoint_dir_option,
    checkpoint_option,
    device_option,
    encoding_option,
    json_option,
    not_empty,
    output_name,
    prime_option,
    quiet_option,
    seed_option,
    temperature_option,
    unknown_option,
)
from charrnn.fsutil import probe_writable, size_text
from charrnn.model.config import FIELDS, GATES

# Every field of every cell, once each, and the surprise (checked against the cell later).
SHOWS = (*dict.fromkeys(f for fields in FIELDS.values() for f in fields), "surprise")
MAX_CHARS = 2000  # a page of this many characters opens at once in a browser
# --find-units' default, where no page is written: on 2,000 characters the chance levels rise to
# 0.2-0.47 and the rankings change (docs/inside-a-model.md)
FIND_UNITS_CHARS = 10_000
CHUNK = 1 << 16  # bytes read at a time: reading stops once --max-chars characters are in
INSPECT_HINT = "to inspect a stream, pipe it in and use - to read standard input"


class UnitSpec(click.ParamType):
    """`LAYER:INDEX`, or `INDEX` for layer 0."""

    name = "LAYER:INDEX"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).split(":")
        if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
            self.fail(f"{value!r} is not LAYER:INDEX (e.g. 0:17) or an INDEX", param, ctx)
        numbers = [int(p) for p in parts]
        return tuple(numbers) if len(numbers) == 2 else (0, numbers[0])


@click.command(
    epilog="""\b
Examples:
  charrnn inspect -c shakespeare play.txt --unit 0:17     # the text coloured by cell 17
  charrnn inspect -c shakespeare play.txt --html page.html --find-units --gates
  charrnn inspect -c shakespeare --sample 400 --prime "ROMEO:" --html sample.html
  charrnn inspect -c pystdlib code.py --find-units        # which cells track brackets, indents
  charrnn inspect -c pystdlib code.py --gates             # how often each gate saturates
  charrnn inspect code.py --json | jq -c 'select(.kind == "char") | [.char, .surprise]'
  charrnn inspect play.txt | sort -t$'\\t' -k3 -gr | head   # piped: the most surprising characters
"""
)
@click.argument("file", required=False, callback=not_empty)
@checkpoint_option
@click.option(
    "--sample",
    "sample_length",
    type=Whole(1),
    metavar="N",
    help="Write N characters (as `charrnn sample` would) and show the state while writing them, "
    "instead of reading FILE.",
)
@prime_option("With --sample: text to start from ('-' reads it from stdin).")
@click.option(
    "--prime-file",
    type=click.Path(readable=False),  # read as FILE is read, no further than --max-chars
    metavar="FILE",
    callback=not_empty,
    help="With --sample: read the prime from a file, exactly ('-': as --prime -).",
)
@temperature_option("With --sample: the temperature (or a schedule, cycled per character).")
@seed_option("With --sample: the same seed, the same text as `charrnn sample --seed`.")
@click.option(
    "-u",
    "--unit",
    type=UnitSpec(),
    help="The unit to colour the text by: LAYER:INDEX, or INDEX for layer 0 (with --show alone: "
    "the one whose values vary most).",
)
@click.option(
    "--show",
    type=click.Choice(SHOWS, case_sensitive=False),
    help="What to colour by: the cell or hidden state, a gate, the candidate, or the surprise of "
    "each character (bits). Default: cell for an LSTM, else hidden; surprise with no --unit.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(readable=False),  # output_name refuses a folder; _check_writable the rest
    callback=output_name,
    help="Write a self-contained page to explore every unit in the browser (no network); "
    "'-' writes it to stdout.",
)
@click.option(
    "--find-units",
    is_flag=True,
    help="Rank the units by how well they track quotes, brackets, the position in the line, "
    "indentation, word starts and upper-case runs, against a chance level.",
)
@click.option(
    "--gates",
    is_flag=True,
    help="How often each gate is saturated (below 0.1, above 0.9), per layer.",
)
@json_option(
    "JSON lines: a header (checkpoint, layout, text), then one object per character with "
    "every layer's values, its surprise and the likeliest next characters."
)
@click.option(
    "--max-chars",
    type=Whole(1),
    help=f"Read at most this many characters of FILE (or prime and sample together). Default: "
    f"{MAX_CHARS:,}; {FIND_UNITS_CHARS:,} with --find-units and no --html.",
)
@unknown_option("Characters the model never saw: refuse, skip or replace them.")
@encoding_option()
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    help="Coloured text on a terminal (auto), always, or never: plain tab-separated data.",
)
@quiet_option("No notes on stderr.")
@device_option("cpu")
@checkpoint_dir_option
@click.pass_context
def inspect(ctx, file, checkpoint, checkpoint_dir, device, **opts):
    """Read FILE ('-': stdin) through a trained model, one character at a time, and show what it
    holds: every layer's cell and hidden state, its gates, and what it expects next.

    On a terminal the text is coloured by one unit (--unit, --show); piped, the same as plain
    tab-separated data: position, character, value, surprise. --html writes a page to explore every
    unit, --find-units and --gates print what the units do, --json writes everything."""
    from charrnn.use.budget import recording_budget
    from charrnn.use.units import most_varied

    if opts["max_chars"] is None:  # the rankings need text; a page, a size a browser opens
        wide = opts["find_units"] and not opts["html_path"]
        opts["max_chars"] = FIND_UNITS_CHARS if wide else MAX_CHARS
    _check_options(ctx, file, opts)
    refuse_run_as_file(file, checkpoint_dir)
    path, model = load_model(checkpoint, checkpoint_dir, device, opts["quiet"])
    if checkpoint is None:  # which run's model says what the figures are of
        say(f"The latest run's model: {shown_path(path)} (-c picks another).", opts["quiet"])
    c = model.config
    show, unit = _check_view(opts["show"], opts["unit"], c)
    if opts["gates"] and not GATES[c.cell]:  # before the text is read
        raise click.BadParameter(
            "an RNN has no gates (an LSTM and a GRU have): leave out --gates",
            param_hint="'--gates'",
        )
    # The most characters this command may record: its bound, the memory free, a page's size.
    budget = recording_budget(
        c, opts["max_chars"], with_page=bool(opts["html_path"]), units=opts["find_units"]
    )
    result = _inspect(model, file, opts, budget)
    asked = opts["unit"] is not None or opts["show"] is not None  # a view of one unit
    if unit is None and show != "surprise":
        unit = most_varied(result.recording, show)
        say(
            f"Showing {show} {unit[0]}:{unit[1]}, the unit whose {show} varies most "
            "(choose one with --unit LAYER:INDEX).",
            opts["quiet"],
        )
    if opts["html_path"]:
        view = (*(unit or (0, 0)), show) if asked else None  # else the page picks
        page = (result.recording, shown_path(path), result.found, result.gates, view)
        _write_page(opts["html_path"], page, opts["quiet"])
    if opts["as_json"]:
        out = click.get_text_stream("stdout", errors=None)  # the boundary's
        for record in result.records(str(path)):  # exact, as json_line writes it
            out.write(json_out(record, out) + "\n")
        out.flush()
    else:
        if asked or not (result.found is not None or result.gates is not None or opts["html_path"]):
            draw_unit(result.recording, show, unit, opts["color"])
        if result.found is not None:
            print_found(result.found)
        if result.gates:
            print_gates(result.gates, c.cell)
    if result.sample is not None:  # what `sample` says of the same text, after it
        from charrnn.cli.sample import warn_runaways

        warn_runaways([result.sample], str(path), opts["quiet"], primed=bool(opts["prime"]))


def _check_options(ctx, file, opts) -> None:
    """Every check that needs no model: what goes together, the prime, the page's file."""
    given = [n for n in ("prime", "prime_file", "seed", "temperature") if _given(ctx, n)]
    prime_file = opts.pop("prime_file")
    text = file or ("-" if opts["sample_length"] is None else None)  # FILE, or stdin's
    prime = prime_file or ("-" if opts["prime"] == "-" else None)
    refuse_reading_into(
        opts["html_path"], [("the text to inspect", text), ("the prime to sample from", prime)]
    )
    if opts["sample_length"] is None:
        flags = {"prime_file": "--prime-file", "temperature": "--temp"}
        for name in given:
            flag = flags.get(name, f"--{name}")
            raise click.UsageError(f"{flag} is for --sample N; FILE is read as it is")
    elif file is not None:
        raise click.UsageError("give FILE or --sample N, not both")
    else:
        if "prime" in given and "prime_file" in given:
            raise click.UsageError("give --prime or --prime-file, not both")
        if _given(ctx, "encoding") and not prime_file and opts["prime"] != "-":
            raise click.UsageError(
                "--encoding is how FILE, --prime-file or a prime on stdin (--prime -) is read, "
                "and none is given (a --prime TEXT is read as typed): leave --encoding out"
            )
        source = prime_file or (opts["prime"] == "-" and "-")
        if source:  # read no more than fits
            label = "the prime on standard input" if source == "-" else f"the prime file {source}"
            opts["prime"], cut = _read_text(source, label, opts["encoding"], opts["max_chars"])
            if cut:
                raise click.ClickException(
                    f"{label} is longer than --max-chars {opts['max_chars']}: raise --max-chars, "
                    "or give a shorter prime"
                )
            if not opts["prime"]:  # asked for and not there, as sample says
                raise click.ClickException(f"{label} is empty: there is no prime")
        if opts["sample_length"] + len(opts["prime"]) > opts["max_chars"]:
            raise click.BadParameter(
                f"--sample {opts['sample_length']} with a prime of {len(opts['prime'])} "
                f"characters is more than --max-chars {opts['max_chars']}; raise --max-chars",
                param_hint="'--sample'",
            )
    also = [f for f in ("as_json", "unit", "show", "find_units", "gates") if opts[f]]
    if opts["html_path"] == "-" and also:
        given = ", ".join("--" + ("json" if f == "as_json" else f.replace("_", "-")) for f in also)
        raise click.UsageError(
            f"--html - writes the page to stdout, where {given} would write too; "
            "give the page a file name"
        )
    if opts["as_json"] and (chosen := [f"--{f}" for f in ("unit", "show") if opts[f]]):
        raise click.UsageError(
            f"--json writes every unit of every layer; {' and '.join(chosen)} "
            f"{'choose' if len(chosen) > 1 else 'chooses'} one to draw on the terminal: leave "
            f"{'them' if len(chosen) > 1 else 'it'} out, or --json"
        )
    if opts["html_path"] and opts["html_path"] != "-":
        _check_writable(opts["html_path"])


def _inspect(model, file, opts, budget):
    """The inspection of FILE or of a sample, within `budget`, with its notes on stderr."""
    from charrnn.text.vocab import apply_unknown
    from charrnn.use.report import inspect as inspect_model
    from charrnn.use.sampler import SampleConfig

    # a reader of stdout that leaves (`| head -1`) stops the recording, as a failed write would
    asked = {
        "units": opts["find_units"],
        "gates": opts["gates"],
        "between": lambda: check_reader(sys.stdout),
    }
    if opts["sample_length"] is None:
        result = inspect_model(model, _input_text(model.vocab, file, opts, budget), **asked)
    else:
        length = opts["sample_length"]
        if length + len(opts["prime"]) > budget.fits:
            raise budget.error(length + len(opts["prime"]), "--sample")
        prime = apply_unknown(opts["prime"], model.vocab, opts["unknown"], typed=True)
        note_unknown(opts["prime"], model.vocab, opts["unknown"], opts["quiet"], prime=True)
        config = SampleConfig(temperature=opts["temperature"], seed=opts["seed"])
        result = inspect_model(model, length=length, prime=prime, config=config, **asked)
        seed = result.recording.seed
        say(f"Wrote {count(length, 'character')} with seed {seed}.", opts["quiet"])
    if result.few_chars:
        say(
            f"Only {count(len(result.recording.text), 'character')}: correlations over so few are "
            "mostly chance; give --find-units a few thousand (see the chance column).",
            opts["quiet"],
        )
    return result


def _check_view(show: str | None, unit, c) -> tuple[str, tuple | None]:
    """--show and --unit checked against model config `c`; --show's default: the state, or the
    surprise with no unit."""
    cell = c.cell
    if show is None:
        show = "surprise" if unit is None else FIELDS[cell][0]
    show = show.lower()
    if show != "surprise" and show not in FIELDS[cell]:
        article = "a" if cell == "gru" else "an"
        raise click.BadParameter(
            f"{article} {cell.upper()} has no {show}; choose from "
            f"{', '.join(FIELDS[cell] + ('surprise',))}",
            param_hint="'--show'",
        )
    if show == "surprise" and unit is not None:  # it would be ignored without a word
        raise click.BadParameter(
            "--show surprise is each character's surprise, no unit's: leave out --unit, or show "
            f"a unit's value ({', '.join(FIELDS[cell])})",
            param_hint="'-u' / '--unit'",
        )
    if unit is not None and (unit[0] >= c.num_layers or unit[1] >= c.hidden_size):
        raise click.BadParameter(
            f"{unit[0]}:{unit[1]} is not in this model: layers 0 to {c.num_layers - 1}, "
            f"units 0 to {c.hidden_size - 1}",
            param_hint="'-u' / '--unit'",
        )
    return show, unit


def _check_writable(path: str) -> None:
    """Fail before the work, not after it, where the page could not be written."""
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/stdout, a FIFO: written as is
        return
    if os.path.isfile(path):
        refuse_to_replace(path)  # as write_output will
    folder = os.path.dirname(output_place(path)) or "."  # said as write_output says it
    try:
        probe_writable(folder)
    except OSError as e:
        raise cannot_write(e, path) from None


def _input_text(vocab, file, opts, budget) -> str:
    """FILE's first --max-chars characters, those the model never saw handled by --unknown. No
    more than `budget.fits` characters are read: one more is refused where memory or a page's
    size sets the budget, else noted."""

    file = file or "-"
    label = "standard input" if file == "-" else file
    text, cut = _read_text(file, label, opts["encoding"], budget.fits)
    if cut and (error := budget.error(budget.fits + 1, "--max-chars")) is not None:
        raise error
    read = len(text)
    text = known_text(text, vocab, opts["unknown"], label, "inspect", opts["quiet"])
    if cut:  # said once the text is known to be readable: not before an error about it
        left = f", {len(text):,} of them after --unknown skip" if len(text) < read else ""
        say(
            f"Inspecting the first {count(budget.fits, 'character')} of {label}{left} "
            "(--max-chars sets how many).",
            opts["quiet"],
        )
    return text


def _given(ctx, name: str) -> bool:
    return ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT


def _read_text(file: str, label: str, encoding: str, max_chars: int) -> tuple[str, bool]:
    """The first `max_chars` characters of FILE and whether there were more; the rest unread."""
    from charrnn.text.decode import decode_chunks
    from charrnn.text.sources import input_file

    if file == "-":  # what has arrived: `tail -f log | charrnn inspect --max-chars N` ends
        chunks = stdin_chunks(CHUNK, live=True)
    else:
        chunks = input_file(file, label, INSPECT_HINT).chunks(CHUNK, live=True)
    parts, n, rest, after = [], 0, iter(chunks), b""

    def needed():
        """The bytes cut to what may still be needed (a character is a byte at least), so that
        nothing after the first max_chars characters is decoded: bytes there that are not text
        do not stop a command that reads no further. Whether there are more is told by the
        bytes alone (`after`)."""
        nonlocal after
        for chunk in rest:
            while chunk:
                if n >= max_chars:
                    after = chunk
                    return
                size = max_chars - n
                yield chunk[:size]
                chunk = chunk[size:]

    def enough() -> bool:  # where the reading stopped: the characters wanted are in
        return n >= max_chars

    for piece in decode_chunks(needed(), label, encoding, enough=enough):
        parts.append(piece)
        n += len(piece)
    text = "".join(parts)
    more = len(text) > max_chars or bool(after) or any(rest)  # one more read at most
    return text[:max_chars], more


def _write_page(path: str, page: tuple, quiet: bool) -> None:
    """page.render(*page), written to `path` as `sample -o` writes: atomically to a file."""
    from charrnn.use.page import render

    html = render(*page)
    write_output(path, lambda out: out.write(html))
    size = size_text(len(html.encode()))
    hint = ": open it in a browser" if os.path.isfile(path) else ""
    say(f"Wrote the page to {'stdout' if path == '-' else path} ({size}){hint}.", quiet)
