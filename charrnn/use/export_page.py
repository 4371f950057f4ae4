"""A trained model as one self-contained HTML page that writes text in the browser, offline.

The page (export_page.html; its model part, export_page.js) runs the model's cells in
JavaScript, gate by gate as model/network.py writes them, and samples as use/sampler.py does
(temperature, top-k, top-p, a seeded generator of its own). Every weight travels inline,
base64-encoded, little-endian, as float16 (half the size; docs/export.md measures what it costs)
or float32 (the model's own numbers). The data is one JSON document in ASCII, with "<" escaped:
no character of the vocabulary or the prime can end the script element, break a line in it or
read as markup.
"""

from __future__ import annotations

import base64
import html
import sys
from pathlib import Path

import torch

from charrnn import jsonl
from charrnn.defaults import UNKNOWN
from charrnn.errors import ConfigError
from charrnn.fsutil import size_text
from charrnn.model.config import FIELDS, GATE_ENDS, GATES, STATES
from charrnn.model.trained import Model, require_model
from charrnn.text.vocab import apply_unknown
from charrnn.use.page import PAGE_BYTES, fill, tensor_bytes

PRECISIONS = {"float16": torch.float16, "float32": torch.float32}
# The largest page written: the inspect page's limit. A browser holds the page, its decoded
# weights and the float32 copy it computes with at once, and decodes them on its one main thread
# before the page answers; above this it opens slowly or not at all on a phone.
PAGE_LIMIT = PAGE_BYTES
HERE = Path(__file__).resolve().parent
# The page (markup, style and the script that draws), filled in by `fill`: %TITLE%, %DATA% and
# %MODEL%, the script that runs the model and samples (export_page.js).
TEMPLATE = (HERE / "export_page.html").read_text(encoding="utf-8")
MODEL_JS = (HERE / "export_page.js").read_text(encoding="utf-8")


def _require_precision(precision) -> None:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ConfigError(f"the page's weights are float16 or float32, not {precision!r}")


def page_size(model: Model, precision: str = "float16") -> int:
    """About how many bytes the page of `model` takes: its weights in base64, and the page."""
    require_model(model)
    _require_precision(precision)
    weights = sum(t.numel() for t in _tensors(model).values())
    page = len(TEMPLATE) + len(MODEL_JS) + 4096  # and the title, the vocabulary, the prime
    return (weights * PRECISIONS[precision].itemsize + 2) // 3 * 4 + page


def export_page(
    model: Model, name: str, precision: str = "float16", prime: str = "", unknown: str = UNKNOWN
) -> str:
    """The page of `model` as one string of HTML, titled `name`, its prime box holding `prime`
    (characters the model never saw refused, skipped or replaced: `unknown`, as sample does).
    ConfigError if the page would pass PAGE_LIMIT or `precision` is not one of PRECISIONS."""
    require_model(model)
    _require_precision(precision)
    if not isinstance(name, str):
        raise ConfigError(f"the page's name must be a str, not {type(name).__name__}")
    if not isinstance(prime, str):
        raise ConfigError(f"the prime must be text (a str), not {type(prime).__name__}")
    prime = apply_unknown(prime, model.vocab, unknown)  # what the page could not read
    size = page_size(model, precision)
    if size > PAGE_LIMIT:
        raise ConfigError(
            f"the model is too large for a page: {size_text(size)} of {precision} weights where "
            f"a page holds at most {size_text(PAGE_LIMIT)} (what a browser opens at once); "
            + ("try --precision float16, or " if precision == "float32" else "")
            + "export it as ONNX (an OUT ending in .onnx)"
        )
    c = model.config
    data = {
        "name": name,
        "cell": c.cell,
        "layers": c.num_layers,
        "hidden": c.hidden_size,
        "embedding": c.embedding_dim,
        "vocab": list(model.vocab.chars),
        "lead_in": model.lead_in,
        "prime": prime,
        "fields": list(FIELDS[c.cell]),
        "states": list(STATES[c.cell]),
        "gate_ends": {g: GATE_ENDS[g] for g in GATES[c.cell]},  # what a gate's 0 and 1 do
        "precision": precision,
        "weights": {k: _base64(t, precision) for k, t in _tensors(model).items()},
    }
    # ASCII JSON: U+2028, U+2029 and a BOM become \u escapes; "<" too, so no "</script>" or
    # "<!--" in the vocabulary or the prime can end the script element early.
    blob = jsonl.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    title = html.escape(f"charrnn: {name}", quote=False)
    return fill(TEMPLATE, TITLE=title, DATA=blob, MODEL=MODEL_JS)


def _tensors(model: Model) -> dict[str, torch.Tensor]:
    """The weights the page reads, by the names it reads them under; each row-major as PyTorch
    holds it: embed (V, E), per layer w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,), head_w
    (V, H), head_b (V,)."""
    net = model.net
    out = {"embed": net.embed.weight}
    for layer in range(model.config.num_layers):
        for key, t in zip(("w_ih", "w_hh", "b_ih", "b_hh"), net.layer_weights(layer), strict=True):
            out[f"{key}{layer}"] = t
    out["head_w"], out["head_b"] = net.head.weight, net.head.bias
    return out


def _base64(t: torch.Tensor, precision: str) -> str:
    """A tensor's values in `precision`, little-endian, as base64 text."""
    q = t.detach().to("cpu", PRECISIONS[precision]).contiguous()
    if sys.byteorder != "little":  # the page reads little-endian on every machine
        q = q.view(torch.uint8).view(-1, q.element_size()).flip(1)
    raw = q.contiguous().view(torch.uint8)
    return base64.b64encode(tensor_bytes(raw)).decode("ascii")
