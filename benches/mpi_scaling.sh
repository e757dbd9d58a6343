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
# alternate the three set-ups, twice: 1 rank, 2 ranks with the reduction overlapped with the
# backward, 2 ranks reducing after the backward
for rep in 1 2; do
  for setup in 1:1 2:1 2:0; do
    np=${setup%:*}; ov=${setup#*:}
    rm -rf "$work/run"
    (cd "$work" && CLOZE_MPI_OVERLAP=$ov RAYON_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np $np \
       "$OLDPWD/target/release/cloze" pretrain --config run.toml >/dev/null 2>&1)
    cp "$work/run/metrics.jsonl" "$out/mpi_np${np}_ov${ov}_rep$rep.jsonl"
  done
done
rm -rf "$work"
python3 - "$out" > "$out/mpi_scaling.md" <<'PY'
import json, sys, statistics
out = sys.argv[1]
res = {}
for key in ("np1_ov1", "np2_ov1", "np2_ov0"):
    tps_all, share_all = [], []
    for rep in (1, 2):
        rows = [json.loads(l) for l in open(f"{out}/mpi_{key}_rep{rep}.jsonl") if "tokens_per_second" in l]
        rows = [r for r in rows if r["step"] > 2]          # skip warm-up steps
        tps = statistics.median(r["tokens_per_second"] for r in rows)
        comm = [b["comm_seconds"] - a["comm_seconds"] for a, b in zip(rows, rows[1:])]
        tps_all.append(tps)
        share_all.append(statistics.median(comm) / (32 * 128 / tps) if comm else 0.0)
    res[key] = (statistics.median(tps_all), statistics.median(share_all))
print("## Data-parallel scaling over MPI (this machine, 1 thread per rank)")
print()
print("mini (L4 H256 A4, vocabulary 30,522, 11.2M parameters: 45 MB of gradients per step),")
print("global batch 32 × 128 tokens, median over steps 3–12. Produced by `bash benches/mpi_scaling.sh`.")
print()
print("The all-reduce share is the time the step waits for the reduction (with overlap, only the")
print("part not hidden behind the backward). Each set-up ran twice, alternating; medians shown.")
print()
print("| set-up | tokens/s | speed-up over 1 rank | all-reduce share of step time |")
print("|---|---|---|---|")
names = {"np1_ov1": "1 rank", "np2_ov1": "2 ranks, reduction overlapped with backward", "np2_ov0": "2 ranks, reduction after backward"}
for key, name in names.items():
    tps, share = res[key]
    print(f"| {name} | {tps:.0f} | {tps / res['np1_ov1'][0]:.2f}× | {100 * share:.1f}% |")
PY
cat "$out/mpi_scaling.md"
