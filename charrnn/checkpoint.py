"""One self-contained checkpoint file: save atomically, load safely, every version readable.

The file is a dict of tensors and plain Python values only, so `torch.load(weights_only=True)`
reads it and no code in it ever runs; docs/checkpoint-format.md lists its parts. A version is
raised where a charrnn that reads only the one before would misread the file or call it broken,
so that it refuses it as newer: version 4 keeps the input dropout in its model config; version 3
may hold a grown vocabulary (not sorted as a whole), `origin` and `patience`; version 1 (LSTM
only) is upgraded on load.
"""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import os
import pickle
import re
import shlex
import shutil
import warnings
import zipfile
from collections.abc import Callable, Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from charrnn.devices import as_device
from charrnn.errors import (
    CharRNNError,
    CheckpointError,
    ConfigError,
    DamagedCheckpoint,
    require_path,
)
from charrnn.fsutil import ZIP, atomic_write, cannot_write
from charrnn.model.config import ModelConfig, parameter_shapes
from charrnn.model.network import initial_network
from charrnn.model.trained import Model
from charrnn.text.vocab import CharVocab
from charrnn.train.config import TrainConfig
from charrnn.train.events import ENDINGS
from charrnn.train.state import Generators, Position, RunState

FORMAT = "charrnn"
FORMAT_VERSION = 4
# What a reader of the model alone checks (`load(verify=MODEL_PARTS)`): everything but the
# optimizer's and the trainer's tensors, which it never reads.
MODEL_PARTS = ("format", "format_version", "model_config", "train_config", "vocab", "model")
MODEL_PARTS += ("metrics", "corpus", "origin")
PARTS = (*MODEL_PARTS, "optimizer", "trainer")  # every part a checkpoint may hold, digested
REQUIRED = ("model_config", "train_config", "vocab", "model", "trainer", "metrics", "corpus")


def save(payload: dict[str, Any], path: Path, elsewhere: str = "save it elsewhere") -> None:
    """Write `payload` to `path` atomically: temp file in the same folder, fsync, rename; a
    failed write's error ends with `elsewhere`, the way to write it somewhere else."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    payload.pop("digests", None)  # a loaded payload saved again: its digests are made anew
    payload["digests"] = {part: _digest(value) for part, value in payload.items()}
    try:
        atomic_write(Path(path), lambda f: torch.save(payload, f))
    except OSError as e:
        raise CheckpointError(cannot_write(path, e, elsewhere)) from None


def copy(source: Path, path: Path, elsewhere: str = "save it elsewhere") -> None:
    """Write the checkpoint file `source` to `path` atomically, byte for byte: a second file of
    the same state costs a copy, not another serialization (`elsewhere`: as for save)."""
    try:
        with open(source, "rb") as f:
            atomic_write(Path(path), lambda out: shutil.copyfileobj(f, out, 1 << 20))
    except OSError as e:
        raise CheckpointError(cannot_write(path, e, elsewhere)) from None


def load(path: Path, verify: bool | Collection[str] = True) -> dict[str, Any]:
    """Read and check a checkpoint on the CPU; never runs code from the file.

    `verify`: the parts whose digests are checked (True: all; a reader of the model alone gives
    MODEL_PARTS, so the optimizer's tensors are never read; False: none, for a reader of the plain
    values only, such as `charrnn runs`)."""
    path = Path(require_path("path", path, "a checkpoint's path"))
    if not isinstance(verify, bool) and (
        isinstance(verify, str)
        or not isinstance(verify, Collection)
        or not all(isinstance(part, str) for part in verify)
    ):
        raise ConfigError(
            f"verify must be True, False or a set of a checkpoint's parts, not {verify!r}"
        )
    if not isinstance(verify, bool) and (not verify or set(verify) - set(PARTS)):
        raise ConfigError(
            f"verify must name parts of a checkpoint ({', '.join(PARTS)}), not {verify!r}"
        )
    if path.is_dir():
        if (path / "best.pt").is_file():  # (load_model takes a run folder for its best.pt)
            raise CheckpointError(
                f"{path} is a run folder: give one of its checkpoint files, {path / 'best.pt'} "
                "or its last.pt"
            )
        if (path / "last.pt").is_file():
            raise CheckpointError(
                f"{path} is a run folder without a best.pt (no evaluation yet): give its "
                "last.pt, or resume the run"
            )
        if _in_a_run(path):  # a run's own file, damaged: the reader offers the other one
            raise DamagedCheckpoint(f"{path} is a folder, not a checkpoint file")
        raise CheckpointError(f"{path} is a folder: give a checkpoint file (a run's best.pt)")
    if not path.is_file():
        what = f"{path} is not a file" if path.exists() else f"nothing at {path}"  # /dev/null
        raise CheckpointError(f"{what}: give a checkpoint file (a run's best.pt)")
    # A run's own file was a checkpoint once: whatever it holds now, it is damaged, and the
    # reader's advice (the run's other checkpoint) applies. Another file may never have been one.
    damaged = DamagedCheckpoint if _in_a_run(path) else _not_one
    if reason := _not_a_torch_archive(path):
        error = DamagedCheckpoint if reason == TRUNCATED else damaged
        raise error(f"{path} is not a charrnn checkpoint ({reason})")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on foreign files
            warnings.simplefilter("ignore")
            payload = _torch_load(path)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except pickle.UnpicklingError as e:
        if found := re.search(r"GLOBAL ([\w.]+)", str(e)):
            raise CheckpointError(
                f"{path} was refused: it asks to load {found.group(1)}, which is code, not data "
                "(charrnn checkpoints hold only tensors and plain values); nothing in it was run"
            ) from None
        raise damaged(
            f"{path} is not a charrnn checkpoint (its data is not a torch pickle)"
        ) from None
    except Exception:  # garbage can fail anywhere in the parser; weights_only ran no code
        # (torch's own words name its C++ source: "enforce fail at inline_container.cc")
        raise damaged(
            f"{path} is not a charrnn checkpoint (a zip archive, but its parts are not those of a "
            "torch file, or are damaged)"
        ) from None
    payload = validate(payload, path, damaged)
    if verify:
        _verify(payload, path, None if verify is True else verify)
    return payload


def _not_one(message: str) -> CheckpointError:
    """The error of a file that is no checkpoint (not a run's own: no other one of it to offer),
    with what to give instead."""
    return CheckpointError(f"{message}: give a charrnn checkpoint (a run's best.pt) instead")


def _in_a_run(path: Path) -> bool:
    """Whether `path` is a run's best.pt or last.pt: so named, beside the run's metrics.jsonl or
    its other checkpoint."""
    other = {"best.pt": "last.pt", "last.pt": "best.pt"}.get(path.name)
    return other is not None and any(
        (path.parent / name).is_file() for name in (other, "metrics.jsonl")
    )


def _torch_load(path: Path) -> Any:
    """torch.load's payload of `path`, mapped (only the tensors used are read: sampling never
    touches the optimizer state), or read whole where the name holds bytes that are not UTF-8
    (a folder named in Latin-1 on Linux), which torch's mapping cannot take."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        with open(path, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _digest(value: Any) -> str:
    """SHA-256 of `value`: its plain values (their types and reprs) and its tensors (where each
    one is, its dtype, its shape and its bytes), nested in dicts, lists and tuples, in order."""
    h = hashlib.sha256()
    for where, leaf in _leaves(value, ""):
        if isinstance(leaf, torch.Tensor):
            t = leaf.detach().cpu().contiguous()
            h.update(f"{where}|{t.dtype}|{tuple(t.shape)};".encode())
            if n := t.numel() * t.element_size():  # the bytes where they lie (mmap: read once)
                h.update(memoryview((ctypes.c_char * n).from_address(t.data_ptr())))
        else:
            h.update(f"{where}|{type(leaf).__name__}|{leaf!r};".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _leaves(value: Any, where: str):
    if isinstance(value, dict):
        yield f"{where}{{{len(value)}", None
        for k, v in value.items():
            yield from _leaves(v, f"{where}/{k!r}")
    elif isinstance(value, list | tuple):
        yield f"{where}[{len(value)}", None
        for i, v in enumerate(value):
            yield from _leaves(v, f"{where}/{i}")
    else:
        yield where, value


def _verify(payload: dict[str, Any], path: Path, parts: Collection[str] | None) -> None:
    """Each part's tensors against the digest saved with them (a file without digests: as is)."""
    digests = payload.get("digests")
    if digests is None:
        return
    if not isinstance(digests, dict):
        raise DamagedCheckpoint(f"{path} is damaged: its digests are not readable")
    for part, expected in digests.items():
        if parts is not None and part not in parts:
            continue
        if part not in payload or _digest(payload[part]) != expected:
            raise DamagedCheckpoint(
                f"{path} is damaged: its {part} does not match the digest saved with it (the "
                "file changed after it was written)"
            )


TRUNCATED = "a zip archive cut short: the file is truncated"


def instead_of_damaged(path: Path, option: str) -> str:
    """What to read instead of the damaged checkpoint at `path`, given as `option` (-c,
    --init-from): its run's other one (best.pt for last.pt, and back), where that one loads;
    else train again."""
    path = Path(path)
    other = {"best.pt": "last.pt", "last.pt": "best.pt"}.get(path.name)
    if other is not None and _in_a_run(path) and not (path.parent / other).is_file():
        return "its run has no other checkpoint: train the run again, with --force to replace it"
    if other is None or not (path.parent / other).is_file():
        return "train again, or give another checkpoint"
    try:
        load_model(path.parent / other)
    except CheckpointError:
        return (
            f"its run's {other} does not load either: train the run again, with --force to "
            "replace it"
        )
    latest = " (the run's latest weights, not its best)" if other == "last.pt" else ""
    return f"give {option} {shlex.quote(str(path.parent / other))} instead{latest}"


def _not_a_torch_archive(path: Path) -> str | None:
    """Why `path` cannot be a checkpoint at all (torch saves zip archives), or None if it may be."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
        whole = zipfile.is_zipfile(path)  # its end (the central directory) is there
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception:  # an end record damaged so that zipfile's own parser fails ("span disks")
        whole = False
    if head.startswith(ZIP):  # where torch looks for a zip archive: its start
        return None if whole else TRUNCATED
    if not head:
        return "the file is empty"
    try:  # incremental: a character cut at byte 512 is not an error
        text = b"\0" not in head and codecs.getincrementaldecoder("utf-8")().decode(head) != ""
    except UnicodeDecodeError:
        text = False
    return "a text file, not a torch archive" if text else "not a torch archive"


def validate(payload: Any, path: Path, damaged: Callable = CheckpointError) -> dict[str, Any]:
    """Check the layout and version of a loaded checkpoint; raise CheckpointError otherwise
    (`damaged` where it lacks what every checkpoint has: a run's own file, changed since)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise damaged(f"{path} is not a charrnn checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise damaged(f"{path} is damaged: its format_version ({version!r}) is no version number")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}, newer than this charrnn reads "
            f"({FORMAT_VERSION}); upgrade charrnn"
        )
    # every file of format 4 was written with its digests: one without has had them taken out
    missing = [k for k in (*REQUIRED, *("digests",) * (version >= 4)) if k not in payload]
    if missing:
        raise damaged(f"{path} is incomplete: it lacks {', '.join(missing)}")
    return _upgrade(payload) if version == 1 else payload


def _upgrade(payload: dict[str, Any]) -> dict[str, Any]:
    """A version-1 checkpoint (LSTM only) in today's layout. What does not have the expected
    types is left as it is, for the checks that follow to reject."""
    payload = {**payload, "format_version": FORMAT_VERSION}
    if isinstance(payload["model_config"], dict):
        payload["model_config"] = {"cell": "lstm", **payload["model_config"]}
    if isinstance(payload["model"], dict):
        payload["model"] = {_renamed(k): v for k, v in payload["model"].items()}
    trainer = payload["trainer"]
    if isinstance(trainer, dict) and "state_h" in trainer and "state_c" in trainer:
        state = [trainer["state_h"], trainer["state_c"]]  # (h, c): the LSTM's state, listed
        rest = {k: v for k, v in trainer.items() if k not in ("state_h", "state_c")}
        payload["trainer"] = {**rest, "state": state}
    return payload


def _renamed(key):
    """A version-1 weight's name today: the recurrent stack was `lstm`, it is `rnn`."""
    return "rnn." + key.removeprefix("lstm.") if str(key).startswith("lstm.") else key


def load_model(
    path: Path,
    device: torch.device | str | None = None,
    verify: bool | Collection[str] = MODEL_PARTS,
) -> Model:
    """The trained model of the checkpoint at `path` (a run's folder: its best.pt), whole (in eval
    mode, on `device`, else the CPU): what `sample`, `score` and `inspect` read text with."""
    require_path("path", path, "a checkpoint's path")
    if Path(path).is_dir() and (Path(path) / "best.pt").is_file():
        path = Path(path) / "best.pt"
    model = restore(load(path, verify=verify), path)
    return model.to(as_device(device)) if device is not None else model


def restore(payload: dict[str, Any], path: Path) -> Model:
    """The trained model of a loaded checkpoint (in eval mode, on the CPU), cross-checked."""
    try:
        vocab = CharVocab.from_list(payload["vocab"])
        config = ModelConfig(**payload["model_config"])
    except (CharRNNError, TypeError, ValueError, AttributeError, KeyError) as e:
        raise CheckpointError(f"{path} has a broken vocabulary or model config ({e})") from None
    if config.vocab_size != len(vocab):
        raise CheckpointError(
            f"{path} is inconsistent: its config says {config.vocab_size} characters, "
            f"its vocabulary has {len(vocab)}"
        )
    _check_shapes(config, payload["model"], path)  # before allocating what the config claims
    net = initial_network(config)  # its initial weights replaced at once
    net.load_state_dict(payload["model"])
    counts = (payload.get("corpus") or {}).get("char_counts")  # None in older checkpoints
    return Model(net.eval(), vocab, counts)


def _check_shapes(config: ModelConfig, weights: Any, path: Path) -> None:
    """The weights must be exactly the tensors a model of `config` has, shape for shape."""
    sizes = (config.vocab_size, config.embedding_dim, config.hidden_size, config.num_layers)
    if not all(isinstance(n, int) and 0 < n < 2**31 for n in sizes):
        raise CheckpointError(f"{path} has an impossible model config ({config})")
    expected = parameter_shapes(config)  # arithmetic: nothing is allocated, however large
    if not isinstance(weights, dict) or set(weights) != set(expected):
        raise CheckpointError(
            f"{path} is inconsistent: its weights are not those of a {config.cell.upper()}"
        )
    for name, shape in expected.items():
        tensor = weights[name]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(
                f"{path} is inconsistent: its weights do not fit its config "
                f"({name} is {got}, the config needs {tuple(shape)})"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(f"{path} is inconsistent: {name} is not a float tensor")
        if not bool(torch.isfinite(tensor).all()):
            raise DamagedCheckpoint(
                f"{path} is damaged: its weights hold values that are not numbers (NaN or "
                f"infinity, in {name}), so it would write garbage"
            )


# ------------------------------------------------------------------ a run's state, in and out
def load_run(path: Path) -> RunState:
    """The run a checkpoint file holds, to continue exactly where it stopped."""
    payload = load(path)
    return run_state(payload, restore(payload, path))


def _eval_size(value) -> dict | None:
    """A checkpoint's evaluation size, checked: three positive integers, or None."""
    if value is None:
        return None
    keys = ("streams", "chars", "starts")
    if not isinstance(value, dict) or set(value) != set(keys):
        raise ValueError(f"eval_size {value!r}")
    return {k: int(value[k]) for k in keys}


def _ended(value) -> str | None:
    """A checkpoint's record of how its run ended, checked: one of events.ENDINGS, or None."""
    if value is not None and value not in ENDINGS:
        raise ValueError(f"ended {value!r}")
    return value


def to_payload(state: RunState) -> dict[str, Any]:
    """`state` as the file's dict of tensors and plain values (the layout in this docstring)."""
    p, g = state.position, state.generators
    trainer = {
        **{k: v for k, v in vars(p).items() if k != "metrics"},  # in the file's own list
        "state": state.streams,  # the streams of every rank, in rank order
        "world_size": state.world_size,
        **{f"rng_{k}": v for k, v in vars(g).items()},  # rng_cpu, rng_ranks, rng_cold, rng_cuda
    }
    return {
        "model_config": asdict(state.model.config),
        "train_config": asdict(state.config),
        "vocab": state.vocab.to_list(),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer,
        "trainer": trainer,
        "metrics": list(p.metrics),
        "corpus": state.corpus,
        **({"origin": state.origin} if state.origin is not None else {}),
    }


def run_state(payload: dict[str, Any], model: Model) -> RunState:
    """The run a loaded checkpoint holds, around its model (`restore`, on the run's device); fields
    absent from older versions take their defaults. CheckpointError where its training state is
    broken."""
    try:
        t = payload["trainer"]
        position = Position(
            step=int(t["step"]),
            epoch=int(t["epoch"]),
            batch=int(t["batch"]),
            elapsed=float(t["elapsed"]),
            best_val=float(t["best_val"]),
            lr_scale=float(t.get("lr_scale", 1.0)),
            metrics=list(payload["metrics"]),
            window_loss=float(t.get("window_loss", 0.0)),  # absent before training records
            window_steps=int(t.get("window_steps", 0)),
            start_loss=None if t.get("start_loss") is None else float(t["start_loss"]),
            eval_size=_eval_size(t.get("eval_size")),  # absent before evaluations were sized
            ended=_ended(t.get("ended")),  # absent before it was kept
            eval_window_loss=float(t.get("eval_window_loss", 0.0)),  # absent before they were
            eval_window_steps=int(t.get("eval_window_steps", 0)),
            eval_due=bool(t.get("eval_due", False)),
        )
        rng = t["rng_cpu"], t.get("rng_ranks"), t.get("rng_cold"), t.get("rng_cuda")
        return RunState(
            model.net,
            model.vocab,
            # a run from before the setting trained in float32, and goes on so
            TrainConfig(**{"precision": "float32", **payload["train_config"]}),
            payload["corpus"],
            position,
            optimizer=payload["optimizer"],
            streams=list(t["state"]),
            generators=Generators(*rng),
            world_size=int(t.get("world_size", 1)),
            origin=payload.get("origin"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"the checkpoint's training state is broken: {e}") from None
