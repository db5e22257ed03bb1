#!/usr/bin/env bash
# GPU figures of the CUDA issue in one run, whyxray and PyTorch + open_clip side by side on
# the same random full-size ViT-L/14 weights: parity against the CPU, image-tower images/s per
# dtype and batch, text-tower texts/s, and the end-to-end folder rate. Not run by CI.
#
#   WHYXRAY=path/to/cuda/whyxray BENCH=path/to/cuda/bench bench/gpu.sh [WORKDIR]
#
# On a lent GPU machine without cargo or open_clip: bench/gpu-pack.sh here, then
# `bash gpu-pack/run.sh` there (it sets the library path and installs the wheels).
#
# Both binaries are built elsewhere with `cargo build --release --features cuda --bin whyxray
# --example bench` (the machine with the GPU needs no cargo). Python needs torch with CUDA and
# open_clip (pip install open_clip_torch, or wheels: see the README). Well under 5 minutes on
# an H200 with 16 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/whyxray-gpu-bench}
table=${GPU_TABLE:-$work/gpu-table.md}  # the table, also on stdout
start=$(date +%s)
py=${PYTHON:-python3}
bin=${WHYXRAY:-target/release/whyxray}
bench=${BENCH:-target/release/examples/bench}
mkdir -p "$work"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
model=$work/vitl
[ -f "$model/open_clip_model.safetensors" ] || $bench make-vit-l14 "$model" 0 > /dev/null
num() { sed -n "s/.*= *\([0-9.]*\).*/\1/p"; }

# 1. Parity: CPU float32 against the GPU in each dtype, on 32 real X-rays.
imgs=$work/imgs; mkdir -p "$imgs"
for i in $(seq -w 1 8); do for f in tests/data/nih_00000001_000.png tests/data/nih_gray_q90.jpg \
    tests/data/nih_tinted_rgb.png tests/data/wikimedia_chest_xray_pa_3-8-2010.png; do
    cp "$f" "$imgs/$i-$(basename "$f")"; done; done
$bin embed "$imgs" --text "pleural effusion" "an enlarged heart" -m "$model" --device cpu --dtype f32 -q > "$work/cpu.jsonl"
for dt in f32 f16 bf16; do
  $bin embed "$imgs" --text "pleural effusion" "an enlarged heart" -m "$model" --device cuda --dtype $dt -q > "$work/gpu_$dt.jsonl"
done
parity=$($py - "$work" <<'PY'
import json, math, sys
w = sys.argv[1]
load = lambda p: [json.loads(l)["embedding"] for l in open(p)]
ref = load(f"{w}/cpu.jsonl")
for dt, need in [("f32", 0.99999), ("f16", 0.9995), ("bf16", 0.999)]:
    got = load(f"{w}/gpu_{dt}.jsonl")
    cos = [sum(a * b for a, b in zip(u, v)) for u, v in zip(ref, got)]
    bad = sum(not math.isfinite(x) for r in got for x in r)
    print(f"| GPU {dt} vs CPU f32, min cosine ({len(cos)} rows) | {min(cos):.6f} | >= {need} | non-finite values: {bad} |")
PY
)

# 2. Towers: whyxray (median of 10 synchronised passes) and PyTorch (CUDA events, median of 10).
tower() { WHYXRAY_BENCH_DEVICE=cuda WHYXRAY_BENCH_DTYPE=$1 $bench tower "$model" "$2" "$3" | num; }
ours_bf16_256=$(tower bf16 1024 256); ours_bf16_32=$(tower bf16 256 32)
ours_f16_256=$(tower f16 1024 256); ours_f32_32=$(tower f32 256 32); ours_b1=$(tower bf16 32 1)
ours_text=$(WHYXRAY_BENCH_DEVICE=cuda WHYXRAY_BENCH_DTYPE=f16 WHYXRAY_BENCH_TEXTS=256 $bench text "$model" | num)
pyj=$($py bench/pytorch_gpu.py "$model")
pyv() { echo "$pyj" | $py -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
r() { $py -c "print(f'{$1 / $2:.2f}x')"; }

# 3. End to end: a folder of 1024 x 1024 JPEG chest X-rays, 16 decode threads.
jpgs=$work/jpgs; mkdir -p "$jpgs"
$py -c "
from PIL import Image; import shutil, sys
Image.open('tests/data/nih_00000001_000.png').convert('L').save(sys.argv[1] + '/0.jpg', quality=95)
[shutil.copy(sys.argv[1] + '/0.jpg', f'{sys.argv[1]}/{i}.jpg') for i in range(1, 4000)]" "$jpgs"
ls "$jpgs"/*.jpg > "$work/list.txt"
decode=$($bench decode "$work/list.txt" "$(nproc)" | num)
# The summary line times the scoring loop (inputs, decode, model, output), not the model load.
summary=$($bin classify "$jpgs" -m "$model" --device cuda --batch-size 256 \
    -l "enlarged heart,pleural effusion,no finding" -o "$work/e2e.csv" 2>&1 | grep 'images/s')
e2e=$(echo "$summary" | sed -n 's/.*(\([0-9.]*\) images\/s).*/\1/p')

{
echo "## bench/gpu.sh, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "$pyj" | $py -c "import json,sys; d=json.load(sys.stdin); print('torch', d['torch'], 'open_clip', d['open_clip'], d['gpu'])"
printf '\n| measure | whyxray | PyTorch + open_clip | ratio | target |\n|---|---|---|---|---|\n'
printf '| image tower bf16, batch 256 (img/s) | %s | %s | %s | >= 1.0x |\n' "$ours_bf16_256" "$(pyv bf16_b256)" "$(r "$ours_bf16_256" "$(pyv bf16_b256)")"
printf '| image tower bf16, batch 32 (img/s) | %s | %s | %s | >= 1.0x |\n' "$ours_bf16_32" "$(pyv bf16_b32)" "$(r "$ours_bf16_32" "$(pyv bf16_b32)")"
printf '| image tower f16 vs AMP fp16, batch 256 (img/s) | %s | %s | %s | >= 1.0x |\n' "$ours_f16_256" "$(pyv amp_fp16_b256)" "$(r "$ours_f16_256" "$(pyv amp_fp16_b256)")"
printf '| image tower f32, batch 32 (img/s) | %s | %s | %s | |\n' "$ours_f32_32" "$(pyv fp32_b32)" "$(r "$ours_f32_32" "$(pyv fp32_b32)")"
printf '| image tower bf16, batch 1 (img/s) | %s | %s | %s | |\n' "$ours_b1" "$(pyv bf16_b1)" "$(r "$ours_b1" "$(pyv bf16_b1)")"
printf '| text tower f16 vs AMP fp16, 256 texts (texts/s) | %s | %s | %s | |\n' "$ours_text" "$(pyv text_amp_fp16_b256)" "$(r "$ours_text" "$(pyv text_amp_fp16_b256)")"
printf '\n| parity | value | target | |\n|---|---|---|---|\n%s\n' "$parity"
printf '\nend to end (%s): %s images/s (target >= 1500); decode + preprocess alone on %s threads: %s images/s\n' "$summary" "$e2e" "$(nproc)" "$decode"
printf '\nwhole script: %s s\n' "$(( $(date +%s) - start ))"
} | tee "$table"
