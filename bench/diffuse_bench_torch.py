#!/usr/bin/python3
"""PyTorch's side of bench/diffuse_bench.sh: the discrete backbone's denoising
transformer (the architecture of lib/diffusion/discrete_transformer.h's
header comment, written here in plain torch) with VQ-Diffusion's
mask-and-replace diffusion (the schedule, q(x_t|x_0), the posterior, the
variational-bound loss with the auxiliary x0 loss, truncation and the
Gumbel reverse step, as ../shared/golden/vqdiffusion/README.md describes
them), timed training (one step = q_sample, forward, loss, backward, AdamW)
and sampling (a chain of reverse steps from all-mask), CPU, float32.

    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/diffuse_bench_torch.py --write DIR [config options]
    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/diffuse_bench_torch.py --model DIR/model.safetensors
        [--threads N] [--runs N] [--warmup N] [--steps N] [--only train|sample] [--profile]

--write makes the random weights both sides run (DIR/model.safetensors, in
our parameter names, the config as JSON metadata) and the check data for
bench/diffuse_bench.c, raw little-endian: check_tokens.i32 [B, L] (x_t),
check_t.i32 [B], check_cond.f32 [B, S, D], check_logits.f32 [B, K, L] (this
model's logits for them), check_x0.i32 [B, L] and check_loss.f32 [1] (the
training loss of x_0 at those t with that x_t, aux weight 5e-4, adaptive).

Output when timing: "#" lines to read, and for bench/diffuse_bench.sh
    result CASE BATCH THREADS BEST_MS MEDIAN_MS STEPS
(train: STEPS 1, ms per training step; sample: ms for the chain of STEPS
reverse steps). Run with OMP_WAIT_POLICY=passive and torch.set_num_threads
(--threads), which the script does."""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The shared helpers are in bench/common/, next to this script's folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "common"))
from peer_torch import print_profile, read_safetensors, time_case, write_safetensors  # noqa: E402

DEVICE = "cpu"  # --device
CHECK_ROWS = 2
LN_EPS = 1e-5
LOG_MIN = -70.0


def default_config(a):
    return {"K": a.codes, "h": a.grid, "w": a.grid, "width": a.width, "depth": a.depth, "heads": a.heads,
            "mlp_hidden": 4 * a.width, "cond_dim": a.cond_dim, "cond_slots": a.k + 1,
            "cond_self_attn": int(a.cond_self_attn), "T": a.T}


# ---- the network ----

class MHA(nn.Module):
    """Multi-head attention with {q,k,v,out}_proj, keys and values from kv
    (x itself for self-attention), key_valid [B, Tk] masking keys."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x, kv, key_valid=None):
        B, Tq, C = x.shape
        Tk, H = kv.shape[1], self.heads
        q = self.q_proj(x).view(B, Tq, H, C // H).transpose(1, 2)
        k = self.k_proj(kv).view(B, Tk, H, C // H).transpose(1, 2)
        v = self.v_proj(kv).view(B, Tk, H, C // H).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) * (C // H) ** -0.5
        if key_valid is not None:
            s = s.masked_fill(~key_valid.bool()[:, None, None, :], float("-inf"))
        out = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, Tq, C)
        return self.out_proj(out)


class AdaLN(nn.Module):
    """layernorm(x) * (1 + scale_t) + shift_t, [scale_t, shift_t] =
    linear(silu(emb(t))): VQ-Diffusion's AdaLayerNorm with a learned table."""

    def __init__(self, dim, T):
        super().__init__()
        self.emb = nn.Embedding(T, dim)
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x, t):
        scale, shift = self.linear(F.silu(self.emb(t))).unsqueeze(1).chunk(2, dim=2)
        return F.layer_norm(x, x.shape[-1:], eps=LN_EPS) * (1 + scale) + shift


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        W = c["width"]
        self.ln1, self.ln1_1 = AdaLN(W, c["T"]), AdaLN(W, c["T"])
        self.attn1, self.attn2 = MHA(W, c["heads"]), MHA(W, c["heads"])
        self.ln2 = nn.LayerNorm(W, eps=LN_EPS)
        self.mlp = MLP(W, c["mlp_hidden"])

    def forward(self, x, t, cond, cond_valid):
        h = self.ln1(x, t)
        x = x + self.attn1(h, h)
        x = x + self.attn2(self.ln1_1(x, t), cond, cond_valid)
        return x + self.mlp(self.ln2(x))


class ContentEmb(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.emb = nn.Embedding(c["K"] + 1, c["width"])
        self.height_emb = nn.Embedding(c["h"], c["width"])
        self.width_emb = nn.Embedding(c["w"], c["width"])


class CondAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln = nn.LayerNorm(c["width"], eps=LN_EPS)
        self.attn = MHA(c["width"], c["heads"])


class ToLogits(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln = nn.LayerNorm(c["width"], eps=LN_EPS)
        self.linear = nn.Linear(c["width"], c["K"])


class DiscreteTransformer(nn.Module):
    """tokens [B, L], t [B], cond [B, S, D] -> logits [B, K, L]."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.content_emb = ContentEmb(c)
        self.cond_proj = nn.Linear(c["cond_dim"], c["width"])
        self.cond_slot = nn.Embedding(2, c["width"])
        if c["cond_self_attn"]:
            self.cond_attn = CondAttn(c)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["depth"]))
        self.to_logits = ToLogits(c)
        pos = torch.arange(c["h"] * c["w"])
        self.register_buffer("rows", pos // c["w"], persistent=False)
        self.register_buffer("cols", pos % c["w"], persistent=False)

    def forward(self, tokens, t, cond, cond_valid=None):
        e = self.content_emb
        x = e.emb(tokens) + e.height_emb(self.rows) + e.width_emb(self.cols)
        S = cond.shape[1]
        slot = torch.ones(S, dtype=torch.long)
        slot[0] = 0
        y = self.cond_proj(cond) + self.cond_slot(slot)
        if self.c["cond_self_attn"]:
            h = self.cond_attn.ln(y)
            y = y + self.cond_attn.attn(h, h, cond_valid)
        for b in self.blocks:
            x = b(x, t, y, cond_valid)
        return self.to_logits.linear(self.to_logits.ln(x)).transpose(1, 2)


def random_model(c, seed):
    """normal(0, 0.02) weights and embeddings, and biases and norm affines
    moved off 0/1, so that a loader that dropped or swapped any of them
    would show in the logits."""
    torch.manual_seed(seed)
    model = DiscreteTransformer(c)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if isinstance(modules[name.rsplit(".", 1)[0]], nn.LayerNorm):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn_like(p))
            else:
                p.copy_(0.02 * torch.randn_like(p))
    return model


# ---- mask-and-replace diffusion (VQ-Diffusion's alpha1 schedule, x0 parametrisation) ----

def log_1_min_a(a):
    return torch.log(1 - a.exp() + 1e-40)


def log_add_exp(a, b):
    m = torch.max(a, b)
    return m + torch.log(torch.exp(a - m) + torch.exp(b - m))


class MaskDiffusion:
    def __init__(self, K, T, L, aux_weight=5e-4, adaptive_aux=True):
        self.K, self.C, self.T, self.L = K, K + 1, T, L
        self.aux_weight, self.adaptive_aux = aux_weight, adaptive_aux
        att = np.arange(0, T) / (T - 1) * (0.000009 - 0.99999) + 0.99999
        att = np.concatenate(([1], att))
        at = att[1:] / att[:-1]
        ctt = np.arange(0, T) / (T - 1) * (0.99999 - 0.000009) + 0.000009
        ctt = np.concatenate(([0], ctt))
        ct = 1 - (1 - ctt[1:]) / (1 - ctt[:-1])
        bt = (1 - at - ct) / K
        att = np.concatenate((att[1:], [1]))
        ctt = np.concatenate((ctt[1:], [0]))
        btt = (1 - att - ctt) / K
        with np.errstate(divide="ignore"):  # log 0 = -inf at entry T, as the reference
            logs = [torch.tensor(np.log(v)).float() for v in (at, bt, ct, att, btt, ctt)]
        self.log_at, self.log_bt, self.log_ct, self.log_cumprod_at, self.log_cumprod_bt, self.log_cumprod_ct = logs
        self.log_1_min_ct = log_1_min_a(self.log_ct)
        self.log_1_min_cumprod_ct = log_1_min_a(self.log_cumprod_ct)

    def log_onehot(self, x):
        return torch.log(F.one_hot(x, self.C).permute(0, 2, 1).float().clamp(min=1e-30))

    @staticmethod
    def take(a, t):
        return a[t].view(-1, 1, 1)

    def q_pred(self, log_x0, t):
        t = (t + (self.T + 1)) % (self.T + 1)
        return torch.cat([
            log_add_exp(log_x0[:, :-1] + self.take(self.log_cumprod_at, t), self.take(self.log_cumprod_bt, t)),
            log_add_exp(log_x0[:, -1:] + self.take(self.log_1_min_cumprod_ct, t),
                        self.take(self.log_cumprod_ct, t))], dim=1)

    def q_pred_one_timestep(self, log_xt, t):
        return torch.cat([
            log_add_exp(log_xt[:, :-1] + self.take(self.log_at, t), self.take(self.log_bt, t)),
            log_add_exp(log_xt[:, -1:] + self.take(self.log_1_min_ct, t), self.take(self.log_ct, t))], dim=1)

    def q_posterior(self, log_x0, log_xt, t):
        B, K, L = log_x0.shape[0], self.K, log_x0.shape[2]
        mask = (log_xt.argmax(1) == K).unsqueeze(1)
        log_one = torch.zeros(B, 1, 1)
        log_zero = torch.log(log_one + 1e-30).expand(-1, -1, L)
        log_qt = self.q_pred(log_xt, t)[:, :-1]
        log_qt = (~mask) * log_qt + mask * self.take(self.log_cumprod_ct, t).expand(-1, K, -1)
        log_qt1 = torch.cat((self.q_pred_one_timestep(log_xt, t)[:, :-1], log_zero), dim=1)
        ct_vector = torch.cat((self.take(self.log_ct, t).expand(-1, K, -1), log_one.expand(-1, -1, 1)), dim=1)
        log_qt1 = (~mask) * log_qt1 + mask * ct_vector
        q = torch.cat((log_x0[:, :-1] - log_qt, log_zero), dim=1)
        q_lse = torch.logsumexp(q, dim=1, keepdim=True)
        q = q - q_lse
        return torch.clamp(self.q_pred(q, t - 1) + log_qt1 + q_lse, LOG_MIN, 0)

    def predict_start(self, logits):
        lp = F.log_softmax(logits.double(), dim=1).float()
        return torch.clamp(F.pad(lp, (0, 0, 0, 1), value=LOG_MIN), LOG_MIN, 0)

    def sample(self, log_p):
        u = torch.rand_like(log_p)
        return (-torch.log(-torch.log(u + 1e-30) + 1e-30) + log_p).argmax(dim=1)

    @staticmethod
    def kl(a, b):
        return (a.exp() * (a - b)).sum(dim=1)

    def train_loss(self, x0, xt, t, logits):
        """VQ-Diffusion's _train_loss (uniform t, pt = 1/T, mask weight
        [1, 1]), summed over rows, divided by B*L."""
        log_x0, log_xt = self.log_onehot(x0), self.log_onehot(xt)
        recon = self.predict_start(logits)
        model = self.q_posterior(recon, log_xt, t)
        true = self.q_posterior(log_x0, log_xt, t)
        kl = self.kl(true, model).sum(1)
        nll = -(log_x0.exp() * model).sum(1).sum(1)
        first = (t == 0).float()
        pt = 1.0 / self.T
        kl_loss = first * nll + (1 - first) * kl
        loss = kl_loss / pt
        if self.aux_weight:
            kl_aux = self.kl(log_x0[:, :-1], recon[:, :-1]).sum(1)
            aux = first * nll + (1 - first) * kl_aux
            w = (1 - t / self.T) + 1.0 if self.adaptive_aux else 1.0
            loss = loss + w * self.aux_weight * aux / pt
        return loss.sum() / (x0.shape[0] * x0.shape[1])

    @staticmethod
    def truncate_mass(log_p, r):
        """'top<r>r': keep the top class and every class whose preceding
        probability mass is < r, -70 elsewhere."""
        sorted_p, idx = torch.sort(log_p, 1, descending=True)
        keep = sorted_p.exp().cumsum(dim=1) < r
        keep = torch.cat((torch.ones_like(keep[:, :1]), keep[:, :-1]), dim=1)
        keep = keep.gather(1, idx.argsort(1))
        return torch.where(keep, log_p, torch.full_like(log_p, LOG_MIN))


def random_inputs(c, B, seed):
    """x0 tokens, steps t and CLIP-like condition vectors (unit length),
    drawn on the CPU (the same numbers for every device) and moved."""
    g = torch.Generator().manual_seed(seed)
    L = c["h"] * c["w"]
    x0 = torch.randint(0, c["K"], (B, L), generator=g, device="cpu")
    t = torch.randint(0, c["T"], (B,), generator=g, device="cpu")
    cond = torch.randn(B, c["cond_slots"], c["cond_dim"], generator=g, device="cpu")
    return x0.to(DEVICE), t.to(DEVICE), F.normalize(cond, dim=-1).to(DEVICE)


def write_bench_data(args):
    c = default_config(args)
    model = random_model(c, seed=20240707)
    os.makedirs(args.write, exist_ok=True)
    write_safetensors(os.path.join(args.write, "model.safetensors"), model.state_dict(),
                      {"config": json.dumps(c), "source": "bench/diffuse_bench_torch.py random weights"})
    md = MaskDiffusion(c["K"], c["T"], c["h"] * c["w"])
    x0, t, cond = random_inputs(c, CHECK_ROWS, seed=1)
    t[0], t[1] = 0, c["T"] // 2  # the loss's first-step branch and an ordinary step
    torch.manual_seed(3)
    with torch.no_grad():
        xt = md.sample(md.q_pred(md.log_onehot(x0), t))
        logits = model(xt, t, cond)
        loss = md.train_loss(x0, xt, t, logits)
    d = args.write
    xt.numpy().astype("<i4").tofile(os.path.join(d, "check_tokens.i32"))
    t.numpy().astype("<i4").tofile(os.path.join(d, "check_t.i32"))
    cond.numpy().astype("<f4").tofile(os.path.join(d, "check_cond.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(d, "check_logits.f32"))
    x0.numpy().astype("<i4").tofile(os.path.join(d, "check_x0.i32"))
    np.array([loss.item()], dtype="<f4").tofile(os.path.join(d, "check_loss.f32"))
    params = sum(p.numel() for p in model.parameters())
    print(f"# wrote {d}: {params / 1e6:.1f} M parameters, config {json.dumps(c)}; check loss {loss.item():.6f}")


def sync():
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", metavar="DIR", help="write the weights and check data, then exit")
    ap.add_argument("--model", metavar="PATH", help="weights written by --write (default: made anew)")
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--grid", type=int, default=16, help="token grid side")
    ap.add_argument("--codes", type=int, default=1024)
    ap.add_argument("--k", type=int, default=10, help="neighbours (condition slots k + 1)")
    ap.add_argument("--cond-dim", type=int, default=512)
    ap.add_argument("--cond-self-attn", type=int, default=0, choices=[0, 1])
    ap.add_argument("--T", type=int, default=100, help="diffusion steps")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100, help="reverse steps per timed sampling chain")
    ap.add_argument("--truncation", type=float, default=0.86, help="'top<r>r' truncation; 1: none")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="timed training steps")
    ap.add_argument("--sample-runs", type=int, default=1, help="timed sampling chains per batch")
    ap.add_argument("--warmup", type=int, default=1, help="untimed training steps, and one-step chains")
    ap.add_argument("--only", choices=["train", "sample"])
    ap.add_argument("--profile", action="store_true", help="also print torch's profiler table per case")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (timing only; needs torch >= 2.0)")
    args = ap.parse_args()
    if args.write:
        write_bench_data(args)
        return
    global DEVICE
    if args.device != "cpu":
        DEVICE = args.device
        torch.set_default_device(DEVICE)
        torch.backends.cuda.matmul.allow_tf32 = False  # true fp32, as our CUDA backend

    torch.set_num_threads(args.threads)
    if args.model:
        tensors, meta = read_safetensors(args.model)
        c = json.loads(meta["config"])
        model = DiscreteTransformer(c)
        model.load_state_dict(tensors)
    else:
        c = default_config(args)
        model = random_model(c, seed=20240707)
    L = c["h"] * c["w"]
    md = MaskDiffusion(c["K"], c["T"], L)
    print(f"# torch {torch.__version__} on {DEVICE}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; config {json.dumps(c)}")

    cases = []
    if args.only in (None, "train"):
        x0, t, cond = random_inputs(c, args.train_batch, seed=2)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

        def train_step(x0=x0, t=t, cond=cond):
            model.train()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                xt = md.sample(md.q_pred(md.log_onehot(x0), t))
            loss = md.train_loss(x0, xt, t, model(xt, t, cond))
            loss.backward()
            opt.step()
            return loss.item()

        cases.append(("train", args.train_batch, 1, train_step))
    if args.only in (None, "sample"):
        steps = min(args.steps, c["T"])
        for B in (1, 8):
            _, _, cond = random_inputs(c, B, seed=4)

            def sample_chain(B=B, cond=cond, steps=steps):
                """steps reverse steps from all-mask at t = T-1, T-2, ...:
                x0 prediction, truncation, posterior, Gumbel draw."""
                model.eval()
                with torch.no_grad():
                    x = torch.full((B, L), c["K"], dtype=torch.long)
                    for s in range(steps):
                        t = torch.full((B,), c["T"] - 1 - s, dtype=torch.long)
                        recon = md.predict_start(model(x, t, cond))
                        if args.truncation < 1:
                            recon = md.truncate_mass(recon, args.truncation)
                        x = md.sample(md.q_posterior(recon, md.log_onehot(x), t))
                return x

            cases.append(("sample", B, steps, sample_chain))

    for name, B, steps, fn in cases:
        if name == "train":
            best, median = time_case(fn, args.warmup, args.runs, sync)
        else:  # a chain's warm-up is one reverse step, as ours
            for _ in range(args.warmup):
                fn(steps=1)
            best, median = time_case(fn, 0, args.sample_runs, sync)
        what = "step" if name == "train" else f"{steps} steps"
        print(f"# {name} batch {B}: best {best:10.1f} ms, median {median:10.1f} ms per {what}: "
              + (f"{1e3 / best:.3f} steps/s" if name == "train" else f"{best / 1e3 / B:.3f} s per image"))
        print(f"result {name} {B} {args.threads} {best:.3f} {median:.3f} {steps}", flush=True)
        if args.profile:
            print(f"# profile {name} batch {B} (one run):")
            print_profile(fn, 1, 14)


if __name__ == "__main__":
    main()
