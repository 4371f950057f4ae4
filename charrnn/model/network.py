"""CharRNN: embedding -> a stack of recurrent cells (LSTM, GRU or vanilla RNN) -> linear head.

Two paths through the same cell, held equal by tests: `forward` runs PyTorch's fused kernel over
whole sequences (training, scoring, priming; a stack training on a CPU, one call a layer, for the
dropout between them); `Stepper` reads one character per stream, through the cell's step written
out gate by gate (the reference; inspection reads its gates) or through PyTorch's one-step cell
kernel, one call a layer (sampling). The recurrent state is a tuple of (num_layers, B,
hidden_size) tensors, opaque outside this module. Why each cell works as it does:
docs/how-it-works.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from charrnn.model.config import CELLS, STATES, ModelConfig, parameter_count, parameter_shapes

__all__ = ["CELLS", "CharRNN", "ModelConfig", "Stepper", "parameter_count", "parameter_shapes"]

State = tuple[torch.Tensor, ...]  # opaque; each tensor (num_layers, B, hidden_size)
Probe = dict[str, torch.Tensor] | None  # where a step leaves what it computed, by name, (B, H)

_KERNELS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_LAYER_KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}  # what they call
LOGITS_BUDGET = 1 << 20  # floats of logits a reader holds at once (4 MB): bench/logits_pieces.py


class Dropout(nn.Module):
    """nn.Dropout's dropout (in training, each value zeroed with probability p, the rest scaled by
    1 / (1 - p); in evaluation nothing), its mask drawn more cheaply on a CPU: x (...) -> (...).

    PyTorch's CPU mask costs about 6 ns a value, drawn one at a time from one generator: 5-8 ms of
    medium's 78 ms step, at any rate above 0 (docs/performance.md, "dropout's mask"). Here each
    draw from the same generator is a 64-bit integer that gives four values their 16 random
    bits, and a value is dropped where its bits fall below p (p in steps of 1/65536: `drop_share`).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":  # a GPU draws its own mask fast
            return F.dropout(x, self.p, training=True)
        p = drop_share(self.p)
        keep = random_16_bits(x.numel(), x.device).view(x.shape) >= round(p * 65536) - 32768
        scale = x.new_tensor(1 / (1 - p) if p < 1 else 0.0)  # in x's dtype, as the mask
        return x * torch.where(keep, scale, x.new_zeros(()))  # (...)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_share(p: float) -> float:
    """The share Dropout(p) drops: p rounded to the 1/65536 its 16 bits a value can say, and for
    0 < p < 1 kept inside (0, 1), so that a rate just above 0 still drops and one just below 1
    still keeps."""
    if p <= 0 or p >= 1:
        return min(max(p, 0.0), 1.0)
    return min(max(round(p * 65536), 1), 65535) / 65536


def random_16_bits(n: int, device: torch.device) -> torch.Tensor:
    """n values of 16 uniformly random bits each, as int16 (-32768 to 32767) from the default
    generator: each of its 64-bit draws (over int64's whole range) is four values."""
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    return words.view(torch.int16)[:n]  # (n,)


@contextlib.contextmanager
def float32_default() -> Iterator[None]:
    """torch's default dtype float32 for the block: the tensors charrnn makes without naming a
    dtype match its float32 weights, whatever a caller set (torch.set_default_dtype)."""
    was = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(was)


def initial_network(config: ModelConfig, seed: int = 0) -> CharRNN:
    """A network of `config` at initial weights drawn from `seed`, in a fork of torch's
    generator: the caller's draws stay as they were."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CharRNN(config)


class CharRNN(nn.Module):
    """Next-character model: ids (B, T) and a state -> logits (B, T, V) and the new state."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        # float32 whatever torch's default dtype (a caller's torch.set_default_dtype)
        f32 = {"dtype": torch.float32}
        self.embed = nn.Embedding(c.vocab_size, c.embedding_dim, **f32)
        self.drop_in = Dropout(c.input_dropout)
        kernel_options = {"nonlinearity": "tanh"} if c.cell == "rnn" else {}
        self.rnn = _KERNELS[c.cell](
            c.embedding_dim,
            c.hidden_size,
            num_layers=c.num_layers,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
            batch_first=True,
            **kernel_options,
            **f32,
        )
        # Between layers the kernel's own dropout draws PyTorch's slow CPU mask, so on a CPU a
        # training read runs the layers one call each with this one between (`_read_by_layer`).
        self.drop_between = Dropout(c.dropout if c.num_layers > 1 else 0.0)
        self.drop = Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, c.vocab_size, **f32)
        if c.cell == "lstm":
            self._init_forget_bias(c.forget_bias)

    def _init_forget_bias(self, value: float) -> None:
        # PyTorch orders the LSTM's gates (i, f, g, o) in each bias; b_ih + b_hh is the bias.
        h = self.config.hidden_size
        with torch.no_grad():
            for layer in range(self.config.num_layers):
                self.layer_weights(layer)[2][h : 2 * h].fill_(value)
                self.layer_weights(layer)[3][h : 2 * h].zero_()

    def start_from_frequencies(self, counts: Sequence[int]) -> None:
        """Set the output layer's bias to the log of each character's add-one frequency in the
        training text (`counts`, per vocabulary id): untrained, the model predicts each character
        as often as the text has it, so its first steps go to context, not to learning that."""
        freq = torch.tensor(counts, dtype=torch.float64) + 1.0  # (V,)
        with torch.no_grad():
            self.head.bias.copy_((freq / freq.sum()).log())

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def init_state(self, batch_size: int) -> State:
        """The all-zero state: before the first character of `batch_size` streams."""
        c = self.config
        shape = (c.num_layers, batch_size, c.hidden_size)
        weights = self.head.weight
        return tuple(
            torch.zeros(shape, dtype=weights.dtype, device=weights.device) for _ in STATES[c.cell]
        )

    def forward(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """idx (B, T) int64, state or None (zero) -> logits (B, T, V), the state after idx."""
        out, state = self.read(idx, state)  # (B, T, H)
        return self.logits(out), state  # (B, T, V)

    def read(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """The recurrent part alone: idx (B, T), state -> the top layer's h (B, T, H), the state
        after idx. For readers that need the logits at some positions only (`logits`)."""
        x = self.drop_in(self.embed(idx))  # (B, T, E)
        if self.training and self.drop_between.p > 0 and x.device.type == "cpu":
            return self._read_by_layer(x, state)
        if state is not None:
            state = state if self.config.cell == "lstm" else state[0]  # the kernel's own form
        out, state = self.rnn(x, state)  # (B, T, H)
        return out, state if self.config.cell == "lstm" else (state,)

    def _read_by_layer(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """What self.rnn computes in training, one layer a call with drop_between between them:
        x (B, T, E), state -> the top layer's h (B, T, H), the state after x."""
        c = self.config
        state = self.init_state(x.shape[0]) if state is None else state
        kernel, after = _LAYER_KERNELS[c.cell], []  # after: each layer's new state
        for layer in range(c.num_layers):
            if layer > 0:
                x = self.drop_between(x)  # (B, T, H)
            hx = tuple(s[layer : layer + 1] for s in state)  # (1, B, H) each
            hx = hx if c.cell == "lstm" else hx[0]  # the kernel's own form
            # (input, hx, weights, has_biases, num_layers, dropout, train, bidirectional,
            # batch_first), as nn.LSTM, nn.GRU and nn.RNN call it
            x, *new = kernel(x, hx, self.layer_weights(layer), True, 1, 0.0, True, False, True)
            after.append(new)
        return x, tuple(torch.cat(parts) for parts in zip(*after, strict=True))

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        """The output layer: the top layer's h (..., H) -> logits (..., V). Its cost is the one
        that grows with the vocabulary."""
        return self.head(self.drop(out))

    def nats(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of each target under the logits of `out`: out (..., H), targets (...) ->
        nats (...). The logits are made LOGITS_BUDGET floats at a time, so what a reader of any
        length holds stays bounded, whatever the vocabulary."""
        out, flat = out.reshape(-1, out.shape[-1]), targets.reshape(-1)  # (N, H), (N,)
        rows = max(1, LOGITS_BUDGET // self.config.vocab_size)
        nats = torch.empty(flat.shape, dtype=torch.float32, device=out.device)  # (N,)
        for i in range(0, len(flat), rows):
            piece = slice(i, i + rows)
            nats[piece] = F.cross_entropy(self.logits(out[piece]), flat[piece], reduction="none")
        return nats.view(targets.shape)

    def layer_weights(self, layer: int) -> tuple[torch.Tensor, ...]:
        """Layer `layer`'s (W_ih (G*H, I), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)), G gates."""
        return tuple(
            getattr(self.rnn, f"{name}_l{layer}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )

    def stepper(self, batch_size: int = 1, fused: bool = True) -> Stepper:
        """The one-character-at-a-time path for `batch_size` streams (see Stepper); `fused`
        False: the readable step, which inspection's probes read."""
        return Stepper(self, batch_size, fused)

    def num_params(self, embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embedding else n - self.embed.weight.numel()


# A new character's output starts this many nats below its lookalike's logit (or the mean logit):
# about 1e-7 of its probability, so the old characters' stay as they were to float32 precision;
# its copied output row then learns it fast (docs/commands.md, --init-from).
NEW_CHAR_GAP = 16.0


def grown_weights(model: CharRNN, like: Sequence[int | None]) -> dict[str, torch.Tensor]:
    """The state_dict of `model` with len(like) characters appended to its vocabulary: new
    character j is read as old character like[j] is (its lookalike: é as e), or as the mean of
    them all where like[j] is None, and predicted NEW_CHAR_GAP nats below it, so the predictions
    over the old characters stay as they were (for a CharRNN of vocab_size V + len(like))."""
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def appended(rows: torch.Tensor, shift: float = 0.0) -> torch.Tensor:  # (V, ...) -> (V+n, ...)
        mean = rows.mean(0)
        new = [rows[i] if i is not None else mean for i in like]
        return torch.cat([rows, torch.stack(new) - shift]) if new else rows

    weights["embed.weight"] = appended(weights["embed.weight"])  # (V+n, E)
    weights["head.weight"] = appended(weights["head.weight"])  # (V+n, H)
    weights["head.bias"] = appended(weights["head.bias"], NEW_CHAR_GAP)  # (V+n,)
    return weights


# ---------------------------------------------------------------------------------------------
# One step of each cell, gate by gate. `x_part` is W_ih x + b_ih and `h_part` is W_hh h + b_hh,
# (B, G*H) each, in PyTorch's gate order; the step returns the layer's new state, h first. The
# LSTM and the RNN read only their sum, so a caller that has it already passes it as x_part with
# h_part None (Stepper: one product over [x, h]).


def lstm_step(x_part, h_part, state: tuple, probe: Probe = None) -> tuple:
    """LSTM: (h, c) (B, H) each -> new (h, c). Gates in PyTorch's order: input, forget, g, out."""
    _, c = state
    gates = x_part if h_part is None else x_part + h_part  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)
    forget = torch.sigmoid(f)  # how much of the belt to keep (1 = remember everything)
    input = torch.sigmoid(i)  # how much of the candidate to write onto it
    candidate = torch.tanh(g)  # what could be written
    output = torch.sigmoid(o)  # how much of the belt to show as h
    c = forget * c + input * candidate  # the conveyor belt: scaled and added to, never rewritten
    h = output * torch.tanh(c)  # short-term memory: a gated view of the long-term cell
    if probe is not None:
        probe.update(forget=forget, input=input, candidate=candidate, output=output)
        probe.update(cell=c, hidden=h)
    return h, c


def gru_step(x_part, h_part, state: tuple, probe: Probe = None) -> tuple:
    """GRU: (h,) (B, H) -> new (h,). Gates in PyTorch's order: reset, update, candidate."""
    (h,) = state
    x_r, x_z, x_n = x_part.chunk(3, dim=1)
    h_r, h_z, h_n = h_part.chunk(3, dim=1)
    reset = torch.sigmoid(x_r + h_r)  # how much of the old h the candidate may read
    update = torch.sigmoid(x_z + h_z)  # how much of the old h to keep (1 = remember everything)
    candidate = torch.tanh(x_n + reset * h_n)  # the new content on offer
    h = (1 - update) * candidate + update * h  # a gated mix: keeping h is a gate held near 1
    if probe is not None:
        probe.update(reset=reset, update=update, candidate=candidate, hidden=h)
    return (h,)


def rnn_step(x_part, h_part, state: tuple, probe: Probe = None) -> tuple:
    """Vanilla RNN: (h,) (B, H) -> new (h,): the whole memory rewritten at every character."""
    h = torch.tanh(x_part if h_part is None else x_part + h_part)
    if probe is not None:
        probe.update(hidden=h)
    return (h,)


STEPS: dict[str, Callable] = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}


# PyTorch's own one-step kernels: the same gates as the steps above, each layer in one call
# (fewer operations from Python: the sampler's step is bound by their count, not by arithmetic).
FUSED_STEPS: dict[str, Callable] = {
    "lstm": torch.lstm_cell,
    "gru": torch.gru_cell,
    "rnn": torch.rnn_tanh_cell,
}


class Stepper:
    """Reads one character per stream through the cell's step, for sampling and inspection.

    The weights are laid out for the hot loop: layer 0's embedding, input weights and input bias
    fold into one (V, G*H) table, so reading a character is a row lookup. Readable (`fused`
    False, and what inspection's probes need): the step functions above; the LSTM and the RNN add
    x_part and h_part before any gate, so for them each layer's two products are one ([x, h]
    against [W_ih | W_hh], or the table row plus h W_hh) and the step gets the sum as x_part
    (h_part None); the GRU's reset gate reads h_part alone, so it gets the two apart. Fused (on
    the CPU): each layer is one call of PyTorch's cell kernel (FUSED_STEPS), layer 0 with the table
    row as a bias and an empty input (tests hold the two equal). The state lives here, per layer,
    between `start` and `state()`.
    """

    @torch.no_grad()
    def __init__(self, model: CharRNN, batch_size: int = 1, fused: bool = True):
        # Fused on the CPU only: on a GPU the kernel behind lstm_cell takes 1-D biases alone.
        self.model, self.fused = model, fused and model.device.type == "cpu"
        self.step = (FUSED_STEPS if self.fused else STEPS)[model.config.cell]
        self.summed = model.config.cell in ("lstm", "rnn")
        # The layouts measured fastest (docs/sampling-speed.md): the gates' matrices as a contiguous
        # W^T, the head as W for one row and W^T for a batch. The product is the same, to rounding.
        layout = lambda w: w.T.contiguous().T  # noqa: E731
        head_layout = layout if batch_size > 1 else (lambda w: w.contiguous())
        self.layers = []  # per layer: (W_ih or None, W_hh, b_ih, b_hh), laid out as they are used
        for layer in range(model.config.num_layers):
            # detached: with no weight needing a gradient, a step needs no no_grad (1.5 µs)
            w_ih, w_hh, b_ih, b_hh = (w.detach() for w in model.layer_weights(layer))
            if layer == 0:  # the embedding, W_ih and b_ih (with b_hh where summed) as one table
                bias = b_ih + b_hh if self.summed else b_ih
                self.table = torch.addmm(bias, model.embed.weight, w_ih.T)  # (V, G*H)
                self.layers.append((None, layout(w_hh), None, None if self.summed else b_hh))
            elif self.summed and not self.fused:
                self.layers.append((layout(torch.cat([w_ih, w_hh], 1)), None, b_ih + b_hh, None))
            else:
                self.layers.append((layout(w_ih), layout(w_hh), b_ih, b_hh))
        # layer 0's input to a fused kernel: nothing, through no weights (its row is a bias)
        self.no_weights = self.table.new_empty(self.table.shape[1], 0)  # (G*H, 0)
        self.head_w = head_layout(model.head.weight.detach())
        self.head_b = model.head.bias.detach()
        self.head_wt = self.head_w.T  # (H, V), a view made once, not per character
        self.per_layer: list = []
        self.start(model.init_state(batch_size))

    def start(self, state: State) -> None:
        """Continue from `state` (num_layers, B, H each), e.g. a primed one."""
        self.per_layer = [tuple(s[layer] for s in state) for layer in range(len(self.layers))]
        if self.fused:  # the kernels take the LSTM's (h, c) as a tuple, the others' h alone
            self.per_layer = [p if self.summed and len(p) == 2 else p[0] for p in self.per_layer]
        self.nothing = state[0].new_empty(state[0].shape[1], 0)  # (B, 0): layer 0's fused input

    def state(self) -> State:
        """The state now, in the model's form."""
        parts = self.per_layer
        if self.fused:
            parts = [p if isinstance(p, tuple) else (p,) for p in parts]
        return tuple(torch.stack(p) for p in zip(*parts, strict=True))

    def __call__(self, idx: torch.Tensor, probes: Sequence[Probe] | None = None) -> torch.Tensor:
        """idx (B,) -> logits (B, V) for the next character; probes[layer] gets what the layer's
        step computed (its gates, its new hidden and cell state), by name (a readable Stepper's)."""
        if self.fused:
            assert probes is None, "probes need the readable step: stepper(fused=False)"
            return self._fused(idx)
        return self._readable(idx, probes)

    def _readable(self, idx: torch.Tensor, probes: Sequence[Probe] | None) -> torch.Tensor:
        """The step as the step functions above write it, layer after layer."""
        x = None
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            h = self.per_layer[layer][0]  # (B, H)
            if layer == 0 and self.summed:  # (B, G*H) each
                x_part, h_part = torch.addmm(self.table.index_select(0, idx), h, w_hh.T), None
            elif self.summed:
                x_part, h_part = torch.addmm(b_ih, torch.cat([x, h], 1), w_ih.T), None
            else:
                x_part = self.table[idx] if layer == 0 else torch.addmm(b_ih, x, w_ih.T)
                h_part = torch.addmm(b_hh, h, w_hh.T)
            probe = probes[layer] if probes is not None else None
            self.per_layer[layer] = self.step(x_part, h_part, self.per_layer[layer], probe)
            x = self.per_layer[layer][0]  # (B, H): h goes up to the next layer
        return torch.addmm(self.head_b, x, self.head_w.T)  # (B, V)

    def _fused(self, idx: torch.Tensor) -> torch.Tensor:
        """The same step, one kernel call per layer: layer 0 reads the table row as the bias of
        the product it belongs to (summed with h W_hh as the readable step sums it; for the GRU,
        as W_ih x + b_ih) and its empty input adds nothing."""
        row = self.table.index_select(0, idx)  # (B, G*H)
        (_, w_hh, _, b_hh), step, layers = self.layers[0], self.step, self.per_layer
        if self.summed:
            layers[0] = step(self.nothing, layers[0], self.no_weights, w_hh, None, row)
        else:
            layers[0] = step(self.nothing, layers[0], self.no_weights, w_hh, row, b_hh)
        x = layers[0][0] if isinstance(layers[0], tuple) else layers[0]
        for layer in range(1, len(layers)):
            layers[layer] = step(x, layers[layer], *self.layers[layer])
            x = layers[layer][0] if isinstance(layers[layer], tuple) else layers[layer]
        return torch.addmm(self.head_b, x, self.head_wt)  # (B, V)


# ---------------------------------------------------------------------------------------------
# The state, handled without being unpacked: every tensor has the streams along dim 1.


def detach_state(state: State) -> State:
    """Keep the values, drop the graph: truncated backprop through time at a batch boundary. The
    state carried is float32, as the model is, also from a step autocast to bfloat16."""
    return tuple(s.detach().float() for s in state)


def restart_streams(state: State, restart: torch.Tensor) -> State:
    """Zero the state of the streams where `restart` (B,) bool is true: a cold start mid-text."""
    keep = (~restart).to(state[0].dtype)[None, :, None]  # (1, B, 1)
    return tuple(s * keep for s in state)


def select_streams(state: State, rows: slice | torch.Tensor) -> State:
    """The state of some streams only: rows of dim 1, made contiguous for the kernels."""
    return tuple(s[:, rows].contiguous() for s in state)


def expand_state(state: State, n: int) -> State:
    """A one-stream state (layers, 1, H) copied to n streams (layers, n, H)."""
    return tuple(s.expand(-1, n, -1).contiguous() for s in state)


def map_state(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    """`fn` applied to every tensor of the state (moving it, gathering its streams...)."""
    return tuple(fn(s) for s in state)


def state_to_list(state: State) -> list[torch.Tensor]:
    """The state as plain tensors for a checkpoint."""
    return [s.detach().cpu() for s in state]


def state_from_list(model: CharRNN, saved: Sequence[torch.Tensor], rows=slice(None)) -> State:
    """A saved state's streams `rows`, checked against the model's own form; ValueError if not."""
    like = model.init_state(1)
    if not isinstance(saved, list | tuple) or len(saved) != len(like):
        raise ValueError(f"the carried state is not that of a {model.config.cell.upper()}")
    state = tuple(s[:, rows].to(model.device) for s in saved)
    for s, ref in zip(state, like, strict=True):
        if s.dim() != 3 or s.shape[0] != ref.shape[0] or s.shape[2] != ref.shape[2]:
            raise ValueError("the carried state does not fit the model")
    return state
