#!/usr/bin/env bash
# Full training step (forward, backward, clipping, AdamW) of cloze vs PyTorch's
# BertForPreTraining on the same configs in the same session, alternating implementations so
# machine noise hits all of them alike. Configs: tiny, mini, base (vocabulary 30,522, sequence
# 128) and repro, paper-repro's own pre-training shape (see examples/train_step.rs). On a CPU
# with AVX-512, cloze also runs with CLOZE_KERNEL=avx2, the path most researchers' CPUs take,
# and PyTorch runs a second time held to AVX2 (ATen, MKL and oneDNN), so that the AVX2 rows
# compare AVX2 with AVX2.
# Writes the markdown tables to target/bench/train_step.md (raw JSON lines beside it). PyTorch
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
cargo build --release --example train_step --example fma_peak >/dev/null
bin=./target/release/examples/train_step
peak=./target/release/examples/fma_peak
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
    # this session's FMA peak per path, beside the steps (report.py reads the step rows
    # against it: GFLOP/s per step over peak x threads)
    for isa in "${isas[@]}"; do
      if [ "$isa" = default ]; then "$peak" >> "$raw"; else CLOZE_KERNEL=$isa "$peak" >> "$raw"; fi
    done
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
          if [ "${#isas[@]}" -gt 1 ]; then
            TORCH_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
              python3 benches/pytorch_step.py "$name" "$1" "$2" "$v" "$threads" >> "$raw"
          fi
        done
      fi
    done
  done
done
# One table per kernel path in the file, by the same code that writes BENCHMARKS.md.
python3 benches/report.py --print-train-step "$raw" > "$out/train_step.md"
cat "$out/train_step.md"
