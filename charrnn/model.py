"""CharLSTM: embedding -> stacked LSTM -> linear head over the vocabulary.

Why an LSTM and not a vanilla RNN: a vanilla RNN rewrites its whole memory at every character,
h = tanh(W x + U h), so the gradient from a character 100 steps back is multiplied by U and tanh'
100 times and vanishes; in practice it forgets after a few dozen characters. An LSTM keeps a second
vector, the cell state c, that runs along the sequence like a conveyor belt: each step only scales
it (forget gate) and adds to it (input gate), so information and gradients can ride it for hundreds
of characters. What the next layer and the head see is a gated read of that belt, h (output gate):

        c_{t-1} ──(x f)────────(+)──────────────┬──> c_t         long-term memory, the belt
                     ^          ^               │
                  f = σ(.)   i·g, i = σ(.)    tanh
                  forget     g = tanh(.)        │
                     │       input/write     (x o), o = σ(.)  output gate
        h_{t-1}, x_t ┴──────────┴───────────────┴──> h_t         short-term memory / output

`forward` runs the fused nn.LSTM kernel (oneDNN on CPU, cuDNN on GPU) over whole sequences for
training; `step` runs the very same equations written out gate by gate, one character at a time,
which is both the clearest statement of the cell and the cheapest path for sampling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (num_layers, B, hidden_size)


@dataclass
class ModelConfig:
    """Shape of a CharLSTM; names follow torch.nn.LSTM."""

    vocab_size: int
    embedding_dim: int = 64
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.0  # between LSTM layers and before the head; 0 for short runs
    forget_bias: float = 1.0  # start with the belt open: remember by default, learn to forget

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**d)


def parameter_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of a CharLSTM of config `c`, without building one."""
    v, e, h = c.vocab_size, c.embedding_dim, c.hidden_size
    shapes = {"embed.weight": (v, e)}
    for layer in range(c.num_layers):
        shapes[f"lstm.weight_ih_l{layer}"] = (4 * h, e if layer == 0 else h)
        shapes[f"lstm.weight_hh_l{layer}"] = (4 * h, h)
        shapes[f"lstm.bias_ih_l{layer}"] = (4 * h,)
        shapes[f"lstm.bias_hh_l{layer}"] = (4 * h,)
    shapes["head.weight"], shapes["head.bias"] = (v, h), (v,)
    return shapes


class CharLSTM(nn.Module):
    """Next-character model: ids (B, T) and a state -> logits (B, T, V) and the new state."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.lstm = nn.LSTM(
            c.embedding_dim,
            c.hidden_size,
            num_layers=c.num_layers,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)
        self._init_forget_bias(c.forget_bias)

    def _init_forget_bias(self, value: float) -> None:
        # PyTorch orders the gates (i, f, g, o) in each bias; b_ih + b_hh is the effective bias.
        h = self.config.hidden_size
        with torch.no_grad():
            for layer in range(self.config.num_layers):
                getattr(self.lstm, f"bias_ih_l{layer}")[h : 2 * h].fill_(value)
                getattr(self.lstm, f"bias_hh_l{layer}")[h : 2 * h].zero_()

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """All-zero (h, c): the state before the first character of a stream."""
        c = self.config
        device = device or self.head.weight.device
        shape = (c.num_layers, batch_size, c.hidden_size)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """idx (B, T) int64, state or None -> logits (B, T, V), state (h, c)."""
        x = self.embed(idx)  # (B, T, E)
        out, state = self.lstm(x, state)  # (B, T, H); h, c (num_layers, B, H)
        return self.head(self.drop(out)), state  # (B, T, V)

    @torch.no_grad()
    def step(self, idx: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One character per stream, the LSTM written out: idx (B,), state -> logits (B, V), state.

        Equal (to float rounding) to forward() on a length-1 sequence, without the fused kernel's
        per-call set-up cost, which dominates when generating one character at a time.
        """
        h, c = state
        x = self.embed(idx)  # (B, E)
        new_h, new_c = [], []
        for layer in range(self.config.num_layers):
            x, c_l = lstm_cell(x, h[layer], c[layer], *self._weights(layer))
            new_h.append(x)
            new_c.append(c_l)
        return self.head(x), (torch.stack(new_h), torch.stack(new_c))

    def _weights(self, layer: int):
        lstm = self.lstm
        return (
            getattr(lstm, f"weight_ih_l{layer}"),
            getattr(lstm, f"weight_hh_l{layer}"),
            getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}"),
        )

    def num_params(self, embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embedding else n - self.embed.weight.numel()


def lstm_cell(x, h, c, w_ih, w_hh, bias) -> State:
    """One LSTM step: x (B, I), h and c (B, H) -> new h, c (B, H). The four gates, by name."""
    gates = F.linear(x, w_ih) + F.linear(h, w_hh, bias)  # (B, 4H), in PyTorch's order i, f, g, o
    i, f, g, o = gates.chunk(4, dim=1)
    forget = torch.sigmoid(f)  # how much of the belt to keep (1 = remember everything)
    write = torch.sigmoid(i)  # how much of the candidate to add
    candidate = torch.tanh(g)  # what could be written
    reveal = torch.sigmoid(o)  # how much of the belt to show as output
    c = forget * c + write * candidate  # the conveyor belt: scaled and added to, never rewritten
    h = reveal * torch.tanh(c)  # short-term memory: a gated view of the long-term cell
    return h, c


class Stepper:
    """CharLSTM.step with the weights laid out for sampling's hot loop: same equations, less work.

    Layer 0's embedding, input weights and both biases fold into one (V, 4H) table, so reading a
    character is a row lookup; every upper layer is one matmul over [x, h]; the gates take one
    sigmoid and one tanh over all 4H values. Per character that is one GEMV per layer and a dozen
    small ops, with nothing recomputed (measured in bench/sample_speed.py).
    """

    @torch.no_grad()
    def __init__(self, model: CharLSTM, batch_size: int = 1):
        self.hidden = model.config.hidden_size
        # Measured (bench/sample_speed.py): MKL is fastest on W itself for one row, and on a
        # contiguous W^T for a batch of rows; the product is the same either way.
        self._layout = (lambda w: w.T.contiguous().T) if batch_size > 1 else (lambda w: w)
        w_ih, w_hh, bias = model._weights(0)
        self.table = (model.embed.weight @ w_ih.T + bias).contiguous()  # (V, 4H)
        self.w_hh0 = self._layout(w_hh.contiguous())  # (4H, H)
        self.upper = []  # per layer >= 1: ([W_ih | W_hh] (4H, 2H), bias (4H,))
        for layer in range(1, model.config.num_layers):
            w_ih, w_hh, bias = model._weights(layer)
            w = self._layout(torch.cat([w_ih, w_hh], 1).contiguous())
            self.upper.append((w, bias.contiguous()))
        self.head_w, self.head_b = model.head.weight.contiguous(), model.head.bias.contiguous()

    def __call__(self, idx: torch.Tensor, h: list, c: list) -> torch.Tensor:
        """idx (B,), per-layer h and c lists of (B, H), updated in place -> logits (B, V)."""
        gates = torch.addmm(self.table[idx], h[0], self.w_hh0.T)  # (B, 4H)
        h[0], c[0] = self._cell(gates, c[0])
        for layer, (w, b) in enumerate(self.upper, start=1):
            gates = torch.addmm(b, torch.cat([h[layer - 1], h[layer]], 1), w.T)
            h[layer], c[layer] = self._cell(gates, c[layer])
        return torch.addmm(self.head_b, h[-1], self.head_w.T)  # (B, V)

    def _cell(self, gates: torch.Tensor, c: torch.Tensor) -> State:
        n = self.hidden  # gates are (i, f, g, o): sigmoid for the three gates, tanh for g
        s, t = torch.sigmoid(gates), torch.tanh(gates)
        c = s[:, n : 2 * n] * c + s[:, :n] * t[:, 2 * n : 3 * n]  # forget, then write
        return s[:, 3 * n :] * torch.tanh(c), c  # reveal


def detach_state(state: State) -> State:
    """Keep the values, drop the graph: truncated backprop through time at a batch boundary."""
    return tuple(s.detach() for s in state)


def restart_streams(state: State, restart: torch.Tensor) -> State:
    """Zero the state of the streams where `restart` (B,) bool is true: a cold start mid-text."""
    keep = (~restart).to(state[0].dtype)[None, :, None]  # (1, B, 1)
    return tuple(s * keep for s in state)


def expand_state(state: State, n: int) -> State:
    """A one-stream state (layers, 1, H) copied to n streams (layers, n, H)."""
    return tuple(s.expand(-1, n, -1).contiguous() for s in state)
