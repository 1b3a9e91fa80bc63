#!/usr/bin/env python3
"""A lediflow model file rebuilt in PyTorch and ONNX Runtime: parity checks against the Rust
engine, and the velocity network's forward pass and a whole sampling call timed side by side in
Rust (fp32), PyTorch (fp32 and bf16 autocast) and ONNX Runtime.

Not part of the test suite (PyTorch is large). Run by hand from the repository root, after a
release build (`cargo build --release`):

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch onnx onnxscript onnxruntime safetensors numpy
    .venv-bench/bin/python bench/torch_reference.py --model models/dcss-small-ledi.safetensors \\
        --threads 1 --json ledi-1thread.json --md ledi-1thread.md
    .venv-bench/bin/python bench/torch_reference.py --model models/dcss-small-ledi.safetensors --parity-only
    .venv-bench/bin/python bench/torch_reference.py --model models/dcss-small-ledi.safetensors --quick

bench/speed/run.sh runs it for every shipped model file and thread count.

What is rebuilt. Every network a sampling call uses: the image velocity network (DiT with
adaLN-Zero and fixed 2-D sin-cos positions, plus the per-pixel head of `dit.pixel_head` hidden
channels, time-modulated when `dit.pixel_head_time`; src/model/dit.rs), and for learned-prior
(LeDiFlow) files the latent-flow MLP (src/model/latent_flow.rs) and the auxiliary decoder that
maps a latent to the per-pixel prior N(mu, exp(logvar)) (src/model/aux.rs). The file's f16
tensors are widened to f32 as the Rust loader does; burn stores Linear weights [in, out], so they
are transposed, convolution weights share PyTorch's layout.

The whole sampling call (`Pipeline::sample`, solver defaults of `SampleOptions`):
  LeDiFlow: w ~ N(0, I) [n, latent_dim] -> the latent flow from t=0 to 1 in `--latent-steps`
            Midpoint steps (16: 32 evaluations) on equal steps -> z; decoder(z) -> mu, logvar;
            eps ~ N(0, I) [n, C, H, W]; x0 = mu + exp(logvar / 2) * eps;
  Gaussian: x0 = eps ~ N(0, I);
  then the image flow from x0 in `--steps` Midpoint steps (4: 8 evaluations) on the grid
  flow::time_grid(steps, shift) with the file's recommended time shift (1 when it has none),
  computed in f32 as Rust does, and the result clamped to [-1, 1]. PyTorch and ONNX Runtime draw
  their noise with numpy inside the timed call (the Rust call draws its own; the numbers differ,
  the work does not).

Engines, per batch size and thread count:
  rust fp32           `lediflow bench --forward-input` (forward: the fused CPU pass sampling uses)
                      and `lediflow bench --batches N` (whole call: its `sample_ms`), as
                      subprocesses with RAYON_NUM_THREADS; the same calls give the memory and
                      throughput table (peak heap, prior time, GFLOP/s).
  rust bf16           the same with `--precision bf16` (bf16 products, fp32 sums; where the CPU
                      has AVX512-BF16: the engine is left out elsewhere).
  torch fp32          the modules below, torch.set_num_threads(threads), inference mode.
  torch bf16 autocast the same under torch.autocast("cpu", torch.bfloat16).
  onnxruntime         the forward exported with torch.onnx (dynamo) with a dynamic batch; the
                      whole call exported the same way as ONE graph (the module below with both
                      solver loops unrolled: noise in, clamped images out), so no Python runs
                      between its steps (exporting the unrolled LeDiFlow call takes a minute or
                      two). intra_op_num_threads = threads.

Timing: --rounds rounds per batch size, each timing every engine, forward and whole call, one
after the other (median of --repeats forward calls, of max(3, repeats / 4) whole calls, after a
warm-up); the report is the median over the rounds, so a slow minute of a noisy machine hits all
engines alike. --quick: 1 round, 3 repeats (a smoke test, not a measurement).

Parity (the exit status is 1 when a gated check fails):
  forward   the Rust forward and PyTorch fp32 on the same inputs (x ~ N(0, I), t ~ U[0, 1] per
            image, numpy seed 0): max abs diff <= 1e-4 for every batch size (gated); ONNX
            Runtime and bf16 autocast against PyTorch fp32 for information.
  seeded    the Rust CLI has no way to run the decoder or the latent flow alone, so they are
            checked inside whole calls: numpy reproduces Rust's noise streams (src/rng.rs:
            SplitMix64-seeded xoshiro256++, Box-Muller), PyTorch runs the whole call on that
            noise, and its images rounded to 8 bits as the library does are compared with
            `lediflow sample --seed 0 --out-dir` PNGs (gated: no byte more than 1 level off,
            at most 1% of bytes off by one; f32 rounding differences may cross a rounding
            boundary).
  sampling  statistics with independent noise: the mean image of --check-count samples of each
            engine (Rust PNGs, PyTorch with numpy noise), the RMS of their difference over the
            RMS expected from sampling noise alone, sqrt(mean((var_rust + var_torch) / n)) (about
            1 when both sample one distribution), and its permutation p-value (the two sets
            pooled and split at random; gated >= 0.01). For LeDiFlow the same numbers with the
            latent flow left out (decoder fed the raw noise) show how much a wrong prior moves
            them at this sample size; the seeded check is the strict one.
"""

import argparse
import json
import logging
import math
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

TIME_FREQ_DIM = 256
DIT_LN_EPS = 1e-6
LATENT_LN_EPS = 1e-5
# The decoder's raw log-variance offset before its sigmoid squash (src/model/aux.rs).
DEC_LOGVAR_OFFSET = 1.4
# Smallest 1 - t a data-predicting network's velocity divides by (src/flow/mod.rs).
DATA_PREDICTION_MIN_GAP = 0.05
FORWARD_LIMIT = 1e-4
# The sampling-statistics check: permutations of its null distribution, smallest p-value passed.
PERMUTATIONS = 999
STATS_MIN_P = 0.01


# ----------------------------------------------------------------------------------------------
# Networks


def layer_norm(x, eps):
    """Over the last dimension, biased variance, no affine parameters (adaLN supplies them)."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def modulate(x, shift, scale):
    return layer_norm(x, DIT_LN_EPS) * (scale[:, None, :] + 1.0) + shift[:, None, :]


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


def conv3(c_in, c_out):
    return torch.nn.Conv2d(c_in, c_out, 3, padding=1)


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


class PixelHead(torch.nn.Module):
    """The per-pixel head of src/model/dit.rs: the final (normed, modulated) tokens projected to
    `hidden` features per pixel (unpatchified), added to a 3x3 conv of x_t (time-modulated per
    channel when `time`), GELU, a 3x3 conv, GELU, and a 3x3 conv to the image channels whose
    output is added to the DiT's velocity."""

    def __init__(self, d, channels, patch, hidden, time):
        super().__init__()
        self.hidden = hidden
        self.features = torch.nn.Linear(d, hidden * patch * patch)
        self.conv_in = conv3(channels, hidden)
        self.conv_mid = conv3(hidden, hidden)
        self.conv_out = conv3(hidden, channels)
        self.modulation = torch.nn.Linear(d, 2 * hidden) if time else None


class VelocityNet(torch.nn.Module):
    """src/model/dit.rs; forward returns the velocity (`Pipeline::velocity`): a data-predicting
    network's output is turned into the velocity it stands for, as the Rust field does."""

    def __init__(self, cfg):
        super().__init__()
        dit, img = cfg["dit"], cfg["image"]
        d, p, c = dit["dim"], dit["patch_size"], img["channels"]
        self.c, self.p, self.g = c, p, img["size"] // p
        self.data_prediction = dit.get("prediction", "velocity") == "data"
        self.patch_embed = torch.nn.Linear(c * p * p, d)
        self.time1 = torch.nn.Linear(TIME_FREQ_DIM, d)
        self.time2 = torch.nn.Linear(d, d)
        self.blocks = torch.nn.ModuleList(
            Block(d, dit["heads"], d * dit["mlp_ratio"]) for _ in range(dit["depth"]))
        self.final_modulation = torch.nn.Linear(d, 2 * d)
        self.final_proj = torch.nn.Linear(d, c * p * p)
        hp = dit.get("pixel_head", 0)
        self.pixel_head = PixelHead(d, c, p, hp, dit.get("pixel_head_time", False)) if hp > 0 else None
        self.register_buffer("pos", pos_embedding_2d(self.g, d))
        self.class_table = class_table(cfg, d, image_flow=True)

    def unpatchify(self, tokens, c):
        b, p, g = tokens.shape[0], self.p, self.g
        return tokens.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * p, g * p)

    def forward(self, x, t):
        b = x.shape[0]
        c, p, g = self.c, self.p, self.g
        tokens = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p)
        h = self.patch_embed(tokens) + self.pos
        cond = F.silu(no_class(self.class_table, self.time2(F.silu(self.time1(time_embedding(t, TIME_FREQ_DIM))))))
        for blk in self.blocks:
            h = blk(h, cond)
        shift, scale = self.final_modulation(cond).chunk(2, dim=1)
        h = modulate(h, shift, scale)
        out = self.unpatchify(self.final_proj(h), c)
        head = self.pixel_head
        if head is not None:
            f = self.unpatchify(head.features(h), head.hidden)
            a = head.conv_in(x)
            if head.modulation is not None:
                shift, scale = head.modulation(cond).chunk(2, dim=1)
                a = a * (scale[:, :, None, None] + 1.0) + shift[:, :, None, None]
            a = F.gelu(f + a)
            a = F.gelu(head.conv_mid(a))
            out = out + head.conv_out(a)
        if self.data_prediction:
            gap = (1.0 - t).clamp_min(DATA_PREDICTION_MIN_GAP)[:, None, None, None]
            out = (out - x) / gap
        return out


def class_table(cfg, width, image_flow):
    """A class-conditional network's table (src/model/mod.rs ClassTable: one row per class and a
    last "no class" row added to the time conditioning before its SiLU), or None. The image flow
    has one when `classes.image_flow` is set or the prior is Gaussian, the latent flow whenever
    the model has classes (`ModelConfig::image_classes`, `latent_classes`)."""
    classes = cfg.get("classes") or {}
    n = len(classes.get("names") or [])
    if image_flow:
        n = n if classes.get("image_flow") or cfg["prior"] == "gaussian" else 0
    return torch.nn.Embedding(n + 1, width) if n > 0 else None


def no_class(table, pre):
    """The unconditional conditioning: `pre` plus the table's "no class" row (the timings below
    sample without a class)."""
    return pre if table is None else pre + table.weight[-1]


class ResBlock(torch.nn.Module):
    def __init__(self, h):
        super().__init__()
        self.fc1 = torch.nn.Linear(h, h)
        self.time = torch.nn.Linear(h, h)
        self.fc2 = torch.nn.Linear(h, h)


class LatentFlowNet(torch.nn.Module):
    """src/model/latent_flow.rs: a time-conditioned residual MLP on R^latent_dim."""

    def __init__(self, cfg):
        super().__init__()
        d, h = cfg["aux"]["latent_dim"], cfg["latent"]["hidden"]
        self.input = torch.nn.Linear(d, h)
        self.time1 = torch.nn.Linear(TIME_FREQ_DIM, h)
        self.time2 = torch.nn.Linear(h, h)
        self.blocks = torch.nn.ModuleList(ResBlock(h) for _ in range(cfg["latent"]["blocks"]))
        self.output = torch.nn.Linear(h, d)
        self.class_table = class_table(cfg, h, image_flow=False)

    def forward(self, z, t):
        temb = F.silu(no_class(self.class_table, self.time2(F.silu(self.time1(time_embedding(t, TIME_FREQ_DIM))))))
        h = self.input(z)
        for blk in self.blocks:
            a = blk.fc1(layer_norm(h, LATENT_LN_EPS)) + blk.time(temb)
            h = h + blk.fc2(F.silu(a))
        return self.output(F.silu(layer_norm(h, LATENT_LN_EPS)))


class UpStage(torch.nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.up = torch.nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        self.conv = conv3(c_out, c_out)


class AuxDecoder(torch.nn.Module):
    """src/model/aux.rs: latent -> 4x4 map -> `levels` x2 upsampling stages -> (mu, logvar) of
    the per-pixel learned prior, logvar squashed into [logvar_min, logvar_max] by a sigmoid."""

    def __init__(self, cfg):
        super().__init__()
        aux = cfg["aux"]
        levels = (cfg["image"]["size"] // 4).bit_length() - 1  # ModelConfig::aux_levels
        at = lambda level: aux["base_channels"] << min(level, 2)  # noqa: E731
        self.top, self.c = at(levels), cfg["image"]["channels"]
        self.logvar_min, self.logvar_max = aux["logvar_min"], aux["logvar_max"]
        self.head = torch.nn.Linear(aux["latent_dim"], self.top * 16)
        self.conv_top = conv3(self.top, self.top)
        self.stages = torch.nn.ModuleList(UpStage(at(i + 1), at(i)) for i in reversed(range(levels)))
        self.conv_out = conv3(at(0), 2 * self.c)

    def forward(self, z):
        h = F.silu(self.head(z)).reshape(z.shape[0], self.top, 4, 4)
        h = F.silu(self.conv_top(h))
        for s in self.stages:
            h = F.silu(s.conv(F.silu(s.up(h))))
        out = self.conv_out(h)
        mu, raw = out[:, :self.c], out[:, self.c:]
        logvar = torch.sigmoid(raw + DEC_LOGVAR_OFFSET) * (self.logvar_max - self.logvar_min) + self.logvar_min
        return mu, logvar


def load(model_path):
    """(cfg, time shift, {"velocity": net, "latent": net, "decoder": net}) of a model file."""
    with safe_open(model_path, "np") as f:
        meta = json.loads(f.metadata()["lediflow"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = meta["config"]
    nets = {"velocity": VelocityNet(cfg)}
    if cfg["prior"] == "learned":
        nets["latent"], nets["decoder"] = LatentFlowNet(cfg), AuxDecoder(cfg)
    for prefix, net in nets.items():
        state = {}
        for k, v in tensors.items():
            if not k.startswith(prefix + "."):
                continue
            v = torch.from_numpy(v.astype(np.float32))
            # burn stores Linear weights as [in, out]; PyTorch as [out, in]. Convolution weights
            # ([out, in, kh, kw]; transposed ones [in, out, kh, kw]) share PyTorch's layout.
            # A class table is [classes + 1, width] in both.
            linear = k.endswith(".weight") and v.ndim == 2 and not k.endswith("class_table.weight")
            state[k[len(prefix) + 1:]] = v.t().contiguous() if linear else v
        if prefix == "velocity":
            state["pos"] = net.pos
        net.load_state_dict(state, strict=True)
        net.eval()
    shift = (meta.get("sampling") or {}).get("time_shift") or 1.0
    return cfg, float(shift), nets


# ----------------------------------------------------------------------------------------------
# The whole sampling call


def time_grid(steps, shift):
    """flow::time_grid in f32: (t_k, dt_k, t_k + dt_k / 2, dt_k / 2) per step, as Python floats
    holding the f32 values the Rust solver uses."""
    f32 = np.float32
    h = f32(1.0) / f32(steps)
    grid = []
    for k in range(steps + 1):
        if k == steps:
            grid.append(f32(1.0))
        elif k == 0:
            grid.append(f32(0.0))
        elif shift == 1.0:
            grid.append(f32(k) * h)
        else:
            sigma = f32(1.0) - f32(k) * h
            s = f32(shift)
            grid.append(f32(1.0) - s * sigma / (f32(1.0) + (s - f32(1.0)) * sigma))
    out = []
    for k in range(steps):
        dt = h if shift == 1.0 else grid[k + 1] - grid[k]
        half = f32(0.5) * dt
        out.append((float(grid[k]), float(dt), float(grid[k] + half), float(half)))
    return out


def midpoint(f, x, grid):
    """Solver::Midpoint over a time_grid: x + h v(x + h/2 v(x, t), t + h/2)."""
    for t, h, t_mid, half in grid:
        tt = torch.full_like(x.reshape(x.shape[0], -1)[:, 0], t)
        k1 = f(x, tt)
        x = x + f(x + k1 * half, torch.full_like(tt, t_mid)) * h
    return x


class SamplingCall(torch.nn.Module):
    """One whole sampling call from its noise: LeDiFlow forward(w, eps), Gaussian forward(eps);
    both solver loops are plain Python loops (unrolled when exported to ONNX)."""

    def __init__(self, cfg, shift, nets, steps, latent_steps, prior_scale=1.0, skip_latent_flow=False):
        super().__init__()
        self.learned = cfg["prior"] == "learned"
        self.velocity = nets["velocity"]
        self.latent = nets.get("latent")
        self.decoder = nets.get("decoder")
        self.grid = time_grid(steps, shift)
        self.latent_grid = time_grid(latent_steps, 1.0)
        self.prior_scale = prior_scale
        self.skip_latent_flow = skip_latent_flow

    def forward(self, *noise):
        if self.learned:
            w, eps = noise
            z = w if self.skip_latent_flow else midpoint(self.latent, w, self.latent_grid)
            mu, logvar = self.decoder(z)
            x0 = mu + torch.exp(logvar * 0.5) * eps * self.prior_scale
        else:
            (x0,) = noise
        return midpoint(self.velocity, x0, self.grid).clamp(-1.0, 1.0)


class LearnedCall(torch.nn.Module):
    """A LeDiFlow SamplingCall with named inputs, for torch.export."""

    def __init__(self, call):
        super().__init__()
        self.call = call

    def forward(self, w, eps):
        return self.call(w, eps)


class GaussianCall(torch.nn.Module):
    def __init__(self, call):
        super().__init__()
        self.call = call

    def forward(self, eps):
        return self.call(eps)


def noise_shapes(cfg, n):
    c, s = cfg["image"]["channels"], cfg["image"]["size"]
    eps = (n, c, s, s)
    return [(n, cfg["aux"]["latent_dim"]), eps] if cfg["prior"] == "learned" else [eps]


# ----------------------------------------------------------------------------------------------
# Rust's noise streams (src/rng.rs) in numpy, and the library's 8-bit images

M64 = (1 << 64) - 1
LATENT_NOISE, PRIOR_NOISE = 1, 2


def _splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def _stream_state(seed, index, purpose):
    """Rng::stream(seed, index, purpose): the four xoshiro256++ state words."""
    _, a = _splitmix64(seed ^ 0x5DEECE66D1A4F87D)
    _, s = _splitmix64(a ^ ((index * 0x9E3779B97F4A7C15) & M64) ^ ((purpose << 56) & M64))
    words = []
    for _ in range(4):
        s, v = _splitmix64(s)
        words.append(v)
    return words


def rust_normal_rows(seed, first, purpose, shape):
    """rng::normal_rows: row i from stream (seed, first + i), Box-Muller in f64, both outputs
    used, rounded to f32. The streams of all rows advance together as numpy uint64 vectors."""
    rows, per_row = shape[0], int(np.prod(shape[1:]))
    st = np.array([_stream_state(seed, first + i, purpose) for i in range(rows)], dtype=np.uint64).T.copy()
    s0, s1, s2, s3 = st
    out = np.zeros((rows, per_row), dtype=np.float32)

    def rotl(x, k):
        return (x << np.uint64(k)) | (x >> np.uint64(64 - k))

    def next_u64():
        nonlocal s0, s1, s2, s3
        result = rotl(s0 + s3, 23) + s0
        t = s1 << np.uint64(17)
        s2 = s2 ^ s0
        s3 = s3 ^ s1
        s1 = s1 ^ s2
        s0 = s0 ^ s3
        s2 = s2 ^ t
        s3 = rotl(s3, 45)
        return result

    def uniform():
        return (next_u64() >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    for i in range(0, per_row, 2):
        u1 = 1.0 - uniform()
        u2 = uniform()
        r = np.sqrt(-2.0 * np.log(u1))
        ang = 2.0 * np.pi * u2
        out[:, i] = (r * np.cos(ang)).astype(np.float32)
        if i + 1 < per_row:
            out[:, i + 1] = (r * np.sin(ang)).astype(np.float32)
    return out.reshape(shape)


def to_u8(images):
    """image::to_u8 for [N, C, H, W] in [-1, 1] -> [N, C, H, W] bytes (round half away from 0)."""
    q = np.floor((np.nan_to_num(images, nan=0.0).astype(np.float32) + np.float32(1.0)) * np.float32(127.5) + 0.5)
    return np.clip(q, 0, 255).astype(np.uint8)


def read_png(path):
    """An 8-bit, non-interlaced PNG (grey, grey+alpha, RGB, RGBA) -> [H, W, channels] uint8."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, head = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = head
    if depth != 8 or interlace != 0 or ctype not in (0, 2, 4, 6):
        raise ValueError(f"{path}: only 8-bit non-interlaced grey/RGB(A) PNGs are read here")
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 255
            elif kind == 4:
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return np.frombuffer(bytes(out), np.uint8).reshape(h, w, bpp)


def rust_samples(a, count, seed, work):
    """`lediflow sample` of `count` images -> [N, C, H, W] bytes (its PNGs are RGBA)."""
    out_dir = os.path.join(work, f"samples-{seed}")
    cmd = [a.lediflow, "sample", "--model", a.model, "--count", str(count), "--seed", str(seed),
           "--steps", str(a.steps), "--latent-steps", str(a.latent_steps), "--out-dir", out_dir]
    r = subprocess.run(cmd, env=dict(os.environ, RAYON_NUM_THREADS=str(a.threads)), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lediflow sample failed: {r.stderr}")
    imgs = [read_png(os.path.join(out_dir, f"sample_{i:04d}.png")) for i in range(count)]
    return np.stack(imgs).transpose(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------------
# Timing


def median_ms(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def run_rust(a, args, check=True):
    r = subprocess.run([a.lediflow, "bench", "--model", a.model] + args,
                       env=dict(os.environ, RAYON_NUM_THREADS=str(a.threads)), capture_output=True, text=True)
    if r.returncode != 0:
        if not check:
            return None
        sys.exit(f"lediflow bench failed: {r.stderr}")
    return r.stdout


def rust_forward(a, inp, out, repeats, precision="fp32", check=True):
    stdout = run_rust(a, ["--forward-input", inp, "--forward-output", out, "--repeats", str(repeats),
                          "--precision", precision], check)
    return None if stdout is None else json.loads(stdout.strip().splitlines()[-1])


def rust_whole(a, n, repeats, path, precision="fp32"):
    args = ["--batches", str(n), "--steps", str(a.steps), "--repeats", str(repeats), "--json", path,
            "--precision", precision]
    if a.peak_gflops:
        args += ["--peak-gflops", str(a.peak_gflops)]
    run_rust(a, args)
    with open(path) as f:
        return json.load(f)["rows"][0]


def ort_session(ort, path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def export_onnx(module, example, names, path):
    # The exporter's notes (optional torchvision ops, axis renaming) are not about this model.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*axis name.*")
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(module, example, path, input_names=names, output_names=["out"],
                      dynamic_shapes=tuple({0: batch} for _ in example), dynamo=True, verbose=False)


ENGINES = ["rust bf16", "rust fp32", "torch fp32", "torch bf16 autocast", "onnxruntime"]


def fmt(v):
    return "-" if v is None else f"{v:.2e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--lediflow", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "lediflow"))
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4, help="Midpoint steps of the image flow (2 NFE each)")
    ap.add_argument("--latent-steps", type=int, default=16, help="Midpoint steps of the latent flow (LeDiFlow)")
    ap.add_argument("--repeats", type=int, default=20, help="timed forward calls per engine per round; whole "
                    "calls: max(3, repeats / 4)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per batch size; each round times every engine one after the other, and the "
                         "reported time is the median of the rounds' medians")
    ap.add_argument("--quick", action="store_true", help="1 round, 3 repeats: a smoke test")
    ap.add_argument("--parity-only", action="store_true", help="the parity checks, no timing")
    ap.add_argument("--check-count", type=int, default=64, help="images per engine in the whole-call checks")
    ap.add_argument("--peak-gflops", type=float, help="passed to lediflow bench (bench/peak_flops.c measures it)")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--md", help="also write the markdown report (printed to stdout) here")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.repeats = 1, 3
    whole_repeats = max(3, a.repeats // 4)
    log = lambda *m: print(*m, file=sys.stderr, flush=True)  # noqa: E731

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    cfg, shift, nets = load(a.model)
    learned = cfg["prior"] == "learned"
    c, s = cfg["image"]["channels"], cfg["image"]["size"]
    net = nets["velocity"]
    call = SamplingCall(cfg, shift, nets, a.steps, a.latent_steps).eval()
    batches = [int(b) for b in a.batches.split(",")]
    work = tempfile.mkdtemp(prefix="lediflow-ref-")
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731

    ort = None
    if not a.no_onnx:
        import onnxruntime as ort

        log("exporting the forward and the whole sampling call to ONNX ...")
        fwd_path, call_path = os.path.join(work, "velocity.onnx"), os.path.join(work, "sample.onnx")
        export_onnx(net, (torch.zeros(2, c, s, s), torch.zeros(2)), ["x", "t"], fwd_path)
        names = ["w", "eps"] if learned else ["eps"]
        export_onnx((LearnedCall if learned else GaussianCall)(call).eval(),
                    tuple(torch.zeros(*sh) for sh in noise_shapes(cfg, 2)), names, call_path)
        sess_fwd, sess_call = ort_session(ort, fwd_path, a.threads), ort_session(ort, call_path, a.threads)

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    md = [f"# {a.model}, {a.threads} thread(s)", "",
          f"torch {torch.__version__}" + ("" if ort is None else f", onnxruntime {ort.__version__}") + f", {cpu}.",
          ("LeDiFlow (learned prior): whole call = latent noise, " f"{a.latent_steps} Midpoint latent-flow steps "
           f"({2 * a.latent_steps} NFE), decoder, prior draw, " if learned else
           "Gaussian prior: whole call = x0 ~ N(0, I), ") +
          f"{a.steps} Midpoint image-flow steps ({2 * a.steps} NFE) on the time grid shifted by {shift:g}, "
          "clamp to [-1, 1]. PyTorch and ONNX Runtime draw the call's noise with numpy inside the timed call; "
          "the ONNX Runtime whole call is one exported graph with both solver loops unrolled. Rust: "
          "`lediflow bench` (`--forward-input` for the forward), RAYON_NUM_THREADS = threads.", ""]

    # ---- Parity -------------------------------------------------------------------------------
    parity, gated = {"forward": []}, []
    rng = np.random.default_rng(0)
    inputs = {}
    # Rust's bf16 path where this CPU has it (the probe: one forward that `lediflow bench` refuses
    # on a CPU without AVX512-BF16).
    rust_bf16 = None
    md += ["## Parity", "", "| check | batch | value | limit |", "|---|---|---|---|"]
    for n in batches:
        x = rng.standard_normal((n, c, s, s)).astype(np.float32)
        t = rng.uniform(0.0, 1.0, n).astype(np.float32)
        inp, out = os.path.join(work, f"in{n}.safetensors"), os.path.join(work, f"out{n}.safetensors")
        save_file({"x": x, "t": t}, inp)
        inputs[n] = (x, t, inp, out)
        r = rust_forward(a, inp, out, 1)
        v_rust = load_file(out)["v"]
        out16 = os.path.join(work, f"out{n}-bf16.safetensors")
        if rust_bf16 is not False:
            rust_bf16 = rust_forward(a, inp, out16, 1, "bf16", check=False) is not None
            if not rust_bf16:
                log("lediflow bench --precision bf16 is refused on this CPU: the rust bf16 engine is left out")
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        with torch.inference_mode():
            v_torch = net(xt, tt).numpy()
            with bf16():
                v_bf16 = net(xt, tt).float().numpy()
        row = {"batch": n, "max_abs_v": float(np.abs(v_torch).max()),
               "rust_vs_torch": float(np.abs(v_rust - v_torch).max()),
               "rust_bf16_vs_torch": float(np.abs(load_file(out16)["v"] - v_torch).max()) if rust_bf16 else None,
               "rust_bf16_vs_torch_mean": float(np.abs(load_file(out16)["v"] - v_torch).mean()) if rust_bf16 else None,
               "rust_fused_vs_burn_ops": r["max_abs_diff_fused_vs_burn"],
               "bf16_vs_torch": float(np.abs(v_bf16 - v_torch).max()),
               "bf16_vs_torch_mean": float(np.abs(v_bf16 - v_torch).mean()),
               "ort_vs_torch": None if ort is None else
               float(np.abs(sess_fwd.run(None, {"x": x, "t": t})[0] - v_torch).max())}
        parity["forward"].append(row)
        gated.append(row["rust_vs_torch"] <= FORWARD_LIMIT)
        md += [f"| forward: max abs diff Rust - torch fp32 | {n} | {row['rust_vs_torch']:.2e} | {FORWARD_LIMIT:g} |",
               f"| forward: max abs diff onnxruntime - torch fp32 | {n} | {fmt(row['ort_vs_torch'])} | - |",
               f"| forward: max (mean) abs diff torch bf16 autocast - fp32 | {n} | {row['bf16_vs_torch']:.2e} "
               f"({row['bf16_vs_torch_mean']:.1e}) | - |",
               f"| forward: max (mean) abs diff Rust bf16 - torch fp32 | {n} | {fmt(row['rust_bf16_vs_torch'])} "
               f"({fmt(row['rust_bf16_vs_torch_mean'])}) | - |",
               f"| forward: max abs diff Rust fused pass - Rust burn ops | {n} | {row['rust_fused_vs_burn_ops']:.2e} | - |"]
        log(f"forward parity, batch {n}: Rust - torch {row['rust_vs_torch']:.2e}, ORT - torch "
            f"{fmt(row['ort_vs_torch'])}, bf16 - fp32 {row['bf16_vs_torch']:.2e} (max |v| {row['max_abs_v']:.2f})")

    k = a.check_count
    log(f"whole-call checks: {k} images from lediflow sample ...")
    rust_u8 = rust_samples(a, k, 0, work)
    noise = [rust_normal_rows(0, 0, LATENT_NOISE, noise_shapes(cfg, k)[0])] if learned else []
    noise.append(rust_normal_rows(0, 0, PRIOR_NOISE, noise_shapes(cfg, k)[-1]))
    with torch.inference_mode():
        torch_seeded = call(*map(torch.from_numpy, noise)).numpy()
    d = np.abs(to_u8(torch_seeded).astype(np.int32) - rust_u8.astype(np.int32))
    seeded = {"images": k, "max_level_diff": int(d.max()), "bytes_off": float((d > 0).mean()),
              "bytes_off_by_more_than_1": float((d > 1).mean())}
    gated.append(seeded["max_level_diff"] <= 1 and seeded["bytes_off"] <= 0.01)
    parity["seeded_whole_call"] = seeded
    md += [f"| whole call, Rust's noise streams: max 8-bit level diff torch fp32 - `lediflow sample` | {k} | "
           f"{seeded['max_level_diff']} | 1 |",
           f"| whole call, Rust's noise streams: share of bytes that differ | {k} | {seeded['bytes_off']:.2e} | 0.01 |"]
    log(f"seeded whole call: max level diff {seeded['max_level_diff']}, bytes off {seeded['bytes_off']:.2e}")

    def mean_test(ours):
        """(ratio, p): RMS of the mean-image difference over the RMS sampling noise alone would
        give, and the permutation p-value of that difference (the two sets pooled and split at
        random PERMUTATIONS times; calibrated whatever the correlation between pixels)."""
        theirs = rust_u8.astype(np.float64) / 127.5 - 1.0
        ours = ours.astype(np.float64)
        rms = lambda m1, m2: float(np.sqrt(((m1.mean(0) - m2.mean(0)) ** 2).mean()))  # noqa: E731
        observed = rms(ours, theirs)
        expected = np.sqrt(((ours.var(0, ddof=1) + theirs.var(0, ddof=1)) / k).mean())
        pooled, prng = np.concatenate([ours, theirs]), np.random.default_rng(7)
        null = []
        for _ in range(PERMUTATIONS):
            idx = prng.permutation(2 * k)
            null.append(rms(pooled[idx[:k]], pooled[idx[k:]]))
        return float(observed / expected), float((1 + sum(v >= observed for v in null)) / (1 + PERMUTATIONS))

    nrng = np.random.default_rng(12345)
    indep = [nrng.standard_normal(sh).astype(np.float32) for sh in noise_shapes(cfg, k)]
    with torch.inference_mode():
        ratio, p_value = mean_test(call(*map(torch.from_numpy, indep)).numpy())
        stats = {"images": k, "ratio": ratio, "p_value": p_value, "permutations": PERMUTATIONS}
        if learned:
            skip = SamplingCall(cfg, shift, nets, a.steps, a.latent_steps, skip_latent_flow=True).eval()
            stats["ratio_without_latent_flow"], stats["p_value_without_latent_flow"] = mean_test(
                skip(*map(torch.from_numpy, indep)).numpy())
    gated.append(p_value >= STATS_MIN_P)
    parity["sampling_statistics"] = stats
    md += [f"| sampling statistics, independent noise: RMS mean-image diff / sampling-noise RMS | {k} | "
           f"{ratio:.2f} | - |",
           f"| sampling statistics: permutation p-value of that diff | {k} | {p_value:.3f} | >= {STATS_MIN_P:g} |"]
    if learned:
        md += [f"| the same ratio with the latent flow left out (a wrong prior, for scale) | {k} | "
               f"{stats['ratio_without_latent_flow']:.2f} | - |",
               f"| its permutation p-value | {k} | {stats['p_value_without_latent_flow']:.3f} | - |"]
    log(f"sampling statistics: ratio {ratio:.2f}, p {p_value:.3f}" + (
        f"; without the latent flow: ratio {stats['ratio_without_latent_flow']:.2f}, "
        f"p {stats['p_value_without_latent_flow']:.3f}" if learned else ""))

    # Whole-call ONNX graph and bf16 autocast against torch fp32 on the same (Rust-stream) noise.
    with torch.inference_mode(), bf16():
        diff = np.abs(call(*map(torch.from_numpy, noise)).float().numpy() - torch_seeded)
    parity["whole_call_bf16_vs_torch"], parity["whole_call_bf16_vs_torch_mean"] = float(diff.max()), float(diff.mean())
    parity["whole_call_ort_vs_torch"] = None if ort is None else float(np.abs(
        sess_call.run(None, dict(zip(names, noise)))[0] - torch_seeded).max())
    md += [f"| whole call: max abs diff onnxruntime graph - torch fp32 | {k} | {fmt(parity['whole_call_ort_vs_torch'])} | - |",
           f"| whole call: max (mean) abs diff torch bf16 autocast - fp32 | {k} | "
           f"{parity['whole_call_bf16_vs_torch']:.2e} ({parity['whole_call_bf16_vs_torch_mean']:.1e}) | - |",
           ""]
    ok = all(gated)
    md.append(f"Parity: {'OK' if ok else 'FAILED'}.")

    # ---- Timing -------------------------------------------------------------------------------
    rows, rust_bench = [], []
    if not a.parity_only:
        for n in batches:
            x, t, inp, out = inputs[n]
            xt, tt = torch.from_numpy(x), torch.from_numpy(t)
            trng = np.random.default_rng(1)

            def draw():
                return [trng.standard_normal(sh, dtype=np.float32) for sh in noise_shapes(cfg, n)]

            def torch_fwd():
                with torch.inference_mode():
                    net(xt, tt)

            def torch_fwd_bf16():
                with torch.inference_mode(), bf16():
                    net(xt, tt)

            def torch_call():
                with torch.inference_mode():
                    call(*map(torch.from_numpy, draw()))

            def torch_call_bf16():
                with torch.inference_mode(), bf16():
                    call(*map(torch.from_numpy, draw()))

            rust_precisions = ["fp32"] + (["bf16"] if rust_bf16 else [])
            timed = {(f"rust {p}", w): [] for p in rust_precisions for w in ("forward", "whole call")}
            for e, f_fwd, f_call in [("torch fp32", torch_fwd, torch_call),
                                     ("torch bf16 autocast", torch_fwd_bf16, torch_call_bf16)] + (
                    [] if ort is None else [("onnxruntime", lambda: sess_fwd.run(None, {"x": x, "t": t}),
                                             lambda: sess_call.run(None, dict(zip(names, draw()))))]):
                timed[(e, "forward")], timed[(e, "whole call")] = [], []
            bench_rounds = {p: [] for p in rust_precisions}
            for rnd in range(a.rounds):
                log(f"batch {n}, round {rnd + 1}/{a.rounds}")
                for p in rust_precisions:
                    timed[(f"rust {p}", "forward")].append(rust_forward(a, inp, out, a.repeats, p)["forward_ms"])
                timed[("torch fp32", "forward")].append(median_ms(torch_fwd, a.repeats))
                timed[("torch bf16 autocast", "forward")].append(median_ms(torch_fwd_bf16, a.repeats))
                if ort is not None:
                    timed[("onnxruntime", "forward")].append(
                        median_ms(lambda: sess_fwd.run(None, {"x": x, "t": t}), a.repeats))
                for p in rust_precisions:
                    b = rust_whole(a, n, whole_repeats, os.path.join(work, f"bench{n}.json"), p)
                    bench_rounds[p].append(b)
                    timed[(f"rust {p}", "whole call")].append(b["sample_ms"])
                timed[("torch fp32", "whole call")].append(median_ms(torch_call, whole_repeats))
                timed[("torch bf16 autocast", "whole call")].append(median_ms(torch_call_bf16, whole_repeats))
                if ort is not None:
                    timed[("onnxruntime", "whole call")].append(
                        median_ms(lambda: sess_call.run(None, dict(zip(names, draw()))), whole_repeats))
            for what in ("forward", "whole call"):
                base = float(np.median(timed[("torch fp32", what)]))
                for e in ENGINES:
                    if (e, what) in timed:
                        ms = float(np.median(timed[(e, what)]))
                        rows.append({"engine": e, "what": what, "batch": n, "threads": a.threads, "ms": ms,
                                     "ratio_to_torch_fp32": ms / base, "rounds": timed[(e, what)]})
            for p, rounds in bench_rounds.items():
                med = lambda key: None if rounds[0].get(key) is None else float(  # noqa: E731
                    np.median([r[key] for r in rounds]))
                rust_bench.append({"batch": n, "precision": p, **{key: med(key) for key in (
                    "sample_ms", "images_per_s", "prior_ms", "peak_heap_bytes", "forward_ms", "forward_gflops",
                    "burn_forward_ms")}, "rounds": rounds})

        md += ["", f"## Timing: median over {a.rounds} round(s) of the median of {a.repeats} forward / "
               f"{whole_repeats} whole calls", "",
               "| engine | what | batch | threads | ms (median) | / torch fp32 |", "|---|---|---|---|---|---|"]
        for what in ("forward", "whole call"):
            for r in rows:
                if r["what"] == what:
                    md.append(f"| {r['engine']} | {what} | {r['batch']} | {r['threads']} | {r['ms']:.2f} | "
                              f"{r['ratio_to_torch_fp32']:.2f} |")
        peak = f" (of {a.peak_gflops:g} peak)" if a.peak_gflops else ""
        md += ["", "## Rust pipeline (`lediflow bench`, medians over the rounds)", "",
               f"| precision | batch | sample (ms) | images/s | prior: latent flow + decoder (ms, share) | "
               f"peak heap (MiB) | FM forward (ms) | GFLOP/s{peak} | burn-op forward (ms) |",
               "|---|---|---|---|---|---|---|---|---|"]
        for r in rust_bench:
            prior = "none (Gaussian)" if r["prior_ms"] is None else \
                f"{r['prior_ms']:.1f} ({100 * r['prior_ms'] / r['sample_ms']:.0f}%)"
            of_peak = f" ({100 * r['forward_gflops'] / a.peak_gflops:.0f}%)" if a.peak_gflops else ""
            md.append(f"| {r['precision']} | {r['batch']} | {r['sample_ms']:.1f} | {r['images_per_s']:.1f} | {prior} | "
                      f"{r['peak_heap_bytes'] / (1 << 20):.1f} | {r['forward_ms']:.2f} | "
                      f"{r['forward_gflops']:.1f}{of_peak} | {r['burn_forward_ms']:.2f} |")
        if a.quick:
            md += ["", "(--quick: one round of 3 repeats, a smoke test, not a measurement.)"]

    report = "\n".join(md) + "\n"
    print(report, end="")
    if a.md:
        with open(a.md, "w") as f:
            f.write(report)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "prior": cfg["prior"], "threads": a.threads, "cpu": cpu,
                       "steps": a.steps, "latent_steps": a.latent_steps if learned else None, "time_shift": shift,
                       "repeats": a.repeats, "whole_call_repeats": whole_repeats, "rounds": a.rounds,
                       "quick": a.quick, "torch": torch.__version__,
                       "onnxruntime": None if ort is None else ort.__version__,
                       "onnx_whole_call": None if ort is None else "one exported graph, both solver loops unrolled",
                       "parity": parity, "parity_ok": ok, "rows": rows, "rust_bench": rust_bench}, f, indent=2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
