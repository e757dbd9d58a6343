#!/usr/bin/env python3
"""Summarise `paper-repro finetune-study` output (JSON lines) as markdown tables.

Every number is a dev accuracy (the dev part carved from the task's training split); the
evaluation split is never read by the study. For each row and protocol it prints the mean
and standard deviation over seeds of:

- `E ep, lr X`: the last epoch of an E-epoch schedule at a fixed rate;
- `E ep, best lr`: the same with the rate picked per seed on dev (the report's protocol);
- `E ep, best lr+epoch`: the rate and the epoch (dev scored after every epoch) picked per seed;
- with restarts, `best of R`: the restart with the best dev score kept per seed.

The picks are scored on the same dev examples they were picked on, so they are optimistic
by the same selection effect for every row; compare rows, not absolute values.

usage: finetune_study.py FILE.jsonl [FILE.jsonl ...]
"""
import json
import statistics
import sys
from collections import defaultdict


def mean_sd(xs):
    if not xs:
        return "—"
    m = 100 * statistics.mean(xs)
    s = 100 * statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def main(paths):
    runs = defaultdict(dict)  # (row, seed, restart, epochs, lr) -> {epoch: acc}
    for p in paths:
        for line in open(p):
            d = json.loads(line)
            # runs with a dropout override are rows of their own
            dropout = d.get("dropout")
            row = d["row"] if dropout is None else f"{d['row']}, dropout {dropout:g}"
            key = (row, d["seed"], d["restart"], d["epochs"], d["lr"])
            runs[key][d["epoch"]] = d["dev_accuracy"]
    rows = sorted({k[0] for k in runs}, key=lambda r: (r.split(",")[0] == "none", r))
    seeds = sorted({k[1] for k in runs})
    restarts = sorted({k[2] for k in runs})
    epochs = sorted({k[3] for k in runs})
    lrs = sorted({k[4] for k in runs})

    def complete(row, seed, restart, ep):
        return all(ep in runs.get((row, seed, restart, ep, lr), {}) for lr in lrs)

    cols = []
    for ep in epochs:
        for lr in lrs:
            cols.append((f"{ep} ep, lr {lr:g}", ep, lr, "fixed"))
        cols.append((f"{ep} ep, best lr", ep, None, "lr"))
        cols.append((f"{ep} ep, best lr+epoch", ep, None, "lr+epoch"))
    print("| row | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for r in restarts + (["best"] if len(restarts) > 1 else []):
        for row in rows:
            cells = []
            for _, ep, lr, mode in cols:
                vals = []
                for s in seeds:
                    picks = []
                    for rs in restarts if r == "best" else [r]:
                        if not complete(row, s, rs, ep):
                            continue
                        if mode == "fixed":
                            picks.append(runs[(row, s, rs, ep, lr)][ep])
                        elif mode == "lr":
                            picks.append(max(runs[(row, s, rs, ep, x)][ep] for x in lrs))
                        else:
                            picks.append(
                                max(a for x in lrs for a in runs[(row, s, rs, ep, x)].values())
                            )
                    if picks:
                        vals.append(max(picks))
                cells.append(mean_sd(vals) + (f" (n={len(vals)})" if len(vals) != len(seeds) else ""))
            label = row if len(restarts) == 1 else (
                f"{row}, best of {len(restarts)} restarts" if r == "best" else f"{row}, restart {r}")
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
