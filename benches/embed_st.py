#!/usr/bin/env python3
"""sentence-transformers' side of benches/embed.sh: encodes the sentences of a text file (one
per line) with `SentenceTransformer(MODEL).encode(batch_size=32)` on THREADS threads and prints
one JSON line with sentences/s (the encode call only: model loading and imports are not timed,
as cloze embed's own figure leaves out loading). Also usable to count FLOPs (--flops).

usage: embed_st.py MODEL_DIR SENTENCES THREADS
       embed_st.py --flops MODEL_DIR SENTENCES ORDER
         prints the matrix-product GFLOP of one forward pass over the file in batches of 32,
         each padded to its longest input, with the inputs sorted as ORDER says: `chars`
         (longest text first, as sentence-transformers sorts) or `tokens` (most tokens first,
         as cloze embed sorts)
"""
import json
import os
import sys
import time


def lines(path):
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def flops(model_dir, path, order, batch=32):
    """Matrix-product flops of the forward pass: per layer and token, the Q/K/V/output
    projections and the feed-forward (2·(4H² + 2·H·I)), and attention's two products over the
    padded length T (4·T·H); the pooling is not counted."""
    from transformers import AutoTokenizer
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    max_len = json.load(open(os.path.join(model_dir, "sentence_bert_config.json"))).get("max_seq_length", 512)
    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = lines(path)
    n_tokens = [len(tok(t, truncation=True, max_length=max_len)["input_ids"]) for t in texts]
    if order == "chars":
        idx = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    else:
        idx = sorted(range(len(texts)), key=lambda i: -n_tokens[i])
    total = 0
    for s in range(0, len(idx), batch):
        chunk = idx[s:s + batch]
        t = max(n_tokens[i] for i in chunk)
        total += len(chunk) * t * layers * (2 * (4 * h * h + 2 * h * inter) + 4 * t * h)
    return total


def main():
    if sys.argv[1] == "--flops":
        model_dir, path, order = sys.argv[2:5]
        print(json.dumps({"impl": "flops", "order": order, "sentences": len(lines(path)),
                          "gflop": flops(model_dir, path, order) / 1e9}))
        return
    model_dir, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    texts = lines(path)
    model.encode(texts[:32], batch_size=32)  # warm-up
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32)
    secs = time.perf_counter() - t0
    print(json.dumps({"impl": "sentence-transformers", "threads": threads, "sentences": len(texts),
                      "seconds": secs, "sentences_per_s": len(texts) / secs,
                      "isa": os.environ.get("TORCH_ISA"),
                      "aten_capability": torch.backends.cpu.get_cpu_capability(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
