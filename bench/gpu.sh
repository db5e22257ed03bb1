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
set -uo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/whyxray-gpu-bench}
table=${GPU_TABLE:-$work/gpu-table.md}  # the table, also on stdout
logs=${GPU_LOGS:-$work/logs}            # each step's stderr
start=$(date +%s)
py=${PYTHON:-python3}
bin=${WHYXRAY:-target/release/whyxray}
bench=${BENCH:-target/release/examples/bench}
mkdir -p "$work" "$logs"
# The lent machine is had for one call: a step that fails or hangs is marked in the table
# ("failed: LOG") and the rest still run. Each step gets at most STEP_LIMIT seconds, and none
# runs past DEADLINE seconds from the start (8 minutes, the issue's bound, so that the table is
# written inside a 10-minute call whatever hangs); a step with no time left is "skipped".
limit=${STEP_LIMIT:-240}
deadline=$(( start + ${DEADLINE:-480} ))
step() { # NAME CMD...: the stdout of CMD (a command or exported function), else "failed: LOG"
    local name=$1; shift
    local t0=$(date +%s) got
    local left=$(( deadline - t0 ))
    if [ "$left" -lt 5 ]; then
        echo "$name: skipped, out of time" >&2
        printf 'skipped (out of time)'
        return
    fi
    got=$(timeout -k 10 "$(( left < limit ? left : limit ))" bash -o pipefail -c '"$@"' _ "$@" \
        2> "$logs/$name.err")
    local rc=$?
    if [ "$rc" = 0 ] && [ -n "$got" ]; then
        echo "$name: $(( $(date +%s) - t0 )) s" >&2
        printf '%s' "$got"
    else
        local why=failed
        [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="timed out"
        echo "$name: $why after $(( $(date +%s) - t0 )) s: $(tail -3 "$logs/$name.err")" >&2
        printf '%s: logs/%s.err' "$why" "$name"
    fi
}
timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
model=$work/vitl
[ -f "$model/open_clip_model.safetensors" ] || step make-model $bench make-vit-l14 "$model" 0 > /dev/null
num() { sed -n "s/.*= *\([0-9.]*\).*/\1/p"; }
export bin bench model work imgs=$work/imgs jpgs=$work/jpgs
export -f num

# 1. Parity: CPU float32 against the GPU in each dtype, on 32 real X-rays.
mkdir -p "$imgs"
for i in $(seq -w 1 8); do for f in tests/data/nih_00000001_000.png tests/data/nih_gray_q90.jpg \
    tests/data/nih_tinted_rgb.png tests/data/wikimedia_chest_xray_pa_3-8-2010.png; do
    cp "$f" "$imgs/$i-$(basename "$f")"; done; done
embed() { $bin embed "$imgs" --text "pleural effusion" "an enlarged heart" -m "$model" -q "$@"; }
export -f embed
step embed-cpu embed --device cpu --dtype f32 > "$work/cpu.jsonl"
for dt in f32 f16 bf16; do
  step "embed-cuda-$dt" embed --device cuda --dtype $dt > "$work/gpu_$dt.jsonl"
done
parity=$(step parity $py - "$work" <<'PY'
import json, math, sys
w = sys.argv[1]
def load(p):
    try:
        return [json.loads(l)["embedding"] for l in open(p)]
    except Exception as e:
        return f"unreadable ({open(p).read(80)!r}...)"
ref = load(f"{w}/cpu.jsonl")
for dt, need in [("f32", 0.99999), ("f16", 0.9995), ("bf16", 0.999)]:
    got = load(f"{w}/gpu_{dt}.jsonl")
    if isinstance(ref, str) or isinstance(got, str):
        print(f"| GPU {dt} vs CPU f32 | cpu: {ref if isinstance(ref, str) else 'ok'}, gpu: {got if isinstance(got, str) else 'ok'} | >= {need} | |")
        continue
    cos = [sum(a * b for a, b in zip(u, v)) for u, v in zip(ref, got)]
    bad = sum(not math.isfinite(x) for r in got for x in r)
    print(f"| GPU {dt} vs CPU f32, min cosine ({len(cos)} rows) | {min(cos):.6f} | >= {need} | non-finite values: {bad} |")
PY
)
echo "$parity" >&2

# 2. Towers: whyxray (median of 10 synchronised passes) and PyTorch (CUDA events, median of 10).
tower() { WHYXRAY_BENCH_DEVICE=cuda WHYXRAY_BENCH_DTYPE=$1 $bench tower "$model" "$2" "$3" | num; }
export -f tower
ours_bf16_256=$(step tower-bf16-b256 tower bf16 1024 256)
ours_bf16_32=$(step tower-bf16-b32 tower bf16 256 32)
ours_f16_256=$(step tower-f16-b256 tower f16 1024 256)
ours_f32_32=$(step tower-f32-b32 tower f32 256 32)
ours_b1=$(step tower-bf16-b1 tower bf16 32 1)
text() { WHYXRAY_BENCH_DEVICE=cuda WHYXRAY_BENCH_DTYPE=f16 WHYXRAY_BENCH_TEXTS=256 $bench text "$model" | num; }
export -f text
ours_text=$(step text-f16 text)
pyj=$(step pytorch $py bench/pytorch_gpu.py "$model")
echo "$pyj" >&2
pyv() { echo "$pyj" | $py -c "import json,sys
try: print(json.load(sys.stdin).get('$1', 'missing'))
except Exception: print('failed: logs/pytorch.err')"; }
r() { $py -c "
try: print(f'{float(\"$1\") / float(\"$2\"):.2f}x')
except Exception: print('-')"; }

# 3. End to end: a folder of 1024 x 1024 JPEG chest X-rays, 16 decode threads.
mkdir -p "$jpgs"
$py -c "
from PIL import Image; import shutil, sys
Image.open('tests/data/nih_00000001_000.png').convert('L').save(sys.argv[1] + '/0.jpg', quality=95)
[shutil.copy(sys.argv[1] + '/0.jpg', f'{sys.argv[1]}/{i}.jpg') for i in range(1, 4000)]" "$jpgs"
ls "$jpgs"/*.jpg > "$work/list.txt"
decode_rate() { $bench decode "$work/list.txt" "$(nproc)" | num; }
export -f decode_rate
decode=$(step decode decode_rate)
# The summary line (stderr) times the scoring loop (inputs, decode, model, output), not the load.
e2e() {
    $bin classify "$jpgs" -m "$model" --device cuda --batch-size 256 \
        -l "enlarged heart,pleural effusion,no finding" -o "$work/e2e.csv" 2> "$work/e2e.stderr" ||
        { cat "$work/e2e.stderr" >&2; return 1; }
    grep 'images/s' "$work/e2e.stderr"
}
export -f e2e
summary=$(step e2e e2e)
e2e=$(echo "$summary" | sed -n 's/.*(\([0-9.]*\) images\/s).*/\1/p')

{
echo "## bench/gpu.sh, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "$pyj" | $py -c "import json,sys
try: d=json.load(sys.stdin); print('torch', d['torch'], 'open_clip', d['open_clip'], d['gpu'])
except Exception: print('PyTorch side: failed (logs/pytorch.err)')"
printf '\n| measure | whyxray | PyTorch + open_clip | ratio | target |\n|---|---|---|---|---|\n'
printf '| image tower bf16, batch 256 (img/s) | %s | %s | %s | >= 1.0x |\n' "$ours_bf16_256" "$(pyv bf16_b256)" "$(r "$ours_bf16_256" "$(pyv bf16_b256)")"
printf '| image tower bf16, batch 32 (img/s) | %s | %s | %s | >= 1.0x |\n' "$ours_bf16_32" "$(pyv bf16_b32)" "$(r "$ours_bf16_32" "$(pyv bf16_b32)")"
printf '| image tower f16 vs AMP fp16, batch 256 (img/s) | %s | %s | %s | >= 1.0x |\n' "$ours_f16_256" "$(pyv amp_fp16_b256)" "$(r "$ours_f16_256" "$(pyv amp_fp16_b256)")"
printf '| image tower f32, batch 32 (img/s) | %s | %s | %s | |\n' "$ours_f32_32" "$(pyv fp32_b32)" "$(r "$ours_f32_32" "$(pyv fp32_b32)")"
printf '| image tower bf16, batch 1 (img/s) | %s | %s | %s | |\n' "$ours_b1" "$(pyv bf16_b1)" "$(r "$ours_b1" "$(pyv bf16_b1)")"
printf '| text tower f16 vs AMP fp16, 256 texts (texts/s) | %s | %s | %s | |\n' "$ours_text" "$(pyv text_amp_fp16_b256)" "$(r "$ours_text" "$(pyv text_amp_fp16_b256)")"
printf '\n| parity | value | target | |\n|---|---|---|---|\n%s\n' "$parity"
printf '\nend to end (%s): %s images/s (target >= 1500); decode + preprocess alone on %s threads: %s images/s\n' "$summary" "${e2e:--}" "$(nproc)" "$decode"
printf '\nwhole script: %s s\n' "$(( $(date +%s) - start ))"
} | tee "$table"
