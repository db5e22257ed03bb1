#!/usr/bin/env bash
# The README's CPU f16/bf16 figures: how far `--dtype f16` and `--dtype bf16` move the
# embeddings of a random full-size ViT-L/14 from float32 on the CPU, on three shared X-rays
# and two texts (min cosine, and any non-finite value). Not run by CI (minutes on 2 cores).
#
#   bench/cpu-dtypes.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/whyxray-cpu-dtypes}
mkdir -p "$work"
cargo build --locked --release --bin whyxray --example bench
bin=target/release/whyxray
model=$work/vitl
[ -f "$model/open_clip_model.safetensors" ] || target/release/examples/bench make-vit-l14 "$model" 0 > /dev/null
x=../shared/data/xray
imgs=("$x/png/nih_00000001_000_1024.png" "$x/png/wikimedia_chest_xray_pa_3-8-2010.png"
    "$x/jpeg/siim_chest_1024_gray_nojfif.jpg")
for dt in f32 f16 bf16; do
    "$bin" embed "${imgs[@]}" --text "pleural effusion" "an enlarged heart" -m "$model" \
        --device cpu --dtype "$dt" -q --format jsonl > "$work/$dt.jsonl"
done
python3 - "$work" <<'PY'
import json, math, sys
w = sys.argv[1]
load = lambda p: [json.loads(l)["embedding"] for l in open(p)]
ref = load(f"{w}/f32.jsonl")
for dt in ("f16", "bf16"):
    got = load(f"{w}/{dt}.jsonl")
    cos = [sum(a * b for a, b in zip(u, v)) for u, v in zip(ref, got)]
    bad = sum(not math.isfinite(x) for r in got for x in r)
    print(f"CPU {dt} vs f32 ({len(cos)} rows: 3 images, 2 texts): min cosine {min(cos):.6f}, non-finite {bad}")
PY
