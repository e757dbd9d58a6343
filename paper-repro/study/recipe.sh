#!/usr/bin/env bash
# The pre-training recipe study: one `cloze pretrain` run per recipe on the quick scale's corpus
# and vocabulary, judged on the held-out MLM loss only (never on a downstream set).
#
#   bash paper-repro/study/recipe.sh NAME [key=value ...]     # one run
#   bash paper-repro/study/recipe.sh --table                    # the table of every finished run
#
# Keys (default = the quick scale's pre-training before the study): steps, lr, warmup, batch,
# seq, maxpred, drop, layers, hidden, heads, obj, beta2, eps, bc (bias correction), wd, seed,
# dupe, prenorm (true/false), lmbias (zeros/unigram), positions (random/sinusoidal),
# init (initializer_range), every (eval interval), evalb (eval batches), mlmprob (training
# masking rate), evalmlmprob / evalmaxpred (the held-out set's masking, default the paper's
# 15% and 10 per sequence, so every run is scored on the same kind of positions), nspw (the
# NSP loss weight; 0 keeps NSP's sentence-pair data but trains on the MLM loss alone), clip
# (max_grad_norm).
#
# Needs the quick corpus (`cargo run --release -p paper-repro -- plan --scale quick` builds it
# under paper-repro/runs/quick/data) and `cargo build --release --bin cloze`. Each run uses
# one thread (RAYON_NUM_THREADS, default 1); run two at a time on a 2-core machine.
# Outputs: $STUDY_DIR (default paper-repro/runs/recipe-study)/NAME/{config.toml,metrics.jsonl}.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
study="${STUDY_DIR:-$root/paper-repro/runs/recipe-study}"
data="${STUDY_DATA:-$root/paper-repro/runs/quick/data}"

if [[ "${1:-}" == "--table" ]]; then
  python3 - "$study" <<'PY'
import json, pathlib, sys
rows = []
for m in sorted(pathlib.Path(sys.argv[1]).glob("*/metrics.jsonl")):
    evals = [json.loads(l) for l in m.read_text().splitlines() if '"eval_lm_loss"' in l]
    if not evals:
        continue
    cfg = (m.parent / "study-args.txt").read_text().strip() if (m.parent / "study-args.txt").exists() else ""
    curve = " ".join(f"{e['step']}:{e['eval_lm_loss']:.2f}" for e in evals)
    last = evals[-1]
    rows.append((m.parent.name, cfg, curve, last))
print("| run | settings (beyond the defaults) | held-out MLM loss along the run (step:loss) | final | unigram | context-free floor | below unigram |")
print("|---|---|---|---|---|---|---|")
for name, cfg, curve, e in rows:
    u, cf = e.get("eval_lm_unigram_loss"), e.get("eval_lm_context_free_loss")
    fmt = lambda x: f"{x:.3f}" if x is not None else "—"
    below = f"{u - e['eval_lm_loss']:.2f}" if u is not None else "—"
    print(f"| {name} | {cfg} | {curve} | {e['eval_lm_loss']:.3f} | {fmt(u)} | {fmt(cf)} | {below} |")
PY
  exit 0
fi

name="$1"; shift
declare -A v=( [steps]=1500 [lr]=1e-3 [warmup]=150 [batch]=32 [seq]=64 [maxpred]=10 [drop]=0.1
  [layers]=2 [hidden]=128 [heads]=2 [obj]=mlm+nsp [beta2]=0.999 [eps]=1e-6 [wd]=0.01 [bc]=false
  [every]=500 [evalb]=20 [seed]=1 [dupe]=1 [prenorm]=false [lmbias]=zeros [positions]=random
  [init]=0.02 [mlmprob]=0.15 [evalmlmprob]=0.15 [evalmaxpred]=10 [nspw]=1 [clip]=1.0 )
for kv in "$@"; do
  k="${kv%%=*}"
  [[ -v "v[$k]" ]] || { echo "unknown key $k (see the header of $0)" >&2; exit 2; }
  v[$k]="${kv#*=}"
done
out="$study/$name"
mkdir -p "$out"
echo "$*" > "$out/study-args.txt"
cat > "$out/config.toml" <<TOML
output_dir = "$out"
[model]
preset = "tiny"
num_hidden_layers = ${v[layers]}
hidden_size = ${v[hidden]}
num_attention_heads = ${v[heads]}
intermediate_size = $(( 4 * ${v[hidden]} ))
max_position_embeddings = 128
hidden_dropout_prob = ${v[drop]}
attention_probs_dropout_prob = ${v[drop]}
initializer_range = ${v[init]}
pre_layer_norm = ${v[prenorm]}
[data]
vocab = "$data/vocab.txt"
train = "$data/train.txt"
heldout = "$data/heldout.txt"
max_seq_length = ${v[seq]}
short_seq_prob = 0.1
masked_lm_prob = ${v[mlmprob]}
max_predictions_per_seq = ${v[maxpred]}
heldout_masked_lm_prob = ${v[evalmlmprob]}
heldout_max_predictions_per_seq = ${v[evalmaxpred]}
mask = 0.8
keep = 0.1
random = 0.1
dupe_factor = ${v[dupe]}
[train]
objective = "${v[obj]}"
batch_size = ${v[batch]}
steps = ${v[steps]}
learning_rate = ${v[lr]}
warmup_steps = ${v[warmup]}
weight_decay = ${v[wd]}
beta2 = ${v[beta2]}
adam_eps = ${v[eps]}
bias_correction = ${v[bc]}
max_grad_norm = ${v[clip]}
seed = ${v[seed]}
log_every = 50
eval_every = ${v[every]}
eval_batches = ${v[evalb]}
checkpoint_every = 0
keep_checkpoints = 1
init_lm_bias = "${v[lmbias]}"
init_positions = "${v[positions]}"
nsp_loss_weight = ${v[nspw]}
TOML
RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}" "$root/target/release/cloze" pretrain --config "$out/config.toml" --fresh
