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
# - The packed binary starts on any Linux x86-64 machine, with or without a GPU: cudarc, which
#   candle builds with `dynamic-linking` (the loader then refuses to start the binary where no
#   libcuda.so.1 exists), is built here with `dynamic-loading` instead, through a copy of
#   candle-core whose Cargo.toml names that feature, patched in for this build only (the
#   committed Cargo.toml and Cargo.lock are not touched). The driver, cuBLAS, cuBLASLt, cuRAND
#   and NVRTC are then opened at the first `--device cuda`, and a missing one is an exit-2
#   error naming it. The CUDA runtime that candle-kernels' (quantized-only) MoE kernels need
#   at link time is linked statically (libcudart_static.a from the wheel), so the binary names
#   no CUDA library at all (checked below with readelf).
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
# candle-kernels asks for -lcudart: with only libcudart.a in the search path, that is the
# static runtime (it opens libcuda.so.1 itself, when first called).
rm -rf "$cache/link" && mkdir -p "$cache/link"
ln -s "$root/lib/libcudart_static.a" "$cache/link/libcudart.a"

# candle-core with cudarc's `dynamic-loading` in place of `dynamic-linking`, and a workspace
# that is this repository (sources linked) with that copy patched in.
cargo fetch --locked -q
manifest=$(cargo metadata --locked --format-version 1 | python3 -c "import json, sys
print(next(p['manifest_path'] for p in json.load(sys.stdin)['packages'] if p['name'] == 'candle-core'))")
registry=$(dirname "$manifest")
patched=$cache/$(basename "$registry")-dynamic-loading
# Made once (cp -a keeps the timestamps, so cargo does not rebuild candle on every pack).
if [ ! -f "$patched/.whyxray-dynamic-loading" ]; then
    rm -rf "$patched" && cp -a "$registry" "$patched"
    sed -i 's/^    "dynamic-linking",$/    "dynamic-loading",/' "$patched/Cargo.toml"
    touch "$patched/.whyxray-dynamic-loading"
fi
if [ "$(grep -c '"dynamic-loading",' "$patched/Cargo.toml")" != 1 ] ||
    grep -q dynamic-linking "$patched/Cargo.toml"; then
    echo "gpu-pack: candle-core's cudarc features are not as expected: $patched/Cargo.toml" >&2
    exit 1
fi
ws=$cache/workspace
rm -rf "$ws" && mkdir -p "$ws"
for d in src examples assets; do ln -s "$PWD/$d" "$ws/$d"; done
cp Cargo.lock "$ws/"
{ cat Cargo.toml; printf '\n[patch.crates-io]\ncandle-core = { path = "%s" }\n' "$patched"; } \
    > "$ws/Cargo.toml"
cargo build --offline --release --features cuda --bin whyxray --example bench \
    --manifest-path "$ws/Cargo.toml" --target-dir "$PWD/target/gpu-pack"
# The patch may change the lock file only in candle-core's own entry (its source and checksum).
changed=$(diff Cargo.lock "$ws/Cargo.lock" | grep -E '^[<>]' | grep -v -E '^< (source|checksum) = ' || true)
if [ -n "$changed" ]; then
    echo "gpu-pack: the patched build resolved other dependencies:" >&2
    echo "$changed" >&2
    exit 1
fi
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

# What a machine without a GPU can check:
# - the binaries name no CUDA library, so they start where none is installed;
# - the packed binary scores on the CPU exactly as the CPU build does, with no CUDA library
#   anywhere on the library path;
# - `--device cuda` is exit 2 with a message naming what is missing, not a crash or a hang:
#   with no driver at all, and with a driver that finds no GPU (a stub libcuda.so.1 whose
#   cuInit answers CUDA_ERROR_NO_DEVICE).
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
tar -C "$bin" -xJf "$out/bin.tar.xz"
for b in whyxray bench; do
    needed=$(readelf -d "$bin/$b" | grep NEEDED)
    if grep -q -E 'lib(cu|nv)' <<<"$needed"; then
        echo "gpu-pack: $b still names CUDA libraries: $needed" >&2
        exit 1
    fi
done
echo "the binaries need only: $(readelf -d "$bin/whyxray" | grep NEEDED | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
libraries=$(/sbin/ldconfig -p) || { echo "gpu-pack: ldconfig -p failed" >&2; exit 1; }
if grep -q libcuda.so <<<"$libraries"; then
    echo "gpu-pack: this machine has libcuda.so: the no-driver checks below would not test it" >&2
    exit 1
fi
unset LD_LIBRARY_PATH
"$bin/whyxray" --version
img=tests/data/nih_00000001_000.png
export HF_HUB_CACHE=tests/fixtures/hub HF_HUB_OFFLINE=1
cpu_build=target/release/whyxray
# The reference: this tree's CPU build (without the pack's RUSTFLAGS, which would make the next
# plain build start over).
env -u RUSTFLAGS cargo build --locked --release --bin whyxray
want=$("$cpu_build" classify "$img" --labels "enlarged heart,pleural effusion" --format csv -q)
got=$("$bin/whyxray" classify "$img" --labels "enlarged heart,pleural effusion" --format csv \
    --device cpu -q)
if [ "$got" != "$want" ]; then
    echo "gpu-pack: the packed binary's CPU scores differ: $got vs $want" >&2
    exit 1
fi
echo "--device cpu: the same scores as the CPU build"
got=$("$bin/whyxray" classify "$img" --labels "enlarged heart,pleural effusion" --format csv \
    --device auto -q)
[ "$got" = "$want" ] || { echo "gpu-pack: --device auto without a GPU did not fall back to the CPU" >&2; exit 1; }
echo "--device auto without a driver: the CPU, the same scores"
cuda_fails() { # WHAT PATTERN: --device cuda must be exit 2 with PATTERN in its message
    set +e
    msg=$(RUST_BACKTRACE=0 timeout 60 "$bin/whyxray" classify "$img" --labels "a,b" --device cuda -q 2>&1 >/dev/null)
    rc=$?
    set -e
    echo "--device cuda $1: exit $rc: $msg"
    if [ "$rc" != 2 ] || ! grep -q -E "$2" <<<"$msg"; then
        echo "gpu-pack: --device cuda $1 should be exit 2 naming /$2/" >&2
        exit 1
    fi
}
cuda_fails "with no driver" 'libcuda\.so'
cat > "$bin/stub.c" <<'C'
/* A driver that finds no GPU: what cudarc calls first, and what it formats errors with. */
int cuInit(unsigned flags) { return 100; /* CUDA_ERROR_NO_DEVICE */ }
int cuGetErrorName(int e, const char **s) { *s = "CUDA_ERROR_NO_DEVICE"; return 0; }
int cuGetErrorString(int e, const char **s) { *s = "no CUDA-capable device is detected"; return 0; }
C
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$bin/libcuda.so.1" "$bin/stub.c"
LD_LIBRARY_PATH=$bin cuda_fails "with a driver that finds no GPU" 'NO_DEVICE|no CUDA-capable'
ls -la "$out" "$out/wheels"
echo "gpu-pack: $out ready ($(du -sm "$out" | cut -f1) MiB)"
