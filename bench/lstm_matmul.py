"""An LSTM layer's training pass laid out as matrix products, for bench/lstm_kernels.py to
time against PyTorch's fused kernel: the readable step of charrnn/model/network.py (lstm_step)
over a whole sequence, with the gradients written by hand.

The input's product for all T characters is one GEMM before the recurrence, the weights'
gradients one GEMM each after it; only the h products (B x H by H x 4H) run one character at a
time, and the gates' derivatives that do not depend on the recurrence are computed for all T at
once. The bench checks it against nn.LSTM (outputs and gradients) before timing it.
"""

from __future__ import annotations

import torch


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """One LSTM layer over a sequence: x (B, T, I), h0 and c0 (B, H), weights in PyTorch's layout
    (gates i, f, g, o) -> out (B, T, H), h_T (B, H), c_T (B, H). Differentiable in every input."""
    return _LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh)


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        b, t_len, _ = x.shape
        h = h0.shape[1]
        # The input's share of every gate for all T at once: one (B*T, I) x (I, 4H) product.
        pre = torch.addmm(b_ih + b_hh, x.reshape(b * t_len, -1), w_ih.t()).view(b, t_len, 4 * h)
        acts = torch.empty_like(pre)  # (B, T, 4H): the gates after their nonlinearities
        cs = x.new_empty(b, t_len, h)  # c after each character
        tcs = x.new_empty(b, t_len, h)  # tanh(c)
        out = x.new_empty(b, t_len, h)  # h after each character
        w_hh_t = w_hh.t()
        h_prev, c_prev = h0, c0
        for t in range(t_len):
            gates = torch.addmm(pre[:, t], h_prev, w_hh_t)  # (B, 4H)
            a, c, tc = acts[:, t], cs[:, t], tcs[:, t]
            torch.sigmoid(gates, out=a)  # input, forget and output gates
            torch.tanh(gates[:, 2 * h : 3 * h], out=a[:, 2 * h : 3 * h])  # the candidate g
            i, f, g, o = a.chunk(4, 1)
            torch.mul(f, c_prev, out=c).addcmul_(i, g)  # forget * c + input * candidate
            torch.tanh(c, out=tc)
            torch.mul(o, tc, out=out[:, t])
            h_prev, c_prev = out[:, t], cs[:, t]
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, acts, cs, tcs, out)
        return out, out[:, -1].clone(), cs[:, -1].clone()

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        x, h0, c0, w_ih, w_hh, acts, cs, tcs, out = ctx.saved_tensors
        b, t_len, h = out.shape
        i, f, g, o = acts.chunk(4, 2)  # (B, T, H) each
        c_prev = torch.cat([c0[:, None], cs[:, :-1]], 1)
        # What each gate's pre-activation gets from dc (the first three) and from dh (o), per
        # unit of dc or dh: none of it depends on the recurrence, so all T at once.
        from_dc = torch.cat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)], 2)
        from_dh = tcs * o * (1 - o)  # (B, T, H)
        dc_from_dh = o * (1 - tcs * tcs)  # (B, T, H): dc += dh * this
        d_pre = acts.new_empty(b, t_len, 4 * h)
        d_ifg = d_pre.view(b, t_len, 4, h)[:, :, :3]  # (B, T, 3, H)
        from_dc = from_dc.view(b, t_len, 3, h)
        dh = d_hn if d_hn is not None else out.new_zeros(b, h)
        dc = d_cn if d_cn is not None else out.new_zeros(b, h)
        for t in reversed(range(t_len)):
            if d_out is not None:
                dh = dh + d_out[:, t]
            dc = torch.addcmul(dc, dh, dc_from_dh[:, t])
            torch.mul(dc[:, None], from_dc[:, t], out=d_ifg[:, t])
            torch.mul(dh, from_dh[:, t], out=d_pre[:, t, 3 * h :])
            dc = dc * f[:, t]
            dh = torch.mm(d_pre[:, t], w_hh)  # (B, H): to the h before
        flat = d_pre.view(b * t_len, 4 * h)
        h_prev = torch.cat([h0[:, None], out[:, :-1]], 1).view(b * t_len, h)
        need = ctx.needs_input_grad
        dx = torch.mm(flat, w_ih).view(x.shape) if need[0] else None
        dw_ih = torch.mm(flat.t(), x.reshape(b * t_len, -1)) if need[3] else None
        dw_hh = torch.mm(flat.t(), h_prev) if need[4] else None
        db = flat.sum(0) if need[5] or need[6] else None
        return dx, dh, dc, dw_ih, dw_hh, db, db
