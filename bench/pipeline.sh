#!/usr/bin/env bash
# Batch-pipeline benchmark (issue: batch scoring at scale). Not run by CI. Prints a table:
#   1. decode+preprocess alone vs the whole classify run with a tiny model, 2,000 real-size
#      (1024 x 1024) chest X-rays, half PNG and half JPEG: pipeline overhead.
#   2. a random full-size ViT-L/14: the image tower alone vs the whole classify run.
#   3. peak RSS for 200 vs 20,000 inputs (tiny model).
# Usage: bench/pipeline.sh [WORKDIR]   (needs ../shared/data/xray beside the repo; ~10 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/whyxray-bench}
jobs=$(nproc)
shared=../shared/data/xray
mkdir -p "$work"
cargo build --release --locked --quiet --bin whyxray --example bench
bin=target/release/whyxray
bench=target/release/examples/bench
# The smallest fixture model: what is measured is the pipeline, not the model.
tiny=${TINY:-tests/fixtures/models/tiny-quickgelu-p32-squash}

if [ ! -f "$work/images/done" ]; then
  mkdir -p "$work/images"
  pngs=("$shared"/png/nih_0000000{1,2}_000_1024.png "$shared"/png/nih_00000013_003_1024.png)
  for i in $(seq 0 999); do
    cp "${pngs[$((i % 3))]}" "$work/images/$(printf 'x%04d.png' "$i")"
    cp "$shared/jpeg/siim_chest_1024_gray_nojfif.jpg" "$work/images/$(printf 'y%04d.jpg' "$i")"
  done
  touch "$work/images/done"
fi
find "$work/images" -name 'x*.png' -o -name 'y*.jpg' | sort > "$work/list.txt"
n=$(wc -l < "$work/list.txt")

secs() { /usr/bin/time -f %e -o "$work/t" "$@" > /dev/null 2> "$work/err" || { cat "$work/err"; exit 1; }; cat "$work/t"; }
rss() { /usr/bin/time -f %M -o "$work/m" "$@" > /dev/null 2> "$work/err" || true; cat "$work/m"; }

cat "$work/list.txt" > /dev/null   # warm the page cache
bare=$($bench decode "$work/list.txt" "$jobs" | sed 's/.*= \([0-9.]*\) images.*/\1/')
t=$(secs $bin classify --files-from "$work/list.txt" -m $tiny -l "enlarged heart,pleural effusion" -q -j "$jobs" --batch-size 32 -o "$work/out.csv")
pipe=$(echo "$n / $t" | bc -l)

[ -f "$work/vitl/open_clip_model.safetensors" ] || $bench make-vit-l14 "$work/vitl" 0 > /dev/null
head -n 32 "$work/list.txt" > "$work/list32.txt"
tower=$($bench tower "$work/vitl" 32 8 | sed 's/.* in \([0-9.]*\) s.*/\1/')
total=$(secs $bin classify --files-from "$work/list32.txt" -m "$work/vitl" -l "enlarged heart,pleural effusion" -q --batch-size 8 -o "$work/out32.csv")

head -n 200 "$work/list.txt" > "$work/list200.txt"
for i in $(seq 10); do cat "$work/list.txt"; done > "$work/list20k.txt"
rss200=$(rss $bin classify --files-from "$work/list200.txt" -m $tiny -l a,b -q -o "$work/o200.csv")
rss20k=$(rss $bin classify --files-from "$work/list20k.txt" -m $tiny -l a,b -q -o "$work/o20k.csv")

printf '\n| measure | value | target |\n|---|---|---|\n'
printf '| decode+preprocess alone, %d images, %d threads | %.1f images/s | |\n' "$n" "$jobs" "$bare"
printf '| whole classify run, tiny model | %.1f images/s = %.1f%% of bare | >= 90%% |\n' "$pipe" "$(echo "100 * $pipe / $bare" | bc -l)"
printf '| ViT-L/14 image tower alone, 32 images, batch 8 | %.1f s | |\n' "$tower"
printf '| whole classify run, ViT-L/14, 32 images (load + text + decode + tower) | %.1f s = %.3fx tower | <= 1.05x |\n' "$total" "$(echo "$total / $tower" | bc -l)"
printf '| peak RSS, 200 inputs | %d MiB | |\n' "$((rss200 / 1024))"
printf '| peak RSS, 20,000 inputs | %d MiB = %.1f%% of 200 | within 10%% |\n' "$((rss20k / 1024))" "$(echo "100 * $rss20k / $rss200" | bc -l)"
