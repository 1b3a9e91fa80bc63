#!/usr/bin/env python3
"""The precision tables BENCHMARKS.md quotes, from bench/precision/run.sh's JSON files: held-out
quality at 8 NFE in fp32 and bf16 for each shipped file (without a class, and by class), mean ±
sd over the sampling seeds, and the paired difference bf16 - fp32 (the same seeds: mean and sd
of the per-seed differences) against the seed spread. A metric passes when its mean moves by less
than one fp32 seed sd.

    python3 bench/precision/table.py [DIR]      # DIR defaults to bench/precision
"""

import json
import math
import sys
from pathlib import Path

DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
MODELS = [("ledi", "LeDiFlow"), ("gaussian", "baseline")]
COLS = [("swd", "SWD x1e3", 2), ("kid_pixels", "KID pixels x1e3", 2), ("kid_features", "KID conv x1e3", 2),
        ("precision", "precision", 3), ("recall", "recall", 3), ("class_acc", "class acc.", 3)]


def metric(report, key):
    if key == "class_acc":
        a = report.get("class_accuracy") or []
        return sum(a) / len(a) if a else None
    return report[key]


def stats(xs):
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0


def per_seed(doc, key):
    return [metric(s["report"], key) for s in doc["results"][0]["per_seed"]]


failures = 0
for kind, title in [("", "without a class"), ("classes-", "by class (every class in its held-out share)")]:
    cols = [c for c in COLS if kind or c[0] != "class_acc"]
    print(f"\nHeld-out quality at 8 NFE (4 Midpoint steps), {title}: mean ± sd over five seeds; "
          "Δ = bf16 - fp32 on the same seeds (mean ± sd of the paired differences)\n")
    print("| model | precision | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name, label in MODELS:
        docs = {p: DIR / f"{name}-{kind}{p}.json" for p in ("fp32", "bf16")}
        if not all(d.exists() for d in docs.values()):
            continue
        docs = {p: json.loads(d.read_text()) for p, d in docs.items()}
        for p in ("fp32", "bf16"):
            cells = []
            for key, _, d in cols:
                m, sd = stats(per_seed(docs[p], key))
                cells.append(f"{m:.{d}f} ± {sd:.{d}f}")
            print(f"| {label} | {p} | " + " | ".join(cells) + " |")
        cells = []
        for key, _, d in cols:
            a, b = per_seed(docs["fp32"], key), per_seed(docs["bf16"], key)
            dm, dsd = stats([y - x for x, y in zip(a, b)])
            spread = stats(a)[1]
            ok = abs(dm) < spread
            failures += not ok
            cells.append(f"{dm:+.{d}f} ± {dsd:.{d}f}{'' if ok else ' (beyond the seed sd)'}")
        print(f"| {label} | Δ | " + " | ".join(cells) + " |")
print("\nEvery metric within the seed spread." if failures == 0 else f"\n{failures} metric(s) beyond the seed spread.")
