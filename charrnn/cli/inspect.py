"""`charrnn inspect`: every cell and gate of a model on every character, in the terminal, as data,
or as a page in the browser."""

from __future__ import annotations

import errno
import math
import os
import sys
from pathlib import Path

import click

from charrnn.cli.common import (
    Encoding,
    Text,
    cannot_write,
    checkpoint_dir_option,
    checkpoint_option,
    device_option,
    json_line,
    not_empty,
    read_stdin,
    say,
    stdout_console,
    user_errors,
)
from charrnn.cli.sample import MAX_SEED, Temperatures
from charrnn.tokenizer import UNKNOWN_POLICIES

SHOWS = ("cell", "hidden", "forget", "input", "output", "reset", "update", "candidate", "surprise")
MAX_CHARS = 2000  # a page of this many characters opens at once in a browser
CHUNK = 1 << 16  # bytes read at a time: reading stops once --max-chars characters are in


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
  charrnn inspect code.py --json | jq -c '[.char, .surprise]'   # one JSON object per character
  charrnn inspect play.txt --show surprise | sort -t$'\\t' -k4 -gr | head   # piped: plain data
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
@click.option("-p", "--prime", type=Text(), default="", help="With --sample: text to start from.")
@click.option(
    "-t",
    "--temp",
    "temperature",
    type=Temperatures(),
    default="0.8",
    show_default=True,
    help="With --sample: the temperature (or a schedule, cycled per character).",
)
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
    help="The unit to colour the text by, LAYER:INDEX (default: the one that varies most).",
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
    help="Write a self-contained page to explore every unit in the browser (no network).",
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
    default="error",
    show_default=True,
    help="Characters the model never saw: refuse, drop or replace them.",
)
@click.option(
    "--encoding", type=Encoding(), default="utf-8", show_default=True, help="Encoding of FILE."
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Coloured text on a terminal (auto), always, or never: plain tab-separated data.",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@device_option("cpu")
@checkpoint_dir_option
@user_errors
def inspect(file, checkpoint, checkpoint_dir, device, **opts):
    """Read FILE ('-': stdin) through a trained model, one character at a time, and show what it
    holds: every layer's cell and hidden state, its gates, and what it expects next.

    On a terminal the text is coloured by one unit (--unit, --show); piped, the same as plain
    tab-separated data: position, character, value, surprise. --html writes a page to explore every
    unit, --find-units and --gates print what the units do, --json writes everything."""
    from charrnn import checkpoint as ckpt
    from charrnn import runs
    from charrnn.cli.common import resolve_device

    _check_usage(file, opts)
    if opts["html_path"]:
        _check_writable(opts["html_path"])
    path = runs.resolve_checkpoint(checkpoint, checkpoint_dir, note=say)
    model, vocab = ckpt.restore_model(ckpt.load(path), path)
    model = model.to(resolve_device(device))
    c = model.config
    show = _resolve_show(opts["show"], opts["unit"], c.cell)
    unit = _check_unit(opts["unit"], c.num_layers, c.hidden_size)
    text = None if opts["sample_length"] is not None else _input_text(vocab, file, opts)
    if opts["html_path"]:
        chars = len(text) if text is not None else opts["sample_length"] + len(opts["prime"])
        _check_page_size(c, chars)
    recording = _record(model, vocab, text, opts)
    found = gates = None
    if opts["find_units"]:
        from charrnn.units import find_units

        found = find_units(recording)
    if opts["gates"]:
        from charrnn.units import gate_saturation

        gates = gate_saturation(recording)
        if not gates:
            say(f"The {c.cell.upper()} has no gates: --gates has nothing to show.")
    shown_path = os.fsencode(str(path)).decode("utf-8", "replace")
    if opts["html_path"]:
        _write_page(opts["html_path"], recording, shown_path, found, gates, opts["quiet"])
    if opts["as_json"]:
        _write_json(recording, shown_path, found, gates)
        return
    view = opts["unit"] is not None or opts["show"] is not None
    if view or not (found is not None or gates is not None or opts["html_path"]):
        if unit is None and show != "surprise":
            unit = _most_varied(recording, show)
            say(
                f"Showing {show} {unit[0]}:{unit[1]}, the unit whose {show} varies most "
                "(choose one with --unit LAYER:INDEX).",
                opts["quiet"],
            )
        colour = opts["color"] == "always" or (opts["color"] == "auto" and sys.stdout.isatty())
        if colour:
            _print_coloured(recording, show, unit, opts["color"] == "always")
        else:
            _print_plain(recording, show, unit)
    if found is not None:
        _print_found(found)
    if gates:
        _print_gates(gates, c.cell)


def _check_usage(file, opts) -> None:
    if opts["sample_length"] is not None:
        if file is not None:
            raise click.UsageError("give FILE or --sample N, not both")
        if opts["sample_length"] + len(opts["prime"]) > opts["max_chars"]:
            raise click.BadParameter(
                f"--sample {opts['sample_length']} with a prime of {len(opts['prime'])} "
                f"characters is more than --max-chars {opts['max_chars']}; raise --max-chars",
                param_hint="'--sample'",
            )
    else:
        for name, default in (("prime", ""), ("seed", None), ("temperature", (0.8,))):
            if opts[name] != default:
                flag = {"temperature": "--temp"}.get(name, f"--{name}")
                raise click.UsageError(f"{flag} is for --sample N; FILE is read as it is")


def _resolve_show(show: str | None, unit, cell: str) -> str:
    """--show checked against the cell; its default: the state, or the surprise with no unit."""
    from charrnn.inspection import FIELDS

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
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise cannot_write(OSError(errno.ENOENT, os.strerror(errno.ENOENT)), path)
    if not os.access(folder, os.W_OK):
        raise cannot_write(OSError(errno.EACCES, os.strerror(errno.EACCES)), path)


def _check_page_size(config, chars: int) -> None:
    """A page the browser can open: refuse one that would hold more than page.PAGE_BYTES."""
    from charrnn.errors import ConfigError
    from charrnn.page import PAGE_BYTES, page_bytes

    size = page_bytes(config.num_layers, config.hidden_size, config.cell, chars)
    if size > PAGE_BYTES:
        fits = PAGE_BYTES // page_bytes(config.num_layers, config.hidden_size, config.cell, 1)
        raise ConfigError(
            f"a page of {chars:,} characters of this {config.num_layers}x{config.hidden_size} "
            f"{config.cell.upper()} would hold {size / 2**20:,.0f} MB of values, more than a "
            f"browser opens at ease; pass --max-chars {fits:,} or less (or --sample fewer)"
        )


def _input_text(vocab, file, opts) -> str:
    """FILE's first --max-chars characters, those the model never saw handled by --unknown."""
    from charrnn.errors import CorpusError
    from charrnn.tokenizer import apply_unknown

    file = file or "-"
    label = "standard input" if file == "-" else file
    text, cut = _read_text(file, label, opts["encoding"], opts["max_chars"])
    if cut:
        say(
            f"Inspecting the first {opts['max_chars']:,} characters of {label} "
            "(--max-chars sets how many).",
            opts["quiet"],
        )
    text = apply_unknown(text, vocab, opts["unknown"], label)
    if not text:
        raise CorpusError(f"{label} is empty: there is nothing to inspect")
    return text


def _record(model, vocab, text: str | None, opts):
    """The recording of `text`, or of a sample (text None)."""
    from charrnn.inspection import record_sample, record_text
    from charrnn.sampler import SampleConfig
    from charrnn.tokenizer import apply_unknown

    if text is not None:
        return record_text(model, vocab, text)
    prime = apply_unknown(opts["prime"], vocab, opts["unknown"])
    config = SampleConfig(temperature=opts["temperature"], seed=opts["seed"])
    recording = record_sample(model, vocab, opts["sample_length"], config, prime)
    length = opts["sample_length"]
    say(f"Wrote {length:,} characters with seed {recording.seed}.", opts["quiet"])
    return recording


def _read_text(file: str, label: str, encoding: str, max_chars: int) -> tuple[str, bool]:
    """The first `max_chars` characters of FILE and whether there were more; the rest unread."""
    from charrnn.corpus import decode_chunks
    from charrnn.errors import CorpusError

    def chunks():
        if file == "-":
            data = read_stdin()
            yield from (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
            return
        try:
            with open(file, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        except OSError as e:
            raise CorpusError(f"cannot read {file}: {e.strerror}") from None

    parts, n = [], 0
    for piece in decode_chunks(chunks(), label, encoding):
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
    """Tab-separated: position, character (\\n, \\t and \\\\ escaped), value, surprise."""
    column = "surprise_bits" if show == "surprise" else f"{show}_{unit[0]}:{unit[1]}"
    rows = [f"position\tchar\t{column}\tsurprise_bits"]
    values, surprise = _unit_values(recording, show, unit), recording.surprise.tolist()
    for t, ch in enumerate(recording.text):
        shown = ch.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        rows.append(f"{t}\t{shown}\t{values[t]:.4f}\t{surprise[t]:.4f}")
    click.echo("\n".join(rows))


def diverging(x: float) -> tuple[int, int, int]:
    """x in [-1, 1] -> blue (-1), white (0), red (+1), as the page draws it."""
    x = max(-1.0, min(1.0, x))
    end = (214, 47, 39) if x >= 0 else (33, 102, 172)
    return tuple(round(255 + (e - 255) * abs(x)) for e in end)


def _rgb(x: float) -> str:
    """The colour of x in [-1, 1] as a rich style's colour."""
    return "rgb({},{},{})".format(*diverging(x))


def _scaled(show: str, value: float) -> float:
    """A value on its own scale -> [-1, 1] for the colours."""
    if show == "surprise":
        return min(value, 8.0) / 8.0
    if show == "cell":
        return math.tanh(value)
    if show in ("forget", "input", "output", "reset", "update"):
        return 2 * value - 1
    return value


def _print_coloured(recording, show: str, unit, force: bool) -> None:
    from rich.text import Text as RichText

    # Forced (--color always, e.g. into `less -R`): 24-bit colour, whatever TERM says.
    options = {"force_terminal": True, "color_system": "truecolor"} if force else {}
    console = stdout_console(highlight=False, soft_wrap=True, **options)
    values = _unit_values(recording, show, unit)
    lo, mid, hi = {
        "surprise": ("0", "4", "8+ bits"),
        "cell": ("-1", "0", "+1 (tanh of the cell)"),
    }.get(
        show,
        ("0", "0.5", "1")
        if show in ("forget", "input", "output", "reset", "update")
        else ("-1", "0", "+1"),
    )
    legend = RichText(f"{_label(show, unit)}:  {lo} ")
    steps = [i / 8 for i in range(-8, 9)] if show != "surprise" else [i / 8 for i in range(9)]
    for x in steps:
        legend.append(" ", style=f"on {_rgb(x)}")
    legend.append(f" {hi}   (white: {mid})")
    console.print(legend)
    text = RichText()
    for t, ch in enumerate(recording.text):
        style = f"black on {_rgb(_scaled(show, values[t]))}"
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
    # (T, L, H) per field, rounded to 4 places in float64 (shortest repr of each)
    per_char = {
        f: ((v.double() * 1e4).round() / 1e4).permute(1, 0, 2).tolist() for f, v in r.values.items()
    }
    surprise = ((r.surprise.double() * 1e4).round() / 1e4).tolist()
    probs = ((r.top_probs.double() * 1e4).round() / 1e4).tolist()
    chars, layers = r.vocab.chars, range(r.num_layers)
    for t, ch in enumerate(r.text):
        record = {
            "kind": "char",
            "t": t,
            "char": ch,
            "given": t < r.given,
            "surprise": surprise[t],
            "top": [[chars[i], p] for i, p in zip(r.top_ids[t].tolist(), probs[t], strict=True)],
            "layers": [{f: per_char[f][t][layer] for f in per_char} for layer in layers],
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


def _write_page(path: str, recording, checkpoint: str, found, gates, quiet: bool) -> None:
    from charrnn.fsutil import atomic_write
    from charrnn.page import render

    html = render(recording, checkpoint, found, gates).encode("utf-8")
    try:
        atomic_write(Path(path), lambda f: f.write(html))
    except OSError as e:
        raise cannot_write(e, path) from None
    say(f"Wrote {path} ({len(html) / 2**20:.1f} MB): open it in a browser.", quiet)
