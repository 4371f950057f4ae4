"""`charrnn plot`: the learning curves of one run or several, as a text chart on a terminal,
tab-separated lines in a pipe, JSON lines, or a PNG/SVG figure (with matplotlib, an extra)."""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

import click

from charrnn.cli.common import binary, json_out, print_tsv, say, shown_name, tsv_field, write_output
from charrnn.cli.options import (
    checkpoint_dir_option,
    json_option,
    names_a_file,
    not_an_option,
    not_empty,
)
from charrnn.cli.report import fmt_time
from charrnn.curves import X_AXES  # no torch: `charrnn --help` stays quick
from charrnn.fsutil import expand_home

EXTRA = "pip install matplotlib"  # the [plot] extra's one package, installed beside charrnn
FIGURE_TYPES = (".png", ".svg")
# time: the run's wall clock, as --time counts it (each command's start-up and evaluations in it)
X_TITLES = {"time": "time, start-up included", "chars": "characters trained", "steps": "steps"}
TSV_X = {"time": "seconds", "chars": "chars", "steps": "step"}  # the x column's header
CURVE_NAMES = {"val": "validation", "train": "training"}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # the text chart's markers: a run's letter
CHART_ROWS = 17  # rows of the text chart's plotting area: 4 x 4 between its 5 labels
# a time axis's round steps, in seconds, where they are a minute or more apart
TIME_STEPS = (30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MIN_ROWS = 9  # on a terminal too short for CHART_ROWS (and the legend): no fewer than these
LEGEND_INSIDE, LABEL_INSIDE = 4, 32  # more labels, or a longer one: the legend beside the axes


def _figure_path(ctx, param, value):
    """-o's callback: an empty value is a usage error, and so is a name the type cannot be read
    from (matplotlib would guess another type, or fail after all the work)."""
    value = not_empty(ctx, param, value)
    if value is None:
        return value
    not_an_option(ctx, param, value)
    value = expand_home(value)
    names_a_file(value)
    if Path(value).name.lower() in FIGURE_TYPES:  # `.png` is a hidden file's name, with no type
        raise click.BadParameter(f"{value!r} has no name before its type: give one, as curves.png")
    if Path(value).suffix.lower() not in FIGURE_TYPES:
        raise click.BadParameter("must end in .png or .svg (the figure's type is read from it)")
    return value


@click.command(
    epilog="""\b
Examples:
  charrnn plot tinyshakespeare                   # validation bpc against time, as text
  charrnn plot lstm gru rnn --train -o cells.png # three runs, training loss too, as a figure
  charrnn plot lstm gru --x chars -o cells.svg   # against characters trained
  charrnn plot lstm gru | cut -f1,4,5            # run, x, bpc (of run, cell, curve, x, bpc, folder)
  charrnn plot lstm --json | jq -r .bpc"""
)
@click.argument("specs", nargs=-1, required=True, metavar="RUN...", callback=not_empty)
@click.option(
    "-o",
    "--output",
    type=click.Path(),  # _figure_path refuses a folder; write_output the rest
    callback=_figure_path,
    metavar="FILE",
    help=f"Write a figure to FILE, .png or .svg (needs matplotlib: {EXTRA}).",
)
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(X_AXES),
    default="time",
    help="Draw against training time, characters trained (by all processes), or steps.",
)
@click.option(
    "--train",
    "with_train",
    is_flag=True,
    help="Draw the training loss too (the mean over each 1/16 of an evaluation interval, "
    "sparser in a long run).",
)
@json_option(
    "The points as JSON lines on stdout: run, folder, cell, curve, step, seconds, chars, bpc."
)
@checkpoint_dir_option
def plot(specs, output, x_axis, with_train, as_json, checkpoint_dir):
    """Draw the learning curves of RUN...: validation bits per character (with --train, the
    training loss too) against training time, characters trained or steps, several runs on one
    chart, each labelled by its name and cell.

    RUN is a run name under --checkpoint-dir, or a run folder (a value with a /). On a terminal
    a text chart; piped, tab-separated lines (run, cell, curve, x, bpc, folder) under a header
    line; -o FILE writes a PNG or SVG figure instead. The curves of a run in training are as new
    as its metrics.jsonl."""
    from charrnn import runs
    from charrnn.curves import no_points, read_curves
    from charrnn.errors import CheckpointError, RunError

    figure = _figure_class() if output else None  # a missing extra is said before any work
    wanted = ("val", "train") if with_train else ("val",)
    found, seen, unread = [], set(), []
    for spec in specs:
        run = runs.find_run(spec, checkpoint_dir)
        if (key := os.path.realpath(run.path)) not in seen:  # the same run named twice: once
            seen.add(key)
            if pair := runs.run_mismatch(run):  # its curves are last.pt's, its readers' best.pt
                say(f"Note: in {run.path}, {pair.what}: {pair.cause}; plotting last.pt's records")
            try:
                found.append(read_curves(run))
            except CheckpointError as e:  # damaged: the others are drawn, as an empty run's are
                if len(specs) == 1:
                    raise
                unread.append(str(e))
    drawn = [c for c in found if no_points(c, wanted) is None]
    empty = unread + [why for c in found if (why := no_points(c, wanted)) is not None]
    if not drawn:
        raise RunError(
            "; ".join(empty) if len(empty) == 1 else "nothing to plot: " + "; ".join(empty)
        )
    for why in empty:
        say(f"Note: left out: {why}")
    for note in _unlike(drawn):
        say(note)
    series = _series(drawn, wanted)
    points = [(c, curve, p) for c, curve, _, _ in series for p in c.points(curve)]
    if output:
        _write_figure(figure, series, points, x_axis, output)
        say(f"Wrote {output}")
    if as_json:
        for c, curve, p in points:
            click.echo(json_out(_point_record(c, curve, p)))
    elif output:
        return
    elif sys.stdout.isatty():
        if len(drawn) > len(LETTERS):
            say(
                f"Note: the text chart tells {len(LETTERS)} runs apart; from run "
                f"{len(LETTERS) + 1} on, letters repeat: draw them with -o FILE.png, or fewer"
            )
        columns, lines = shutil.get_terminal_size()
        rows = max(MIN_ROWS, min(CHART_ROWS, lines - len(series) - 6))  # it all fits, legend too
        click.echo("\n".join(text_chart(series, points, x_axis, columns, rows)))
    else:  # for scripts: one point a line, every name in full
        rows = [_point_row(c, curve, p, x_axis) for c, curve, p in points]
        print_tsv(("run", "cell", "curve", TSV_X[x_axis], "bpc", "folder"), rows)


def _unlike(drawn) -> list[str]:
    """The notes where the runs drawn on one chart do not compare: validated on different texts
    (or splits of one), and on different numbers of one text's validation characters (as `runs`
    says); none where they compare, or one run is drawn."""
    from charrnn.cli.misc import unlike_reads
    from charrnn.runs import RunDir
    from charrnn.runs.info import inspect

    if len(drawn) < 2:
        return []
    infos = [inspect(RunDir(c.folder)) for c in drawn]  # what each checkpoint says: no weights
    texts = {}  # the runs by the text they validate on (one that does not say: left out)
    for c, info in zip(drawn, infos, strict=True):
        if info.validates_on is not None:
            texts.setdefault(info.validates_on, []).append(shown_name(c.name))
    notes = []
    if len(texts) > 1:
        groups = " | ".join(", ".join(n[:3]) + ", ..." * (len(n) > 3) for n in texts.values())
        notes.append(
            f"Note: the runs drawn were validated on {len(texts)} different texts (or splits of "
            f"one: {groups}): their bits per character do not compare across them"
        )
    if reads := unlike_reads(infos):  # runs of one of those texts that read it unlike
        notes.append(reads)
    return notes


def _series(drawn, wanted) -> list[tuple]:
    """(curves, curve, marker, label) for each curve to draw, run by run: validation first. Runs
    are labelled by name and cell (by folder where two share a name); in text, run i draws its
    validation with the i-th capital letter and its training loss with the small one."""
    names = [c.name for c in drawn]
    out = []
    for i, c in enumerate(drawn):
        who = c.name if names.count(c.name) == 1 else str(c.folder)
        letter = LETTERS[i % len(LETTERS)]
        for curve in wanted:
            if c.points(curve):
                marker = letter if curve == "val" else letter.lower()
                cell = "" if who == c.cell else f" ({c.cell})"  # not `lstm (lstm)`
                out.append((c, curve, marker, f"{shown_name(who)}{cell} {CURVE_NAMES[curve]}"))
    return out


def _point_record(c, curve: str, p) -> dict:
    """A point as `plot --json` writes it: names exact, as every --json gives them (json_line)."""
    return {
        "run": c.name,
        "folder": str(c.folder),
        "cell": c.cell,
        "curve": curve,
        "step": p.step,
        "seconds": p.seconds,
        "chars": p.chars,
        "bpc": p.bpc,
    }


def _point_row(c, curve: str, p, x_axis: str) -> tuple[str, ...]:
    """A point as the fields of its tab-separated line: run, cell, curve, x, bpc, folder (last,
    so that scripts that cut the columns before it keep working; two runs of one name differ in
    it)."""
    x = f"{p.seconds:.2f}" if x_axis == "time" else str(int(p.x(x_axis)))
    return (c.name, c.cell, curve, x, f"{p.bpc:.5f}", str(c.folder))  # print_tsv shows names


# --------------------------------------------------------------------------- the text chart


def text_chart(series, points, x_axis: str, columns: int, rows: int = CHART_ROWS) -> list[str]:
    """The curves (`points`: the series' (curves, curve, point) triples) as lines of plain text
    `columns` wide (40 at least): a plotting area of `rows` rows, bits per character up the
    left, `x_axis` along the bottom from 0, and a legend. Each curve is drawn as a line of its
    marker through its points; training curves first, so a validation curve stays visible where
    they cross."""
    x_hi = max(p.x(x_axis) for _, _, p in points) or 1.0
    y_lo, y_hi = min(p.bpc for _, _, p in points), max(p.bpc for _, _, p in points)
    if y_hi - y_lo < 1e-6:  # one level: give it a band to sit in
        y_lo, y_hi = y_lo - 0.05, y_hi + 0.05
    digits = 3 if y_hi - y_lo < 0.1 else 2
    margin = max(len(f"{v:.{digits}f}") for v in (y_lo, y_hi)) + 1
    width = max(40, columns - 1) - margin - 2
    grid = [[" "] * width for _ in range(rows)]

    def col(x: float) -> int:
        return round(x / x_hi * (width - 1))

    def row(y: float) -> int:
        return round((y_hi - y) / (y_hi - y_lo) * (rows - 1))

    for c, curve, marker, _ in sorted(series, key=lambda s: s[1] == "val"):
        pts = c.points(curve)
        path = [(col(pts[0].x(x_axis)), row(pts[0].bpc))]  # the cells of the line, in order
        for a, b in itertools.pairwise(pts):  # between two points: one cell per column
            ca, cb = col(a.x(x_axis)), col(b.x(x_axis))
            for k in range(ca + 1, cb + 1):
                path.append((k, row(a.bpc + (b.bpc - a.bpc) * (k - ca) / (cb - ca))))
            if cb == ca:
                path.append((cb, row(b.bpc)))
        for (_, r0), (k, r) in itertools.pairwise(path):  # a steep part: fill the rows between
            for between in range(min(r0, r) + 1, max(r0, r)):
                grid[between][k] = marker
        for k, r in path:
            grid[r][k] = marker
    labelled = {round(r * (rows - 1) / 4): r for r in range(5)}
    lines = ["bits per character"]
    for r, cells in enumerate(grid):
        value = y_hi - (y_hi - y_lo) * r / (rows - 1)
        label = f"{value:.{digits}f}" if r in labelled else ""
        lines.append(f"{label:>{margin}} |{''.join(cells)}".rstrip())
    lines.append(" " * margin + " +" + "-" * width)
    lines.append(" " * (margin + 2) + _ticks(x_axis, x_hi, width))
    title = X_TITLES[x_axis]
    lines.append(" " * (margin + 2 + max(0, (width - len(title)) // 2)) + title)
    lines.extend(f"  {marker}  {tsv_field(label)}" for _, _, marker, label in series)
    return lines


def _ticks(x_axis: str, x_hi: float, width: int) -> str:
    """The x axis's labels under their columns: at 0 and at every multiple of a round step
    (10s, 2.5M, 500 steps) up to the end, as many as fit."""
    line = [" "] * width
    step = _round_step(x_axis, x_hi / (4 if width >= 60 else 2))
    free = 0  # the first column a label may take
    for k in range(int(x_hi / step + 1e-9) + 1):
        text = _x_text(x_axis, k * step, x_hi)
        at = round(k * step / x_hi * (width - 1))
        start = min(max(at - len(text) // 2, 0), width - len(text))
        if start < free:
            continue
        line[start : start + len(text)] = text
        free = start + len(text) + 1
    return "".join(line).rstrip()


def _round_step(x_axis: str, least: float) -> float:
    """The smallest round step of `x_axis` at least `least`: 1, 2, 2.5 or 5 times a power of ten;
    on a time axis of a minute or more, a round number of seconds or minutes; whole steps."""
    if x_axis == "time" and least >= 30:
        return next((s for s in TIME_STEPS if s >= least), math.ceil(least / 3600) * 3600)
    power = 10 ** math.floor(math.log10(least)) if least > 0 else 1
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= least)
    return max(1, round(step)) if x_axis == "steps" else step


def _x_text(x_axis: str, value: float, x_hi: float) -> str:
    """A tick label: 1m30s, 2.5M characters, 1,024 steps (`x_hi`, the axis's end, sets the
    precision)."""
    if x_axis == "time" and x_hi < 60:
        return f"{value:.3g}s"
    if x_axis == "time":  # 1h02m03s is cut to 1h02m
        text = fmt_time(value)
        return text[:-3] if "h" in text else text
    if x_axis == "chars":
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if value >= scale:
                return f"{value / scale:.3g}{suffix}"
        return f"{value:.0f}"
    return f"{round(value):,}"


# --------------------------------------------------------------------------- the figure


def _figure_class():
    """matplotlib's Figure; an `Error:` line naming the extra to install when it is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise click.ClickException(
            f"writing a figure (-o) needs matplotlib, which is not installed; install it with "
            f"{EXTRA} (without -o, charrnn plot draws the curves as text)"
        ) from None
    return Figure


def _write_figure(figure_class, series, points, x_axis: str, output: str) -> None:
    """Draw the series into a figure and write it to `output` as every output is (write_output:
    whole or not at all, and never over a saved model or a read-only file)."""
    scale, unit = _x_unit(x_axis, max(p.x(x_axis) for _, _, p in points))
    fig = figure_class(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    colours = {}  # one colour per run, its curves told apart by their style
    for c, curve, _, label in series:
        colour = colours.setdefault(id(c), f"C{len(colours) % 10}")
        xs = [p.x(x_axis) / scale for p in c.points(curve)]
        ys = [p.bpc for p in c.points(curve)]
        if curve == "val":
            ax.plot(xs, ys, color=colour, marker="o", markersize=4, label=label)
        else:
            ax.plot(xs, ys, color=colour, linestyle="--", linewidth=1, alpha=0.7, label=label)
    ax.set_xlabel(f"{X_TITLES[x_axis]}{unit}")
    ax.set_ylabel("bits per character")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    if len(series) > LEGEND_INSIDE or max(len(s[3]) for s in series) > LABEL_INSIDE:
        # beside the axes, where it covers no curve (constrained layout makes room for it)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize="small")
    else:
        ax.legend()
    kind = Path(output).suffix.lower()[1:]
    metadata = {"Date": None} if kind == "svg" else None  # the same curves, the same file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_output(output, lambda out: fig.savefig(binary(out), format=kind, metadata=metadata))
    missing = {chr(int(n)) for w in caught for n in re.findall(r"Glyph (\d+)", str(w.message))}
    for w in caught:  # anything else matplotlib warns of: its message, as one line
        if not re.match(r"Glyph \d+", str(w.message)):
            say(f"Note: {w.message}")
    if missing:  # one note, not matplotlib's warning (with a line of code) per glyph
        say(
            f"Note: the figure's font has no glyph for {''.join(sorted(missing))!r} in a run's "
            "name: it shows as a box there (the text chart and `charrnn runs` show it)"
        )


def _x_unit(x_axis: str, x_hi: float) -> tuple[float, str]:
    """(divisor, axis-title suffix) that keep the figure's x numbers short."""
    if x_axis == "time":
        if x_hi >= 3 * 3600:
            return 3600.0, " (hours)"
        return (60.0, " (minutes)") if x_hi >= 120 else (1.0, " (seconds)")
    if x_axis == "chars":
        if x_hi >= 1e6:
            return 1e6, " (millions)"
        return (1e3, " (thousands)") if x_hi >= 1e3 else (1.0, "")
    return 1.0, ""
