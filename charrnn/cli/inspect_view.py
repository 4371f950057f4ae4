"""What `charrnn inspect` draws on a terminal: the text coloured by one unit, the same as plain
tab-separated data when piped, and the tables of the units found and the gates' saturation."""

from __future__ import annotations

import sys

import click

from charrnn.cli.common import print_table, stdout_console
from charrnn.model.config import GATE_ENDS, GATES

ALL_GATES = {g for gates in GATES.values() for g in gates}  # from 0 to 1, not -1 to 1


def draw_unit(recording, show: str, unit, color: str) -> None:
    """The text by one unit (or its surprise): coloured where --color and the terminal allow,
    else plain data."""
    console = None
    if color == "always" or (color == "auto" and sys.stdout.isatty()):
        console = colour_console(force=color == "always")
    if console is not None:
        _print_coloured(console, recording, show, unit)
    else:
        _print_plain(recording, show, unit)


def _unit_values(recording, show: str, unit) -> list[float]:
    if show == "surprise":
        return recording.surprise.tolist()
    layer, index = unit
    return recording.values[show][layer, :, index].tolist()


def _print_plain(recording, show: str, unit) -> None:
    """Tab-separated: position, character (escaped, see plain_char), the value unless it is the
    surprise, and the surprise in bits."""
    surprise = recording.surprise.tolist()
    column = "" if show == "surprise" else f"\t{show}_{unit[0]}:{unit[1]}"  # the unit's, if any
    values = None if show == "surprise" else _unit_values(recording, show, unit)
    rows = [f"position\tchar{column}\tsurprise_bits"]
    for t, ch in enumerate(recording.text):
        value = "" if values is None else f"\t{values[t]:.4f}"
        rows.append(f"{t}\t{plain_char(ch)}{value}\t{surprise[t]:.4f}")
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
    text = {"highlight": False, "soft_wrap": True}
    if force:
        return stdout_console(**text, force_terminal=True, color_system="truecolor", no_color=False)
    console = stdout_console(**text)
    if console.no_color or console.color_system is None:
        return None
    if console.color_system in ("standard", "windows"):
        return stdout_console(**text, color_system="256")
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
    }.get(show, ("-1", "0", "+1"))
    if gate:
        shut, open_ = GATE_ENDS[show]
        lo, mid, hi = f"0 ({shut})", "0.5", f"1 ({open_})"
    label = "surprise (bits)" if show == "surprise" else f"{show} {unit[0]}:{unit[1]}"
    legend = RichText(f"{label}:  {lo} ")
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


def print_found(found) -> None:
    """The units found, one property a row: the best unit, the next best, the chance level and
    an untrained network's best."""
    header = ("property", "best unit", "r", "next best", "chance", "best/chance", "untrained")
    rows = []
    for f in found:
        if not f.units:
            rows.append((f.property.name, f.unfound, "", "", "", "", ""))
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
                "" if f.untrained is None else f"{f.untrained:.2f}",
            )
        )
    title = "Units that track the text (Pearson r over the characters read)"
    print_table(header, rows, _numeric, title)


def print_gates(saturation, cell: str) -> None:
    """Each gate's saturation, one layer a row: shares of characters, and of units, at each end."""
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
    print_table(
        header,
        rows,
        _numeric,
        "Gate saturation: the share of characters each gate spends below 0.1 and above 0.9, "
        f"averaged over the units; a unit whose {keep} gate is mostly above 0.9 keeps its memory "
        "for long (an integrator)",
    )


def _numeric(i: int, col: str) -> bool:
    """Whether column `i` of a table of units or gates holds numbers (right-aligned)."""
    return not (i < 2 or col == "next best")
