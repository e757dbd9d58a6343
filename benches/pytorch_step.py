#!/usr/bin/env python3
"""One full pre-training step of HF BertForPreTraining (forward, backward, AdamW) on synthetic
data, timed like examples/train_step.rs: prints one JSON line.

usage: pytorch_step.py CONFIG BATCH STEPS VARIANT THREADS
  CONFIG  tiny (L2 H128 A2) | mini (L4 H256 A4) | base (L12 H768 A12): vocab 30522, seq 128,
          20 masked positions per sequence, dropout 0.1
          repro: paper-repro's pre-training shape: L2 H128 A2, vocab 8192, seq 64, 26 masked
          positions per sequence, dropout 0 (as examples/train_step.rs repro)
  VARIANT stock  = HF's BertForPreTraining as shipped (MLM logits at every position)
          masked = the MLM head applied to the 20 masked positions per sequence only, as the
                   reference TF implementation does (and as cloze does)
          masked-bf16 = masked under torch.autocast("cpu", dtype=torch.bfloat16): PyTorch's
                   CPU mixed precision (bf16 matmul operands, f32 master weights), the peer of
                   cloze's precision = "bf16"

PyTorch picks its own best kernels for the CPU. With TORCH_ISA=avx2 in the environment, the
line is tagged "isa": "avx2"; benches/train_step.sh then also sets ATEN_CPU_CAPABILITY,
MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA so that ATen, MKL and oneDNN stay on AVX2.
"""
import json
import os
import resource
import sys
import time

import torch
from transformers import BertConfig, BertForPreTraining

name, batch, steps, variant, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(7)
shape = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "base": (12, 768, 12), "repro": (2, 128, 2)}[name]
L, H, A = shape
vocab, seq, per_seq, dropout = (8192, 64, 26, 0.0) if name == "repro" else (30522, 128, 20, 0.1)
cfg = BertConfig(vocab_size=vocab, hidden_size=H, num_hidden_layers=L, num_attention_heads=A,
                 intermediate_size=4 * H, max_position_embeddings=512, type_vocab_size=2,
                 hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
model = BertForPreTraining(cfg)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-6)
ids = torch.randint(1000, vocab, (batch, seq))
types = (torch.arange(seq) >= seq // 2).long().expand(batch, seq)
mask = torch.ones(batch, seq, dtype=torch.long)
pos = torch.tensor([1 + j * (seq - 2) // per_seq for j in range(per_seq)])
rows = (torch.arange(batch)[:, None] * seq + pos[None, :]).reshape(-1)
labels = ids.reshape(-1)[rows]
nsp = torch.arange(batch) % 2
ce = torch.nn.CrossEntropyLoss()


def masked_loss():
    hidden = model.bert(input_ids=ids, token_type_ids=types, attention_mask=mask)
    seqout, pooled = hidden[0], hidden[1]
    gathered = seqout.reshape(batch * seq, H)[rows]
    logits = model.cls.predictions(gathered)
    nsp_logits = model.cls.seq_relationship(pooled)
    return ce(logits.float(), labels) + ce(nsp_logits.float(), nsp)


def step():
    opt.zero_grad(set_to_none=True)
    if variant == "masked-bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = masked_loss()
    elif variant == "stock":
        mlm_labels = torch.full((batch * seq,), -100, dtype=torch.long)
        mlm_labels[rows] = labels
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask,
                    labels=mlm_labels.view(batch, seq), next_sentence_label=nsp)
        loss = out.loss
    else:
        loss = masked_loss()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


times = []
for s in range(steps + 1):
    t0 = time.perf_counter()
    step()
    if s > 0:
        times.append(time.perf_counter() - t0)
times.sort()
median = times[len(times) // 2]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"impl": f"pytorch-{variant}", "config": name, "batch": batch, "seq": seq,
                  "threads": threads, "ms_per_step": median * 1e3,
                  "tokens_per_s": batch * seq / median, "peak_rss_mib": peak,
                  "steps_timed": len(times), "torch": torch.__version__,
                  "isa": os.environ.get("TORCH_ISA"),
                  "aten_capability": torch.backends.cpu.get_cpu_capability()}))
