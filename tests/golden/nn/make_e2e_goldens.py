#!/usr/bin/python3
"""Writes tests/golden/nn/e2e.safetensors: PyTorch's loss curves for the
engine's end-to-end check (tests/unit/test_nn_e2e.c).

Run with Debian's python3 (it has torch):
    /usr/bin/python3 tests/golden/nn/make_e2e_goldens.py [OUT]

Two tiny models, built from the same layers as lib/nn/layers/ and with the
same parameter names, train for a few steps of torch.optim.AdamW from fixed
weights on fixed data:

  lm    token + position embeddings -> 2 pre-LN transformer blocks (causal
        self-attention, cross-attention to embedded condition tokens with a
        key-padding mask, GELU MLP) -> layer norm -> linear head ->
        cross-entropy on the next token (one target ignored); gradients
        clipped to global norm 1.
  conv  3x3 conv -> two residual blocks (group norm, SiLU, 3x3 convs; the
        first keeps 64 channels with an identity skip, the second goes to 32
        with a 1x1 shortcut) -> strided 3x3 conv without bias, padded on the
        right and bottom only (taming's downsampling) -> group norm -> SiLU
        -> 4x4 average pool -> linear without bias -> MSE against fixed
        targets.

The sizes are chosen so that the curves are well-conditioned: run in
float32, PyTorch itself stays within 1e-6 of these float64 curves. (A first
conv net, with a 32-channel identity block in front, jumped up at step 2
and float32 PyTorch drifted 2e-4 from float64: such a curve cannot test
anything to 1e-4.)

Weights and data come from a fixed numpy generator, so the file is the same
on every run. Training runs in float64 on those float32 values: the curve is
the true one for the stored start, and what the C test measures is the
engine's float32 error (ops, composition and AdamW together).

Tensors, for each model M (lm, conv):
  M/init/<param>    the starting weights, named as the C model names them
  M/data/...        inputs and targets (I32 for ids, labels and masks)
  M/config          I32: the model's dimensions (see the functions below)
  M/hparams         F32: lr, beta1, beta2, eps, weight_decay, clip (0: none)
  M/loss            F32 [steps + 1]: the loss before each step, then after the last
  M/grad0_norm/<param>  F32 [1]: the L2 norm of its first gradient (before
                    clipping), which points at the layer when a curve is off
  M/final/<param>   two tensors' values after the last step: ones whose
                    gradient elements all stand well above float32 rounding
                    (in a deep conv kernel some do not, AdamW steps them by
                    about lr in either direction, and even float32 PyTorch
                    ends 5e-5 away from float64 there)
"""

import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20241125)
tensors = {}

STEPS = 8
LR, BETA1, BETA2, EPS, WEIGHT_DECAY = 1e-2, 0.9, 0.999, 1e-8, 0.01


def put(name, value):
    assert name not in tensors, name
    if isinstance(value, torch.Tensor):
        value = value.detach().numpy()
    value = np.asarray(value)
    value = value.astype(np.int32 if value.dtype.kind in "iub" else np.float32)
    tensors[name] = np.ascontiguousarray(value)


def init_weights(model):
    """Replaces every parameter by float32 values from the fixed generator:
    weights uniform in +-1/sqrt(fan_in) like PyTorch's default, norm scales
    near 1, biases small but not zero (so that their gradients matter)."""
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name.endswith("embed"):
            a = rng.standard_normal(shape)
        elif p.dim() == 1 and ("norm" in name or name.startswith("ln")):
            a = (1.0 + 0.1 * rng.standard_normal(shape)) if name.endswith("weight") else 0.1 * rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:])) if p.dim() > 1 else shape[0]
            a = rng.uniform(-1, 1, shape) / math.sqrt(fan_in)
        with torch.no_grad():
            p.copy_(torch.tensor(a.astype(np.float32).astype(np.float64)))


def train(prefix, model, loss_fn, clip, final_names):
    init_weights(model)
    for name, p in model.named_parameters():
        put(f"{prefix}/init/{name}", p)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                            weight_decay=WEIGHT_DECAY)
    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                put(f"{prefix}/grad0_norm/{name}", [p.grad.norm().item()])
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(loss_fn().item())
    put(f"{prefix}/loss", losses)
    put(f"{prefix}/hparams", [LR, BETA1, BETA2, EPS, WEIGHT_DECAY, clip])
    params = dict(model.named_parameters())
    for name in final_names:
        put(f"{prefix}/final/{name}", params[name])
    print(prefix, " ".join(f"{x:.6f}" for x in losses))


# ---- the transformer ----

class Attention(tnn.Module):
    def __init__(self, dim, kv_dim, heads, causal):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.q_proj = tnn.Linear(dim, dim)
        self.k_proj = tnn.Linear(kv_dim, dim)
        self.v_proj = tnn.Linear(kv_dim, dim)
        self.out_proj = tnn.Linear(dim, dim)

    def forward(self, x, kv, key_valid=None):
        B, Tq, C = x.shape
        Tk, H = kv.shape[1], self.heads
        q = self.q_proj(x).view(B, Tq, H, C // H).transpose(1, 2)
        k = self.k_proj(kv).view(B, Tk, H, C // H).transpose(1, 2)
        v = self.v_proj(kv).view(B, Tk, H, C // H).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(C // H)
        if self.causal:
            scores = scores.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool).triu(1), float("-inf"))
        if key_valid is not None:
            scores = scores.masked_fill(~key_valid[:, None, None, :], float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, Tq, C)
        return self.out_proj(out)


class MLP(tnn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = tnn.Linear(dim, hidden)
        self.fc2 = tnn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(tnn.Module):
    """lib/nn/layers/transformer.h's pre-LN block."""

    def __init__(self, dim, heads, mlp_dim, cond_dim):
        super().__init__()
        self.layer_norm1 = tnn.LayerNorm(dim)
        self.self_attn = Attention(dim, dim, heads, causal=True)
        self.layer_norm_cross = tnn.LayerNorm(dim)
        self.cross_attn = Attention(dim, cond_dim, heads, causal=False)
        self.layer_norm2 = tnn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim)

    def forward(self, x, cond, cond_valid):
        h = self.layer_norm1(x)
        x = x + self.self_attn(h, h)
        x = x + self.cross_attn(self.layer_norm_cross(x), cond, cond_valid)
        return x + self.mlp(self.layer_norm2(x))


class TinyLM(tnn.Module):
    def __init__(self, vocab, dim, heads, T, cond_vocab, cond_dim, layers):
        super().__init__()
        self.tok_embed = tnn.Parameter(torch.empty(vocab, dim))
        self.pos_embed = tnn.Parameter(torch.empty(T, dim))
        self.cond_embed = tnn.Parameter(torch.empty(cond_vocab, cond_dim))
        self.blocks = tnn.ModuleList(Block(dim, heads, 4 * dim, cond_dim) for _ in range(layers))
        self.ln_f = tnn.LayerNorm(dim)
        self.head = tnn.Linear(dim, vocab)

    def forward(self, ids, cond_ids, cond_valid):
        x = self.tok_embed[ids] + self.pos_embed[: ids.shape[1]]
        cond = self.cond_embed[cond_ids]
        for block in self.blocks:
            x = block(x, cond, cond_valid)
        return self.head(self.ln_f(x))


def make_lm():
    V, D, H, T, B, VC, CD, TC, L = 16, 32, 4, 8, 2, 5, 24, 3, 2
    put("lm/config", [V, D, H, T, B, VC, CD, TC, L])
    seq = rng.integers(0, V, (B, T + 1))
    ids, targets = seq[:, :T], seq[:, 1:].copy()
    targets[1, 3] = -1  # ignored: loss 0, no gradient, not counted in the mean
    cond_ids = rng.integers(0, VC, (B, TC))
    cond_valid = np.ones((B, TC), dtype=np.int32)
    cond_valid[1, TC - 1] = 0  # a padding key in the second sequence
    put("lm/data/ids", ids)
    put("lm/data/targets", targets)
    put("lm/data/cond_ids", cond_ids)
    put("lm/data/cond_valid", cond_valid)

    model = TinyLM(V, D, H, T, VC, CD, L)
    t_ids, t_targets = torch.tensor(ids), torch.tensor(targets)
    t_cond, t_valid = torch.tensor(cond_ids), torch.tensor(cond_valid).bool()

    def loss_fn():
        logits = model(t_ids, t_cond, t_valid)
        return F.cross_entropy(logits.reshape(-1, V), t_targets.reshape(-1), ignore_index=-1)

    train("lm", model, loss_fn, 1.0, ["blocks.1.mlp.fc1.weight", "tok_embed"])


# ---- the conv net ----

class ResBlock(tnn.Module):
    """lib/nn/layers/resblock.h's block (taming's ResnetBlock)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = tnn.GroupNorm(32, cin, eps=1e-6)
        self.conv1 = tnn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = tnn.GroupNorm(32, cout, eps=1e-6)
        self.conv2 = tnn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = tnn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class TinyConvNet(tnn.Module):
    def __init__(self, cin, c1, c2, outs):
        super().__init__()
        self.conv_in = tnn.Conv2d(cin, c1, 3, padding=1)
        self.blocks = tnn.ModuleList([ResBlock(c1, c1), ResBlock(c1, c2)])
        self.down = tnn.Conv2d(c2, c2, 3, stride=2, bias=False)
        self.norm_out = tnn.GroupNorm(32, c2, eps=1e-6)
        self.head = tnn.Linear(c2, outs, bias=False)

    def forward(self, x):
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h)
        h = F.silu(self.norm_out(self.down(F.pad(h, (0, 1, 0, 1)))))
        return self.head(F.avg_pool2d(h, h.shape[-1]).flatten(1))


def make_conv():
    B, CIN, HW, C1, C2, OUTS = 4, 3, 8, 64, 32, 10
    put("conv/config", [B, CIN, HW, C1, C2, OUTS])
    images = rng.standard_normal((B, CIN, HW, HW)).astype(np.float32)
    target = rng.standard_normal((B, OUTS)).astype(np.float32)
    put("conv/data/images", images)
    put("conv/data/target", target)

    model = TinyConvNet(CIN, C1, C2, OUTS)
    t_images, t_target = torch.tensor(images.astype(np.float64)), torch.tensor(target.astype(np.float64))

    def loss_fn():
        return F.mse_loss(model(t_images), t_target)

    train("conv", model, loss_fn, 0.0, ["norm_out.weight", "head.weight"])


def write_safetensors(path):
    header, offset = {"__metadata__": {"generator": "tests/golden/nn/make_e2e_goldens.py"}}, 0
    for name, a in tensors.items():
        dtype = {"float32": "F32", "int32": "I32"}[a.dtype.name]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in tensors.values():
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/nn/e2e.safetensors"
    make_lm()
    make_conv()
    write_safetensors(out)
