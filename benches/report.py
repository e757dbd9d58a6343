#!/usr/bin/env python3
"""Collects criterion results for one kernel path and writes its section of BENCHMARKS.md.

Usage: python3 benches/report.py --isa avx2 [--criterion DIR] [--limits DIR] [--train-step JSONL]
                                 [--out BENCHMARKS.md] [--extra FILE.md ...]

BENCHMARKS.md holds one section per (CPU, kernel path) it has seen, each between
`<!-- section: KEY -->` and `<!-- /section -->` markers. This script replaces the section of the
machine it runs on and the path it was given, and keeps every other section as it was, so an
AVX2-only machine's figures and an AVX-512 machine's figures (of both its paths) sit side by side.

Every figure comes from the criterion estimates of the last bench run (mean time of one
iteration) and the throughput each bench declared (Elements = floating-point operations,
Bytes = bytes read + written). Derived columns: the fraction of the machine's measured limits
(FMA peak and copy bandwidth from the `machine_limits` bench) and ratios to peers measured in
the same run (bench ids that name a peer: matrixmultiply, gemm-crate, pytorch, unfused, scalar).
"""
import argparse
import datetime
import functools
import json
import os
import platform
import re
import subprocess
import sys


def load(criterion_dir):
    rows = []
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(root, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(root, "estimates.json")) as f:
            est = json.load(f)
        mean_ns = est["mean"]["point_estimate"]
        thr = bench.get("throughput") or {}
        row = {
            "group": bench.get("group_id", ""),
            "id": bench.get("full_id") or bench.get("title") or root,
            "function": bench.get("function_id") or "",
            "value": bench.get("value_str") or "",
            "mean_ns": mean_ns,
            "ci_low": est["mean"]["confidence_interval"]["lower_bound"],
            "ci_high": est["mean"]["confidence_interval"]["upper_bound"],
            "file": os.path.join(root, "estimates.json"),
        }
        if "Elements" in thr:
            row["flops"] = thr["Elements"]
            row["gflops"] = thr["Elements"] / mean_ns  # flop per ns = GFLOP/s
        if "Bytes" in thr:
            row["bytes"] = thr["Bytes"]
            row["gbs"] = thr["Bytes"] / mean_ns  # byte per ns = GB/s
        rows.append(row)
    rows.sort(key=lambda r: (r["group"], r["id"]))
    return rows


@functools.lru_cache(maxsize=None)
def cpu_info():
    model, flags = platform.processor() or "unknown", ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                fl = line.split(":", 1)[1].split()
                keep = ["avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512vl"]
                flags = " ".join(f for f in keep if f in fl)
    except OSError:
        pass
    family = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu family"):
                family = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if family and model.startswith("AMD"):
        model = f"{model} (family {family})"
    cores = os.cpu_count()
    return model, flags, cores


def fmt_time(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.3f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def limits(rows):
    """FMA peak per core (GFLOP/s, keys avx512/avx2) and copy bandwidth (GB/s, keys copy_t1/t2)
    from the machine_limits bench, if it ran."""
    out = {}
    for r in rows:
        key = r["id"].split("/", 1)[-1]
        if r["group"] == "fma_peak_1core" and "gflops" in r:
            out[key] = r["gflops"]
            if r.get("file"):
                out["_file_" + key] = r["file"]
        if r["group"] == "memcpy_64MiB" and "gbs" in r:
            out["copy_" + key] = r["gbs"]
    return out


ISA_TITLE = {"avx512": "AVX-512", "avx2": "AVX2+FMA", "neon": "NEON", "portable": "portable (wide)",
             "scalar": "scalar"}


def derived(rows, lim, isa, bench_dir):
    """Summary tables: GEMM as a fraction of the measured FMA peak and against the peers;
    attention fused vs unfused and vs PyTorch; memory-bound kernels against a copy."""
    by_id = {(r["group"], r["id"].split("/", 1)[1] if "/" in r["id"] else r["id"]): r for r in rows}
    out = []
    peak = lim.get(isa)
    if peak:
        out += ["### Summary: GEMM against the machine and the peers", "",
                f"Peak = the measured {ISA_TITLE.get(isa, isa)} FMA peak ({peak:.0f} GFLOP/s per core) × threads. "
                "Peer ratios are cloze's throughput over the peer's, measured in the same run "
                "(matrixmultiply runs single-threaded on single products).", "",
                "| shape | threads | cloze GFLOP/s | % of peak | × matrixmultiply | × gemm crate |",
                "|---|---|---|---|---|---|"]
        for group in ("gemm", "gemm_batched96"):
            shapes = sorted({k[1].split("/", 2)[2] for k in by_id if k[0] == group and k[1].startswith("cloze/")})
            for shape in shapes:
                for t in (1, 2):
                    c = by_id.get((group, f"cloze/t{t}/{shape}"))
                    if not c or "gflops" not in c:
                        continue
                    ratio = lambda lib: (f"{c['gflops'] / by_id[(group, f'{lib}/t{t}/{shape}')]['gflops']:.2f}"
                                         if (group, f"{lib}/t{t}/{shape}") in by_id else "–")
                    name = shape if group == "gemm" else f"96 × {shape}"
                    out.append(f"| {name} | {t} | {c['gflops']:.0f} | {100 * c['gflops'] / (peak * t):.0f}% "
                               f"| {ratio('matrixmultiply')} | {ratio('gemm_crate')} |")
        bf = by_id.get(("gemm_bf16", "cloze/t1/4096x768x768"))
        f32 = by_id.get(("gemm", "cloze/t1/4096x768x768"))
        if bf and f32:
            native = isa == "avx512" and "avx512_bf16" in cpu_info()[1].split()
            how = ("`vdpbf16ps`" if native else
                   "no `vdpbf16ps` on this path or CPU: the bf16 panels are widened to f32 while packing")
            out += ["", f"bf16 GEMM (bf16 operands, f32 accumulation, {how}) at 4096×768×768, 1 thread: "
                    f"{bf['gflops']:.0f} GFLOP/s = {bf['gflops'] / f32['gflops']:.2f}× our f32 GEMM."]
        out.append("")
    att = []
    for t in (128, 512):
        f = by_id.get((f"attention_engine_b8_h12_d64_t{t}", "fused_fwd_bwd"))
        u = by_id.get((f"attention_engine_b8_h12_d64_t{t}", "unfused_fwd_bwd"))
        if f and u:
            att.append((t, f, u))
    if att:
        out += ["### Summary: attention (engine op, forward + backward, batch 8, 12 heads, d 64, dropout 0.1, padding mask)", "",
                "| seq | fused | unfused | fused speed-up |", "|---|---|---|---|"]
        torch_rows = {}
        path = os.path.join(bench_dir, "pytorch_attention.jsonl")
        if os.path.exists(path):
            for line in open(path):
                r = json.loads(line)
                torch_rows[(r["seq"], r["variant"], r["threads"])] = r["ms_fwd_bwd"]
        if torch_rows:
            out[-2] = "| seq | fused | unfused | fused speed-up | PyTorch flash (no dropout) | × | PyTorch with dropout | × |"
            out[-1] = "|---|---|---|---|---|---|---|---|"
        for t, f, u in att:
            row = f"| {t} | {fmt_time(f['mean_ns'])} | {fmt_time(u['mean_ns'])} | {u['mean_ns'] / f['mean_ns']:.1f}× |"
            if torch_rows:
                fl = torch_rows.get((t, "flash", 2))
                dr = torch_rows.get((t, "dropout", 2))
                ms = f["mean_ns"] / 1e6
                row += f" {fl:.1f} ms | {fl / ms:.1f}× | {dr:.1f} ms | {dr / ms:.1f}× |" if fl and dr else " – | – | – | – |"
            out.append(row)
        out.append("")
        if torch_rows:
            out += ["PyTorch rows: `benches/pytorch_attention.py` on 2 threads in the same session "
                    "(`scaled_dot_product_attention` with the padding mask; its flash kernel runs only without "
                    "dropout, with dropout 0.1 it falls back to the unfused math path). cloze runs with dropout 0.1 "
                    "on 2 threads (the rayon default here).", ""]
    mem_path = os.path.join(bench_dir, f"attention_memory-{isa}.jsonl")
    if os.path.exists(mem_path):
        mem_rows = {}
        for line in open(mem_path):
            if line.strip():
                r = json.loads(line)
                mem_rows[(r["seq"], r["impl"])] = r
        seqs = sorted({s for s, _ in mem_rows})
        out += ["### Summary: attention peak memory (engine op, forward + backward, same sizes)", "",
                "Growth of the process's peak resident set during one forward + backward over the resident set "
                "with the inputs built (Linux `VmHWM`, reset just before the call; one process per row: "
                "`cargo run --release --example attention_memory -- fused|unfused SEQ`). *Beyond outputs* "
                "subtracts what any implementation holds: the output and the three input gradients "
                "(4 × B·H·T·d floats).", "",
                "| seq | outputs | fused peak | fused beyond outputs | unfused peak | unfused beyond outputs |",
                "|---|---|---|---|---|---|"]
        for t in seqs:
            f, u = mem_rows.get((t, "fused")), mem_rows.get((t, "unfused"))
            if not (f and u):
                continue
            o = f["outputs_mib"]
            out.append(f"| {t} | {o:.1f} MiB | {f['peak_extra_mib']:.1f} MiB | {f['peak_extra_mib'] - o:.1f} MiB "
                       f"| {u['peak_extra_mib']:.1f} MiB | {u['peak_extra_mib'] - o:.1f} MiB |")
        out.append("")
    bw = []
    for g in sorted({r["group"] for r in rows}):
        best = by_id.get((g, f"{isa}_1t"))
        allt = by_id.get((g, f"{isa}_all"))
        copy = by_id.get((g, "copy_1t"))
        stream = by_id.get((g, "copy_stream_1t"))
        if best and copy and "gbs" in best:
            bw.append((g, best, allt, copy, stream))
    if bw:
        mem = lim.get("copy_t1")
        out += ["### Summary: memory-bound kernels against a copy of the same bytes (arrays larger than L2)", "",
                "Throughput counts every byte read and written; AdamW reads four arrays and writes three, and "
                "reads cost less than a copy's even read/write mix, so it can exceed 100%. Three references: "
                "in each group, `copy_from_slice` (the C library's memcpy) and a streaming-store copy moving the "
                "same bytes, measured beside the kernel; and the machine's 1-thread memcpy bandwidth from the "
                "`machine_limits` bench (64 MiB), the bandwidth the issue's 70% target refers to. A call that "
                "reads and writes at least `simd::STREAM_MIN_BYTES` (32 MiB, the L3) writes its output with "
                "streaming stores: here every group but the `_cached` cross-entropy (AdamW updates in place).", "",
                f"| kernel | {ISA_TITLE.get(isa, isa)} 1 thread | % of memcpy (same bytes) | % of streaming copy (same bytes) "
                f"| % of machine memcpy | {ISA_TITLE.get(isa, isa)} 2 threads |",
                "|---|---|---|---|---|---|"]
        for g, best, allt, copy, stream in bw:
            two = f"{allt['gbs']:.1f} GB/s" if allt and "gbs" in allt else "–"
            st = f"{100 * best['gbs'] / stream['gbs']:.0f}%" if stream and "gbs" in stream else "–"
            mc = f"{100 * best['gbs'] / mem:.0f}%" if mem else "–"
            out.append(f"| {g} | {best['gbs']:.1f} GB/s | {100 * best['gbs'] / copy['gbs']:.0f}% | {st} | {mc} | {two} |")
        out.append("")
    rec = by_id.get(("tape_overhead", "recorded_fwd_bwd_n16"))
    ng = by_id.get(("tape_overhead", "no_grad_fwd_n16"))
    if rec and ng:
        out += ["### Summary: tape overhead", "",
                f"A chain of 4 ops (mul, add, mul, sum) on 16 elements: forward + backward with recording "
                f"{fmt_time(rec['mean_ns'])}, forward with recording off {fmt_time(ng['mean_ns'])}; "
                f"about {rec['mean_ns'] / 8:.0f} ns per recorded op and its backward.", ""]
    return out


def train_step_table(path, isa, lim=None):
    """The training-step comparison for one kernel path, from benches/train_step.sh's JSON lines,
    then the same steps against the FMA peak (the session's own `fma-peak` lines, else `lim`,
    the machine_limits results)."""
    import statistics
    if not os.path.exists(path):
        return []
    rows = [json.loads(l) for l in open(path) if l.strip()]
    peaks = [r["gflops_per_core"] for r in rows if r["impl"] == "fma-peak" and r.get("isa") == isa]
    rows = [r for r in rows if r["impl"] != "fma-peak"]
    rows = [r for r in rows if r["impl"] != "cloze" or r.get("isa") == isa]
    if not any(r["impl"] == "cloze" for r in rows):
        return []
    # PyTorch held to this path's ISA when such runs exist, else PyTorch's own best kernels
    torch_same_isa = any(r["impl"] != "cloze" and r.get("isa") == isa for r in rows)
    rows = [r for r in rows if r["impl"] == "cloze" or r.get("isa") == (isa if torch_same_isa else None)]
    groups = {}
    for r in rows:
        groups.setdefault((r["config"], r["threads"]), {}).setdefault(r["impl"], []).append(r)
    order = {"repro": 0, "tiny": 1, "mini": 2, "base": 3}
    out = ["### Training step: cloze vs PyTorch (same session, alternating)", "",
           "Full step (forward, backward, clipping, AdamW) of BertForPreTraining on synthetic data. "
           "tiny/mini/base: sequence 128, vocabulary 30,522, 20 masked positions per sequence, dropout 0.1. "
           "repro: paper-repro's pre-training shape (L2/H128/A2, sequence 64, vocabulary 8,192, "
           "26 masked positions per sequence, dropout 0). Median ms per step within each run, then the "
           "median over runs. `pytorch-masked` applies the MLM head to the masked positions only (as the "
           "reference implementation and cloze do); `pytorch-stock` is HF's BertForPreTraining as shipped "
           "(MLM logits at every position). Speed-up = PyTorch's time over cloze's (same config, threads "
           "and session). Peak memory is the process's maximum resident set. From `bash benches/train_step.sh`.",
           "", "| config | threads | cloze ms/step | pytorch-masked ms/step | **speed-up** | pytorch-stock ms/step "
           "| speed-up vs stock | cloze / PyTorch peak MiB |", "|---|---|---|---|---|---|---|---|"]
    for (cfg, th), impls in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        med = {k: statistics.median(r["ms_per_step"] for r in v) for k, v in impls.items()}
        if "cloze" not in med:
            continue
        c = med["cloze"]
        batch = impls["cloze"][0]["batch"]
        pm, ps = med.get("pytorch-masked"), med.get("pytorch-stock")
        num = lambda x, f="{:.1f}": f.format(x) if x else "–"
        mem = lambda k: f"{max(r['peak_rss_mib'] for r in impls[k]):.0f}" if k in impls else "–"
        out.append(f"| {cfg} (batch {batch}) | {th} | {c:.1f} | {num(pm)} | "
                   f"**{num(pm and pm / c, '{:.2f}×')}** | {num(ps)} | "
                   f"{num(ps and ps / c, '{:.2f}×')} | {mem('cloze')} / {mem('pytorch-masked')} |")
    _m, flags, _c = cpu_info()
    if torch_same_isa:
        out += ["", f"PyTorch was held to {ISA_TITLE.get(isa, isa)} in these rows (ATEN_CPU_CAPABILITY, "
                "MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA), so both sides run the same instruction set."]
    elif isa != "avx512" and "avx512f" in flags.split():
        out += ["", f"PyTorch runs its own best kernels for this CPU (AVX-512 here) in every row, so on this "
                f"machine these rows race cloze's {ISA_TITLE.get(isa, isa)} path against PyTorch's AVX-512 path; "
                "a CPU without AVX-512 slows both."]
    runs = len([r for r in rows if r["impl"] == "cloze"])
    torch_v = next((r.get("torch") for r in rows if r.get("torch")), None)
    out += ["", f"{runs} cloze runs on this path; PyTorch {torch_v or 'not installed'}.", ""]
    if peaks:
        peak = statistics.median(peaks)
        source = (f"this session's FMA peak of one core on this path, {peak:.1f} GFLOP/s (median of "
                  f"{len(peaks)} runs of `examples/fma_peak.rs` between the steps)")
    elif lim and lim.get(isa):
        peak = lim[isa]
        stamp = lambda f: datetime.datetime.fromtimestamp(os.path.getmtime(f), datetime.timezone.utc) \
            .strftime("%Y-%m-%d %H:%M UTC")
        when = f" run at {stamp(lim['_file_' + isa])}" if lim.get("_file_" + isa) else ""
        source = (f"the FMA peak of one core on this path from the machine_limits bench{when}, {peak:.1f} "
                  f"GFLOP/s (the step rows, written by {stamp(path)}, predate `examples/fma_peak.rs`, "
                  "which now measures the peak between the steps)")
    else:
        return out
    out += flops_table(groups, peak, source, order)
    return out


def flops_table(groups, peak, source, order):
    """Each training-step row as GFLOP/s and a fraction of peak × threads, and the fraction that
    twice PyTorch's speed would take."""
    import statistics
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from step_flops import step_flops
    out = ["### Training step against the FMA peak", "",
           "The same medians as the table above, as the rate of the step's matrix products: GFLOP per step "
           "counts the products of the forward pass and the two input gradients of each in the backward "
           "(`benches/step_flops.py`; `python3 benches/step_flops.py --check` counts the same step with "
           "PyTorch's FlopCounterMode, and the two agree exactly). Element-wise work is not counted. "
           f"Peak = {source}, × threads. *2× PyTorch needs* is the fraction of that peak a step would have to "
           "sustain, products and everything else included, to take half of PyTorch's time: near or above "
           "100% it cannot be reached on this path, whatever the kernels.", "",
           "| config | threads | GFLOP per step | cloze GFLOP/s | cloze % of peak | pytorch-masked GFLOP/s "
           "| pytorch % of peak | **2× PyTorch needs** |", "|---|---|---|---|---|---|---|---|"]
    for (cfg, th), impls in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        if "cloze" not in impls:
            continue
        batch = impls["cloze"][0]["batch"]
        gf = step_flops(cfg, batch) / 1e9
        rate = lambda k: gf / (statistics.median(r["ms_per_step"] for r in impls[k]) / 1e3)
        c = rate("cloze")
        line = f"| {cfg} (batch {batch}) | {th} | {gf:.2f} | {c:.1f} | {100 * c / (peak * th):.0f}% |"
        if "pytorch-masked" in impls:
            p = rate("pytorch-masked")
            line += f" {p:.1f} | {100 * p / (peak * th):.0f}% | **{200 * p / (peak * th):.0f}%** |"
        else:
            line += " – | – | – |"
        out.append(line)
    return out + [""]


def section_head(isa):
    """The first lines of a section: its title and the CPU line."""
    model, flags, cores = cpu_info()
    return [f"## {model}: {ISA_TITLE.get(isa, isa)} path", "",
            f"- CPU: {model} ({cores} cores visible), flags: {flags}; kernel path `CLOZE_KERNEL={isa}`"]


def section_key(isa):
    model, _flags, _cores = cpu_info()
    return f"{model} / {isa}"


def replace_subsection(args, head, table, what, data):
    """Swaps the subsection starting with `head` in this machine's section for `table`."""
    key = section_key(args.isa)
    text = open(args.out).read()
    found = {k: v for k, v in SECTION.findall(text)}
    if key not in found:
        body = "\n".join(section_head(args.isa) + [
            f"- Only the {what} has been measured on this path so far (`bash benches/report.sh` "
            "fills in the kernels).", "", ""])
        text = text.rstrip("\n") + f"\n\n<!-- section: {key} -->\n{body}<!-- /section -->\n"
        found[key] = body
    body = found[key]
    start = body.find(head)
    if start < 0:
        marker = "<details>"
        start = end = body.find(marker) if marker in body else len(body)
    else:
        # the subsection ends at the next heading that is not one of the table's own (a table
        # may carry several subsections, e.g. the training step and its FMA-peak reading)
        own = [l for l in table if l.startswith("### ")]
        end = start + len(head)
        while True:
            nxt = re.search(r"\n(### |<details>)", body[end:])
            if not nxt:
                end = len(body)
                break
            end += nxt.start() + 1
            if not any(body.startswith(h, end) for h in own):
                break
            end += 4
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    taken = datetime.datetime.fromtimestamp(os.path.getmtime(data), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fresh = "\n".join(table[:1] + ["", f"(Regenerated {when} from measurements that ended {taken}, apart from the "
                                         "rest of the section.)"]
                      + table[1:]) + "\n"
    body = body[:start] + fresh + body[end:]
    new = text.replace(f"<!-- section: {key} -->\n{found[key]}<!-- /section -->",
                       f"<!-- section: {key} -->\n{body}<!-- /section -->")
    with open(args.out, "w") as f:
        f.write(new)
    print(f"replaced the {what} table of {key!r} in {args.out}")


def replace_train_step(args):
    """Swaps the training-step table of this machine's section for a fresh one."""
    lim = limits(load(args.limits)) if os.path.isdir(args.limits) else {}
    table = train_step_table(os.path.join(args.bench_dir, "train_step.jsonl"), args.isa, lim)
    if not table:
        sys.exit(f"no cloze rows for path {args.isa} in {args.bench_dir}/train_step.jsonl: "
                 "run `bash benches/train_step.sh` first")
    replace_subsection(args, "### Training step", table, "training step",
                       os.path.join(args.bench_dir, "train_step.jsonl"))


def embed_table(path, isa):
    """Sentence embeddings, cloze vs sentence-transformers, for one kernel path, from
    benches/embed.sh's JSON lines; with each side's rate as a share of the FMA peak."""
    import statistics
    if not os.path.exists(path):
        return []
    rows = [json.loads(l) for l in open(path) if l.strip()]
    cloze = [r for r in rows if r["impl"] == "cloze" and r.get("isa") == isa]
    if not cloze:
        return []
    # sentence-transformers held to this path's ISA when such runs exist, else its own best
    st_same_isa = any(r["impl"] == "sentence-transformers" and r.get("isa") == isa for r in rows)
    st = [r for r in rows if r["impl"] == "sentence-transformers"
          and r.get("isa") == (isa if st_same_isa else None)]
    peaks = [r["gflops_per_core"] for r in rows if r["impl"] == "fma-peak" and r.get("isa") == isa]
    fl = {r["order"]: r for r in rows if r["impl"] == "flops"}
    peak = statistics.median(peaks) if peaks else None
    out = ["### Sentence embeddings: cloze vs sentence-transformers (same session, alternating)", "",
           "all-MiniLM-L6-v2 over the first 500 sentences of SST-2's dev set, batch 32, each batch padded to "
           "its longest input (both sides sort the inputs longest first: cloze by tokens, "
           "sentence-transformers by characters). Each side's own figure for the encoding call "
           "(model loading left out, no warm-up inside the timed call); median over runs. From "
           "`bash benches/embed.sh`.", ""]
    head = "| threads | cloze sentences/s | sentence-transformers sentences/s | **cloze / ST** |"
    sep = "|---|---|---|---|"
    if peak and "tokens" in fl and "chars" in fl:
        head += " cloze % of peak | ST % of peak | **2× ST needs** |"
        sep += "---|---|---|"
    out += [head, sep]
    for th in sorted({r["threads"] for r in cloze}):
        c = statistics.median(r["sentences_per_s"] for r in cloze if r["threads"] == th)
        s = [r["sentences_per_s"] for r in st if r["threads"] == th]
        s = statistics.median(s) if s else None
        line = f"| {th} | {c:.1f} | {s and f'{s:.1f}' or '–'} | **{s and f'{c / s:.2f}×' or '–'}** |"
        if peak and "tokens" in fl and "chars" in fl:
            per = lambda order: fl[order]["gflop"] / fl[order]["sentences"]  # GFLOP per sentence
            cp = 100 * c * per("tokens") / (peak * th)
            sp = s and 100 * s * per("chars") / (peak * th)
            need = s and 100 * 2 * s * per("tokens") / (peak * th)
            line += f" {cp:.0f}% | {sp and f'{sp:.0f}%' or '–'} | **{need and f'{need:.0f}%' or '–'}** |"
        out.append(line)
    if peak and "tokens" in fl:
        out += ["", f"GFLOP of the 500 sentences (matrix products of the forward pass, `benches/embed_st.py --flops`): "
                f"{fl['tokens']['gflop']:.1f} in cloze's batches, {fl.get('chars', {}).get('gflop', float('nan')):.1f} "
                f"in sentence-transformers'. Peak = this session's FMA peak of one core on this path, {peak:.1f} GFLOP/s "
                f"(median of {len(peaks)} runs of `examples/fma_peak.rs`), × threads. *2× ST needs* is the share of that "
                "peak cloze's batches would have to sustain to go twice as fast as sentence-transformers; near or above "
                "100% it cannot be reached on this path."]
    if st_same_isa:
        out += ["", f"sentence-transformers (PyTorch) was held to {ISA_TITLE.get(isa, isa)} in these rows."]
    torch_v = next((r.get("torch") for r in st if r.get("torch")), None)
    out += ["", f"{len(cloze)} cloze runs on this path; PyTorch {torch_v or 'not installed'}.", ""]
    return out


def replace_embed(args):
    path = os.path.join(args.bench_dir, "embed.jsonl")
    table = embed_table(path, args.isa)
    if not table:
        sys.exit(f"no cloze rows for path {args.isa} in {path}: run `bash benches/embed.sh` first")
    replace_subsection(args, "### Sentence embeddings", table, "sentence embeddings", path)


def welch(a, b):
    """Mean of b − a and the half-width of its 95% Welch interval (None below 2 values each)."""
    import statistics
    from math import sqrt
    d = statistics.mean(b) - statistics.mean(a)
    if len(a) < 2 or len(b) < 2:
        return d, None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = sqrt(va + vb)
    if se == 0:
        return d, 0.0
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    # two-sided 97.5% t quantiles; df is rounded down (conservative)
    t = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}
    return d, t.get(max(1, int(df)), 2.0) * se


def bf16_table(path):
    """The bf16 mixed-precision tables (step time and held-out loss), from benches/bf16.sh."""
    import statistics
    if not os.path.exists(path):
        return []
    rows = [json.loads(l) for l in open(path) if l.strip()]
    speed = [r for r in rows if "ms_per_step" in r]
    loss = [r for r in rows if "heldout_lm_loss" in r]
    if not speed and not loss:
        return []
    out = ["### bf16 mixed-precision training", "",
           "`precision = \"bf16\"` (pre-training config; `Tape::set_precision` in the library): the operands of "
           "every matrix product, forward and backward, are rounded to bf16 and multiplied with `vdpbf16ps` "
           "(f32 accumulation); weights, gradients and AdamW state stay f32. PyTorch's peer is "
           "`torch.autocast(\"cpu\", dtype=torch.bfloat16)` around the same masked-MLM step. From "
           "`bash benches/bf16.sh` (implementations alternated in one session; medians over runs)."]
    if speed:
        groups = {}
        for r in speed:
            impl = r["impl"] if r["impl"] != "cloze" else f"cloze-{r.get('precision', 'f32')}"
            groups.setdefault((r["config"], r["threads"]), {}).setdefault(impl, []).append(r["ms_per_step"])
        out += ["", "| config | threads | cloze f32 ms/step | cloze bf16 ms/step | **bf16 speed-up** "
                "| PyTorch f32 ms/step | PyTorch autocast bf16 ms/step | PyTorch's bf16 speed-up "
                "| cloze bf16 vs PyTorch bf16 |", "|---|---|---|---|---|---|---|---|---|"]
        order = {"repro": 0, "tiny": 1, "mini": 2, "base": 3}
        for (cfg, th), g in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
            med = {k: statistics.median(v) for k, v in g.items()}
            f = lambda k: f"{med[k]:.1f}" if k in med else "–"
            ratio = lambda a, b: f"{med[a] / med[b]:.2f}×" if a in med and b in med else "–"
            out.append(f"| {cfg} | {th} | {f('cloze-f32')} | {f('cloze-bf16')} | **{ratio('cloze-f32', 'cloze-bf16')}** "
                       f"| {f('pytorch-masked')} | {f('pytorch-masked-bf16')} | {ratio('pytorch-masked', 'pytorch-masked-bf16')} "
                       f"| {ratio('pytorch-masked-bf16', 'cloze-bf16')} |")
    if loss:
        by = {}
        for r in loss:
            by.setdefault(r["precision"], {})[r["seed"]] = r["heldout_lm_loss"]
        r0 = loss[0]
        seeds = sorted({r["seed"] for r in loss})
        out += ["", f"Held-out MLM loss after {r0['steps']} steps of {r0['config']} pre-training "
                f"({r0.get('what', '')}), one run per precision and seed:", "",
                "| precision | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |",
                "|---|" + "---|" * len(seeds) + "---|"]
        for p in ["f32", "bf16"]:
            if p not in by:
                continue
            v = [by[p][s] for s in seeds if s in by[p]]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            out.append(f"| {p} | " + " | ".join(f"{by[p][s]:.3f}" if s in by[p] else "–" for s in seeds)
                       + f" | {statistics.mean(v):.3f} ± {sd:.3f} |")
        uni = [r["heldout_unigram_loss"] for r in loss if r.get("heldout_unigram_loss")]
        cf = [r["heldout_context_free_loss"] for r in loss if r.get("heldout_context_free_loss")]
        if uni and cf:
            out += ["", f"On the same held-out positions the unigram entropy is {statistics.mean(uni):.3f} nats and "
                    f"the context-free floor {statistics.mean(cf):.3f} (means over the runs): a run below the floor "
                    "has learned from context, so the comparison is not made on the unigram plateau."]
        if "f32" in by and "bf16" in by:
            d, hw = welch(list(by["f32"].values()), list(by["bf16"].values()))
            ci = f" [{d - hw:+.3f}, {d + hw:+.3f}]" if hw is not None else ""
            verdict = ("within seed noise (the interval covers 0)" if hw is not None and d - hw <= 0 <= d + hw
                       else "outside seed noise" if hw is not None else "too few seeds for an interval")
            out += ["", f"bf16 − f32: {d:+.3f} nats{ci} (95% Welch interval): {verdict}."]
    return out + [""]


def replace_bf16(args):
    table = bf16_table(os.path.join(args.bench_dir, "bf16.jsonl"))
    if not table:
        sys.exit(f"no rows in {args.bench_dir}/bf16.jsonl: run `bash benches/bf16.sh` first")
    replace_subsection(args, "### bf16 mixed-precision training", table, "bf16 training",
                       os.path.join(args.bench_dir, "bf16.jsonl"))


SECTION = re.compile(r"<!-- section: (.*?) -->\n(.*?)<!-- /section -->\n?", re.S)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--isa", help="the kernel path the criterion benches measured (CLOZE_KERNEL)")
    ap.add_argument("--criterion", default=None, help="criterion results (default target/criterion/ISA)")
    ap.add_argument("--limits", default="target/criterion/limits", help="criterion results of machine_limits")
    ap.add_argument("--bench-dir", default="target/bench", help="raw results of the scripted benches")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--extra", action="append", default=[],
                    help="markdown files to append to this section (e.g. the MPI scaling table)")
    ap.add_argument("--only-train-step", action="store_true",
                    help="replace only the training-step table of this machine's section "
                         "(after `bash benches/train_step.sh` alone), keeping the rest")
    ap.add_argument("--print-train-step", metavar="JSONL",
                    help="print the training-step table of --isa (default: of every path in the file) "
                         "from these JSON lines and exit (benches/train_step.sh uses it)")
    ap.add_argument("--only-embed", action="store_true",
                    help="replace only the sentence-embedding table of this machine's section "
                         "(after `bash benches/embed.sh` alone), keeping the rest")
    ap.add_argument("--print-embed", metavar="JSONL",
                    help="print the sentence-embedding table of every path in these JSON lines and exit")
    ap.add_argument("--only-bf16", action="store_true",
                    help="replace only the bf16-training tables of this machine's section "
                         "(after `bash benches/bf16.sh` alone), keeping the rest")
    ap.add_argument("--print-bf16", metavar="JSONL",
                    help="print the bf16-training tables from these JSON lines and exit")
    args = ap.parse_args()
    if args.print_bf16:
        print("\n".join(bf16_table(args.print_bf16)))
        return
    if args.print_embed:
        rows = [json.loads(l) for l in open(args.print_embed) if l.strip()]
        for isa in [args.isa] if args.isa else sorted({r["isa"] for r in rows if r["impl"] == "cloze"}):
            print("\n".join(embed_table(args.print_embed, isa)))
        return
    if args.print_train_step:
        rows = [json.loads(l) for l in open(args.print_train_step) if l.strip()]
        for isa in [args.isa] if args.isa else sorted({r["isa"] for r in rows if r["impl"] == "cloze" and r.get("isa")}):
            print("\n".join(train_step_table(args.print_train_step, isa)))
        return
    if not args.isa:
        ap.error("--isa is required")
    if args.only_train_step:
        return replace_train_step(args)
    if args.only_bf16:
        return replace_bf16(args)
    if args.only_embed:
        return replace_embed(args)
    crit = args.criterion or os.path.join("target", "criterion", args.isa)
    rows = load(crit)
    if not rows:
        sys.exit(f"no criterion results under {crit}: run `bash benches/report.sh` first")
    key = section_key(args.isa)
    lim = limits(load(args.limits) if os.path.isdir(args.limits) else rows)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    body = section_head(args.isa) + [
        f"- {rustc}; generated {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    if lim:
        body.append("- Measured limits (machine_limits bench): " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(lim.items()) if not k.startswith("_")))
    body.append("")
    body += derived(rows, lim, args.isa, args.bench_dir)
    body += train_step_table(os.path.join(args.bench_dir, "train_step.jsonl"), args.isa, lim)
    body += embed_table(os.path.join(args.bench_dir, "embed.jsonl"), args.isa)
    if args.isa == "avx512":
        body += bf16_table(os.path.join(args.bench_dir, "bf16.jsonl"))
    for extra in args.extra:
        with open(extra) as f:
            body += [f.read().rstrip().replace("\n## ", "\n### ").replace("## ", "### ", 1), ""]
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    body += ["<details><summary>Every criterion result on this path</summary>", ""]
    for g, rs in groups.items():
        body += [f"#### {g}", "", "| bench | mean | 95% CI | throughput |", "|---|---|---|---|"]
        for r in rs:
            thr = ""
            if "gflops" in r:
                thr = f"{r['gflops']:.1f} GFLOP/s"
            elif "gbs" in r:
                thr = f"{r['gbs']:.1f} GB/s"
            body.append(
                f"| {r['id'].split('/', 1)[-1] if '/' in r['id'] else r['id']} | {fmt_time(r['mean_ns'])} "
                f"| {fmt_time(r['ci_low'])} – {fmt_time(r['ci_high'])} | {thr} |")
        body.append("")
    body += ["</details>", ""]
    sections = {}
    if os.path.exists(args.out):
        for k, v in SECTION.findall(open(args.out).read()):
            sections[k] = v
    sections[key] = "\n".join(body) + "\n"
    head = [
        "# Benchmarks",
        "",
        "Regenerated by `bash benches/report.sh` (criterion benches on every kernel path the CPU has",
        "among AVX-512 and AVX2, the training step against PyTorch, then `benches/report.py`). One",
        "section per CPU and kernel path seen; a run replaces only its own machine's sections. Times",
        "are criterion means on a shared machine: compare ratios measured in the same run, not",
        "absolute times across runs or sections.",
        "",
    ]
    text = "\n".join(head) + "\n" + "".join(
        f"<!-- section: {k} -->\n{v}<!-- /section -->\n\n" for k, v in sorted(sections.items()))
    with open(args.out, "w") as f:
        f.write(text.rstrip("\n") + "\n")
    print(f"wrote the section {key!r} of {args.out} ({len(rows)} benches; {len(sections)} sections in all)")


if __name__ == "__main__":
    main()
