"""Stop signals and exit statuses, and the edge every command runs inside (command_boundary):
Ctrl-C, SIGTERM and SIGHUP end a command with its clean-up run and 128 + the signal's number."""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import re
import signal
import sys
import threading

import click

from charrnn.cli.common import cannot_write, drop_stdout, shown_message
from charrnn.devices import address_space_limit
from charrnn.errors import CharRNNError
from charrnn.fsutil import size_text

# How an output that cannot take what is written fails: a full disk or quota, a device error, a
# stdout that was closed (`>&-`), a file over its size limit. EPIPE (the reader left) is no error.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EBADF, errno.EFBIG}


# What to do when memory runs out: train can ask for less; every command can free some.
TRAIN_NEEDS_LESS = (
    "a smaller model (--size, --hidden, --layers), --batch-size or --seq-len needs less; or "
    "close other programs, or raise the memory limit (ulimit -v)"
)
FREE_MEMORY = "close other programs, or raise the memory limit (ulimit -v)"


# compiled as the module loads: compiling it as memory runs out would fail too
ASKED = re.compile(r"tried to allocate (\d+(?:\.\d+)?) ?(bytes|[KMGT]iB)")


def out_of_memory(e: BaseException) -> bool:
    """Whether `e` says memory ran out: Python's MemoryError, or torch's allocators (CPU: "can't
    allocate memory"; CUDA and others: "out of memory"); under a memory limit, also what torch's
    libraries raise when they cannot allocate without saying so (oneDNN's "could not create a
    primitive", a SystemError from a module torch imports as it runs)."""
    text = str(e).lower()
    if isinstance(e, MemoryError) or any(
        words in text for words in ("can't allocate memory", "out of memory", "bad_alloc")
    ):
        return True
    unsaid = isinstance(e, SystemError) or "could not create a primitive" in text
    return unsaid and memory_limited()


def memory_limited() -> bool:
    """Whether the process runs under a limit of its address space (`ulimit -v`)."""
    return address_space_limit() is not None


def out_of_memory_message(e: BaseException) -> str:
    """One line for memory that ran out: how much was asked for, where torch says, and what to
    ask for less of, for the command that ran."""
    asked = ASKED.search(str(e))
    size = ""
    if asked:
        n, unit = float(asked.group(1)), asked.group(2)
        n *= 1 if unit == "bytes" else 1024 ** "_KMGT".index(unit[0])
        size = f" (it asked for {size_text(round(n))} more)"
    ctx = click.get_current_context(silent=True)
    command = ctx and (ctx.invoked_subcommand or ctx.command.name)  # the group's, or its own
    advice = TRAIN_NEEDS_LESS if command == "train" else FREE_MEMORY
    return f"out of memory{size}: {advice}"


def _causes(e: BaseException) -> list[BaseException]:
    """`e` and the exceptions it was raised from, first to last."""
    chain = [e]
    while (e := e.__cause__ or e.__context__) is not None and e not in chain:
        chain.append(e)
    return chain


def _torch_failed(e: ImportError) -> bool:
    """Whether `e` is torch (or the numpy it loads) failing to load: its libraries cannot be
    mapped (a memory limit), or the installation is broken."""
    for cause in _causes(e):
        root = (getattr(cause, "name", None) or "").split(".")[0]
        if root in ("torch", "numpy") or "libtorch" in str(cause) or "numpy" in str(cause):
            return True
    return False


def _cannot_load_torch(e: ImportError) -> str:
    """One line for torch that cannot load: the library's own words, from the deepest cause
    (numpy's message is a page of advice around it), and what to do."""
    text = next((str(c).strip() for c in reversed(_causes(e)) if str(c).strip()), "")
    why = text.splitlines()[0] if text else type(e).__name__
    words = ("map segment", "allocate", "memory", "bad_alloc")
    # a SystemError in torch's import is an extension that failed to allocate, without saying so
    ran_out = any(isinstance(c, (MemoryError, SystemError)) for c in _causes(e))
    if ran_out or any(w in why.lower() for w in words):
        advice = f"memory ran out: {FREE_MEMORY}"
    elif memory_limited():  # a module left half-made by an allocation that failed unsaid
        advice = (
            "under a memory limit this is memory that ran out: raise the limit (ulimit -v); if "
            "it is not that, reinstall it: pip install -c constraints.txt torch"
        )
    else:
        advice = "reinstall it: pip install -c constraints.txt torch"
    return f"cannot load torch ({why}); {advice}"


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where the command is: the exit status is 128 + `signum` (130 for
    Ctrl-C, 143 for SIGTERM, 129 for a hang-up), as a shell reports a command a signal ended."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The exit status for a stop: 128 + its signal (Ctrl-C: 130)."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


# The signals that ask a command to stop, each only where it is not ignored: `nohup charrnn
# train ...` must go on when the terminal goes away (SIGHUP), and a script's `charrnn train ... &`
# when Ctrl-C stops the script (a shell without job control starts its background jobs with
# SIGINT ignored, so that Ctrl-C does not reach them).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _installable(signum: int) -> bool:
    return signal.getsignal(signum) != signal.SIG_IGN


@contextlib.contextmanager
def _routed(signals, handler):
    """`handler` for each of `signals` during the block; the handlers there before, after it."""
    previous = {}
    try:
        for s in signals:
            previous[s] = signal.signal(s, handler)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def stop_signals(on_stop):
    """Route the stop signals to `on_stop`: the first, of any kind, asks for a clean stop; a second
    one, of any kind, raises Interrupted where the program is (a stop without saving). Yields the
    list of signals received, first first."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        if len(received) > 1:
            raise Interrupted(signum)
        on_stop()

    with _routed([s for s in STOP_SIGNALS if _installable(s)], handler):
        yield received


def _interrupt(signum, frame):
    if signum == getattr(signal, "SIGHUP", None):  # the terminal is gone: the kernel may send
        signal.signal(signum, signal.SIG_IGN)  # it twice, and again means nothing more
    if _WholeWrites.depth:  # a write to stdout waits on its reader
        if _WholeWrites.held is None:  # it ends first, then the stop acts: whole lines out
            _WholeWrites.held = signum
            return
        # a second stop while it waits: the reader may never read; give the output up and stop
        _WholeWrites.held = None
        drop_stdout()
    raise Interrupted(signum)


_PIECE = 2048  # characters: at most 8 KB in UTF-8, what io.BufferedWriter takes into its buffer


class _WholeWrites:
    """stdout whose writes end before a stop signal acts. A stop that arrives while a write waits
    on a slow reader (a full pipe) is raised where the write ends, so that the reader gets whole
    lines (`--json` lines a parser can read), not one cut where the pipe filled and the rest of
    its block lost; a second stop meanwhile gives the output up and stops at once."""

    depth = 0  # writes in progress in the main thread (signals are acted on there)
    held: int | None = None  # the stop that arrived during one

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return self._whole(self._pieces, text)

    def _pieces(self, text) -> int:
        # CPython's TextIOWrapper hands a text over 8 KB to its buffer in one call, and a write
        # that a handled signal cut short there is lost past what the pipe took: the buffer
        # reports a short count, which the wrapper ignores. Pieces of at most 8 KB (2,048
        # characters of up to 4 bytes) go through the buffer, which writes them whole.
        if not isinstance(text, str) or len(text) <= _PIECE:
            return self.stream.write(text)
        for i in range(0, len(text), _PIECE):
            self.stream.write(text[i : i + _PIECE])
        return len(text)

    def flush(self):
        return self._whole(self.stream.flush)

    def __getattr__(self, name):  # isatty, fileno, encoding...: the stream's own
        return getattr(self.stream, name)

    @classmethod
    def _whole(cls, call, *args):
        if threading.current_thread() is not threading.main_thread():
            return call(*args)
        cls.depth += 1
        try:
            result = call(*args)
        except BaseException as e:
            cls.depth -= 1
            if not cls.depth:
                cls.held = None  # the write's own failure (a reader that left) says how it ends
            # a terminal that hung up fails the write before its SIGHUP arrives: the command
            # ends as hung up (command_boundary), and that signal, due any moment, must not break
            # into the clean-up on the way there
            hung_up = isinstance(e, OSError) and e.errno == errno.EIO
            if hung_up and hasattr(signal, "SIGHUP") and _installable(signal.SIGHUP):
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
            raise
        cls.depth -= 1
        if cls.held is not None and not cls.depth:
            signum, cls.held = cls.held, None
            raise Interrupted(signum)
        return result


@contextlib.contextmanager
def _whole_writes():
    """sys.stdout as _WholeWrites for the block (once, where blocks nest), around the text stream
    click writes through (stdout itself, or where its encoding is ASCII by mistake a UTF-8 one on
    the same file), so that click.echo and click.get_text_stream keep to the wrapper."""
    if isinstance(sys.stdout, _WholeWrites) or sys.stdout is None:
        yield
        return
    real = sys.stdout
    text = click.get_text_stream("stdout", errors=None)
    if text is not real:
        real.flush()  # what it holds goes first
    sys.stdout = _WholeWrites(text)
    try:
        yield
        if text is not real:
            sys.stdout.flush()  # (a failure to write it is the command's)
    finally:
        sys.stdout = real


def _flush_whole() -> None:
    """Stopping: what whole lines stdout still holds go to its reader, with Ctrl-C still acting,
    so that a second stop (a reader that never reads) ends the wait and gives them up."""
    try:
        _WholeWrites(sys.stdout).flush()
    except (KeyboardInterrupt, OSError, ValueError, AttributeError):  # ValueError: closed
        _WholeWrites.held = None
        drop_stdout()


def own_the_process() -> None:
    """For the command line's own process (main): Ctrl-C raises Interrupted as Python's default
    handler would (where it is not ignored: a background job's). That _interrupt is Ctrl-C's
    handler is how command_boundary knows that the process ends with the command."""
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)


def ignore_stops() -> None:
    """Ignore the stop signals from now on: the process is ending. GNU timeout sends its signal
    to the command and to its process group, so two arrive; the second, raised while Python
    shuts down, printed a traceback from an exit handler (or "Aborted!" and exit 1 from click)."""
    if threading.current_thread() is threading.main_thread():
        for s in STOP_SIGNALS:
            if _installable(s):
                signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def _deferred_stops():
    """The stop signals held back for the block, then acted on: one that arrives is raised as
    Interrupted where the block ends. Signals ignored (`nohup`, a background job) stay ignored."""
    held: list[int] = []
    wanted = [s for s in STOP_SIGNALS if signal.getsignal(s) not in (signal.SIG_IGN, None)]
    with _routed(wanted, lambda signum, frame: held.append(signum)):
        yield
    if held:
        raise Interrupted(held[0])


class _Whole:
    """A loader that runs another's exec_module with the stop signals held back."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            if threading.current_thread() is not threading.main_thread():  # signals: main's
                return self.loader.exec_module(module)
            with _deferred_stops():
                self.loader.exec_module(module)
        except (ImportError, KeyboardInterrupt):
            raise
        except Exception as e:  # MemoryError, bad_alloc, SystemError: torch half-made (ulimit -v)
            why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise ImportError(why, name=module.__name__) from e

    def __getattr__(self, name):  # get_resource_reader, is_package...: the loader's own
        return getattr(self.loader, name)


def refuse_a_deleted_folder() -> None:
    """A one-line error where the current folder was deleted (or moved away) under the shell: a
    relative path would name nothing (`runs` would find no runs in ./checkpoints), and torch's
    oneMKL ends the process as it loads."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise click.ClickException(
            "the current folder no longer exists (deleted or moved away): cd into one that "
            "does, and run the command again"
        ) from None


def usable_terminal_size() -> None:
    """COLUMNS and LINES that are not a count of one or more (COLUMNS=0, LINES=abc) left out of
    the environment, as shutil leaves them out: rich would take COLUMNS=0 for a screen of no
    columns and draw nothing."""
    for name in ("COLUMNS", "LINES"):
        value = os.environ.get(name)
        if value is not None and not (value.strip().isdigit() and int(value) > 0):
            del os.environ[name]


class _TorchLoadsWhole:
    """A finder that makes torch's import uninterruptible: Ctrl-C in the second it takes (inside
    numpy's or a C extension's initialisation) can abort the interpreter or leave it half-made,
    with a traceback or a core dump; held back until torch is whole, it stops the command as
    anywhere else (exit 130)."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # once; the other finders find torch itself
        refuse_a_deleted_folder()  # oneMKL, loading with torch, ends the process (exit 2)
        for finder in list(sys.meta_path):
            spec = getattr(finder, "find_spec", lambda *a: None)(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Whole(spec.loader)
                return spec
        return None


def load_torch_whole() -> None:
    """Make the first `import torch` of this process uninterruptible (see _TorchLoadsWhole); for
    the command line's own process, in its main thread, before torch is imported."""
    if "torch" in sys.modules or threading.current_thread() is not threading.main_thread():
        return
    if not any(isinstance(f, _TorchLoadsWhole) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchLoadsWhole())


def _stdout_encoding(encoding: str) -> bool:
    """Whether `encoding` is standard output's (by the codec: latin-1 is iso8859-1)."""
    try:
        return codecs.lookup(encoding).name == codecs.lookup(sys.stdout.encoding).name
    except (LookupError, TypeError, AttributeError):  # no such codec, no stdout, no encoding
        return False


class _Messages:
    """stderr, where a reader that left (`2> >(head -1)`) or a stderr that cannot be written
    silences the messages instead of stopping the command: they are not its product, and a run
    cut short must not exit 0."""

    def __init__(self, stream):
        self.stream, self.gone = stream, False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                try:
                    self.stream.write(text)
                except UnicodeEncodeError:  # a name its encoding lacks (PYTHONIOENCODING)
                    encoding = self.stream.encoding
                    self.stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            except OSError:  # the reader left, a full disk (`2>/dev/full`), a closed fd 2
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError:
                self.gone = True

    def __getattr__(self, name):  # isatty, fileno, encoding...: the stream's own
        return getattr(self.stream, name)


@contextlib.contextmanager
def messages_may_close():
    """sys.stderr as _Messages for the block (once, where blocks nest); where it was closed
    (`2>&-`), /dev/null, held open so that no file opened meanwhile (a run's lock) becomes fd 2."""
    if isinstance(sys.stderr, _Messages):
        yield
        return
    real = sys.stderr
    closed = open(os.devnull, "w") if real is None else None  # noqa: SIM115
    sys.stderr = _Messages(real or closed)
    try:
        yield
    finally:
        sys.stderr = real
        if closed is not None:
            closed.close()


def hold_closed_stderr() -> None:
    """Started with stderr closed (`2>&-`): messages, `Error:` lines and usage errors go nowhere,
    as they would in C, never to stdout (click writes a message it has no stderr for to stdout);
    the /dev/null held as fd 2 also keeps a file opened later from becoming fd 2."""
    if sys.stderr is None:
        sys.stderr = open(os.open(os.devnull, os.O_WRONLY), "w", encoding="utf-8")  # noqa: SIM115


def fail_closed_stdout() -> None:
    """Started with stdout closed (`>&-`): make writing to it fail, loudly, as it would in C."""
    if sys.stdout is None:
        # A read-only fd: each write fails with EBADF, as writing to the closed fd 1 would; holding
        # it also keeps fd 1 from being reused by a file that would then receive stdout's text.
        sys.stdout = open(os.open(os.devnull, os.O_RDONLY), "w", encoding="utf-8")  # noqa: SIM115


def _a_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # no stream, a closed one, an in-memory one
        return False


# What click (8.2 on) raises for a group called without a command (`charrnn`, `charrnn corpus`):
# its message is the group's help, whole, lines and all
_HELP_AS_AN_ERROR = getattr(click.exceptions, "NoArgsIsHelpError", ())


@contextlib.contextmanager
def command_boundary():
    """What every command shares at its edge, from start-up on: an error a user can cause
    (CharRNNError) or output that cannot be written (a full disk, a closed stdout) is one `Error:`
    line and exit 1, never a traceback; Ctrl-C exits 130 quietly (as a command does once it
    handles Ctrl-C itself); a reader that left (`| head`) ends the command quietly with exit 0,
    like any Unix filter, while a reader of stderr that left only silences the messages. SIGTERM
    and SIGHUP end it as Ctrl-C does (exit 143, 129), with its clean-up run."""
    fail_closed_stdout()
    on_a_terminal = _a_terminal(sys.stdout)  # asked now: a terminal that hung up says it is none
    # SIGTERM and SIGHUP stop a command as Ctrl-C does, by an exception where it is, so that its
    # clean-up runs (a half-written output file is removed) and the exit status names the signal.
    # Outside the main thread (tests calling commands from other threads) nothing changes.
    main = threading.current_thread() is threading.main_thread()
    others = [s for s in STOP_SIGNALS if s != signal.SIGINT and _installable(s) and main]
    try:
        with _routed(others, _interrupt), messages_may_close(), _whole_writes():
            yield
    except CharRNNError as e:
        raise click.ClickException(shown_message(str(e))) from None
    except click.ClickException as e:  # the commands' own, and bad usage: names in one line too
        if not isinstance(e, _HELP_AS_AN_ERROR):
            e.message = shown_message(e.message)
        raise
    except KeyboardInterrupt as e:
        if main and signal.getsignal(signal.SIGINT) is _interrupt:  # the process's end
            _flush_whole()
            ignore_stops()
        sys.exit(exit_status(e))
    except ImportError as e:
        if not _torch_failed(e):
            raise
        raise click.ClickException(_cannot_load_torch(e)) from None
    except (MemoryError, RuntimeError, SystemError) as e:  # torch's allocators: RuntimeError
        if not out_of_memory(e):
            raise
        raise click.ClickException(out_of_memory_message(e)) from None
    except UnicodeEncodeError as e:  # stdout's encoding lacks a character (PYTHONIOENCODING)
        if not _stdout_encoding(e.encoding):
            raise
        drop_stdout()
        code = ord(e.object[e.start])
        if 0xD800 <= code <= 0xDFFF:  # no encoding of text writes one: not the locale's doing
            raise click.ClickException(
                f"the output holds U+{code:04X}, a lone surrogate (half of a UTF-16 pair, no "
                "character), which the model learned from its text and no text file can hold; "
                "train it on the text without it"
            ) from None
        raise click.ClickException(
            f"standard output's encoding ({e.encoding}) cannot write U+{code:04X} of the output; "
            "set PYTHONIOENCODING=utf-8, or use a UTF-8 locale"
        ) from None
    except OSError as e:
        if e.errno == errno.EPIPE:
            drop_stdout()  # the reader went away (`| head`): stop quietly, like any Unix filter
            sys.exit(0)
        if e.errno == errno.EIO and on_a_terminal and hasattr(signal, "SIGHUP"):
            # the terminal hung up: its writes fail before its SIGHUP is acted on, and the
            # command ends as that hang-up ends it (129), not with advice about a disk
            drop_stdout()
            ignore_stops()
            sys.exit(128 + signal.SIGHUP)
        if e.errno not in OUTPUT_ERRNOS:
            raise
        drop_stdout()
        raise cannot_write(e) from None
