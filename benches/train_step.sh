#!/usr/bin/env bash
# Full training step (forward, backward, clipping, AdamW) of cloze vs PyTorch's
# BertForPreTraining on the same configs in the same session, alternating implementations so
# machine noise hits all of them alike. Configs: tiny, mini, base (vocabulary 30,522, sequence
# 128) and repro, paper-repro's own pre-training shape (see examples/train_step.rs). On a CPU
# with AVX-512, cloze also runs with CLOZE_KERNEL=avx2, the path most researchers' CPUs take.
# Writes a markdown table to target/bench/train_step.md (raw JSON lines beside it). PyTorch
# columns appear only when `python3 -c "import torch, transformers"` works.
#   REPS=3 CONFIGS="repro tiny" bash benches/train_step.sh
# then, to put the table into BENCHMARKS.md without rerunning the kernel benches:
#   python3 benches/report.py --isa avx512 --only-train-step   (and --isa avx2)
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"
raw="$out/train_step.jsonl"
: > "$raw"
cargo build --release --example train_step >/dev/null
bin=./target/release/examples/train_step
have_torch=0
python3 -c "import torch, transformers" 2>/dev/null && have_torch=1
isas=(default)
grep -q avx512f /proc/cpuinfo 2>/dev/null && isas+=(avx2)
reps=${REPS:-2}
# config, batch, timed steps
declare -A plan=([repro]="32 20" [tiny]="32 5" [mini]="32 3" [base]="8 2")
for name in ${CONFIGS:-repro tiny mini base}; do
  set -- ${plan[$name]}
  for rep in $(seq "$reps"); do
    for threads in 1 2; do
      for isa in "${isas[@]}"; do
        if [ "$isa" = default ]; then
          RAYON_NUM_THREADS=$threads "$bin" "$name" "$1" "$2" >> "$raw"
        else
          CLOZE_KERNEL=$isa RAYON_NUM_THREADS=$threads "$bin" "$name" "$1" "$2" >> "$raw"
        fi
      done
      if [ "$have_torch" = 1 ]; then
        for v in masked stock; do
          python3 benches/pytorch_step.py "$name" "$1" "$2" "$v" "$threads" >> "$raw"
        done
      fi
    done
  done
done
python3 - "$raw" > "$out/train_step.md" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def impl(r):
    return f"cloze ({r['isa']})" if r["impl"] == "cloze" else r["impl"]
groups = {}
for r in rows:
    groups.setdefault((r["config"], r["threads"]), {}).setdefault(impl(r), []).append(r)
order = {"repro": 0, "tiny": 1, "mini": 2, "base": 3}
print("## Training step: cloze vs PyTorch (same session, alternating)")
print()
print("Full step (forward, backward, clipping, AdamW) of BertForPreTraining on synthetic data.")
print("tiny/mini/base: sequence 128, vocabulary 30,522, 20 masked positions per sequence, dropout")
print("0.1. repro: paper-repro's pre-training shape (L2/H128/A2, sequence 64, vocabulary 8,192, 26")
print("masked positions per sequence, dropout 0). Median ms per step within each run, then the")
print("median over runs. `pytorch-masked` applies the MLM head to the masked positions only (as the")
print("reference implementation and cloze do); `pytorch-stock` is HF's BertForPreTraining as shipped")
print("(MLM logits at every position). The speed-up is PyTorch-masked's time over cloze's, same")
print("config, threads and session. Peak memory is the process's maximum resident set. Produced by")
print("`bash benches/train_step.sh`.")
print()
print("| config | threads | impl | ms/step | tokens/s | peak MiB | speed-up vs pytorch-masked |")
print("|---|---|---|---|---|---|---|")
for (cfg, th), impls in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
    med = {k: statistics.median(r["ms_per_step"] for r in v) for k, v in impls.items()}
    for name, v in sorted(impls.items()):
        ms = med[name]
        tps = v[0]["batch"] * v[0]["seq"] / (ms / 1e3)
        mem = max(r["peak_rss_mib"] for r in v)
        ratio = ""
        if name.startswith("cloze") and "pytorch-masked" in med:
            ratio = f"**{med['pytorch-masked'] / ms:.2f}×**"
        print(f"| {cfg} (batch {v[0]['batch']}) | {th} | {name} | {ms:.1f} | {tps:.0f} | {mem:.0f} | {ratio} |")
PY
cat "$out/train_step.md"
