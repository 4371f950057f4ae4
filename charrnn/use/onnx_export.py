"""A trained model's one step as an ONNX graph: run it anywhere onnxruntime runs, without torch.

The graph reads one character per stream and carries the state, as Stepper does:

  inputs   char (batch,) int64: the character's id in the vocabulary
           h (num_layers, batch, hidden_size) float32, and c alike for an LSTM: the state
  outputs  logits (batch, vocab_size) float32: the odds for the next character
           h_next (and c_next for an LSTM): the state after the character

Opset 17 (IR version 8, so onnxruntime 1.13 and newer read it), float32, the batch dynamic. Each
layer is the cell's readable step written out gate by gate (network.lstm_step, gru_step,
rnn_step), with the same names. The model's metadata (metadata_props) says how to use it: its
vocabulary and lead-in as JSON, its cell and sizes, charrnn's version and how to start.
"""

from __future__ import annotations

import json

import torch

import charrnn
from charrnn.errors import ExportError
from charrnn.model.trained import Model, require_model

OPSET = 17
IR_VERSION = 8  # the IR that opset 17 came with: older runtimes read it
EXTRA = "pip install onnx"  # the [onnx] extra's one package, installed beside charrnn
PROTOBUF_LIMIT = 2**31 - 1  # bytes: one serialized ModelProto can hold no more
STATE_NAMES = {"lstm": ("h", "c"), "gru": ("h",), "rnn": ("h",)}  # the model's state, in order
NEXT = "_next"  # an output state's name: the input's with this suffix
HOW_TO_START = (
    "Start every stream from the zero state (each state input all zeros, (num_layers, batch, "
    "hidden_size)); read the lead-in, then the prime, one character per step with the state "
    "carried; the logits of the last step are the odds for the first new character. Then feed "
    "each character drawn back in."
)


def onnx_bytes(model: Model) -> bytes:
    """The serialized ONNX ModelProto of `model`'s one step (see the module's docstring)."""
    require_model(model)  # before onnx is looked for: the first mistake is the one to say
    onnx, np = _onnx()
    net, c = model.net, model.config
    if 4 * net.num_params() > PROTOBUF_LIMIT - (1 << 20):
        raise ExportError(
            f"the model has {net.num_params():,} parameters: more than one ONNX file holds (2 GB)"
        )
    graph = _Graph(onnx, np)
    names = STATE_NAMES[c.cell]
    x = graph.op("Gather", graph.weight("embed.weight", net.embed.weight), "char", name="embed")
    new = []  # per layer, its new state tensors (batch, H), h first
    for layer in range(c.num_layers):
        state = [graph.layer_of(name, layer) for name in names]
        new.append(_layer(graph, c.cell, layer, net.layer_weights(layer), x, state))
        x = new[-1][0]  # h goes up to the next layer
    head = graph.weight("head.weight", net.head.weight), graph.weight("head.bias", net.head.bias)
    graph.op("Gemm", x, *head, name="logits", transB=1)  # dropout: none after training
    for i, name in enumerate(names):
        graph.stack([parts[i] for parts in new], name + NEXT)
    proto = _model_proto(onnx, graph, c, names)
    onnx.helper.set_model_props(proto, metadata(model))
    return proto.SerializeToString()


def _onnx():
    """The onnx package and numpy (which onnx needs); an ExportError naming the extra to install
    when either is missing."""
    try:
        import numpy
        import onnx
    except ImportError:
        raise ExportError(
            f"writing an ONNX model needs the onnx package, which is not installed; install it "
            f"with {EXTRA}"
        ) from None
    return onnx, numpy


class _Graph:
    """The nodes and weights of a graph as it is built; every tensor is named by what it is."""

    def __init__(self, onnx, np):
        self.onnx, self.np, self.nodes, self.initializers = onnx, np, [], []

    def weight(self, name: str, tensor: torch.Tensor) -> str:
        """A weight of the graph, float32."""
        array = self.np.require(tensor.detach().cpu().float().numpy(), requirements="C")
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, name: str, outputs: int = 1, **attrs):
        """Add one node; its output is named `name` (`name.0`, `name.1`... for several)."""
        out = [name] if outputs == 1 else [f"{name}.{i}" for i in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), out, name, **attrs))
        return out[0] if outputs == 1 else out

    def const(self, name: str, value, dtype: str = "int64") -> str:
        """A small constant (an index, an axis, a one), added once however often it is used."""
        if name not in {t.name for t in self.initializers}:
            array = self.np.array(value, dtype=dtype)  # a scalar stays a scalar
            self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def layer_of(self, state: str, layer: int) -> str:
        """Layer `layer`'s part of the state input `state`: (batch, H)."""
        index = self.const(f"layer{layer}/index", layer)
        return self.op("Gather", state, index, name=f"layer{layer}/{state}", axis=0)

    def stack(self, parts: list[str], name: str) -> None:
        """The per-layer tensors (batch, H) as one (num_layers, batch, H) output `name`."""
        axes = self.const("stack_axis", [0])
        rows = [self.op("Unsqueeze", p, axes, name=f"{p}/as_row") for p in parts]
        self.op("Concat", *rows, name=name, axis=0)


def _layer(graph: _Graph, cell: str, layer: int, weights, x: str, state: list[str]) -> list[str]:
    """One layer's step on input x (batch, I) and its state -> its new state, h first."""
    w_ih, w_hh, b_ih, b_hh = (
        graph.weight(f"layer{layer}/{n}", w)
        for n, w in zip(("W_ih", "W_hh", "b_ih", "b_hh"), weights, strict=True)
    )
    at = f"layer{layer}"
    x_part = graph.op("Gemm", x, w_ih, b_ih, name=f"{at}/x_part", transB=1)  # (batch, G*H)
    h_part = graph.op("Gemm", state[0], w_hh, b_hh, name=f"{at}/h_part", transB=1)
    if cell == "rnn":
        summed = graph.op("Add", x_part, h_part, name=f"{at}/sum")
        return [graph.op("Tanh", summed, name=f"{at}/hidden")]
    if cell == "lstm":
        gates = graph.op("Add", x_part, h_part, name=f"{at}/gates")
        return _lstm(graph, at, gates, state[1])
    return _gru(graph, at, x_part, h_part, state[0])


def _lstm(graph: _Graph, at: str, gates: str, c: str) -> list[str]:
    """network.lstm_step: gates (batch, 4H) in PyTorch's order i, f, g, o -> [h, c]."""
    i, f, g, o = graph.op("Split", gates, name=f"{at}/gate", outputs=4, axis=1)
    forget = graph.op("Sigmoid", f, name=f"{at}/forget")
    input = graph.op("Sigmoid", i, name=f"{at}/input")
    candidate = graph.op("Tanh", g, name=f"{at}/candidate")
    output = graph.op("Sigmoid", o, name=f"{at}/output")
    kept = graph.op("Mul", forget, c, name=f"{at}/kept")
    written = graph.op("Mul", input, candidate, name=f"{at}/written")
    cell = graph.op("Add", kept, written, name=f"{at}/cell")  # the belt: scaled and added to
    shown = graph.op("Tanh", cell, name=f"{at}/tanh_cell")
    return [graph.op("Mul", output, shown, name=f"{at}/hidden"), cell]


def _gru(graph: _Graph, at: str, x_part: str, h_part: str, h: str) -> list[str]:
    """network.gru_step: x_part, h_part (batch, 3H) in PyTorch's order r, z, n -> [h]."""
    x_r, x_z, x_n = graph.op("Split", x_part, name=f"{at}/x_gate", outputs=3, axis=1)
    h_r, h_z, h_n = graph.op("Split", h_part, name=f"{at}/h_gate", outputs=3, axis=1)
    reset = graph.op("Sigmoid", graph.op("Add", x_r, h_r, name=f"{at}/r"), name=f"{at}/reset")
    update = graph.op("Sigmoid", graph.op("Add", x_z, h_z, name=f"{at}/z"), name=f"{at}/update")
    read = graph.op("Mul", reset, h_n, name=f"{at}/reset_h")  # the reset gate reads h_part alone
    candidate = graph.op("Tanh", graph.op("Add", x_n, read, name=f"{at}/n"), name=f"{at}/candidate")
    one = graph.const("one", 1.0, "float32")
    keep_new = graph.op("Sub", one, update, name=f"{at}/one_minus_update")
    new = graph.op("Mul", keep_new, candidate, name=f"{at}/new")
    kept = graph.op("Mul", update, h, name=f"{at}/kept")
    return [graph.op("Add", new, kept, name=f"{at}/hidden")]  # a gated mix of old and new


def _model_proto(onnx, graph: _Graph, config, names: tuple[str, ...]):
    """The graph's inputs and outputs, typed, around its nodes: a checked ModelProto."""
    helper, f32 = onnx.helper, onnx.TensorProto.FLOAT
    state = [config.num_layers, "batch", config.hidden_size]
    inputs = [helper.make_tensor_value_info("char", onnx.TensorProto.INT64, ["batch"])]
    inputs += [helper.make_tensor_value_info(n, f32, state) for n in names]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", config.vocab_size])]
    outputs += [helper.make_tensor_value_info(n + NEXT, f32, state) for n in names]
    body = helper.make_graph(
        graph.nodes, f"charrnn_{config.cell}_step", inputs, outputs, graph.initializers
    )
    proto = helper.make_model(
        body,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="charrnn",
        producer_version=charrnn.__version__,
        doc_string=f"One step of a charrnn {config.cell.upper()}: one character in, the odds for "
        "the next out, the state carried. " + HOW_TO_START,
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def metadata(model: Model) -> dict[str, str]:
    """What a reader of the graph needs besides it, as the strings metadata_props holds."""
    c = model.config
    return {
        "vocab": json.dumps(model.vocab.chars),  # the characters in id order (ASCII JSON)
        "lead_in": json.dumps(model.lead_in),  # what a cold start reads first, as a JSON string
        "cell": c.cell,
        "num_layers": str(c.num_layers),
        "hidden_size": str(c.hidden_size),
        "embedding_dim": str(c.embedding_dim),
        "vocab_size": str(c.vocab_size),
        "state": json.dumps(list(STATE_NAMES[c.cell])),  # the state inputs; outputs add _next
        "charrnn_version": charrnn.__version__,
        "how_to_start": HOW_TO_START,
    }
