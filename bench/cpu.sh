#!/usr/bin/env bash
# CPU speed, side by side with PyTorch + open_clip on the same machine, the same random
# full-size ViT-L/14 weights (seeded) and the same inputs (issue: CPU speed). Not run by CI.
#   PYTHON=/path/to/venv/bin/python [THREADS=1] bench/cpu.sh [WORKDIR]
# The venv needs: pip install torch open_clip_torch safetensors pillow. ~15 min on 2 cores.
# THREADS (default: all cores) sets both sides' threads. The bf16 rows compare whyxray's
# `--dtype bf16` (bf16 GEMM kernels, see src/model/bf16) with torch's autocast and bf16 weights,
# beside both libraries' GEMM ceilings on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/whyxray-cpu-bench}
py=${PYTHON:-python3}
threads=${THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$threads WHYXRAY_BENCH_THREADS=$threads
mkdir -p "$work"
cargo build --release --locked --quiet --bin whyxray --example bench
bench=target/release/examples/bench
bin=target/release/whyxray
model=$work/vitl
img=assets/nih_00000001_000.png
[ -f "$model/open_clip_model.safetensors" ] || $bench make-vit-l14 "$model" 0 > /dev/null
[ -f "$model/open_clip_pytorch_model.bin" ] || $py -c "import sys, torch; from safetensors.torch import load_file
torch.save(load_file(sys.argv[1] + '/open_clip_model.safetensors'), sys.argv[1] + '/open_clip_pytorch_model.bin')" "$model"
cat "$model"/* > /dev/null   # weights in the page cache for both sides

num() { sed -n "s/.*$1 *\([0-9.]*\).*/\1/p"; }
pyjson() { $py -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

ours_b1=$($bench tower "$model" 4 1 | num "=")
ours_b8=$($bench tower "$model" 16 8 | num "=")
ours_text=$($bench text "$model" | num "=")
ours_st=$($bench load "$model" open_clip_model.safetensors | num ":")
ours_bin=$($bench load "$model" open_clip_pytorch_model.bin | num ":")
ours_bf_b1=$(WHYXRAY_BENCH_DTYPE=bf16 $bench tower "$model" 4 1 | num "=")
ours_bf_b8=$(WHYXRAY_BENCH_DTYPE=bf16 $bench tower "$model" 16 8 | num "=")
ours_bf_text=$(WHYXRAY_BENCH_DTYPE=bf16 $bench text "$model" | num "=")
ours_gemm=$($bench gemm 2056 4096 1024)
/usr/bin/time -f "%e %M" -o "$work/t_ours_bf16" $bin classify "$img" -m "$model" -l "enlarged heart,pleural effusion" -q --dtype bf16 > /dev/null
py_tower_bf=$($py bench/pytorch_side.py "$model" "$img" tower_bf16)
py_text_bf=$($py bench/pytorch_side.py "$model" "$img" text_bf16 | pyjson autocast_text_16_texts_per_s)
py_gemm=$($py bench/pytorch_side.py "$model" "$img" gemm)
/usr/bin/time -f "%e %M" -o "$work/t_ours" $bin classify "$img" -m "$model" -l "enlarged heart,pleural effusion" -q > /dev/null
/usr/bin/time -f "%e %M" -o "$work/t_py" $py bench/pytorch_side.py "$model" "$img" classify > /dev/null
py_tower=$($py bench/pytorch_side.py "$model" "$img" tower)
py_text=$($py bench/pytorch_side.py "$model" "$img" text | pyjson text_16_texts_per_s)
py_load=$($py bench/pytorch_side.py "$model" "$img" load)
py_b1=$(echo "$py_tower" | pyjson tower_b1_images_per_s)
py_b8=$(echo "$py_tower" | pyjson tower_b8_images_per_s)
py_st=$(echo "$py_load" | pyjson load_safetensors_s)
py_bin=$(echo "$py_load" | pyjson load_bin_s)
read -r ours_cold ours_rss < "$work/t_ours"
read -r _ ours_bf_rss < "$work/t_ours_bf16"
read -r py_cold py_rss < "$work/t_py"
weights_mib=$(( $(stat -c %s "$model/open_clip_model.safetensors") / 1048576 ))

r() { echo "$1 / $2" | bc -l; }
printf '\n%s threads; %s\n\n' "$threads" "$(echo "$py_tower" | $py -c 'import json,sys; d=json.load(sys.stdin); print("torch", d["torch"], "open_clip", d["open_clip"])')"
printf '| measure | whyxray | PyTorch + open_clip | ratio | target |\n|---|---|---|---|---|\n'
printf '| image tower, batch 1 (images/s) | %.3f | %.3f | %.2fx | >= 1.0x |\n' "$ours_b1" "$py_b1" "$(r "$ours_b1" "$py_b1")"
printf '| image tower, batch 8 (images/s) | %.3f | %.3f | %.2fx | >= 1.0x |\n' "$ours_b8" "$py_b8" "$(r "$ours_b8" "$py_b8")"
printf '| text tower, 16 labels (texts/s) | %.1f | %.1f | %.2fx | >= 3x |\n' "$ours_text" "$py_text" "$(r "$ours_text" "$py_text")"
printf '| cold one-image classify, process start to result (s) | %.2f | %.2f | %.2fx | <= 0.5x |\n' "$ours_cold" "$py_cold" "$(r "$ours_cold" "$py_cold")"
printf '| load .safetensors (s) | %.2f | %.2f | %.2fx | |\n' "$ours_st" "$py_st" "$(r "$ours_st" "$py_st")"
printf '| load .bin (s) | %.2f | %.2f | %.2fx | |\n' "$ours_bin" "$py_bin" "$(r "$ours_bin" "$py_bin")"
printf '| peak RSS of the classify run (MiB) | %d | %d | %.2fx | <= weights (%d) + 400 |\n' "$((ours_rss / 1024))" "$((py_rss / 1024))" "$(r "$ours_rss" "$py_rss")" "$weights_mib"

kernel=$(echo "$ours_gemm" | sed -n 's/.*kernel \([a-z0-9-]*\).*/\1/p' | head -1)
gf() { echo "$ours_gemm" | grep "$1" | head -1 | num ":"; }
printf '\n| GEMM ceiling 2056x1024x4096 (GFLOP/s) | whyxray | PyTorch |\n|---|---|---|\n'
printf '| float32 | %s (gemm crate) | %.0f |\n' "$(gf 'gemm f32')" "$(echo "$py_gemm" | pyjson gemm_f32_gflops)"
printf '| bf16 | %s (%s kernel) | %.1f |\n' "$(gf 'gemm bf16')" "$kernel" "$(echo "$py_gemm" | pyjson gemm_bf16_gflops)"
pa1=$(echo "$py_tower_bf" | pyjson autocast_b1_images_per_s)
pa8=$(echo "$py_tower_bf" | pyjson autocast_b8_images_per_s)
pw1=$(echo "$py_tower_bf" | pyjson bf16_weights_b1_images_per_s)
pw8=$(echo "$py_tower_bf" | pyjson bf16_weights_b8_images_per_s)
printf '\n| bf16 (whyxray kernel: %s) | whyxray bf16 | PyTorch autocast | PyTorch bf16 weights | vs autocast | vs whyxray f32 | target |\n|---|---|---|---|---|---|---|\n' "$kernel"
printf '| image tower, batch 1 (images/s) | %.3f | %.3f | %.3f | %.2fx | %.2fx | >= 1.2x, >= 2x |\n' "$ours_bf_b1" "$pa1" "$pw1" "$(r "$ours_bf_b1" "$pa1")" "$(r "$ours_bf_b1" "$ours_b1")"
printf '| image tower, batch 8 (images/s) | %.3f | %.3f | %.3f | %.2fx | %.2fx | >= 1.2x, >= 2x |\n' "$ours_bf_b8" "$pa8" "$pw8" "$(r "$ours_bf_b8" "$pa8")" "$(r "$ours_bf_b8" "$ours_b8")"
printf '| text tower, 16 labels (texts/s) | %.1f | %.1f | | %.2fx | %.2fx | >= 1.5x f32 |\n' "$ours_bf_text" "$py_text_bf" "$(r "$ours_bf_text" "$py_text_bf")" "$(r "$ours_bf_text" "$ours_text")"
printf '| peak RSS of a one-image classify (MiB) | %d | | | | %.2fx | <= 1.2 GB |\n' "$((ours_bf_rss / 1024))" "$(r "$ours_bf_rss" "$ours_rss")"
