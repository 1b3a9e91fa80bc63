#!/usr/bin/env python3
"""The class tables BENCHMARKS.md and the model card quote, from the JSON files of
bench/classes/run.sh: quality
with every class in its held-out share at 4, 8 and 32 NFE, nearest-class accuracy per class, the
guidance sweep at 8 NFE, the NFE ratio at matched quality, and the pair against other files
without a class. Mean ± sd over the sampling seeds.

    python3 bench/classes/table.py [DIR]      # DIR defaults to bench/classes
"""

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "quality"))
from summarize import nfe_to_reach  # noqa: E402

DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
CLASSES = ["floor", "wall", "feature", "item", "creature"]
MODELS = [("ledi", "LeDiFlow"), ("gaussian", "baseline")]
COLS = [("swd", 1), ("kid_pixels", 1), ("kid_features", 1), ("precision", 3), ("recall", 3), ("nearest_train", 3)]


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def mean_acc(report):
    a = report.get("class_accuracy") or []
    return sum(a) / len(a) if a else None


def sd_acc(row):
    """Spread over the seeds of the mean class accuracy."""
    seeds = [mean_acc(s["report"]) for s in row.get("per_seed", [])]
    if len(seeds) < 2:
        return 0.0
    m = sum(seeds) / len(seeds)
    return math.sqrt(sum((x - m) ** 2 for x in seeds) / (len(seeds) - 1))


def cells(row, with_acc=True):
    r, sd = row["report"], row.get("sd", {})
    out = [f"{r[k]:.{d}f} ± {sd.get(k, 0):.{d}f}" for k, d in COLS]
    if with_acc:
        acc = mean_acc(r)
        out.append("-" if acc is None else f"{acc:.3f} ± {sd_acc(row):.3f}")
    return out


def floor_cells(doc, with_acc=True):
    f = doc["real_floor"]["report"]
    out = [f"{f[k]:.{d}f}" for k, d in COLS[:5]] + [f"{doc['held_out_nearest_train']:.3f} (held-out)"]
    if with_acc:
        acc = mean_acc(f)
        out.append("-" if acc is None else f"{acc:.3f}")
    return out


def main():
    docs = {m: load(DIR / f"{m}-classes.json") for m, _ in MODELS}
    guid = {m: load(DIR / f"{m}-guidance.json") for m, _ in MODELS}
    prior_only = load(DIR / "ledi-prior-only.json")
    real = next((d for d in docs.values() if d), None)

    def at_8(m):
        """The model's 8-NFE rows (guidance 1 from -classes, the rest from -guidance), by guidance."""
        rows = [r for d in (docs[m], guid[m]) if d for r in d["results"] if r["nfe"] == 8]
        return sorted(rows, key=lambda r: r["guidance"])

    print("**Every class in its held-out share** (`<model>-classes.md`)\n")
    print("| NFE | file | SWD | KID pixels | KID conv | precision | recall | nearest | class acc. |")
    print("|---|---|---|---|---|---|---|---|---|")
    for nfe in sorted({r["nfe"] for d in docs.values() if d for r in d["results"]}):
        for m, label in MODELS:
            for r in (docs[m] or {}).get("results", []):
                if r["nfe"] == nfe:
                    print(f"| {nfe} | {label} | " + " | ".join(cells(r)) + " |")
    if real:
        print("| - | real training tiles | " + " | ".join(floor_cells(real)) + " |")

    print("\n**Nearest-class accuracy per class**, 8 NFE (`<model>-classes.md`, `<model>-guidance.md`)\n")
    print("| file | guidance | " + " | ".join(CLASSES) + " | mean |")
    print("|---|---|" + "---|" * (len(CLASSES) + 1))
    for m, label in MODELS:
        for r in at_8(m):
            if r["guidance"] in (1.0, 2.0):
                acc = r["report"]["class_accuracy"]
                print(f"| {label} | {r['guidance']:g} | " + " | ".join(f"{a:.3f}" for a in acc)
                      + f" | {mean_acc(r['report']):.3f} |")
    if real:
        f = real["real_floor"]["report"]
        print("| real training tiles | - | " + " | ".join(f"{a:.3f}" for a in f["class_accuracy"])
              + f" | {mean_acc(f):.3f} |")

    print("\n**Guidance at 8 NFE** (`<model>-guidance.md`, `ledi-prior-only.md`)\n")
    print("| file | class given to | guidance | image-flow evaluations | SWD | KID conv | precision | recall | class acc. |")
    print("|---|---|---|---|---|---|---|---|---|")
    def pick(r):
        c = cells(r)
        return [c[i] for i in (0, 2, 3, 4, 6)]

    for m, label in MODELS:
        to = "both flows" if m == "ledi" else "image flow"
        for r in at_8(m):
            print(f"| {label} | {to} | {r['guidance']:g} | {r['image_flow_evals']} | " + " | ".join(pick(r)) + " |")
        if m == "ledi" and prior_only:
            for r in prior_only["results"]:
                print(f"| {label} | latent flow only | {r['guidance']:g} | {r['image_flow_evals']} | "
                      + " | ".join(pick(r)) + " |")

    if docs["ledi"] and docs["gaussian"]:
        print("\n**NFE ratio at matched quality** (baseline NFE that reach LeDiFlow's value at 4 NFE; "
              "log-NFE interpolation)\n")
        print("| metric | LeDiFlow at 4 NFE | baseline NFE to match | ratio |")
        print("|---|---|---|---|")
        curve = {m: {r["nfe"]: r["report"] for r in docs[m]["results"]} for m, _ in MODELS}
        for key, name in [("swd", "SWD"), ("kid_features", "KID conv")]:
            if 4 not in curve["ledi"]:
                continue
            target = curve["ledi"][4][key]
            need = nfe_to_reach(curve["gaussian"], target, key)
            top = max(curve["gaussian"])
            cell, ratio = (f"{need:.1f}", f"{need / 4:.2f}x") if need else (f"> {top}", f"> {top / 4:.0f}x")
            print(f"| {name} | {target:.1f} | {cell} | {ratio} |")

    print("\n**Without a class, against the previous files** (`<model>-unconditional.md`, "
          "`previous-<model>.md`; same held-out tiles)\n")
    print("| NFE | file | SWD | KID pixels | KID conv | precision | recall | nearest |")
    print("|---|---|---|---|---|---|---|---|")
    plain = {(m, which): load(DIR / f"{name}.json") for m, _ in MODELS
             for which, name in [("class-conditional", f"{m}-unconditional"), ("previous", f"previous-{m}")]}
    for nfe in (4, 8, 32):
        for m, label in MODELS:
            for which in ("class-conditional", "previous"):
                for r in (plain[m, which] or {}).get("results", []):
                    if r["nfe"] == nfe:
                        print(f"| {nfe} | {label}, {which} | " + " | ".join(cells(r, False)) + " |")


if __name__ == "__main__":
    main()
