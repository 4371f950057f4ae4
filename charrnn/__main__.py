"""The `charrnn` command's entry, and `python -m charrnn`: the command line, loaded where a Ctrl-C
in the moment it takes to load exits 130 quietly, as it does once a command runs."""

import sys


def main() -> None:
    try:
        from charrnn.cli import main as run
    except KeyboardInterrupt:  # no traceback of half-loaded modules for a user's Ctrl-C
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
