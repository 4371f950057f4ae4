"""The `charrnn` command's entry, and `python -m charrnn`: the command line, loaded where a Ctrl-C
in the moment it takes to load exits 130 quietly, as it does once a command runs."""

import os
import sys

# Made before it is needed: where memory ran out so far that the error could not be told, its
# line is written without allocating anything more
OUT_OF_MEMORY = (
    b"Error: out of memory: close other programs, or raise the memory limit (ulimit -v)\n"
)


def main() -> None:
    try:
        from charrnn.cli import main as run
    except KeyboardInterrupt:  # no traceback of half-loaded modules for a user's Ctrl-C
        sys.exit(130)
    try:
        run()
    except SystemExit as e:
        leave(e.code)
    except MemoryError:  # raised again as the command's own error was being written
        os.write(2, OUT_OF_MEMORY)
        os._exit(1)


def leave(code) -> None:
    """Exit with `code` at once, without the interpreter's teardown, which takes torch half a
    second after every command (a pipeline waits for it, and a --time budget counts it). All the
    commands' files are closed by then; stdout and stderr are flushed here as the teardown would.
    Where that fails, or `code` is a message, Python's own exit says so."""
    if code is not None and type(code) is not int:
        raise SystemExit(code)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code or 0)


if __name__ == "__main__":
    main()
