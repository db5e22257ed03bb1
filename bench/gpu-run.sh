#!/usr/bin/env bash
# Copied into the GPU pack as run.sh by bench/gpu-pack.sh. On the GPU machine, from the
# repository root (the device tool runs there, with the pack carried):
#
#   bash gpu-pack/run.sh [WORKDIR]
#
# Unpacks the binaries, puts the NVIDIA libraries of the machine's PyTorch on the library
# path, installs the carried wheels into a temporary folder and runs bench/gpu.sh, whose
# table lands in $OUT (the device tool's) or WORKDIR as gpu-table.md, each step's stderr in
# logs/ beside it.
set -euo pipefail
pack=$(cd "$(dirname "$0")" && pwd)
cd "$pack/.."
py=${PYTHON:-python3}
tmp=$(mktemp -d)
"$py" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
    "$pack/bin.tar.xz" "$tmp"
# PyTorch's wheels carry cuBLAS, cuRAND and the CUDA runtime (nvidia/cu13/lib and the like).
libs=$("$py" - <<'PY'
import glob, os, site
dirs = {os.path.dirname(f) for s in site.getsitepackages()
        for f in glob.glob(os.path.join(s, "nvidia", "**", "lib*.so*"), recursive=True)}
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The pack opens libraries by name at run time, unversioned name first: a CUDA `stubs` folder
# on the path would hand it the link-time stub of libcuda.so (CUDA_ERROR_STUB_LIBRARY).
case ":$LD_LIBRARY_PATH:" in
*/stubs:*) echo "run.sh: warning: a stubs folder is on LD_LIBRARY_PATH: $LD_LIBRARY_PATH" >&2 ;;
esac
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$tmp/site" \
    "$pack"/wheels/*.whl
export PYTHONPATH=$tmp/site${PYTHONPATH:+:$PYTHONPATH}
echo "pack built from $(cat "$pack/commit"); $("$tmp/whyxray" --version)"
work=${1:-$tmp/work}
table=${OUT:-$work}/gpu-table.md
mkdir -p "$(dirname "$table")"
WHYXRAY=$tmp/whyxray BENCH=$tmp/bench GPU_TABLE=$table GPU_LOGS=$(dirname "$table")/logs \
    bash bench/gpu.sh "$work"
