#!/usr/bin/python3
"""Writes tests/golden/nn/ops.safetensors: PyTorch's answers for every
deterministic op of struct nn_ops (lib/nn/ops.h), forward and backward.

Run from anywhere with Debian's python3 (it has torch):
    /usr/bin/python3 tests/golden/nn/make_op_goldens.py [OUT]

Inputs are drawn as float32 from a fixed numpy generator, so the file is the
same on every run. PyTorch then computes in float64 on those exact float32
values (autograd with out.backward(dout) for the gradients) and the results
are rounded once to float32: the fixture is the true answer for the stored
inputs, and what the C test measures is the engine's own float32 error.

Every tensor is named "<case>/<name>". Integer geometry goes in I32 tensors
("dims", "geom"), real hyper-parameters in F32 ones ("eps", "scale"), so a
reader needs nothing beyond the safetensors header. tests/golden/nn/README.md
lists the cases and tensors."""

import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20240603)
tensors = {}  # name -> np.ndarray (float32 or int32), in insertion order


def normal(*shape, std=1.0):
    return (rng.standard_normal(shape) * std).astype(np.float32)


def uniform(lo, hi, *shape):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def f32(x):
    """A hyper-parameter as the C op receives it (a float)."""
    return float(np.float32(x))


def leaf(a):
    """A float64 torch leaf holding float32 values exactly."""
    return torch.tensor(a.astype(np.float64), requires_grad=True)


def put(case, name, value):
    key = case + "/" + name
    assert key not in tensors, key
    if isinstance(value, torch.Tensor):
        value = value.detach().numpy()
    value = np.asarray(value)
    if value.dtype.kind in "iu":
        value = value.astype(np.int32)
    else:
        value = value.astype(np.float32)
    tensors[key] = np.ascontiguousarray(value)


def put_all(case, **named):
    for name, value in named.items():
        put(case, name, value)


def backward(out, dout):
    """Runs autograd with a fixed upstream gradient (float32 values)."""
    out.backward(torch.tensor(dout.astype(np.float64)))


# ---- linear and gemm ----

def linear_case(case, N, IN, OUT, with_bias):
    inp, weight = normal(N, IN), normal(OUT, IN, std=1 / math.sqrt(IN))
    bias = normal(OUT) if with_bias else None
    ti, tw = leaf(inp), leaf(weight)
    tb = leaf(bias) if with_bias else None
    out = F.linear(ti, tw, tb)
    dout = normal(*out.shape)
    backward(out, dout)
    put_all(case, dims=[N, IN, OUT], inp=inp, weight=weight, out=out, dout=dout,
            dinp=ti.grad, dweight=tw.grad)
    if with_bias:
        put_all(case, bias=bias, dbias=tb.grad)


def gemm_case(case, trans_a, trans_b, M, N, K, alpha, beta, batch, pad):
    """C = alpha op(A) op(B) + beta C for each of `batch` products. Leading
    dimensions exceed the row length by `pad` and the batch strides leave a
    gap, so an op that ignores lda/stride reads the wrong numbers."""
    a_rows, a_cols = (K, M) if trans_a else (M, K)
    b_rows, b_cols = (N, K) if trans_b else (K, N)
    lda, ldb, ldc = a_cols + pad, b_cols + pad, N + pad
    sa, sb, sc = a_rows * lda + 3, b_rows * ldb + 5, M * ldc + 2
    A = normal(batch * sa)
    B = normal(batch * sb)
    C = normal(batch * sc)
    Cout = C.astype(np.float64).copy()
    for i in range(batch):
        a = A[i * sa:i * sa + a_rows * lda].reshape(a_rows, lda)[:, :a_cols].astype(np.float64)
        b = B[i * sb:i * sb + b_rows * ldb].reshape(b_rows, ldb)[:, :b_cols].astype(np.float64)
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        c = Cout[i * sc:i * sc + M * ldc].reshape(M, ldc)
        prod = (torch.tensor(a) @ torch.tensor(b)).numpy()
        c[:, :N] = alpha * prod + (beta * c[:, :N] if beta != 0 else 0)
    put_all(case, dims=[trans_a, trans_b, M, N, K, lda, ldb, ldc, sa, sb, sc, batch],
            alpha=[alpha], beta=[beta], A=A, B=B, C=C, out=Cout)


# ---- convolution, resampling ----

def conv2d_case(case, B, IC, H, W, OC, KH, KW, stride, pad, with_bias=True):
    pt, pl, pb, pr = pad
    inp = normal(B, IC, H, W)
    weight = normal(OC, IC, KH, KW, std=1 / math.sqrt(IC * KH * KW))
    bias = normal(OC) if with_bias else None
    ti, tw = leaf(inp), leaf(weight)
    tb = leaf(bias) if with_bias else None
    out = F.conv2d(F.pad(ti, (pl, pr, pt, pb)), tw, tb, stride=stride)
    dout = normal(*out.shape)
    backward(out, dout)
    put_all(case, geom=[B, IC, H, W, OC, KH, KW, stride, pt, pl, pb, pr], inp=inp,
            weight=weight, out=out, dout=dout, dinp=ti.grad, dweight=tw.grad)
    if with_bias:
        put_all(case, bias=bias, dbias=tb.grad)


def resample_case(case, kind, N, H, W, factor):
    inp = normal(N, H, W)
    ti = leaf(inp)
    x = ti.view(1, N, H, W)
    if kind == "upsample":
        out = F.interpolate(x, scale_factor=factor, mode="nearest")
    else:
        out = F.avg_pool2d(x, factor, stride=factor)
    out = out.view(N, out.shape[2], out.shape[3])
    dout = normal(*out.shape)
    backward(out, dout)
    put_all(case, dims=[N, H, W, factor], inp=inp, out=out, dout=dout, dinp=ti.grad)


# ---- normalisation, modulation ----

def layernorm_case(case, N, C, affine, eps=1e-5):
    eps = f32(eps)
    # Rows with offsets and spreads of different sizes; in the first the mean
    # is 100 times the spread, where a one-pass variance (E[x^2] - E[x]^2 in
    # float32) loses most of its digits.
    inp = normal(N, C) * uniform(0.2, 3.0, N, 1) + uniform(-4, 4, N, 1)
    inp[0] = normal(C, std=0.5) + 50
    weight = normal(C, std=0.5) + 1 if affine else None
    bias = normal(C, std=0.5) if affine else None
    ti = leaf(inp)
    tw, tb = (leaf(weight), leaf(bias)) if affine else (None, None)
    out = F.layer_norm(ti, (C,), tw, tb, eps)
    x = ti.detach()
    mean = x.mean(-1)
    rstd = 1 / torch.sqrt(x.var(-1, unbiased=False) + eps)
    dout = normal(N, C)
    backward(out, dout)
    put_all(case, dims=[N, C], eps=[eps], inp=inp, out=out, mean=mean, rstd=rstd,
            dout=dout, dinp=ti.grad)
    if affine:
        put_all(case, weight=weight, bias=bias, dweight=tw.grad, dbias=tb.grad)


def groupnorm_case(case, B, C, H, W, G, eps=1e-5):
    eps = f32(eps)
    HW = H * W
    inp = normal(B, C, HW) * uniform(0.5, 2.0, B, C, 1) + uniform(-2, 2, B, C, 1)
    inp[0, :C // G] = normal(C // G, HW, std=0.5) + 30  # mean far above the spread
    weight, bias = normal(C, std=0.5) + 1, normal(C, std=0.5)
    ti, tw, tb = leaf(inp), leaf(weight), leaf(bias)
    out = F.group_norm(ti.view(B, C, H, W), G, tw, tb, eps).view(B, C, HW)
    x = ti.detach().view(B, G, -1)
    mean = x.mean(-1)
    rstd = 1 / torch.sqrt(x.var(-1, unbiased=False) + eps)
    dout = normal(B, C, HW)
    backward(out, dout)
    put_all(case, dims=[B, C, HW, G], eps=[eps], inp=inp, weight=weight, bias=bias, out=out,
            mean=mean, rstd=rstd, dout=dout, dinp=ti.grad, dweight=tw.grad, dbias=tb.grad)


def modulate_case(case, B, T, C):
    """adaLN's x * (1 + scale) + shift, with shift and scale as columns
    [0, C) and [2C, 3C) of one [B, 3C] buffer (ld = 3C). The gradient of the
    unused middle third is zero: an op that strays into it is caught."""
    ld, shift_col, scale_col = 3 * C, 0, 2 * C
    x, mod = normal(B, T, C), normal(B, ld, std=0.5)
    tx, tm = leaf(x), leaf(mod)
    shift = tm[:, shift_col:shift_col + C].unsqueeze(1)
    scale = tm[:, scale_col:scale_col + C].unsqueeze(1)
    out = tx * (1 + scale) + shift
    dout = normal(B, T, C)
    backward(out, dout)
    put_all(case, dims=[B, T, C, ld, shift_col, scale_col], x=x, mod=mod, out=out, dout=dout,
            dx=tx.grad, dmod=tm.grad)


# ---- activations, softmax ----

ACTS = {  # case name -> (enum nn_act value, function)
    "act_gelu_erf": (0, lambda x: F.gelu(x)),
    "act_gelu_tanh": (1, lambda x: F.gelu(x, approximate="tanh")),
    "act_quick_gelu": (2, lambda x: x * torch.sigmoid(1.702 * x)),
    "act_silu": (3, lambda x: F.silu(x)),
    "act_identity": (4, lambda x: x * 1),
}


def act_case(case, n):
    code, fn = ACTS[case]
    # Mostly |x| < 3 where the functions curve, plus the exact points 0 and
    # +-5 (tails) and a few values near zero.
    inp = np.concatenate([normal(n - 7, std=1.5),
                          np.array([0, 5, -5, 1e-3, -1e-3, 3, -3], np.float32)])
    ti = leaf(inp)
    out = fn(ti)
    dout = normal(n)
    backward(out, dout)
    put_all(case, dims=[n, code], inp=inp, out=out, dout=dout, dinp=ti.grad)


def softmax_case(case, N, C, log):
    # Row offsets up to 60 make a softmax without the max-subtraction overflow.
    inp = normal(N, C, std=2) + np.array([0, 60, -60, 0, 20, -5, 0, 1][:N], np.float32)[:, None]
    ti = leaf(inp)
    out = F.log_softmax(ti, -1) if log else F.softmax(ti, -1)
    dout = normal(N, C)
    backward(out, dout)
    put_all(case, dims=[N, C], inp=inp, out=out, dout=dout, dinp=ti.grad)


# ---- attention ----

def attention_case(case, B, H, Tq, Tk, D, causal=False, key_valid=None, scale=None):
    """Q [B,Tq,H*D], K,V [B,Tk,H*D], head h in columns h*D..h*D+D-1."""
    if scale is None:
        scale = 1 / math.sqrt(D)
    scale = f32(scale)
    q, k, v = normal(B, Tq, H * D), normal(B, Tk, H * D), normal(B, Tk, H * D)
    tq, tk, tv = leaf(q), leaf(k), leaf(v)
    heads = lambda t, T: t.view(B, T, H, D).transpose(1, 2)  # [B,H,T,D]
    s = heads(tq, Tq) @ heads(tk, Tk).transpose(-1, -2) * scale  # [B,H,Tq,Tk]
    allowed = torch.ones(B, 1, Tq, Tk, dtype=torch.bool)
    if causal:
        assert Tq == Tk
        allowed = allowed & torch.ones(Tq, Tk, dtype=torch.bool).tril()
    if key_valid is not None:
        allowed = allowed & torch.tensor(key_valid, dtype=torch.bool).view(B, 1, 1, Tk)
    assert bool(allowed.any(-1).all()), "every query needs a key"
    s = s.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(s, -1)  # [B,H,Tq]
    o = torch.softmax(s, -1) @ heads(tv, Tk)  # [B,H,Tq,D]
    out = o.transpose(1, 2).reshape(B, Tq, H * D)
    dout = normal(B, Tq, H * D)
    backward(out, dout)
    put_all(case, dims=[B, H, Tq, Tk, D, int(causal)], scale=[scale], q=q, k=k, v=v, out=out,
            lse=lse, dout=dout, dq=tq.grad, dk=tk.grad, dv=tv.grad)
    if key_valid is not None:
        put(case, "key_valid", np.array(key_valid, np.int32))


# ---- embedding, losses ----

def embedding_case(case, N, C, V):
    ids = np.array([3, 0, 5, 3, 3, 6, 1, 0][:N], np.int32)  # repeats: gradients add up
    table = normal(V, C)
    tt = leaf(table)
    out = F.embedding(torch.tensor(ids, dtype=torch.long), tt)
    dout = normal(N, C)
    backward(out, dout)
    put_all(case, dims=[N, C, V], ids=ids, table=table, out=out, dout=dout, dtable=tt.grad)


def cross_entropy_case(case, N, C):
    logits = normal(N, C, std=2) + np.array([0, 40, -40, 0, 0, 0][:N], np.float32)[:, None]
    targets = np.array([2, 0, C - 1, -1, 4, -1][:N], np.int32)  # -1: ignored row
    dloss = uniform(0.1, 1.0, N)
    tl = leaf(logits)
    loss = F.cross_entropy(tl, torch.tensor(targets, dtype=torch.long), ignore_index=-1,
                           reduction="none")
    backward(loss, dloss)
    put_all(case, dims=[N, C], logits=logits, targets=targets, loss=loss, dloss=dloss,
            dlogits=tl.grad)


def mse_case(case, N, C):
    pred, target = normal(N, C), normal(N, C)
    dloss = uniform(0.1, 1.0, N)
    tp = leaf(pred)
    loss = ((tp - torch.tensor(target.astype(np.float64))) ** 2).mean(-1)
    backward(loss, dloss)
    put_all(case, dims=[N, C], pred=pred, target=target, loss=loss, dloss=dloss, dpred=tp.grad)


def kl_case(case, N, C):
    # Proper log-distributions, rounded to float32 (the op sees those values).
    logp = F.log_softmax(torch.tensor(normal(N, C, std=1.5), dtype=torch.float64), -1)
    logq = F.log_softmax(torch.tensor(normal(N, C, std=1.5), dtype=torch.float64), -1)
    logp, logq = logp.numpy().astype(np.float32), logq.numpy().astype(np.float32)
    dloss = uniform(0.1, 1.0, N)
    tp, tq = leaf(logp), leaf(logq)
    loss = (tp.exp() * (tp - tq)).sum(-1)
    backward(loss, dloss)
    put_all(case, dims=[N, C], logp=logp, logq=logq, loss=loss, dloss=dloss, dlogp=tp.grad,
            dlogq=tq.grad)


# ---- elementwise helpers, reductions, optimiser steps ----

def elementwise_case(case, n):
    a, b, s = normal(n), normal(n), np.float32(-0.37)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    put_all(case, dims=[n], a=a, b=b, s=[s], add=a64 + b64, scaled=a64 * np.float64(s))


def reduce_case(case, n):
    x = normal(n) + 0.5
    x64 = x.astype(np.float64)
    put_all(case, dims=[n], x=x, sum=[x64.sum()], sum_squares=[(x64 * x64).sum()])


def adamw_case(case, n, step, lr, beta1, beta2, eps, wd, grad_scale):
    """One torch.optim.AdamW step from given moments at `step` (1-based).
    The op's gradient is grad * grad_scale (how clipping and accumulation
    hand it over)."""
    hyper = [f32(x) for x in (lr, beta1, beta2, eps, wd, grad_scale)]
    lr, beta1, beta2, eps, wd, grad_scale = hyper
    param, grad = normal(n), normal(n)
    m = normal(n, std=0.1) if step > 1 else np.zeros(n, np.float32)
    v = (normal(n, std=0.1) ** 2) if step > 1 else np.zeros(n, np.float32)
    p = torch.tensor(param.astype(np.float64), requires_grad=True)
    p.grad = torch.tensor(grad.astype(np.float64) * grad_scale)
    opt = torch.optim.AdamW([p], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd)
    if step > 1:
        opt.state[p] = {"step": torch.tensor(float(step - 1)),
                        "exp_avg": torch.tensor(m.astype(np.float64)),
                        "exp_avg_sq": torch.tensor(v.astype(np.float64))}
    opt.step()
    st = opt.state[p]
    assert float(st["step"]) == step
    put_all(case, dims=[n, step], hyper=hyper, param=param,
            grad=grad, m=m, v=v, param_out=p.detach(), m_out=st["exp_avg"],
            v_out=st["exp_avg_sq"])


def ema_case(case, n, decay):
    ema, param = normal(n), normal(n)
    d = f32(decay)
    out = ema.astype(np.float64) * d + param.astype(np.float64) * (1 - d)
    put_all(case, dims=[n], decay=[decay], ema=ema, param=param, out=out)


def build():
    linear_case("linear", N=5, IN=7, OUT=6, with_bias=True)
    linear_case("linear_nobias", N=4, IN=9, OUT=3, with_bias=False)
    gemm_case("gemm_nn", 0, 0, M=3, N=4, K=5, alpha=1.0, beta=0.0, batch=1, pad=0)
    gemm_case("gemm_nt_batched", 0, 1, M=4, N=3, K=6, alpha=0.7, beta=0.3, batch=3, pad=2)
    gemm_case("gemm_tn_batched", 1, 0, M=5, N=2, K=3, alpha=-1.5, beta=1.0, batch=2, pad=1)
    gemm_case("gemm_tt", 1, 1, M=3, N=5, K=4, alpha=2.0, beta=0.0, batch=2, pad=3)

    conv2d_case("conv2d_3x3_s1", B=2, IC=3, H=6, W=5, OC=4, KH=3, KW=3, stride=1,
                pad=(1, 1, 1, 1))
    conv2d_case("conv2d_3x3_s2_taming", B=2, IC=3, H=8, W=8, OC=4, KH=3, KW=3, stride=2,
                pad=(0, 0, 1, 1))
    conv2d_case("conv2d_3x3_s2_odd", B=1, IC=2, H=7, W=5, OC=3, KH=3, KW=3, stride=2,
                pad=(1, 1, 1, 1))
    conv2d_case("conv2d_1x1", B=2, IC=5, H=4, W=3, OC=6, KH=1, KW=1, stride=1,
                pad=(0, 0, 0, 0))
    conv2d_case("conv2d_2x3_nobias", B=2, IC=2, H=5, W=6, OC=3, KH=2, KW=3, stride=1,
                pad=(1, 1, 0, 1), with_bias=False)

    resample_case("upsample_x2", "upsample", N=3, H=3, W=4, factor=2)
    resample_case("upsample_x3", "upsample", N=2, H=2, W=3, factor=3)
    resample_case("avgpool_x2", "avgpool", N=3, H=4, W=6, factor=2)
    resample_case("avgpool_x3", "avgpool", N=2, H=6, W=3, factor=3)

    layernorm_case("layernorm_affine", N=6, C=24, affine=True)
    layernorm_case("layernorm_plain", N=5, C=17, affine=False)
    groupnorm_case("groupnorm", B=2, C=8, H=3, W=4, G=4, eps=1e-6)
    groupnorm_case("groupnorm_g1", B=2, C=6, H=2, W=3, G=1)
    modulate_case("modulate", B=2, T=5, C=6)

    for case in ACTS:
        act_case(case, n=67)  # not a multiple of a vector width
    softmax_case("softmax", N=8, C=11, log=False)
    softmax_case("log_softmax", N=8, C=11, log=True)

    attention_case("attention_self", B=2, H=2, Tq=5, Tk=5, D=4)
    attention_case("attention_causal", B=2, H=3, Tq=6, Tk=6, D=4, causal=True)
    attention_case("attention_keypad", B=2, H=2, Tq=5, Tk=5, D=4,
                   key_valid=[[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]])
    attention_case("attention_cross", B=2, H=2, Tq=6, Tk=3, D=8, scale=0.3)
    attention_case("attention_cross_keypad", B=2, H=3, Tq=4, Tk=7, D=4,
                   key_valid=[[1, 1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0, 0]])
    attention_case("attention_causal_keypad", B=2, H=2, Tq=5, Tk=5, D=4, causal=True,
                   key_valid=[[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
    # Larger than one block of a tiled kernel (64 queries, 16-key column
    # blocks, 8-float vectors on the CPU), so that block edges and tails run.
    attention_case("attention_blocks_cross", B=1, H=2, Tq=70, Tk=37, D=24,
                   key_valid=[[1] * 20 + [0] * 3 + [1] * 12 + [0] * 2])
    attention_case("attention_blocks_causal", B=1, H=2, Tq=70, Tk=70, D=16, causal=True)

    embedding_case("embedding", N=8, C=5, V=7)
    cross_entropy_case("cross_entropy", N=6, C=9)
    mse_case("mse", N=4, C=10)
    kl_case("kl", N=5, C=8)

    elementwise_case("elementwise", n=37)
    reduce_case("reduce", n=100)
    adamw_case("adamw_first", n=40, step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01,
               grad_scale=1.0)
    adamw_case("adamw_later", n=40, step=7, lr=3e-2, beta1=0.8, beta2=0.95, eps=1e-6, wd=0.1,
               grad_scale=0.5)
    ema_case("ema", n=30, decay=0.99)


def write_safetensors(path, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    for name, a in tensors.items():
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in tensors.values():
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())
    os.replace(tmp, path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "ops.safetensors")
    torch.set_default_dtype(torch.float64)
    build()
    write_safetensors(path, {
        "generator": "tests/golden/nn/make_op_goldens.py",
        "torch": torch.__version__.split("+")[0],
        "about": "inputs float32; reference computed in float64 by PyTorch, rounded to float32",
    })
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
