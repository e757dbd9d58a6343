#!/usr/bin/env python3
"""PyTorch's CPU scaled_dot_product_attention (its flash-attention kernel) forward + backward
at batch 8, 12 heads, head dim 64, seq 128 and 512, dropout 0.1 and a key-padding mask, on
THREADS threads: prints one JSON line per sequence length (median of a few runs)."""
import json
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
for t in (128, 512):
    b, h, d = 8, 12, 64
    q = torch.randn(b, h, t, d, requires_grad=True)
    k = torch.randn(b, h, t, d, requires_grad=True)
    v = torch.randn(b, h, t, d, requires_grad=True)
    mask = torch.zeros(b, 1, 1, t)
    mask[..., t - t // 8:] = -10000.0
    r = torch.randn(b, h, t, d)
    # "flash": mask, no dropout (PyTorch's CPU flash kernel); "dropout": mask + dropout 0.1
    # (PyTorch falls back to the unfused math path)
    for variant, p in (("flash", 0.0), ("dropout", 0.1)):
        times = []
        for i in range(6):
            t0 = time.perf_counter()
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            (out * r).sum().backward()
            if i > 0:
                times.append(time.perf_counter() - t0)
            q.grad = k.grad = v.grad = None
        times.sort()
        print(json.dumps({"impl": "pytorch-sdpa", "variant": variant, "seq": t, "threads": threads,
                          "ms_fwd_bwd": times[len(times) // 2] * 1e3, "torch": torch.__version__}))
