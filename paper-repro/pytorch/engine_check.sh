#!/usr/bin/env bash
# Engine check: the quick scale's default pre-training (MLM+NSP, L2/H128/A2, seed 1) rerun in
# PyTorch (HF BertForPreTraining) on the same corpus, vocabulary and recipe, written to
# paper-repro/results/<scale>/pytorch-reference.json for the report's "Engine check" section.
#
#   pip install torch transformers
#   bash paper-repro/pytorch/engine_check.sh            # after `paper-repro all --scale quick`
#   ENGINE_CHECK_SCALE=full bash paper-repro/pytorch/engine_check.sh   # the full scale's corpus
#
# Reads the corpus from paper-repro/runs/<scale>/data (built by paper-repro). The flags below
# come from recipe.sh, which mirrors Scale::quick() and its Recipe (paper-repro/src/scale.rs).
# One thread, about 130 ms per step on the machines we use (6000 steps: ~13 minutes).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/paper-repro/pytorch/recipe.sh"
scale="${ENGINE_CHECK_SCALE:-quick}"
scale_dirs "$scale"
data="${ENGINE_CHECK_DATA:-$data}" results="${ENGINE_CHECK_RESULTS:-$results}"
steps="${ENGINE_CHECK_STEPS:-6000}"
out="$(mktemp -d)"
recipe_args "$data" "$steps"
python3 "$root/paper-repro/pytorch/mlm_reference.py" "${args[@]}" --out "$out/metrics.jsonl"
python3 - "$out/metrics.jsonl" "$results/pytorch-reference.json" "$steps" "${args[*]}" "paper-repro/runs/$scale/data" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last = [r for r in rows if r.get("step") == int(sys.argv[3])][-1]
ref = dict(
    recipe=f"MLM+NSP, L2/H128/A2, seq 64, batch 32, lr 1e-3 (warm-up {int(sys.argv[3]) // 20}), 40% masked in training "
           "(held-out 15%), no dropout, unigram LM bias, sinusoidal positions, truncated-normal weights (as cloze), 2 masked copies",
    steps=last["step"], heldout_mlm_loss=last["heldout_mlm_loss"],
    train_seconds=last.get("seconds"), train_cpu_seconds=last.get("cpu_seconds"),
    heldout_unigram_loss=last.get("heldout_unigram_loss"),
    heldout_context_free_loss=last.get("heldout_context_free_loss"),
    command="python3 paper-repro/pytorch/mlm_reference.py " + sys.argv[4].replace(sys.argv[4].split()[1].rsplit("/", 1)[0], sys.argv[5]),
)
json.dump(ref, open(sys.argv[2], "w"), indent=2)
print(json.dumps(ref, indent=2))
PY
