"""Samples a grid from a lediflow model with the Python binding and writes it as a PNG.

    cargo build --release --lib
    PYTHONPATH=bindings/python python3 examples/python/sample_grid.py models/dcss-small-ledi.safetensors grid.png
"""

import argparse
import sys

import lediflow


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--solver", default="midpoint")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    def progress(step, total):
        print(f"\rstep {step}/{total}", end="\n" if step == total else "", file=sys.stderr)

    try:
        with lediflow.Model(args.model) as model:
            images = model.sample(args.count, seed=args.seed, steps=args.steps, solver=args.solver,
                                  progress=progress)
    except lediflow.LediflowError as e:
        sys.exit(f"lediflow error: {e}")
    lediflow.save_png(args.out, lediflow.make_grid(images))
    print(f"wrote {args.out}: {images.shape[0]} images of {images.shape[1:]} (lediflow {lediflow.version()})")


if __name__ == "__main__":
    main()
