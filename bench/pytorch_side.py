#!/usr/bin/env python3
"""The PyTorch + open_clip side of bench/cpu.sh, on the same weights and inputs as whyxray.

    python bench/pytorch_side.py MODEL_DIR IMAGE tower|text|load|classify

tower: image tower images/s at batch 1 and 8; text: texts/s for 16 labels; load: seconds to
read .bin and .safetensors state dicts; classify: the model card's recipe on one image (run
from a fresh process by bench/cpu.sh, which times it from process start); tower_bf16 and
text_bf16: the same under torch.autocast("cpu", bfloat16) and with the model in bfloat16;
gemm: torch's float32 and bfloat16 GEMM GFLOP/s on a ViT-L/14 MLP shape (the machine's
ceilings). Threads: $WHYXRAY_BENCH_THREADS, else all cores. Prints JSON.
"""
import json
import os
import sys
import time

import torch
import open_clip

LABELS = ["enlarged heart", "pleural effusion", "no finding", "pneumothorax", "atelectasis",
          "cardiomegaly", "consolidation", "edema", "emphysema", "fibrosis", "hernia",
          "infiltration", "mass", "nodule", "pleural thickening", "pneumonia"]


def timed(fn, repeat):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main():
    model_dir, image, what = sys.argv[1:4]
    torch.set_num_threads(int(os.environ.get("WHYXRAY_BENCH_THREADS") or os.cpu_count()))
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__, "open_clip": open_clip.__version__}
    if what == "load":
        from safetensors.torch import load_file
        st = os.path.join(model_dir, "open_clip_model.safetensors")
        out["load_safetensors_s"] = timed(lambda: load_file(st), 2)
        bin_path = os.path.join(model_dir, "open_clip_pytorch_model.bin")
        out["load_bin_s"] = timed(lambda: torch.load(bin_path, weights_only=True), 2)
        print(json.dumps(out))
        return
    if what == "gemm":
        m, k, n = 2056, 1024, 4096
        for name, dt in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
            a, b = torch.randn(m, k, dtype=dt), torch.randn(k, n, dtype=dt)
            best = min(timed(lambda: a @ b, 3) for _ in range(3))
            out[f"gemm_{name}_gflops"] = 2 * m * k * n / best / 1e9
        print(json.dumps(out))
        return
    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + model_dir)
    model.eval()
    tokenizer = open_clip.get_tokenizer("ViT-L-14")
    with torch.inference_mode():
        if what == "tower":
            for batch, repeat in [(1, 4), (8, 2)]:
                x = torch.randn(batch, 3, 224, 224)
                out[f"tower_b{batch}_images_per_s"] = batch / timed(lambda: model.encode_image(x), repeat)
        elif what == "text":
            ids = tokenizer(LABELS)
            out["text_16_texts_per_s"] = len(LABELS) / timed(lambda: model.encode_text(ids), 3)
        elif what == "tower_bf16":
            for batch, repeat in [(1, 4), (8, 2)]:
                x = torch.randn(batch, 3, 224, 224)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out[f"autocast_b{batch}_images_per_s"] = batch / timed(lambda: model.encode_image(x), repeat)
            model = model.to(torch.bfloat16)
            for batch, repeat in [(1, 4), (8, 2)]:
                x = torch.randn(batch, 3, 224, 224, dtype=torch.bfloat16)
                out[f"bf16_weights_b{batch}_images_per_s"] = batch / timed(lambda: model.encode_image(x), repeat)
        elif what == "text_bf16":
            ids = tokenizer(LABELS)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out["autocast_text_16_texts_per_s"] = len(LABELS) / timed(lambda: model.encode_text(ids), 3)
        elif what == "classify":
            from PIL import Image
            img = preprocess(Image.open(image)).unsqueeze(0)
            f_i = model.encode_image(img)
            f_t = model.encode_text(tokenizer(LABELS[:2]))
            f_i = f_i / f_i.norm(dim=-1, keepdim=True)
            f_t = f_t / f_t.norm(dim=-1, keepdim=True)
            out["probs"] = (100.0 * f_i @ f_t.T).softmax(dim=-1).tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
