#!/usr/bin/env python3
"""The velocity network of a lediflow model file, rebuilt in PyTorch and exported to ONNX Runtime:
checks parity with the Rust engine on the same inputs and times all three side by side.

Not part of the test suite (PyTorch is large). Run by hand:

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch onnx onnxscript onnxruntime safetensors numpy
    cargo build --release
    .venv-bench/bin/python bench/torch_reference.py --model models/dcss-small-ledi.safetensors \
        --threads 1 --batches 1,16,64 --json bench/reference/ledi-1thread.json

Every engine runs the same f32 weights (the file's f16 tensors widened to f32, as the Rust loader
does) on the same inputs (x ~ N(0, I), t ~ U[0, 1] from numpy seed 0), with the same number of
threads. Timing runs in --rounds rounds, each timing Rust, PyTorch and ONNX Runtime one after the
other (median of --repeats calls after a warm-up); the report is the median over the rounds, so a
slow minute of a noisy machine hits all engines alike. The Rust side is `lediflow bench
--forward-input`, run as a subprocess with RAYON_NUM_THREADS.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

TIME_FREQ_DIM = 256
LN_EPS = 1e-6


def layer_norm(x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + LN_EPS)


def modulate(x, shift, scale):
    return layer_norm(x) * (scale[:, None, :] + 1.0) + shift[:, None, :]


def time_embedding(t, dim):
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(-math.log(10_000.0) * i / half)
    args = (t * 1000.0)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def pos_embedding_2d(grid, dim):
    quarter = dim // 4
    omega = 1.0 / 10_000.0 ** (np.arange(quarter, dtype=np.float32) / quarter)
    rows = []
    for r in range(grid):
        for c in range(grid):
            feats = []
            for pos in (r, c):
                feats += [np.sin(pos * omega), np.cos(pos * omega)]
            rows.append(np.concatenate(feats))
    return torch.from_numpy(np.stack(rows).astype(np.float32))[None]


class Block(torch.nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.heads = heads
        self.modulation = torch.nn.Linear(d, 6 * d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.fc1 = torch.nn.Linear(d, hidden)
        self.fc2 = torch.nn.Linear(hidden, d)

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)
        b, n, d = x.shape
        qkv = self.qkv(modulate(x, shift1, scale1))
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for i in range(3))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(a) * gate1[:, None, :]
        h = self.fc2(F.gelu(self.fc1(modulate(x, shift2, scale2))))
        return x + h * gate2[:, None, :]


class VelocityNet(torch.nn.Module):
    """The same network as src/model/dit.rs (DiT, adaLN-Zero, fixed 2-D sin-cos positions)."""

    def __init__(self, cfg):
        super().__init__()
        dit, img = cfg["dit"], cfg["image"]
        d, p, c = dit["dim"], dit["patch_size"], img["channels"]
        self.c, self.p, self.g = c, p, img["size"] // p
        self.patch_embed = torch.nn.Linear(c * p * p, d)
        self.time1 = torch.nn.Linear(TIME_FREQ_DIM, d)
        self.time2 = torch.nn.Linear(d, d)
        self.blocks = torch.nn.ModuleList(
            Block(d, dit["heads"], d * dit["mlp_ratio"]) for _ in range(dit["depth"]))
        self.final_modulation = torch.nn.Linear(d, 2 * d)
        self.final_proj = torch.nn.Linear(d, c * p * p)
        self.register_buffer("pos", pos_embedding_2d(self.g, d))

    def forward(self, x, t):
        b = x.shape[0]
        c, p, g = self.c, self.p, self.g
        tokens = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p)
        h = self.patch_embed(tokens) + self.pos
        cond = F.silu(self.time2(F.silu(self.time1(time_embedding(t, TIME_FREQ_DIM)))))
        for blk in self.blocks:
            h = blk(h, cond)
        shift, scale = self.final_modulation(cond).chunk(2, dim=1)
        out = self.final_proj(modulate(h, shift, scale))
        return out.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * p, g * p)


def load(model_path):
    with safe_open(model_path, "np") as f:
        meta = json.loads(f.metadata()["lediflow"])
        weights = {k[len("velocity."):]: f.get_tensor(k) for k in f.keys() if k.startswith("velocity.")}
    net = VelocityNet(meta["config"])
    state = {}
    for k, v in weights.items():
        v = torch.from_numpy(v.astype(np.float32))
        # burn stores Linear weights as [in, out]; PyTorch as [out, in].
        state[k] = v.t().contiguous() if k.endswith(".weight") else v
    state["pos"] = net.pos
    net.load_state_dict(state, strict=True)
    return net.eval(), meta["config"]


def midpoint_sample(net, x, steps):
    """The Gaussian-prior pipeline: x0 ~ N(0, I) integrated from t=0 to 1 with `steps` Midpoint
    steps, clamped to [-1, 1] (src/pipeline.rs, src/flow/solver.rs)."""
    h = 1.0 / steps
    n = x.shape[0]
    for k in range(steps):
        t = torch.full((n,), k * h)
        k1 = net(x, t)
        x = x + net(x + k1 * (0.5 * h), t + 0.5 * h) * h
    return x.clamp(-1.0, 1.0)


def median_ms(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--lediflow", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "lediflow"))
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per engine per round")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per batch size; each round times Rust, PyTorch and ONNX Runtime one after "
                         "the other, and the reported time is the median of the rounds' medians (the "
                         "development machines drift by tens of percent over a minute)")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    net, cfg = load(a.model)
    c, s = cfg["image"]["channels"], cfg["image"]["size"]
    rng = np.random.default_rng(0)
    work = tempfile.mkdtemp(prefix="lediflow-ref-")
    ort = None
    if not a.no_onnx:
        import onnxruntime as ort

        onnx_path = os.path.join(work, "velocity.onnx")
        ex = (torch.zeros(2, c, s, s), torch.zeros(2))
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(net, ex, onnx_path, input_names=["x", "t"], output_names=["v"],
                          dynamic_shapes={"x": {0: batch}, "t": {0: batch}}, dynamo=True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    rows = []
    print(f"model {a.model}, {a.threads} thread(s), torch {torch.__version__}"
          + ("" if ort is None else f", onnxruntime {ort.__version__}") + f", {platform.processor() or platform.machine()}")
    print("| batch | Rust (ms) | PyTorch (ms) | ONNX Runtime (ms) | Rust / PyTorch | Rust / ORT | max abs diff Rust-PyTorch | max abs diff ORT-PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    for n in [int(b) for b in a.batches.split(",")]:
        x = rng.standard_normal((n, c, s, s)).astype(np.float32)
        t = rng.uniform(0.0, 1.0, n).astype(np.float32)
        inp, out = os.path.join(work, f"in{n}.safetensors"), os.path.join(work, f"out{n}.safetensors")
        save_file({"x": x, "t": t}, inp)
        env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        if ort is not None:
            feeds = {"x": x, "t": t}
        rounds = {"rust": [], "rust_burn_ops": [], "torch": [], "ort": []}
        for _ in range(a.rounds):
            r = subprocess.run([a.lediflow, "bench", "--model", a.model, "--forward-input", inp, "--forward-output", out,
                                "--repeats", str(a.repeats)], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"lediflow failed: {r.stderr}")
            rust = json.loads(r.stdout.strip().splitlines()[-1])
            rounds["rust"].append(rust["forward_ms"])
            rounds["rust_burn_ops"].append(rust["burn_forward_ms"])
            with torch.inference_mode():
                rounds["torch"].append(median_ms(lambda: net(xt, tt), a.repeats))
            if ort is not None:
                rounds["ort"].append(median_ms(lambda: sess.run(None, feeds), a.repeats))
        rust_ms, torch_ms = float(np.median(rounds["rust"])), float(np.median(rounds["torch"]))
        v_rust = load_file(out)["v"]
        with torch.inference_mode():
            v_torch = net(xt, tt).numpy()
        row = {"batch": n, "rust_ms": rust_ms, "torch_ms": torch_ms, "rounds": rounds,
               # The same network as burn tensor ops (what the fused pass replaced), and how far
               # the two Rust passes differ.
               "rust_burn_ops_ms": float(np.median(rounds["rust_burn_ops"])),
               "max_abs_diff_fused_burn_ops": rust["max_abs_diff_fused_vs_burn"],
               "max_abs_diff_rust_torch": float(np.abs(v_rust - v_torch).max()),
               "max_abs_v": float(np.abs(v_torch).max())}
        if ort is not None:
            v_ort = sess.run(None, feeds)[0]
            row["ort_ms"] = float(np.median(rounds["ort"]))
            row["max_abs_diff_ort_torch"] = float(np.abs(v_ort - v_torch).max())
        rows.append(row)
        ort_cells = ("-", "-", "-") if ort is None else (
            f"{row['ort_ms']:.2f}", f"{rust_ms / row['ort_ms']:.2f}", f"{row['max_abs_diff_ort_torch']:.1e}")
        print(f"| {n} | {rust_ms:.2f} | {torch_ms:.2f} | {ort_cells[0]} | {rust_ms / torch_ms:.2f} | {ort_cells[1]} "
              f"| {row['max_abs_diff_rust_torch']:.1e} | {ort_cells[2]} |")
    sampling = []
    if cfg["prior"] == "gaussian":
        # Whole sampling calls: the Rust pipeline (chunks over worker threads) against the same
        # Midpoint loop in PyTorch, 4 steps (8 NFE). Only for Gaussian-prior files: the learned
        # prior's encoder/decoder and latent flow are not rebuilt in PyTorch.
        print("\nSampling, 4 Midpoint steps (8 NFE), Gaussian prior:\n")
        print("| batch | Rust images/s | PyTorch images/s | Rust / PyTorch time |")
        print("|---|---|---|---|")
        for n in [int(b) for b in a.batches.split(",")]:
            j = os.path.join(work, f"bench{n}.json")
            x0 = torch.from_numpy(rng.standard_normal((n, c, s, s)).astype(np.float32))
            reps = max(3, a.repeats // 4)
            rust_rounds, torch_rounds = [], []
            for _ in range(a.rounds):
                r = subprocess.run([a.lediflow, "bench", "--model", a.model, "--batches", str(n), "--repeats",
                                    str(reps), "--json", j], env=dict(os.environ, RAYON_NUM_THREADS=str(a.threads)),
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"lediflow bench failed: {r.stderr}")
                rust_rounds.append(json.load(open(j))["rows"][0]["sample_ms"])
                with torch.inference_mode():
                    torch_rounds.append(median_ms(lambda: midpoint_sample(net, x0, 4), reps))
            rust_ms, torch_ms = float(np.median(rust_rounds)), float(np.median(torch_rounds))
            sampling.append({"batch": n, "rust_sample_ms": rust_ms, "torch_sample_ms": torch_ms,
                             "rounds": {"rust": rust_rounds, "torch": torch_rounds}})
            print(f"| {n} | {n * 1e3 / rust_ms:.1f} | {n * 1e3 / torch_ms:.1f} | {rust_ms / torch_ms:.2f} |")
    ok = all(r["max_abs_diff_rust_torch"] <= 1e-4 for r in rows)
    print(f"parity (max abs diff <= 1e-4 in f32): {'OK' if ok else 'FAILED'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "threads": a.threads, "repeats": a.repeats, "rounds": a.rounds,
                       "torch": torch.__version__,
                       "onnxruntime": None if ort is None else ort.__version__, "rows": rows,
                       "sampling": sampling}, f, indent=2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
