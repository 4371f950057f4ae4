"""One self-contained HTML page of a recording: the text coloured by any unit, in the browser.

Everything is inline (docs/commands.md, `--html`). Each value travels as one byte, base64-encoded:
hidden states and candidates from -1 to 1, gates from 0 to 1, and the cell state divided by the
unit's largest |c| over the text (`cell_scale`), so that a counting cell shows its count; in
LEVELS steps, an even number, so that 0 (and a gate's 0.5) travel exactly.
"""

from __future__ import annotations

import base64
import ctypes
import html
import re
from pathlib import Path

import torch

from charrnn import jsonl
from charrnn.model.config import GATE_ENDS, GATES
from charrnn.use.inspection import Recording
from charrnn.use.units import Found, Saturation

LEVELS = 254  # steps of a byte's value: 0 .. LEVELS, the middle one exact
PAGE_BYTES = 64 * 2**20  # the most recorded values a page may hold (one byte each)
# The page itself (markup, style and script), filled in by `fill`: %TITLE% and %DATA%.
TEMPLATE = (Path(__file__).resolve().parent / "page.html").read_text(encoding="utf-8")


def render(
    recording: Recording,
    checkpoint: str,
    found: list[Found] | None = None,
    saturation: list[Saturation] | None = None,
    view: tuple[int, int, str] | None = None,
) -> str:
    """The page, as one string of HTML; it opens on `view` (layer, unit, what to show), or on the
    best unit found, or on the first unit."""
    r = recording
    values, signed, cell_scale = {}, {}, None
    for field, v in r.values.items():  # (L, T, H)
        signed[field] = field not in GATES[r.cell]
        if field == "cell":
            cell_scale = v.abs().amax(1).clamp_min(1e-6)  # (L, H): each unit's largest |c|
            v = v / cell_scale[:, None, :]
        unit = (v + 1) / 2 if signed[field] else v
        q = (unit.clamp(0, 1) * LEVELS).round().to(torch.uint8).contiguous()
        values[field] = base64.b64encode(tensor_bytes(q)).decode("ascii")
    data = {
        "checkpoint": checkpoint,
        "cell": r.cell,
        "layers": r.num_layers,
        "hidden": r.hidden_size,
        "text": r.text,
        "given": r.given,
        "fields": list(r.values),
        "signed": signed,
        "cell_scale": _rounded(cell_scale, 4) if cell_scale is not None else None,
        "levels": LEVELS,
        "gate_ends": {g: GATE_ENDS[g] for g in GATES[r.cell]},  # what a gate's 0 and 1 do
        "values": values,
        "surprise": [round(s, 2) for s in r.surprise.tolist()],
        "top": [[[ch, round(p, 3)] for ch, p in r.top(t)] for t in range(len(r.text))],
        "found": [
            {
                "property": f.property.name,
                "description": f.property.description,
                # unrounded: the page rounds them once, as the terminal's table does (r -0.6953
                # kept to 3 places, -0.695, read -0.69 there)
                "chance": f.chance,
                "untrained": f.untrained,  # None where not measured
                "units": [[u.layer, u.index, u.field, corr] for u, corr in f.units],
                "unfound": f.unfound,
            }
            for f in found or []
        ],
        "view": list(view) if view else None,
        "gates": [
            {"gate": s.gate, "left": _rounded(s.left), "right": _rounded(s.right)}
            for s in saturation or []
        ],
    }
    # "<" escaped: no "</script>" or "<!--" in the data can end the script element early.
    blob = jsonl.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    title = html.escape(f"charrnn inspect: {checkpoint}", quote=False)
    return fill(TEMPLATE, TITLE=title, DATA=blob)


def fill(template: str, **values: str) -> str:
    """`template` with each %NAME% replaced by values[NAME], in one pass: a value is never read
    again, so one that holds %DATA% (a checkpoint's path, say) stays as it is."""
    return re.sub(r"%([A-Z_]+)%", lambda m: values.get(m.group(1), m.group(0)), template)


def tensor_bytes(q: torch.Tensor) -> bytes:
    """A contiguous CPU uint8 tensor's bytes, read from its memory (numpy is no dependency)."""
    return ctypes.string_at(q.data_ptr(), q.numel())


def _rounded(x: torch.Tensor, places: int = 3) -> list[list[float]]:
    return [[round(v, places) for v in row] for row in x.tolist()]
