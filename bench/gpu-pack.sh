#!/usr/bin/env bash
# The GPU pack: everything `bench/gpu.sh` needs on a lent GPU machine that has nvcc, PyTorch
# and the NVIDIA libraries but no cargo and no open_clip, built here on a CPU machine:
#
#   bench/gpu-pack.sh [DIR]      (default gpu-pack/, git-ignored)
#
# then on the GPU machine, from the repository root: `bash gpu-pack/run.sh` (or carry DIR to
# the device tool and run that). DIR holds the CUDA `whyxray` and `bench` binaries (stripped,
# in one tar.xz), the open_clip_torch, ftfy and wcwidth wheels for Python 3.12, and run.sh.
#
# - nvcc and headers come from NVIDIA's PyPI wheels (as .ci/cuda-check), CUDA 13.0: the PTX a
#   newer nvcc writes is refused by a driver of an older CUDA (the lent H200s run driver 580,
#   CUDA 13.0), while 13.0's PTX is JIT-compiled by any newer driver.
# - candle embeds its kernels as PTX (one architecture per build, loaded with
#   cuModuleLoadData): compute_80 PTX, which the driver compiles at first use for the GPU it
#   finds: A100 (sm_80), RTX 30xx/A6000 (sm_86), RTX 40xx/L4/L40 (sm_89), H100/H200
#   (sm_90), Blackwell (sm_100, sm_120). bf16 needs 8.0, so nothing older is lost. Matrix
#   products run in cuBLAS, whose SASS covers all of them.
# - candle builds cudarc with `dynamic-linking`: the binary names libcuda.so.1,
#   libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13 and libcudart.so.13
#   and the loader must find them at start. It is linked against libcudart from the wheel and
#   stubs of the others (below); on the GPU machine run.sh puts its PyTorch's NVIDIA libraries
#   on the path, so the machine's own libraries are used.
# - Ends with the checks a CPU machine can make (see the end of this script).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-pack}
cache=${WHYXRAY_CUDA_CACHE:-$HOME/.cache/whyxray-gpu-pack}
root=$cache/nvidia/cu13
if [ ! -x "$root/bin/nvcc" ] || [ ! -d "$root/nvvm" ]; then
    mkdir -p "$cache/wheels"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$cache/wheels" \
        nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
    for w in "$cache"/wheels/*.whl; do unzip -q -o "$w" -d "$cache"; done
fi
export PATH=$root/bin:$PATH CUDA_ROOT=$root CUDA_PATH=$root CUDA_COMPUTE_CAP=80 \
    CUDARC_CUDA_VERSION=13000 NVCC_APPEND_FLAGS="-I$root/include/cccl" \
    RUSTFLAGS="-L native=$cache/link"
mkdir -p "$cache/link"
# The link step wants an unversioned libcudart.so; at run time the soname libcudart.so.13 is
# looked up on the library path.
ln -sf "$root/lib/libcudart.so.13" "$cache/link/libcudart.so"
# candle links cudarc with `dynamic-linking`: -lcuda -lcublas -lcublasLt -lcurand -lnvrtc.
# Rather than download 1 GB of wheels to link against, link against stubs with the real
# sonames that define every CUDA symbol the compiled crates reference; the GPU machine's own
# libraries are what the loader finds at run time.
cargo build --locked --release --features cuda --lib --target-dir target/gpu-pack
nm -u target/gpu-pack/release/deps/*.rlib 2>/dev/null | awk '{print $2}' |
    grep -E '^(cu[A-Z]|cublas|curand|nvrtc)' | sort -u > "$cache/link/symbols.txt"
stub() { # NAME SONAME PATTERN
    grep -E "$3" "$cache/link/symbols.txt" | sed 's/.*/int &(void) { return 999; }/' > "$cache/link/$1.c"
    cc -shared -fPIC -Wl,-soname,"$2" -o "$cache/link/lib$1.so" "$cache/link/$1.c"
    ln -sf "lib$1.so" "$cache/link/$2"
}
stub cuda libcuda.so.1 '^cu[A-Z]'
stub cublas libcublas.so.13 '^cublas[^L]'
stub cublasLt libcublasLt.so.13 '^cublasLt'
stub curand libcurand.so.10 '^curand'
stub nvrtc libnvrtc.so.13 '^nvrtc'
cargo build --locked --release --features cuda --bin whyxray --example bench \
    --target-dir target/gpu-pack
rm -rf "$out" && mkdir -p "$out/wheels"
# One xz stream over both binaries: they share most of their bytes (candle, its PTX), which a
# single dictionary stores once (10.8 MB together against 18.8 MB compressed apart).
strip -o "$out/whyxray" target/gpu-pack/release/whyxray
strip -o "$out/bench" target/gpu-pack/release/examples/bench
tar -C "$out" -cf - whyxray bench | xz -9e -T1 > "$out/bin.tar.xz"
rm "$out/whyxray" "$out/bench"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$out/wheels" \
    --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 \
    open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.2.14
cp bench/gpu-run.sh "$out/run.sh"
git rev-parse HEAD > "$out/commit"

# What a machine without a GPU can check: the packed binary starts (here against the link
# stubs, since a `dynamic-linking` build cannot start where no libcuda.so.1 can be found at
# all), scores on the CPU exactly as the CPU build does, and `--device cuda` against a driver
# that answers every call with an error is exit 2 with a message, not a crash.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
tar -C "$bin" -xJf "$out/bin.tar.xz"
export LD_LIBRARY_PATH=$cache/link:$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
"$bin/whyxray" --version
img=tests/data/nih_00000001_000.png
export HF_HUB_CACHE=tests/fixtures/hub HF_HUB_OFFLINE=1
cpu_build=target/release/whyxray
[ -x "$cpu_build" ] || cargo build --locked --release --bin whyxray
want=$("$cpu_build" classify "$img" --labels "enlarged heart,pleural effusion" --format csv -q)
got=$("$bin/whyxray" classify "$img" --labels "enlarged heart,pleural effusion" --format csv \
    --device cpu -q)
if [ "$got" != "$want" ]; then
    echo "gpu-pack: the packed binary's CPU scores differ: $got vs $want" >&2
    exit 1
fi
echo "--device cpu: the same scores as the CPU build"
set +e
msg=$(timeout 60 "$bin/whyxray" classify "$img" --labels "a,b" --device cuda -q 2>&1 >/dev/null)
rc=$?
set -e
echo "--device cuda against the stub driver: exit $rc: $msg"
if [ "$rc" != 2 ]; then
    echo "gpu-pack: --device cuda without a working driver should be exit 2" >&2
    exit 1
fi
ls -la "$out" "$out/wheels"
echo "gpu-pack: $out ready ($(du -sm "$out" | cut -f1) MiB)"
