"""`charrnn runs` and `charrnn corpus`: what has been trained, and where text comes from."""

from __future__ import annotations

import os
import sys

import click

from charrnn.cli.common import cache_dir, count, download_bar, json_out, print_table, say
from charrnn.cli.options import checkpoint_dir_option, json_option, not_empty, quiet_option
from charrnn.cli.other_names import SingleDashGroup
from charrnn.cli.report import fmt_time
from charrnn.fsutil import link_to_nothing, size_text


@click.command(
    epilog="""\b
Examples:
  charrnn runs
  charrnn runs --checkpoint-dir ~/models
  charrnn runs --check                          # every checkpoint read whole and checked
  charrnn runs | cut -f1,2                      # piped: tab-separated, one run a line
  charrnn runs --json | jq -r 'select(.status == "ok") | .run'"""
)
@json_option(
    "One JSON object per run and line: run, folder, status, cell, shape, dropout, input_dropout, "
    "lr (its peak learning rate), from (the run it was fine-tuned from), from_step, "
    "from_checkpoint, step, train_seconds, evaluations, best_val_bpc, last_val_bpc, "
    "last_eval_step, last_eval_epoch, val_chars "
    "(the validation characters its evaluations read), note, "
    "ended (steps, epochs, time, patience, stopped, diverged, or null while it trains, or where "
    "it ended without saying: killed, or a failed write), training_pid (the process training it "
    "now, else null), model_config and train_config (every setting it trains with, as its "
    "checkpoint keeps them: precision auto is picked again at each start), kept (the checkpoints "
    "--keep-every kept, step-N.pt, by step)."
)
@click.option(
    "--check",
    is_flag=True,
    help="Read every checkpoint whole and check it against the digests saved with it: a file "
    "damaged on disk shows as damaged here, not when it is next loaded, and the command exits 1 "
    "after the listing (slower: without it only what each checkpoint says of its run is read).",
)
@checkpoint_dir_option
def runs(checkpoint_dir, as_json, check):
    """List the runs in the checkpoint folder, most recent first: the step of each one's newest
    checkpoint, its scores, its status: ok, untrained (no evaluation yet: `sample` skips it) or
    damaged (a file that cannot be read; the others are listed all the same), and what ended it
    (its time, steps or epochs, an early stop, or interrupted: `train --resume` goes on; cut
    off where it ended without saying how: killed), or "training now" while a `charrnn train`
    trains it. On a
    terminal a table (a narrow one leaves out folder, from, last val bpc and train time in turn
    until it fits, and says so); piped, tab-separated lines in full under a header line, their
    figures plain (step 1806, train seconds 39.2), as --json keeps every field."""
    from charrnn import runs as runs_mod
    from charrnn.runs.find import broken_link, run_folder_hint

    found = runs_mod.list_runs(checkpoint_dir, verify=check)
    if not found and (hint := run_folder_hint(checkpoint_dir)):  # a run's own folder
        say(f"no runs in {checkpoint_dir}{hint}")
        return
    if not found:
        if broken := broken_link(checkpoint_dir):
            say(f"no runs in {checkpoint_dir}{broken}")
            return
        missing = "" if os.path.isdir(checkpoint_dir) else " (there is no such folder)"
        say(f"no runs in {checkpoint_dir}{missing}; train one with `charrnn train CORPUS`")
        return
    if as_json:
        for info in found:
            click.echo(json_out(_run_record(info)))
    else:
        _runs_table(found)
    if note := unlike_reads(found):
        say(note)
    damaged = [info.run.name for info in found if info.status == "damaged"]
    if check and damaged:  # the listing is written; the status says what the check found
        raise click.ClickException(
            f"{count(len(damaged), 'run')} damaged: {', '.join(damaged)} (see "
            f"{'its' if len(damaged) == 1 else 'their'} note)"
        )


def unlike_reads(found) -> str | None:
    """A note where runs of one text (and validation split) had their validation read on
    different numbers of its characters (a time budget reads part of it): their val bpc do not
    compare, which a reader of the table would do. None where every such group read alike."""
    groups: dict[tuple, dict[int, list[str]]] = {}
    for info in found:
        if info.validates_on is not None and info.val_chars is not None:
            by_reads = groups.setdefault(info.validates_on, {})
            by_reads.setdefault(info.val_chars, []).append(info.run.name)
    unlike = [reads for reads in groups.values() if len(reads) > 1]
    if not unlike:
        return None
    # the text with the most runs said (the one a reader compares most), the others counted
    reads = max(unlike, key=lambda r: sum(map(len, r.values())))
    said = "; ".join(
        f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}: {chars:,}"
        for chars, names in sorted(reads.items())
    )
    more = " (and other runs alike)" if len(unlike) > 1 else ""
    return (
        f"Note: runs of the same text read different numbers of its validation characters ({said})"
        f"{more}: their val bpc do not compare; `charrnn score -c RUN FILE` reads each run on "
        "the same text"
    )


def _runs_table(found) -> None:
    """The runs as a table on a terminal, tab-separated lines piped."""
    header = (
        "run",
        "model",
        "step",
        "train time",
        "best val bpc",
        "last val bpc",
        "folder",
        "note",
        "from",  # scripts that cut the columns before it keep working
        "ended",
    )
    piped = not sys.stdout.isatty()
    if piped:  # for scripts: plain numbers (1806, seconds), as plot's lines write them
        header = tuple("train seconds" if h == "train time" else h for h in header)
    rows = [_run_row(info, piped) for info in found]
    optional = ("note", "from", "ended")  # often empty in every row
    # Left out, in this order, where the table is wider than the terminal: the folder is the
    # checkpoint folder's path and the run's name; piped lines and --json keep every column.
    spare = ("folder", "from", "last val bpc", "train time")
    print_table(
        header,
        rows,
        _numeric,
        overflow="fold",
        optional=optional,
        spare=spare,
        prose=("note",),
        whole=("run", "model"),  # what the user types; LSTM 1x128, short, read as one
    )


def _numeric(i: int, col: str) -> bool:
    """Whether a column of the runs table holds figures (right-aligned)."""
    return col not in ("run", "model", "from", "folder", "note", "ended")


def _run_record(info) -> dict:
    """A run as `runs --json` writes it: names and paths exact (json_line writes a byte that is
    not UTF-8 as the \\udcNN escape os.fsencode turns back into it)."""
    return info.summary()


def _run_row(info, piped: bool = False) -> tuple[str, ...]:
    """A run as a line of the table (`piped`: of the tab-separated lines, its figures plain):
    text cells (names as they are: print_table shows them), '-' where a value is unknown (piped,
    `nan`: what `sort -g` puts before every figure and awk reads as no number, where '-' and an
    empty cell read as 0, the best of scores)."""
    r = info.summary()
    unknown = "nan" if piped else "-"

    def fmt(value, spec: str) -> str:
        return unknown if value is None else format(value, spec)

    model = " ".join(x for x in ((r["cell"] or "").upper(), r["shape"] or "") if x) or "-"
    if r["training_pid"] is not None:
        ended = "training now"
    elif info.cut_off:  # killed: its checkpoint does not say how it ended
        ended = "cut off"
    else:
        ended = ENDED.get(r["ended"], r["ended"] or "")
    seconds = r["train_seconds"]
    return (
        r["run"],
        model,
        fmt(r["step"], "d" if piped else ",d"),
        fmt(seconds, ".1f") if piped or seconds is None else fmt_time(seconds),  # as `train` says
        fmt(r["best_val_bpc"], ".3f"),
        fmt(r["last_val_bpc"], ".3f"),
        r["folder"],
        r["note"],
        r["from"] or "",
        ended,
    )


# How a run ended, in the table, where it says it otherwise than events.ENDINGS (`runs --json`):
# the budget spent is named as it is.
ENDED = {"patience": "early stop", "stopped": "interrupted"}


@click.group(cls=SingleDashGroup)
def corpus():
    """Named corpora: a catalog of public ones (downloaded once) and built-in ones (offline)."""


@corpus.command(
    "list",
    epilog="""\b
Examples:
  charrnn corpus list
  charrnn corpus list --json | jq -r 'select(.here == "yes") | .name'""",
)
@json_option(
    "One JSON object per corpus and line: name, bytes (of a built-in corpus not built here yet, "
    "about that many), kind (built-in or download), here (yes, "
    "no, or differs: a file by its name that is not the catalog's), description, licence."
)
def corpus_list(as_json):
    """Show the corpora `charrnn train NAME` knows, and whether each is already here. On a
    terminal a table; piped, tab-separated lines in full under a header line."""
    from charrnn.text.catalog import cached, load_catalog

    header = ("name", "size", "kind", "here", "description", "licence")
    records = []
    for entry in load_catalog().values():
        here = cached(entry, cache_dir())
        # a built-in corpus's own size is known once it is built (the catalog's is a target)
        size = entry.cache_file(cache_dir()).stat().st_size if here == "yes" else entry.size
        records.append(
            {
                "name": entry.name,
                "bytes": size,
                "kind": "built-in" if entry.builtin else "download",
                "here": here,
                "description": entry.description,
                "licence": entry.licence,
            }
        )
    if as_json:
        for r in records:
            click.echo(json_out(r))
        return
    piped = not sys.stdout.isatty()
    if piped:  # for scripts: plain numbers, as runs writes them
        header = tuple("bytes" if h == "size" else h for h in header)
    rows = [
        (
            r["name"],
            str(r["bytes"]) if piped else size_text(r["bytes"]),
            r["kind"],
            r["here"],
            r["description"],
            r["licence"],
        )
        for r in records
    ]
    # the prose wraps; on a narrow terminal the licence, then the description, make room
    spare = ("licence", "description")
    print_table(
        header,
        rows,
        lambda i, name: name in ("size", "bytes"),
        overflow="fold",
        spare=spare,
        prose=("description", "licence"),
        whole=("name",),  # what the user types
    )


@corpus.command(
    "get",
    epilog="""\b
Examples:
  charrnn corpus get tinyshakespeare            # download once, verify its SHA-256
  wc -c "$(charrnn corpus get pystdlib)"        # build from this Python's own source""",
)
@click.argument("name", callback=not_empty)
@quiet_option("No progress bar.")
def corpus_get(name, quiet):
    """Download (or build) corpus NAME into the cache and print its path on stdout."""
    from charrnn.errors import CorpusError
    from charrnn.text.catalog import fetch, load_catalog

    catalog = load_catalog()
    if name not in catalog:
        raise CorpusError(f"no corpus named {name!r}; known: {', '.join(catalog)}")
    bar = download_bar(quiet)
    path = fetch(catalog[name], cache_dir(), bar)
    bar.close()  # off the terminal before the path is written
    click.echo(str(path))


@corpus.command(
    "cache",
    epilog="""\b
Examples:
  charrnn corpus cache                          # what is cached, and how big
  charrnn corpus cache --clear                  # free the space (corpora are re-encoded on use)""",
)
@click.option("--clear", is_flag=True, help="Delete every encoded corpus in the cache.")
@json_option(
    "One JSON object per encoded corpus and line: bytes, chars (null: unreadable, rebuilt on "
    "use), sources, file."
)
def corpus_cache(clear, as_json):
    """List the encoded corpora in the cache (ids kept so training starts at once next time). On
    a terminal a table; piped, tab-separated lines in full under a header line."""
    from charrnn.text.cache import OTHER_CACHE
    from charrnn.text.encoded import cache_entries, clear_cache

    where = cache_dir()
    if os.path.exists(where) and not os.path.isdir(where):  # as `get` and `train` refuse it
        raise click.ClickException(
            f"cannot read the corpus cache {where}: it is a file, not a folder; {OTHER_CACHE}"
        )
    if clear:
        freed = clear_cache(where)
        say(f"Freed {size_text(freed)} of encoded corpora in {where}")
        return
    entries = cache_entries(where)
    if not entries and (dangling := link_to_nothing(where)):
        say(f"no encoded corpora in {where}: {dangling}; mend the link, or {OTHER_CACHE}")
        return
    if not entries:
        say(f"no encoded corpora in {where}; `charrnn train` makes them")
        return
    if as_json:
        for e in entries:  # names exact, as every --json gives them (json_line)
            sources = None if e.sources is None else list(e.sources)
            record = {"bytes": e.size, "chars": e.chars, "sources": sources}
            click.echo(json_out({**record, "file": str(e.ids_path)}))
        return
    piped = not sys.stdout.isatty()  # for scripts: plain numbers, as runs writes them
    header = ("bytes" if piped else "size", "characters", "corpus", "encoded file")
    rows = [
        (
            str(e.size) if piped else size_text(e.size),
            format(e.chars, "d" if piped else ",d")
            if e.chars is not None
            else "nan"
            if piped  # a figure's column: `sort -g` and awk read no number, not 0
            else "unreadable (rebuilt on use)",
            ", ".join(e.sources or []) or "?",
            str(e.ids_path),
        )
        for e in entries
    ]
    print_table(header, rows, lambda i, _: i < 2, overflow="fold")
