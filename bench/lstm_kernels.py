"""Where the LSTM's share of the matmul peak is lost: `python bench/lstm_kernels.py`.

In one run, the measurements taking turns (the median of `--rounds` turns each), for the LSTM
layers of small (1x512) and medium (1x768), B 32, T 32, input 64 (charrnn's embedding):

  peak        torch.mm of 2048x2048 matrices: the peak bench/throughput.py divides by
  h product   the product each character waits for, h (B x H) by W_hh^T (H x 4H): torch.addmm
              (MKL), and oneDNN's linear with the weights packed once (what the fused kernel
              runs on); 32 of them in the forward pass, 32 more in the backward
  LSTM        a layer's forward+backward over T: oneDNN's fused kernel (nn.LSTM, what charrnn
              trains with), PyTorch's own (oneDNN switched off), and the matrix-product layout of
              lstm_matmul.py (input products and weight gradients as single GEMMs)

GFLOP/s count 2 per multiply-add of the products: 6 x the layer's weights x B x T for a pass.
Run it with ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 to see an AVX2 machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from lstm_matmul import lstm_layer
from report import header

B, T, E = 32, 32, 64


def seconds(fn, least: float = 0.2) -> float:
    """Seconds per call of `fn`, called for at least `least` seconds (after one call)."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < least:
        fn()
        calls += 1
    return elapsed / calls


def check_equal(lstm: torch.nn.LSTM, x, h0, c0) -> None:
    """The matrix-product layout gives nn.LSTM's outputs and gradients, or the bench stops."""
    weights = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
    go = torch.randn(B, T, lstm.hidden_size)
    grads = []
    for fused in (True, False):
        if fused:
            out, _ = lstm(x, (h0[None], c0[None]))
        else:
            out = lstm_layer(x, h0, c0, *weights)[0]
        grads.append([out, *torch.autograd.grad(out, [x, *weights], go)])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def cases(h: int) -> dict[str, tuple]:
    """name -> (function, GFLOP per call) for hidden size h."""
    lstm = torch.nn.LSTM(E, h, batch_first=True)
    x = torch.randn(B, T, E, requires_grad=True)
    h0, c0, go = torch.zeros(B, h), torch.zeros(B, h), torch.randn(B, T, h)
    check_equal(lstm, x, h0, c0)
    w, bias, hid = lstm.weight_hh_l0.detach(), torch.randn(4 * h), torch.randn(B, h)
    packed = torch.ops.mkldnn._reorder_linear_weight(w, B)
    weights = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]

    def fused():
        lstm(x, (h0[None], c0[None]))[0].backward(go)

    def native():
        with torch.backends.mkldnn.flags(enabled=False):
            lstm(x, (h0[None], c0[None]))[0].backward(go)

    def matmul():
        lstm_layer(x, h0, c0, *weights)[0].backward(go)

    product = 2 * B * h * 4 * h / 1e9
    layer = 6 * 4 * h * (E + h) * B * T / 1e9
    return {
        f"1x{h} h product, torch.addmm (MKL)": (lambda: torch.addmm(bias, hid, w.t()), product),
        f"1x{h} h product, oneDNN, weights packed": (
            lambda: torch.ops.mkldnn._linear_pointwise(hid, packed, bias, "none", [], ""),
            product,
        ),
        f"1x{h} LSTM, oneDNN's fused kernel (charrnn)": (fused, layer),
        f"1x{h} LSTM, PyTorch's own kernel": (native, layer),
        f"1x{h} LSTM, matrix products (lstm_matmul.py)": (matmul, layer),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="turns each measurement takes")
    args = p.parse_args()
    a = torch.randn(2048, 2048)
    todo = {"peak: torch.mm 2048x2048": (lambda: torch.mm(a, a), 2 * 2048**3 / 1e9)}
    for h in (512, 768):
        todo |= cases(h)
    times: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(args.rounds):
        for name, (fn, _) in todo.items():
            times[name].append(seconds(fn))
    rate = {name: todo[name][1] / statistics.median(t) for name, t in times.items()}
    peak = rate["peak: torch.mm 2048x2048"]
    print(header())
    print(f"{torch.get_num_threads()} threads; medians of {args.rounds} turns.\n")
    print("| what | ms | GFLOP/s | of the peak |")
    print("| --- | --- | --- | --- |")
    for name, t in times.items():
        ms = statistics.median(t) * 1e3
        print(f"| {name} | {ms:.2f} | {rate[name]:.1f} | **{rate[name] / peak:.0%}** |")


if __name__ == "__main__":
    main()
