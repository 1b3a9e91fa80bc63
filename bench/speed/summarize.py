#!/usr/bin/env python3
"""The tables BENCHMARKS.md quotes, from the JSON reports of bench/speed/run.sh.

    python3 bench/speed/summarize.py [DIR]     # DIR defaults to bench/speed

Per model file: one row per (threads, batch) with the median time of each engine, for the
velocity network's forward and for a whole sampling call, and the ratio of Rust's fastest
precision (bf16 where the reports have it, else fp32) to each other engine; then the Rust
pipeline's throughput, prior share, peak heap and forward GFLOP/s per precision.
"""

import json
import sys
from pathlib import Path

DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
ENGINES = ["rust bf16", "rust fp32", "torch fp32", "torch bf16 autocast", "onnxruntime"]
NAMES = {"rust bf16": "Rust bf16", "rust fp32": "Rust fp32", "torch fp32": "PyTorch fp32",
         "torch bf16 autocast": "PyTorch bf16 autocast", "onnxruntime": "ONNX Runtime"}

for name, title in [("ledi", "LeDiFlow (`dcss-small-ledi`)"), ("gaussian", "Gaussian baseline (`dcss-small-gaussian`)")]:
    reports = [json.load(open(DIR / f"{name}-{t}thread.json")) for t in (1, 2) if (DIR / f"{name}-{t}thread.json").exists()]
    if not reports:
        continue
    engines = [e for e in ENGINES if any(x["engine"] == e for r in reports for x in r["rows"])]
    lead = engines[0]
    for what in ["forward", "whole call"]:
        print(f"\n{title}, {what} (ms; {NAMES[lead]}'s time over each engine's in brackets)\n")
        print("| threads | batch | " + " | ".join(NAMES[e] for e in engines) + " |")
        print("|---|---|" + "---|" * len(engines))
        for r in reports:
            rows = {(x["engine"], x["batch"]): x["ms"] for x in r["rows"] if x["what"] == what}
            for b in sorted({x["batch"] for x in r["rows"]}):
                ours = rows[(lead, b)]
                cells = [f"{ours:.1f}"] + [f"{rows[(e, b)]:.1f} ({ours / rows[(e, b)]:.2f})" for e in engines[1:]]
                print(f"| {r['threads']} | {b} | " + " | ".join(cells) + " |")
    print(f"\n{title}, the Rust pipeline (`lediflow bench`)\n")
    print("| precision | threads | batch | sample (ms) | images/s | prior (ms, share) | peak heap (MiB) | FM forward GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in reports:
        for b in sorted(r["rust_bench"], key=lambda b: (b.get("precision", "fp32") != "bf16", b["batch"])):
            prior = f"{b['prior_ms']:.1f} ({100 * b['prior_ms'] / b['sample_ms']:.0f}%)" if b.get("prior_ms") else "-"
            print(f"| {b.get('precision', 'fp32')} | {r['threads']} | {b['batch']} | {b['sample_ms']:.1f} "
                  f"| {b['images_per_s']:.1f} | {prior} | {b['peak_heap_bytes'] / 2**20:.1f} | {b['forward_gflops']:.1f} |")
