#!/usr/bin/env python3
"""The quality table BENCHMARKS.md quotes: both shipped files side by side per solver and NFE,
mean ± sd over the sampling seeds, from the JSON files of bench/quality/run.sh.

    python3 bench/quality/table.py [DIR]      # DIR defaults to bench/quality
"""

import json
import sys
from pathlib import Path

DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
COLS = [("swd", 1), ("kid_pixels", 1), ("kid_features", 1), ("precision", 3), ("recall", 3), ("nearest_train", 3)]

print("| solver | NFE | file | SWD | KID pixels | KID conv | precision | recall | nearest |")
print("|---|---|---|---|---|---|---|---|---|")
floor, held_out = None, None
for solver in ["midpoint", "euler"]:
    paths = {n: DIR / f"{n}-{solver}.json" for n in ("ledi", "gaussian")}
    docs = {n: json.loads(p.read_text()) for n, p in paths.items() if p.exists()}
    runs = {n: {r["nfe"]: r for r in doc["results"]} for n, doc in docs.items()}
    for doc in docs.values():
        floor, held_out = doc["real_floor"]["report"], doc["held_out_nearest_train"]
    for nfe in sorted({k for r in runs.values() for k in r}):
        for name, label in [("ledi", "LeDiFlow"), ("gaussian", "baseline")]:
            r = runs.get(name, {}).get(nfe)
            if r is None:
                continue
            cells = [f"{r['report'][k]:.{d}f} ± {r['sd'][k]:.{d}f}" for k, d in COLS]
            print(f"| {solver} | {nfe} | {label} | " + " | ".join(cells) + " |")
if floor:
    cells = [f"{floor[k]:.{d}f}" for k, d in COLS[:5]]
    print("| real training tiles | - | - | " + " | ".join(cells) + f" | {held_out:.3f} (held-out) |")
