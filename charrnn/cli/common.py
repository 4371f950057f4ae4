"""What the commands share besides their options: the model they restore, standard input,
progress bars and messages, and output: files, tables, names as text (the stop signals and the
command boundary that maps errors: signals.py)."""

from __future__ import annotations

import codecs
import errno
import functools
import os
import re
import shutil
import stat
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import click

from charrnn.errors import DamagedCheckpoint
from charrnn.fsutil import expand_home

CACHE_DIR_ENV = "CHARRNN_CACHE_DIR"


def cache_dir() -> Path:
    """Where encoded corpora are kept: CHARRNN_CACHE_DIR, else $XDG_CACHE_HOME/charrnn (an
    absolute one, as the XDG spec has it), else ~/.cache/charrnn."""
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(expand_home(env))
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "charrnn"
    return _home() / ".cache" / "charrnn"


def _home() -> Path:
    """The user's home: $HOME, else (unset, empty: `HOME= cmd`, which Python reads as the root
    folder, or relative) the account's own, as a login gives it."""
    if os.path.isabs(home := os.environ.get("HOME", "")):  # (a relative one names no home)
        return Path(home)
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError):  # no pwd (Windows), no such account
        return Path.home()


def load_model(checkpoint: str | None, checkpoint_dir, device: str | None, quiet: bool = False):
    """The checkpoint -c names (or the latest run's), restored onto --device (None: left on the
    CPU, for a command that checks more before it picks one): (path, the model whole); its notes
    (newer runs skipped, a run's files that do not belong together) unless `quiet`."""
    from charrnn import checkpoint as ckpt
    from charrnn import runs
    from charrnn.devices import resolve_device

    loaded = {}  # the latest run's model, read whole to choose it: not read twice

    def sound(path):
        loaded[path] = ckpt.load_model(path)

    note = functools.partial(say, quiet=quiet)
    path = runs.resolve_checkpoint(checkpoint, checkpoint_dir, note=note, check=sound)
    try:
        model = loaded[path] if path in loaded else ckpt.load_model(path)
    except DamagedCheckpoint as e:
        raise DamagedCheckpoint(e.what, ckpt.instead_of_damaged(path, "-c")) from None
    if device is not None:
        model = model.to(resolve_device(device))
    return path, model


def refuse_run_as_file(file: str | None, checkpoint_dir) -> None:
    """FILE, a text to read, that is not there but names a run under --checkpoint-dir: the run
    was meant for -c. Said before the model loads, as the one Error line."""
    from charrnn import runs
    from charrnn.errors import CharRNNError, CorpusError

    if file in (None, "-") or os.path.lexists(file) or runs.is_path(file):
        return
    try:
        runs.find_run(file, checkpoint_dir)
    except CharRNNError:
        return
    raise CorpusError(
        f"there is no file {file}, but there is a run of that name: to read a text through it, "
        f"give -c {file} and the text's file (or - for standard input)"
    )


def json_out(record: dict, stream=None) -> str:
    """`record` as --json writes it onto `stream` (stdout by default): json_line, with every
    character past ASCII escaped where the stream's encoding is not Unicode's
    (PYTHONIOENCODING=latin-1), so that a name holding one never stops the listing."""
    from charrnn.jsonl import json_line

    encoding = getattr(sys.stdout if stream is None else stream, "encoding", None) or "utf-8"
    try:
        unicode = codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        unicode = False
    return json_line(record, ascii_only=not unicode)


def say(message: str, quiet: bool = False) -> None:
    """A message for the person at the terminal: stderr, never stdout; one line of text, whatever
    the names in it hold (shown_message: a terminal never acts on a name's escape sequence)."""
    if not quiet:
        click.echo(shown_message(message), err=True)


def note_unknown(
    text: str, vocab, unknown: str, quiet: bool = False, prime: bool = False, where: str = ""
) -> None:
    """Say how many characters of `text` --unknown skip or replace changes (none: nothing); of a
    `prime`, also where none of it is left; `where`: the text's name, where there are several."""
    from charrnn.text.vocab import known_form

    if unknown != "error":
        text = known_form(text, vocab)  # as apply_unknown reads it: the model's Unicode form
    if unknown != "error" and (n := sum(ch not in vocab.index for ch in text)):
        whole = prime and unknown == "skip" and n == len(text)
        more = " (the whole prime: the text starts unprimed)" * whole
        if unknown == "replace" and " " not in vocab.index:  # nothing to put where none looks alike
            from charrnn.text.vocab import lookalike

            if dropped := sum(ch not in vocab.index and not lookalike(ch, vocab) for ch in text):
                more = f" ({dropped:,} by nothing: the model has no space, nor a look-alike)"
        say_unknown(n, unknown, quiet, more + f" in {where}" * bool(where))


def say_unknown(n: int, unknown: str, quiet: bool = False, more: str = "") -> None:
    """The note of `n` characters --unknown skip or replace changed (none: nothing said)."""
    if unknown != "error" and n:
        done = "left out" if unknown == "skip" else "replaced"
        say(
            f"Note: --unknown {unknown} {done} {count(n, 'character')} the model never saw{more}.",
            quiet,
        )


def known_text(
    text: str,
    vocab,
    unknown: str,
    label: str,
    task: str,
    quiet: bool = False,
    where: str = "",
    model: str = "the model",
) -> str:
    """`text` as the model reads it under --unknown (vocab.apply_unknown), with a note of how many
    characters were skipped or replaced (naming `where`, one of several texts or models, if
    given); an error where nothing is left, saying whether the text was empty or held no
    character the model (`model`: its name, one of several) knows."""
    from charrnn.errors import CorpusError
    from charrnn.text.vocab import apply_unknown

    kept = apply_unknown(text, vocab, unknown, label, model=model)
    if kept:
        note_unknown(text, vocab, unknown, quiet, where=where)
        return kept
    if text:
        raise CorpusError(
            f"{label} has no character {model} knows (--unknown {unknown} left none of its "
            f"{count(len(text), 'character')}): there is nothing to {task}; give a text in the "
            "model's alphabet, or a model trained on text like it"
        )
    raise CorpusError(f"{label} is empty: there is nothing to {task}")


def count(n: int, noun: str) -> str:
    """`1 character`, `2,000 characters`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def read_stdin(
    label: str, encoding: str, quiet: bool = False, text: bool = True
) -> tuple[bytes, str]:
    """All of standard input and its text (text=False: checked only, "" returned), read as every
    file is (sources.read_all): in chunks, binary content or bytes that are not `encoding` text
    stopping the reading at the chunk that holds them, with the message train gives."""
    from charrnn.text.sources import read_all

    return read_all(stdin_chunks(1 << 20, quiet), label, encoding, text)


def stdin_chunks(size: int = 1 << 16, quiet: bool = False, live: bool = False):
    """Standard input, `size` bytes at a time, for a reader that may stop early (sources.read_all
    checks each chunk as it comes: binary content stops the reading there, as for a file); `live`:
    what has arrived, at most `size` bytes, as soon as it has (a line typed, a line of `tail -f`).
    A closed or unreadable standard input is one `Error:` line, not a traceback."""
    try:
        stream = click.get_binary_stream("stdin")  # RuntimeError when stdin is closed (<&-)
        if stream.isatty():
            say("Reading standard input until Ctrl-D (or pipe a file into it)...", quiet)
        if live:  # a short read is no end here: only an empty one is (Ctrl-D on a line of its own)
            while chunk := stream.read1(size):
                yield chunk
            return
        while chunk := stream.read(size):
            yield chunk
            if len(chunk) < size:  # a buffered read is short only at the end: one Ctrl-D ends
                return  # a terminal's input, not a second one
    except (RuntimeError, ValueError, OSError) as e:  # ValueError: a closed file object
        reason = getattr(e, "strerror", None) or "it is closed"
        raise click.ClickException(
            f"cannot read standard input ({reason}); pipe the text into it, or name a file "
            "instead of -"
        ) from None


def download_bar(quiet: bool):
    """A progress callback for downloads: a tqdm bar on stderr, made on first use (`.close()`
    takes it off the terminal)."""
    bar = phase_bar(quiet)

    def progress(done: int, total: int | None) -> None:
        bar("download", done, total)

    progress.close = bar.close
    return progress


def fixed_bar_size() -> dict:
    """tqdm's size options: none where tqdm can read stderr's terminal size itself; else (a
    pseudo-terminal with no size, 0x0: `script` run by a program, where tqdm took the bar to be
    below the screen and drew nothing at all) the size COLUMNS and LINES say, or 80x24."""
    try:
        if os.get_terminal_size(sys.stderr.fileno()).columns > 0:
            return {}
    except (OSError, ValueError, AttributeError):  # not a terminal, no descriptor
        return {}
    size = shutil.get_terminal_size()
    return {"ncols": size.columns, "nrows": size.lines}


# A phase shows its bar once it has taken this long: the reading of a folder of 20,000 files or a
# text of 20,000 distinct characters took 6-10 s with nothing said.
BAR_AFTER_S = 1.0


def phase_bar(quiet: bool, min_total: int = 0, unit: str = "B"):
    """A progress callback (phase, done, total) in bytes (or `unit`s): one tqdm bar per phase on
    stderr, shown once the phase has taken BAR_AFTER_S (a download at once), for a total of
    `min_total` or more. `.close()` takes the last one off the terminal: call it before what
    follows is said, or the bar stays there, drawn again under each later line."""
    bar, current = None, None

    def progress(phase: str, done: int, total: int | None) -> None:
        nonlocal bar, current
        if phase != current:
            if bar is not None:
                bar.close()
            from tqdm import tqdm

            small = phase != "download" and (total or 0) < min_total
            bar = tqdm(
                total=total,
                unit=unit,
                unit_scale=True,
                desc=phase,
                file=sys.stderr,
                disable=quiet or small or not sys.stderr.isatty(),
                leave=False,
                delay=0 if phase == "download" else BAR_AFTER_S,
                **fixed_bar_size(),
            )
            current = phase
        bar.update(done - bar.n)

    def close() -> None:  # the last phase's bar, off the terminal
        if bar is not None:
            bar.close()

    progress.close = close
    return progress


def cannot_write(e: OSError, path: str | None = None) -> click.ClickException:
    """The one-line error for output that cannot be written."""
    from charrnn.fsutil import write_advice

    where = f"{os.fsdecode(path or e.filename)}: " if path or e.filename else ""
    hint = " (was standard output closed, `>&-`?)" if e.errno == errno.EBADF else ""
    elsewhere = "write to another file" if where else "send the output elsewhere"
    advice = write_advice(e, elsewhere, path)
    advice = f"; {advice}" if advice else ""
    return click.ClickException(f"cannot write the output: {where}{e.strerror or e}{hint}{advice}")


def drop_stdout() -> None:
    """Point stdout at /dev/null, so that Python's own final flush of what could not be written
    cannot fail a second time (a traceback at exit)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a real file (tests' in-memory streams)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def stdout_console(**options):
    """A rich Console onto stdout that leaves a reader that went away (`| head`) to the command
    boundary, like every other output (rich on its own exits 1). Its width is the terminal's, a
    plain one's too (TERM=dumb: Emacs' shell), which rich would take for 80 columns whatever
    COLUMNS says."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    console = _Console(file=sys.stdout, **options)
    if console.is_dumb_terminal and "width" not in options:
        size = shutil.get_terminal_size()  # COLUMNS and LINES, else the terminal's own
        console.size = (size.columns, size.lines)  # rich keeps its 80 unless given both
    return console


def write_output(output: str | None, emit):
    """emit(stream) onto stdout (None or '-': the command boundary handles write errors), or FILE:
    atomically for a regular or new file (a failed write leaves no half-written FILE, and an
    existing one as it was), straight for a device or a pipe (`-o /dev/stderr`, a FIFO), which
    cannot be replaced, and through the descriptor itself for /dev/stdout, /dev/fd/N (`>> log`
    appends). A symbolic link is followed: the file it points to is what is written. A file that
    holds a saved model, or that is read-only, is never replaced."""
    from charrnn.fsutil import atomic_write

    if output is None or output == "-":  # '-' is stdout, as for every Unix tool
        # (`>> best.pt` was refused as the command began: refuse_stdout_onto_own_files)
        # errors=None: stdout as the command boundary set it up (a stop's writes kept whole),
        # which "strict" would replace with a stream of its own where stdout is not strict
        return _whole(click.get_text_stream("stdout", errors=None), emit)
    try:
        regular = os.path.isfile(output)  # a link: the file it points to
        if regular:
            refuse_to_replace(output)
        if (fd := _descriptor(output)) is not None:  # where the shell opened it, as it opened it
            with open(os.dup(fd), "w", encoding="utf-8", newline="") as out:
                return _whole(out, emit)
        if os.path.exists(output) and not regular:  # a FIFO, a device, >(cmd)
            with open(output, "w", encoding="utf-8", newline="") as out:
                return _whole(out, emit)
        target = output_place(output)  # a link stays a link; its target gets the text
        result = []
        atomic_write(Path(target), lambda f: result.append(emit(codecs.getwriter("utf-8")(f))))
        return result[0]
    except OSError as e:
        if e.errno == errno.EPIPE:  # the reader left (`-o /dev/stdout | head`): as for stdout
            raise
        raise cannot_write(e, output) from None


def output_place(output: str) -> str:
    """output_target, or the one-line error where a folder on its way is missing or a file."""
    try:
        return output_target(output)
    except (FileNotFoundError, NotADirectoryError) as e:
        what = "is a file, not a folder;" if e.errno == errno.ENOTDIR else "does not exist;"
        what += " create it first, or" * (e.errno == errno.ENOENT)
        raise click.ClickException(
            f"cannot write the output: {output}: {e.filename} {what} write to another file"
        ) from None


def output_target(output: str, links: int = 40) -> str:
    """The file that opening `output` to write creates or replaces, found as the system finds it,
    part by part; OSError where the system refuses the name, its filename the part at fault: a
    part before the last that is a file or is not there (`best.pt/../best.pt`, `gone/../p.txt`),
    at the end of a link too. (os.path.realpath cancels `x/..` on paper, and would name best.pt,
    a file no check saw.)"""
    parent, name = os.path.split(output)
    _walk_folder(parent or ".")
    if name in ("", ".", ".."):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), output)
    path = os.path.join(os.path.realpath(parent or "."), name)
    if not os.path.islink(path):
        return path
    if links == 0:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), output)
    return output_target(os.path.join(os.path.dirname(path), os.readlink(path)), links - 1)


def _walk_folder(folder: str) -> None:
    """Nothing where `folder` is one, walked as the system walks it; else NotADirectoryError or
    FileNotFoundError whose filename is its first part that is a file, or is not there."""
    if os.path.isdir(folder):
        return
    parts = folder.split(os.sep)
    for i in range(1, len(parts) + 1):
        part = os.sep.join(parts[:i]) or os.sep
        try:
            mode = os.stat(part).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), part) from None
        if not stat.S_ISDIR(mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), part)
    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), folder)


def binary(stream):
    """The byte stream under a text stream that write_output gives: the file's (an atomic write)
    or stdout's, for an output of bytes (a figure, an ONNX model)."""
    if isinstance(stream, codecs.StreamWriter):  # the atomic file's writer
        return stream.stream
    return stream.buffer  # stdout's, under any wrapper of it


def _whole(stream, emit):
    """emit(stream), then an error where the stream is a pipe whose reader has left, as a failed
    write would have raised (so no `Wrote ...` follows it)."""
    result = emit(stream)
    stream.flush()
    check_reader(stream)
    return result


def check_reader(stream) -> None:
    """A BrokenPipeError, as a failed write would raise, where `stream` is a pipe whose reader
    has left: for an output written whole at the end (`sample -n 4 --json | head -c 100`), asked
    along the way, so that the work stops when the reader does."""
    if _reader_left(stream):
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def _reader_left(stream) -> bool:
    """Whether `stream` is a pipe whose reader has closed it. A write the reader's leaving cuts
    short returns without an error (Python drops the rest of it: `export - | head -c 1`), so an
    output written whole in one call is checked after it."""
    import select

    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no descriptor, or no poll (Windows)
        return False


def refuse_stdout_onto_own_files() -> None:
    """An error where standard output is a regular file charrnn itself reads: a saved model (a
    run's best.pt, `>> best.pt`), a run's metrics.jsonl, or a file of the corpus cache (`train
    pystdlib >> ~/.cache/charrnn/pystdlib-py3.11.txt` would change the corpus every later run
    reads, and fail its checksum). Checked for every command, before it reads anything."""
    if (fd := _regular_file_fd(sys.stdout)) is None:
        return
    refuse_saved_model(f"/dev/fd/{fd}", "standard output", strict=False)
    try:  # its path, where the system says it (Linux); elsewhere the model check alone
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        cache = Path(os.path.realpath(cache_dir()))
    except (OSError, ValueError):
        return
    if path.name == "metrics.jsonl" and _in_a_run(path.parent):
        raise click.ClickException(
            f"standard output is {path}, a run's record of its training (which runs and plot "
            "read); writing into it would change that record: send the output elsewhere"
        )
    if cache in path.parents:
        raise click.ClickException(
            f"standard output is {path}, a file of the corpus cache ({cache}), which training "
            "reads; writing into it would change that corpus: send the output elsewhere"
        )


def _regular_file_fd(stream) -> int | None:
    """The descriptor of `stream` where it is a regular file, else None (a pipe, a terminal, a
    stream without one)."""
    try:
        fd = stream.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return None


def _descriptor(path: str) -> int | None:
    """The open descriptor `path` names (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N),
    however it is spelt (/dev//stdout, /proc/thread-self/fd/1: its folder as the system finds
    it), or None. Missed, a spelling would be written as a file: `>> log` replaced, not appended."""
    try:
        folder, name = os.path.realpath(os.path.dirname(path) or "."), os.path.basename(path)
    except (OSError, ValueError):
        return None
    own = rf"/proc/{os.getpid()}(/task/\d+)?/fd"  # what /dev/fd and /proc/self/fd lead to
    if folder == "/dev" and name in ("stdout", "stderr"):
        fd = 1 if name == "stdout" else 2
    elif re.fullmatch(r"\d+", name, re.ASCII) and re.fullmatch(rf"/dev/fd|{own}", folder):
        fd = int(name)
    else:
        return None
    try:
        os.fstat(fd)
    except OSError:
        return None  # not open here: the path is written as any other, and fails as it fails
    return fd


def refuse_to_replace(path: str) -> None:
    """An error where the existing regular file `path` must not be replaced by an output: it holds
    a saved model (refuse_saved_model), or it is read-only (an atomic replace needs only its
    folder's permission, so the file's own is checked here)."""
    refuse_saved_model(path)
    real = Path(os.path.realpath(path))
    if real.name == "metrics.jsonl" and _in_a_run(real.parent):
        raise click.ClickException(
            f"{path} is a run's record of its training (metrics.jsonl, which runs and plot read); "
            "writing over it would lose it: give another output file"
        )
    # by its mode bits too: root may write any file, and would replace one marked read-only
    if not os.access(path, os.W_OK) or not os.stat(path).st_mode & 0o222:
        raise cannot_write(PermissionError(errno.EACCES, os.strerror(errno.EACCES)), path)


def _in_a_run(folder: Path) -> bool:
    from charrnn.errors import CharRNNError
    from charrnn.runs import RunDir

    try:
        return RunDir(folder).has_checkpoint()
    except CharRNNError:
        return False


def refuse_reading_into(
    output: str | None, inputs: Sequence[tuple[str, str | None]], folders: bool = False
) -> None:
    """An error where the output file `output` (None or '-': standard output's file) is a file
    the command reads: `inputs` gives each as (what the message calls it, its path or '-' for
    standard input, or None where not read). Written over, that text would be lost (an atomic
    write reads it whole first, then replaces it); written into, changed as it is read.
    `folders`: an input may be a folder, whose files are read (train's corpus); elsewhere a
    folder is no text, and its reader says so."""
    if output is None or output == "-":  # stdout: a file the shell opened (`>> p.txt`), as cat
        if (fd := _regular_file_fd(sys.stdout)) is None:  # refuses "input file is output file"
            return
        out, output, instead = os.fstat(fd), "standard output", "send the output elsewhere"
    else:
        instead = "give another output file"
        try:
            out = os.stat(output)
        except (OSError, ValueError):  # not there yet; or write_output says what it cannot write
            return
    if not stat.S_ISREG(out.st_mode):
        return
    for label, path in inputs:
        try:
            info = None if path is None else os.fstat(0) if path == "-" else os.stat(path)
        except (OSError, ValueError):
            continue
        is_folder = folders and info is not None and stat.S_ISDIR(info.st_mode)
        if is_folder and (inside := _holding(path, out)):
            label, info = f"{inside}, a file of {label}", out
        if info is not None and os.path.samestat(out, info):
            raise click.ClickException(
                f"{output} is {label}: writing over it would lose that text; {instead}"
            )


def _holding(folder: str, wanted: os.stat_result) -> str | None:
    """The path of a file under `folder` (hidden ones left out, as a corpus folder is read) that
    is the file `wanted`, or None."""
    for root, dirs, names in os.walk(folder):  # not into links: one back up would loop
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            try:
                if not name.startswith(".") and os.path.samestat(
                    wanted, os.stat(os.path.join(root, name))
                ):
                    return os.path.join(root, name)
            except OSError:
                continue
    return None


# What torch.save writes: a zip archive holding a pickle, or (before PyTorch 1.6) a pickle whose
# first object is this magic number, a 10-byte LONG1 (after the protocol, and a frame from 4 on).
_LEGACY_TORCH = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def refuse_saved_model(output: str, name: str | None = None, strict: bool = True) -> None:
    """An error where the output file `output` (`name` in the message) is one torch.save wrote (a
    checkpoint, a run's best.pt), or, where `strict`, cannot be read to tell: a typo such as
    `-o best.pt` must not replace a model with text."""
    import zipfile

    from charrnn.fsutil import ZIP

    name = name or output
    try:
        with open(output, "rb") as f:  # a link: the file it points to, which is what is written
            head = f.read(32)
        if head.startswith(ZIP):
            with zipfile.ZipFile(output) as archive:
                saved = any(n.endswith("data.pkl") for n in archive.namelist())
        else:
            saved = head.startswith(b"\x80") and _LEGACY_TORCH in head
    except FileNotFoundError:
        return
    except zipfile.BadZipFile:
        saved = False  # a zip file cut short, not torch's: replaced as any other file
    except OSError as e:
        if not strict:
            return
        raise click.ClickException(
            f"{name} cannot be read ({e.strerror or e}) to check that it holds no saved model; "
            "give another output file"
        ) from None
    if saved:
        raise click.ClickException(
            f"{name} holds a saved model (a torch archive); writing over it would lose it: "
            "give another output file"
        )


# Every character that some reader takes for a line break (str.splitlines' set), and the tab.
_BREAKS = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def print_table(
    header,
    rows,
    right,
    title: str | None = None,
    overflow: str = "ellipsis",
    optional: tuple[str, ...] = (),
    spare: tuple[str, ...] = (),
    prose: tuple[str, ...] = (),
    whole: tuple[str, ...] = (),
) -> None:
    """A table on a terminal (column i right-aligned where right(i, name)); piped, tab-separated
    lines under a header line, for scripts: every character as it is, nothing cut or styled. The
    `optional` columns are left out of the terminal's table where every row's is empty, and the
    `spare` ones, in their order, while it is wider than the terminal (room for the others on a
    narrow terminal, rather than every cell folded); the `prose` columns wrap at PROSE_WIDTH;
    the lines keep every column, in full, for scripts. A figure (a right-aligned column) is never
    folded or cut, nor a `whole` column's text (a name the user types), nor a word of text of up
    to WORD_WIDTH characters: a terminal too narrow for them gets the table wider than itself
    (its lines wrap), not a figure or a name in pieces."""
    if not sys.stdout.isatty():
        print_tsv(header, rows)
        return
    # as piped: control characters escaped (a name's escape sequence or line break is text, never
    # obeyed by the terminal), bytes not UTF-8 as \\xNN
    rows = [[shown_field(cell) for cell in row] for row in rows]
    from rich.table import Table
    from rich.text import Text

    def least(i: int) -> int:
        """Column i's narrowest: a figure whole (its header too), text's words up to WORD_WIDTH."""
        cells = [header[i], *(row[i] for row in rows)]
        if right(i, header[i]) or header[i] in whole:
            return max(map(len, cells))
        return min(WORD_WIDTH, max((len(w) for c in cells for w in c.split()), default=1))

    def table_of(shown: list[int], prose_width: int | None = PROSE_WIDTH) -> Table:
        table = Table(title=title, title_justify="left", box=None)
        for i in shown:
            if right(i, header[i]):  # a figure: whole on one line, whatever else must give way
                table.add_column(header[i], justify="right", no_wrap=True, min_width=least(i))
                continue
            if header[i] in whole:  # a name: on one line, whole
                table.add_column(header[i], no_wrap=True, min_width=least(i))
                continue
            # prose wraps at PROSE_WIDTH, so that one long note does not push out the figures
            limit = prose_width if header[i] in prose else None
            table.add_column(header[i], overflow=overflow, min_width=least(i), max_width=limit)
        for row in rows:  # Text: a name is never read as markup
            table.add_row(*(Text(row[i]) for i in shown))
        return table

    console = stdout_console(highlight=False)
    shown = [
        i for i, col in enumerate(header) if col not in optional or any(row[i] for row in rows)
    ]
    left_out: list[str] = []
    unbounded = console.options.update_width(1 << 20)  # its natural width, not the terminal's

    def fits(table: Table, narrowed: int = 0) -> bool:
        """Whether `table` fits the terminal, its `narrowed` prose columns each wrapped as
        narrow as PROSE_NARROWEST (rich narrows them to fit where needed)."""
        slack = narrowed * (PROSE_WIDTH - PROSE_NARROWEST)
        return console.measure(table, options=unbounded).maximum - slack <= console.width

    table = table_of(shown, None)  # prose on one line where the terminal is wide enough
    if not fits(table):
        table = table_of(shown)
        for col in spare:
            if fits(table, sum(header[i] in prose for i in shown)):
                break
            if header.index(col) in shown:
                shown.remove(header.index(col))
                left_out.append(col)
                table = table_of(shown)
    terminal = console.width  # a table narrower than its figures would cut them: made wider
    console.width = max(terminal, sum(least(i) + 2 for i in shown))  # (+ its cell padding)
    console.print(table, crop=False)  # where rich still makes it wider: wrapped, never cut
    console.width = terminal
    if left_out:  # wrapped at the terminal's width, between words
        console.print(Text(f"(left out at this width: {', '.join(left_out)})"))


PROSE_WIDTH = 40  # characters a line of a table's prose column (print_table) holds at most
PROSE_NARROWEST = 24  # ... and at least, before a spare column is left out to make room
WORD_WIDTH = 12  # a table's text is folded inside a word longer than this ("interrupted" is not)


def print_tsv(header, rows) -> None:
    """Tab-separated lines under a header line, for scripts: every field whole on its line, as
    shown_field writes it (so names come here as they are, bytes that are not UTF-8 included)."""
    for row in (header, *rows):
        click.echo("\t".join(shown_field(field) for field in row))


def tsv_field(field: str) -> str:
    """One tab-separated field on one line: a backslash as \\\\, a tab or line break as its escape
    (\\t, \\n, \\r; the others as \\xNN or \\uNNNN), so every reader sees one row per record;
    other control characters too (\\x1b: a terminal's escape sequence, which click would strip
    from a pipe's copy and a terminal would act on)."""
    return field.translate(_FIELD_ESCAPES)


# Beyond ASCII as \\u00NN, never \\xNN: that is how shown_name writes a byte that is not UTF-8.
_FIELD_ESCAPES = {
    ord(c): c.encode("unicode_escape").decode() if c < "\x80" else f"\\u{ord(c):04x}"
    for c in _BREAKS + "".join(map(chr, [*range(32), 127, *range(128, 160)]))
} | {92: "\\\\"}


def shown_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (surrogate escapes) as \\xNN; those Python's
    locale could not decode that are UTF-8 (the C locale's beyond ASCII) as their text."""
    return as_bytes(name).decode("utf-8", "backslashreplace")


def as_bytes(name: str) -> bytes:
    """`name`'s bytes: its text as UTF-8, its surrogate escapes as the bytes they stand for."""
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte (not from a file name)
        return name.encode("utf-8", "surrogatepass")


def shown_message(message: str) -> str:
    """A message's text as one line that is only text: the control characters of a name in it
    escaped (a tab, a line break, a terminal's escape sequence), bytes that are not UTF-8 as
    \\xNN, also where a message quotes a name by its repr (which writes such a byte \\udcNN).
    Its backslashes stay as they are: a message is read, not split into fields. A value of
    thousands of characters in it (a 10,000-character -c) is cut to its start and its length."""
    message = _REPR_BYTE.sub(lambda m: f"{m[1]}\\x{m[2]}", message)
    message = shown_name(message.translate(_CONTROL_ESCAPES))
    return _LONG_VALUE.sub(_cut, message)


def _cut(value: re.Match) -> str:
    """A long value as its start and end (its punctuation after it too) and its length."""
    v = value[0]
    return f"{v[:LONG_SHOWN]}…({len(v):,} characters)…{v[-LONG_SHOWN // 5 :]}"


# A run of this many characters without a space in a message is a value given, cut to its start
_LONG_VALUE = re.compile(r"\S{1000,}")
LONG_SHOWN = 100


# repr's escape of a byte that is not UTF-8, `\udcNN`, where its backslash is not escaped itself
_REPR_BYTE = re.compile(r"(?<!\\)((?:\\\\)*)\\udc([89a-f][0-9a-f])")


_CONTROL_ESCAPES = {k: v for k, v in _FIELD_ESCAPES.items() if k != ord("\\")}


def shown_chars(text: str) -> str:
    """Characters as a quoted literal (repr), its combining marks escaped (\\u0301) as repr
    escapes a zero-width joiner: a mark printed raw stacks on the quote before it."""
    return "".join(
        _escaped(c) if unicodedata.category(c).startswith("M") else c for c in repr(text)
    )


def _escaped(c: str) -> str:
    """One character as Python writes its escape: \\u0301, or \\U000e0100 beyond 16 bits."""
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def shown_field(name: str) -> str:
    """A name as one field of one line (tsv_field), then its bytes that are not UTF-8 as \\xNN:
    in this order, a byte stays apart from a backslash of the name itself (written \\\\)."""
    return shown_name(tsv_field(name))


def shown_path(path) -> str:
    """A path as text for a page: bytes that are not UTF-8 show as U+FFFD (JSON gives the path
    exact: json_line)."""
    return as_bytes(str(path)).decode("utf-8", "replace")
