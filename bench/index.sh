#!/usr/bin/env bash
# Index benchmark (issue: subgroups and search). Not run by CI. Prints a table:
#   1. search: one query against a random 400,000 x 768 float32 index, after the index is in
#      the page cache: wall time and peak RSS (the query as an embedding row, --queries, so
#      no model is loaded; see the README for a text query with the model).
#   2. duplicates: all pairs of a random 100,000 x 768 index at cosine >= 0.95 (100 planted
#      near copies), wall time and peak RSS; beside it, this machine's float32 GEMM ceiling.
# Usage: bench/index.sh [WORKDIR]   (needs 1.6 GB of disk; ~3 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/whyxray-index-bench}
mkdir -p "$work"
cargo build --release --locked --quiet --bin whyxray --example bench
bin=target/release/whyxray
bench=target/release/examples/bench
[ -f "$work/big.npy" ] || $bench make-index "$work/big.npy" 400000 768 1 > /dev/null
[ -f "$work/q.npy" ] || $bench make-index "$work/q.npy" 1 768 2 > /dev/null
[ -f "$work/dup.npy" ] || $bench make-index "$work/dup.npy" 100000 768 3 100 > /dev/null
cat "$work/big.npy" "$work/dup.npy" > /dev/null   # into the page cache
timed() { /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null 2> "$work/err" || { cat "$work/err"; exit 1; }; cat "$work/t"; }
read -r s_secs s_rss < <(timed $bin search --index "$work/big.npy" --queries "$work/q.npy" -k 10 -q)
read -r d_secs d_rss < <(timed $bin duplicates --index "$work/dup.npy" --min-cos 0.95 -q)
pairs=$($bin duplicates --index "$work/dup.npy" --min-cos 0.95 -q | tail -n +2 | wc -l)
ceiling=$($bench gemm 4096 4096 768 | sed 's/.*: \([0-9]*\) GFLOP.*/\1/')
index_mib=$(( $(stat -c %s "$work/big.npy") / 1048576 ))
dup_gflop=$(echo "100000 * 99999 / 2 * 768 * 2 / 1000000000" | bc -l)
echo "| measure | measured | target |"
echo "|---|---|---|"
printf '| search, 1 query, 400,000 x 768 index (%d MiB) | %.2f s, peak RSS %d MiB | <= 0.5 s, < index + 200 MiB |\n' "$index_mib" "$s_secs" "$((s_rss / 1024))"
printf '| duplicates, 100,000 x 100,000 x 768, cosine >= 0.95 | %.1f s (%d pairs), peak RSS %d MiB | <= 180 s, bounded by the block |\n' "$d_secs" "$pairs" "$((d_rss / 1024))"
printf '| that is | %.0f GFLOP/s of the pairs'"'"' GEMM, against gemm'"'"'s ceiling here %s GFLOP/s | |\n' "$(echo "$dup_gflop / $d_secs" | bc -l)" "$ceiling"
