#!/usr/bin/env bash
# The README's CPU f16/bf16 figures: how far `--dtype f16` and `--dtype bf16` move a random
# full-size ViT-L/14 from float32 on the CPU, over every shared X-ray (PNG, JPEG, DICOM) and 16
# labels: min cosine of image and text embeddings, max probability difference of a 16-label
# classify at the model's scale (100), and any non-finite value. With PYTHON= a venv holding
# torch + open_clip_torch + pillow, the same figures for torch's bf16 autocast on the 8-bit
# PNG/JPEG files (open_clip's own preprocessing), for comparison. Not run by CI (minutes).
#
#   [PYTHON=/path/to/venv/bin/python] bench/cpu-dtypes.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/whyxray-cpu-dtypes}
mkdir -p "$work"
cargo build --locked --release --bin whyxray --example bench
bin=target/release/whyxray
model=$work/vitl
[ -f "$model/open_clip_model.safetensors" ] || target/release/examples/bench make-vit-l14 "$model" 0 > /dev/null
mapfile -t imgs < <(find ../shared/data/xray -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.dcm' \) | sort)
labels="enlarged heart,pleural effusion,no finding,pneumothorax,atelectasis,cardiomegaly,consolidation,edema,emphysema,fibrosis,hernia,infiltration,mass,nodule,pleural thickening,pneumonia"
IFS=, read -r -a texts <<< "$labels"
for dt in f32 f16 bf16; do
    "$bin" embed "${imgs[@]}" --text "${texts[@]}" -m "$model" --device cpu --dtype "$dt" -q \
        --format jsonl > "$work/$dt.jsonl"
    "$bin" classify "${imgs[@]}" -l "$labels" -m "$model" --device cpu --dtype "$dt" -q \
        --format jsonl > "$work/$dt.probs.jsonl"
    "$bin" embed "${imgs[@]}" -m "$model" --device cpu --dtype "$dt" -v 2>&1 >/dev/null |
        grep -o 'linear layers on the [a-z0-9-]* kernel' || true
done
python3 - "$work" "${#imgs[@]}" <<'PY'
import json, math, sys
w, n_img = sys.argv[1], int(sys.argv[2])
load = lambda p: [json.loads(l) for l in open(p)]
emb = lambda p: [r["embedding"] for r in load(p)]
probs = lambda p: [list(r["scores"].values()) for r in load(p)]
ref, ref_p = emb(f"{w}/f32.jsonl"), probs(f"{w}/f32.probs.jsonl")
for dt in ("f16", "bf16"):
    got, got_p = emb(f"{w}/{dt}.jsonl"), probs(f"{w}/{dt}.probs.jsonl")
    cos = [sum(a * b for a, b in zip(u, v)) for u, v in zip(ref, got)]
    dp = max(abs(a - b) for u, v in zip(ref_p, got_p) for a, b in zip(u, v))
    bad = sum(not math.isfinite(x) for r in got for x in r)
    print(f"whyxray CPU {dt} vs f32 ({n_img} images, {len(cos) - n_img} texts): min cosine "
          f"images {min(cos[:n_img]):.6f}, texts {min(cos[n_img:]):.6f}; max |dp| {dp:.2e}; "
          f"non-finite {bad}")
PY
[ -n "${PYTHON:-}" ] || exit 0
[ -f "$model/open_clip_pytorch_model.bin" ] || "$PYTHON" -c "import sys, torch; from safetensors.torch import load_file
torch.save(load_file(sys.argv[1] + '/open_clip_model.safetensors'), sys.argv[1] + '/open_clip_pytorch_model.bin')" "$model"
"$PYTHON" - "$model" "$labels" "${imgs[@]}" <<'PY'
import sys, torch, open_clip
from PIL import Image
model_dir, labels, files = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
files = [f for f in files if f.endswith((".png", ".jpg")) and "16bit" not in f]
model, _, pre = open_clip.create_model_and_transforms("local-dir:" + model_dir)
model.eval()
tok = open_clip.get_tokenizer("ViT-L-14")
x = torch.stack([pre(Image.open(f)) for f in files])
ids = tok(labels)
def run():
    i = model.encode_image(x); t = model.encode_text(ids)
    return i.float() / i.float().norm(dim=-1, keepdim=True), t.float() / t.float().norm(dim=-1, keepdim=True)
with torch.inference_mode():
    i32, t32 = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ib, tb = run()
p32, pb = (100 * i32 @ t32.T).softmax(-1), (100 * ib @ tb.T).softmax(-1)
print(f"torch {torch.__version__} bf16 autocast vs f32 ({len(files)} images, {len(labels)} texts): "
      f"min cosine images {(i32 * ib).sum(-1).min():.6f}, texts {(t32 * tb).sum(-1).min():.6f}; "
      f"max |dp| {(p32 - pb).abs().max():.2e}; non-finite {int((~torch.isfinite(ib)).sum())}")
PY
