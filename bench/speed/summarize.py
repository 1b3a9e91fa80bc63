#!/usr/bin/env python3
"""The tables BENCHMARKS.md quotes, from the JSON reports of bench/speed/run.sh.

    python3 bench/speed/summarize.py [DIR]     # DIR defaults to bench/speed

Per model file: one row per (threads, batch) with the median time of each engine, for the
velocity network's forward and for a whole sampling call, and Rust's ratio to each; then the Rust
pipeline's throughput, prior share, peak heap and forward GFLOP/s.
"""

import json
import sys
from pathlib import Path

DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
ENGINES = ["rust fp32", "torch fp32", "torch bf16 autocast", "onnxruntime"]

for name, title in [("ledi", "LeDiFlow (`dcss-small-ledi`)"), ("gaussian", "Gaussian baseline (`dcss-small-gaussian`)")]:
    reports = [json.load(open(DIR / f"{name}-{t}thread.json")) for t in (1, 2) if (DIR / f"{name}-{t}thread.json").exists()]
    if not reports:
        continue
    for what in ["forward", "whole call"]:
        print(f"\n{title}, {what} (ms; Rust's time over each engine's in brackets)\n")
        print("| threads | batch | Rust fp32 | PyTorch fp32 | PyTorch bf16 autocast | ONNX Runtime |")
        print("|---|---|---|---|---|---|")
        for r in reports:
            rows = {(x["engine"], x["batch"]): x["ms"] for x in r["rows"] if x["what"] == what}
            for b in sorted({x["batch"] for x in r["rows"]}):
                rust = rows[("rust fp32", b)]
                cells = [f"{rust:.1f}"] + [f"{rows[(e, b)]:.1f} ({rust / rows[(e, b)]:.2f})" for e in ENGINES[1:]]
                print(f"| {r['threads']} | {b} | " + " | ".join(cells) + " |")
    print(f"\n{title}, the Rust pipeline (`lediflow bench`)\n")
    print("| threads | batch | sample (ms) | images/s | prior (ms, share) | peak heap (MiB) | FM forward GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for r in reports:
        for b in r["rust_bench"]:
            prior = f"{b['prior_ms']:.1f} ({100 * b['prior_ms'] / b['sample_ms']:.0f}%)" if b.get("prior_ms") else "-"
            print(f"| {r['threads']} | {b['batch']} | {b['sample_ms']:.1f} | {b['images_per_s']:.1f} | {prior} "
                  f"| {b['peak_heap_bytes'] / 2**20:.1f} | {b['forward_gflops']:.1f} |")
