"""Merges the JSON files of bench/quality/run.sh into markdown for BENCHMARKS.md: SWD (and the
other metrics) against NFE for LeDiFlow and its Gaussian baseline, and the NFE ratio at matched
SWD (how many baseline NFE reach LeDiFlow's SWD at 4 and 8 NFE; log-NFE interpolation).

    python3 bench/quality/summarize.py ledi gaussian [DIR] > bench/quality/summary.md

DIR defaults to bench/quality.
"""

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOLVERS = ["euler", "midpoint", "heun", "rk4"]
METRICS = [("swd", "SWD x1e3", "{:.1f}"), ("kid_features", "KID random-conv x1e3", "{:.0f}"),
           ("kid_pixels", "KID pixels x1e3", "{:.1f}"), ("precision", "precision", "{:.2f}"),
           ("recall", "recall", "{:.2f}")]


def from_markdown(path):
    """Rows of a (possibly unfinished) `lediflow eval` table: its JSON is written only at the end."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and cells[0] in SOLVERS:
            # "mean ± sd" cells (several seeds) count by their mean.
            v = [float(c.split()[0]) for c in cells[3:9]]
            rows[int(cells[2])] = dict(zip(["swd", "kid_pixels", "kid_features", "precision", "recall", "nearest_train"], v))
    return rows


def load(name, here=HERE):
    """(per-solver {nfe: report}, the real-vs-real floor report or None)."""
    runs, floor = {}, None
    for s in SOLVERS:
        p = here / f"{name}-{s}.json"
        if p.exists():
            doc = json.loads(p.read_text())
            runs[s] = {r["nfe"]: r["report"] for r in doc["results"]}
            floor = floor or doc.get("real_floor", {}).get("report")
        elif (here / f"{name}-{s}.md").exists():
            runs[s] = from_markdown(here / f"{name}-{s}.md")
    return runs, floor


def nfe_to_reach(curve, target, key="swd"):
    """Smallest NFE (log-interpolated) at which the metric `key` of {nfe: report} falls to
    `target`, or None."""
    pts = sorted(curve.items())
    for (n0, r0), (n1, r1) in zip(pts, pts[1:]):
        a, b = r0[key], r1[key]
        if a <= target:
            return n0
        if b <= target:
            f = (a - target) / (a - b)
            return 2 ** (math.log2(n0) + f * (math.log2(n1) - math.log2(n0)))
    return pts[0][0] if pts and pts[0][1][key] <= target else None


def main():
    a_name, b_name = sys.argv[1], sys.argv[2]
    here = Path(sys.argv[3]) if len(sys.argv) > 3 else HERE
    (a, floor), (b, floor_b) = load(a_name, here), load(b_name, here)
    floor = floor or floor_b
    nfes = sorted({n for runs in (a, b) for c in runs.values() for n in c})
    for key, title, fmt in METRICS:
        print(f"\n**{title}** ({a_name} / {b_name})\n")
        print("| solver | " + " | ".join(f"NFE {n}" for n in nfes) + " |")
        print("|---|" + "---|" * len(nfes))
        for s in SOLVERS:
            if s not in a and s not in b:
                continue
            cells = []
            for n in nfes:
                va = a.get(s, {}).get(n, {}).get(key)
                vb = b.get(s, {}).get(n, {}).get(key)
                cells.append(" / ".join("-" if v is None else fmt.format(v) for v in (va, vb)))
            print(f"| {s} | " + " | ".join(cells) + " |")
        if floor:
            print(f"\nReal training tiles scored the same way (the floor): {fmt.format(floor[key])}")
    print(f"\n**NFE ratio at matched SWD** (baseline NFE needed to reach {a_name}'s SWD, same solver)\n")
    print(f"| solver | {a_name} NFE | {a_name} SWD | {b_name} NFE to match | ratio |")
    print("|---|---|---|---|---|")
    for s in SOLVERS:
        for n in (4, 8):
            if s in a and n in a[s] and b.get(s):
                target = a[s][n]["swd"]
                need = nfe_to_reach(b[s], target)
                top = max(b[s])
                cell, ratio = (f"{need:.1f}", f"{need / n:.2f}x") if need else (f"> {top}", f"> {top / n:.0f}x")
                print(f"| {s} | {n} | {target:.1f} | {cell} | {ratio} |")


if __name__ == "__main__":
    main()
