#!/usr/bin/env bash
# bf16 mixed-precision training against f32, and against PyTorch's CPU autocast, in one
# session:
#  1. step time: examples/train_step (mini and base, 1 and 2 threads) in f32 and bf16, and
#     benches/pytorch_step.py's masked step in f32 and under torch.autocast(bfloat16),
#     alternating;
#  2. held-out loss: the same mini pre-training (paper-repro's quick data, LOSS_STEPS steps)
#     in f32 and bf16 for seeds 1-3, scored in f32.
# Needs a CPU with AVX512-BF16 (cloze refuses precision = "bf16" elsewhere). Part 2 needs
# paper-repro's prepared quick data (`cargo run --release -p paper-repro -- all --scale quick`
# writes it to paper-repro/runs/quick/data; DATA=... points elsewhere).
# Writes target/bench/bf16.jsonl and the tables to target/bench/bf16.md; then
#   python3 benches/report.py --isa avx512 --only-bf16
# puts them into BENCHMARKS.md.
#   REPS=2 LOSS_STEPS=600 bash benches/bf16.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null; then
  echo "this CPU has no AVX512-BF16: bf16 training is refused here, nothing to measure" >&2
  exit 1
fi
out=target/bench
mkdir -p "$out"
raw="$out/bf16.jsonl"
: > "$raw"
cargo build --release --example train_step --bin cloze >/dev/null
bin=./target/release/examples/train_step
have_torch=0
python3 -c "import torch, transformers" 2>/dev/null && have_torch=1
reps=${REPS:-2}
declare -A plan=([tiny]="32 5" [mini]="32 3" [base]="8 2")
for name in ${CONFIGS:-mini base}; do
  set -- ${plan[$name]}
  for rep in $(seq "$reps"); do
    for threads in 1 2; do
      for p in f32 bf16; do
        RAYON_NUM_THREADS=$threads "$bin" "$name" "$1" "$2" "$p" >> "$raw"
      done
      if [ "$have_torch" = 1 ]; then
        for v in masked masked-bf16; do
          python3 benches/pytorch_step.py "$name" "$1" "$2" "$v" "$threads" >> "$raw"
        done
      fi
    done
  done
done

data=${DATA:-paper-repro/runs/quick/data}
steps=${LOSS_STEPS:-600}
if [ -f "$data/train.txt" ] && [ -f "$data/heldout.txt" ] && [ -f "$data/vocab.txt" ]; then
  data=$(cd "$data" && pwd)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  for seed in 1 2 3; do
    for p in f32 bf16; do
      dir="$work/$p-$seed"
      mkdir -p "$dir"
      # mini (L4 H256 A4) on paper-repro's quick data and recipe (40% masked in training,
      # 15% held out, unigram LM bias, sinusoidal positions, no dropout)
      cat > "$dir/pretrain.toml" <<EOF
output_dir = "$dir/run"
[model]
preset = "mini"
hidden_dropout_prob = 0.0
attention_probs_dropout_prob = 0.0
[data]
vocab = "$data/vocab.txt"
train = "$data/train.txt"
heldout = "$data/heldout.txt"
max_seq_length = 128
masked_lm_prob = 0.4
max_predictions_per_seq = 52
heldout_masked_lm_prob = 0.15
heldout_max_predictions_per_seq = 20
[train]
objective = "mlm+nsp"
batch_size = 32
steps = $steps
learning_rate = 1e-3
warmup_steps = $((steps / 10))
seed = $seed
log_every = 50
eval_batches = 20
init_lm_bias = "unigram"
init_positions = "sinusoidal"
precision = "$p"
EOF
      ./target/release/cloze pretrain --config "$dir/pretrain.toml" > "$dir/log.txt" 2>&1
      python3 - "$dir/run/metrics.jsonl" "$p" "$seed" "$steps" >> "$raw" <<'PY'
import json, sys
path, precision, seed, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
evals = [json.loads(l) for l in open(path) if '"eval_lm_loss"' in l]
train = [json.loads(l) for l in open(path) if '"tokens_per_second"' in l]
print(json.dumps({"kind": "loss", "config": "mini", "precision": precision, "seed": seed, "steps": steps,
                  "what": "L4/H256/A4, sequence 128, batch 32, paper-repro's quick data and recipe",
                  "heldout_lm_loss": evals[-1]["eval_lm_loss"],
                  "heldout_unigram_loss": evals[-1].get("eval_lm_unigram_loss"),
                  "tokens_per_second": train[-1]["tokens_per_second"]}))
PY
    done
  done
else
  echo "no prepared data in $data: skipping the held-out loss comparison" >&2
fi
python3 benches/report.py --print-bf16 "$raw" > "$out/bf16.md"
cat "$out/bf16.md"
