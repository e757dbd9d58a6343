#!/usr/bin/env bash
# bf16 mixed-precision training against f32, and against PyTorch's CPU autocast, in one
# session:
#  1. step time: examples/train_step (mini and base, 1 and 2 threads) in f32 and bf16, and
#     benches/pytorch_step.py's masked step in f32 and under torch.autocast(bfloat16),
#     alternating;
#  2. held-out loss: paper-repro's default pre-training model (L2/H128/A2, seq 64, batch 32)
#     on its quick data and recipe, MLM only so that it leaves the unigram plateau early,
#     LOSS_STEPS steps in f32 and bf16 for seeds 1-3 (the two precisions of a seed run side by
#     side on 1 thread each), scored in f32.
# Needs a CPU with AVX512-BF16 (cloze refuses precision = "bf16" elsewhere). Part 2 needs
# paper-repro's prepared quick data (`cargo run --release -p paper-repro -- all --scale quick`
# writes it to paper-repro/runs/quick/data; DATA=... points elsewhere).
# Writes target/bench/bf16.jsonl and the tables to target/bench/bf16.md; then
#   python3 benches/report.py --isa avx512 --only-bf16
# puts them into BENCHMARKS.md.
#   REPS=2 LOSS_STEPS=3000 bash benches/bf16.sh
#   PARTS=loss bash benches/bf16.sh      # only part 2 (replaces the loss rows, keeps the rest)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null; then
  echo "this CPU has no AVX512-BF16: bf16 training is refused here, nothing to measure" >&2
  exit 1
fi
out=target/bench
mkdir -p "$out"
raw="$out/bf16.jsonl"
parts=${PARTS:-speed loss}
if [[ " $parts " == *" speed "* ]]; then
  : > "$raw"
elif [ -f "$raw" ]; then
  grep -v '"kind": "loss"' "$raw" > "$raw.keep" || true
  mv "$raw.keep" "$raw"
fi
cargo build --release --example train_step --bin cloze >/dev/null
bin=./target/release/examples/train_step
have_torch=0
python3 -c "import torch, transformers" 2>/dev/null && have_torch=1
reps=${REPS:-2}
declare -A plan=([tiny]="32 5" [mini]="32 3" [base]="8 2")
[[ " $parts " == *" speed "* ]] && for name in ${CONFIGS:-mini base}; do
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
steps=${LOSS_STEPS:-3000}
if [[ " $parts " != *" loss "* ]]; then
  :
elif [ -f "$data/train.txt" ] && [ -f "$data/heldout.txt" ] && [ -f "$data/vocab.txt" ]; then
  data=$(cd "$data" && pwd)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  run_one() {  # precision seed
    local p=$1 seed=$2 dir="$work/$1-$2"
    mkdir -p "$dir"
    cat > "$dir/pretrain.toml" <<EOF
output_dir = "$dir/run"
[model]
preset = "tiny"
num_hidden_layers = 2
hidden_size = 128
num_attention_heads = 2
intermediate_size = 512
hidden_dropout_prob = 0.0
attention_probs_dropout_prob = 0.0
max_position_embeddings = 128
[data]
vocab = "$data/vocab.txt"
train = "$data/train.txt"
heldout = "$data/heldout.txt"
max_seq_length = 64
masked_lm_prob = 0.4
max_predictions_per_seq = 26
heldout_masked_lm_prob = 0.15
heldout_max_predictions_per_seq = 10
dupe_factor = 2
[train]
objective = "mlm"
batch_size = 32
steps = $steps
learning_rate = 1e-3
warmup_steps = $((steps / 20))
seed = $seed
log_every = 100
eval_batches = 40
init_lm_bias = "unigram"
init_positions = "sinusoidal"
precision = "$p"
EOF
    ./target/release/cloze pretrain --config "$dir/pretrain.toml" --threads 1 > "$dir/log.txt" 2>&1
  }
  for seed in 1 2 3; do
    run_one f32 "$seed" &
    run_one bf16 "$seed" &
    wait
    for p in f32 bf16; do
      python3 - "$work/$p-$seed/run/metrics.jsonl" "$p" "$seed" "$steps" >> "$raw" <<'PY'
import json, sys
path, precision, seed, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
evals = [json.loads(l) for l in open(path) if '"eval_lm_loss"' in l]
print(json.dumps({"kind": "loss", "config": "repro", "precision": precision, "seed": seed, "steps": steps,
                  "what": "paper-repro's L2/H128/A2 at sequence 64, batch 32, on its quick data and recipe, MLM only",
                  "heldout_lm_loss": evals[-1]["eval_lm_loss"],
                  "heldout_unigram_loss": evals[-1].get("eval_lm_unigram_loss"),
                  "heldout_context_free_loss": evals[-1].get("eval_lm_context_free_loss")}))
PY
    done
  done
else
  echo "no prepared data in $data: skipping the held-out loss comparison" >&2
fi
python3 benches/report.py --print-bf16 "$raw" > "$out/bf16.md"
cat "$out/bf16.md"
