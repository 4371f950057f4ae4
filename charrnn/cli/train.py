"""`charrnn train`: map the options to one library call (train.open.open_run) and draw the run's
events as progress on stderr."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import sys
import time
from pathlib import Path

import click

from charrnn.cli.common import (
    cache_dir,
    count,
    download_bar,
    fixed_bar_size,
    phase_bar,
    read_stdin,
    refuse_reading_into,
    say,
    shown_message,
)
from charrnn.cli.options import (
    Duration,
    Number,
    Prime,
    Whole,
    checkpoint_dir_option,
    device_option,
    encoding_option,
    given,
    not_empty,
    quiet_option,
)
from charrnn.cli.signals import exit_status, stop_signals
from charrnn.defaults import CELL, GRAD_CLIP, SAMPLE_LENGTH, SEED, SIZE, TEMPERATURE, VAL_FRAC
from charrnn.devices import PRECISIONS, resolve_device
from charrnn.errors import RunError
from charrnn.model.config import CELLS, LARGEST
from charrnn.model.presets import (
    DENSE_EVALS_FROM,
    EARLY_STOP_PASSES,
    FINE_TUNE,
    INPUT_DROPOUT,
    INPUT_DROPOUT_PASSES,
    MAX_PASSES,
    MEDIUM_FROM_CHARS,
    PATIENCE,
    PRESETS,
    SMALL_FLOAT32_FROM_CHARS,
    SMALL_FROM_CHARS,
)

# Command-line option -> the ModelConfig / TrainConfig field it sets (None: not given).
MODEL_OPTIONS = {
    "layers": "num_layers",
    "hidden": "hidden_size",
    "embedding": "embedding_dim",
    "dropout": "dropout",
    "input_dropout": "input_dropout",
}
TRAIN_OPTIONS = {
    "batch_size": "batch_size",
    "seq_len": "seq_len",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "grad_clip": "grad_clip",
    "steps": "max_steps",
    "epochs": "max_epochs",
    "time_budget": "max_time",
    "eval_every": "eval_every",
    "keep_every": "keep_every",
    "val_frac": "val_frac",
    "seed": "seed",
    "patience": "patience",
    "precision": "precision",
}
# Every option that describes the run, in the order an error lists them: a resumed run takes
# only those that set a field of start.RESUMABLE (its budget and evaluations), the one list.
RUN_OPTIONS = ("name", "force", "size", "cell", *MODEL_OPTIONS, *TRAIN_OPTIONS, "encoding")
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
    default=SIZE,
    help="Model preset: tiny 1x128, small 1x512, medium 1x768, large 3x512; auto times a few "
    f"steps of medium here and picks it if it can train {MEDIUM_FROM_CHARS / 1e6:g}M+ characters "
    "in --time, else small (an LSTM in float32: 1x384 over 16 streams, unless --hidden, "
    "--layers or --batch-size is given), or tiny where medium would train under "
    f"{SMALL_FROM_CHARS / 1e6:g}M ({SMALL_FLOAT32_FROM_CHARS / 1e6:g}M in float32; unless "
    "they are given); auto also sets the dropout (not tiny's) by how many times the budget "
    "reads the text: "
    "none up to 3 times, rising to the preset's at 4, 0.5 at 10 and "
    f"0.7 at 20, and the input dropout, from none at 3 times to {INPUT_DROPOUT:g} from "
    f"{INPUT_DROPOUT_PASSES:g}; a --time "
    f"budget that reads the text {EARLY_STOP_PASSES:g} times or more gets "
    f"--patience {PATIENCE} with an evaluation a pass (every other pass before the "
    f"{DENSE_EVALS_FROM:.0f}th), and --epochs {MAX_PASSES:g} where it would read it more often: "
    "a run stops once more passes no longer help.",
)
@click.option(
    "--cell",
    type=click.Choice(CELLS, case_sensitive=False),
    default=CELL,
    help="The recurrent cell: lstm (cell state + forget/input/output gates), gru (reset/update "
    "gates), or rnn (vanilla tanh RNN: short memory). --size gives each about the same number "
    "of parameters: a GRU or RNN is made wider than the LSTM.",
)
@click.option(
    "--layers", type=Whole(1, LARGEST["num_layers"]), help="Layers of cells (overrides --size)."
)
@click.option(
    "--hidden", type=Whole(1, LARGEST["hidden_size"]), help="Cell width (overrides --size)."
)
@click.option("--embedding", type=Whole(1, LARGEST["embedding_dim"]), help="Embedding width.")
@click.option(
    "--dropout",
    type=Number(0, 1, max_open=True),
    help="Dropout rate, between the layers and before the head  [default: with --size auto, by "
    "the passes over the text; with a named --size, the preset's; with --init-from, the base's].",
)
@click.option(
    "--input-dropout",
    type=Number(0, 1, max_open=True),
    help="Dropout rate of the characters' embeddings (a share of each one's values zeroed), before "
    "the first layer  [default: with --size auto, for an LSTM by the passes over the text, else 0; "
    "with a named --size, 0; with --init-from, the base's].",
)
@click.option(
    "--batch-size",
    type=Whole(1),
    help="Streams trained side by side (B)  [default: the preset's, 32; 16 in auto's float32 "
    "small].",
)
@click.option(
    "--seq-len",
    type=Whole(1),
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
@click.option(
    "--grad-clip",
    type=Number(0, min_open=True),
    help="The gradient's norm is scaled down to this at most before each step: a long window's "
    "exploding gradients kept in bounds  [default: "
    f"{GRAD_CLIP:g}].",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="The training step's arithmetic: auto is bfloat16 mixed precision where this CPU has "
    "it natively (AVX-512 BF16 or AMX: ~1.4x the steps), else float32; the run's evaluations "
    "read in it too; the weights and samples are float32 either way  [default: auto].",
)
@click.option("--steps", type=Whole(1), help="Stop after this many steps in all.")
@click.option("--epochs", type=Number(0, min_open=True), help="Stop after N epochs.")
@click.option(
    "--time",
    "time_budget",
    type=Duration(),
    help="The wall-clock time the whole command may take, start-up and the final evaluation "
    "included, time stopped by Ctrl-Z left out (with --resume, the run's total over its "
    "commands): 90s, 10m, 1h30m (default 10m when no other limit is given).",
)
@click.option(
    "--eval-every",
    type=Whole(1),
    help="Steps between evaluations and checkpoints  [default: about every million "
    "characters (1,024 steps at 32x32), and at least once an epoch of a small text; under "
    "--time, fewer where they would cost over 3% of it; with auto's early stop, once a pass, "
    f"every other pass before the {DENSE_EVALS_FROM:.0f}th].",
)
@click.option(
    "--keep-every",
    type=Whole(1),
    metavar="N",
    help="Keep the checkpoint of the first evaluation after each N steps as step-N.pt in the "
    "run's folder (best.pt and last.pt are written over at each): `charrnn sample -c "
    "checkpoints/NAME/step-5000.pt`  [default: keep none].",
)
@click.option(
    "--patience",
    type=Whole(1),
    metavar="N",
    help="Stop early after N evaluations in a row without a better validation loss (best.pt "
    f"keeps the best)  [default: none; {FINE_TUNE.patience} with --init-from; {PATIENCE} with "
    f"--size auto where --time reads the text {EARLY_STOP_PASSES:g} times or more].",
)
@click.option(
    "--val-frac",
    type=Number(0, 1, min_open=True, max_open=True),
    default=VAL_FRAC,
    help="Share of the text, at its end, to validate on.",
)
@click.option(
    "--seed",
    type=Whole(0, 2**63 - 1),
    default=SEED,
    help="Seed of the run (0 to 2^63-1, what torch takes).",
)
@click.option(
    "--sample-every",
    type=Whole(1),
    metavar="N",
    help="Every N steps, write a short sample to stderr, to watch the text take shape.",
)
@click.option(
    "--sample-length",
    type=Whole(1),
    default=SAMPLE_LENGTH,
    help="Characters per --sample-every sample.",
)
@click.option(
    "--sample-temp",
    type=Number(0),
    default=TEMPERATURE,
    help="Temperature of the --sample-every samples.",
)
@click.option(
    "--sample-prime",
    type=Prime(),
    default="",
    show_default=False,
    help="Text the --sample-every samples continue.",
)
@device_option("auto")
@encoding_option("The corpus's encoding.")
@checkpoint_dir_option
@quiet_option("No progress or messages on stderr.")
@click.pass_context
def train(ctx, corpus, resume, init_from, checkpoint_dir, quiet, **opts):
    """Train a stacked LSTM (or a GRU or vanilla RNN: --cell) on CORPUS: files, a folder of text
    files, '-' for stdin, or a corpus name from `charrnn corpus list`.

    Each run lives in CHECKPOINT_DIR/NAME/ with best.pt (lowest validation loss), last.pt and
    metrics.jsonl. Progress goes to stderr; stdout gets the path of best.pt. Ctrl-C stops
    cleanly after saving last.pt; `--resume NAME` continues exactly where it stopped.
    """
    started = _process_started()  # the time budget counts from here: start-up is inside it
    from charrnn.cli.pauses import PauseClock
    from charrnn.train import distributed

    request = _request(ctx, corpus, resume, init_from, checkpoint_dir, opts)
    request.started = started
    d = distributed.from_env(os.environ)  # one process, or one rank of a torchrun job
    if d.is_main and not resume:  # before a folder is made for it
        _refuse_an_unwritable_path(request.checkpoint_dir, "--checkpoint-dir")
    device = resolve_device(opts["device"], d.local_rank)
    distributed.start(d, device)
    quiet = quiet or not d.is_main  # only rank 0 prints
    code = None
    try:
        code = _train(request, device, d, quiet, opts, ctx.find_object(PauseClock))
    except RuntimeError as e:
        if not (d.active and distributed.lost_peer(e)):
            raise
        # a consequence, not a cause: the rank that stopped first has printed why
        raise RunError(
            f"rank {d.rank} of {d.world}: another process of this torchrun job stopped first, so "
            "this one cannot go on; that process's own Error line says why, unless it was killed "
            "(out of memory, say), which leaves none"
        ) from None
    finally:
        distributed.stop(d, finished=code is not None)
    if d.active:
        # gloo's threads can still abort the process while the interpreter shuts down
        # ("terminate called without an active exception"): all is saved, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _process_started() -> float:
    """When this process began, on time.perf_counter's clock (from /proc on Linux; elsewhere,
    now: Python's own start-up is then outside the budget)."""
    try:
        # its start, in clock ticks since boot (CLOCK_BOOTTIME's count)
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        for _ in range(3):
            # The two clocks read side by side, again where a stop (Ctrl-Z) fell between them:
            # its seconds would be in the process's age and not in `now`, and counted twice.
            since_boot, now = time.clock_gettime(time.CLOCK_BOOTTIME), time.perf_counter()
            if time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot < 0.01:
                break
        age = since_boot - ticks / os.sysconf("SC_CLK_TCK")
        return now - min(max(0.0, age), 60.0)
    except (OSError, ValueError, IndexError, AttributeError):  # no /proc, no CLOCK_BOOTTIME
        return time.perf_counter()


def _request(ctx, corpus, resume, init_from, checkpoint_dir, opts):
    """The options as open_run's RunRequest; a usage error for options that contradict."""
    from charrnn import runs
    from charrnn.train.open import RunRequest
    from charrnn.train.start import RESUMABLE

    if not corpus and not resume:
        raise click.UsageError("give a CORPUS to train on (or --resume RUN)")
    if corpus.count("-") > 1:  # the text of a pipe is read once: a second '-' would repeat it
        raise click.UsageError("'-' (standard input) is given twice: give it once")
    stdin = [c for c in corpus if c == "-" or _is_stdin(c)]  # /dev/stdin, /dev/fd/0, `< file`
    if len(stdin) > 1:
        first = "'-'" if stdin[0] == "-" else stdin[0]
        raise click.UsageError(f"{stdin[1]} is standard input, as {first} is: give it once")
    # `train notes.txt >> notes.txt`, `train notes/ > notes/out.txt`
    refuse_reading_into(None, [("the corpus", c) for c in corpus], folders=True)
    watch = ("sample_length", "sample_temp", "sample_prime")
    if not opts["sample_every"] and (idle := [_flag(n) for n in watch if given(ctx, n)]):
        one = len(idle) == 1
        raise click.UsageError(
            f"{', '.join(idle)} {'shapes' if one else 'shape'} the samples of --sample-every N: "
            f"give it too, or leave {'it' if one else 'them'} out"
        )
    if resume and init_from:
        raise click.UsageError(
            "--init-from starts a new run and --resume continues one: give one of them"
        )
    if resume and given(ctx, "force"):
        raise click.UsageError(
            "--force starts a run over and --resume continues one: give one of them"
        )
    fixed = [n for n in (*RUN_OPTIONS, "init_from") if TRAIN_OPTIONS.get(n) not in RESUMABLE]
    if resume and (kept := [_flag(n) for n in fixed if given(ctx, n)]):
        raise click.UsageError(
            f"{', '.join(kept)} {'is' if len(kept) == 1 else 'are'} not taken with --resume (the "
            f"run keeps its own): leave {'it' if len(kept) == 1 else 'them'} out"
        )
    if init_from and (shape := [f"--{n}" for n in SHAPE_OPTIONS if given(ctx, n)]):
        raise click.UsageError(
            f"{', '.join(shape)} cannot be given with --init-from: the model keeps the size and "
            "cell of the checkpoint it starts from (--dropout and --input-dropout may change)"
        )
    if opts["name"] is not None and (problem := runs.name_problem(opts["name"], checkpoint_dir)):
        raise click.BadParameter(problem, ctx=ctx, param_hint="'--name'")
    train = _given_fields(opts, TRAIN_OPTIONS)
    if resume:  # the others were refused if given: what is left are defaults, the run's own kept
        train = {name: value for name, value in train.items() if name in RESUMABLE}
    return RunRequest(
        checkpoint_dir,
        corpus=tuple(corpus),
        name=opts["name"],
        resume=resume,
        init_from=init_from,
        replace=opts["force"],
        size=opts["size"],
        cell=opts["cell"],
        model=_given_fields(opts, MODEL_OPTIONS),
        train=train,
        encoding=opts["encoding"],
        prime=opts["sample_prime"] if opts["sample_every"] else "",
    )


def _flag(name: str) -> str:
    """The option of parameter `name`, as the user writes it: sample_temp -> --sample-temp."""
    return "--" + name.replace("_", "-")


def _is_stdin(path: str) -> bool:
    """Whether `path` names what standard input reads (/dev/stdin, /dev/fd/0, or the file that
    `< file` gave it): with '-' as well, its text would be read twice, or found gone."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(0))
    except (OSError, ValueError):  # no such file, or no standard input at all
        return False


def _stdin_file() -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file standard input was redirected from (`< file`), else None."""
    try:
        info = os.fstat(0)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _given_fields(opts, names: dict) -> dict:
    return {field: opts[option] for option, field in names.items() if opts[option] is not None}


def _train(request, device, d, quiet: bool, opts: dict, clock=None) -> int:
    """Open the run, say what it is, train it, on `clock` (the command line's PauseClock, else
    one from here); returns the exit status."""
    from charrnn.cli.pauses import pause_clock
    from charrnn.cli.report import describe, list_notes, unseen_note
    from charrnn.train.open import TextReader, open_run

    def stdin(encoding: str) -> bytes:
        # Read as resolve reads a pipe: checked as it comes, so binary stops it at the first chunk.
        return read_stdin("standard input", encoding, quiet, text=False)[0]

    def note(line: str) -> None:
        say(line, quiet)

    def tell(opened) -> None:
        reader.download.close()  # the bars of reading the text, off the terminal before a word
        reader.progress.close()
        if d.is_main:  # before the run trains: the path it ends by writing must be writable
            _refuse_an_unwritable_path(opened.trainer.run_dir.best)
        if clock is not None:  # the time budget leaves out the time the process is stopped
            opened.trainer.clock = clock
        say(describe(opened, request, device), quiet)
        for warning in opened.warnings if d.is_main else ():  # (every rank opens the run)
            click.echo(f"Warning: {shown_message(warning)}", err=True)
        new = not request.resume and opened.trainer.origin is None  # a fine-tune's model knows more
        if new and (unseen := unseen_note(opened.trainer)):
            say(unseen, quiet)
        for note in list_notes(opened.trainer) if new else ():
            say(note, quiet)

    reader = TextReader(
        cache_dir(),
        stdin,
        stdin_file=_stdin_file(),
        download=download_bar(quiet),
        progress=phase_bar(quiet),
        note=note,
    )
    running = False  # from here on, a stop is the trainer's to make and to say
    try:
        pauses = contextlib.nullcontext(clock) if clock is not None else pause_clock()
        with pauses as clock, open_run(request, reader, device, d, on_open=tell) as opened:
            running = True
            return _run(opened.trainer, quiet, opts)
    except KeyboardInterrupt:
        if not running:  # reading the text, building the model: no run folder written yet
            kept = " (the run --force would replace is as it was)" if request.replace else ""
            say(
                f"Stopped during start-up, before the first step: nothing was trained or saved"
                f"{kept}.",
                quiet,
            )
        raise


# Without a terminal for the progress bar (stderr to a file or a pipe), a line saying where the
# run is after this many seconds without one: a log shows a run alive between evaluations,
# which a short --time spaces minutes apart.
PROGRESS_EVERY_S = 30.0
# An evaluation line at most this often: a short text is evaluated twice a pass, several times a
# second (a 5 KB fine-tune wrote 109 lines in 14 s). One held back is written before the next
# line of any kind, or at the end, so the last evaluation is always shown; metrics.jsonl has all.
# The evaluations of a --eval-every get a line each: the user asked for them.
EVAL_LINES_EVERY_S = 5.0


def _run(trainer, quiet: bool, opts: dict) -> int:
    """Drive the trainer, draw progress (and --sample-every samples) on stderr; returns the exit
    status."""
    from tqdm import tqdm

    from charrnn.cli.report import eval_line, fmt_time, progress_line, rollback_line, thinned_note
    from charrnn.train.events import DoneEvent, EvalEvent, RollbackEvent, StepEvent

    fixed = fixed_bar_size()
    bar = tqdm(
        total=1000,
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        dynamic_ncols=not fixed,  # a terminal resized meanwhile: each line fits it, never wraps
        **fixed,
        bar_format="{percentage:3.0f}%|{bar:24}| {elapsed}<{remaining}{postfix}",
        initial=int(1000 * trainer.progress()),
    )
    lines = not quiet and bar.disable  # progress as lines, not as a bar
    speed, done, evals = None, None, 0  # evals: evaluation lines written
    scheduled = 0  # evaluations made at the schedule's steps (--eval-every's, where given)
    start, written = trainer.pos.step, time.monotonic()  # written: when stderr last had a line
    losses = [0.0, 0]  # the steps' loss summed since the last evaluation, and their count
    best = None  # the record of this command's best evaluation

    # Evaluation lines not written yet (EVAL_LINES_EVERY_S), each with whether it found a new
    # best: the newest, after the latest '* best' one where that is another.
    held: list[tuple[str, bool]] = []
    said = -math.inf  # when an evaluation line was last written

    def write(line: str | None) -> None:
        nonlocal written
        for waiting, _ in held:
            bar.write(waiting, file=sys.stderr)
        held.clear()
        if line is not None:
            bar.write(line, file=sys.stderr)
        written = time.monotonic()

    step, evaluating = trainer.pos.step, None  # evaluating: since when (None: not evaluating)
    shown = 0.0  # when the bar last showed the evaluation's time
    stepping = ""  # the bar's label between evaluations: the latest step's loss and speed

    def on_evaluating(what: str) -> None:
        """The evaluation under way, shown as it goes: a wide model's takes minutes."""
        nonlocal evaluating, shown
        now = time.monotonic()
        evaluating = now if evaluating is None else evaluating
        so_far = fmt_time(now - evaluating)
        if not bar.disable and now - shown >= 1.0:
            bar.set_postfix_str(f"step {step:,} evaluating: {what}, {so_far}", refresh=True)
            shown = now
        elif lines and now - written >= PROGRESS_EVERY_S:
            write(f"step {step:>7,} | evaluating ({what}), {so_far} so far")

    trainer.on_evaluating = on_evaluating

    with stop_signals(trainer.request_stop) as signals, _hard_stop(trainer):
        for event in trainer.run():
            if evaluating is not None and not bar.disable:  # the bar's label, the steps' again
                bar.set_postfix_str(stepping, refresh=False)
            evaluating = None  # any event ends the evaluation that was shown
            if isinstance(event, StepEvent):
                step, now = event.step, event.chars_per_s
                speed = now if speed is None else 0.9 * speed + 0.1 * now
                losses = [losses[0] + event.loss, losses[1] + 1]
                bar.update(int(1000 * event.progress) - bar.n)
                stepping = f"step {event.step:,} loss {event.loss:.3f} {speed:,.0f} char/s"
                bar.set_postfix_str(stepping, refresh=False)
                if opts["sample_every"] and event.step % opts["sample_every"] == 0 and not quiet:
                    write(_sample(trainer, event.step, opts))
                elif lines and _progress_due(trainer, event, written):
                    write(progress_line(event, losses[0] / losses[1], speed))
            elif isinstance(event, EvalEvent) and not quiet:
                line = eval_line(event, first=not evals)
                asked = trainer.config.eval_every_given  # a line for each of those asked for
                if asked or time.monotonic() - said >= EVAL_LINES_EVERY_S:
                    write(line)
                    said = written
                else:  # in place of those held: the newest, and the best where it is not
                    best_held = [] if event.improved else [h for h in held if h[1]][-1:]
                    held[:] = [*best_held, (line, event.improved)]
                evals, losses = evals + 1, [0.0, 0]
                scheduled += trainer.config.evaluates_at(event.record["step"])
                best = event.record if event.improved else best
            elif isinstance(event, RollbackEvent) and not quiet:
                step = event.to_step
                write(rollback_line(event))
                losses = [0.0, 0]  # the steps rolled back are not the run's
            elif isinstance(event, DoneEvent):
                done = event
        if held:  # the last evaluation's line (and the best's)
            write(None)
        bar.close()
        # Still under the stop signals: one that comes as the run ends finds it done (exit 0)
        trained = done.step > start
        given = trainer.config.eval_every_given and done.reason != "stopped"
        thinned = thinned_note(trainer.config, start, done.step, scheduled) if given else None
        return _finish(
            trainer, done, signals, quiet, trained, best=best, evaluated=evals > 0, thinned=thinned
        )


def _progress_due(trainer, event, written: float) -> bool:
    """Whether a step should have a progress line: PROGRESS_EVERY_S after the last line, and not
    where an evaluation line follows (an evaluation's step, the last)."""
    quiet_for = time.monotonic() - written
    evaluating = trainer.config.evaluates_at(event.step) or event.progress >= 1
    return quiet_for >= PROGRESS_EVERY_S and not evaluating


def _sample(trainer, step: int, opts: dict) -> str:
    """A --sample-every sample at `step`, with its heading."""
    from charrnn.text.vocab import known_form
    from charrnn.use.sampler import sample_text

    prime, temp, length = opts["sample_prime"], opts["sample_temp"], opts["sample_length"]
    prime = known_form(prime, trainer.vocab)  # echoed as the model reads it (sample_text's form)
    text = sample_text(trainer.trained, prime, length, temp, step, should_stop=trainer.must_stop)
    cut = (
        f"; cut short at {len(text):,} characters: the run is ending" if len(text) < length else ""
    )
    return f"sample at step {step:,} (temperature {temp:g}{cut}):\n{prime}{text}\n"


MORE_TIME_S = 60  # seconds of training the advice after a resume that trained nothing adds
OVERRUN_SAID = 0.05  # a run past its --time by more than this share of it says so at the end
SHORT_BUDGET_S = 10.0  # a --time under this is mostly start-up (importing torch, reading the text)


def _finish(
    trainer,
    done,
    signals,
    quiet: bool,
    trained: bool,
    best: dict | None,
    evaluated: bool = False,
    thinned: str | None = None,
) -> int:
    """Say how the run ended (and print the checkpoint to use on stdout); the exit status.
    `trained`: whether this command trained a step (a resume may have had no time left); `best`:
    the record of its best evaluation, if it wrote best.pt; `evaluated`: whether it made one;
    `thinned`: the note on the --eval-every evaluations a time budget left out, if any."""
    from charrnn.cli.report import (
        done_line,
        fmt_time,
        memorised_note,
        part_read_note,
        runaway_note,
        unlike_note,
    )

    say(done_line(trainer, done), quiet)
    if (stopped := getattr(trainer.clock, "stopped", 0.0)) >= 1 and trainer.config.max_time:
        say(
            f"Note: the process was stopped (suspended) for {fmt_time(stopped)}; the time budget "
            "left that out.",
            quiet,
        )
    if thinned:
        say(thinned, quiet)
    if done.reason != "stopped" and (note := unlike_note(best)):
        say(note, quiet)
    if done.reason != "stopped" and (note := runaway_note(trainer, best)):
        say(note, quiet)
    if done.reason != "stopped" and (note := memorised_note(trainer)):
        say(note, quiet)
    if evaluated and done.reason != "stopped" and (note := part_read_note(trainer)):
        say(note, quiet)
    if done.reason != "stopped" and trainer.origin and best and best["step"] == 0 and trained:
        # A fine-tune that made nothing better: its best.pt is the model it started from
        say(
            "Note: no evaluation found a better model than the one this fine-tune started from: "
            f"best.pt is that model; {trainer.run_dir.last} holds the fine-tuned one.",
            quiet,
        )
    # (a resume that made the evaluation a stop cut short did what it was for: no warning)
    if done.reason == "time" and not trained and not (evaluated and done.step > 0):
        # Each start-up (reading the text, building the model) counts towards the run's time, so
        # a --time just above its time so far would train nothing again: a minute more.
        so_far = trainer.pos.elapsed
        say(
            "Warning: no step was trained: the time the run had left went to starting it; its "
            f"time so far, {fmt_time(so_far)}, counts every start-up, so give a --time well "
            f"above it to train it further, e.g. {fmt_time(math.ceil(so_far) + MORE_TIME_S)}",
            quiet,
        )
    c, took = trainer.config, trainer.pos.elapsed
    over = took > c.max_time * (1 + OVERRUN_SAID) if c.max_time else False
    short = c.max_time is not None and c.max_time < SHORT_BUDGET_S
    if done.reason == "time" and trained and (over or short):
        # --time is the whole command's wall time: said where it was not kept (a step or the last
        # evaluation of a large model can outlast a short one), and where start-up (seconds)
        # left the model a few steps
        said = [f"the run took {took:.1f}s, over its --time of {c.max_time:g}s"] if over else []
        if short:
            said.append(
                f"a --time of {c.max_time:g}s goes mostly to starting the command (the model "
                f"trained {count(done.step, 'step')}); give {SHORT_BUDGET_S:g}s or more to train it"
            )
        say("Warning: " + ": ".join(said), quiet)
    if done.reason == "stopped":
        return 128 + signals[0] if signals else 130
    if trainer.dist.is_main:
        run = trainer.run_dir
        path = str(run.best if run.best.is_file() else run.last)
        try:
            click.echo(path)
            sys.stdout.flush()
        except OSError as e:  # a full disk, a closed stdout: the run is saved all the same
            if e.errno != errno.EPIPE:
                say(f"The run is saved: {path}")
            raise
    return 0


def _refuse_an_unwritable_path(path, option: str = "--name") -> None:
    """A one-line error, before training, where stdout's encoding (PYTHONIOENCODING)
    cannot write the path that the run ends by writing there (`option` changes it)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        str(path).encode(encoding, getattr(sys.stdout, "errors", None) or "strict")
    except UnicodeEncodeError as e:
        char = f"U+{ord(e.object[e.start]):04X}"
        raise click.ClickException(
            f"standard output's encoding ({e.encoding}) cannot write {char} of the run's path "
            f"({path}), which the run ends by writing there; set "
            f"PYTHONIOENCODING=utf-8, use a UTF-8 locale, or give a {option} it can write"
        ) from None
    except LookupError:  # an encoding Python does not know: writing finds out
        pass


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
