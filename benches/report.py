#!/usr/bin/env python3
"""Collects criterion results from target/criterion and writes BENCHMARKS.md.

Usage: python3 benches/report.py [--criterion DIR] [--out BENCHMARKS.md]

Every figure comes from the criterion estimates of the last bench run (mean time of one
iteration) and the throughput each bench declared (Elements = floating-point operations,
Bytes = bytes read + written). Derived columns: the fraction of the machine's measured limits
(FMA peak and copy bandwidth from the `machine_limits` bench) and ratios to peers measured in
the same run (bench ids that name a peer: matrixmultiply, gemm-crate, pytorch, unfused, scalar).
"""
import argparse
import datetime
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
        if r["group"] == "memcpy_64MiB" and "gbs" in r:
            out["copy_" + key] = r["gbs"]
    return out


def derived(rows, lim):
    """Summary tables: GEMM as a fraction of the measured FMA peak and against the peers;
    attention fused vs unfused and vs PyTorch; memory-bound kernels against a copy."""
    by_id = {(r["group"], r["id"].split("/", 1)[1] if "/" in r["id"] else r["id"]): r for r in rows}
    out = []
    peak = lim.get("avx512")
    if peak:
        out += ["## Summary: GEMM against the machine and the peers", "",
                f"Peak = the measured AVX-512 FMA peak ({peak:.0f} GFLOP/s per core) × threads. "
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
            out += ["", f"bf16 GEMM (bf16 operands, f32 accumulation, `vdpbf16ps`) at 4096×768×768, 1 thread: "
                    f"{bf['gflops']:.0f} GFLOP/s = {bf['gflops'] / f32['gflops']:.2f}× our f32 GEMM."]
        out.append("")
    att = []
    for t in (128, 512):
        f = by_id.get((f"attention_engine_b8_h12_d64_t{t}", "fused_fwd_bwd"))
        u = by_id.get((f"attention_engine_b8_h12_d64_t{t}", "unfused_fwd_bwd"))
        if f and u:
            att.append((t, f, u))
    if att:
        out += ["## Summary: attention (engine op, forward + backward, batch 8, 12 heads, d 64, dropout 0.1, padding mask)", "",
                "| seq | fused | unfused | fused speed-up |", "|---|---|---|---|"]
        torch_rows = {}
        path = os.path.join(os.path.dirname(__file__), "..", "target", "bench", "pytorch_attention.jsonl")
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
    mem_path = os.path.join(os.path.dirname(__file__), "..", "target", "bench", "attention_memory.jsonl")
    if os.path.exists(mem_path):
        mem_rows = {}
        for line in open(mem_path):
            if line.strip():
                r = json.loads(line)
                mem_rows[(r["seq"], r["impl"])] = r
        seqs = sorted({s for s, _ in mem_rows})
        out += ["## Summary: attention peak memory (engine op, forward + backward, same sizes)", "",
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
        best = by_id.get((g, "avx512_1t"))
        allt = by_id.get((g, "avx512_all"))
        copy = by_id.get((g, "copy_1t"))
        stream = by_id.get((g, "copy_stream_1t"))
        if best and copy and "gbs" in best:
            bw.append((g, best, allt, copy, stream))
    if bw:
        mem = lim.get("copy_t1")
        out += ["## Summary: memory-bound kernels against a copy of the same bytes (arrays larger than L2)", "",
                "Throughput counts every byte read and written; AdamW reads four arrays and writes three, and "
                "reads cost less than a copy's even read/write mix, so it can exceed 100%. Three references: "
                "in each group, `copy_from_slice` (the C library's memcpy) and a streaming-store copy moving the "
                "same bytes, measured beside the kernel; and the machine's 1-thread memcpy bandwidth from the "
                "`machine_limits` bench (64 MiB), the bandwidth the issue's 70% target refers to. A call that "
                "reads and writes at least `simd::STREAM_MIN_BYTES` (32 MiB, the L3) writes its output with "
                "streaming stores: here every group but the `_cached` cross-entropy (AdamW updates in place).", "",
                "| kernel | AVX-512 1 thread | % of memcpy (same bytes) | % of streaming copy (same bytes) "
                "| % of machine memcpy | AVX-512 2 threads |",
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
        out += ["## Summary: tape overhead", "",
                f"A chain of 4 ops (mul, add, mul, sum) on 16 elements: forward + backward with recording "
                f"{fmt_time(rec['mean_ns'])}, forward with recording off {fmt_time(ng['mean_ns'])}; "
                f"about {rec['mean_ns'] / 8:.0f} ns per recorded op and its backward.", ""]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion", default="target/criterion")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--extra", action="append", default=[],
                    help="markdown files to append (e.g. the training-step comparison with PyTorch)")
    args = ap.parse_args()
    rows = load(args.criterion)
    if not rows:
        sys.exit(f"no criterion results under {args.criterion}: run `cargo bench` first")
    model, flags, cores = cpu_info()
    lim = limits(rows)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Benchmarks",
        "",
        "Regenerated by `bash benches/report.sh` (criterion benches, then `benches/report.py`).",
        "Times are criterion means on a shared machine: compare ratios measured in the same run,",
        "not absolute times across runs.",
        "",
        f"- CPU: {model} ({cores} cores visible), flags: {flags}",
        f"- {rustc}; generated {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    if lim:
        lines.append("- Measured limits (machine_limits bench): " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(lim.items())))
    lines.append("")
    peak_keys = {k: v for k, v in lim.items() if "fma" in k or "peak" in k}
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    for g, rs in groups.items():
        lines += [f"## {g}", "", "| bench | mean | 95% CI | throughput |", "|---|---|---|---|"]
        for r in rs:
            thr = ""
            if "gflops" in r:
                thr = f"{r['gflops']:.1f} GFLOP/s"
            elif "gbs" in r:
                thr = f"{r['gbs']:.1f} GB/s"
            lines.append(
                f"| {r['id'].split('/', 1)[-1] if '/' in r['id'] else r['id']} | {fmt_time(r['mean_ns'])} "
                f"| {fmt_time(r['ci_low'])} – {fmt_time(r['ci_high'])} | {thr} |")
        lines.append("")
    lines += derived(rows, lim)
    for extra in args.extra:
        with open(extra) as f:
            lines += [f.read().rstrip(), ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out} ({len(rows)} benches)")


if __name__ == "__main__":
    main()
