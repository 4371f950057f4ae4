"""The lines `charrnn train` writes of a run: what it trains, each evaluation, a rollback."""

from __future__ import annotations

import math
import shlex
from dataclasses import asdict

from charrnn.cli.common import count, shown_chars

NEW_SHOWN = 60  # a fine-tune's new characters named on its first line, at most


def describe(opened, request, device) -> str:
    """The line that says what is trained: the run, its text, model, batch, budget and device."""
    trainer, o = opened.trainer, opened.trainer.origin
    if request.resume:
        where = f" from {opened.resumed_from.name}" if opened.resumed_from else ""
        verb = f"Resuming{where} at step {trainer.pos.step:,}:"
        chosen = f" (fine-tuned from {o['run']!r} at step {o['step']:,})" if o else ""
    elif o is not None:
        new = o["new_chars"]
        grown = f"{count(len(new), 'new character')}: {_named(new)}" if new else "none new"
        verb = "Fine-tuning"
        chosen = f" (from {o['run']!r} at step {o['step']:,}; {grown})"
    else:
        verb, choice = "Training", opened.choice
        chosen = f" (--size auto: {choice.name}: {choice.reason})" if request.size == "auto" else ""
    chosen += "".join(f" ({note})" for note in opened.notes)  # what opening chose for this text
    m, c = trainer.model.config, trainer.config
    params = trainer.model.num_params()
    limits = [
        count(c.max_steps, "step") if c.max_steps else "",
        f"{c.max_epochs:g} epoch{'s' * (c.max_epochs != 1)}" if c.max_epochs else "",
        _budget_time(c.max_time) if c.max_time else "",
    ]
    counts = trainer.corpus.get("char_counts") or []
    distinct = sum(1 for n in counts if n) or len(trainer.vocab)
    # a fine-tuning run's vocabulary is the base model's and the text's together
    vocab = f" (vocabulary {len(trainer.vocab)})" if distinct != len(trainer.vocab) else ""
    return (
        f"{verb} {trainer.run_dir.name!r}: {opened.chars:,} characters, {distinct:,} distinct"
        f"{vocab}; {m.num_layers}x{m.hidden_size} {m.cell.upper()}, {_millions(params)} "
        f"parameters{f', dropout {m.dropout:g}' if m.dropout else ''}"
        f"{f', input dropout {m.input_dropout:g}' if m.input_dropout else ''}; batch "
        f"{c.batch_size}x{c.seq_len}; budget "
        f"{', '.join(x for x in limits if x)}; {device}"
        + (" (bfloat16 mixed precision)" if trainer.autocast is not None else "")
        + (f" ({trainer.precision_note})" if trainer.precision_note else "")
        + (f" x {trainer.dist.world} processes" if trainer.dist.active else "")
        + chosen
    )


def done_line(trainer, done) -> str:
    """How the run ended (`done`, its DoneEvent): stopped, and how to resume it, or trained."""
    run = trainer.run_dir
    if done.reason == "stopped":
        from charrnn.runs.advice import resume_command, text_to_give

        again = resume_command(run.ref, text_to_give(trainer.corpus["sources"]), {})
        return f"Stopped at step {done.step:,}; saved {run.last}. Resume with: {again}"
    # rounded as the evaluation's record (and so its progress line) rounds it, so the two agree
    nats, bits = round(done.best_val, 5), round(done.best_val / math.log(2), 5)
    best = f"best validation loss {nats:.4f} nats = {bits:.3f} bits per character"
    if math.isinf(done.best_val):  # ended before its first evaluation (a resume with no time)
        best = "no evaluation yet, so no best.pt"
    why = f"{done.reason} budget spent"
    if done.reason == "epochs":  # given, or auto's for a short text: said as passes, as it chose
        from charrnn.train.records import epochs  # torch: loaded by a run, not by --help

        # the passes made, not the budget: --epochs 0.001 still trains a whole step, 0.11 of one
        n = float(f"{epochs(trainer.pos, len(trainer.train_batches)):.3g}")
        why = f"the text read {n:g} time{'s' * (n != 1)}"
    if done.reason == "patience":
        evaluations = count(trainer.config.patience, "evaluation")
        why = f"stopped early: no better validation loss in {evaluations}"
    return (
        f"Done ({why}) after {count(done.step, 'step')}, {fmt_time(trainer.pos.elapsed)}: {best}."
    )


# How far above best.pt's the last evaluation's validation loss must be (nats) for the end of a
# run to say that the model went on to learn its text by heart: an hour of a tiny model
# on a 35 K text read 3.08 bits at its best and 6.73 at the end, worse than a uniform guess.
MEMORISED_NATS = 0.1
# The share of validation characters the training part never has from which they, not learning
# by heart, are what a rising validation loss is said to come from: at 1%, a model that gives each
# a millionth of its probability reads 0.14 nats a character worse for them alone.
UNSEEN_SHARE = 0.01
# ... and the most such a character can add to the validation loss in the model's certainty that
# it never comes (nats: a probability of 2e-9): a rise larger than their share of it is learning
# by heart, whatever they add (1% of them in the Zen of Python, 2.4 nats of rise).
UNSEEN_NATS = 20.0


def unseen_advice(trainer) -> str:
    """What to do where validation characters never occur in the training part: with several
    files, the last validates; in one text, they come only in its last part."""
    if not trainer.one_text:
        return (
            "with several files, the last in sorted order validate: put one like the rest last, "
            "or give --val-frac."
        )
    return "they come only in the text's last part: put some of it earlier if they matter."


def thinned_note(c, start: int, end: int, made: int) -> str | None:
    """A note where a --time run made fewer of the evaluations its --eval-every asked for (steps
    `start` to `end`) than the schedule has: `made` of them. None where it made them all."""
    from charrnn.train.evalplan import SHARE

    asked = sum(c.evaluates_at(step) for step in range(start + 1, end + 1))
    if c.max_time is None or made >= asked:
        return None
    what = "evaluation" if asked == 1 else "evaluations"
    was = "was" if made == 1 or asked == 1 else "were"
    # --steps or --epochs evaluate on their own schedule; given beside --time, it is --time
    # that thins it
    instead = "leave out --time" if c.max_steps or c.max_epochs else "give --steps or --epochs"
    return (
        f"Note: {made:,} of the {asked:,} {what} --eval-every {c.eval_every:,} asked for "
        f"{was} made (last.pt is written at each): under --time they spend at most "
        f"{SHARE:.0%} of it; {instead} to evaluate on your own schedule"
    )


def part_read_note(trainer) -> str | None:
    """A note where the time budget made each evaluation read part of the validation split: its
    figures read higher than the whole's, and compare only with runs that read as many (runs
    trained side by side time their reads alike only by chance). None where it read it whole."""
    read, whole = trainer.val_read()
    if read >= whole:
        return None
    run = shlex.quote(trainer.run_dir.ref)
    return (
        f"Note: each evaluation read {read:,} of the {whole:,} validation characters (what the "
        "time budget allowed): its bits per character compare with runs that read as many, and "
        f"mostly read higher than the whole split's; `charrnn score -c {run} FILE` reads a text "
        "whole"
    )


def memorised_note(trainer) -> str | None:
    """A note where the run's last evaluation read MEMORISED_NATS or more above its best (the
    model learned the text by heart after best.pt): where best.pt is, and how to stop such a run
    sooner. None otherwise, and under a patience (which ends such a run, and says so)."""
    from charrnn.runs import best_candidates
    from charrnn.text.data import unseen_share

    evals = [r for r in best_candidates(trainer.pos.metrics) if "val_loss" in r]
    if not evals or trainer.config.patience:
        return None
    best, last = min(evals, key=lambda r: r["val_loss"]), evals[-1]
    if last["val_loss"] - best["val_loss"] < MEMORISED_NATS:
        return None
    rose = (
        f"Note: the validation loss rose from {best['val_loss']:.4f} nats at step "
        f"{best['step']:,} to {last['val_loss']:.4f} at step {last['step']:,}: "
    )
    unseen = unseen_share(trainer.train_char_counts(), trainer.val_batches.ids)
    rise = last["val_loss"] - best["val_loss"]
    if unseen >= UNSEEN_SHARE and rise <= unseen * UNSEEN_NATS:
        # Not learned by heart: the better the model reads the training part, the surer it is
        # that these characters do not come, and the worse it reads them.
        return rose + (
            f"{unseen:.0%} of the validation characters (the text's last "
            f"{trainer.config.val_frac:.0%}) never occur in the training part, and no training "
            f"teaches them; {unseen_advice(trainer)}"
        )
    return rose + (
        "the model went on to learn the training text by heart; best.pt holds the best, and "
        "--patience 4 (or a shorter budget) would stop such a run sooner."
    )


def unseen_note(trainer) -> str | None:
    """A note, as a new run starts, where UNSEEN_SHARE or more of the validation characters
    never occur in the training part: what they are, and that the validation loss will count
    them however well the model learns. None otherwise."""
    from charrnn.text.data import unseen_chars

    val_ids = trainer.val_batches.ids
    unseen = unseen_chars(trainer.train_char_counts(), val_ids)
    share = sum(unseen.values()) / max(1, len(val_ids))
    if share < UNSEEN_SHARE:
        return None
    chars = [trainer.vocab.chars[i] for i in unseen]
    named = ", ".join(repr(ch) for ch in chars[:SAID_CHARS])
    more = f" and {len(chars) - SAID_CHARS:,} more" if len(chars) > SAID_CHARS else ""
    return (
        f"Note: {share:.0%} of the validation characters (the text's last "
        f"{trainer.config.val_frac:.0%}) never occur in the training part ({named}{more}): no "
        "training teaches them, and the validation loss counts them however well the model "
        f"learns; {unseen_advice(trainer)}"
    )


SAID_CHARS = 8  # the characters unseen_note names, the most frequent first
# A list whose lines are at least this share in order is a sorted one; one whose validation lines
# the training part holds at least this share of, one of repeats
SORTED_SHARE = 0.9
REPEATED_SHARE = 0.3


def list_notes(trainer) -> list[str]:
    """Notes, as a new run starts, for a text of one item a line (a list: a line break its lead-in)
    that validates badly: its lines sorted, so that the validation part holds only the end of the
    order, which training never reads; or repeated, so that validation mostly reads lines the
    training part holds, and samples copy them."""
    from charrnn.text.data import list_shape

    if trainer.trained.lead_in != "\n":
        return []
    shape = list_shape(trainer.train_batches.ids, trainer.val_batches.ids, trainer.vocab)
    if shape is None:
        return []
    part = f"the validation part (the text's last {trainer.config.val_frac:.0%})"
    notes = []
    if shape.in_order >= SORTED_SHARE:
        ends = f"{shape.first[:20]!r} to {shape.last[:20]!r}"
        notes.append(
            f"Note: the text's lines are in sorted order ({ends}), so {part} holds only the "
            "end of the order, which training never reads: shuffle them first (`shuf list.txt > "
            "shuffled.txt`)"
        )
    if shape.repeated >= REPEATED_SHARE:
        notes.append(
            f"Note: {shape.repeated:.0%} of the lines of {part} occur in the training part too: "
            "its loss reads how well the model recalls them, and samples will copy them; remove "
            "the repeats first (`awk '!seen[$0]++' list.txt > once.txt`)"
        )
    return notes


# How much the streams of text unlike the rest must raise best.pt's validation loss (nats) for the
# end of a run to say so: below it they change no reading of the figure.
UNLIKE_NOTE_NATS = 0.05
SAID_SPANS = 3  # where the note says the first few of them are; metrics.jsonl has every one


def _named(new: str) -> str:
    """A fine-tune's new characters as its lines name them: the first NEW_SHOWN."""
    return shown_chars(new[:NEW_SHOWN]) + (" and more" if len(new) > NEW_SHOWN else "")


def unlike_note(best: dict | None) -> str | None:
    """A note on best.pt's evaluation record `best`, where validation streams of text unlike the
    rest (symbols, a table, characters the training part rarely has) raise its loss by
    UNLIKE_NOTE_NATS or more: how many, and the loss over the others. None otherwise."""
    n, typical = (best or {}).get("val_unlike_streams"), (best or {}).get("val_typical")
    if not n or typical is None or best["val_loss"] - typical < UNLIKE_NOTE_NATS:
        return None
    streams = f"{n} validation streams read" if n > 1 else "1 validation stream reads"
    if where := _where_text(best):  # for a reader to look at
        streams = streams.replace(" read", f" ({where}) read", 1)
    why = "the text there is unlike the training part (symbols, names or characters it rarely has)"
    if new := best.get("val_unlike_new_chars"):  # a fine-tune: they may be all it is
        why = (
            f"{'they hold' if n > 1 else 'it holds'} characters new to the model it started "
            f"from ({_named(new)}), which it has not learned well yet, or text unlike the "
            "training part"
        )
    return (
        f"Note: {streams} far worse than the rest because {why}, not because the model went "
        f"wrong; over the others best.pt reads {typical:.4f} nats = "
        f"{typical / math.log(2):.3f} bits per character."
    )


def runaway_note(trainer, best: dict | None) -> str | None:
    """A warning where best.pt's evaluation record `best` found its state running away from cold
    starts (a model trained too little: samples from it can turn to noise): how many, and the
    resume that trains it longer (advice.train_longer). None otherwise."""
    from charrnn.runs.advice import train_longer

    cold = (best or {}).get("cold_start")
    runaways = max(cold["runaways"], cold["runaways_lead_in"]) if cold else 0
    if not runaways:
        return None
    last = trainer.pos.metrics[-1] if trainer.pos.metrics else {}  # the run's latest record
    at = {"step": trainer.pos.step, "epoch": last.get("epoch", 0.0), "elapsed": trainer.pos.elapsed}
    again = train_longer(trainer.run_dir.ref, trainer.corpus["sources"], asdict(trainer.config), at)
    return (
        f"Warning: best.pt ran away from {runaways} of {cold['starts']} cold starts at its "
        f"evaluation (step {best['step']:,}): samples from it can turn to noise; train it "
        f"longer: {again}"
    )


def _where_text(record: dict) -> str:
    """`lines 8661-8718, 8835-8876 and 2 more of the text`, or in a text of several files
    `lines 3-40 of docs/b.md and characters 7-300 of data.csv`: the ranges of lines (or of
    characters, in a text of one line) a record's unlike streams span, those that touch merged,
    the first SAID_SPANS said; plain numbers, lines as `sed -n` takes them, characters counted
    as Python counts a str (after a byte-order mark). "" where none is known."""
    spans = [(None, "line", a, b) for a, b in record.get("val_unlike_lines") or []]
    spans = spans or [(None, "character", a, b) for a, b in record.get("val_unlike_chars") or []]
    spans = spans or [tuple(f) for f in record.get("val_unlike_files") or []]
    if spans and spans[0][0] is None:  # one text: by line (files: the streams' order, the text's)
        spans = sorted(spans)
    merged: list[list] = []  # [file, unit, first, last]
    for file, unit, first, last in spans:
        m = merged[-1] if merged else None
        if m and m[:2] == [file, unit] and first <= m[3] + 1:  # adjacent streams: one range
            m[3] = max(m[3], last)
        else:
            merged.append([file, unit, first, last])
    if not merged:
        return ""
    groups: list[list] = []  # the ranges said, by file and unit: [file, unit, [ranges]]
    for file, unit, a, b in merged[:SAID_SPANS]:
        if not groups or groups[-1][:2] != [file, unit]:
            groups.append([file, unit, []])
        groups[-1][2].append((a, b))
    more = len(merged) - SAID_SPANS
    said = []
    for file, unit, ranges in groups:
        plural = "s" * (len(ranges) > 1 or ranges[0][0] != ranges[0][1])
        listed = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges]
        said.append((f"{unit}{plural}", listed, f"of {file}" if file else "of the text"))
    if len({(m[0], m[1]) for m in merged}) == 1 and more > 0:  # all of one file: said once
        unit, listed, of = said[0]
        return f"{unit} {', '.join(listed)} and {more} more {of}"
    parts = [f"{unit} {_and(listed)} {of}" for unit, listed, of in said]
    return ", ".join(parts) + f" and {more} more" if more > 0 else _and(parts)


def _and(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _budget_time(seconds: float) -> str:
    """A time budget as fmt_time writes it, but one under 10 s with its tenths (`0.5s`), or under
    a tenth as given (`0.001s`): the budget as the user gave it, never `0s`."""
    if seconds < 0.1:
        return f"{seconds:.3g}s"
    if seconds < 10 and round(seconds, 1) != round(seconds):
        return f"{seconds:.1f}s"
    return fmt_time(seconds)


def fmt_time(seconds: float) -> str:
    """`1h02m03s`, `4m05s`, `9s`."""
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def rollback_line(event) -> str:
    return (
        f"Warning: {event.reason}; went back to step {event.to_step:,} with the learning rate "
        f"at {event.lr_scale:g} of its schedule"
    )


def progress_line(event, train_loss: float, chars_per_s: float) -> str:
    """Where a run is at a step (`event`, its StepEvent), for a log that has no progress bar: in
    the columns of the evaluation lines, `train_loss` as theirs (the mean since the last one)."""
    e = event
    where = _where(e.step, e.epoch, e.elapsed, f"{train_loss:.4f}")
    return f"{where} | {chars_per_s:,.0f} char/s | {e.progress:.0%} of the budget"


def eval_line(event, first: bool) -> str:
    r = event.record
    mark = "  * best" if event.improved else ""
    train = "   -  " if r["train_loss"] is None else f"{r['train_loss']:.4f}"  # e.g. at step 0
    cold = _cold_start_text(r.get("cold_start"), first)
    return (
        f"{_where(r['step'], r['epoch'], r['elapsed'], train)} | val {r['val_loss']:.4f} nats = "
        f"{r['val_bpc']:.3f} bpc{cold}{_runaway_streams_text(r)}{mark}"
    )


def _where(step: int, epoch: float, elapsed: float, train: str) -> str:
    """The columns every line of a run's progress begins with, evaluation or not."""
    return f"step {step:>7,} | epoch {epoch:6.2f} | {fmt_time(elapsed):>8} | train {train}"


def _runaway_streams_text(r: dict) -> str:
    """Streams whose carried state ran away (a sound state reads their text far better). Streams
    far worse for their text alone (a table of symbols in prose, characters the model has not
    learned) are the text's, not the model's fault: metrics.jsonl counts them, the line does not."""
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
    gap = round(max(c["gap"], c["gap_lead_in"]), 3) + 0.0  # + 0.0: never "-0.000"
    window = c.get("skip", 100), c.get("skip", 100) + c.get("span", 200)
    chars = "" if window == (100, 300) else f" (characters {window[0]}-{window[1]})"
    return f" | cold {runaways}/{c['starts']} runaway, gap {gap:+.3f}{chars}"


def _millions(n: int) -> str:
    """A parameter count for a person: 28.83M, 0.46M, and below 10,000 the count itself."""
    return f"{n / 1e6:.2f}M" if n >= 10_000 else f"{n:,}"
