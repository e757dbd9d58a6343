#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same mini pre-training run (L4 H256, vocabulary
# 30,522, batch 32 × 128 tokens) on 1 and 2 MPI ranks with 1 thread each; tokens/s and the
# share of step time spent in the gradient all-reduce, from the runs' metrics logs. Writes
# target/bench/mpi_scaling.md. Needs Open MPI (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"
cargo build --release --features mpi --bin cloze >/dev/null
work=$(mktemp -d)
data=${CLOZE_SHARED:-$(pwd)/../shared}/data/pretrain-en
cat > "$work/run.toml" <<TOML
output_dir = "run"
[model]
preset = "mini"
[data]
vocab = "$(pwd)/$out/vocab-30522.txt"
train_vocab_size = 30522
train = "$data/train.txt"
heldout = "$data/valid.txt"
max_documents = 300
[train]
objective = "mlm+nsp"
batch_size = 32
steps = 12
learning_rate = 1e-4
warmup_steps = 2
seed = 1
log_every = 1
eval_every = 0
eval_batches = 1
checkpoint_every = 0
TOML
for np in 1 2; do
  rm -rf "$work/run"
  (cd "$work" && RAYON_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np $np \
     "$OLDPWD/target/release/cloze" pretrain --config run.toml >/dev/null 2>&1)
  cp "$work/run/metrics.jsonl" "$out/mpi_np$np.jsonl"
done
rm -rf "$work"
python3 - "$out" > "$out/mpi_scaling.md" <<'PY'
import json, sys, statistics
out = sys.argv[1]
res = {}
for np in (1, 2):
    rows = [json.loads(l) for l in open(f"{out}/mpi_np{np}.jsonl") if "tokens_per_second" in l]
    rows = [r for r in rows if r["step"] > 2]          # skip warm-up steps
    tps = statistics.median(r["tokens_per_second"] for r in rows)
    comm = [b["comm_seconds"] - a["comm_seconds"] for a, b in zip(rows, rows[1:])]
    step_s = 32 * 128 / tps
    res[np] = (tps, statistics.median(comm) / step_s if comm else 0.0)
print("## Data-parallel scaling over MPI (this machine, 1 thread per rank)")
print()
print("mini (L4 H256 A4, vocabulary 30,522, 11.2M parameters: 45 MB of gradients per step),")
print("global batch 32 × 128 tokens, median over steps 3–12. Produced by `bash benches/mpi_scaling.sh`.")
print()
print("| ranks | tokens/s | speed-up | all-reduce share of step time |")
print("|---|---|---|---|")
for np in (1, 2):
    tps, share = res[np]
    print(f"| {np} | {tps:.0f} | {tps / res[1][0]:.2f}× | {100 * share:.1f}% |")
PY
cat "$out/mpi_scaling.md"
