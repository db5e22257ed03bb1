"""Issue 14's int8 question, measured before any kernel is written: would int8 linear layers
(per-output-channel symmetric weights, per-token symmetric activations, int32 accumulation)
keep a full-size ViT-L/14 within cosine 0.999 of float32, and how fast is int8 GEMM on this
machine next to float32 and bf16?

Accuracy: every linear layer of both towers (q/k/v in-projection, attention output, MLP, via
torch.nn.functional.linear) is replaced by its exact int8 emulation: the integer products are
summed in float64, which is exact for int8 x int8 sums of this length, then scaled back. The
patch embedding, LayerNorm, softmax, GELU, attention's matmuls and the final projections stay
float32, as in whyxray's bf16 path. Speed: torch._int_mm (int8 x int8 -> int32) against float32
and bf16 matmul on the ViT-L/14 MLP shape, same process, best of 3.

    python bench/int8-explore.py MODEL_DIR [IMAGE ...]   # torch + open_clip_torch + pillow
Threads: $WHYXRAY_BENCH_THREADS, else all cores. Prints one JSON object.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import open_clip
from PIL import Image

LABELS = ["enlarged heart", "pleural effusion", "no finding", "pneumothorax", "atelectasis",
          "cardiomegaly", "consolidation", "edema", "emphysema", "fibrosis", "hernia",
          "infiltration", "mass", "nodule", "pleural thickening", "pneumonia"]


CALLS = [0]


def int8_linear(x, w, b=None):
    """Exact emulation of an int8 GEMM with per-token / per-output-channel scales."""
    CALLS[0] += 1
    xs = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / 127.0
    ws = w.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / 127.0
    xq = torch.round(x / xs).clamp(-127, 127).double()
    wq = torch.round(w / ws).clamp(-127, 127).double()
    y = (xq @ wq.T) * (xs.double() * ws.double().T)
    y = y.float()
    return y if b is None else y + b


def gemm_rates(m=2056, k=1024, n=4096):
    def best(fn):
        fn()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 2 * m * k * n / min(times) / 1e9
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = {"gemm_f32_gflops": best(lambda: a @ b)}
    ab, bb = a.bfloat16(), b.bfloat16()
    out["gemm_bf16_gflops"] = best(lambda: ab @ bb)
    ai = torch.randint(-127, 128, (m, k), dtype=torch.int8)
    bi = torch.randint(-127, 128, (k, n), dtype=torch.int8)
    try:
        out["gemm_int8_gops"] = best(lambda: torch._int_mm(ai, bi))
    except RuntimeError as e:  # no CPU kernel in this build
        out["gemm_int8_error"] = str(e).splitlines()[0]
    return out


def features(model, tok, files, pre):
    x = torch.stack([pre(Image.open(f)) for f in files])
    i, t = model.encode_image(x), model.encode_text(tok(LABELS))
    return F.normalize(i.float(), dim=-1), F.normalize(t.float(), dim=-1)


def main():
    model_dir, files = sys.argv[1], sys.argv[2:]
    if os.environ.get("WHYXRAY_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["WHYXRAY_BENCH_THREADS"]))
    out = {"torch": torch.__version__, "open_clip": open_clip.__version__, "threads": torch.get_num_threads()}
    out.update(gemm_rates())
    if files:
        torch.backends.mha.set_fastpath_enabled(False)  # in-projection through F.linear
        model, _, pre = open_clip.create_model_and_transforms("local-dir:" + model_dir)
        model.eval()
        tok = open_clip.get_tokenizer("ViT-L-14")
        with torch.no_grad():
            ref_i, ref_t = features(model, tok, files, pre)
            plain = F.linear
            F.linear = int8_linear
            try:
                q_i, q_t = features(model, tok, files, pre)
            finally:
                F.linear = plain
            p_ref = (100 * ref_i @ ref_t.T).softmax(-1)
            p_q = (100 * q_i @ q_t.T).softmax(-1)
        out.update({
            "images": len(files), "texts": len(LABELS),
            "int8_min_cos_images": float((ref_i * q_i).sum(-1).min()),
            "int8_min_cos_texts": float((ref_t * q_t).sum(-1).min()),
            "int8_max_abs_dp_s100": float((p_ref - p_q).abs().max()),
            "int8_linear_calls": CALLS[0],
            "int8_nonfinite": int((~torch.isfinite(q_i)).sum() + (~torch.isfinite(q_t)).sum()),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
