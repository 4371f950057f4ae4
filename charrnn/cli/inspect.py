"""`charrnn inspect`: every cell and gate of a model on every character, in the terminal, as data,
or as a page in the browser."""

from __future__ import annotations

import errno
import os
import sys
import tempfile

import click

from charrnn.cli.common import (
    Encoding,
    Text,
    cannot_write,
    checkpoint_dir_option,
    checkpoint_option,
    count,
    device_option,
    not_empty,
    say,
    stdin_chunks,
    stdout_console,
    user_errors,
    write_output,
)
from charrnn.cli.sample import temperature_option
from charrnn.defaults import ENCODING, MAX_SEED, UNKNOWN
from charrnn.jsonl import json_line
from charrnn.model.config import FIELDS, GATES
from charrnn.text.vocab import UNKNOWN_POLICIES

# Every field of every cell, once each, and the surprise (checked against the cell later).
SHOWS = (*dict.fromkeys(f for fields in FIELDS.values() for f in fields), "surprise")
ALL_GATES = {g for gates in GATES.values() for g in gates}  # from 0 to 1, not -1 to 1
MAX_CHARS = 2000  # a page of this many characters opens at once in a browser
CHUNK = 1 << 16  # bytes read at a time: reading stops once --max-chars characters are in
INSPECT_HINT = "to inspect a stream, pipe it in and use - to read standard input"
FEW_CHARS = 500  # below this, --find-units warns that its correlations are mostly chance


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
@click.argument("file", required=False)
@checkpoint_option
@click.option(
    "--sample",
    "sample_length",
    type=click.IntRange(1),
    metavar="N",
    help="Write N characters (as `charrnn sample` would) and show the state while writing them, "
    "instead of reading FILE.",
)
@click.option(
    "-p",
    "--prime",
    type=Text(),
    default="",
    help="With --sample: text to start from ('-' reads it from stdin).",
)
@temperature_option("With --sample: the temperature (or a schedule, cycled per character).")
@click.option(
    "-s",
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    help="With --sample: the same seed, the same text as `charrnn sample --seed`.",
)
@click.option(
    "-u",
    "--unit",
    type=UnitSpec(),
    help="The unit to colour the text by: LAYER:INDEX, or INDEX for layer 0 (default: the one "
    "that varies most).",
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
    type=click.Path(dir_okay=False),
    callback=not_empty,
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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON lines: a header (checkpoint, layout, text), then one object per character with "
    "every layer's values, its surprise and the likeliest next characters.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(1),
    default=MAX_CHARS,
    show_default=True,
    help="Read at most this many characters of FILE (or prime and sample together).",
)
@click.option(
    "--unknown",
    type=click.Choice(UNKNOWN_POLICIES),
    default=UNKNOWN,
    show_default=True,
    help="Characters the model never saw: refuse, drop or replace them.",
)
@click.option(
    "--encoding", type=Encoding(), default=ENCODING, show_default=True, help="Encoding of FILE."
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Coloured text on a terminal (auto), always, or never: plain tab-separated data.",
)
@click.option("-q", "--quiet", is_flag=True, help="No notes on stderr.")
@device_option("cpu")
@checkpoint_dir_option
@user_errors
@click.pass_context
def inspect(ctx, file, checkpoint, checkpoint_dir, device, **opts):
    """Read FILE ('-': stdin) through a trained model, one character at a time, and show what it
    holds: every layer's cell and hidden state, its gates, and what it expects next.

    On a terminal the text is coloured by one unit (--unit, --show); piped, the same as plain
    tab-separated data: position, character, value, surprise. --html writes a page to explore every
    unit, --find-units and --gates print what the units do, --json writes everything."""
    from charrnn import checkpoint as ckpt
    from charrnn import runs
    from charrnn.devices import resolve_device

    _check_usage(ctx, file, opts)
    if opts["sample_length"] is not None and opts["prime"] == "-":  # read no more than fits
        label = "the prime on standard input"
        opts["prime"], cut = _read_text("-", label, opts["encoding"], opts["max_chars"])
        if cut:
            raise click.BadParameter(
                f"is longer than --max-chars {opts['max_chars']:,}", param_hint="'--prime'"
            )
    if opts["sample_length"] is not None:
        _check_sample_length(opts)
    also = [f for f in ("as_json", "unit", "show", "find_units", "gates") if opts[f]]
    if opts["html_path"] == "-" and also:
        given = ", ".join("--" + ("json" if f == "as_json" else f.replace("_", "-")) for f in also)
        raise click.UsageError(
            f"--html - writes the page to stdout, where {given} would write too; "
            "give the page a file name"
        )
    if opts["html_path"] and opts["html_path"] != "-":
        _check_writable(opts["html_path"])
    path = runs.resolve_checkpoint(checkpoint, checkpoint_dir, note=say)
    model = ckpt.load_model(path).to(resolve_device(device))
    vocab = model.vocab
    c = model.config
    show = _resolve_show(opts["show"], opts["unit"], c.cell)
    unit = _check_unit(opts["unit"], c.num_layers, c.hidden_size)
    # The most characters this command may record: its bound, the memory free, a page's size.
    limits = [(opts["max_chars"], None), (_memory_fits(c), _memory_error)]
    if opts["html_path"]:
        limits.append((_page_fits(c), _page_error))
    fits, error = min(limits, key=lambda limit: limit[0])
    if opts["sample_length"] is None:
        text = _input_text(vocab, file, opts, fits, error, c)
    else:
        text, chars = None, opts["sample_length"] + len(opts["prime"])
        if chars > fits:
            raise error(c, chars, fits, "--sample")
    recording = _record(model, vocab, text, opts)
    found = gates = None
    if opts["find_units"]:
        from charrnn.use.units import find_units

        found = find_units(recording)
        if len(recording.text) < FEW_CHARS:
            say(
                f"Only {count(len(recording.text), 'character')}: correlations over so few are "
                "mostly chance; give --find-units a few thousand (see the chance column).",
                opts["quiet"],
            )
    if opts["gates"]:
        from charrnn.use.units import gate_saturation

        gates = gate_saturation(recording)
        if not gates:
            say(f"The {c.cell.upper()} has no gates: --gates has nothing to show.", opts["quiet"])
    asked = opts["unit"] is not None or opts["show"] is not None  # a view of one unit
    if unit is None and show != "surprise":
        unit = _most_varied(recording, show)
        say(
            f"Showing {show} {unit[0]}:{unit[1]}, the unit whose {show} varies most "
            "(choose one with --unit LAYER:INDEX).",
            opts["quiet"],
        )
    shown_path = os.fsencode(str(path)).decode("utf-8", "replace")
    if opts["html_path"]:
        view = (*(unit or (0, 0)), show) if asked else None  # else the page picks
        page = (recording, shown_path, found, gates, view)
        _write_page(opts["html_path"], page, opts["quiet"])
    if opts["as_json"]:
        _write_json(recording, shown_path, found, gates)
        return
    if asked or not (found is not None or gates is not None or opts["html_path"]):
        console = None
        if opts["color"] == "always" or (opts["color"] == "auto" and sys.stdout.isatty()):
            console = colour_console(force=opts["color"] == "always")
        if console is not None:
            _print_coloured(console, recording, show, unit)
        else:
            _print_plain(recording, show, unit)
    if found is not None:
        _print_found(found)
    if gates:
        _print_gates(gates, c.cell)


def _check_usage(ctx, file, opts) -> None:
    if opts["sample_length"] is not None:
        if file is not None:
            raise click.UsageError("give FILE or --sample N, not both")
        return
    for name, flag in (("prime", "--prime"), ("seed", "--seed"), ("temperature", "--temp")):
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            raise click.UsageError(f"{flag} is for --sample N; FILE is read as it is")


def _check_sample_length(opts) -> None:
    if opts["sample_length"] + len(opts["prime"]) > opts["max_chars"]:
        raise click.BadParameter(
            f"--sample {opts['sample_length']} with a prime of {len(opts['prime'])} "
            f"characters is more than --max-chars {opts['max_chars']}; raise --max-chars",
            param_hint="'--sample'",
        )


def _resolve_show(show: str | None, unit, cell: str) -> str:
    """--show checked against the cell; its default: the state, or the surprise with no unit."""
    if show is None:
        return "surprise" if unit is None else FIELDS[cell][0]
    show = show.lower()
    if show != "surprise" and show not in FIELDS[cell]:
        article = "a" if cell == "gru" else "an"
        raise click.BadParameter(
            f"{article} {cell.upper()} has no {show}; choose from "
            f"{', '.join(FIELDS[cell] + ('surprise',))}",
            param_hint="'--show'",
        )
    return show


def _check_unit(unit, num_layers: int, hidden_size: int):
    if unit is not None and (unit[0] >= num_layers or unit[1] >= hidden_size):
        raise click.BadParameter(
            f"{unit[0]}:{unit[1]} is not in this model: layers 0 to {num_layers - 1}, "
            f"units 0 to {hidden_size - 1}",
            param_hint="'--unit'",
        )
    return unit


def _check_writable(path: str) -> None:
    """Fail before the work, not after it, where the page could not be written."""
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/stdout, a FIFO: written as is
        return
    folder = os.path.dirname(os.path.realpath(path)) or "."
    if not os.path.isdir(folder):
        code = errno.ENOTDIR if os.path.exists(folder) else errno.ENOENT
        raise cannot_write(OSError(code, os.strerror(code)), path)
    try:  # a file made and removed: the real reason (no permission, a read-only disk) if any
        fd, probe = tempfile.mkstemp(prefix=".charrnn-probe.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise cannot_write(e, path) from None
    os.close(fd)
    os.unlink(probe)


def _page_fits(config) -> int:
    """The most characters a page may hold: page.PAGE_BYTES of values, what a browser opens."""
    from charrnn.use.page import PAGE_BYTES, page_bytes

    return PAGE_BYTES // page_bytes(config.num_layers, config.hidden_size, config.cell, 1)


def _page_error(config, chars: int, fits: int, option: str):
    from charrnn.errors import ConfigError
    from charrnn.use.page import page_bytes

    size = page_bytes(config.num_layers, config.hidden_size, config.cell, chars)
    return ConfigError(
        f"a page of {chars:,}{'+' if option == '--max-chars' else ''} characters of this "
        f"{_shape(config)} would hold {_size(size)} of values or more, more than a "
        f"browser opens at ease; pass {option} {fits:,} or less"
    )


# A recording's values, and at the peak about as much again: --find-units' standardised copy of
# the states, or the page's quantised bytes and text (measured: 715 MB for a 368 MB recording).
PEAK_PER_RECORDED = 2


def _memory_fits(config) -> int:
    """The most characters a recording may hold: at its peak, half the memory free now."""
    from charrnn.use.inspection import record_bytes

    return _free_memory() // 2 // (PEAK_PER_RECORDED * record_bytes(config, 1))


def _free_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform: assume 8 GB
        return 8 * 2**30


def _memory_error(config, chars: int, fits: int, option: str):
    from charrnn.errors import ConfigError
    from charrnn.use.inspection import record_bytes

    peak = PEAK_PER_RECORDED * record_bytes(config, chars)
    more = "+" if option == "--max-chars" else ""
    return ConfigError(
        f"recording {chars:,}{more} characters of this {_shape(config)} takes "
        f"{_size(peak)} of memory or more at its peak, more than half of the "
        f"{_size(_free_memory())} free; pass {option} {fits:,} or less"
    )


def _size(n: int) -> str:
    """Bytes for a person: 12.3 GB, 45.6 MB, 7.8 KB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KB"


def _shape(config) -> str:
    return f"{config.num_layers}x{config.hidden_size} {config.cell.upper()}"


def _input_text(vocab, file, opts, fits: int, error, config) -> str:
    """FILE's first --max-chars characters, those the model never saw handled by --unknown. No
    more than `fits` characters are read: one more is `error` (memory, or a page's size)."""
    from charrnn.errors import CorpusError
    from charrnn.text.vocab import apply_unknown

    file = file or "-"
    label = "standard input" if file == "-" else file
    text, cut = _read_text(file, label, opts["encoding"], fits)
    if cut and error is not None:
        raise error(config, fits + 1, fits, "--max-chars")
    if cut:
        say(
            f"Inspecting the first {count(fits, 'character')} of {label} "
            "(--max-chars sets how many).",
            opts["quiet"],
        )
    text = apply_unknown(text, vocab, opts["unknown"], label)
    if not text:
        raise CorpusError(f"{label} is empty: there is nothing to inspect")
    return text


def _record(model, vocab, text: str | None, opts):
    """The recording of `text`, or of a sample (text None)."""
    from charrnn.text.vocab import apply_unknown
    from charrnn.use.inspection import record_sample, record_text
    from charrnn.use.sampler import SampleConfig

    if text is not None:
        return record_text(model, text)
    prime = apply_unknown(opts["prime"], vocab, opts["unknown"])
    config = SampleConfig(temperature=opts["temperature"], seed=opts["seed"])
    recording = record_sample(model, opts["sample_length"], config, prime)
    length = opts["sample_length"]
    say(f"Wrote {count(length, 'character')} with seed {recording.seed}.", opts["quiet"])
    return recording


def _read_text(file: str, label: str, encoding: str, max_chars: int) -> tuple[str, bool]:
    """The first `max_chars` characters of FILE and whether there were more; the rest unread."""
    from charrnn.text.decode import decode_chunks
    from charrnn.text.sources import input_file

    if file == "-":
        chunks = stdin_chunks(CHUNK)
    else:
        chunks = input_file(file, label, INSPECT_HINT).chunks(CHUNK)
    parts, n = [], 0
    for piece in decode_chunks(chunks, label, encoding):
        parts.append(piece)
        n += len(piece)
        if n > max_chars:
            break
    text = "".join(parts)
    return text[:max_chars], len(text) > max_chars


def _most_varied(recording, show: str) -> tuple[int, int]:
    values = recording.values[show]  # (L, T, H)
    std = values.std(1) if values.shape[1] > 1 else values.abs()[:, 0]  # (L, H)
    flat = int(std.flatten().argmax())
    return flat // values.shape[2], flat % values.shape[2]


def _unit_values(recording, show: str, unit) -> list[float]:
    if show == "surprise":
        return recording.surprise.tolist()
    layer, index = unit
    return recording.values[show][layer, :, index].tolist()


def _label(show: str, unit) -> str:
    return "surprise (bits)" if show == "surprise" else f"{show} {unit[0]}:{unit[1]}"


def _print_plain(recording, show: str, unit) -> None:
    """Tab-separated: position, character (escaped, see plain_char), the value unless it is the
    surprise, and the surprise in bits."""
    surprise = recording.surprise.tolist()
    if show == "surprise":
        rows = ["position\tchar\tsurprise_bits"]
        rows += [f"{t}\t{plain_char(ch)}\t{surprise[t]:.4f}" for t, ch in enumerate(recording.text)]
    else:
        values = _unit_values(recording, show, unit)
        rows = [f"position\tchar\t{show}_{unit[0]}:{unit[1]}\tsurprise_bits"]
        rows += [
            f"{t}\t{plain_char(ch)}\t{values[t]:.4f}\t{surprise[t]:.4f}"
            for t, ch in enumerate(recording.text)
        ]
    click.echo("\n".join(rows))


def plain_char(ch: str) -> str:
    """A character as one field of a line: \\n, \\t and \\\\ for those three, \\xNN,
    \\uNNNN or \\UNNNNNNNN for any other that does not print (an escape sequence, a line or
    paragraph separator, a byte-order mark), so no text can move a terminal's cursor or split a
    line."""
    if ch in ESCAPES:
        return ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


ESCAPES = {"\n": "\\n", "\t": "\\t", "\\": "\\\\"}


def diverging(x: float) -> tuple[int, int, int]:
    """x in [-1, 1] -> blue (-1), white (0), red (+1), as the page draws it."""
    x = max(-1.0, min(1.0, x))
    end = (214, 47, 39) if x >= 0 else (33, 102, 172)
    return tuple(round(255 + (e - 255) * abs(x)) for e in end)


# The same scale in xterm's 256 colours, picked by hand to stay one hue and grow darker step by
# step (rich's nearest-colour match turns some pale reds orange or yellow).
RAMP_256 = {1: (231, 224, 217, 210, 203, 160), -1: (231, 189, 153, 111, 69, 25)}


def _colour(x: float, system: str) -> str:
    """The colour of x in [-1, 1] as a rich style's colour, for the console's colour system."""
    if system == "truecolor":
        return "rgb({},{},{})".format(*diverging(x))
    x = max(-1.0, min(1.0, x))
    ramp = RAMP_256[1 if x >= 0 else -1]
    return f"color({ramp[round(abs(x) * (len(ramp) - 1))]})"


def _scaled(show: str, value: float, cell_scale: float) -> float:
    """A value on its own scale -> [-1, 1] for the colours (a cell by its largest |c|)."""
    if show == "surprise":
        return min(value, 8.0) / 8.0
    if show == "cell":
        return value / cell_scale
    if show in ALL_GATES:
        return 2 * value - 1
    return value


def colour_console(force: bool):
    """A console for the coloured view, or None where colour is off (NO_COLOR, TERM=dumb) and the
    plain data says more. Forced (--color always, e.g. into `less -R`): 24-bit colour, whatever
    the environment says. A terminal taken for 16 colours (TERM=xterm) gets 256: 16 cannot draw
    a scale, and terminals that say xterm draw 256."""
    if force:
        return stdout_console(
            highlight=False,
            soft_wrap=True,
            force_terminal=True,
            color_system="truecolor",
            no_color=False,
        )
    console = stdout_console(highlight=False, soft_wrap=True)
    if console.no_color or console.color_system is None:
        return None
    if console.color_system in ("standard", "windows"):
        return stdout_console(highlight=False, soft_wrap=True, color_system="256")
    return console


def _print_coloured(console, recording, show: str, unit) -> None:
    from rich.text import Text as RichText

    system = console.color_system
    values = _unit_values(recording, show, unit)
    cell_scale = max((abs(v) for v in values), default=1.0) or 1.0
    gate = show in ALL_GATES
    lo, mid, hi = {
        "surprise": ("0", "0", "8 bits or more"),
        "cell": (f"-{cell_scale:.3g}", "0", f"+{cell_scale:.3g} (this unit's largest |c| here)"),
    }.get(show, ("0", "0.5", "1") if gate else ("-1", "0", "+1"))
    legend = RichText(f"{_label(show, unit)}:  {lo} ")
    steps = [i / 8 for i in range(-8, 9)] if show != "surprise" else [i / 8 for i in range(9)]
    for x in steps:
        legend.append(" ", style=f"on {_colour(x, system)}")
    legend.append(f" {hi}   (white: {mid})")
    console.print(legend)
    text = RichText()
    for t, ch in enumerate(recording.text):
        style = f"black on {_colour(_scaled(show, values[t], cell_scale), system)}"
        if ch == "\n":
            text.append(" ", style=style)
            text.append("\n")
        elif ch == "\t":
            text.append("    ", style=style)
        else:
            text.append(ch if ch.isprintable() else "\u00b7", style=style)
    console.print(text)


def _print_found(found) -> None:
    header = ("property", "best unit", "r", "next best", "chance", "best/chance")
    rows = []
    for f in found:
        if not f.units:
            rows.append((f.property.name, "not in this text", "", "", "", ""))
            continue
        (best, r), rest = f.units[0], f.units[1:]
        rows.append(
            (
                f.property.name,
                str(best),
                f"{r:+.2f}",
                ", ".join(f"{u} {v:+.2f}" for u, v in rest),
                f"{f.chance:.2f}",
                f"{f.best / f.chance:.1f}x" if f.chance > 0 else "",
            )
        )
    _table(header, rows, "Units that track the text (Pearson r over the characters read)")


def _print_gates(saturation, cell: str) -> None:
    header = ("layer", "gate", "< 0.1", "> 0.9", "units mostly < 0.1", "units mostly > 0.9")
    rows = []
    for s in saturation:
        for layer in range(s.left.shape[0]):
            left, right = s.left[layer], s.right[layer]
            rows.append(
                (
                    str(layer),
                    s.gate,
                    f"{float(left.mean()):.0%}",
                    f"{float(right.mean()):.0%}",
                    str(int((left > 0.5).sum())),
                    str(int((right > 0.5).sum())),
                )
            )
    keep = "forget" if cell == "lstm" else "update"
    _table(
        header,
        rows,
        "Gate saturation: the share of characters each gate spends below 0.1 and above 0.9, "
        f"averaged over the units; a unit whose {keep} gate is mostly above 0.9 keeps its memory "
        "for long (an integrator)",
    )


def _table(header, rows, title: str) -> None:
    """A table on a terminal; piped, tab-separated lines under a header line."""
    if not sys.stdout.isatty():
        for row in (header, *rows):
            click.echo("\t".join(row))
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None)
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i < 2 or col == "next best" else "right")
    for row in rows:
        table.add_row(*row)
    stdout_console(highlight=False).print(table)


def _write_json(recording, checkpoint: str, found, gates) -> None:
    r = recording
    out = click.get_text_stream("stdout")
    header = {
        "kind": "header",
        "checkpoint": checkpoint,
        "cell": r.cell,
        "num_layers": r.num_layers,
        "hidden_size": r.hidden_size,
        "fields": list(r.values),
        "text": r.text,
        "given": r.given,
        "seed": r.seed,
    }
    out.write(json_line(header) + "\n")
    surprise = _rounded(r.surprise)
    probs = _rounded(r.top_probs)
    chars = r.vocab.chars
    for t, ch in enumerate(r.text):  # one character at a time: no second copy of the recording
        layers = {f: _rounded(v[:, t]) for f, v in r.values.items()}  # (L, H) each
        record = {
            "kind": "char",
            "t": t,
            "char": ch,
            "given": t < r.given,
            "surprise": surprise[t],
            "top": [[chars[i], p] for i, p in zip(r.top_ids[t].tolist(), probs[t], strict=True)],
            "layers": [{f: v[layer] for f, v in layers.items()} for layer in range(r.num_layers)],
        }
        out.write(json_line(record) + "\n")
    for f in found or []:
        units = [
            {"layer": u.layer, "unit": u.index, "field": u.field, "r": round(v, 4)}
            for u, v in f.units
        ]
        out.write(
            json_line(
                {
                    "kind": "units",
                    "property": f.property.name,
                    "description": f.property.description,
                    "chance": round(f.chance, 4),
                    "units": units,
                }
            )
            + "\n"
        )
    for s in gates or []:
        for layer in range(s.left.shape[0]):
            out.write(
                json_line(
                    {
                        "kind": "gates",
                        "gate": s.gate,
                        "layer": layer,
                        "below_0.1": [round(x, 4) for x in s.left[layer].tolist()],
                        "above_0.9": [round(x, 4) for x in s.right[layer].tolist()],
                    }
                )
                + "\n"
            )
    out.flush()


def _rounded(x):
    """A tensor as lists of floats to 4 places (float64 first: 0.1234, not 0.12340000271)."""
    return ((x.double() * 1e4).round() / 1e4).tolist()


def _write_page(path: str, page: tuple, quiet: bool) -> None:
    """page.render(*page), written to `path` as `sample -o` writes: atomically to a file."""
    from charrnn.use.page import render

    html = render(*page)
    write_output(path, lambda out: out.write(html))
    size = _size(len(html.encode()))
    hint = ": open it in a browser" if os.path.isfile(path) else ""
    say(f"Wrote the page to {'stdout' if path == '-' else path} ({size}){hint}.", quiet)
