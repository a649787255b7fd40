"""PyTorch's side of bench/clip_train.sh: the CLIP clip-train builds by
default (ViT 32x32/4 and a causal text transformer, 4 pre-LN blocks of
width 128 each, QuickGELU, embedding 128), trained with the symmetric
contrastive loss and AdamW on random batches; prints steps per second."""
import argparse, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--vocab", type=int, default=1514)
p.add_argument("--len", type=int, default=8, help="tokens per caption, both ends included")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(1)

class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)

class Block(nn.Module):
    def __init__(self, w, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(w), nn.LayerNorm(w)
        self.attn = nn.MultiheadAttention(w, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(w, 4 * w), QuickGELU(), nn.Linear(4 * w, w))
    def forward(self, x, mask=None):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))

class CLIP(nn.Module):
    def __init__(self, res=32, patch=4, w=128, layers=4, ctx=32, vocab=1514, embed=128):
        super().__init__()
        heads = max(1, w // 64)
        self.conv = nn.Conv2d(3, w, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.vpos = nn.Parameter(torch.randn((res // patch) ** 2 + 1, w) * w ** -0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(w), nn.LayerNorm(w)
        self.vblocks = nn.ModuleList(Block(w, heads) for _ in range(layers))
        self.vproj = nn.Linear(w, embed, bias=False)
        self.tok = nn.Embedding(vocab, w)
        self.tpos = nn.Parameter(torch.randn(ctx, w) * 0.01)
        self.tblocks = nn.ModuleList(Block(w, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(w)
        self.tproj = nn.Linear(w, embed, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    def image(self, x):
        x = self.conv(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1) + self.vpos
        x = self.ln_pre(x)
        for b in self.vblocks:
            x = b(x)
        return self.vproj(self.ln_post(x[:, 0]))
    def text(self, ids):
        T = int(ids.argmax(1).max()) + 1  # as clip-train: up to the batch's last end token
        ids = ids[:, :T]
        x = self.tok(ids) + self.tpos[:T]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for b in self.tblocks:
            x = b(x, mask)
        x = self.ln_final(x)
        return self.tproj(x[torch.arange(x.shape[0]), ids.argmax(1)])

m = CLIP(vocab=a.vocab)
decay = [q for n, q in m.named_parameters() if q.dim() >= 2 and "pos" not in n and "tok" not in n]
rest = [q for n, q in m.named_parameters() if not (q.dim() >= 2 and "pos" not in n and "tok" not in n)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.2}, {"params": rest, "weight_decay": 0}],
                        lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
B = a.batch
pix = torch.randn(B, 3, 32, 32)
ids = torch.zeros(B, 32, dtype=torch.long)
g = torch.Generator().manual_seed(2)
for i in range(B):
    n = a.len
    ids[i, 0] = a.vocab - 2
    ids[i, 1:n - 1] = torch.randint(0, a.vocab - 2, (n - 2,), generator=g)
    ids[i, n - 1] = a.vocab - 1
labels = torch.arange(B)

def step():
    img = F.normalize(m.image(pix), dim=-1)
    txt = F.normalize(m.text(ids), dim=-1)
    logits = m.logit_scale.exp() * img @ txt.t()
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        m.logit_scale.clamp_(0, math.log(100))

for _ in range(a.warmup):
    step()
t0 = time.perf_counter()
for _ in range(a.steps):
    step()
print(f"{a.steps / (time.perf_counter() - t0):.4f}")
