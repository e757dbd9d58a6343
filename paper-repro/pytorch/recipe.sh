# The quick scale's pre-training recipe (Scale::quick() and its Recipe in
# paper-repro/src/scale.rs, which the full scale shares) as mlm_reference.py flags. Sourced by
# engine_check.sh and lockstep.sh; change it together with scale.rs.
#   scale_dirs SCALE            ->  sets `data` (paper-repro's corpus folder of that scale) and
#                                   `results` (its report folder); needs `root`
#   recipe_args DATA_DIR STEPS  ->  fills the array `args`
scale_dirs() {
  data="$root/paper-repro/runs/$1/data"
  results="$root/paper-repro/results/$1"
}
recipe_args() {
  local data=$1 steps=$2
  args=(--train "$data/train.txt" --heldout "$data/heldout.txt" --vocab "$data/vocab.txt"
    --layers 2 --hidden 128 --heads 2 --seq 64 --batch 32 --steps "$steps" --lr 1e-3
    --warmup "$((steps / 20))" --dropout 0 --masked-lm-prob 0.4 --max-predictions 26
    --heldout-masked-lm-prob 0.15 --heldout-max-predictions 10 --eval-batches 40
    --eval-every "$steps" --objective mlm+nsp --init-lm-bias unigram
    --init-positions sinusoidal --init-dist truncated --dupe-factor 2 --seed 1 --threads 1 --fast-tokenizer)
}
