#!/usr/bin/env python3
"""Check that a folder saved by `cloze finetune` loads in transformers and agrees with cloze.

Usage: check_hf_loadback.py MODEL_DIR INPUT.txt PREDICTIONS.jsonl [MAX_LENGTH]

INPUT.txt holds one text per line; PREDICTIONS.jsonl is `cloze predict --model MODEL_DIR
--input INPUT.txt` output. Loads the folder with AutoModelForSequenceClassification, fails on
missing / unexpected / mismatched keys, and prints the largest |logit difference|. Needs torch
and transformers (not used by the Rust tests).
"""
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main() -> int:
    model_dir, inputs, preds = sys.argv[1:4]
    max_length = int(sys.argv[4]) if len(sys.argv) > 4 else 128
    model, info = AutoModelForSequenceClassification.from_pretrained(
        model_dir, output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if v}
    if bad:
        print("loading problems:", bad)
        return 1
    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = [l.rstrip("\n") for l in open(inputs, encoding="utf-8") if l.strip()]
    model.eval()
    with torch.no_grad():
        enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hf = model(**enc).logits.numpy()
    ours = np.array([json.loads(l)["logits"] for l in open(preds, encoding="utf-8")])
    diff = float(np.abs(hf - ours).max())
    print(f"{type(model).__name__}: num_labels {model.config.num_labels}, "
          f"id2label {model.config.id2label}, problem_type {model.config.problem_type}")
    print(f"max |logit difference| over {len(texts)} inputs: {diff:.3e}")
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
