// The model and its sampler, in the browser: the first part of the script of export_page.html,
// put inline there by export_page.py. It reads the page's data (D: the vocabulary, the lead-in,
// the shape, the weights) and draws nothing; the page's own part draws.
const $ = (id) => document.getElementById(id);
const D = JSON.parse($("data").textContent);
const V = D.vocab.length, H = D.hidden, L = D.layers, E = D.embedding, CELL = D.cell;
const GH = { lstm: 4, gru: 3, rnn: 1 }[CELL] * H;  // the gates' rows, stacked as PyTorch does
const INDEX = new Map(D.vocab.map((ch, i) => [ch, i]));
const FIELDS = D.fields, F = FIELDS.length;

// ---- The weights: base64, little-endian float16 or float32, row-major as PyTorch holds them.
function half(b) {  // an IEEE 754 binary16 bit pattern -> its value
  const sign = b & 0x8000 ? -1 : 1, exp = (b >> 10) & 0x1f, frac = b & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
function decode(text) {
  const raw = atob(text), bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const view = new DataView(bytes.buffer), wide = D.precision === "float32";
  const out = new Float32Array(raw.length / (wide ? 4 : 2));
  for (let i = 0; i < out.length; i++) {
    out[i] = wide ? view.getFloat32(4 * i, true) : half(view.getUint16(2 * i, true));
  }
  return out;
}
const W = {};
for (const name of Object.keys(D.weights)) W[name] = decode(D.weights[name]);

// out[r] = bias[r] + sum_c w[r, c] x[c], for the rows of out: w is (rows, cols), row-major.
// Four sums at once: independent additions the processor overlaps (measured faster than one).
function matvec(w, x, cols, bias, out) {
  const even = cols - (cols % 4);
  for (let r = 0, o = 0; r < out.length; r++, o += cols) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, c = 0;
    for (; c < even; c += 4) {
      s0 += w[o + c] * x[c]; s1 += w[o + c + 1] * x[c + 1];
      s2 += w[o + c + 2] * x[c + 2]; s3 += w[o + c + 3] * x[c + 3];
    }
    for (; c < cols; c++) s0 += w[o + c] * x[c];
    out[r] = bias[r] + ((s0 + s1) + (s2 + s3));
  }
  return out;
}
// Layer 0 reads a character as a row of one table: W_ih embed[ch] + b_ih, made once (Stepper's).
const TABLE = new Float64Array(V * GH);
for (let v = 0; v < V; v++) {
  matvec(W.w_ih0, W.embed.subarray(v * E, (v + 1) * E), E, W.b_ih0, TABLE.subarray(v * GH, (v + 1) * GH));
}

// ---- One step of each cell, gate by gate, as model/network.py writes it. x and h are
// W_ih x + b_ih and W_hh h + b_hh, (G*H) each in PyTorch's gate order; s is the layer's state.
const sigmoid = (z) => 1 / (1 + Math.exp(-z));
const STEPS = {
  lstm(x, h, s, p) {  // gates: input, forget, candidate (g), output
    for (let j = 0; j < H; j++) {
      const input = sigmoid(x[j] + h[j]), forget = sigmoid(x[H + j] + h[H + j]);
      const candidate = Math.tanh(x[2 * H + j] + h[2 * H + j]);
      const output = sigmoid(x[3 * H + j] + h[3 * H + j]);
      const c = forget * s.c[j] + input * candidate;  // the belt: scaled and added to
      s.c[j] = c;
      s.h[j] = output * Math.tanh(c);
      p.forget[j] = forget; p.input[j] = input; p.output[j] = output;
      p.candidate[j] = candidate; p.cell[j] = c; p.hidden[j] = s.h[j];
    }
  },
  gru(x, h, s, p) {  // gates: reset, update, candidate
    for (let j = 0; j < H; j++) {
      const reset = sigmoid(x[j] + h[j]), update = sigmoid(x[H + j] + h[H + j]);
      const candidate = Math.tanh(x[2 * H + j] + reset * h[2 * H + j]);
      s.h[j] = (1 - update) * candidate + update * s.h[j];
      p.reset[j] = reset; p.update[j] = update; p.candidate[j] = candidate; p.hidden[j] = s.h[j];
    }
  },
  rnn(x, h, s, p) {
    for (let j = 0; j < H; j++) p.hidden[j] = s.h[j] = Math.tanh(x[j] + h[j]);
  },
};

// One stream of the model: its state, and what its last step computed (probe[layer][field]).
class Reader {
  constructor() {
    const zeros = () => new Float64Array(H);
    this.state = Array.from({ length: L }, () => ({ h: zeros(), c: zeros() }));
    this.probe = Array.from({ length: L }, () => Object.fromEntries(FIELDS.map((f) => [f, zeros()])));
    this.xPart = new Float64Array(GH);
    this.hPart = new Float64Array(GH);
    this.logits = new Float64Array(V);
  }
  step(id) {  // read character `id` -> the logits (V) for the next one
    let x = null;
    for (let l = 0; l < L; l++) {
      const s = this.state[l];
      const xPart = l === 0 ? TABLE.subarray(id * GH, (id + 1) * GH) :
        matvec(W["w_ih" + l], x, H, W["b_ih" + l], this.xPart);
      matvec(W["w_hh" + l], s.h, H, W["b_hh" + l], this.hPart);
      STEPS[CELL](xPart, this.hPart, s, this.probe[l]);
      x = s.h;  // h goes up to the next layer
    }
    return matvec(W.head_w, x, H, W.head_b, this.logits);
  }
}

// ---- Sampling, as use/sampler.py chooses: temperature, then top-k, then top-p, then a draw.
// mulberry32 (Tommy Ettinger, public domain): a 32-bit counter stepped by 0x6D2B79F5, its value
// mixed by two xorshift-multiply rounds; u in [0, 1) with 32 bits. The same seed, the same text.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const TINY = 1.1754943508222875e-38;  // float32's smallest normal: below it, greedy (sampler.py)
// The odds the draw uses (V, unnormalised, 0 for a character dropped) from logits.
function filtered(logits, temperature, topK, topP) {
  const n = logits.length, out = new Float64Array(n);
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
  if (!(temperature >= TINY)) { out[best] = 1; return out; }
  // which characters top-k and top-p keep is read in the logits' order, as sampler.py does
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  const kth = topK && topK < n ? logits[order[topK - 1]] : -Infinity;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    out[i] = logits[i] < kth ? 0 : Math.exp((logits[i] - logits[best]) / temperature);
    sum += out[i];
  }
  for (let i = 0; i < n; i++) out[i] /= sum;
  if (topP && topP < 1) {  // the likeliest characters whose total reaches p; the first always
    let before = 0;
    for (let j = 0; j < n; j++) {
      const i = order[j], p = out[i];
      if (j > 0 && before >= topP) out[i] = 0;
      before += p;
    }
  }
  return out;
}
function draw(odds, u) {  // inverse CDF: the first id whose cumulative odds pass u * total
  let total = 0, last = 0;
  for (let i = 0; i < odds.length; i++) { total += odds[i]; if (odds[i] > 0) last = i; }
  let cum = 0;
  for (let i = 0; i < odds.length; i++) { cum += odds[i]; if (cum > u * total) return i; }
  return last;
}
function softmax(logits) { return Array.from(filtered(logits, 1, 0, 1)); }
function unknown(text) { return [...new Set(Array.from(text).filter((ch) => !INDEX.has(ch)))]; }

// One sample: a cold start (the lead-in, then the prime), then one drawn character per next().
class Writer {
  constructor(o, onRead) {
    this.o = o;
    this.reader = new Reader();
    this.rng = mulberry32(o.seed);
    this.left = o.length;
    for (const ch of Array.from(D.lead_in)) this.logits = this.reader.step(INDEX.get(ch));
    for (const ch of Array.from(o.prime)) {
      this.logits = this.reader.step(INDEX.get(ch));
      if (onRead) onRead(ch, null, this.reader.probe);
    }
  }
  next() {  // -> [the character, its probability as drawn]; the reader has read it
    const odds = filtered(this.logits, this.o.temperature, this.o.topK, this.o.topP);
    const id = draw(odds, this.rng());
    this.left--;
    this.logits = this.reader.step(id);
    return [D.vocab[id], odds[id]];
  }
}
