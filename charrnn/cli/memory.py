"""`charrnn memory`: how far back a model remembers, measured on a text's brackets and quotes, or
by how far back the gradient of a character's loss reaches (--gradients)."""

from __future__ import annotations

import math
import sys

import click

from charrnn.cli.common import (
    count,
    json_out,
    known_text,
    load_model,
    phase_bar,
    print_table,
    refuse_reading_into,
    refuse_run_as_file,
    say,
    shown_field,
    stdin_chunks,
)
from charrnn.cli.options import (
    Text,
    checkpoint_dir_option,
    device_option,
    encoding_option,
    given,
    json_option,
    not_empty,
    quiet_option,
    unknown_option,
)
from charrnn.errors import ConfigError, CorpusError
from charrnn.use.memory import DISTANCE_BINS, GRADIENT_TARGETS

MEMORY_HINT = "to measure on a stream, pipe it in and use - to read standard input"
MAX_CHARS = 100_000  # read as one stream from a cold start: about 20 s for a medium model
FEW = 30  # closers in a bin below which its mean is noise, as a note says


@click.command(
    epilog="""\b
Examples:
  charrnn memory held-out.py -c lstm -c gru -c rnn     # three cells side by side
  tail -c 100000 notes.txt | charrnn memory - --pairs '()""'   # brackets and quotes in prose
  charrnn memory code.py --json | jq '.bins[] | [.back, .bits]'
  charrnn memory notes.txt -c lstm -c rnn --gradients   # why a vanilla RNN forgets
"""
)
@click.argument("file", metavar="FILE", callback=not_empty)
@click.option(
    "-c",
    "--checkpoint",
    "checkpoints",
    metavar="PATH|RUN",
    multiple=True,
    callback=not_empty,
    help="A run or checkpoint to measure, as `sample -c` takes it; give it again for each model "
    "to set beside the others (default: the most recently updated run trained to one evaluation "
    "at least).",
)
@click.option(
    "--pairs",
    type=Text(),
    default="()[]{}",
    help="The pairs whose closers are measured, each an opener and its closer; a character "
    "twice is a quote (\"\" or ''), which pairs within a line.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=MAX_CHARS,
    help="Read at most this many characters of FILE, as one stream from a cold start.",
)
@click.option(
    "--gradients",
    is_flag=True,
    help="Measure instead how much of the gradient of a character's loss reaches each character "
    f"back, up to {DISTANCE_BINS[-1]} (its typical size over {GRADIENT_TARGETS} positions, each "
    "read from a cold start that far back, over its size one character back): where it vanishes, "
    "training cannot teach the model to remember; any text, no pairs needed. With --pairs, the "
    "loss of their closers only, which depends on an opener far back.",
)
@unknown_option("Characters a model never saw: refuse, skip or replace them.")
@encoding_option()
@json_option(
    "One JSON object per checkpoint: checkpoint, cell, shape, characters, pairs (those measured: "
    "one the model never saw is left out), and bins: per "
    "distance `back` (e.g. 6-10), `closers`, `bits` (mean, on the closer) and `top1` (how often "
    "the closer was the likeliest next character), null where a bin is empty; with --gradients, "
    "positions (the characters traced), pairs (with --pairs: their closers were traced) and "
    "gradients: per distance `back`, `relative` and `absolute` (its typical size)."
)
@quiet_option("No summary or notes on stderr.")
@device_option("cpu")
@checkpoint_dir_option
def memory(
    file,
    checkpoints,
    pairs,
    max_chars,
    gradients,
    unknown,
    encoding,
    as_json,
    quiet,
    device,
    checkpoint_dir,
):
    """How far back each model remembers: the bits it spends on every closing bracket of FILE
    ('-': stdin), by how many characters back its opener is. For any cell the cost tends to rise
    with the distance (far from its opener, when to close is the harder part, which no memory
    settles): compare models side by side, on the same text, at the same distance, where one that
    remembers its openers pays less (docs/cells-and-memory.md). With --gradients, how much of the
    gradient of a character's loss reaches each character back: the signal that teaches a model
    to remember, which vanishes in a vanilla RNN. On a terminal a table; piped, tab-separated
    lines under a header line."""
    from charrnn.text.sources import input_file

    ctx = click.get_current_context()
    try:
        _pair_list(pairs)  # checked before anything is read
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="'--pairs'") from None
    refuse_run_as_file(file, checkpoint_dir)
    refuse_reading_into(None, [("the text to measure", file)])
    source = None if file == "-" else input_file(file, _label(file), MEMORY_HINT)
    chunks = stdin_chunks(1 << 16, quiet) if source is None else source.chunks()
    text = _head(chunks, _label(file), encoding, max_chars)
    several = len(checkpoints) > 1
    # every model read and checked before one is measured, and measured before a line is
    # written: an error is the command's, with no output and no reading wasted
    # --gradients traces every character's loss, or with --pairs the closers'
    pairs = None if gradients and not given(ctx, "pairs") else pairs
    ready = [
        _ready(checkpoint, checkpoint_dir, device, text, file, pairs, unknown, quiet, several)
        for checkpoint in checkpoints or [None]
    ]
    if gradients:
        cut = len(text) >= max_chars  # --max-chars may have cut a longer text
        _print_gradients([_traced(*r, file, quiet, cut) for r in ready], as_json)
        return
    measured = [_measured(*r, file, quiet, several) for r in ready]
    # bins of few closers, said once for the models that read the same (all, but under --unknown)
    for few in dict.fromkeys(tuple(b.label for b in m[3] if 0 < b.count < FEW) for m in measured):
        if few:
            say(f"Note: under {FEW} closers {', '.join(few)} back: their means are noise", quiet)
    if as_json:
        for path, model, read, found, listed in measured:
            c = model.config
            bins = [
                {"back": b.label, "closers": b.count, "bits": _number(b.bits)}
                | {"top1": _number(b.accuracy)}
                for b in found
            ]
            record = {"checkpoint": str(path), "cell": c.cell, "shape": _shape(c)}
            record |= {"characters": len(read), "pairs": "".join(listed), "bins": bins}
            click.echo(json_out(record))
        return
    header = ("checkpoint", "model", *(f"{b.label} back" for b in measured[0][3]))
    grouped = "," if sys.stdout.isatty() else ""  # piped: plain figures, as runs writes them
    empty = "-" if grouped else "nan (0)"  # a bin without closers, piped as runs writes it
    rows = [
        (
            str(path),
            f"{model.config.cell.upper()} {_shape(model.config)}",
            *(f"{b.bits:.2f} ({b.count:{grouped}})" if b.count else empty for b in found),
        )
        for path, model, _, found, _ in measured
    ]
    title = (
        "Bits spent on each closing character (how many closers), by how far back its opener "
        "is: lower, remembered better"
    )
    print_table(header, rows, lambda i, name: i > 1, title, whole=("checkpoint", "model"))


def _ready(checkpoint, checkpoint_dir, device, text, file, pairs, unknown, quiet, several):
    """One model to measure: (path, model, the text as it reads it, the pairs it can read)."""
    path, model = load_model(checkpoint, checkpoint_dir, device, quiet)
    where = shown_field(str(path)) * several
    named = where or "the model"
    read = known_text(text, model.vocab, unknown, _label(file), "read", quiet, where, named)
    if pairs is None:  # --gradients
        return path, model, read, []
    listed = _pair_list(pairs)
    # a pair the model cannot read is not measured (--unknown would take its characters out of
    # the text, and the text be blamed for having none)
    unseen = [p for p in listed if not set(p) <= model.vocab.index.keys()]
    name = shown_field(str(path))
    if len(unseen) == len(listed):
        raise CorpusError(f"{name} has never seen {' '.join(unseen)}: {_pairs_it_knows(model)}")
    if unseen:
        say(f"Note: {name} has never seen {' '.join(unseen)}: those pairs are left out.", quiet)
        listed = [p for p in listed if p not in unseen]
    return path, model, read, listed


def _measured(path, model, read, listed, file, quiet, several):
    """One model's (path, model, the text as it read it, the bins of all its closers, the pairs
    measured), with its summary on stderr."""
    from charrnn.use.memory import closer_loss_by_distance, merged

    where = shown_field(str(path)) * several
    bar = phase_bar(quiet, unit="char")  # one stream, a character at a time: minutes for 50M

    def progress(done: int, total: int) -> None:
        bar("reading", done, total)

    found = merged(closer_loss_by_distance(model, read, listed, limit=None, progress=progress))
    bar.close()
    closers = sum(b.count for b in found)
    if not closers:
        raise CorpusError(
            f"{_label(file)} has no closer of {''.join(listed)} after its opener in the "
            f"{count(len(read), 'character')} read{f' through {where}' * several}: give a text "
            "with them (code, for brackets), or other --pairs"
        )
    say(
        f"{shown_field(str(path))}: {count(closers, 'closer')} of {''.join(listed)} in "
        f"{count(len(read), 'character')} of {_label(file)}",
        quiet,
    )
    return path, model, read, found, listed


def _traced(path, model, read, listed, file, quiet, cut: bool):
    """One model's (path, model, the gradient's size by distance, the positions traced), its
    summary on stderr; `cut`: --max-chars may have cut the text short."""
    from charrnn.use.memory import gradient_by_distance, match_pairs

    window = DISTANCE_BINS[-1]
    if len(read) <= window:
        raise CorpusError(
            f"{_label(file)} holds {count(len(read), 'character')} to read: tracing a loss "
            f"{window} characters back needs {window + 1} or more; give {longer_text(cut)}"
        )
    among, what = None, "character"
    if listed:  # the closers' loss: what depends on an opener far back
        among, what = [c for _, c in match_pairs(read, listed)], "closer"
        if not any(c >= window for c in among):
            raise CorpusError(
                f"{_label(file)} has no closer of {''.join(listed)} after its opener {window} "
                f"or more characters into the {count(len(read), 'character')} read: give "
                f"{longer_text(cut)} with them, or other --pairs"
            )
    bar, traced = phase_bar(quiet, unit=what), [0]

    def progress(done: int, total: int) -> None:
        bar("tracing gradients", done, total)
        traced[0] = done

    found = gradient_by_distance(model, read, progress=progress, among=among)
    bar.close()
    of = f" of {''.join(listed)}" * bool(listed)
    say(
        f"{shown_field(str(path))}: the loss of {count(traced[0], what)}{of} in "
        f"{_label(file)} traced {window} characters back",
        quiet,
    )
    if traced[0] < FEW:
        say(f"Note: under {FEW} {what}s traced: the sizes are noise; give a longer text", quiet)
    return path, model, found, traced[0], "".join(listed)


def longer_text(cut: bool) -> str:
    """What to give where the text read is too short: more of it where --max-chars cut it."""
    return "a longer text, or a larger --max-chars" if cut else "a longer text"


def _print_gradients(traced, as_json: bool) -> None:
    """The gradient's size by distance, one row (or JSON object) a model."""
    if as_json:
        for path, model, found, positions, pairs in traced:
            c = model.config
            record = {"checkpoint": str(path), "cell": c.cell, "shape": _shape(c)}
            record["positions"] = positions  # the characters whose loss was traced back
            if pairs:  # only closers of these were traced
                record["pairs"] = pairs
            record["gradients"] = [
                {"back": b.label, "relative": _figure(b.relative), "absolute": _figure(b.absolute)}
                for b in found
            ]
            click.echo(json_out(record))
        return
    header = ("checkpoint", "model", *(f"{b.label} back" for b in traced[0][2]))
    rows = [
        (
            str(path),
            f"{model.config.cell.upper()} {_shape(model.config)}",
            *(f"{b.relative:.2g}" for b in found),
        )
        for path, model, found, _, _ in traced
    ]
    whose = "a closer's" if traced[0][4] else "a character's"
    title = (
        f"Gradient of {whose} loss that reaches each character back (its typical size, over "
        "its size 1 back): where it vanishes, training cannot teach the model to remember"
    )
    print_table(header, rows, lambda i, name: i > 1, title, whole=("checkpoint", "model"))


def _figure(x: float) -> float:
    """A figure of any size to 4 significant digits (a gradient 300 back may be 1e-40)."""
    return float(f"{x:.4g}")


def _head(chunks, label: str, encoding: str, n: int) -> str:
    """The first `n` characters of the text in `chunks` (bytes), read no further than they are."""
    from charrnn.text.decode import decode_chunks

    pieces, have = [], 0
    for piece in decode_chunks(chunks, label, encoding):
        pieces.append(piece)
        have += len(piece)
        if have >= n:
            break
    return "".join(pieces)[:n]


def _shape(config) -> str:
    return f"{config.num_layers}x{config.hidden_size}"


# Pairs to offer a model that knows none of those asked for: brackets and quotes whose closer is
# always a closer (a single quote, ' or ’, is an apostrophe in prose: docs/commands.md), in the
# Latin, Cyrillic and CJK scripts' forms
OFFERED = ("()", "[]", "{}", "<>", '""', "“”", "«»", "「」", "『』", "《》", "【】", "（）")


def _pairs_it_knows(model) -> str:
    """What to do where a model knows none of --pairs: the offered pairs it knows, or why none."""
    import shlex

    known = "".join(p for p in OFFERED if set(p) <= model.vocab.index.keys())
    if known:
        return f"a model is measured on characters it can read: give --pairs {shlex.quote(known)}"
    return (
        "it knows no brackets nor quotes that pair (its text had none): memory is measured on a "
        "model of a text with pairs, code for one (--pairs names other pairs it knows)"
    )


def _pair_list(pairs: str) -> list[str]:
    """'()[]{}' -> ['()', '[]', '{}']: two characters a pair, checked as match_pairs checks
    them (a ConfigError)."""
    from charrnn.use.memory import match_pairs

    if len(pairs) % 2:
        raise ConfigError(
            f"{pairs!r} has an odd number of characters: give each pair as opener and closer"
        )
    listed = [pairs[i : i + 2] for i in range(0, len(pairs), 2)]
    if not listed:
        raise ConfigError("is empty: give each pair as opener and closer, e.g. '()[]{}'")
    if "\n" in pairs:
        raise ConfigError("a line break cannot open or close a pair")
    seen = set()
    for pair in listed:  # a quote's one character twice is one pair, not two
        if twice := [c for c in pair if c in seen]:  # the first, as typed
            raise ConfigError(f"{pairs!r} has {twice[0]!r} in two pairs: give each once")
        seen |= set(pair)
    match_pairs("", listed)  # the library's own checks, which these have covered
    return listed


def _number(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def _label(file: str) -> str:
    return "standard input" if file == "-" else shown_field(file)
