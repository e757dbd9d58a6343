#!/usr/bin/env bash
# Regenerates this machine's sections of BENCHMARKS.md: the machine's limits, every criterion
# bench once per kernel path (the best path, and AVX2 as well on an AVX-512 CPU, since most
# researchers' CPUs take that path), the attention memory probe, the training step against
# PyTorch (benches/train_step.sh), sentence embeddings against sentence-transformers
# (benches/embed.sh), bf16 training against f32 and PyTorch's autocast
# (benches/bf16.sh, on CPUs with AVX512-BF16), the MPI scaling table when mpirun exists, then
# benches/report.py once per path. Sections other machines wrote are kept. Run on a quiet
# machine; takes about an hour on 2 cores.
#   PATHS="avx2" bash benches/report.sh     # one path only
set -euo pipefail
cd "$(dirname "$0")/.."
best=avx2
grep -q avx512f /proc/cpuinfo 2>/dev/null && best=avx512
grep -q avx2 /proc/cpuinfo 2>/dev/null || best=portable
[ "$(uname -m)" = aarch64 ] && best=neon
paths=${PATHS:-$([ "$best" = avx512 ] && echo "avx512 avx2" || echo "$best")}
mkdir -p target/bench
echo "== cargo bench --bench machine_limits"
CRITERION_HOME=target/criterion/limits cargo bench --bench machine_limits 2>&1 | grep -E "time:|thrpt:|^[a-z_0-9]+/" || true
cargo build --release --example attention_memory >/dev/null
for isa in $paths; do
  for b in gemm attention attention_engine kernels_bw tape_overhead; do
    echo "== CLOZE_KERNEL=$isa cargo bench --bench $b"
    CLOZE_KERNEL=$isa CRITERION_HOME=target/criterion/$isa cargo bench --bench "$b" 2>&1 \
      | grep -E "time:|thrpt:|^[a-z_0-9]+/" || true
  done
  # Peak memory of the attention op, one process per measurement.
  : > "target/bench/attention_memory-$isa.jsonl"
  for t in 128 512 1024; do
    for impl in fused unfused; do
      CLOZE_KERNEL=$isa ./target/release/examples/attention_memory "$impl" "$t" >> "target/bench/attention_memory-$isa.jsonl"
    done
  done
done
if python3 -c "import torch" 2>/dev/null; then
  python3 benches/pytorch_attention.py 2 > target/bench/pytorch_attention.jsonl
fi
bash benches/train_step.sh
# sentence embeddings against sentence-transformers (when it is installed)
if python3 -c "import sentence_transformers" 2>/dev/null; then
  bash benches/embed.sh
fi
# bf16 mixed-precision training (only where the CPU has AVX512-BF16; report.py adds its
# tables to the AVX-512 section)
if grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null; then
  bash benches/bf16.sh
fi
extra=()
if command -v mpirun >/dev/null; then
  bash benches/mpi_scaling.sh
  extra+=(--extra target/bench/mpi_scaling.md)
fi
for isa in $paths; do
  if [ "$isa" = "$best" ]; then
    python3 benches/report.py --isa "$isa" "${extra[@]}"
  else
    python3 benches/report.py --isa "$isa"
  fi
done
