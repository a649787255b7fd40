#!/usr/bin/python3
"""PyTorch's side of bench/vq_codec.sh: the VQGAN tokenizer (taming's
VQModel: Encoder, VectorQuantizer2, Decoder), written here in plain torch
from the architecture facts of ../shared/golden/vqgan/README.md, timed
encoding (image -> tokens) and decoding (tokens -> image) at batch 1 and 16
under torch.no_grad() in float32.

    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/vq_codec_torch.py --write DIR [--ch 64] [--z 64]
    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/vq_codec_torch.py --model DIR/model.safetensors
        [--threads N] [--runs N] [--warmup N] [--only encode|decode] [--profile]

--write makes the random weights both sides run (DIR/model.safetensors, in
taming's names with the config as metadata, as vqgan_load reads it) and the
check data: DIR/check_images.f32 (16 random images [16,3,S,S]), the tokens
this model gives them (DIR/check_tokens.i32, [16,h,w]) and its decoding of
those tokens (DIR/check_decoded.f32), all raw little-endian. bench/vq_codec.c
compares its own encoding and decoding against them.

Output when timing: "#" lines to read, and for bench/vq_codec.sh
    result PASS BATCH THREADS BEST_MS MEDIAN_MS
Run with OMP_WAIT_POLICY=passive and torch.set_num_threads(--threads), which
the script does: PyTorch's best setting on two cores."""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

# The shared helpers are in bench/common/, next to this script's folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "common"))
from peer_torch import print_profile, read_safetensors, time_case, write_safetensors  # noqa: E402

CHECK_IMAGES = 16


def config(ch, z, codes, size):
    """taming's config (VQModel's ddconfig plus embed_dim, n_embed)."""
    return {"embed_dim": z, "n_embed": codes,
            "ddconfig": {"double_z": False, "z_channels": z, "resolution": size, "in_channels": 3, "out_ch": 3,
                         "ch": ch, "ch_mult": [1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [8],
                         "dropout": 0.0}}


def group_norm(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class AttnBlock(nn.Module):
    """Single-head attention over the H*W positions, 1x1 convs for q, k, v
    and the output, in the reference's bmm form."""

    def __init__(self, c):
        super().__init__()
        self.norm = group_norm(c)
        self.q, self.k, self.v = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        b, c, hh, ww = h.shape
        q = self.q(h).reshape(b, c, hh * ww).permute(0, 2, 1)       # [b, hw, c]
        k = self.k(h).reshape(b, c, hh * ww)                         # [b, c, hw]
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)         # [b, query, key]
        out = torch.bmm(v, w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # right and bottom only


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution of the encoder or decoder: its residual blocks, an
    attention block after each where the resolution asks for it, and the
    resampling (named downsample or upsample, as in the state dict)."""

    def __init__(self, cin, cout, blocks, attn, resample=None, resample_name=None):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        for _ in range(blocks):
            self.block.append(ResnetBlock(cin, cout))
            cin = cout
            if attn:
                self.attn.append(AttnBlock(cout))
        self.resample_name = resample_name
        if resample is not None:
            setattr(self, resample_name, resample(cout))

    def forward(self, h):
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h)
        return getattr(self, self.resample_name)(h) if self.resample_name else h


class Mid(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)

    def forward(self, h):
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        ch, mult, levels = d["ch"], d["ch_mult"], len(d["ch_mult"])
        self.conv_in = nn.Conv2d(d["in_channels"], ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin, res = ch, d["resolution"]
        for i in range(levels):
            last = i == levels - 1
            self.down.append(Level(cin, ch * mult[i], d["num_res_blocks"], res in d["attn_resolutions"],
                                   None if last else Downsample, None if last else "downsample"))
            cin = ch * mult[i]
            res = res if last else res // 2
        self.mid = Mid(cin)
        self.norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, d["z_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        ch, mult, levels = d["ch"], d["ch_mult"], len(d["ch_mult"])
        cin, res = ch * mult[-1], d["resolution"] // 2 ** (levels - 1)
        self.conv_in = nn.Conv2d(d["z_channels"], cin, 3, padding=1)
        self.mid = Mid(cin)
        up = []
        for i in reversed(range(levels)):
            up.insert(0, Level(cin, ch * mult[i], d["num_res_blocks"] + 1, res in d["attn_resolutions"],
                               Upsample if i else None, "upsample" if i else None))
            cin = ch * mult[i]
            res = res * 2 if i else res
        self.up = nn.ModuleList(up)  # up[0] is the finest level, run last
        self.norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, d["out_ch"], 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Quantize(nn.Module):
    """VectorQuantizer2's nearest-code search and codebook lookup."""

    def __init__(self, n_embed, dim):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, dim)

    def tokens(self, z):
        b, c, h, w = z.shape
        zf = z.permute(0, 2, 3, 1).reshape(-1, c)
        e = self.embedding.weight
        d = zf.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * zf @ e.t()
        return d.argmin(1).reshape(b, h, w)

    def lookup(self, tokens):
        return self.embedding(tokens).permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["ddconfig"]
        self.encoder, self.decoder = Encoder(d), Decoder(d)
        self.quantize = Quantize(cfg["n_embed"], cfg["embed_dim"])
        self.quant_conv = nn.Conv2d(d["z_channels"], cfg["embed_dim"], 1)
        self.post_quant_conv = nn.Conv2d(cfg["embed_dim"], d["z_channels"], 1)

    def latents(self, x):
        return self.quant_conv(self.encoder(x))

    def encode(self, x):
        return self.quantize.tokens(self.latents(x))

    def decode(self, tokens):
        return self.decoder(self.post_quant_conv(self.quantize.lookup(tokens)))


def random_model(cfg, seed):
    """PyTorch's default initialisation, GroupNorm affines moved off 1/0 (so
    a loader that ignored them would show), and a codebook drawn at the
    latents' scale, half of it from actual latents of other random images,
    so that many codes are used and nearest-code decisions are not ties."""
    torch.manual_seed(seed)
    model = VQModel(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.copy_(1 + 0.25 * torch.randn_like(m.weight))
                m.bias.copy_(0.25 * torch.randn_like(m.bias))
        size = cfg["ddconfig"]["resolution"]
        z = model.latents(torch.rand(8, 3, size, size) * 2 - 1)
        z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        n, half = cfg["n_embed"], cfg["n_embed"] // 2
        picked = z[torch.randperm(z.shape[0])[:half]]
        e = model.quantize.embedding.weight
        e[:half] = picked + 0.1 * z.std() * torch.randn_like(picked)
        e[half:] = z.mean(0) + z.std(0) * torch.randn(n - half, z.shape[1])
    return model


def write_bench_data(args):
    cfg = config(args.ch, args.z, args.codes, args.size)
    model = random_model(cfg, seed=20240611)
    os.makedirs(args.write, exist_ok=True)
    write_safetensors(os.path.join(args.write, "model.safetensors"), model.state_dict(),
                      {"config": json.dumps(cfg), "source": "bench/vq_codec_torch.py random weights"})
    torch.manual_seed(1)
    size = cfg["ddconfig"]["resolution"]
    images = torch.rand(CHECK_IMAGES, 3, size, size) * 2 - 1
    with torch.no_grad():
        tokens = model.encode(images)
        decoded = model.decode(tokens)
    images.numpy().astype("<f4").tofile(os.path.join(args.write, "check_images.f32"))
    tokens.numpy().astype("<i4").tofile(os.path.join(args.write, "check_tokens.i32"))
    decoded.numpy().astype("<f4").tofile(os.path.join(args.write, "check_decoded.f32"))
    params = sum(t.numel() for t in model.state_dict().values())
    print(f"# wrote {args.write}: {params} parameters, config {json.dumps(cfg)}; "
          f"{CHECK_IMAGES} check images use {tokens.unique().numel()} of {cfg['n_embed']} codes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", metavar="DIR", help="write the weights and check data, then exit")
    ap.add_argument("--model", metavar="PATH", help="weights written by --write (default: made anew)")
    ap.add_argument("--ch", type=int, default=64, help="base channels (without --model)")
    ap.add_argument("--z", type=int, default=64, help="z_channels and embed_dim (without --model)")
    ap.add_argument("--codes", type=int, default=512, help="codebook size (without --model)")
    ap.add_argument("--size", type=int, default=64, help="image side (without --model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", choices=["encode", "decode"])
    ap.add_argument("--profile", action="store_true", help="also print torch's profiler table per case")
    args = ap.parse_args()
    if args.write:
        write_bench_data(args)
        return

    torch.set_num_threads(args.threads)
    if args.model:
        tensors, meta = read_safetensors(args.model)
        cfg = json.loads(meta["config"])
        model = VQModel(cfg).eval()
        model.load_state_dict(tensors)
    else:
        cfg = config(args.ch, args.z, args.codes, args.size)
        model = random_model(cfg, seed=20240611)
    size, f = cfg["ddconfig"]["resolution"], 2 ** (len(cfg["ddconfig"]["ch_mult"]) - 1)
    d = cfg["ddconfig"]
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          f"model ch {d['ch']}, z {d['z_channels']}, embed {cfg['embed_dim']}, {cfg['n_embed']} codes, "
          f"{size}x{size} images")
    torch.manual_seed(2)
    for name in ["encode", "decode"]:
        if args.only and args.only != name:
            continue
        for batch in (1, 16):
            if name == "encode":
                x, fn = torch.rand(batch, 3, size, size) * 2 - 1, model.encode
            else:
                x, fn = torch.randint(0, cfg["n_embed"], (batch, size // f, size // f)), model.decode

            def run():
                with torch.no_grad():
                    fn(x)

            best, median = time_case(run, args.warmup, args.runs)
            print(f"# {name} batch {batch:2d}: best {best:9.2f} ms, median {median:9.2f} ms: "
                  f"{1e3 * batch / best:8.2f} images/s")
            print(f"result {name} {batch} {args.threads} {best:.3f} {median:.3f}", flush=True)
            if args.profile:
                print(f"# profile {name} batch {batch} ({args.runs} runs):")
                print_profile(run, args.runs, 12)


if __name__ == "__main__":
    main()
