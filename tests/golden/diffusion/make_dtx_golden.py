#!/usr/bin/python3
"""Writes tests/golden/diffusion/dtx.safetensors: PyTorch's logits and
parameter gradients of the discrete backbone's transformer
(lib/diffusion/discrete_transformer.h) for tests/unit/test_discrete_transformer.c.

Run with Debian's python3 (it has torch):
    /usr/bin/python3 tests/golden/diffusion/make_dtx_golden.py [OUT]

The network is written out here from the header's description, in plain
torch, with the C model's parameter names:

  x = content_emb.emb[tokens] + content_emb.height_emb[row] + content_emb.width_emb[col]
  y = cond_proj(cond) + cond_slot[0 for slot 0, else 1]
  y = y + cond_attn.attn(cond_attn.ln(y), key_valid)         (cond_self_attn only)
  per block: x += attn1(adaln ln1(x, t))
             x += attn2(adaln ln1_1(x, t), y, key_valid)
             x += mlp.fc2(gelu(mlp.fc1(ln2(x))))
  logits = to_logits.linear(to_logits.ln(x)), transposed to [B, K, L]
  adaln(x, t) = layer_norm(x) * (1 + scale) + shift, [scale, shift] = linear(silu(emb[t]))

Two configs, so that nothing is tied to one set of sizes:
  A  K 16, 4x4 grid, width 32, depth 2, heads 2, MLP 48, D 8, S 3, T 10,
     cond_self_attn on, B 3 (row 1 has slot 2 masked);
  B  K 11, 3x5 grid, width 12, depth 1, heads 3, MLP 36, D 5, S 2, T 7,
     cond_self_attn off, B 2 (row 0 has slot 1 masked).
(B is smaller than A so that the file stays under 300 kB.)

Weights are drawn by a fixed numpy generator and stored as F16 (so the C
loader's F16 path is used, and both sides compute with exactly the stored
values); torch computes in float64 on them, so the expected numbers are the
true ones and the C test measures its float32 error. The gradients are of
sum(logits * R) for a fixed random R.

Tensors, for each config X in (A, B):
  X/param/<name>   F16: the weights, named as the C model names them
  X/tokens         I32 [B, L] (ids 0..K, K = the mask; each row has masks)
  X/t              I32 [B]
  X/cond           F32 [B, S, D]
  X/cond_valid     U8  [B, S]
  X/R              F32 [B, K, L]
  X/logits         F32 [B, K, L]
  X/grad/<name>    F32: d sum(logits * R) / d param
and metadata "X.config": the model's config JSON (dtx_config_json's keys)."""

import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-5
tensors = {}


def layer_norm(x, w=None, b=None):
    return F.layer_norm(x, x.shape[-1:], w, b, eps=EPS)


def linear(P, name, x):
    return x @ P[name + ".weight"].T + P[name + ".bias"]


def mha(P, name, x, kv, heads, key_valid=None):
    B, Tq, C = x.shape
    Tk, D = kv.shape[1], C // heads
    q = linear(P, name + ".q_proj", x).view(B, Tq, heads, D).transpose(1, 2)
    k = linear(P, name + ".k_proj", kv).view(B, Tk, heads, D).transpose(1, 2)
    v = linear(P, name + ".v_proj", kv).view(B, Tk, heads, D).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / D ** 0.5
    if key_valid is not None:
        s = s.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    out = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, Tq, C)
    return linear(P, name + ".out_proj", out)


def adaln(P, name, x, t):
    st = linear(P, name + ".linear", F.silu(P[name + ".emb.weight"][t]))
    scale, shift = st.unsqueeze(1).chunk(2, dim=2)
    return layer_norm(x) * (1 + scale) + shift


def forward(c, P, tokens, t, cond, valid):
    h, w = c["h"], c["w"]
    pos = torch.arange(h * w)
    x = P["content_emb.emb.weight"][tokens] + P["content_emb.height_emb.weight"][pos // w] \
        + P["content_emb.width_emb.weight"][pos % w]
    S = cond.shape[1]
    slot = torch.ones(S, dtype=torch.long)
    slot[0] = 0
    y = linear(P, "cond_proj", cond) + P["cond_slot.weight"][slot]
    if c["cond_self_attn"]:
        hy = layer_norm(y, P["cond_attn.ln.weight"], P["cond_attn.ln.bias"])
        y = y + mha(P, "cond_attn.attn", hy, hy, c["heads"], valid)
    for i in range(c["depth"]):
        b = f"blocks.{i}."
        hx = adaln(P, b + "ln1", x, t)
        x = x + mha(P, b + "attn1", hx, hx, c["heads"])
        x = x + mha(P, b + "attn2", adaln(P, b + "ln1_1", x, t), y, c["heads"], valid)
        hx = layer_norm(x, P[b + "ln2.weight"], P[b + "ln2.bias"])
        x = x + linear(P, b + "mlp.fc2", F.gelu(linear(P, b + "mlp.fc1", hx)))
    hx = layer_norm(x, P["to_logits.ln.weight"], P["to_logits.ln.bias"])
    return linear(P, "to_logits.linear", hx).transpose(1, 2)


def param_shapes(c):
    W, T = c["width"], c["T"]
    s = {"content_emb.emb.weight": (c["K"] + 1, W), "content_emb.height_emb.weight": (c["h"], W),
         "content_emb.width_emb.weight": (c["w"], W), "cond_proj.weight": (W, c["cond_dim"]),
         "cond_proj.bias": (W,), "cond_slot.weight": (2, W)}

    def lin(name, i, o):
        s[name + ".weight"], s[name + ".bias"] = (o, i), (o,)

    def attn(name):
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
            lin(f"{name}.{p}", W, W)

    def ln(name):
        s[name + ".weight"], s[name + ".bias"] = (W,), (W,)

    if c["cond_self_attn"]:
        ln("cond_attn.ln")
        attn("cond_attn.attn")
    for i in range(c["depth"]):
        b = f"blocks.{i}."
        for a in ("ln1", "ln1_1"):
            s[b + a + ".emb.weight"] = (T, W)
            lin(b + a + ".linear", W, 2 * W)
        attn(b + "attn1")
        attn(b + "attn2")
        ln(b + "ln2")
        lin(b + "mlp.fc1", W, c["mlp_hidden"])
        lin(b + "mlp.fc2", c["mlp_hidden"], W)
    ln("to_logits.ln")
    lin("to_logits.linear", W, c["K"])
    return s


def random_params(c, rng):
    """Scales that keep every part of the network active: unit-ish
    embeddings, weights ~ 1/sqrt(fan-in), biases and norm affines off 0/1."""
    P = {}
    for name, shape in param_shapes(c).items():
        if name.endswith(".bias"):
            v = 0.1 * rng.standard_normal(shape)
        elif len(shape) == 1:  # a layer norm's weight
            v = 1 + 0.1 * rng.standard_normal(shape)
        elif "emb" in name.split(".")[-2] or name.startswith("cond_slot"):
            v = 0.5 * rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape) / np.sqrt(shape[1])
        P[name] = v.astype(np.float16)
    return P


def make(prefix, c, B, masked, seed):
    rng = np.random.default_rng(seed)
    P16 = random_params(c, rng)
    L, S, K = c["h"] * c["w"], c["cond_slots"], c["K"]
    tokens = rng.integers(0, K + 1, size=(B, L)).astype(np.int32)
    tokens[:, ::3] = K  # masked positions in every row
    t = np.linspace(0, c["T"] - 1, B).round().astype(np.int32)
    cond = rng.standard_normal((B, S, c["cond_dim"])).astype(np.float32)
    valid = np.ones((B, S), dtype=np.uint8)
    for b, s in masked:
        valid[b, s] = 0
    R = rng.uniform(-1, 1, size=(B, K, L)).astype(np.float32)

    P = {n: torch.tensor(v.astype(np.float64), requires_grad=True) for n, v in P16.items()}
    logits = forward(c, P, torch.tensor(tokens).long(), torch.tensor(t).long(),
                     torch.tensor(cond, dtype=torch.float64), torch.tensor(valid).bool())
    (logits * torch.tensor(R, dtype=torch.float64)).sum().backward()

    for n, v in P16.items():
        tensors[f"{prefix}/param/{n}"] = v
    tensors.update({f"{prefix}/tokens": tokens, f"{prefix}/t": t, f"{prefix}/cond": cond,
                    f"{prefix}/cond_valid": valid, f"{prefix}/R": R,
                    f"{prefix}/logits": logits.detach().numpy().astype(np.float32)})
    for n, p in P.items():
        tensors[f"{prefix}/grad/{n}"] = p.grad.numpy().astype(np.float32)
    meta[prefix + ".config"] = json.dumps(c)


def write_safetensors(path):
    header, offset = {"__metadata__": meta}, 0
    names = sorted(tensors, key=lambda n: -tensors[n].dtype.itemsize)  # widest first: aligned
    for name in names:
        a = tensors[name]
        dtype = {"float32": "F32", "float16": "F16", "int32": "I32", "uint8": "U8"}[a.dtype.name]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            a = tensors[name]
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())


meta = {"generator": "tests/golden/diffusion/make_dtx_golden.py"}

if __name__ == "__main__":
    torch.manual_seed(0)
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/diffusion/dtx.safetensors"
    make("A", {"K": 16, "h": 4, "w": 4, "width": 32, "depth": 2, "heads": 2, "mlp_hidden": 48, "cond_dim": 8,
               "cond_slots": 3, "cond_self_attn": 1, "T": 10}, B=3, masked=[(1, 2)], seed=7001)
    make("B", {"K": 11, "h": 3, "w": 5, "width": 12, "depth": 1, "heads": 3, "mlp_hidden": 36, "cond_dim": 5,
               "cond_slots": 2, "cond_self_attn": 0, "T": 7}, B=2, masked=[(0, 1)], seed=7002)
    write_safetensors(out)
