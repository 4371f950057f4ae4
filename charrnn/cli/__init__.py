"""The `charrnn` command line: the only part of charrnn that prints, reads the environment or
parses units.

stdout carries the product (generated text, or a path a script needs); progress and messages go to
stderr. A CharRNNError becomes one line, `Error: ...`, exit 1; bad usage exits 2. torch and the
library modules are imported inside the commands, so `charrnn --help` answers at once.
"""

from __future__ import annotations

import click

from charrnn import __version__
from charrnn.cli.common import refuse_stdout_onto_own_files
from charrnn.cli.export import export
from charrnn.cli.inspect import inspect
from charrnn.cli.memory import memory
from charrnn.cli.misc import corpus, runs
from charrnn.cli.other_names import (
    SingleDashGroup,
    another_tools_name,
    check_single_dash_words,
    checkpoint_as_argument,
    other_name_hint,
)
from charrnn.cli.pauses import pause_clock
from charrnn.cli.plot import plot
from charrnn.cli.sample import sample
from charrnn.cli.score import score
from charrnn.cli.signals import (
    command_boundary,
    hold_closed_stderr,
    ignore_stops,
    load_torch_whole,
    messages_may_close,
    own_the_process,
    refuse_a_deleted_folder,
    usable_terminal_size,
)
from charrnn.cli.train import train


class _Commands(SingleDashGroup):
    """The `charrnn` group: every command runs inside the shared command_boundary, from the
    parsing of its arguments on."""

    def make_context(self, *args, **kwargs):
        usable_terminal_size()  # (for the help too)
        with command_boundary():  # what it writes too: `charrnn --help > /dev/full`
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        given = [*getattr(ctx, "_protected_args", ()), *ctx.args]  # the command's own, as typed
        with command_boundary():
            try:
                if given and (cmd := self.get_command(ctx, given[0])):
                    check_single_dash_words(cmd, given[1:], self)  # `-length 50`, as in Lua
                if not {"-h", "--help"} & set(given):  # the help reads no file
                    refuse_a_deleted_folder()
                refuse_stdout_onto_own_files()  # `>> best.pt`, `>> metrics.jsonl`, the cache's
                return super().invoke(ctx)
            except click.UsageError as e:
                if e.message.startswith("Got unexpected extra argument") and "" in given:
                    e.message += ": an empty argument (an unset shell variable?) is one too"
                elif e.message.startswith("Got unexpected extra argument") and e.ctx is not None:
                    e.message += checkpoint_as_argument(e.ctx.command, given[1:], e.message)
                # a name from another char-rnn tool (rnn_size): the option it means here
                hint = isinstance(e, click.NoSuchOption) and e.ctx is not None
                if hint and (hint := other_name_hint(e.ctx.command, e.option_name, self)):
                    e.message = f"{e.message.rstrip('.')}. {hint}"
                    if another_tools_name(e.option_name):  # click's guess (--size) misleads
                        e.possibilities = None
                    else:  # named where it is: a guess here only where it holds the word typed
                        word = e.option_name.lstrip("-")  # (--prime: --sample-prime; --lr: none)
                        guesses = [p for p in e.possibilities or () if word in p]
                        e.possibilities = guesses or None
                # click's parser says "Option '-c' requires an argument" with no context, so
                # without the usage lines every other usage error has: the command's, here
                if e.ctx is None and given and (cmd := self.get_command(ctx, given[0])):
                    e.ctx = click.Context(cmd, info_name=given[0], parent=ctx)
                raise


@click.group(
    cls=_Commands,
    # every option with a default shows it in its help
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "show_default": True,
    },
    epilog="""\b
Examples:
  charrnn train corpus.txt                  # learn; checkpoints in ./checkpoints/corpus
  charrnn sample --temp 0.8                 # write text from the latest run to stdout
  charrnn sample --prime "ROMEO:" --length 500 --seed 1 | grep -c ROMEO
  cat a.txt b.txt | charrnn train - --name mixed
  charrnn train pystdlib --time 3m          # a built-in corpus, made offline
  charrnn sample -n 4 --stop '\\n\\n' --json   # four paragraphs, as JSON lines
  charrnn score --per-line notes.txt        # how typical each line is, in bits per character
  charrnn runs                              # what has been trained, and how well
  charrnn plot lstm gru -o cells.png        # learning curves of two runs, as a figure
  charrnn inspect play.txt --html page.html --find-units   # inside the model, in the browser
  charrnn export -c shakespeare page.html   # a page that writes text in any browser, offline
""",
)
@click.version_option(__version__, prog_name="charrnn")
def cli():
    """Train a stacked LSTM (or GRU, or RNN) on any text, character by character, and write new text
    in its style."""


def main():
    hold_closed_stderr()
    # from the start: a train's time budget leaves out a stop (Ctrl-Z) even while torch loads
    with pause_clock() as clock:
        load_torch_whole()
        own_the_process()
        try:
            # click shows a usage error or an `Error:` line after the command's own boundary: a
            # stderr that cannot be written must not turn its exit status 2 into Python's 1
            with messages_may_close():
                cli(prog_name="charrnn", obj=clock)
        finally:  # done, or stopping: a stop signal now has nothing left to stop
            ignore_stops()


for command in (train, sample, score, inspect, memory, export, runs, plot, corpus):
    cli.add_command(command)
