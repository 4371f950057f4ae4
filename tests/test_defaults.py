"""Each default has one home (charrnn/defaults.py), and text/'s imports flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import charrnn.text
from charrnn import defaults
from charrnn.cli.inspect import inspect
from charrnn.cli.memory import memory
from charrnn.cli.sample import sample
from charrnn.cli.score import score
from charrnn.cli.train import train
from charrnn.text import vocab
from charrnn.train.trainer import TrainConfig
from charrnn.use.sampler import SampleConfig, sample_text

TEXT = Path(__file__).resolve().parent.parent / "charrnn" / "text"


def option(command, name: str):
    return next(p for p in command.params if p.name == name)


def test_the_options_and_the_configs_take_their_defaults_from_one_place():
    config = TrainConfig(batch_size=1, seq_len=1, lr=1.0)
    assert (config.seed, config.val_frac) == (defaults.SEED, defaults.VAL_FRAC)
    assert option(train, "seed").default == defaults.SEED
    assert option(train, "val_frac").default == defaults.VAL_FRAC
    assert option(train, "cell").default == defaults.CELL
    assert option(train, "size").default == defaults.SIZE
    assert option(train, "sample_temp").default == defaults.TEMPERATURE
    assert option(train, "sample_length").default == defaults.SAMPLE_LENGTH
    assert sample_text.__defaults__[:3] == ("", defaults.SAMPLE_LENGTH, defaults.TEMPERATURE)
    assert SampleConfig().temperature == (defaults.TEMPERATURE,)
    for command in (sample, inspect):
        assert float(option(command, "temperature").default) == defaults.TEMPERATURE
    for command in (train, sample, score, inspect, memory):
        assert option(command, "encoding").default == defaults.ENCODING
    for command in (sample, score, inspect, memory):
        assert option(command, "unknown").default == defaults.UNKNOWN
    assert defaults.UNKNOWN in vocab.UNKNOWN_POLICIES
    assert option(sample, "seed").type.max == defaults.MAX_SEED


def _text_imports(path: Path) -> set[str]:
    """The charrnn modules a module of text/ imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("charrnn"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("charrnn")}
    return found


def test_text_imports_flow_one_way():
    """text/ never reaches up (model, train, use, cli), and its modules form no cycle: each
    imports only those before it in the order its package docstring gives."""
    order = [line.split()[0] for line in charrnn.text.__doc__.splitlines()[2:] if line.strip()]
    assert sorted(order) == sorted(p.stem for p in TEXT.glob("*.py") if p.stem != "__init__")
    for i, name in enumerate(order):
        for module in _text_imports(TEXT / f"{name}.py"):
            assert module.split(".")[1:2] not in (["model"], ["train"], ["use"], ["cli"]), module
            if module.startswith("charrnn.text."):
                assert module.split(".")[2] in order[:i], f"{name} imports {module}"


def test_use_and_model_never_reach_into_train():
    """What a trained model is for (use/) and the model itself never import train/: a sample's
    runaway judgement is the model's (model/runaway.py), not the training check's."""
    for folder in ("use", "model"):
        for path in (TEXT.parent / folder).glob("*.py"):
            assert not any(m.startswith("charrnn.train") for m in _text_imports(path)), path
