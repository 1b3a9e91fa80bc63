#!/usr/bin/env python3
"""Paired comparison of two `lediflow eval --seed 0,1,2,3,4 --json` reports (same seeds).

usage: paired.py A.json B.json   -> per metric: mean of A, mean of B, mean of B - A over the
seeds, and in how many seeds B is below A (lower is better for SWD and KID, higher for recall).
Compares the first result row of each file (one solver/steps setting per eval run).
"""
import json
import sys


def first_row(path):
    return json.load(open(path))["results"][0]


a, b = first_row(sys.argv[1]), first_row(sys.argv[2])
print("steps", a["steps"], b["steps"], "time shift", a.get("time_shift"), b.get("time_shift"))
for k in ["swd", "kid_pixels", "kid_features", "precision", "recall", "nearest_train"]:
    pa = [s["report"][k] for s in a["per_seed"]]
    pb = [s["report"][k] for s in b["per_seed"]]
    assert [s["seed"] for s in a["per_seed"]] == [s["seed"] for s in b["per_seed"]], "different seeds"
    d = [y - x for x, y in zip(pa, pb)]
    n = len(d)
    print(f"{k:13s} A {sum(pa)/n:8.3f}  B {sum(pb)/n:8.3f}  B-A {sum(d)/n:+8.3f}  B<A in {sum(x < 0 for x in d)}/{n}")
