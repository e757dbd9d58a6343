#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: runs every criterion bench (machine limits first), the
# training-step comparison with PyTorch, then benches/report.py. Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in machine_limits gemm attention attention_engine kernels_bw tape_overhead; do
  echo "== cargo bench --bench $b"
  cargo bench --bench "$b" 2>&1 | grep -E "time:|thrpt:|^[a-z_0-9]+/" || true
done
mkdir -p target/bench
if python3 -c "import torch" 2>/dev/null; then
  python3 benches/pytorch_attention.py 2 > target/bench/pytorch_attention.jsonl
fi
# Peak memory of the attention op, one process per measurement.
cargo build --release --example attention_memory >/dev/null
: > target/bench/attention_memory.jsonl
for t in 128 512 1024; do
  for impl in fused unfused; do
    ./target/release/examples/attention_memory "$impl" "$t" >> target/bench/attention_memory.jsonl
  done
done
bash benches/train_step.sh
extra=(--extra target/bench/train_step.md)
if command -v mpirun >/dev/null; then
  bash benches/mpi_scaling.sh
  extra+=(--extra target/bench/mpi_scaling.md)
fi
python3 benches/report.py "${extra[@]}"
