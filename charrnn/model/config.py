"""The shape of a model, without torch: ModelConfig, the cells, and parameter arithmetic.

Kept free of torch so that the command line can offer its choices (and `--help`) at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from charrnn.errors import ConfigError, require_whole

CELLS = ("lstm", "gru", "rnn")
GATE_ROWS = {"lstm": 4, "gru": 3, "rnn": 1}  # weight_ih is (rows * H, I): the gates stacked
# What each cell's readable step computes and can record, by name: state first, then the gates
# in the essays' order, then the candidate.
FIELDS = {
    "lstm": ("cell", "hidden", "forget", "input", "output", "candidate"),
    "gru": ("hidden", "reset", "update", "candidate"),
    "rnn": ("hidden",),
}
# What each cell carries from one character to the next: (h, c) for the LSTM, (h,) for the others.
STATES = {"lstm": ("cell", "hidden"), "gru": ("hidden",), "rnn": ("hidden",)}
GATES = {"lstm": ("forget", "input", "output"), "gru": ("reset", "update"), "rnn": ()}
# What a gate's 0 and 1 do, for legends (the GRU keeps its old h where update is 1:
# h = (1 - z) n + z h, as PyTorch writes it)
GATE_ENDS = {
    "forget": ("erase the cell", "keep it"),
    "input": ("write nothing", "write the candidate"),
    "output": ("hide the cell", "show it as h"),
    "reset": ("ignore the old h", "use it"),
    "update": ("take the candidate", "keep the old h"),
}
# The largest shape the command line accepts (--embedding, --hidden, --layers), and a library
# caller: far past what a CPU trains, and a slip of a digit would allocate terabytes
LARGEST = {"embedding_dim": 4096, "hidden_size": 8192, "num_layers": 16}
# The rates of a ModelConfig that are not its shape: a run started from a model may change them.
DROPOUTS = ("dropout", "input_dropout")


@dataclass
class ModelConfig:
    """Shape of a CharRNN; names follow torch.nn.LSTM. The sizes' defaults live in presets.py."""

    vocab_size: int
    embedding_dim: int
    hidden_size: int
    num_layers: int
    dropout: float = 0.0  # between layers and before the head; 0 for short runs
    # Of the embedded characters, before the first layer, in training: a share of each input
    # vector is zeroed, so the cells learn not to lean on any one of its features (0 in
    # checkpoints before it).
    input_dropout: float = 0.0
    cell: str = "lstm"  # "lstm", "gru" or "rnn" (tanh); checkpoints without one are LSTMs
    forget_bias: float = 1.0  # LSTM only: start with the belt open, remember by default
    # What the model reads before any text (sampling, scoring, validation): how its training text
    # starts a paragraph (trained.lead_in_for). None: from the vocabulary (checkpoints before it).
    lead_in: str | None = None

    def __post_init__(self):
        """A library caller's values held to what the command line accepts (a width of 0 would
        fail deep inside torch; a checkpoint's, refused as a broken config)."""
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}: one of {', '.join(CELLS)}")
        for name in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
            require_whole(name, getattr(self, name), 1)
            if getattr(self, name) > LARGEST.get(name, math.inf):
                raise ConfigError(
                    f"{name} must be at most {LARGEST[name]}, not {getattr(self, name)}"
                )
        for name in DROPOUTS:
            rate = getattr(self, name)
            if isinstance(rate, bool) or not (isinstance(rate, int | float) and 0 <= rate < 1):
                raise ConfigError(f"{name} must be from 0 up to (not including) 1, not {rate!r}")
        if not (isinstance(self.forget_bias, int | float) and math.isfinite(self.forget_bias)):
            raise ConfigError(f"forget_bias must be a finite number, not {self.forget_bias!r}")


def parameter_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of a CharRNN of config `c`, without building one."""
    v, e, h, rows = c.vocab_size, c.embedding_dim, c.hidden_size, GATE_ROWS[c.cell]
    shapes = {"embed.weight": (v, e)}
    for layer in range(c.num_layers):
        shapes[f"rnn.weight_ih_l{layer}"] = (rows * h, e if layer == 0 else h)
        shapes[f"rnn.weight_hh_l{layer}"] = (rows * h, h)
        shapes[f"rnn.bias_ih_l{layer}"] = (rows * h,)
        shapes[f"rnn.bias_hh_l{layer}"] = (rows * h,)
    shapes["head.weight"], shapes["head.bias"] = (v, h), (v,)
    return shapes


def parameter_count(c: ModelConfig) -> int:
    """How many parameters a CharRNN of config `c` has (arithmetic: nothing is allocated)."""
    return sum(math.prod(s) for s in parameter_shapes(c).values())
