#!/usr/bin/env python3
"""Floating-point operations in one training step of the configs benches/train_step.sh times,
counted from the model's shapes: the matrix products of the forward pass (the encoder, the
pooler, the NSP head, the MLM head on the masked positions only) and twice as many in the
backward pass (each product's two input gradients). Element-wise work (GELU, LayerNorm,
softmax, AdamW) is not counted: it is memory-bound, and small beside the products at these
sizes.

benches/report.py divides these counts by the measured step times, so a training-step row
reads as GFLOP/s and as a fraction of the machine's FMA peak: the fraction a target such as
"2x PyTorch" would need is then plain arithmetic.

usage: step_flops.py            print the counts
       step_flops.py --check    also count the same step with PyTorch's FlopCounterMode on
                                HF BertForPreTraining (needs torch and transformers) and
                                print both, as an independent check of the formula
"""
import sys

# name: (layers, hidden, heads, vocabulary, sequence, masked positions per sequence, batch)
CONFIGS = {
    "repro": (2, 128, 2, 8192, 64, 26, 32),
    "tiny": (2, 128, 2, 30522, 128, 20, 32),
    "mini": (4, 256, 4, 30522, 128, 20, 32),
    "base": (12, 768, 12, 30522, 128, 20, 8),
}


def step_flops(name, batch=None):
    """Matrix-product flops (2 per multiply-add) of one forward + backward step."""
    layers, h, _heads, vocab, seq, per_seq, default_batch = CONFIGS[name]
    b = batch or default_batch
    inter = 4 * h
    tokens = b * seq
    # per token and layer: Q, K, V and the output projection (4·h²), the feed-forward (2·h·inter),
    # and attention's two products (scores Q·Kᵀ and probabilities·V: seq·h each)
    per_layer = 2 * tokens * (4 * h * h + 2 * h * inter + 2 * seq * h)
    positions = b * per_seq
    pooler_nsp = 2 * b * (h * h + 2 * h)
    mlm = 2 * positions * (h * h + h * vocab)  # transform, then the decoder tied to the embeddings
    forward = layers * per_layer + pooler_nsp + mlm
    return 3 * forward


def counted(name):
    """The same step counted by torch.utils.flop_counter on HF BertForPreTraining, the MLM
    head applied to the masked positions (benches/pytorch_step.py's `masked` variant)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertForPreTraining
    layers, h, heads, vocab, seq, per_seq, b = CONFIGS[name]
    cfg = BertConfig(vocab_size=vocab, hidden_size=h, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=4 * h,
                     attn_implementation="eager")
    model = BertForPreTraining(cfg)
    ids = torch.randint(1000, vocab, (b, seq))
    pos = torch.tensor([1 + j * (seq - 2) // per_seq for j in range(per_seq)])
    rows = (torch.arange(b)[:, None] * seq + pos[None, :]).reshape(-1)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model.bert(input_ids=ids)
        gathered = out[0].reshape(b * seq, h)[rows]
        loss = model.cls.predictions(gathered).logsumexp(-1).mean() \
            + model.cls.seq_relationship(out[1]).sum()
        loss.backward()
    return counter.get_total_flops()


def main():
    check = "--check" in sys.argv[1:]
    print("| config | batch | GFLOP per step (formula) |" + (" GFLOP (FlopCounterMode) | ratio |" if check else ""))
    print("|---|---|---|" + ("---|---|" if check else ""))
    for name in CONFIGS:
        f = step_flops(name)
        line = f"| {name} | {CONFIGS[name][-1]} | {f / 1e9:.2f} |"
        if check:
            c = counted(name)
            line += f" {c / 1e9:.2f} | {f / c:.4f} |"
        print(line)


if __name__ == "__main__":
    main()
