#!/usr/bin/python3
"""PyTorch's side of bench/clip_towers.sh: CLIP ViT-B/32's two towers, written
in plain torch the way the reference (openai/CLIP clip/model.py) builds them
(nn.MultiheadAttention over [T, B, C], pre-LN residual blocks, QuickGELU, an
additive causal mask for the text), with random weights, timed at batch 1
and 32 under torch.inference_mode().

The texts are made like bench/clip_towers.c's (SOT, 8 to 24 tokens, EOT,
padding; "text77" has one text of the full context per batch). The
reference runs all 77 positions whatever the texts, and so does this.

Output: lines starting with "#" for people, and for bench/clip_towers.sh
    result TOWER BATCH BEST_MS MEDIAN_MS GFLOP POSITIONS
(GFLOP: the matrix products computed, here always at 77 text positions).
Run with OMP_WAIT_POLICY=passive and torch.set_num_threads(--threads), which
the script does: PyTorch's best setting on two cores."""
import argparse
import os
import random
import sys

import torch
from torch import nn

# The shared helpers are in bench/common/, next to this script's folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "common"))
from peer_torch import time_case  # noqa: E402

VISION = dict(width=768, layers=12, heads=12, patch=32, resolution=224)
TEXT = dict(width=512, layers=12, heads=8, context=77, vocab=49408)
EMBED = 512


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads, mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), QuickGELU(), nn.Linear(4 * width, width))
        self.ln_2 = nn.LayerNorm(width)
        self.mask = mask

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.mask)[0]
        return x + self.mlp(self.ln_2(x))


class Vision(nn.Module):
    def __init__(self, width, layers, heads, patch, resolution):
        super().__init__()
        grid = resolution // patch
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * 0.02)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) * 0.02)
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, EMBED) * 0.02)

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)                   # [B, grid^2, width]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)                             # [T, B, width]
        x = self.blocks(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class Text(nn.Module):
    def __init__(self, width, layers, heads, context, vocab):
        super().__init__()
        mask = torch.full((context, context), float("-inf")).triu_(1)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(context, width) * 0.01)
        self.blocks = nn.Sequential(*[Block(width, heads, mask) for _ in range(layers)])
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, EMBED) * 0.02)

    def forward(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.blocks(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection


def make_texts(batch, full, rng):
    ids = torch.zeros(batch, TEXT["context"], dtype=torch.long)
    for b in range(batch):
        n = TEXT["context"] - 2 if full and b == batch - 1 else rng.randint(8, 24)
        ids[b, 0] = 49406
        ids[b, 1:n + 1] = torch.tensor([rng.randint(1, 49000) for _ in range(n)])
        ids[b, n + 1] = 49407
    return ids


def tower_gflop(width, layers, heads, batch, positions):
    n = batch * positions
    per_layer = 2 * n * width * width * 4 + 2 * n * width * 4 * width * 2 + 4 * batch * positions * positions * width
    return per_layer * layers / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", choices=["vision", "text", "text77"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = random.Random(0)
    print("# torch %s, %d threads, OMP_WAIT_POLICY=%s" % (torch.__version__, torch.get_num_threads(),
                                                          os.environ.get("OMP_WAIT_POLICY", "(unset)")))
    vision = Vision(**VISION).eval()
    text = Text(**TEXT).eval()
    res, ctx = VISION["resolution"], TEXT["context"]
    for name in ["vision", "text", "text77"]:
        if args.only and args.only != name:
            continue
        for batch in (1, 32):
            if name == "vision":
                x = torch.rand(batch, 3, res, res) * 2 - 1
                model, positions = vision, (res // VISION["patch"]) ** 2 + 1
                gflop = (tower_gflop(VISION["width"], VISION["layers"], VISION["heads"], batch, positions)
                         + 2.0 * batch * (positions - 1) * 3 * VISION["patch"] ** 2 * VISION["width"] / 1e9
                         + 2.0 * batch * VISION["width"] * EMBED / 1e9)
            else:
                x = make_texts(batch, name == "text77", rng)
                model, positions = text, ctx
                gflop = (tower_gflop(TEXT["width"], TEXT["layers"], TEXT["heads"], batch, positions)
                         + 2.0 * batch * TEXT["width"] * EMBED / 1e9)

            def run():
                with torch.inference_mode():
                    model(x)

            best, median = time_case(run, args.warmup, args.runs)
            unit = "images" if name == "vision" else "texts"
            print("# %-6s batch %2d: best %8.2f ms, median %8.2f ms: %7.2f %s/s, %6.1f GFLOP/s, %d positions"
                  % (name, batch, best, median, 1e3 * batch / best, unit, gflop / best * 1e3, positions))
            print("result %s %d %.3f %.3f %.4f %d" % (name, batch, best, median, gflop, positions), flush=True)


if __name__ == "__main__":
    main()
