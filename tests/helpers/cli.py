"""The command as the tests run it: in this process (click's CliRunner, stdout and stderr apart) or
as a real process; and the one check every refusal must pass."""

from __future__ import annotations

import signal
import subprocess
import sys

from click.testing import CliRunner, Result

DEADLINE = 300.0  # conftest.DEADLINE: a wait for an event from another process, never a clock


def ended(text: str) -> str:
    """`text` as `sample` writes it: its last line ended with a line break (none added after
    one)."""
    return text if text.endswith("\n") else text + "\n"


def invoke(args, input=None, env: dict | None = None) -> Result:
    """`charrnn ARGS` in this process, in the current folder. An exception the command does not
    turn into an exit status is raised here: a traceback is never a result."""
    from charrnn.cli import cli

    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


def command(args) -> list:
    """The real command line of `charrnn ARGS`, run by this Python (str or bytes arguments)."""
    return [sys.executable, "-m", "charrnn", *args]


def run(args, cwd=None, **kw) -> subprocess.CompletedProcess:
    """`charrnn ARGS` as a process of its own, run to its end; text unless text=False."""
    kw.setdefault("capture_output", "stdout" not in kw and "stderr" not in kw)
    kw.setdefault("text", True)
    kw.setdefault("timeout", DEADLINE)
    return subprocess.run(command(args), cwd=cwd, **kw)


def as_from_a_terminal() -> None:
    """The stop signals' defaults in a child, as a terminal's command has them: where the suite
    itself runs as a script's background job (SIGINT ignored) or under nohup (SIGHUP ignored),
    the child would inherit them ignored, and rightly keep ignoring them. (A preexec_fn.)"""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def popen(args, cwd=None, **kw) -> subprocess.Popen:
    """`charrnn ARGS` as a process of its own, started and left running (its stop signals as
    from a terminal, unless a preexec_fn is given)."""
    kw.setdefault("preexec_fn", as_from_a_terminal)
    return subprocess.Popen(command(args), cwd=cwd, **kw)


def assert_one_error(r, code: int | tuple = 1, *words: str, alone: bool | None = None) -> str:
    """Refused as a user error: exit `code` (1, 2 for usage), nothing on stdout, no traceback, and
    one `Error:` line on stderr, its last, holding each of `words`; with `alone` (the default for
    exit 1) the only line there. `r` is a CliRunner result or a finished process; returns the
    line."""
    status = r.exit_code if isinstance(r, Result) else r.returncode
    out, err = r.stdout, r.stderr
    if isinstance(err, bytes):
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
    if isinstance(r, Result):
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    codes = code if isinstance(code, tuple) else (code,)
    assert status in codes, (status, err[-2000:])
    assert out == "" and "Traceback" not in err, (out, err[-2000:])
    lines = err.split("\n")
    assert err.endswith("\n") and lines[-2].startswith("Error: "), err[-2000:]
    assert [line for line in lines if line.startswith("Error:")] == [lines[-2]], err[-2000:]
    if alone if alone is not None else status == 1:
        assert err.count("\n") == 1, err
    for word in words:
        assert word in lines[-2], (word, lines[-2])
    return lines[-2]
