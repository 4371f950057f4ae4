"""`charrnn runs` and `charrnn corpus`: what has been trained, and where text comes from."""

from __future__ import annotations

import json
import math
import sys

import click

from charrnn.cli.common import cache_dir, checkpoint_dir_option, download_bar, user_errors


@click.command(epilog="\b\nExamples:\n  charrnn runs\n  charrnn runs --checkpoint-dir ~/models")
@checkpoint_dir_option
@user_errors
def runs(checkpoint_dir):
    """List the runs in the checkpoint folder, most recent first, with their best scores."""
    from rich.console import Console
    from rich.table import Table

    from charrnn import runs as runs_mod

    found = runs_mod.list_runs(checkpoint_dir)
    if not found:
        click.echo(f"no runs in {checkpoint_dir}; train one with `charrnn train CORPUS`", err=True)
        return
    table = Table(box=None)
    for col in ("run", "steps", "epoch", "train time", "best val bpc", "last val bpc", "folder"):
        table.add_column(col, justify="left" if col in ("run", "folder") else "right")
    for run in found:
        rows = _read_metrics(run.metrics)
        best = min((r["val_bpc"] for r in rows), default=math.nan)
        last = rows[-1] if rows else {}
        table.add_row(
            run.name,
            f"{last.get('step', 0):,}",
            f"{last.get('epoch', 0):.2f}",
            f"{last.get('elapsed', 0) / 60:.1f} min",
            f"{best:.3f}",
            f"{last.get('val_bpc', math.nan):.3f}",
            str(run.path),
        )
    Console(file=sys.stdout, width=200 if not sys.stdout.isatty() else None).print(table)


def _read_metrics(path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash: the checkpoint has the full history
    return rows


@click.group()
def corpus():
    """Named corpora: a catalog of public ones (downloaded once) and built-in ones (offline)."""


@corpus.command("list", epilog="\b\nExample:\n  charrnn corpus list")
@user_errors
def corpus_list():
    """Show the corpora `charrnn train NAME` knows, and whether each is already here."""
    from rich.console import Console
    from rich.table import Table

    from charrnn.corpus import load_catalog

    table = Table(box=None)
    for col in ("name", "size", "kind", "here", "description", "licence"):
        table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
    for entry in load_catalog().values():
        here = "yes" if entry.cache_file(cache_dir()).is_file() else "no"
        kind = "built-in" if entry.builtin else "download"
        table.add_row(
            entry.name, f"{entry.size / 1e6:.1f} MB", kind, here, entry.description, entry.licence
        )
    Console(file=sys.stdout, width=200 if not sys.stdout.isatty() else None).print(table)


@corpus.command(
    "get",
    epilog="""\b
Examples:
  charrnn corpus get tinyshakespeare            # download once, verify its SHA-256
  wc -c "$(charrnn corpus get pystdlib)"        # build from this Python's own source""",
)
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@user_errors
def corpus_get(name, quiet):
    """Download (or build) corpus NAME into the cache and print its path on stdout."""
    from charrnn.corpus import fetch, load_catalog
    from charrnn.errors import CorpusError

    catalog = load_catalog()
    if name not in catalog:
        raise CorpusError(f"no corpus named {name!r}; known: {', '.join(catalog)}")
    click.echo(str(fetch(catalog[name], cache_dir(), download_bar(quiet))))


@corpus.command(
    "cache",
    epilog="""\b
Examples:
  charrnn corpus cache                          # what is cached, and how big
  charrnn corpus cache --clear                  # free the space (corpora are re-encoded on use)""",
)
@click.option("--clear", is_flag=True, help="Delete every encoded corpus in the cache.")
@user_errors
def corpus_cache(clear):
    """List the encoded corpora in the cache (ids kept so training starts at once next time)."""
    from charrnn.encoded import cache_entries, clear_cache

    where = cache_dir()
    if clear:
        freed = clear_cache(where)
        click.echo(f"Freed {freed / 1e6:,.1f} MB of encoded corpora in {where}", err=True)
        return
    entries = cache_entries(where)
    if not entries:
        click.echo(f"no encoded corpora in {where}; `charrnn train` makes them", err=True)
        return
    for e in entries:
        chars = f"{e.chars:,} chars" if e.chars is not None else "unreadable (rebuilt on use)"
        sources = ", ".join(e.sources) or "?"
        click.echo(f"{e.size / 1e6:10,.1f} MB  {chars:>20}  {sources}  {e.ids_path}")
