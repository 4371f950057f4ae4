"""One self-contained HTML page of a recording: the text coloured by any unit, in the browser.

Everything is inline (CSS, script and data; a Content-Security-Policy forbids any other source),
so the file opens from disk with no network. The values travel as one byte each, base64-encoded:
hidden states and candidates from -1 to 1, gates from 0 to 1, and the cell state c divided by the
unit's largest |c| over the text (`cell_scale`), so that a cell that counts (down by one at each
character of a line, to -30) shows its count rather than a tanh(c) saturated after two steps.
The page's address can pick what it shows: `page.html#1:17:cell` is layer 1, unit 17, its cell.
"""

from __future__ import annotations

import base64
import ctypes
import re

import torch

from charrnn import jsonl
from charrnn.model.config import FIELDS, GATES
from charrnn.use.inspection import Recording
from charrnn.use.units import Found, Saturation

PAGE_BYTES = 64 * 2**20  # the most recorded values a page may hold (one byte each)


def page_bytes(num_layers: int, hidden_size: int, cell: str, chars: int) -> int:
    """How many bytes of values a page of `chars` characters holds."""
    return num_layers * hidden_size * len(FIELDS[cell]) * chars


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
            cell_scale = cell_scales(v)  # (L, H)
            v = v / cell_scale[:, None, :]
        unit = (v + 1) / 2 if signed[field] else v
        q = (unit.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
        values[field] = base64.b64encode(_bytes(q)).decode("ascii")
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
        "values": values,
        "surprise": [round(s, 2) for s in r.surprise.tolist()],
        "top": [[[ch, round(p, 3)] for ch, p in r.top(t)] for t in range(len(r.text))],
        "found": [
            {
                "property": f.property.name,
                "description": f.property.description,
                "chance": round(f.chance, 3),
                "units": [[u.layer, u.index, u.field, round(corr, 3)] for u, corr in f.units],
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
    title = _escape(f"charrnn inspect: {checkpoint}")
    return fill(TEMPLATE, TITLE=title, DATA=blob)


def fill(template: str, **values: str) -> str:
    """`template` with each %NAME% replaced by values[NAME], in one pass: a value is never read
    again, so one that holds %DATA% (a checkpoint's path, say) stays as it is."""
    return re.sub(r"%([A-Z_]+)%", lambda m: values.get(m.group(1), m.group(0)), template)


def _bytes(q: torch.Tensor) -> bytes:
    """A contiguous CPU uint8 tensor's bytes, read from its memory (numpy is no dependency)."""
    return ctypes.string_at(q.data_ptr(), q.numel())


def cell_scales(cell: torch.Tensor) -> torch.Tensor:
    """Each unit's largest |c| over the text, (L, T, H) -> (L, H): what its colours span."""
    return cell.abs().amax(1).clamp_min(1e-6)


def _rounded(x: torch.Tensor, places: int = 3) -> list[list[float]]:
    return [[round(v, places) for v in row] for row in x.tolist()]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
  header { padding: 10px 16px; background: #fff; border-bottom: 1px solid #ddd;
           position: sticky; top: 0; z-index: 2; }
  header h1 { font-size: 15px; margin: 0 0 6px 0; font-weight: 600; }
  .controls label { margin-right: 14px; }
  .controls input[type=number] { width: 5em; }
  .controls input[type=range] { width: 220px; vertical-align: middle; }
  #legend { margin-top: 6px; font-size: 12px; color: #555; }
  #legend .bar { display: inline-block; width: 180px; height: 10px; vertical-align: middle;
                 border: 1px solid #ccc; margin: 0 6px; }
  main { display: flex; gap: 16px; padding: 12px 16px; align-items: flex-start; }
  #text { flex: 1 1 auto; font: 13px/1.55 ui-monospace, Menlo, Consolas, monospace;
          white-space: pre-wrap; word-break: break-all; background: #fff; padding: 10px;
          border: 1px solid #ddd; min-width: 0; }
  #text span { cursor: pointer; }
  #text span.nl, #text span.esc { color: #888; }
  #text span.given { text-decoration: underline dotted #999; }
  #text span.pinned { outline: 2px solid #000; }
  aside { flex: 0 0 330px; position: sticky; top: 110px; max-height: calc(100vh - 130px);
          overflow: auto; }
  section { background: #fff; border: 1px solid #ddd; padding: 8px 10px; margin-bottom: 12px; }
  section h2 { font-size: 13px; margin: 0 0 6px 0; }
  #info { font-size: 12px; min-height: 7em; }
  #info table td { padding: 0 6px 0 0; }
  #found table { border-collapse: collapse; font-size: 12px; width: 100%; }
  #found td { padding: 2px 4px; border-top: 1px solid #eee; vertical-align: top; }
  #found button { font: 11px ui-monospace, monospace; margin: 1px; cursor: pointer; }
  .dim { color: #888; }
  #gates svg { display: block; margin: 4px auto 10px auto; }
  #gates circle { cursor: pointer; }
</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <div class="controls">
    <label>layer <select id="layer"></select></label>
    <label>unit <input id="unit" type="number" min="0" value="0">
      <input id="unit-range" type="range" min="0" value="0"></label>
    <label>show <select id="show"></select></label>
  </div>
  <div id="legend"></div>
</header>
<main>
  <div id="text"></div>
  <aside>
    <section><h2>Character</h2><div id="info" class="dim">Point at a character to see its value
      and what the model expects next; click to pin it.</div></section>
    <section id="found-section"><h2>Units that track the text</h2><div id="found"></div></section>
    <section id="gates-section"><h2>Gate saturation</h2><div id="gates"></div></section>
  </aside>
</main>
<script type="application/json" id="data">%DATA%</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
// Characters, not UTF-16 code units: an emoji is one character of the record, two units in JS.
const CHARS = Array.from(D.text);
const T = CHARS.length, H = D.hidden, L = D.layers;
const bytes = {};
for (const f of D.fields) {
  const raw = atob(D.values[f]);
  const a = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) a[i] = raw.charCodeAt(i);
  bytes[f] = a;
}
const LABEL = { cell: "cell state c", hidden: "hidden state h", forget: "forget gate",
  input: "input gate", output: "output gate", candidate: "candidate", reset: "reset gate",
  update: "update gate", surprise: "surprise (bits)" };
const $ = (id) => document.getElementById(id);
const layerSel = $("layer"), unitBox = $("unit"), unitRange = $("unit-range"), showSel = $("show");

function scaled(field, layer, t, unit) {  // -1 to 1 (0 to 1 for a gate), as stored
  const q = bytes[field][(layer * T + t) * H + unit] / 255;
  return D.signed[field] ? 2 * q - 1 : q;
}
function scale(field, layer, unit) { return field === "cell" ? D.cell_scale[layer][unit] : 1; }
function value(field, layer, t, unit) {  // the recorded value
  return scaled(field, layer, t, unit) * scale(field, layer, unit);
}
function mix(a, b, w) { return a.map((x, i) => Math.round(x + (b[i] - x) * w)); }
const WHITE = [255, 255, 255], RED = [214, 47, 39], BLUE = [33, 102, 172];
function diverging(x) {  // x in [-1, 1]: blue, white, red
  x = Math.max(-1, Math.min(1, x));
  const c = x >= 0 ? mix(WHITE, RED, x) : mix(WHITE, BLUE, -x);
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
function colour(show, layer, t, unit) {
  if (show === "surprise") return diverging(Math.min(D.surprise[t], 8) / 8);
  const v = scaled(show, layer, t, unit);
  return diverging(D.signed[show] ? v : 2 * v - 1);
}

// A character that does not print (a control, a bidirectional override, a zero-width joiner) is
// shown as its code, so it can be pointed at and cannot reorder or hide the text around it.
const INVISIBLE = /^[\\p{C}\\p{Zl}\\p{Zp}]$/u;
function shown(ch) {
  if (ch === "\\t" || !INVISIBLE.test(ch)) return ch;
  return "\\\\u" + ch.codePointAt(0).toString(16).padStart(4, "0");
}

// The text, one span per character; a line break shows as a small arrow that can take a colour.
const spans = [];
const box = $("text");
for (let t = 0; t < T; t++) {
  const s = document.createElement("span");
  const ch = CHARS[t];
  s.textContent = ch === "\\n" ? "\\u21b5\\n" : shown(ch);
  if (ch === "\\n") s.className = "nl";
  else if (s.textContent !== ch) s.classList.add("esc");
  if (t < D.given && D.given < T) s.classList.add("given");
  s.dataset.t = t;
  spans.push(s);
  box.appendChild(s);
}

$("title").textContent = `${D.checkpoint}: ${D.cell.toUpperCase()} ${L}x${H}, ` +
  `${T.toLocaleString()} characters` + (D.given === 0 ? " written by the model" :
  D.given < T ? ` (${D.given} given, underlined; the rest written by the model)` : "");
for (let l = 0; l < L; l++) layerSel.add(new Option(String(l), String(l)));
for (const f of D.fields.concat(["surprise"])) showSel.add(new Option(LABEL[f] || f, f));
unitBox.max = unitRange.max = String(H - 1);

function current() {
  const unit = Math.max(0, Math.min(H - 1, parseInt(unitBox.value, 10) || 0));
  return { layer: parseInt(layerSel.value, 10) || 0, unit, show: showSel.value };
}
function recolour() {
  const c = current();
  unitBox.value = unitRange.value = String(c.unit);
  for (let t = 0; t < T; t++) spans[t].style.backgroundColor = colour(c.show, c.layer, t, c.unit);
  const what = c.show === "surprise" ? "surprise of each character" :
    `${LABEL[c.show]}, layer ${c.layer}, unit ${c.unit}`;
  const [lo, mid, hi] = c.show === "surprise" ? ["0", "0", "8 bits or more"] :
    c.show === "cell" ? [`-${scale("cell", c.layer, c.unit).toPrecision(3)}`, "0",
      `+${scale("cell", c.layer, c.unit).toPrecision(3)} (this unit's largest |c| here)`] :
    D.signed[c.show] ? ["-1", "0", "+1"] : ["0", "0.5", "1"];
  $("legend").innerHTML = "";
  $("legend").append(`${what}:  ${lo}`);
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.background = c.show === "surprise" ?
    `linear-gradient(to right, ${diverging(0)}, ${diverging(1)})` :
    `linear-gradient(to right, ${diverging(-1)}, ${diverging(0)}, ${diverging(1)})`;
  $("legend").append(bar, `${hi}  (white: ${mid})`);
  const hash = `#${c.layer}:${c.unit}:${c.show}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
  if (pinned !== null) describe(pinned);
}
function choose(layer, unit, show) {
  layerSel.value = String(layer);
  unitBox.value = String(unit);
  if (show) showSel.value = show;
  recolour();
}

// What the model held at a character and what it expected next.
let pinned = null;
function fmt(ch) {
  return ch === "\\n" ? "\\u21b5" : ch === " " ? "\\u2423" : ch === "\\t" ? "\\u21e5" : shown(ch);
}
function describe(t) {
  const c = current();
  const v = c.show === "surprise" ? "" :
    `<tr><td>${LABEL[c.show]}</td><td>\\u2248 ${value(c.show, c.layer, t, c.unit).toPrecision(2)}` +
    `</td></tr>`;  // one byte per value: two figures are what it holds
  const top = D.top[t].map(([ch, p]) =>
    `<tr><td><code>${esc(fmt(ch))}</code></td><td>${(100 * p).toFixed(1)}%</td></tr>`).join("");
  $("info").classList.remove("dim");
  $("info").innerHTML = `<div>character ${t}: <code>${esc(fmt(CHARS[t]))}</code>` +
    `${t < D.given ? " (given)" : " (written by the model)"}</div><table>${v}` +
    `<tr><td>surprise</td><td>${D.surprise[t].toFixed(2)} bits</td></tr></table>` +
    `<div>what it expected next:</div><table>${top}</table>`;
}
function esc(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
box.addEventListener("mouseover", (e) => {
  if (pinned === null && e.target.dataset.t !== undefined) describe(+e.target.dataset.t);
});
box.addEventListener("click", (e) => {
  if (e.target.dataset.t === undefined) return;
  if (pinned !== null) spans[pinned].classList.remove("pinned");
  const t = +e.target.dataset.t;
  pinned = pinned === t ? null : t;
  if (pinned !== null) spans[pinned].classList.add("pinned");
  describe(t);
});

// The units found, one button each.
function foundTable() {
  if (!D.found.length) { $("found-section").style.display = "none"; return; }
  const table = document.createElement("table");
  table.innerHTML = "<tr><td><b>property</b></td><td><b>best units (r)</b></td>" +
    "<td title='the best |r| against the property shifted along the text'><b>chance</b></td></tr>";
  for (const f of D.found) {
    const row = table.insertRow();
    const name = row.insertCell();
    name.textContent = f.property;
    name.title = f.description;
    const cell = row.insertCell();
    if (!f.units.length) cell.innerHTML = "<span class='dim'>not in this text</span>";
    for (const [layer, unit, field, r] of f.units) {
      const b = document.createElement("button");
      b.textContent = `${field} ${layer}:${unit} (${r.toFixed(2)})`;
      b.dataset.layer = layer; b.dataset.unit = unit; b.dataset.show = field;
      b.addEventListener("click", () => choose(layer, unit, field));
      cell.appendChild(b);
    }
    row.insertCell().textContent = f.units.length ? f.chance.toFixed(2) : "";
  }
  $("found").appendChild(table);
}

// Gate saturation, per unit: the share of characters below 0.1 (x) and above 0.9 (y).
const LAYER_COLOURS = ["#d62f27", "#2166ac", "#1a9850", "#762a83", "#e08214", "#444"];
function gatePlots() {
  if (!D.gates.length) { $("gates-section").style.display = "none"; return; }
  const NS = "http://www.w3.org/2000/svg", S = 200, P = 30;
  const el = (tag, attrs, parent) => {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  };
  for (const g of D.gates) {
    const svg = el("svg", { width: S + P + 10, height: S + P + 24, "data-gate": g.gate });
    el("text", { x: P + S / 2, y: 12, "text-anchor": "middle", "font-size": 12 }, svg)
      .textContent = LABEL[g.gate];
    const y0 = 20, x = (v) => P + v * S, y = (v) => y0 + S - v * S;
    el("rect", { x: P, y: y0, width: S, height: S, fill: "none", stroke: "#bbb" }, svg);
    el("line", { x1: x(1), y1: y(0), x2: x(0), y2: y(1), stroke: "#ddd" }, svg);
    el("text", { x: P + S / 2, y: y0 + S + 16, "text-anchor": "middle", "font-size": 10 }, svg)
      .textContent = "share < 0.1 (left-saturated)";
    el("text", { x: 10, y: y0 + S / 2, "text-anchor": "middle", "font-size": 10,
      transform: `rotate(-90 10 ${y0 + S / 2})` }, svg).textContent = "share > 0.9";
    g.left.forEach((row, layer) => row.forEach((left, unit) => {
      const dot = el("circle", { cx: x(left), cy: y(g.right[layer][unit]), r: 2.5,
        fill: LAYER_COLOURS[layer % LAYER_COLOURS.length], "fill-opacity": 0.6 }, svg);
      el("title", {}, dot).textContent =
        `layer ${layer}, unit ${unit}: < 0.1 ${(100 * left).toFixed(0)}%, ` +
        `> 0.9 ${(100 * g.right[layer][unit]).toFixed(0)}% of characters`;
      dot.addEventListener("click", () => choose(layer, unit, g.gate));
    }));
    $("gates").appendChild(svg);
  }
  if (L > 1) {
    const key = document.createElement("div");
    key.style.fontSize = "11px";
    key.innerHTML = [...Array(L).keys()].map((l) =>
      `<span style="color:${LAYER_COLOURS[l % LAYER_COLOURS.length]}">&#9679;</span> layer ${l}`)
      .join(" &nbsp; ");
    $("gates").appendChild(key);
  }
}

layerSel.addEventListener("change", recolour);
showSel.addEventListener("change", recolour);
unitBox.addEventListener("input", recolour);
unitRange.addEventListener("input", () => { unitBox.value = unitRange.value; recolour(); });
foundTable();
gatePlots();
const m = /^#(\\d+):(\\d+):(\\w+)$/.exec(location.hash);
// The unit found furthest above its chance level.
const start = D.found.filter((f) => f.units.length).sort((a, b) =>
  Math.abs(b.units[0][3]) / (b.chance || 1) - Math.abs(a.units[0][3]) / (a.chance || 1))[0];
if (m && +m[1] < L && (D.fields.includes(m[3]) || m[3] === "surprise")) {
  choose(+m[1], +m[2], m[3]);
} else if (D.view) {
  choose(D.view[0], D.view[1], D.view[2]);
} else if (start) {
  choose(start.units[0][0], start.units[0][1], start.units[0][2]);
} else {
  choose(0, 0, "surprise");  // as the terminal: what needs no unit chosen
}
</script>
</body>
</html>
"""
