#!/usr/bin/env bash
# Paired A/B timing of two builds of the same program, for kernel work on noisy shared machines.
#
#   benches/ab.sh [-n PAIRS] OLD_BINARY NEW_BINARY [ARGS...]
#
# Runs OLD and NEW with the same ARGS, alternating (old first in odd pairs, new first in even
# pairs, so a drift in the machine's speed hits both alike), PAIRS times (default 6). Each run
# must print one JSON line with a speed field: `ms_per_step` (examples/train_step; lower is
# better) or `gflops_median` (examples/gemm_shape; higher is better). Prints each pair's
# new/old time ratio, then the median ratio and the range of the pairs: below 1 means NEW is
# faster. Keep the binaries outside target/ (copy them) so a rebuild cannot swap one mid-run.
#
# Example, the repro training step on one thread, before and after a change:
#   cp target/release/examples/train_step /tmp/old   # before the change
#   cargo build --release --example train_step && cp target/release/examples/train_step /tmp/new
#   RAYON_NUM_THREADS=1 bash benches/ab.sh -n 8 /tmp/old /tmp/new repro 32 20
set -euo pipefail
pairs=6
if [ "${1:-}" = "-n" ]; then
  pairs=$2
  shift 2
fi
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
old=$1 new=$2
shift 2
for bin in "$old" "$new"; do
  [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable file" >&2; exit 2; }
done
case $pairs in
  '' | *[!0-9]* | 0) echo "ab.sh: PAIRS must be a positive integer, got '$pairs'" >&2; exit 2 ;;
esac
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cpus)"
echo "args: $*  threads: ${RAYON_NUM_THREADS:-all}  kernel: ${CLOZE_KERNEL:-default}"
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for i in $(seq "$pairs"); do
  if [ $((i % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for which in $order; do
    if [ "$which" = old ]; then bin=$old; else bin=$new; fi
    line=$("$bin" "$@" | tail -n 1)
    echo "$i $which $line" >> "$runs"
  done
done
python3 - "$runs" <<'EOF'
import json, statistics, sys

pairs = {}
for raw in open(sys.argv[1]):
    i, which, line = raw.split(" ", 2)
    rec = json.loads(line)
    if "ms_per_step" in rec:
        t = rec["ms_per_step"]
    elif "gflops_median" in rec:
        t = 1.0 / rec["gflops_median"]
    else:
        sys.exit(f"ab.sh: no ms_per_step or gflops_median in the output: {line.strip()}")
    pairs.setdefault(int(i), {})[which] = (t, rec)
ratios = []
for i in sorted(pairs):
    p = pairs[i]
    r = p["new"][0] / p["old"][0]
    ratios.append(r)
    shown = {w: p[w][1].get("ms_per_step", p[w][1].get("gflops_median")) for w in ("old", "new")}
    print(f"pair {i}: old {shown['old']:.2f}  new {shown['new']:.2f}  new/old time {r:.3f}")
print(
    f"new/old time: median {statistics.median(ratios):.3f} "
    f"(pairs {min(ratios):.3f}..{max(ratios):.3f}, {len(ratios)} pairs); below 1: new is faster"
)
EOF
