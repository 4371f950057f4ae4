"""How commands lay out data: a table on a terminal and tab-separated lines in a pipe; names and
paths as text."""

from __future__ import annotations

import os
import sys

import click

from charrnn.cli.common import stdout_console

# Every character that some reader takes for a line break (str.splitlines' set), and the tab.
_BREAKS = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def print_table(header, rows, right, title: str | None = None, overflow: str = "ellipsis") -> None:
    """A table on a terminal (column i right-aligned where right(i, name)); piped, tab-separated
    lines under a header line, for scripts: every character as it is, nothing cut or styled."""
    if not sys.stdout.isatty():
        print_tsv(header, rows)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", box=None)
    for i, col in enumerate(header):
        justify = "right" if right(i, col) else "left"
        table.add_column(col, justify=justify, overflow=overflow)
    for row in rows:
        table.add_row(*(Text(field) for field in row))  # Text: a name is never read as markup
    stdout_console(highlight=False).print(table)


def print_tsv(header, rows) -> None:
    """Tab-separated lines under a header line, for scripts: every character as it is."""
    for row in (header, *rows):
        click.echo("\t".join(tsv_field(field) for field in row))


def tsv_field(field: str) -> str:
    """One tab-separated field on one line: a backslash as \\\\, a tab or line break as its escape
    (\\t, \\n, \\r; the others as \\xNN or \\uNNNN), so every reader sees one row per record."""
    table = {ord(c): c.encode("unicode_escape").decode() for c in _BREAKS}
    return field.translate({92: "\\\\", **table})


def shown_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (surrogate escapes) as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def shown_path(path) -> str:
    """A path as text for JSON or a page: bytes that are not UTF-8 show as U+FFFD."""
    return os.fsencode(str(path)).decode("utf-8", "replace")
