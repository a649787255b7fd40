#!/usr/bin/python3
"""PyTorch's side of bench/nn_blocks.sh: the same two blocks as
bench/nn_blocks.c, timed the same way (warm-up, then best and median of
RUNS), on the CPU with THREADS threads.

    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/nn_blocks_torch.py [--runs N]
        [--warmup N] [--threads N] [--only transformer|conv] [--profile]

Forward-only passes run under torch.no_grad(); forward+backward passes run
autograd from a fixed output gradient to the gradients of the input, the
condition and every parameter (set to None before each pass, as
optimizer.zero_grad() does). --profile prints torch.autograd.profiler's
table of the operators each pass spends its time in.

Output: "#" lines to read, and "result BLOCK PASS BEST_MS MEDIAN_MS GFLOP"
lines for bench/nn_blocks.sh (FLOPs counted as in nn_blocks.c)."""

import argparse
import math
import os
import sys

import torch
import torch.nn as tnn
import torch.nn.functional as F

# The shared helpers are in bench/common/, next to this script's folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "common"))
from peer_torch import print_profile, time_case  # noqa: E402

TB, TT, TD, TH, TC, TCD, TMLP = 8, 256, 512, 8, 11, 512, 4 * 512
CB, CC, CHW = 8, 128, 32


class Attention(tnn.Module):
    def __init__(self, dim, kv_dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = tnn.Linear(dim, dim)
        self.k_proj = tnn.Linear(kv_dim, dim)
        self.v_proj = tnn.Linear(kv_dim, dim)
        self.out_proj = tnn.Linear(dim, dim)

    def forward(self, x, kv):
        B, Tq, C = x.shape
        Tk, H = kv.shape[1], self.heads
        q = self.q_proj(x).view(B, Tq, H, C // H).transpose(1, 2)
        k = self.k_proj(kv).view(B, Tk, H, C // H).transpose(1, 2)
        v = self.v_proj(kv).view(B, Tk, H, C // H).transpose(1, 2)
        # torch 1.13 has no fused CPU attention: this is what a model writes
        att = torch.softmax(q @ k.transpose(-1, -2) * (1 / math.sqrt(C // H)), dim=-1)
        return self.out_proj((att @ v).transpose(1, 2).reshape(B, Tq, C))


class Block(tnn.Module):
    """lib/nn/layers/transformer.h's pre-LN block."""

    def __init__(self):
        super().__init__()
        self.layer_norm1 = tnn.LayerNorm(TD)
        self.self_attn = Attention(TD, TD, TH)
        self.layer_norm_cross = tnn.LayerNorm(TD)
        self.cross_attn = Attention(TD, TCD, TH)
        self.layer_norm2 = tnn.LayerNorm(TD)
        self.fc1 = tnn.Linear(TD, TMLP)
        self.fc2 = tnn.Linear(TMLP, TD)

    def forward(self, x, cond):
        h = self.layer_norm1(x)
        x = x + self.self_attn(h, h)
        x = x + self.cross_attn(self.layer_norm_cross(x), cond)
        return x + self.fc2(F.gelu(self.fc1(self.layer_norm2(x))))


class ResBlock(tnn.Module):
    """lib/nn/layers/resblock.h's block with equal channel counts."""

    def __init__(self):
        super().__init__()
        self.norm1 = tnn.GroupNorm(32, CC, eps=1e-6)
        self.conv1 = tnn.Conv2d(CC, CC, 3, padding=1)
        self.norm2 = tnn.GroupNorm(32, CC, eps=1e-6)
        self.conv2 = tnn.Conv2d(CC, CC, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


def transformer_gflop():
    N, NC, Dh = TB * TT, TB * TC, TD // TH
    return (2 * N * TD * TD * 4 + 2 * N * TD * TD * 2 + 2 * NC * TCD * TD * 2 + 2 * N * TD * TMLP * 2
            + 4 * TB * TH * TT * TT * Dh + 4 * TB * TH * TT * TC * Dh) / 1e9


def conv_gflop():
    return 2 * 2 * CB * CC * CHW * CHW * CC * 9 / 1e9


def make(name):
    torch.manual_seed(0)
    if name == "transformer":
        model, inputs = Block(), [torch.randn(TB, TT, TD), torch.randn(TB, TC, TCD)]
        return model, inputs, torch.randn(TB, TT, TD), transformer_gflop()
    model, inputs = ResBlock(), [torch.randn(CB, CC, CHW, CHW)]
    return model, inputs, torch.randn(CB, CC, CHW, CHW), conv_gflop()


def one_pass(model, inputs, dout, backward):
    if not backward:
        with torch.no_grad():
            model(*inputs)
        return
    model.zero_grad(set_to_none=True)
    for t in inputs:
        t.grad = None
    model(*inputs).backward(dout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["transformer", "conv"])
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")

    for name in ["transformer", "conv"]:
        if args.only and args.only != name:
            continue
        model, inputs, dout, fwd_gflop = make(name)
        for backward in (0, 1):
            pass_name = "forward+backward" if backward else "forward"
            for t in inputs:
                t.requires_grad_(bool(backward))

            def run():
                one_pass(model, inputs, dout, backward)

            best, median = time_case(run, args.warmup, args.runs)
            gflop = fwd_gflop * (3 if backward else 1)
            print(f"# {name:11s} {pass_name:16s} best {best:8.2f} ms  median {median:8.2f} ms  "
                  f"{gflop / (best / 1e3):6.1f} GFLOP/s")
            print(f"result {name} {pass_name} {best:.3f} {median:.3f} {gflop:.4f}")
            if args.profile:
                print(f"# profile {name} {pass_name} ({args.runs} runs):")
                print_profile(run, args.runs, 15)


if __name__ == "__main__":
    main()
