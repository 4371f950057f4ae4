"""`charrnn train`: read a corpus, build or restore a run, train it with progress on stderr."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import sys

import click
from click.core import ParameterSource

from charrnn.cli.common import (
    Duration,
    Encoding,
    Number,
    cache_dir,
    checkpoint_dir_option,
    count,
    device_option,
    download_bar,
    exit_status,
    not_empty,
    phase_bar,
    read_stdin,
    resolve_device,
    say,
    stop_signals,
    user_errors,
)
from charrnn.model.config import CELLS
from charrnn.model.presets import FINE_TUNE, MEDIUM_FROM_CHARS, PRESETS

# Options that shape the model or the data: fixed for the life of a run.
FIXED_ON_RESUME = (
    "name",
    "force",
    "size",
    "cell",
    "layers",
    "hidden",
    "embedding",
    "dropout",
    "batch_size",
    "seq_len",
    "lr",
    "weight_decay",
    "val_frac",
    "seed",
    "encoding",
    "init_from",
)
# Options that shape the model: with --init-from, the checkpoint's shape and cell are kept.
SHAPE_OPTIONS = ("size", "cell", "layers", "hidden", "embedding")


@click.command(
    epilog="""\b
Examples:
  charrnn train corpus.txt                      # 10 minutes on the default model
  charrnn train corpus.txt --time 1h30m --size large
  charrnn train notes/ --name notes --steps 5000 # every text file in a folder
  cat a.txt b.txt | charrnn train - --name mixed
  charrnn train tinyshakespeare                 # a catalog corpus (downloaded once)
  charrnn train --resume corpus --time 20m      # continue a run, up to 20 minutes in all
  charrnn train poems.txt --init-from shakespeare  # fine-tune a trained model on a small text
  charrnn sample --checkpoint "$(charrnn train corpus.txt -q --steps 500)"
  torchrun --standalone --nproc_per_node=4 -m charrnn train corpus.txt  # 4 processes
"""
)
@click.argument("corpus", nargs=-1, metavar="[CORPUS]...", callback=not_empty)
@click.option(
    "--name",
    callback=not_empty,
    help="Run name, a plain folder name: letters, digits and _ . - (not at either end . or -, "
    "not ending in .pt); another is refused with the name to use instead (default: the corpus "
    "file's name without extension, made plain).",
)
@click.option(
    "--resume",
    metavar="RUN",
    callback=not_empty,
    help="Continue a run where it stopped: a run name, or a path (a value with a / or ending in "
    ".pt) to a run folder (its last.pt) or to a run's last.pt or best.pt (after a damaged "
    "last.pt: RUN/best.pt).",
)
@click.option("--force", is_flag=True, help="Replace an existing run of the same name.")
@click.option(
    "--init-from",
    metavar="RUN|FILE.pt",
    callback=not_empty,
    help="Start a new run from a trained model's weights (its best.pt), to fine-tune it on a "
    "small text: the model's size and cell are kept, and characters it never saw are added to "
    "its vocabulary. Defaults for a small text, each overridable: "
    f"--lr {FINE_TUNE.lr_scale:g} x the base run's (its weights are good already; a full rate "
    f"on a few kilobytes overwrites them), --time {FINE_TUNE.max_time:g}s, evaluations twice "
    f"an epoch and --patience {FINE_TUNE.patience} (a small text is soon learned by heart, and "
    "then validation only worsens), and a smaller --batch-size if the text needs one.",
)
@click.option(
    "--size",
    type=click.Choice(["auto", *PRESETS]),
    default="auto",
    show_default=True,
    help="Model preset: tiny 1x128, small 1x512, medium 1x768, large 3x512; auto times a few "
    f"steps of medium here and picks it if it can train {MEDIUM_FROM_CHARS / 1e6:g}M+ characters "
    "in --time, else small "
    "(without dropout for 20M+ characters).",
)
@click.option(
    "--cell",
    type=click.Choice(CELLS, case_sensitive=False),
    default="lstm",
    show_default=True,
    help="The recurrent cell: lstm (cell state + forget/input/output gates), gru (reset/update "
    "gates), or rnn (vanilla tanh RNN: short memory). --size gives each about the same number "
    "of parameters: a GRU or RNN is made wider than the LSTM.",
)
@click.option("--layers", type=click.IntRange(1, 16), help="Layers of cells (overrides --size).")
@click.option("--hidden", type=click.IntRange(1, 8192), help="Cell width (overrides --size).")
@click.option("--embedding", type=click.IntRange(1, 4096), help="Embedding width.")
@click.option(
    "--dropout",
    type=Number(0, 1, max_open=True),
    help="Dropout rate.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    help="Streams trained side by side (B)  [default: the preset's, 32].",
)
@click.option(
    "--seq-len",
    type=click.IntRange(1),
    help="Characters per stream per step: the backprop window (T)  [default: the preset's].",
)
@click.option(
    "--lr",
    type=Number(0, min_open=True),
    help="Peak learning rate (warm-up, then cosine decay to the budget's end)  "
    "[default: the preset's].",
)
@click.option(
    "--weight-decay",
    type=Number(0, 1),
    help="AdamW's weight decay of the weight matrices (not the biases): a regulariser that "
    "costs no time  [default: the preset's, "
    + ", ".join(f"{p.weight_decay:g} {name}" for name, p in PRESETS.items())
    + f"; {FINE_TUNE.weight_decay:g} with --init-from].",
)
@click.option("--steps", type=click.IntRange(1), help="Stop after this many steps in all.")
@click.option("--epochs", type=Number(0, min_open=True), help="Stop after N epochs.")
@click.option(
    "--time",
    "time_budget",
    type=Duration(),
    help="Stop after a wall-clock budget: "
    "90s, 10m, 1h30m (default 10m when no other limit is given).",
)
@click.option(
    "--eval-every",
    type=click.IntRange(1),
    help="Steps between evaluations and checkpoints  [default: about every million "
    "characters (1,024 steps at 32x32), and at least once an epoch of a small text].",
)
@click.option(
    "--patience",
    type=click.IntRange(1),
    metavar="N",
    help="Stop early after N evaluations in a row without a better validation loss (best.pt "
    f"keeps the best)  [default: none; {FINE_TUNE.patience} with --init-from].",
)
@click.option(
    "--val-frac",
    type=Number(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of the text, at its end, to validate on.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=1337,
    show_default=True,
    help="Seed of the run (0 to 2^63-1, what torch takes).",
)
@click.option(
    "--sample-every",
    type=click.IntRange(1),
    metavar="N",
    help="Every N steps, write a short sample to stderr, to watch the text take shape.",
)
@click.option(
    "--sample-length",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Characters per --sample-every sample.",
)
@click.option(
    "--sample-temp",
    type=Number(0),
    default=0.8,
    show_default=True,
    help="Temperature of the --sample-every samples.",
)
@click.option("--sample-prime", default="", help="Text the --sample-every samples continue.")
@device_option("auto")
@click.option(
    "--encoding", type=Encoding(), default="utf-8", show_default=True, help="The corpus's encoding."
)
@checkpoint_dir_option
@click.option("-q", "--quiet", is_flag=True, help="No progress or messages on stderr.")
@click.pass_context
@user_errors
def train(ctx, corpus, resume, init_from, checkpoint_dir, quiet, **opts):
    """Train a stacked LSTM (or a GRU or vanilla RNN: --cell) on CORPUS: files, a folder of text
    files, '-' for stdin, or a corpus name from `charrnn corpus list`.

    Each run lives in CHECKPOINT_DIR/NAME/ with best.pt (lowest validation loss), last.pt and
    metrics.jsonl. Progress goes to stderr; stdout gets the path of best.pt. Ctrl-C stops
    cleanly after saving last.pt; `--resume NAME` continues exactly where it stopped.
    """
    if not corpus and not resume:
        raise click.UsageError("give a CORPUS to train on (or --resume RUN)")
    if resume and init_from:
        raise click.UsageError(
            "--init-from starts a new run and --resume continues one: give one of them"
        )
    if resume:
        fixed = [f"--{n.replace('_', '-')}" for n in FIXED_ON_RESUME if _given(ctx, n)]
        if fixed:
            raise click.UsageError(f"{', '.join(fixed)} cannot change when resuming a run")
    if init_from and (shape := [f"--{n}" for n in SHAPE_OPTIONS if _given(ctx, n)]):
        raise click.UsageError(
            f"{', '.join(shape)} cannot be given with --init-from: the model keeps the size and "
            "cell of the checkpoint it starts from (--dropout may change)"
        )
    from charrnn import runs
    from charrnn.train import distributed

    if opts["name"] is not None and (problem := runs.name_problem(opts["name"], checkpoint_dir)):
        raise click.BadParameter(problem, ctx=ctx, param_hint="'--name'")
    d = distributed.from_env()  # one process, or one rank of a torchrun job
    device = resolve_device(opts["device"], d.local_rank)
    distributed.start(d, device)
    quiet = quiet or not d.is_main  # only rank 0 prints
    code = None
    try:
        if resume:
            run, start = runs.find_resume(resume, checkpoint_dir)
            with _session(run, d):  # locked before last.pt is read: no other trainer can move it
                trainer = _resumed_trainer(run, start, corpus, device, opts, quiet, d)
                code = _run(trainer, quiet, opts)
        else:
            trainer = _new_trainer(corpus, init_from, checkpoint_dir, device, opts, quiet, d)
            with _session(trainer.run_dir, d, new=True, clear=opts["force"]):
                code = _run(trainer, quiet, opts)
    finally:
        distributed.stop(d, finished=code is not None)
    if d.active:
        # gloo's threads can still abort the process while the interpreter shuts down
        # ("terminate called without an active exception"): all is saved, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _session(run, d, **kw):
    """Rank 0 owns the run folder (its lock, its files); other ranks only read it."""
    return run.session(**kw) if d.is_main else contextlib.nullcontext()


def _given(ctx, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _load_corpus(specs, encoding, quiet, d):
    """The corpus as memory-mapped ids, encoded once and then read from the cache (under torchrun
    the first rank of each machine encodes; the others wait, then find it cached)."""
    from charrnn.text.corpus import resolve
    from charrnn.text.encoded import encode_corpus

    # Read as resolve reads a pipe: checked as it comes, so binary stops it at the first chunk.
    stdin = read_stdin("standard input", encoding, quiet, text=False)[0] if "-" in specs else None
    if d.local_rank != 0:
        d.barrier()
    sources = resolve(list(specs), cache_dir(), encoding, stdin, download_bar(quiet))
    if sources.skipped:
        say(_skipped_note(sources), quiet)
    corpus = encode_corpus(sources, cache_dir(), phase_bar(quiet))
    if d.local_rank == 0:
        d.barrier()
    if corpus.rebuilt:
        say(
            f"Warning: the cached encoding of this corpus was damaged ({corpus.rebuilt}); "
            "encoded it again.",
            quiet,
        )
    return corpus


def _skipped_note(sources) -> str:
    """One line for the files of folders left out as not text, as grep and git skip them."""
    n, names = len(sources.skipped), ", ".join(sources.skipped[:5])
    more = f" and {n - 5:,} more" if n > 5 else ""
    return (
        f"Note: skipped {n:,} file{'s' * (n > 1)} that {'are' if n > 1 else 'is'} not "
        f"{sources.encoding} text (binary, or another encoding): {names}{more}"
    )


# Command-line option -> the ModelConfig / TrainConfig field it sets (None: not given).
MODEL_OPTIONS = {
    "layers": "num_layers",
    "hidden": "hidden_size",
    "embedding": "embedding_dim",
    "dropout": "dropout",
}
TRAIN_OPTIONS = {
    "batch_size": "batch_size",
    "seq_len": "seq_len",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "steps": "max_steps",
    "epochs": "max_epochs",
    "time_budget": "max_time",
    "eval_every": "eval_every",
    "val_frac": "val_frac",
    "seed": "seed",
    "patience": "patience",
}


def _given_fields(opts, names: dict) -> dict:
    return {field: opts[option] for option, field in names.items() if opts[option] is not None}


def _new_trainer(specs, init_from, checkpoint_dir, device, opts, quiet, d):
    """Checks everything (the base checkpoint first) before the run folder is made."""
    from charrnn import runs
    from charrnn.train.start import start_run

    base = runs.resolve_checkpoint(init_from, checkpoint_dir) if init_from else None
    corpus = _load_corpus(specs, opts["encoding"], quiet, d)
    name = opts["name"] or runs.safe_name(corpus.name, checkpoint_dir)  # a --name is checked
    run = runs.plan_run(checkpoint_dir, name, opts["force"], init_from=base)
    train, model = _given_fields(opts, TRAIN_OPTIONS), _given_fields(opts, MODEL_OPTIONS)
    trainer = start_run(
        corpus,
        run,
        replace=opts["force"],
        size=opts["size"],
        cell=opts["cell"] if base is None else None,
        model=model,
        train=train,
        init_from=base,
        device=device,
        dist=d,
    )
    _check_prime(trainer, opts)
    choice, o = trainer.size_choice, trainer.origin
    if o is not None:
        new = o["new_chars"]
        grown = f"{count(len(new), 'new character')}: {new!r}" if new else "none new"
        verb = "Fine-tuning"
        chosen = f" (from {o['run']!r} at step {o['step']:,}; {grown})"
        chosen += "".join(f" ({note})" for note in trainer.notes)
    else:
        verb = "Training"
        chosen = f" (--size auto: {choice.name}: {choice.reason})" if opts["size"] == "auto" else ""
    say(_describe(trainer, verb, len(corpus), device) + chosen, quiet)
    return trainer


def _resumed_trainer(run, start, specs, device, opts, quiet, d):
    """`start`: the checkpoint file given to --resume (None: the run's own choice)."""
    from charrnn.train.start import RESUMABLE, resume_run

    def read(specs, encoding):
        return _load_corpus(specs, encoding, quiet, d)

    train = {k: v for k, v in _given_fields(opts, TRAIN_OPTIONS).items() if k in RESUMABLE}
    trainer = resume_run(
        run,
        read,
        corpus_specs=specs or None,
        train=train,
        device=device,
        dist=d,
        checkpoint_file=start,
    )
    _check_prime(trainer, opts)
    n_chars = trainer.corpus["chars"]
    o = trainer.origin
    fine_tuned = f" (fine-tuned from {o['run']!r} at step {o['step']:,})" if o else ""
    where = f" from {start.name}" if trainer.save_last_first and start is not None else ""
    verb = f"Resuming{where} at step {trainer.pos.step:,}:"
    say(_describe(trainer, verb, n_chars, device) + fine_tuned, quiet)
    return trainer


def _check_prime(trainer, opts) -> None:
    """--sample-prime must be text the model can read: checked before anything is trained."""
    from charrnn.errors import VocabError

    unknown = sorted({c for c in opts["sample_prime"] if c not in trainer.vocab})
    if opts["sample_every"] and unknown:
        raise VocabError(
            f"--sample-prime has characters the corpus lacks: {''.join(unknown)!r}; leave them out"
        )


def _describe(trainer, verb, n_chars, device) -> str:
    m, c = trainer.model.config, trainer.config
    params = trainer.model.num_params()
    limits = [
        f"{c.max_steps:,} step{'s' * (c.max_steps != 1)}" if c.max_steps else "",
        f"{c.max_epochs:g} epoch{'s' * (c.max_epochs != 1)}" if c.max_epochs else "",
        _fmt_time(c.max_time) if c.max_time else "",
    ]
    counts = trainer.corpus.get("char_counts") or []
    distinct = sum(1 for n in counts if n) or len(trainer.vocab)
    # a fine-tuning run's vocabulary is the base model's and the text's together
    vocab = f" (vocabulary {len(trainer.vocab)})" if distinct != len(trainer.vocab) else ""
    return (
        f"{verb} {trainer.run_dir.name!r}: {n_chars:,} characters, {distinct} distinct{vocab}; "
        f"{m.num_layers}x{m.hidden_size} {m.cell.upper()}, {params / 1e6:.2f}M parameters; batch "
        f"{c.batch_size}x{c.seq_len}; budget {', '.join(x for x in limits if x)}; {device}"
        + (f" x {trainer.dist.world} processes" if trainer.dist.active else "")
    )


def _fmt_time(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _run(trainer, quiet: bool, opts: dict) -> int:
    """Drive the trainer, draw progress (and --sample-every samples) on stderr; returns the exit
    status."""
    from tqdm import tqdm

    from charrnn.train.trainer import DoneEvent, EvalEvent, RollbackEvent, StepEvent
    from charrnn.use.sampler import sample_text

    every, prime = opts["sample_every"], opts["sample_prime"]
    evals = 0  # evaluation lines written

    bar = tqdm(
        total=1000,
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        bar_format="{percentage:3.0f}%|{bar:24}| {elapsed}<{remaining}{postfix}",
        initial=int(1000 * trainer.progress()),
    )
    speed, done = None, None
    with stop_signals(trainer.request_stop) as signals, _hard_stop(trainer):
        for event in trainer.run():
            if isinstance(event, StepEvent):
                speed = (
                    event.chars_per_s if speed is None else 0.9 * speed + 0.1 * event.chars_per_s
                )
                bar.update(int(1000 * event.progress) - bar.n)
                bar.set_postfix_str(
                    f"step {event.step:,} loss {event.loss:.3f} {speed:,.0f} char/s", refresh=False
                )
                if every and event.step % every == 0 and not quiet:
                    text = sample_text(
                        trainer.trained,
                        prime,
                        opts["sample_length"],
                        opts["sample_temp"],
                        seed=event.step,
                    )
                    head = f"sample at step {event.step:,} (temperature {opts['sample_temp']:g}):"
                    bar.write(f"{head}\n{prime}{text}\n", file=sys.stderr)
            elif isinstance(event, EvalEvent) and not quiet:
                bar.write(_eval_line(event, first=not evals), file=sys.stderr)
                evals += 1
            elif isinstance(event, RollbackEvent) and not quiet:
                bar.write(_rollback_line(event), file=sys.stderr)
            elif isinstance(event, DoneEvent):
                done = event
    bar.close()
    run = trainer.run_dir
    if done.reason == "stopped":
        say(
            f"Stopped at step {done.step:,}; saved {run.last}. "
            f"Resume with: charrnn train --resume {shlex.quote(run.ref)}",
            quiet,
        )
        return 128 + signals[0] if signals else 130
    best = f"{done.best_val:.4f} nats = {done.best_val / math.log(2):.3f} bits per character"
    why = f"{done.reason} budget spent"
    if done.reason == "patience":
        why = f"stopped early: no better validation loss in {trainer.config.patience} evaluations"
    say(
        f"Done ({why}) after {count(done.step, 'step')}, "
        f"{_fmt_time(trainer.pos.elapsed)}: best validation loss {best}.",
        quiet,
    )
    if trainer.dist.is_main:
        click.echo(str(run.best if run.best.is_file() else run.last))
    return 0


@contextlib.contextmanager
def _hard_stop(trainer):
    """A second stop signal stops at once: say so in one line, not with a traceback."""
    try:
        yield
    except KeyboardInterrupt as e:
        say(
            f"Interrupted twice: stopped without saving; {trainer.run_dir.last} holds the "
            "previous checkpoint, if any"
        )
        sys.exit(exit_status(e))


def _rollback_line(event) -> str:
    return (
        f"Warning: {event.reason}; went back to step {event.to_step:,} with the learning rate "
        f"at {event.lr_scale:g} of its schedule"
    )


def _eval_line(event, first: bool) -> str:
    r = event.record
    mark = "  * best" if event.improved else ""
    train = "   -  " if r["train_loss"] is None else f"{r['train_loss']:.4f}"  # e.g. at step 0
    cold = _cold_start_text(r.get("cold_start"), first)
    return (
        f"step {r['step']:>7,} | epoch {r['epoch']:6.2f} | {_fmt_time(r['elapsed']):>8} | "
        f"train {train} | val {r['val_loss']:.4f} nats = {r['val_bpc']:.3f} bpc"
        f"{cold}{_runaway_streams_text(r)}{mark}"
    )


def _runaway_streams_text(r: dict) -> str:
    n = r.get("val_runaway_streams")
    if not n:
        return ""
    return f" | {n} validation stream{'s' * (n > 1)} ran away (worst {r['val_worst']:.2f} nats)"


def _cold_start_text(c: dict | None, first: bool) -> str:
    """Runaway cold starts and the cold-start gap, the worse of a zero state and the lead-in
    (that there is none said on the `first` evaluation line only)."""
    if not c:
        return " | cold-start check skipped: the validation split is too short" * first
    runaways = max(c["runaways"], c["runaways_lead_in"])
    gap = max(c["gap"], c["gap_lead_in"])
    window = c.get("skip", 100), c.get("skip", 100) + c.get("span", 200)
    chars = "" if window == (100, 300) else f" (characters {window[0]}-{window[1]})"
    return f" | cold {runaways}/{c['starts']} runaway, gap {gap:+.3f}{chars}"
