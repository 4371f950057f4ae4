"""What other character-level tools (karpathy/char-rnn, torch-rnn, char-rnn-tensorflow, nanoGPT)
call charrnn's options, so that a usage error typed from habit says which option is meant; and
Lua's single-dash words (`-length 50`), which click would read as a short option and its value
(`-l ength`), caught before they are."""

from __future__ import annotations

import re
import shlex

import click

# Their name (underscores, as they spell it) -> charrnn's option, and what to know beside it.
# Only names with a counterpart in charrnn's commands, or whose answer is "nothing: here is why".
OTHER_NAMES: dict[str, tuple[str, str]] = {
    "rnn_size": ("--hidden", "units a layer"),
    "n_embd": ("--hidden", "units a layer"),
    "num_layers": ("--layers", ""),
    "n_layer": ("--layers", ""),
    "model": ("--cell", "lstm, gru or rnn"),
    "model_type": ("--cell", "lstm, gru or rnn"),
    "wordvec_size": ("--embedding", ""),
    "learning_rate": ("--lr", "the peak of a cosine schedule over the budget"),
    "seq_length": ("--seq-len", ""),
    "block_size": ("--seq-len", ""),
    "max_epochs": ("--epochs", ""),
    "num_epochs": ("--epochs", ""),
    "max_iters": ("--steps", ""),
    "train_frac": ("--val-frac", "the share held out for validation"),
    "checkpoint_every": ("--eval-every", "last.pt and best.pt are written at each evaluation"),
    "save_every": ("--eval-every", "last.pt and best.pt are written at each evaluation"),
    "eval_val_every": ("--eval-every", ""),
    "eval_interval": ("--eval-every", ""),
    "save_dir": ("--checkpoint-dir", ""),
    "out_dir": ("--checkpoint-dir", ""),
    "checkpoint_name": ("--name", "the run's folder under --checkpoint-dir"),
    "savefile": ("--name", "the run's folder under --checkpoint-dir"),
    "gpuid": ("--device", "cpu, cuda or mps"),
    "gpu": ("--device", "cpu, cuda or mps"),
    "gpu_backend": ("--device", "cpu, cuda or mps"),
    "output_keep_prob": ("--dropout", "a probability to drop: 1 minus theirs"),
    "input_keep_prob": ("--input-dropout", "a probability to drop: 1 minus theirs"),
    "primetext": ("--prime", ""),
    "start_text": ("--prime", ""),
    "start": ("--prime", ""),
    "temperature": ("--temp", ""),
    "sample": ("--temp", "--temp 0 takes the likeliest character each step, as -sample 0"),
    "max_new_tokens": ("--length", "characters"),
    "top_k": ("--top-k", ""),
    "verbose": ("--quiet", "progress and notes go to stderr; -q silences them"),
    "data_dir": ("", "the corpus is the command's argument: charrnn train FILE"),
    "input_h5": ("", "the corpus is the command's argument: charrnn train FILE"),
    "input_json": ("", "the corpus is the command's argument: charrnn train FILE"),
    "learning_rate_decay": ("", "the rate follows a cosine schedule over the budget (--lr)"),
    "decay_rate": ("", "the rate follows a cosine schedule over the budget (--lr)"),
    "lr_decay_every": ("", "the rate follows a cosine schedule over the budget (--lr)"),
    "lr_decay_factor": ("", "the rate follows a cosine schedule over the budget (--lr)"),
    "print_every": ("", "a line at each evaluation (--eval-every); a bar on a terminal"),
    "log_interval": ("", "a line at each evaluation (--eval-every); a bar on a terminal"),
    "skip_unk": ("--unknown", "--unknown skip drops the characters the model never saw"),
    "dtype": ("--precision", "auto, float32 or bfloat16"),
    "opencl": ("--device", "cpu, cuda or mps"),
    "always_save_checkpoint": ("--eval-every", "last.pt and best.pt are written at each one"),
    "dataset": ("", "the corpus is the command's argument: charrnn train FILE"),
    "decay_lr": ("", "the rate follows a cosine schedule over the budget (--lr)"),
    "lr_decay_iters": ("", "the cosine schedule spans the budget (--time, --steps or --epochs)"),
    "min_lr": ("", "the cosine schedule ends at 5% of the peak rate (--lr)"),
    "warmup_iters": ("", "the rate warms up over the first 50 steps"),
    "beta1": ("", "AdamW's betas are 0.9 and 0.99"),
    "beta2": ("", "AdamW's betas are 0.9 and 0.99"),
    "gradient_accumulation_steps": ("", "a step reads one batch: --batch-size streams"),
    "eval_iters": ("", "an evaluation reads the validation split, as much as the budget allows"),
    "eval_only": ("", "charrnn score -c RUN FILE reads a text through a model"),
    "compile": ("", "training runs PyTorch's fused kernels, with nothing to compile"),
    "reset_iterations": ("", "--resume RUN goes on from its step; --init-from RUN starts anew"),
}


def _word(name: str) -> str:
    return name.lstrip("-").replace("-", "_").lower()


def _as_long(name: str) -> str:
    """A name typed with one dash or two, its words joined by `_` or `-`, as charrnn spells an
    option: two dashes, words joined by `-`."""
    return "--" + _word(name).replace("_", "-")


# A single-dash word (`-length`), with a value in the same word where one is given (`-seed=3`)
SINGLE_DASH_WORD = re.compile(r"(-[A-Za-z][A-Za-z0-9_-]+)(=.*)?", re.S)


def another_tools_name(name: str) -> bool:
    """Whether `name` (rnn_size, with its dashes) is another tool's name for an option."""
    return _word(name) in OTHER_NAMES


def _long_names(command: click.Command) -> set[str]:
    return {opt for p in command.params for opt in p.opts + p.secondary_opts if opt[:2] == "--"}


def _value_options(command: click.Command) -> set[str]:
    """The option strings whose next argument is their value (`--prime -seed` is a prime)."""
    return {
        opt
        for p in command.params
        if isinstance(p, click.Option) and not p.is_flag and not p.count
        for opt in p.opts
    }


def _having(root: click.Group, option: str) -> str | None:
    """The first of `root`'s commands (`train`, `corpus list`) that has `option`, or None."""
    for name, command in root.commands.items():
        if isinstance(command, click.Group):
            if found := _having(command, option):
                return f"{name} {found}"
        elif option in _long_names(command):
            return name
    return None


def other_name_hint(command: click.Command, name: str, root: click.Group) -> str | None:
    """What to say of an option `command` lacks, typed as `name`: another tool's name for one of
    charrnn's options (rnn_size: --hidden), or the name of another command's option (-length:
    sample's): the option meant, where it is, and what to know; None where neither."""
    entry = OTHER_NAMES.get(_word(name))
    target, why = entry or ("", "")
    said = f" ({why})" if why else ""
    if target and target in _long_names(command):
        return f"Did you mean {target}?{said}"
    meant = _as_long(name)  # charrnn's own option, of another command
    if meant in _long_names(command) and meant != name:  # --num_samples, as Python spells it
        return f"Did you mean {meant}?"
    if meant not in _long_names(command) and (elsewhere := _having(root, meant)) is not None:
        return f"{meant} is an option of `charrnn {elsewhere}`."
    if entry is None:
        return None
    if not target:
        return f"charrnn has no {name}: {why}"
    if (elsewhere := _having(root, target)) is not None:
        return f"Did you mean `charrnn {elsewhere} {target}`?{said}"
    return None


def check_single_dash_words(command: click.Command, args: list[str], root: click.Group) -> None:
    """A UsageError for an argument like `-length` (Lua's way, char-rnn's and torch-rnn's) that
    names a long option of `command` or of another of `root`'s commands, or another tool's name
    for one: click would read it as `-l` with the value `ength`, or a prime `rimetext` from
    `-primetext`."""
    while isinstance(command, click.Group):  # `corpus list ...`: its command's arguments
        at = next((i for i, arg in enumerate(args) if not arg.startswith("-")), None)
        if at is None:
            return
        command, args = command.commands.get(args[at]), args[at + 1 :]
    if command is None:
        return
    longs, values = _long_names(command) | {"--help"}, _value_options(command)
    takes_value = False
    for arg in args:
        if takes_value:
            takes_value = False
            continue
        if arg == "--":
            return
        if arg in values:
            takes_value = True
            continue
        if not (found := SINGLE_DASH_WORD.fullmatch(arg)):
            continue
        name, given = found.groups()  # `-seed=3`: the name, and a value in the same word
        meant = _as_long(name)
        if meant in longs:
            raise click.UsageError(f"{name}: an option's name takes two dashes here: {meant}")
        if (hint := other_name_hint(command, name, root)) is not None:
            raise click.UsageError(f"{name}: no such option. {hint}")
        if given is not None:  # `-outfile=x`: click's `-o utfile=x`
            raise click.UsageError(f"{name}: no such option")
        _refuse_a_word_read_as_short_options(command, arg, values)


def _refuse_a_word_read_as_short_options(command: click.Command, arg: str, values: set[str]):
    """A UsageError for a single-dash word of no tool's options (`-outfile`, `-batchnorm`) that
    click would read as short options, the rest of the word the value of one that takes a value
    (`-o utfile`: a file written, exit 0), or as flags of which one is unknown (`-batchnorm`: "no
    such option -b"). Flags together (`-qh`, `-qc RUN`) and a number in the same word as its
    option (`-l20`, `-t1e-3`) are what they were."""
    flags = {o for p in command.params for o in p.opts if len(o) == 2 and o not in values}
    flags.add("-h")  # the help's, which is not among the command's own parameters
    for at, letter in enumerate(arg[1:], start=2):
        short, rest = f"-{letter}", arg[at:]
        if short in values:
            if not re.search(r"[A-Za-z_]", rest) or _number(rest):  # `-l20`, `-o-`, `-qc`
                return
            raise click.UsageError(
                f"{arg}: no such option (to give {short} the value {rest!r}, write {short} {rest})"
            )
        if short not in flags:
            raise click.UsageError(f"{arg}: no such option")


def single_dash_before_a_command(
    args: list[str], longs: tuple[str, ...], commands: tuple[str, ...] = ()
) -> str | None:
    """What to say of a single-dash word given before any command (`charrnn -help`, or a group's
    `charrnn corpus -list`), whose `longs` are its options and `commands` its commands: the
    option or command meant, or that there is none there; None where there is no such word."""
    for arg in args:
        if not arg.startswith("-"):
            return None  # a command's name: its words are the command's to check
        if found := SINGLE_DASH_WORD.fullmatch(arg):
            name = found.group(1)
            meant = _as_long(name)
            if meant in longs:
                return f"{name}: an option's name takes two dashes here: {meant}"
            if name[1:] in commands:
                return f"{name}: no such option; {name[1:]} is a command, named without a dash"
            return f"{name}: no such option"
    return None


def before_its_command(group: click.Group, args: list[str], option: str, path: str) -> str:
    """What to add where `option` (`--time`, or `-time`) came before the name of the command
    that has it (`charrnn --time 3m train x`): that command, `path` the group's own (`charrnn
    corpus`); "" where no command of the group has it."""
    meant = _as_long(option.split("=")[0])
    names, command, rest = [], group, args
    while isinstance(command, click.Group):  # the command named after it, as typed
        at = next((i for i, arg in enumerate(rest) if not arg.startswith("-")), None)
        if at is None or (sub := command.commands.get(rest[at])) is None:
            break
        names, command, rest = [*names, rest[at]], sub, rest[at + 1 :]
    if names and not isinstance(command, click.Group) and meant in _long_names(command):
        return f"; {meant} is an option of `{path} {' '.join(names)}`: give it after its name"
    if (elsewhere := _having(group, meant)) is not None:
        return f"; {meant} is an option of `{path} {elsewhere}`, given after its name"
    return ""


def checkpoint_as_argument(command: click.Command, args: list[str], message: str) -> str:
    """What to add to "Got unexpected extra argument (X)" where X is a checkpoint or a run's
    folder and `command` reads one with -c (`th sample.lua cv/x.t7`, char-rnn's way): "", or the
    option to give it with."""
    from pathlib import Path

    longs = _long_names(command)
    if "--checkpoint" not in longs:
        return ""
    for arg in args:
        saved = ((Path(arg) / f).is_file() for f in ("best.pt", "last.pt"))  # a run's folder
        model = arg.endswith(".pt") or any(saved)
        if model and f"({arg}" in message:
            return f": a checkpoint is given with -c (charrnn {command.name} -c {shlex.quote(arg)})"
    if any(isinstance(p, click.Argument) for p in command.params):
        return ""
    prime = ", a prime with --prime" if "--prime" in longs else ""
    return f": `charrnn {command.name}` takes none (a run or a checkpoint goes with -c{prime})"


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class SingleDashGroup(click.Group):
    """A group that reads a single-dash word before its command's name (`charrnn -help`,
    `charrnn corpus -list`) as such, where click would read short options (no such option -e)."""

    def make_context(self, info_name, args, *rest, **kwargs):
        given = list(args)  # (click's parser takes them off the list it is given)
        try:
            return super().make_context(info_name, args, *rest, **kwargs)
        except click.NoSuchOption as e:
            longs = (*(o for p in self.params for o in p.opts if o[:2] == "--"), "--help")
            said = single_dash_before_a_command(given, longs, tuple(self.commands))
            # the group's words as typed after the program's name, whatever it was called
            path = " ".join(["charrnn", *(e.ctx.command_path.split(" ")[1:] if e.ctx else ())])
            extra = ""
            if said is None or said.endswith(": no such option"):  # an option of a command?
                extra = before_its_command(
                    self, given, said.split(":")[0] if said else e.option_name, path
                )
                if said is None and not extra:
                    raise  # click's own, with its guesses (--verison: --version)
                said = said or e.message.rstrip(".")
            raise click.UsageError(said + extra, e.ctx) from None
