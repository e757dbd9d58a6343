#!/usr/bin/env python3
"""Linear probe of frozen features: how much sentiment a model's representations hold
before any fine-tuning.

For each model folder (a transformers BERT folder, as cloze saves them) it encodes SST-2
*training* sentences (a seeded 3,200 / 800 split of train.tsv; GLUE's dev set, the report's
evaluation split, is never read), takes three frozen features per sentence:

- `cls`: the last layer's [CLS] vector;
- `mean`: the last layer averaged over the sentence's tokens;
- `emb`: the embedding layer's output averaged the same way;

and fits a logistic regression on each (standardised features, L-BFGS, L2 weight picked
from a small grid on the 800). It prints the best accuracy per feature. Random features of
the same width give a floor; a well-trained model (all-MiniLM-L6-v2) shows what the probe
can find.

usage: probe.py [--data DATA] MODEL_DIR [MODEL_DIR ...]   (DATA: ../shared/data)
"""
import argparse
import csv
import random

import torch
from transformers import BertModel, BertTokenizerFast


def features(model, tok, sentences, max_length=64):
    out = {"cls": [], "mean": [], "emb": []}
    with torch.no_grad():
        for i in range(0, len(sentences), 64):
            enc = tok(sentences[i:i + 64], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt")
            h = model(**enc, output_hidden_states=True).hidden_states
            m = enc["attention_mask"].unsqueeze(-1).float()
            out["cls"].append(h[-1][:, 0])
            out["mean"].append((h[-1] * m).sum(1) / m.sum(1))
            out["emb"].append((h[0] * m).sum(1) / m.sum(1))
    return {k: torch.cat(v) for k, v in out.items()}


def probe(xtr, ytr, xdv, ydv, classes=2):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xdv = (xtr - mu) / sd, (xdv - mu) / sd
    best = 0.0
    for wd in (1e-4, 1e-3, 1e-2, 1e-1):
        w = torch.zeros(xtr.shape[1], classes, requires_grad=True)
        b = torch.zeros(classes, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xtr @ w + b, ytr) + wd * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        best = max(best, ((xdv @ w + b).argmax(1) == ydv).float().mean().item())
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(1)
    with open(f"{a.data}/glue/SST-2/train.tsv") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    random.Random(7).shuffle(rows)
    train, dev = rows[:3200], rows[3200:4000]
    ytr = torch.tensor([int(r[1]) for r in train])
    ydv = torch.tensor([int(r[1]) for r in dev])
    print("| model | cls | mean | emb |\n|---|---|---|---|")
    for d in a.models:
        tok = BertTokenizerFast.from_pretrained(d)
        model = BertModel.from_pretrained(d).eval()
        ftr = features(model, tok, [r[0] for r in train])
        fdv = features(model, tok, [r[0] for r in dev])
        acc = {k: 100 * probe(ftr[k], ytr, fdv[k], ydv) for k in ftr}
        print(f"| {d} | {acc['cls']:.1f} | {acc['mean']:.1f} | {acc['emb']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
