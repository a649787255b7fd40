#!/usr/bin/env bash
# vq-train on real images (issue 6): a tokenizer trained on 2000
# Fashion-MNIST images and 700 emoji stickers (Noto Color Emoji rendered
# to 32x32), 32x32 -> 8x8 tokens. Prints the held-out PSNR before and after
# training (overall from vq-train's reports, then per domain through
# vq-encode | vq-decode), codebook perplexity and use, and steps/s.
#   bash bench/vq_train_quality.sh          (about 10 minutes on 2 cores)
# Under `make bench` (KNND_BENCH_BIN set) it only says how to run it,
# unless VQ_TRAIN_QUALITY=1.
# Settings (environment): STEPS (1000), BATCH (16), FACTOR (4), CH (32),
# RES_BLOCKS (1), CODES (256), EMBED_DIM (32), LR (1e-3), RESTART_AFTER
# (50), CODEBOOK (ema or gradient), EXTRA (more vq-train options, e.g.
# "--disc-start 500"), THREADS (2), KNND_BIN (bin), KEEP (0: remove the
# work directory; 1: keep it, with compare.png, originals over reconstructions).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${KNND_BENCH_BIN:-}" ] && [ "${VQ_TRAIN_QUALITY:-0}" != 1 ]; then
	echo "vq_train_quality: skipped (about 10 minutes): bash bench/vq_train_quality.sh, or VQ_TRAIN_QUALITY=1 make bench"
	exit 0
fi
BIN=$(cd "${KNND_BIN:-$root/bin}" && pwd)
PY=/usr/bin/python3
STEPS=${STEPS:-1000} BATCH=${BATCH:-16} FACTOR=${FACTOR:-4} CH=${CH:-32} RES_BLOCKS=${RES_BLOCKS:-1}
CODES=${CODES:-256} EMBED_DIM=${EMBED_DIM:-32} LR=${LR:-1e-3} RESTART_AFTER=${RESTART_AFTER:-50}
CODEBOOK=${CODEBOOK:-ema} THREADS=${THREADS:-2} EXTRA=${EXTRA:-}
# A shared 2-core machine: spinning OpenMP threads fight whatever else
# runs (and OpenBLAS's own threads); sleeping ones cost little.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
FMNIST=/usr/share/datasets/fashion-mnist
FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
for t in vq-train vq-encode vq-decode idx-read img-read; do
	[ -x "$BIN/$t" ] || { echo "vq_train_quality: $BIN/$t is not built (make)" >&2; exit 1; }
done
[ -r "$FMNIST/train-images-idx3-ubyte.gz" ] || { echo "vq_train_quality: no $FMNIST (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
if [ ! -r "$FONT" ]; then
	SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
	$SUDO apt-get install -y -qq fonts-noto-color-emoji >/dev/null 2>&1 || true
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/knnd-vq-train-quality.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export PYTHONPATH=$root/tests/shell

# Data: Fashion-MNIST (28x28 gray, resized to 32x32 by vq-train) and emoji
# rendered at the font's bitmap size, cropped, centred on a square and
# scaled to 32x32 over white. Held out: 200 t10k images and 100 emoji.
"$BIN/idx-read" -n 2000 "$FMNIST/train-images-idx3-ubyte.gz" >fm_train.ts
"$BIN/idx-read" -n 200 "$FMNIST/t10k-images-idx3-ubyte.gz" >fm_val.ts
if [ -r "$FONT" ]; then
	"$PY" - "$FONT" <<'EOF'
import os, random, sys
import numpy as np
from PIL import Image, ImageDraw, ImageFont
font = ImageFont.truetype(sys.argv[1], 109)  # the size of its bitmaps
def render(ch):
    im = Image.new("RGBA", (136, 128), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((0, 0), ch, font=font, embedded_color=True)
    return im
missing = np.asarray(render("\U0010FFFD"))
cps = list(range(0x1F300, 0x1F650)) + list(range(0x1F680, 0x1F6D0)) + list(range(0x1F900, 0x1FA00))
random.Random(5).shuffle(cps)
for d in ("emoji/train", "emoji/val"):
    os.makedirs(d, exist_ok=True)
n = 0
for cp in cps:
    im = render(chr(cp))
    a = np.asarray(im)
    if a[..., 3].max() == 0 or np.array_equal(a, missing):
        continue
    im = im.crop(im.getbbox())
    side = max(im.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    square = square.resize((32, 32), Image.LANCZOS)
    out = Image.new("RGB", (32, 32), (255, 255, 255))
    out.paste(square, mask=square.split()[3])
    out.save(f"emoji/{'val' if n < 100 else 'train'}/{cp:05x}.png")
    n += 1
    if n == 800:
        break
EOF
	"$BIN/img-read" emoji/train/*.png >emoji_train.ts
	"$BIN/img-read" emoji/val/*.png >emoji_val.ts
	domains="fm emoji"
else
	echo "vq_train_quality: no emoji font ($FONT); Fashion-MNIST only" >&2
	: >emoji_train.ts
	domains="fm"
fi
# One shuffled training file, so that batches mix both domains from the start.
"$PY" - <<'EOF'
import random, tensor_stream
recs = [r for f in ("fm_train.ts", "emoji_train.ts") for r in tensor_stream.read(open(f, "rb"))]
random.Random(3).shuffle(recs)
with open("train.ts", "wb") as f:
    tensor_stream.write([{"id": r["id"], "image": r["image"]} for r in recs], f)
print(f"training images: {len(recs)}")
EOF
for d in $domains; do cat "${d}_val.ts"; done >val.ts

codebook=()
[ "$CODEBOOK" = ema ] && codebook=(--ema-codebook)
# shellcheck disable=SC2086
cmd=("$BIN/vq-train" -o vq.safetensors --resize 32 -f "$FACTOR" --ch "$CH" --res-blocks "$RES_BLOCKS"
     --codes "$CODES" --embed-dim "$EMBED_DIM" --batch "$BATCH" --steps "$STEPS" --lr "$LR"
     --restart-after "$RESTART_AFTER" "${codebook[@]}" --flip --buffer 4096 --val val.ts --val-count 300
     --progress-every $((STEPS / 10 > 0 ? STEPS / 10 : 1)) -t "$THREADS" $EXTRA train.ts)
echo "${cmd[*]#$BIN/}"
start=$(date +%s)
"${cmd[@]}" 2>&1 | tee train.log >&2
secs=$(($(date +%s) - start))

# Per domain, through the tools: tokens, then images back.
for d in $domains; do
	"$BIN/vq-encode" -m vq.safetensors --resize 32 -t "$THREADS" "${d}_val.ts" >"${d}_tok.ts"
	"$BIN/vq-decode" -m vq.safetensors -t "$THREADS" "${d}_tok.ts" >"${d}_rec.ts"
done

"$PY" - "$secs" "$CODES" $domains <<'EOF'
import re, sys
import numpy as np
from PIL import Image
import tensor_stream
secs, codes, domains = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
log = open("train.log").read()
val = re.findall(r"step (\d+)/\d+.*?\| val psnr ([\d.]+) perplexity ([\d.]+) codes (\d+)/", log)
speed = re.findall(r"([\d.]+) steps/s", log)
train = re.findall(r"step (\d+)/\d+: loss ([\d.]+).*?\) psnr ([\d.]+) perplexity ([\d.]+) codes (\d+)/", log)
print()
print("held-out PSNR (dB), codebook perplexity and codes used, by step (vq-train's reports):")
print(f"{'step':>6} {'train loss':>10} {'train PSNR':>10} {'val PSNR':>9} {'val ppl':>8} {'val codes':>9}")
tr = {t[0]: t for t in train}
for step, psnr, ppl, used in val:
    t = tr.get(step)
    print(f"{step:>6} {t[1] if t else '-':>10} {t[2] if t else '-':>10} {psnr:>9} {ppl:>8} {used + '/' + str(codes):>9}")
print()
print("held-out PSNR at the end by domain (vq-encode | vq-decode):")
names = {"fm": "Fashion-MNIST (t10k, 28->32)", "emoji": "emoji (unseen stickers)"}
sheet = []
for d in domains:
    x = []
    for r in tensor_stream.read(open(f"{d}_val.ts", "rb")):
        im = Image.fromarray(r["image"].squeeze(-1) if r["image"].shape[-1] == 1 else r["image"])
        x.append(np.asarray(im.convert("RGB").resize((32, 32), Image.BICUBIC), np.float64))
    recs = list(tensor_stream.read(open(f"{d}_rec.ts", "rb")))
    y = np.stack([r["image"] for r in recs]).astype(np.float64)
    x = np.stack(x)
    mse = np.mean((x - y) ** 2)
    per = [10 * np.log10(255 ** 2 / max(np.mean((a - b) ** 2), 1e-10)) for a, b in zip(x, y)]
    toks = np.concatenate([r["tokens"].ravel() for r in recs])
    counts = np.bincount(toks, minlength=codes)
    p = counts[counts > 0] / counts.sum()
    sheet.append((x[:16], y[:16]))
    print(f"  {names[d]:<30} {len(recs):4d} images  PSNR {10 * np.log10(255 ** 2 / mse):6.2f} dB "
          f"(per image: median {np.median(per):.2f})  perplexity {np.exp(-(p * np.log(p)).sum()):6.1f}  "
          f"codes {int((counts > 0).sum())}/{codes}")
# Originals above their reconstructions, 16 per domain.
rows = [np.concatenate(list(im), axis=1) for pair in sheet for im in pair]
Image.fromarray(np.concatenate(rows, axis=0).astype(np.uint8)).resize((16 * 64, len(rows) * 64), Image.NEAREST).save("compare.png")
if speed:
    print(f"\nspeed: {speed[-1]} steps/s overall ({secs} s for the run, evaluations included)")
EOF
[ "${KEEP:-0}" = 1 ] && echo "kept $WORK (compare.png: held-out originals above their reconstructions)"
exit 0
