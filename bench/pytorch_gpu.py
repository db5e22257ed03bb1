#!/usr/bin/env python3
"""The PyTorch + open_clip side of bench/gpu.sh: the same random ViT-L/14 weights as whyxray,
image tower in bf16 weights (batch 256, 32, 1), AMP fp16 (batch 256, the model card's mode),
fp32 (batch 32), and the text tower under AMP fp16 at batch 256. Inference mode, timed with
CUDA events, median of 10 passes after a warm-up. Prints JSON; a measure that fails is
"failed: ..." and the others are still taken.

    python bench/pytorch_gpu.py MODEL_DIR
"""
import json
import sys

import torch
import open_clip
from safetensors.torch import load_file


def median_rate(fn, items):
    try:
        return _median_rate(fn, items)
    except Exception as e:  # one failed measure must not lose the others
        print(f"failed: {e!r}", file=sys.stderr)
        return f"failed: {type(e).__name__}"


def _median_rate(fn, items):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    times.sort()
    return round(items / times[len(times) // 2], 1)


def main():
    model_dir = sys.argv[1]
    model = open_clip.create_model("ViT-L-14")
    model.load_state_dict(load_file(f"{model_dir}/open_clip_model.safetensors"))
    model = model.cuda().eval()
    tok = open_clip.get_tokenizer("ViT-L-14")
    out = {"torch": torch.__version__, "open_clip": open_clip.__version__,
           "gpu": torch.cuda.get_device_name(0)}
    px = {b: torch.randn(b, 3, 224, 224, device="cuda") for b in (1, 32, 256)}
    texts = tok(["a chest x-ray showing pleural effusion"] * 256).cuda()
    with torch.inference_mode():
        out["fp32_b32"] = median_rate(lambda: model.encode_image(px[32]), 32)
        with torch.autocast("cuda", dtype=torch.float16):
            out["amp_fp16_b256"] = median_rate(lambda: model.encode_image(px[256]), 256)
            out["text_amp_fp16_b256"] = median_rate(lambda: model.encode_text(texts), 256)
        bf = model.to(torch.bfloat16)
        for b in (256, 32, 1):
            x = px[b].to(torch.bfloat16)
            out[f"bf16_b{b}"] = median_rate(lambda: bf.encode_image(x), b)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
