#!/usr/bin/env bash
# clip-train against PyTorch (CPU) training the same CLIP: the default
# model of clip-train (ViT 32x32/4 and a causal text transformer, 4 blocks
# of width 128 each, embedding 128, 1.8M parameters), batch 128, AdamW,
# symmetric contrastive loss; captions of 6 words that the learned
# vocabulary turns into 8 tokens with both ends, on both sides. Prints
# steps per second and ours/torch for 1 and 2 threads.
#   bash bench/clip_train.sh     (about 3 minutes on 2 cores)
# Settings: BENCH_STEPS (20 timed steps after 5), BENCH_THREADS ("1 2"),
# KNND_BIN (bin), KNND_PYTHON (/usr/bin/python3, which has torch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KNND_BIN:-$root/bin}
PY=${KNND_PYTHON:-/usr/bin/python3}
STEPS=${BENCH_STEPS:-20}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
[ -x "$BIN/clip-train" ] || { echo "clip_train: $BIN/clip-train is not built (make)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/knnd-clip-train-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
PYTHONPATH=$root/tests/shell "$PY" - "$tmp/data.ts" <<'PYDATA'
import sys, numpy as np, tensor_stream
rng = np.random.default_rng(1)
words = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(60)]
recs = [{"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
         "text": " ".join(rng.choice(words, 6))} for _ in range(1024)]
tensor_stream.write(recs, open(sys.argv[1], "wb"))
PYDATA
have_torch=1
"$PY" -c 'import torch' 2>/dev/null || have_torch=0
echo "clip_train: default clip-train model, batch 128, $STEPS timed steps (steps/s; higher is better)"
for t in ${BENCH_THREADS:-1 2}; do
	rm -f "$tmp"/m.* "$tmp/log"
	"$BIN/clip-train" -o "$tmp/m.safetensors" --threads "$t" --steps $((STEPS + 5)) --progress-every 5 \
		--save-every 0 --log "$tmp/log" "$tmp/data.ts" 2>"$tmp/err"
	vocab=$(sed -n 's/.*vocabulary \([0-9]*\).*/\1/p' "$tmp/err" | head -1)
	ours=$("$PY" -c "
import json, sys
rows = [json.loads(l) for l in open('$tmp/log') if 'steps_per_s' in l]
t5 = 5 / rows[0]['steps_per_s']; tn = rows[-1]['step'] / rows[-1]['steps_per_s']
print(f'{(rows[-1][\"step\"] - 5) / (tn - t5):.4f}')")
	if [ "$have_torch" = 1 ]; then
		torch=$(OMP_NUM_THREADS=$t "$PY" "$root/bench/clip_train_torch.py" --threads "$t" --steps "$STEPS" --warmup 5 --vocab "$vocab")
		ratio=$("$PY" -c "print(f'{$ours / $torch:.2f}')")
		printf '  %d thread(s): ours %s, torch %s steps/s: ours/torch %sx\n' "$t" "$ours" "$torch" "$ratio"
	else
		printf '  %d thread(s): ours %s steps/s (no torch here)\n' "$t" "$ours"
	fi
done
