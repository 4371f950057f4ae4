"""The command line as a whole: help, durations and JSON lines; bad input to every command and
option (one line, the right exit code, no traceback, nothing written); Ctrl-C at start-up."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import torch
from conftest import DEADLINE
from helpers.cli import as_from_a_terminal, assert_one_error, invoke, popen, run
from helpers.cli import command as command_line

from charrnn.cli.options import parse_duration
from charrnn.jsonl import json_line


def test_every_command_has_help_with_examples(env):
    for args in ([], ["train"], ["sample"], ["runs"], ["corpus", "get"], ["corpus", "list"]):
        r = env([*args, "--help"])
        assert r.exit_code == 0 and "Example" in r.stdout, args


@pytest.mark.parametrize("group", [[], ["corpus"]])
def test_a_group_called_without_a_command_shows_its_help_line_by_line(group):
    """`charrnn`, `charrnn corpus`: click (8.2 on) raises the help as a usage error, whose
    message must not be made one line as an error's is."""
    r = invoke(group)
    shown = (r.stdout + r.stderr).splitlines()
    assert r.exit_code in (0, 2)  # 2 from click 8.2 on
    assert shown[0].startswith("Usage: ") and shown[0].endswith(" [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in shown


def test_every_command_says_what_it_does():
    """Each command's help begins with its summary (a statement above a docstring would drop it)."""
    import click

    from charrnn.cli import cli

    def walk(group):
        for command in group.commands.values():
            yield command
            if isinstance(command, click.Group):
                yield from walk(command)

    for command in walk(cli):
        assert command.help and command.help.strip(), command.name


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400), ("45", 45), (".5s", 0.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5m5m", "1m1h", "1d", "PT1H", "", "h", "1.5.h", "-5s"])
def test_what_is_not_a_duration_says_so_as_typed(text):
    with pytest.raises(click.BadParameter) as e:
        parse_duration(text)
    assert e.value.message == (
        f"{text!r} is not a duration; try 90s, 10m or 1h30m (units h, m and s, in that order)"
    )


def test_help_does_not_import_torch():
    code = (
        "import sys; from charrnn.cli import cli; cli(['--help'], standalone_mode=False); "
        "assert 'torch' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=DEADLINE).returncode == 0


def test_json_lines_stay_one_line_whatever_the_text():
    record = {"text": "a\x85b\u2028c\u2029d\ne", "run": "x\x85y"}
    line = json_line(record)
    assert len(line.splitlines()) == 1 and json.loads(line) == record


@pytest.mark.parametrize("columns", [12, 30, 60])
def test_a_table_on_a_narrow_terminal_never_cuts_a_figure(columns, monkeypatch, capsys):
    """Figures (right-aligned columns) are whole on a terminal of any width, and words of text
    up to WORD_WIDTH too: a table wider than the terminal wraps there, a figure in pieces
    (`4,43` over `5`, `+0…`) would read as another number."""
    import re

    from charrnn.cli import common

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", str(columns))
    header = ("name", "steps", "bits", "description", "share")
    rows = [
        ("tinyshakespeare", "1,234,567", "+0.1234", "a long text, a description", "100.0%"),
        ("x", "7", "-12.5", "several words of prose to fold", "3%"),
    ]
    figures = lambda i, name: name in ("steps", "bits", "share")  # noqa: E731
    common.print_table(header, rows, figures, overflow="fold")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    tokens = shown.split()
    for row in rows:
        for figure in row[1:3] + row[4:]:
            assert figure in tokens
    assert "…" not in shown and {"share", "steps", "bits", "fold"} <= set(tokens)
    common.print_table(header, rows, figures)  # text cut short where it must be: figures whole
    tokens = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out).split()
    assert all(figure in tokens for row in rows for figure in row[1:3] + row[4:])


@pytest.mark.parametrize(
    "args",
    [
        ["train", ""],  # an empty argument is not "the current folder"
        ["train", "corpus.txt", "--name", ""],
        ["train", "corpus.txt", "--seed", str(2**64)],  # what torch cannot take
        ["train", "corpus.txt", "--seed", "-1"],
        ["sample", "--stop", ""],
    ],
)
def test_empty_and_out_of_range_arguments_are_usage_errors(env, args):
    assert_one_error(env(args), 2)


@pytest.mark.parametrize("option", ["-c", "--temp", "--seed"])
def test_a_value_of_thousands_of_characters_is_shown_cut_in_its_error(env, option):
    """One Error line of a readable length, its start, its end and how long it was."""
    r = env(["sample", option, "x" * 10_000])
    line = assert_one_error(r, (1, 2))
    assert len(line) < 600 and "…(10," in line and "characters)…xxx" in line, line


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["sample", "-c"], " sample [OPTIONS]"),
        (["train", "x.txt", "--name"], " train [OPTIONS] [CORPUS]..."),
        (["inspect", "x.txt", "--sample"], " inspect [OPTIONS] [FILE]"),
    ],
)
def test_an_option_without_its_value_gets_the_usage_lines_every_usage_error_gets(env, args, usage):
    """click's parser raises "requires an argument" without a context (its usage lines left out,
    as no other usage error leaves them): the command's usage and its --help."""
    r = env(args)
    assert_one_error(r, 2, "requires an argument")
    first = r.stderr.splitlines()[0]
    assert first.startswith("Usage: ") and usage in first and "--help' for help." in r.stderr


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (["train", "x.txt", "--rnn_size", "128"], "Did you mean --hidden?"),  # not --size
        (["train", "x.txt", "--learning_rate", "2e-3"], "Did you mean --lr?"),
        (["train", "x.txt", "--checkpoint_every", "100"], "Did you mean --eval-every?"),
        (["train", "x.txt", "--decay_rate", "0.9"], "cosine schedule"),  # none: why
        (["sample", "--gpu", "0"], "Did you mean --device?"),
        (["sample", "-length", "50"], "takes two dashes here: --length"),  # not `-l ength`
        (["sample", "-l", "40", "-primetext", "--seed", "1"], "Did you mean --prime?"),
        (["train", "x.txt", "-rnn_size", "128"], "Did you mean --hidden?"),
        (["corpus", "list", "-json"], "takes two dashes here: --json"),
        # another command's option: named with its command
        (["sample", "-n_layer", "3"], "Did you mean `charrnn train --layers`?"),  # not -n _layer
        (["score", "--rnn_size", "4", "x.txt"], "Did you mean `charrnn train --hidden`?"),
        (["sample", "--learning_rate", "0.1"], "`charrnn train --lr`"),  # not --length
        (["train", "x.txt", "-length", "50"], "--length is an option of `charrnn sample`."),
        (["train", "x.txt", "--length", "5"], "sample`. Did you mean '--sample-length'?"),
        (["export", "--lr", "1", "p.html"], "--lr is an option of `charrnn train`."),  # no --help
        (["train", "x.txt", "--format", "x"], "--format is an option of `charrnn export`."),
        (["memory", "--time", "1", "x.txt"], "--time is an option of `charrnn train`."),
        (["sample", "-skip_unk", "1"], "Did you mean --unknown?"),  # not -s kip_unk
        (["train", "x.txt", "--dtype=float32"], "Did you mean --precision?"),  # not --time
        (["train", "x.txt", "--min_lr", "1e-4"], "ends at 5% of the peak"),  # not --lr
        (["sample", "--num_samples", "2"], "Did you mean --num-samples?"),  # as Python spells it
    ],
)
def test_another_char_rnn_tools_option_names_say_which_option_is_meant(env, args, meant):
    """char-rnn's, torch-rnn's and nanoGPT's names, and Lua's single dash (`-primetext ROMEO:`
    was read as `-p rimetext`: a sample from the wrong prime, exit 0)."""
    line = assert_one_error(env(args), 2)
    assert meant in line and "'--help'" not in line and "--force" not in line, line
    assert "Did you mean '--quiet'" not in line, line  # a guess sharing no word with it


def test_a_single_dash_word_of_every_commands_long_options_is_a_usage_error(env):
    """Every long option of any command, typed with one dash as in Lua to any command, says which
    option is meant, and where: never a short option with the rest as its value, nor a value read
    wrong."""
    from charrnn.cli import cli

    commands = {(name,): c for name, c in cli.commands.items() if not isinstance(c, click.Group)}
    commands.update({("corpus", name): c for name, c in cli.commands["corpus"].commands.items()})
    options = {o for c in commands.values() for p in c.params for o in p.opts if o[:2] == "--"}
    for path, command in commands.items():
        own = {o for p in command.params for o in p.opts}
        for option in (o for o in options if len(o) > 3):
            line = assert_one_error(env([*path, option[1:]]), 2, option[1:])
            if option in own:
                assert f"dashes here: {option}" in line, line
            else:  # where it is (or, for char-rnn's -sample, the option meant here: --temp)
                assert f"{option} is an option of" in line or "Did you mean --" in line, line


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["sample", "-outfile"], "-outfile: no such option (to give -o the value 'utfile', write"),
        (["sample", "-cshakespeare"], "(to give -c the value 'shakespeare', write -c shakespeare)"),
        (["train", "x.txt", "-batchnorm", "1"], "-batchnorm: no such option"),  # not "-b"
        (["runs", "-jx"], "-jx: no such option"),
        # before any command: click read `-help` as -h -e... ("no such option -e")
        (["-help"], "-help: an option's name takes two dashes here: --help"),
        (["-version"], "-version: an option's name takes two dashes here: --version"),
        (["corpus", "-list"], "-list: no such option; list is a command, named without a dash"),
        (["-time", "3m", "train"], "-time: no such option; --time is an option of `charrnn train`"),
        (["sample", "-outfile=x"], "-outfile: no such option"),  # not -o with "utfile=x"
        (["sample", "-seed=3"], "-seed: an option's name takes two dashes here: --seed"),
        (["runs", "-help"], "-help: an option's name takes two dashes here: --help"),
        # a command's option before its name
        (["--json", "runs"], "--json is an option of `charrnn runs`: give it after its name"),
        (["corpus", "--json", "cache"], "--json is an option of `charrnn corpus cache`: give"),
    ],
)
def test_a_single_dash_word_is_never_read_as_short_options(env, tmp_path, args, said):
    """A single-dash word of no tool's options (`-outfile`, as torch-rnn's -opencl was) was read
    as `-o utfile`: the sample went to a file named utfile, exit 0; or as flags, one of them
    unknown (`no such option -b`)."""
    assert said in assert_one_error(env(args), 2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == []


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("cv/lm.pt", "given with -c (charrnn sample -c cv/lm.pt)"),  # `th sample.lua cv/x.t7`
        ("ROMEO:", "takes none (a run or a checkpoint goes with -c, a prime with --prime)"),
    ],
)
def test_an_argument_to_sample_says_which_option_takes_it(env, extra, said):
    line = assert_one_error(env(["sample", extra]), 2, "Got unexpected extra argument")
    assert said in line


def test_a_short_option_s_value_in_the_same_word_is_still_its_value(sample, tmp_path):
    """`-l20`, `-t1e-3`, `-s7` and `-o-` (stdout) are what they always were: a number, or no
    word, in the same argument as its option."""
    r = sample("-l20", "-t1e-3", "-s7", "-o-", "-n1")
    assert r.exit_code == 0 and r.stdout, r.stderr
    assert r.stdout == sample("--length", "20", "--temp", "0.001", "--seed", "7").stdout


def test_a_value_that_looks_like_an_option_word_is_still_a_value(sample):
    """`--prime -seed` primes with the text "-seed": the check of single-dash words skips the
    value of an option that takes one."""
    r = sample("--prime", "-seed", "-l", "10", "--seed", "1", "--unknown", "skip")
    assert r.exit_code == 0 and r.stdout.startswith("seed"), r.stderr  # its "-" unknown here


# --------------------------------------------------------------------- bad input, every command


CASES = [
    # train: the corpus
    (["train", "missing.txt"], 1, "no such file"),
    (["train", "emptydir"], 1, "holds no files"),
    (["train", "hiddenonly"], 1, "holds no files"),
    (["train", "binary.bin"], 1, "binary file (NUL byte at offset 8)"),
    # a checkpoint given as text, a text as a checkpoint, a checkpoint as a run's folder
    (["train", "checkpoints/tiny/best.pt"], 1, "is a PyTorch checkpoint, not text: a model goes"),
    (["score", "-c", "tiny", "checkpoints/tiny/best.pt"], 1, "a PyTorch checkpoint, not text"),
    (["sample", "-c", "ok.txt"], 1, "the file ok.txt in the current folder is no checkpoint"),
    (["train", "ok.txt", "--init-from", "ok.txt"], 1, "ok.txt in the current folder is no"),
    (["sample", "-c", "junk.pt"], 1, "junk.pt is not a charrnn checkpoint (not a torch archive)"),
    (["plot", "checkpoints/tiny/best.pt"], 1, "a checkpoint file, not a run folder: give its"),
    (["train", "latin.txt"], 1, "not valid utf-8 text: byte 0xef at offset 2"),
    # latin-1 alone would make Chinese or Russian text mojibake
    (
        ["score", "-c", "tiny", "latin.txt"],
        1,
        "(cp1252 or latin-1 for Western European text, cp1251",
    ),
    # a model of a lone surrogate could not write its text
    (["train", "utf7.txt", "--encoding", "utf-7"], 1, "utf7.txt holds U+D83D, a lone surrogate"),
    (["train", "utf7.txt", "--encoding", "utf-7"], 1, "UTF-16 can hold), at character 7: a model"),
    (["train", "empty.txt"], 1, "corpus is empty"),
    (["train", "-"], 1, "corpus is empty (standard input)"),
    (["train", "-", "ok.txt", "-"], 2, "'-' (standard input) is given twice: give it once"),
    (["train", "ok.txt", "./ok.txt"], 1, "ok.txt is given twice: give each file once"),
    (["train", "ok.txt/"], 1, "cannot read ok.txt/: Not a directory"),
    (["train", "ok.txt/."], 1, "cannot read ok.txt/.: Not a directory"),
    (["inspect", "-c", "tiny", "./ok.txt/."], 1, "cannot read ./ok.txt/.: Not a directory"),
    (["train", "onechar.txt"], 1, "nothing to learn"),
    (["train", "small.txt"], 1, "too few for windows of 32"),
    (["train", "hugevocab.txt"], 1, "100,000 distinct characters"),
    (["train", "ok.txt", "--encoding", "klingon"], 2, "unknown encoding"),
    # options that would do nothing here
    (["train", "ok.txt", "--sample-prime", "ZZ"], 2, "--sample-prime shapes the samples of --sa"),
    (["train", "ok.txt", "--sample-length", "9", "--sample-temp", "1"], 2, "leave them out"),
    (["sample", "-c", "tiny", "-p", "the", "--encoding", "utf-16"], 2, "neither is given (a --p"),
    (["sample", "-c", "tiny", "--encoding", "latin-1"], 2, "--encoding is how --prime-file or"),
    (["sample", "-c", "tiny", "--json", "--separator", "x"], 2, "leave --separator out"),
    (["train", "ok.txt", "--init-from", "tiny", "--name", "tiny"], 1, "the one this --name would"),
    (["inspect", "-c", "tiny", "--sample", "5", "-p", "a", "--encoding", "utf-16"], 2, "none is"),
    # train: sizes and settings
    (["train", "ok.txt", "--hidden", "0"], 2, "--hidden"),
    (["train", "ok.txt", "--layers", "-1"], 2, "--layers"),
    (["train", "ok.txt", "--embedding", "0"], 2, "--embedding"),
    (["train", "ok.txt", "--batch-size", "0"], 2, "--batch-size"),
    (["train", "ok.txt", "--seq-len", "0"], 2, "--seq-len"),
    (["train", "ok.txt", "--batch-size", "5000"], 1, "split has"),
    (["train", "ok.txt", "--steps", "0"], 2, "--steps"),
    (["train", "ok.txt", "--epochs", "-1"], 2, "--epochs"),
    (["train", "ok.txt", "--time", "0s"], 2, "more than zero"),
    (["train", "ok.txt", "--time", "soon"], 2, "not a duration"),
    (["train", "ok.txt", "--time", "9" * 400 + "h"], 2, "longer than any run can take"),
    (["train", "ok.txt", "--time", "9" * 20 + "h"], 2, "longer than any run can take"),
    (["train", "ok.txt", "--lr", "0"], 2, "--lr"),
    (["train", "ok.txt", "--dropout", "1"], 2, "--dropout"),
    (["train", "ok.txt", "--input-dropout", "1"], 2, "--input-dropout"),
    (["train", "ok.txt", "--val-frac", "0"], 2, "--val-frac"),
    (["train", "ok.txt", "--size", "huge"], 2, "--size"),
    (["train", "ok.txt", "--device", "tpu"], 2, "--device"),
    # nan passes every range check (its comparisons are all false): each number option refuses it
    *[
        (["train", "ok.txt", option, "nan"], 2, f"'{option}': 'nan' is not a number")
        for option in (
            "--lr",
            "--dropout",
            "--input-dropout",
            "--val-frac",
            "--epochs",
            "--weight-decay",
        )
    ],
    (["train", "ok.txt", "--sample-temp", "nan"], 2, "'--sample-temp': 'nan' is not a number"),
    # ... and inf, or a number too big for a float, where a range has no upper end
    *[
        (["train", "ok.txt", option, value], 2, f"'{option}': '{value}' is not a finite number")
        for option in ("--lr", "--epochs", "--sample-temp")
        for value in ("inf", "1e400")
    ],
    (["train", "ok.txt", "--checkpoint-dir", "blocker"], 2, "is a file"),
    (["train", "ok.txt", "--checkpoint-dir", "ok.txt/"], 2, "cannot read 'ok.txt/': Not a dir"),
    # train: runs
    (["train"], 2, "give a CORPUS"),
    (["train", "ok.txt", "--name", "tiny"], 1, "already exists"),
    (["train", "--resume", "nothing"], 1, "no run 'nothing'"),
    (["train", "--resume", "tiny"], 1, "already used its budget (20 steps, "),
    (["train", "--resume", "tiny", "--time", "1s"], 1, "s) (its --time is spent); give a larger"),
    (
        ["train", "--resume", "tiny", "--lr", "1", "--steps", "99"],
        2,
        "--lr is not taken with --resume",
    ),
    (["train", "--resume", "tiny", "--force"], 2, "--force starts a run over and --resume"),
    (["train", "--resume", "tiny", "--steps", "99", "--checkpoint-dir", "emptydir"], 1, "no run"),
    # a run's own folder as the folder of runs: a run made in there would never be listed
    (["train", "ok.txt", "--checkpoint-dir", "checkpoints/tiny"], 1, "is the run folder"),
    (["train", "ok.txt", "--checkpoint-dir", "checkpoints/tiny/x"], 1, "is in the run folder"),
    # sample
    (["sample", "-c", "missing.pt"], 1, "no checkpoint file or run folder"),
    (["sample", "-c", "empty.pt"], 1, "not a charrnn checkpoint (the file is empty)"),
    (["sample", "-c", "statedict.pt"], 1, "not a charrnn checkpoint"),
    (["sample", "-c", "evil.pt"], 1, "refused: it asks to load posix.system"),
    (["sample", "-c", "newer.pt"], 1, "format version 99, newer than this charrnn reads"),
    (["score", "ok.txt", "-c", "junk.pt"], 1, "not a charrnn checkpoint"),
    (["score", "missing.txt", "-c", "tiny"], 1, "cannot read missing.txt"),
    (["score", "ok.txt/", "-c", "tiny"], 1, "cannot read ok.txt/: Not a directory"),
    (["sample", "-c", "tiny", "--prime-file", "ok.txt/"], 1, "ok.txt/: Not a directory"),
    (["sample", "-c", "tiny", "--prime-file", "dangling"], 1, "link to nothing (nowhere.txt)"),
    (["score", "-c", "tiny", "dangling"], 1, "cannot read dangling: it is a link to nothing"),
    (["inspect", "-c", "tiny", "dangling"], 1, "cannot read dangling: it is a link to nothing"),
    (["sample", "-c", "checkpoints/tiny/best.pt/"], 1, "read checkpoints/tiny/best.pt/: Not a"),
    (["train", "--resume", "checkpoints/tiny/last.pt/."], 1, "tiny/last.pt/.: Not a directory"),
    # a run's name given as the text to read: -c was meant
    (["score", "tiny"], 1, "there is a run of that name: to read a text through it, give -c"),
    (["inspect", "tiny"], 1, "a run of that name: to read a text through it, give -c tiny"),
    (["score", "empty.txt", "-c", "tiny"], 1, "nothing to score"),
    (["sample", "-c", "emptydir"], 1, "no run"),
    (["sample", "--checkpoint-dir", "emptydir"], 1, "no trained runs"),
    (
        ["sample", "--checkpoint-dir", "dangling"],
        1,
        "nowhere.txt, which is not there; mend the link",
    ),
    (["plot", "x", "--checkpoint-dir", "dangling"], 1, "nowhere.txt, which is not there"),
    (["sample", "--temp", "-1"], 2, "--temp"),
    (["sample", "--top-k", "0"], 2, "--top-k"),
    (["sample", "--top-p", "1.5"], 2, "--top-p"),
    (["sample", "--top-p", "0"], 2, "--top-p"),
    (["sample", "--length", "-5"], 2, "--length"),
    (["sample", "--length", "10000000000"], 2, "--length"),
    (
        ["sample", "--prime", "Zebra €"],
        1,
        "never seen: 'Z' (U+005A) at character 1; 'b' (U+0062) at character 3; '€'",
    ),
    (["sample", "--device", "tpu"], 2, "--device"),
    # output onto a saved model (a typo such as -o best.pt), or an empty name
    (["sample", "-c", "tiny", "-o", "statedict.pt"], 1, "statedict.pt holds a saved model"),
    (["export", "-c", "tiny", "--format", "html", "statedict.pt"], 1, "holds a saved model"),
    (["inspect", "ok.txt", "-c", "tiny", "--html", "statedict.pt"], 1, "holds a saved model"),
    (["sample", "-c", "tiny", "-o", "legacy.pt"], 1, "legacy.pt holds a saved model"),
    # or onto a run's record of its training, which runs and plot read
    (["sample", "-c", "tiny", "-o", "checkpoints/tiny/metrics.jsonl"], 1, "a run's record of"),
    (["export", "-c", "tiny", "--format", "html", "checkpoints/tiny/metrics.jsonl"], 1, "a run's"),
    # an output over the text the command reads: it would be lost
    (["sample", "-c", "tiny", "--prime-file", "ok.txt", "-o", "ok.txt"], 1, "is the prime file"),
    (["inspect", "ok.txt", "-c", "tiny", "--html", "./ok.txt"], 1, "ok.txt is the text to insp"),
    (
        ["inspect", "-c", "tiny", "--sample", "5", "--prime-file", "ok.txt", "--html", "ok.txt"],
        1,
        "ok.txt is the prime to sample from: writing over it would lose that text",
    ),
    (["export", "-c", "tiny", "--format", "html", "legacy5.pt"], 1, "holds a saved model"),
    # a read-only file: root could replace it, and must not
    (["sample", "-c", "tiny", "-o", "readonly.txt"], 1, "cannot write the output: readonly.txt"),
    (
        ["export", "-c", "tiny", "--format", "html", "readonly.txt"],
        1,
        "cannot write the output: readonly.txt",
    ),
    (["export", "-c", "tiny", ""], 2, "'OUT': is empty"),
    (["export", "-c", "tiny", "m.onnx", "--prime", "A"], 2, "--prime is for a page (.html)"),
    (
        [
            "export",
            "-c",
            "tiny",
            "-",
            "--format",
            "onnx",
            "--precision",
            "float32",
            "--unknown",
            "skip",
        ],
        2,
        "--precision, --unknown are for a page (.html)",
    ),
    (["export", "-c", "tiny", "--format", "html", "  "], 2, "'OUT': is only blanks ('  ')"),
    (["sample", "-c", "tiny", "-o", " "], 2, "'-o' / '--output': is only blanks"),
    (["export", "-c", "tiny", "emptydir"], 2, "'emptydir' is a folder; give a file's name"),
    (["sample", "-c", "tiny", "-o", "emptydir"], 2, "'emptydir' is a folder; give a file's name"),
    (["plot", "tiny", "-o", "emptydir"], 2, "'emptydir' is a folder; give a file's name"),
    (["sample", "-c", "tiny", "-o", "new/"], 2, "'new/' ends in '/', as a folder's name does"),
    # a name under a file, which Path would read as the file itself: never written over
    (["sample", "-c", "tiny", "-o", "checkpoints/tiny/best.pt/."], 2, "best.pt/.': Not a dir"),
    (["plot", "tiny", "-o", "ok.txt/"], 2, "cannot write 'ok.txt/': Not a directory"),
    (["export", "-c", "tiny", "ok.txt/x/.."], 2, "cannot write 'ok.txt/x/..': Not a directory"),
    (["inspect", "ok.txt", "-c", "tiny", "--html", "ok.txt/."], 2, "'ok.txt/.': Not a directory"),
    (["sample", "-c", "tiny", "-o", "new/."], 2, "'new/.' ends in '/.', as a folder's"),
    # a `~name` of no user: a path as typed, not found (pathlib's expanduser raised)
    (["sample", "-c", "~nosuchuser/x.pt"], 1, "no checkpoint file or run folder at ~nosuchuser/x"),
    (["score", "~nosuchuser/x", "-c", "tiny"], 1, "cannot read ~nosuchuser/x: No such file"),
    (["train", "~nosuchuser/x.txt"], 1, "no such file, folder or corpus: ~nosuchuser/x.txt"),
    (["train", "--resume", "~nosuchuser/x"], 1, "no run folder or checkpoint file at ~nosuchuser"),
    (["plot", "~nosuchuser/x"], 1, "no run folder at ~nosuchuser/x"),
    (
        ["sample", "-c", "tiny", "--prime-file", "~nosuchuser/p"],
        1,
        "prime file ~nosuchuser/p: No such",
    ),
    # a file to write spelt as an option, its name forgotten: no file `-l5` written
    (["sample", "-c", "tiny", "-o", "-l5"], 2, "'-l5' is an option (-l), not a file's name"),
    (["inspect", "ok.txt", "--html", "-c", "tiny"], 2, "'-c' is an option (-c), not a file's"),
    (["plot", "tiny", "-o", "--json"], 2, "'--json' is an option (--json), not a file's name"),
    (["score", "", "-c", "tiny"], 2, "'[FILE]...': is empty"),
    (["inspect", "", "-c", "tiny"], 2, "'[FILE]': is empty"),
    (["memory", "", "-c", "tiny"], 2, "'FILE': is empty"),
    (["memory", "ok.txt", "-c", ""], 2, "'-c' / '--checkpoint': is empty"),
    (["runs", ""], 2, "an empty argument (an unset shell variable?)"),
    (["sample", "-c", "tiny", "x", ""], 2, "an empty argument"),
    (["sample", "-c", "tiny", "--prime", "-"], 1, "standard input is empty: there is no prime"),
    (["sample", "-c", "tiny", "--prime", ""], 2, "'-p' / '--prime': is empty"),
    (["export", "-c", "tiny", "p.html", "--prime", ""], 2, "'-p' / '--prime': is empty"),
    (["train", "--resume", "tiny", "--size", "tiny"], 2, "--size is not taken with --resume"),
    (["sample", "-c", "tiny", "--prime-file", "empty.txt"], 1, "empty.txt is empty: there is no"),
    # inspect
    (["inspect", "ok.txt", "-c", "evil.pt"], 1, "refused: it asks to load posix.system"),
    (["inspect", "ok.txt", "-c", "junk.pt"], 1, "not a charrnn checkpoint"),
    (["inspect", "missing.txt", "-c", "tiny"], 1, "cannot read missing.txt"),
    (["inspect", "emptydir", "-c", "tiny"], 1, "cannot read emptydir"),
    (["inspect", "empty.txt", "-c", "tiny"], 1, "nothing to inspect"),
    (["inspect", "binary.bin", "-c", "tiny"], 1, "binary"),
    (["inspect", "latin.txt", "-c", "tiny"], 1, "not valid utf-8 text"),
    (["inspect", "small.txt", "-c", "tiny"], 1, "never seen: 'j' (U+006A) at character 1"),
    (["inspect", "ok.txt", "-c", "tiny", "--html", "emptydir"], 2, "--html"),
    (
        ["inspect", "ok.txt", "-c", "tiny", "--html", "nowhere/p.html"],
        1,
        "cannot write the output: nowhere/p.html: nowhere does not exist; create it first",
    ),
    (["inspect", "ok.txt", "-c", "tiny", "--html", ""], 2, "is empty"),
    (["inspect", "ok.txt", "-c", "tiny", "--max-chars", "0"], 2, "--max-chars"),
    (["inspect", "-c", "tiny", "--sample", "0"], 2, "--sample"),
    (["inspect", "-c", "tiny", "--sample", "5", "--prime", "Zebra"], 1, "never seen: 'Z'"),
    (["inspect", "ok.txt", "-c", "tiny", "--show", "gates"], 2, "--show"),
    (["inspect", "ok.txt", "-c", "tiny", "--color", "sometimes"], 2, "--color"),
    # memory
    (["memory", "ok.txt", "-c", "evil.pt"], 1, "refused: it asks to load posix.system"),
    (["memory", "missing.txt", "-c", "tiny"], 1, "cannot read missing.txt"),
    (["memory", "emptydir", "-c", "tiny"], 1, "cannot read emptydir"),
    (["memory", "empty.txt", "-c", "tiny"], 1, "nothing to read"),
    (["memory", "-", "-c", "tiny"], 1, "standard input is empty"),
    (["memory", "binary.bin", "-c", "tiny"], 1, "binary"),
    (["memory", "latin.txt", "-c", "tiny"], 1, "not valid utf-8 text"),
    (["memory", "checkpoints/tiny/best.pt", "-c", "tiny"], 1, "a PyTorch checkpoint, not text"),
    (["memory", "small.txt", "-c", "tiny"], 1, "never seen: 'j' (U+006A) at character 1"),
    (["memory", "ok.txt", "-c", "tiny"], 1, "has never seen () [] {}: it knows no brackets nor"),
    (["memory", "tiny"], 1, "but there is a run of that name: to read a text through it"),
    (["memory", "ok.txt", "-c", "tiny", "--pairs", ""], 2, "'--pairs': is empty: give each pair"),
    # elsewhere
    (["corpus", "get", "nonesuch"], 1, "no corpus named"),
    (["runs", "--checkpoint-dir", "blocker"], 2, "is a file"),
    (["bogus"], 2, "No such command"),
]


def snapshot(root: Path) -> dict[str, str]:
    """Every folder, and every file's content hash. Lock files aside (taking a lock writes the
    holder's pid), and the cache: a valid corpus may be cached before a later check fails."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
        if p.name != ".lock" and p.relative_to(root).parts[0] != "cache"
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    CASES,
    ids=lambda a: " ".join(map(str, a)) if isinstance(a, list) else None,
)
def test_bad_input(in_workspace, args, code, message):
    before = snapshot(in_workspace)
    assert_one_error(invoke(args, input=""), code, message)
    assert snapshot(in_workspace) == before  # nothing written, nothing changed, no folder made
    assert not (in_workspace / "pwned-marker").exists()


def test_a_file_whose_name_begins_with_a_tilde_is_that_file(workspace, tmp_path, monkeypatch):
    """`~notes.txt` (no user of that name) and `./~root` (a user's name) are files here, read as
    typed, where pathlib read them as a home folder (a traceback, or /root read); `~/x` and a
    `~user/x` that is not a file still name a home folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = str(workspace / "checkpoints" / "tiny")
    text = (workspace / "ok.txt").read_text(encoding="utf-8")[:3000]
    for name in ("~notes.txt", "~root"):
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "x.txt").write_text(text, encoding="utf-8")
    scores = set()
    for spec in ("~notes.txt", "./~notes.txt", "~root", "./~root", "~/x.txt"):
        r = invoke(["score", "-c", run, "-q", spec])
        assert r.exit_code == 0 and r.stderr == "", (spec, r.stderr)
        scores.add(r.stdout)
    assert len(scores) == 1
    r = invoke(["sample", "-c", run, "--prime-file", "./~root", "-l", "3", "-q"])
    assert r.exit_code == 0 and r.stdout.startswith(text)
    # and a file to write: `~/x` in the home folder, `~notes.out` here
    written = {"~/out.txt": tmp_path / "home" / "out.txt", "~n.out": tmp_path / "~n.out"}
    for spec, where in written.items():
        r = invoke(["sample", "-c", run, "-l", "3", "-q", "-o", spec])
        assert r.exit_code == 0 and r.stdout == "" and where.is_file(), (spec, r.stderr)


def test_a_file_the_user_cannot_read_is_ours_to_refuse_not_clicks(in_workspace, monkeypatch):
    """click.Path's access checks (a usage error, exit 2, for a prime file of mode 000) are left
    off: the file is read, or refused in one Error line with exit 1, as every command's files
    are. (As root every file reads: os.access stands in for a user who may not.)"""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    for args in (
        ["sample", "-c", "tiny", "--prime-file", "ok.txt", "-l", "3"],
        [
            "inspect",
            "-c",
            "tiny",
            "--sample",
            "3",
            "--prime-file",
            "ok.txt",
            "--max-chars",
            "99999",
        ],
    ):
        r = invoke(args)
        assert r.exit_code == 0 and "Usage" not in r.stderr, (args, r.stderr)


ODD = "a\tb\nc\x1b[31md\udcff"  # a tab, a line break, a terminal's escape, a byte not UTF-8


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["train", ODD], 1),
        (["train", "--resume", f"{ODD}/last.pt"], 1),
        (["inspect", "-c", "tiny", ODD], 1),
        (["sample", "-c", "tiny", "--prime-file", ODD], 1),
        (["sample", "-c", f"{ODD}.pt"], 1),
        (["sample", "-c", ODD], 1),  # a run's name, quoted by its repr
        (["score", "-c", "tiny", ODD], 1),
        (["plot", f"./{ODD}"], 1),
        (["runs", "--checkpoint-dir", f"ok.txt/{ODD}"], 2),
        (["sample", "-c", "tiny", "-o", f"{ODD}/."], 2),
        (["runs", "--checkpoint-dir", "the-file"], 2),  # named ODD: click's message lost bytes
    ],
    ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else None,
)
def test_a_name_in_an_error_line_is_shown_on_it_as_text(in_workspace, tmp_path, args, code):
    """Whatever a file's name holds, its Error line is one line of text, the name escaped."""
    (tmp_path / ODD).write_text("a file")
    r = invoke([str(tmp_path / ODD) if a == "the-file" else a for a in args])
    line = assert_one_error(r, code, "a\\tb\\nc\\x1b[31md\\xff", alone=False)
    assert not any(ch < " " or "\x7f" <= ch < "\xa0" for ch in r.stderr.replace("\n", "")), line


def test_a_name_in_a_message_is_shown_on_its_one_line_as_text(in_workspace):
    r = invoke(["runs", "--checkpoint-dir", ODD])
    assert r.exit_code == 0 and r.stdout == ""
    assert r.stderr.startswith("no runs in a\\tb\\nc\\x1b[31md\\xff (there is no such folder)")
    assert r.stderr.count("\n") == 1 and "\x1b" not in r.stderr


def test_a_name_among_several_to_score_is_shown_on_its_error_line_as_text(in_workspace):
    r = invoke(["score", "-c", "tiny", ODD, "ok.txt"])
    assert r.exit_code == 1 and r.stdout.endswith("\tok.txt\n") and r.stdout.count("\n") == 1
    assert r.stderr.startswith("Error: cannot read a\\tb\\nc\\x1b[31md\\xff: No such file")
    assert r.stderr.count("\n") == 2 and "\x1b" not in r.stderr  # and the summary of ok.txt


def test_a_corpus_cache_that_is_a_link_to_nothing_says_so(in_workspace, monkeypatch):
    """Not "File exists" (mkdir's word for a dangling link) nor "no encoded corpora"."""
    monkeypatch.setenv("CHARRNN_CACHE_DIR", "dangling")
    line = assert_one_error(invoke(["corpus", "get", "recall"]), 1, "nowhere.txt, which is not")
    assert "dangling is a link to" in line and "mend the link" in line
    r = invoke(["corpus", "cache"])
    assert r.exit_code == 0 and "nowhere.txt, which is not there; mend the link" in r.stderr


def test_a_command_on_the_latest_run_names_its_model(in_workspace):
    """inspect's and export's figures and files are of a model the user did not name: said."""
    said = "The latest run's model: checkpoints/tiny/best.pt (-c picks another)."
    for args in (["inspect", "ok.txt", "--max-chars", "50"], ["export", "p.html"]):
        r = invoke(args)
        assert r.exit_code == 0 and said in r.stderr.splitlines(), r.stderr
        named = invoke([*args, "-c", "tiny"])
        assert named.exit_code == 0 and "latest run" not in named.stderr, named.stderr


def test_an_output_over_standard_input_s_file_is_refused(trained_run, tmp_path):
    """`sample --prime - -o p.txt < p.txt`, `inspect --html t.txt < t.txt`: the text read is
    the file written, and would be lost, as for a file named twice."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat\n")
    ck = str(trained_run.best)
    for args, what in (
        (["sample", "-c", ck, "--prime", "-", "-o", "t.txt"], "the prime on stdin"),
        (["inspect", "-c", ck, "--html", "t.txt"], "the text to inspect"),
    ):
        with open(text) as stdin:
            r = run(args, cwd=tmp_path, stdin=stdin)
        assert_one_error(r, 1, f"t.txt is {what}: writing over it would lose that text")
        assert text.read_text() == "the cat sat\n"


def test_standard_output_onto_the_text_read_is_refused(trained_run, tmp_path):
    """`sample --prime-file t.txt >> t.txt`, `inspect t.txt >> t.txt`, `train . > t.txt`: the
    shell's file is the text read (cat refuses it too: input file is output file), left as it
    was."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat\n")
    ck = str(trained_run.best)
    for args, what in (
        (["sample", "-c", ck, "--prime-file", "t.txt", "-l", "5"], "the prime file"),
        (["sample", "-c", ck, "--prime", "-", "-l", "5"], "the prime on stdin"),
        (["inspect", "-c", ck, "t.txt"], "the text to inspect"),
        (["memory", "-c", ck, "t.txt"], "the text to measure"),
        (["score", "-c", ck, "-"], "a text to score"),
        (["train", "t.txt", "--steps", "1"], "the corpus"),
        (["train", "-", "--steps", "1"], "the corpus"),
        (["train", ".", "--steps", "1"], "./t.txt, a file of the corpus"),  # a folder's file
    ):
        with open(text) as stdin, open(text, "a") as stdout:
            r = run(args, cwd=tmp_path, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        assert r.returncode == 1 and r.stderr.startswith(f"Error: standard output is {what}")
        assert text.read_text() == "the cat sat\n"
    # a folder where a file is read: that is the error, whatever stdout is in it
    with open(text, "a") as stdout:
        args = ["sample", "-c", ck, "--prime-file", ".", "-l", "5"]
        r = run(args, cwd=tmp_path, stdout=stdout, stderr=subprocess.PIPE)
    assert r.returncode == 1 and "cannot read the prime file .: Is a directory" in r.stderr


def test_standard_output_onto_a_file_charrnn_reads_is_refused_for_every_command(
    trained_run, tmp_path
):
    """`>> best.pt`, `>> metrics.jsonl`, `>> a corpus of the cache`: a model, a run's record,
    a text training reads, changed by any command's output (score, runs, plot; corpus get into
    its own file); refused before the command does anything, the file as it was."""
    import shutil

    base = tmp_path / "ck"
    shutil.copytree(trained_run.path, base / "tiny", ignore=shutil.ignore_patterns(".lock"))
    (tmp_path / "cache" / "encoded").mkdir(parents=True)
    encoded = tmp_path / "cache" / "encoded" / "some.ids"
    encoded.write_bytes(b"\x00\x01")
    (tmp_path / "t.txt").write_text("the cat sat\n")
    env = {
        **os.environ,
        "CHARRNN_CHECKPOINT_DIR": str(base),
        "CHARRNN_CACHE_DIR": str(tmp_path / "cache"),
    }
    for args, target, said in (
        (["score", "-c", "tiny", "t.txt"], base / "tiny" / "best.pt", "holds a saved model"),
        (["runs"], base / "tiny" / "metrics.jsonl", "a run's record of its training"),
        (["plot", "tiny"], base / "tiny" / "metrics.jsonl", "a run's record of its training"),
        (["runs"], encoded, "a file of the corpus cache"),
    ):
        before = target.read_bytes()
        with open(target, "a") as stdout:
            r = run(args, cwd=tmp_path, env=env, stdout=stdout, stderr=subprocess.PIPE)
        assert r.returncode == 1 and r.stderr.startswith("Error: standard output "), r.stderr
        assert said in r.stderr and target.read_bytes() == before


def test_a_failed_start_in_an_empty_folder_leaves_nothing_behind(env, tmp_path):
    """Where there is no run yet (the cases above run beside one): no folder is made."""
    (tmp_path / "empty.txt").write_text("")
    for args, message in (
        (["train", "empty.txt", "--name", "x"], "corpus is empty"),
        (["train", "missing.txt"], "no such file"),
        (["train", "-"], "corpus is empty"),
        (["train", "--resume", "nothing"], "no run 'nothing'"),
        (["sample"], "no trained runs"),
    ):
        assert_one_error(env(args, input=""), 1, message)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["empty.txt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_a_gpu(in_workspace):
    line = assert_one_error(invoke(["train", "ok.txt", "--device", "cuda"]), 1, "no CUDA GPU")
    assert line.endswith("give --device cpu (or auto)")


# torch's own words when the CPU allocator is refused (`ulimit -v`, a full machine)
TORCH_OOM = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 1073741824 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.mark.parametrize(
    "args, where, advice",
    [
        (["train", "ok.txt"], "charrnn.train.open.open_run", "a smaller model (--size"),
        (["score", "-c", "tiny", "ok.txt"], "charrnn.use.bits.text_nats", "close other programs"),
    ],
)
def test_memory_that_runs_out_is_one_error_line(in_workspace, monkeypatch, args, where, advice):
    def refused(*args, **kwargs):
        raise RuntimeError(TORCH_OOM)

    monkeypatch.setattr(where, refused)
    line = assert_one_error(invoke(args), 1, "Error: out of memory (it asked for 1.1 GB more): ")
    assert advice in line and line.endswith("raise the memory limit (ulimit -v)")


@pytest.mark.parametrize(
    "raised",
    [
        RuntimeError("could not create a primitive"),
        SystemError("error return without exception set"),
    ],
)
def test_what_torch_raises_under_a_memory_limit_is_out_of_memory(in_workspace, monkeypatch, raised):
    """Under `ulimit -v` oneDNN and a module torch imports as it trains fail to allocate without
    saying so: out of memory where a limit is set, torch's own error where none is."""
    from charrnn.cli import signals

    def refused(*args, **kwargs):
        raise raised

    monkeypatch.setattr("charrnn.train.open.open_run", refused)
    monkeypatch.setattr(signals, "memory_limited", lambda: True)
    line = assert_one_error(invoke(["train", "ok.txt"]), 1, "Error: out of memory: a smaller")
    assert line.endswith("raise the memory limit (ulimit -v)")
    monkeypatch.setattr(signals, "memory_limited", lambda: False)
    with pytest.raises(type(raised)):
        invoke(["train", "ok.txt"])


@pytest.mark.parametrize("limited", [True, False])
def test_a_half_made_torch_module_is_told_by_the_memory_limit(in_workspace, monkeypatch, limited):
    """A module torch imports as it trains, left half-made by an allocation that failed under
    `ulimit -v`, fails the next import of a name from it: memory, where a limit is set."""
    from charrnn.cli import signals

    def half_made(*args, **kwargs):
        raise ImportError("cannot import name 'X' from 'torch._dynamo.utils'", name="torch._dynamo")

    monkeypatch.setattr("charrnn.train.open.open_run", half_made)
    monkeypatch.setattr(signals, "memory_limited", lambda: limited)
    line = assert_one_error(invoke(["train", "ok.txt"]), 1, "Error: cannot load torch (cannot")
    said = "under a memory limit this is memory that ran out: raise the limit (ulimit -v)"
    assert (said in line) is limited
    assert line.endswith("reinstall it: pip install -c constraints.txt torch")


def test_memory_too_short_to_tell_its_error_still_gets_one_line():
    """At the edge of a memory limit the command's own error can fail to be written (a
    MemoryError in the handler): the entry point writes a line made in advance, exit 1."""
    code = (
        "import charrnn.cli, charrnn.__main__ as m\n"
        "def short(): raise MemoryError\n"
        "charrnn.cli.main = short\n"
        "m.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "Error: out of memory: close other programs, or raise the memory limit (ulimit -v)\n"
    )


def test_torch_that_cannot_load_is_one_error_line(in_workspace, monkeypatch):
    """Under a memory limit (`ulimit -v`) torch's libraries fail to map: no traceback."""

    def unloadable(*args, **kwargs):
        raise ImportError(
            "libtorch_cpu.so: failed to map segment from shared object", name="torch._C"
        )

    monkeypatch.setattr("charrnn.use.bits.text_nats", unloadable)
    line = assert_one_error(invoke(["score", "-c", "tiny", "ok.txt"]), 1)
    assert line == (
        "Error: cannot load torch (libtorch_cpu.so: failed to map segment from shared object); "
        "memory ran out: close other programs, or raise the memory limit (ulimit -v)"
    )


@pytest.mark.parametrize(
    "raised", [MemoryError(), SystemError("error return without exception set")]
)
def test_torch_half_made_under_a_memory_limit_is_one_error_line(raised):
    """Under `ulimit -v` torch's import can fail as a MemoryError, or as a SystemError from an
    extension that could not allocate: the import fails as torch's, whose error says memory."""
    from charrnn.cli.signals import _cannot_load_torch, _Whole

    class Failing:
        def exec_module(self, module):
            raise raised

    class Module:
        __name__ = "torch"

    with pytest.raises(ImportError) as caught:
        _Whole(Failing()).exec_module(Module())
    assert caught.value.name == "torch" and caught.value.__cause__ is raised
    assert _cannot_load_torch(caught.value).endswith(
        "memory ran out: close other programs, or raise the memory limit (ulimit -v)"
    )


def test_a_deleted_current_folder_is_one_error_line(workspace, tmp_path):
    """torch cannot load in a folder that is gone (oneMKL ends the process with exit 2)."""
    gone = tmp_path / "gone"
    script = f'cd "{gone}" && rmdir "{gone}" && exec "$@"'
    for args in (
        ["sample", "-c", str(workspace / "checkpoints/tiny/best.pt"), "-l", "5"],
        ["runs"],  # not "no runs in checkpoints", as if ./checkpoints were empty
    ):
        gone.mkdir()
        shell = ["sh", "-c", script, "sh", *command_line(args)]
        r = subprocess.run(shell, capture_output=True, text=True, timeout=DEADLINE)
        assert_one_error(r, 1, "the current folder no longer exists", "cd into one")
    gone.mkdir()
    shell = ["sh", "-c", script, "sh", *command_line(["runs", "--help"])]
    r = subprocess.run(shell, capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 0 and r.stdout.startswith("Usage: charrnn runs"), r.stderr


def test_a_stdout_encoding_without_a_character_is_one_error_line(workspace, tmp_path):
    """PYTHONIOENCODING=latin-1 and a line holding the euro sign: one line that says what to set;
    a warning on stderr naming a character its encoding lacks writes it escaped."""
    text = tmp_path / "caf\u20ac.txt"
    text.write_text("the cat \u20ac\n", encoding="utf-8")
    args = ["score", "-c", str(workspace / "checkpoints/tiny/best.pt"), "--per-line", "--json"]
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    other = tmp_path / "other.txt"
    other.write_text("the cat\n")
    score = ["score", "-qc", str(workspace / "checkpoints/tiny/best.pt"), "--unknown", "skip"]
    r = run([*score, str(text), str(other)], env=env, text=False)  # bits, tab, each file's name
    assert_one_error(r, 1, "standard output's encoding (latin-1) cannot write U+20AC",
                     "PYTHONIOENCODING=utf-8")  # fmt: skip
    r = run([*args, "--unknown", "skip", str(text)], env=env)  # JSON: the character escaped
    assert r.returncode == 0 and json.loads(r.stdout)["text"] == "the cat \u20ac", r.stderr
    r = run([*args[:-1], str(text)], env=env, text=False)  # nan, a warning naming the character
    assert (r.returncode, r.stdout) == (0, b"nan\n")
    err = r.stderr.decode("latin-1")
    assert "'\\u20ac' (U+20AC)" in err and "Traceback" not in err
    # a run whose path it cannot write, which train ends by writing: refused before it trains
    corpus = tmp_path / "\u65e5.txt"
    corpus.write_text("abc def\n" * 500)
    ck = tmp_path / "ck"
    r = run(["train", str(corpus), "--size", "tiny", "--checkpoint-dir", ck], env=env)
    assert_one_error(r, 1, "encoding (latin-1) cannot write U+65E5 of the run's path", "--name")
    assert not (ck / "\u65e5").exists()
    deep = tmp_path / "\u65b0" / "deep"  # a folder of runs it cannot write: none made for it
    r = run(["train", str(other), "--name", "x", "--checkpoint-dir", deep], env=env)
    assert_one_error(r, 1, "cannot write U+65B0", "give a --checkpoint-dir it can write")
    assert not deep.parent.exists()
    # a path that cannot be written at the end (a full disk): the run is saved, and it says where
    with open("/dev/full", "w") as full:
        args = ["train", str(corpus), "--size", "tiny", "--steps", "3", "--checkpoint-dir", ck]
        r = run(args, stdout=full, stderr=subprocess.PIPE)
    best = ck / "\u65e5" / "best.pt"
    assert r.returncode == 1 and f"The run is saved: {best}\n" in r.stderr and best.is_file()
    # --json writes what its encoding lacks escaped: the same JSON (a table cannot, and says so)
    r = run(["runs", "--json", "--checkpoint-dir", ck], env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["run"] == "\u65e5", r.stderr
    assert r.stdout.isascii()


# ----------------------------------------------------------------------- Ctrl-C during start-up


# Runs `charrnn ARGS`, but says READY on stderr and waits for a signal where torch is first
# imported: the start-up every command goes through before its work begins.
STARTUP_DRIVER = """
import signal, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            sys.stderr.write("READY\\n")
            sys.stderr.flush()
            signal.pause()

sys.meta_path.insert(0, Block())
sys.argv[0] = "charrnn"
from charrnn.cli import main
main()
"""


LEAVE_DRIVER = """
import atexit, sys
from charrnn.__main__ import leave
atexit.register(lambda: sys.stderr.write("teardown"))
sys.stdout.write("written")  # buffered: a pipe
sys.stderr.write("said ")
leave(eval(sys.argv[1]))
"""


@pytest.mark.parametrize(("code", "status"), [("None", 0), ("3", 3), ("'Error: x'", 1)])
def test_the_command_leaves_without_the_teardown_once_its_output_is_out(code, status):
    """The entry point's exit: stdout and stderr flushed, the status kept, and the interpreter's
    teardown (torch's half second; here an exit handler) skipped; a message exits as Python
    exits with one (its teardown then runs: rare, and it says the message)."""
    p = subprocess.run(
        [sys.executable, "-c", LEAVE_DRIVER, code], capture_output=True, timeout=DEADLINE
    )
    assert p.returncode == status and p.stdout == b"written"
    if status == 1:
        assert p.stderr == b"said Error: x\nteardown"
    else:
        assert p.stderr == b"said "


@pytest.mark.parametrize(
    "args",
    [
        ["sample", "-l", "5"],
        ["score", "x.txt"],
        ["inspect", "x.txt"],
        ["train", "x.txt", "--steps", "1"],
    ],
)
def test_ctrl_c_during_start_up_exits_130_quietly(args, tmp_path):
    (tmp_path / "x.txt").write_text("ANNA:\n")  # there: a missing file is refused before torch
    p = subprocess.Popen(
        [sys.executable, "-c", STARTUP_DRIVER, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=as_from_a_terminal,
    )
    assert p.stderr.readline() == b"READY\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == 130 and out == b"" and err.count(b"\n") <= 1, err
    assert b"Traceback" not in err and b"Aborted" not in err


# As STARTUP_DRIVER, but waits in the middle of torch's own import (where numpy and the C
# extensions initialise), and says RESUMED if the import goes on after the signal.
MID_IMPORT_DRIVER = """
import signal, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch.version":
            sys.meta_path.remove(self)
            stops = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # none is lost before the wait
            sys.stderr.write("READY\\n")
            sys.stderr.flush()
            signum = signal.sigwait(stops)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
            signal.raise_signal(signum)  # to the handler in force here, inside torch's import
            sys.stderr.write("RESUMED\\n")

sys.argv[0] = "charrnn"
from charrnn.cli import main
from charrnn.cli.signals import load_torch_whole
load_torch_whole()  # as main() does: its finder first, then this one, before Python's own
sys.meta_path.insert(1, Block())
main()
"""


def test_standard_input_named_beside_dash_is_given_twice(tmp_path):
    """`train - /dev/stdin`, `train - f.txt < f.txt` or `train - dd < dd/f.txt`: the same text
    twice (or a pipe found empty the second time), refused as '-' given twice is."""
    (tmp_path / "f.txt").write_text("the cat sat\n" * 50)
    for other, given in (("/dev/stdin", None), ("f.txt", tmp_path / "f.txt")):
        with open(given or os.devnull) as stdin:
            kw = {"input": "the cat sat\n"} if given is None else {"stdin": stdin}
            r = run(["train", "-", other, "--steps", "1"], cwd=tmp_path, **kw)
        assert_one_error(r, 2, f"{other} is standard input, as '-' is: give it once")
    r = run(["train", "/dev/stdin", "/dev/fd/0", "--steps", "1"], cwd=tmp_path, input="the cat\n")
    assert_one_error(r, 2, "/dev/fd/0 is standard input, as /dev/stdin is: give it once")
    (tmp_path / "dd").mkdir()  # inside a folder also named: found as the folder is walked
    (tmp_path / "f.txt").rename(tmp_path / "dd" / "f.txt")
    with open(tmp_path / "dd" / "f.txt") as stdin:
        r = run(["train", "-", "dd", "--steps", "1"], cwd=tmp_path, stdin=stdin)
    assert_one_error(r, 1, "dd/f.txt is given twice (as standard input too): give each file once")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_torch_loads_waits_for_torch_then_stops_quietly(signum, trained_run, tmp_path):
    """Ctrl-C inside torch's import can abort the interpreter: it is held until torch is whole."""
    p = subprocess.Popen(
        [sys.executable, "-c", MID_IMPORT_DRIVER, "sample", "-c", str(trained_run.best)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=as_from_a_terminal,
    )
    assert p.stderr.readline() == b"READY\n"
    p.send_signal(signum)
    out, err = p.communicate(timeout=DEADLINE)
    assert (p.returncode, out, err) == (128 + signum, b"", b"RESUMED\n")


def test_every_option_the_code_tells_users_of_exists():
    """An error's advice, a help text or a message that names `--an-option` names a real one (of
    charrnn's commands, or torchrun's): advice that cannot be followed is a dead end."""
    import ast
    import re

    import click

    from charrnn.cli import cli

    def options(command) -> set[str]:
        given = [p for p in command.params if isinstance(p, click.Option)]
        found = {o for p in given for o in (*p.opts, *p.secondary_opts)}
        for sub in getattr(command, "commands", {}).values():
            found |= options(sub)
        return found

    known = options(cli) | {"--help", "--nproc-per-node", "--nproc_per_node", "--standalone"}
    named = {}
    for path in Path(__file__).parent.parent.joinpath("charrnn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", node.value):
                    named.setdefault(option, path.name)
    assert {o: f for o, f in named.items() if o not in known} == {}


def test_an_onnx_model_is_not_written_to_a_terminal(env, trained_run, monkeypatch):
    """`export - --format onnx` on a terminal is a usage error (binary would garble it), as gzip
    refuses; piped or redirected, the same command writes the model."""
    from click.testing import _NamedTextIOWrapper

    monkeypatch.setattr(_NamedTextIOWrapper, "isatty", lambda self: True)
    r = env(["export", "-c", str(trained_run.best), "-", "--format", "onnx"])
    assert r.exit_code == 2 and r.stdout == "" and "binary, not for a terminal" in r.stderr


# The command line's own process, sent a second Ctrl-C while Python shuts down, where GNU timeout's
# second signal (to the command's process group) can land.
SHUTDOWN_DRIVER = """
import atexit, signal, sys
atexit.register(signal.raise_signal, signal.SIGINT)  # runs last: during the interpreter's exit
sys.argv[0] = "charrnn"
from charrnn.cli import main
main()
"""


@pytest.mark.parametrize("stopped", [False, True])
def test_a_stop_signal_while_the_process_ends_is_ignored(stopped, trained_run, tmp_path):
    """A command done (exit 0) or stopped by Ctrl-C (exit 130) ends with its own status and no
    traceback when another stop signal comes as the process exits."""
    length = "100000" if stopped else "20"  # the long one fills the pipe and waits there
    args = ["sample", "-c", str(trained_run.best), "-l", length]
    p = subprocess.Popen(
        [sys.executable, "-c", SHUTDOWN_DRIVER, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=as_from_a_terminal,
    )
    if stopped:
        assert p.stdout.read(1)  # it is writing: then Ctrl-C
        p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=DEADLINE)
    assert p.returncode == (130 if stopped else 0), err
    assert b"Traceback" not in err and b"Aborted" not in err and b"Exception" not in err, err


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals here")
def test_a_terminal_that_hangs_up_ends_sample_as_a_hang_up(trained_run, tmp_path):
    """A terminal that hangs up fails sample's writes (EIO) before its SIGHUP is acted on: the
    command ends as a hang-up ends it (129), without an Error line blaming a disk."""
    import fcntl
    import termios

    def on_its_own_terminal():  # the pseudo-terminal (stdin, stdout) controls the session
        as_from_a_terminal()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    terminal, its_end = os.openpty()
    command = ["sample", "-c", str(trained_run.best), "-l", "100000000", "--seed", "1"]
    p = popen(
        command,
        tmp_path,
        stdin=its_end,
        stdout=its_end,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=on_its_own_terminal,
    )
    os.close(its_end)
    shown = b""
    while len(shown) < 1000:  # the text has begun to reach the terminal
        try:
            shown += os.read(terminal, 4096)
        except OSError:  # it ended before writing that much
            pytest.fail(p.stderr.read().decode())
    os.close(terminal)  # the terminal goes away: a hang-up
    err = p.stderr.read()
    assert p.wait(timeout=DEADLINE) == 128 + signal.SIGHUP and err == b"", err


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])  # the C.UTF-8 locale's
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])  # ascii: the C locale's, by mistake
def test_every_write_to_stdout_goes_through_the_writer_a_stop_waits_for(
    monkeypatch, encoding, errors
):
    """write_output, click.echo and inspect's stream all write through the command boundary's
    stdout, whatever its error mode (click made a stream of its own for "strict" where stdout was
    not, past the writes a stop lets end), and text still goes out as UTF-8."""
    import io

    from charrnn.cli.common import write_output
    from charrnn.cli.signals import _WholeWrites, command_boundary

    written = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(written, encoding, errors))
    streams = []
    with command_boundary():
        write_output(None, lambda out: streams.append(out) or out.write("é\n"))
        click.echo("ü")
        streams.append(click.get_text_stream("stdout", errors=None))
        streams.append(sys.stdout)
    assert all(isinstance(out, _WholeWrites) for out in streams), streams
    sys.stdout.flush()
    assert written.getvalue() == "é\nü\n".encode()


def _waits_on_its_reader(p: subprocess.Popen, read_end: int, size: int) -> bool:
    """Whether `p` is blocked writing to a pipe: the kernel says so, or the pipe is full."""
    import fcntl
    import termios

    try:
        if "pipe_write" in Path(f"/proc/{p.pid}/wchan").read_text():
            return True
    except OSError:  # no /proc: the pipe's fill alone
        pass
    waiting = bytearray(4)
    fcntl.ioctl(read_end, termios.FIONREAD, waiting)
    return int.from_bytes(waiting, sys.byteorder) >= size


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="Linux pipes")
@pytest.mark.parametrize(
    "args, signum",
    [
        (["score", "--per-line", "--json", "t.txt"], signal.SIGINT),
        (["sample", "-n", "40", "-l", "2000", "--json", "--seed", "3"], signal.SIGTERM),
    ],
)
def test_a_stop_while_a_slow_reader_holds_the_output_leaves_whole_lines(
    args, signum, trained_run, text, tmp_path
):
    """A stop that arrives while a write waits on its reader (a full pipe) lets that write end
    first: the reader gets whole JSON lines, never one cut where the pipe filled (CPython's text
    stream lost the rest of a long write that a handled signal cut short)."""
    import fcntl

    lines = [text[i : i + 60] for i in range(0, len(text), 60)] * 5  # JSON twice the pipe's
    (tmp_path / "t.txt").write_text("\n".join(lines))
    read_end, write_end = os.pipe()
    size = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
    command = [args[0], "-c", str(trained_run.best), *args[1:]]
    p = popen(command, tmp_path, stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    deadline = time.monotonic() + DEADLINE
    while not _waits_on_its_reader(p, read_end, size):
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
        time.sleep(0.02)
    p.send_signal(signum)  # while a write waits on the pipe, with more to come
    with open(read_end, "rb") as reader:
        out = reader.read()
    err = p.stderr.read()
    assert p.wait(timeout=DEADLINE) == 128 + signum and b"Traceback" not in err, err
    assert out.endswith(b"\n"), out[-200:]  # JSON lines, each whole (a pipe is full at a few)
    assert len([json.loads(line) for line in out.decode().splitlines()]) > 1


def test_a_bar_is_drawn_on_a_pseudo_terminal_with_no_size(monkeypatch):
    """`script` run by a program gives a terminal of 0x0: tqdm took its bar to be below the
    screen and drew nothing; the size COLUMNS and LINES say is used instead."""
    import fcntl
    import struct
    import termios

    from charrnn.cli import common

    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as screen:
            monkeypatch.setattr(sys, "stderr", screen)
            monkeypatch.setenv("COLUMNS", "77")
            monkeypatch.setenv("LINES", "11")
            assert common.fixed_bar_size() == {"ncols": 77, "nrows": 11}
            monkeypatch.setattr(common, "BAR_AFTER_S", 0)
            bar = common.phase_bar(False, unit="char")
            bar("reading", 5, 10)
            bar.close()
            screen.flush()
            os.set_blocking(master, False)  # written already: what is there, or nothing
            try:
                drawn = os.read(master, 4096)
            except BlockingIOError:
                drawn = b""
            assert b"\rreading:   0%|" in drawn  # drawn, then cleared
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 50, 0, 0))
            assert common.fixed_bar_size() == {}  # a size of its own: tqdm reads it
    finally:
        os.close(master)
        os.close(slave)
