"""Errors a user can cause. The CLI prints them as one line, `Error: ...`, and exits 1.

Each message says what went wrong and what to do about it; library code raises, never prints.
"""

import os


class CharRNNError(Exception):
    """Base class for every error a user can cause and fix."""


class CorpusError(CharRNNError):
    """The text to train on cannot be read, decoded or used as it is."""


class CacheUnwritable(CorpusError):
    """The corpus cache cannot be written (a read-only home, a full disk): encoding can go on
    without it (encoded.encode_corpus)."""


class VocabError(CharRNNError):
    """Text holds characters the model's vocabulary does not have."""


class CheckpointError(CharRNNError):
    """A checkpoint is missing, unreadable, unsafe, or not a charrnn checkpoint."""


class DamagedCheckpoint(CheckpointError):
    """A checkpoint file that was whole once and is not now (cut short, changed after it was
    written, weights that are not numbers): `what` says how, `advice` what to use instead."""

    def __init__(
        self, what: str, advice: str = "use another checkpoint of its run, or train again"
    ):
        super().__init__(f"{what}; {advice}")
        self.what, self.advice = what, advice


class RunError(CharRNNError):
    """A run folder is missing, already exists, or cannot be written."""


class TrainingError(CharRNNError):
    """Training cannot go on (e.g. the loss keeps blowing up after rollbacks)."""


class ConfigError(CharRNNError):
    """Settings that cannot work together (e.g. a batch larger than the corpus)."""


class ExportError(CharRNNError):
    """A model cannot be written in the format asked for (e.g. the package it needs is missing)."""


def require_whole(name: str, value, least: int) -> None:
    """A ConfigError unless `value` (a library caller's count, called `name`) is a whole number
    of `least` or more: not a float, not a bool."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(
            f"{name} must be a whole number of {least} or more, not {shown_value(value)}"
            f"{foreign_number(value, 'int')}"
        )


def foreign_number(value, kind: str) -> str:
    """For a number of another library's type (NumPy's int64, a 0-d tensor...) that a Python
    `kind` is wanted in place of: a hint that names the conversion; else ''."""
    import numbers

    if isinstance(value, bool) or type(value) in (int, float):
        return ""
    if isinstance(value, numbers.Number) or hasattr(value, "item"):
        return f" (a Python {kind} is wanted: {kind}(x) converts it)"
    return ""


def require_type(name: str, value, types: type | tuple[type, ...], what: str, none: bool = False):
    """`value` where it is one of `types` (or None, with `none`), else a ConfigError saying that
    `name`, what a library caller gave, must be `what`: never a TypeError from deep inside. A bool
    is no number here unless `types` names bool."""
    if value is None and none:
        return value
    wanted = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
        raise ConfigError(f"{name} must be {what}{' or None' * none}, not {shown_value(value)}")
    return value


def require_path(name: str, value, what: str = "a path") -> str:
    """`value`, a library caller's path called `name` (a str or os.PathLike), as a str; a
    ConfigError where it is not one, or is empty (which would mean the current folder unsaid)."""
    path = os.fspath(require_type(name, value, (str, os.PathLike), what))
    if not path:
        raise ConfigError(f"{name} must be {what}, not empty (the current folder is '.')")
    return path


def require_callable(name: str, value) -> None:
    """A ConfigError unless `value`, a library caller's hook called `name`, is callable or None."""
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a function (or None), not {shown_value(value)}")


def shown_value(value) -> str:
    """`value` as a message shows it: its repr, cut short (a tensor, a model, a long text)."""
    shown = repr(value)
    return shown if len(shown) <= 60 else f"{shown[:57]}..."
