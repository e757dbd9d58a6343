#!/usr/bin/env bash
# Full training step (forward, backward, AdamW) of cloze vs PyTorch's BertForPreTraining on
# the same configs in the same session, alternating implementations so machine noise hits all
# of them alike. Writes a markdown table to target/bench/train_step.md (and the raw JSON
# lines beside it). PyTorch rows appear only when `python3 -c "import torch, transformers"`
# works.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"
raw="$out/train_step.jsonl"
: > "$raw"
cargo build --release --example train_step >/dev/null
have_torch=0
python3 -c "import torch, transformers" 2>/dev/null && have_torch=1
reps=${REPS:-2}
for cfg in "mini 32 3" "base 8 2"; do
  set -- $cfg
  for rep in $(seq "$reps"); do
    for threads in 1 2; do
      RAYON_NUM_THREADS=$threads ./target/release/examples/train_step "$1" "$2" "$3" >> "$raw"
      if [ "$have_torch" = 1 ]; then
        for v in masked stock; do
          python3 benches/pytorch_step.py "$1" "$2" "$3" "$v" "$threads" >> "$raw"
        done
      fi
    done
  done
done
python3 - "$raw" > "$out/train_step.md" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
key = lambda r: (r["config"], r["threads"])
groups = {}
for r in rows:
    groups.setdefault(key(r), {}).setdefault(r["impl"], []).append(r)
print("## Training step: cloze vs PyTorch (same session, alternating)")
print()
print("Full step (forward, backward, clipping, AdamW) of BertForPreTraining at sequence length 128,")
print("vocabulary 30,522, synthetic data, 20 masked positions per sequence. Median ms per step of")
print("each run, then the median over runs. `pytorch-masked` applies the MLM head to the masked")
print("positions only (as the reference implementation and cloze do); `pytorch-stock` is HF's")
print("BertForPreTraining as shipped (MLM logits at every position). Peak memory is the process's")
print("maximum resident set. Produced by `bash benches/train_step.sh`.")
print()
print("| config | threads | impl | ms/step | tokens/s | peak MiB | cloze speed-up |")
print("|---|---|---|---|---|---|---|")
for (cfg, th), impls in sorted(groups.items()):
    med = {k: statistics.median(r["ms_per_step"] for r in v) for k, v in impls.items()}
    for impl, v in sorted(impls.items()):
        ms = med[impl]
        tps = v[0]["batch"] * v[0]["seq"] / (ms / 1e3)
        mem = max(r["peak_rss_mib"] for r in v)
        ratio = f"{ms / med['cloze']:.2f}×" if "cloze" in med and impl != "cloze" else ""
        print(f"| {cfg} (batch {v[0]['batch']}) | {th} | {impl} | {ms:.0f} | {tps:.0f} | {mem:.0f} | {ratio} |")
PY
cat "$out/train_step.md"
