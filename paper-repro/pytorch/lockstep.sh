#!/usr/bin/env bash
# Lock-step engine check: cloze and PyTorch (HF BertForPreTraining) trained from the same
# initial weights on the same batches, their per-step losses compared. Writes
# paper-repro/results/<scale>/pytorch-lockstep.json for the report's "Engine check" section.
#
#   pip install torch transformers
#   bash paper-repro/pytorch/lockstep.sh        # after `paper-repro all --scale quick` built the corpus
#
# 1. `paper-repro lockstep stream` writes the default row's first LOCKSTEP_STEPS batches
#    (seed 1), as cloze's trainer reads them;
# 2. mlm_reference.py initialises its model as usual, saves that initialisation, and trains
#    on the stream (the schedule spans the scale's 6000 steps, as in the real run);
# 3. `paper-repro lockstep train` loads PyTorch's initialisation into cloze and trains on the
#    same stream.
# 4. the same cloze run on other kernels (AVX2, or portable), as a control for how fast
#    rounding alone separates two runs.
# About 6 minutes for the default 1500 steps on an AVX-512 machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/paper-repro/pytorch/recipe.sh"
scale="${LOCKSTEP_SCALE:-quick}"
scale_dirs "$scale"
steps="${LOCKSTEP_STEPS:-1500}"
total=6000
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
pr=(cargo run --release -q -p paper-repro -- lockstep --scale "$scale")
"${pr[@]}" stream --steps "$steps" --out "$out/stream.jsonl"
recipe_args "$data" "$total"
python3 "$root/paper-repro/pytorch/mlm_reference.py" "${args[@]}" --out "$out/metrics.jsonl" \
  --instances "$out/stream.jsonl" --save-init "$out/init" --stop-after "$steps" \
  --steplog "$out/pytorch.txt"
"${pr[@]}" train --steps "$steps" --init "$out/init" --out "$out/cloze.txt"
# The control: cloze against itself on other kernels (other rounding, same maths), to show how
# fast two correct runs of the same computation drift apart: AVX2 where the default is
# AVX-512, else the portable ones (slower: about 10 minutes).
control=portable
grep -q avx512f /proc/cpuinfo 2>/dev/null && control=avx2
CLOZE_KERNEL=$control "${pr[@]}" train --steps "$steps" --init "$out/init" --out "$out/cloze-control.txt"
python3 - "$out" "$results/pytorch-lockstep.json" "$scale" "$control" <<'PY'
import json, statistics, sys
def read(name):
    path = f"{sys.argv[1]}/{name}.txt"
    return {int(s): (float(m), float(n)) for s, m, n, *_ in (l.split() for l in open(path) if l.strip())}
c, p, q = read("cloze"), read("pytorch"), read("cloze-control")
steps = sorted(set(c) & set(p) & set(q))
assert steps and steps == list(range(1, len(steps) + 1)), "the step logs do not line up"
edges = [e for e in (10, 100, 300, 600, 1000, 1500, 3000, 6000) if e < steps[-1]] + [steps[-1]]
def max_abs(a, b, ss, k=0):
    return round(max(abs(a[s][k] - b[s][k]) for s in ss), 6)
windows, lo = [], 1
for hi in edges:
    ss = [s for s in steps if lo <= s <= hi]
    windows.append(dict(first=lo, last=hi,
                        cloze_mlm=round(statistics.mean(c[s][0] for s in ss), 5),
                        pytorch_mlm=round(statistics.mean(p[s][0] for s in ss), 5),
                        mean_diff=round(statistics.mean(c[s][0] - p[s][0] for s in ss), 6),
                        max_abs_diff=max_abs(c, p, ss), max_abs_diff_nsp=max_abs(c, p, ss, 1),
                        max_abs_diff_control=max_abs(c, q, ss)))
    lo = hi + 1
def first_above(a, b):
    return next((s for s in steps if abs(a[s][0] - b[s][0]) > 1e-3), None)
out = dict(steps=steps[-1], windows=windows, first_step_mlm_diff_above_1e3=first_above(c, p),
           first_step_mlm_diff_above_1e3_control=first_above(c, q), control_kernel=sys.argv[4],
           command=f"LOCKSTEP_SCALE={sys.argv[3]} bash paper-repro/pytorch/lockstep.sh")
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=2)
print(json.dumps(out, indent=2))
PY
