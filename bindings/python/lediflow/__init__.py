"""LeDiFlow image generation from Python: a ctypes binding of the lediflow C ABI (numpy in and out).

    import lediflow
    model = lediflow.Model("models/dcss-small-ledi.safetensors")
    images = model.sample(16, seed=0, steps=4)          # uint8 array (16, 32, 32, 4)
    lediflow.save_png("grid.png", lediflow.make_grid(images))

The shared library is found next to this package, then at $LEDIFLOW_LIBRARY, then in the cargo
target directory of the source tree this package sits in (the newest of release and debug).
A Model may be used from several Python threads at once; calls release the GIL.
"""

from __future__ import annotations

import ctypes as C
import os
import struct
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

__all__ = [
    "CancelToken",
    "LediflowError",
    "Model",
    "ModelInfo",
    "abi_version",
    "library_path",
    "make_grid",
    "save_png",
    "version",
]

_LIB_NAMES = {"posix": "liblediflow.so", "nt": "lediflow.dll"}
_LIB_NAME = "liblediflow.dylib" if os.uname().sysname == "Darwin" else _LIB_NAMES.get(os.name, "liblediflow.so")


def library_path() -> Path:
    """Where the lediflow shared library is loaded from (see the module docs for the order)."""
    here = Path(__file__).resolve().parent
    beside = here / _LIB_NAME
    if beside.exists():
        return beside
    env = os.environ.get("LEDIFLOW_LIBRARY")
    if env:
        p = Path(env)
        if not p.exists():
            raise FileNotFoundError(f"LEDIFLOW_LIBRARY={env} does not exist")
        return p
    for root in [here, *here.parents]:
        target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
        found = [target / prof / _LIB_NAME for prof in ("release", "debug") if (target / prof / _LIB_NAME).exists()]
        if found:
            return max(found, key=lambda p: p.stat().st_mtime)
    raise FileNotFoundError(
        f"cannot find {_LIB_NAME}: build it with `cargo build --release --lib`, "
        "or set LEDIFLOW_LIBRARY to its path"
    )


# Status codes, solvers, devices... (mirrors include/lediflow.h)
OK, ERR_INVALID_ARGUMENT, ERR_IO, ERR_FORMAT, ERR_UNSUPPORTED, ERR_CANCELLED, ERR_OUT_OF_MEMORY, ERR_INTERNAL = range(8)
SOLVERS = {"euler": 0, "midpoint": 1, "heun": 2, "rk4": 3}
DEVICES = {"cpu": 0, "cuda": 1}
INTERPOLATIONS = {"linear": 0, "spherical": 1}
PRIORS = {0: "learned", 1: "gaussian"}
#: Arithmetic of the CPU's matrix products (LDF_PRECISION_*): fp32; bf16 on CPUs with
#: AVX512-BF16 (faster; images within a few 8-bit levels of fp32's); auto = bf16 where the CPU
#: has it, else fp32.
PRECISIONS = {"fp32": 0, "bf16": 1, "auto": 2}
CPU_AVX512_BF16, CPU_AMX_BF16 = 1, 2

_PROGRESS = C.CFUNCTYPE(C.c_bool, C.c_uint32, C.c_uint32, C.c_void_p)


class _Params(C.Structure):
    _fields_ = [
        ("struct_size", C.c_uint32),
        ("steps", C.c_uint32),
        ("seed", C.c_uint64),
        ("first_index", C.c_uint64),
        ("solver", C.c_uint32),
        ("prior_scale", C.c_float),
        ("progress", _PROGRESS),
        ("user_data", C.c_void_p),
        ("cancel", C.c_void_p),
        ("latent_steps", C.c_uint32),
        ("latent_solver", C.c_uint32),
        ("inpaint_candidates", C.c_uint32),
        ("interpolation", C.c_uint32),
        ("batch_size", C.c_uint32),
        ("time_shift", C.c_double),
        ("tileable", C.c_uint32),
        ("reserved", C.c_uint32),
        ("class_id", C.c_uint32),
        ("guidance", C.c_float),
        ("precision", C.c_uint32),
        ("reserved2", C.c_uint32),
    ]


#: LdfSampleParams.class_id for unconditional generation (LDF_CLASS_NONE).
CLASS_NONE = 0xFFFFFFFF


class _Info(C.Structure):
    _fields_ = [
        ("struct_size", C.c_uint32),
        ("width", C.c_uint32),
        ("height", C.c_uint32),
        ("channels", C.c_uint32),
        ("latent_dim", C.c_uint32),
        ("prior", C.c_uint32),
        ("format_version", C.c_uint32),
        ("image_bytes", C.c_size_t),
        ("latent_bytes", C.c_size_t),
        ("mask_bytes", C.c_size_t),
        ("parameters", C.c_uint64),
        ("time_shift", C.c_double),
        ("class_count", C.c_uint32),
        ("reserved", C.c_uint32),
        ("cpu_features", C.c_uint32),
        ("auto_precision", C.c_uint32),
    ]


_lib = None


def _load():
    global _lib
    if _lib is not None:
        return _lib
    lib = C.CDLL(str(library_path()))
    u8p, f32p, vp = C.POINTER(C.c_uint8), C.POINTER(C.c_float), C.c_void_p
    sigs = {
        "ldf_version": ([], C.c_char_p),
        "ldf_abi_version": ([], C.c_uint32),
        "ldf_status_str": ([C.c_int32], C.c_char_p),
        "ldf_last_error": ([], C.c_char_p),
        "ldf_device_available": ([C.c_uint32], C.c_int32),
        "ldf_model_load": ([C.c_char_p, C.c_uint32, C.POINTER(vp)], C.c_int32),
        "ldf_model_load_from_memory": ([u8p, C.c_size_t, C.c_uint32, C.POINTER(vp)], C.c_int32),
        "ldf_model_free": ([vp], None),
        "ldf_model_info": ([vp, C.POINTER(_Info)], C.c_int32),
        "ldf_model_class_name": ([vp, C.c_uint32], C.c_char_p),
        "ldf_model_set_memory_limit": ([vp, C.c_size_t], C.c_int32),
        "ldf_sample_params_init_sized": ([C.POINTER(_Params), C.c_size_t], C.c_int32),
        "ldf_sample": ([vp, C.c_uint32, C.POINTER(_Params), u8p, C.c_size_t], C.c_int32),
        "ldf_sample_latents": ([vp, C.c_uint32, C.POINTER(_Params), f32p, C.c_size_t], C.c_int32),
        "ldf_generate_from_latents": ([vp, f32p, C.c_uint32, C.POINTER(_Params), u8p, C.c_size_t], C.c_int32),
        "ldf_encode": ([vp, u8p, C.c_uint32, f32p, C.c_size_t], C.c_int32),
        "ldf_interpolate": ([vp, f32p, f32p, C.c_uint32, C.POINTER(_Params), u8p, C.c_size_t], C.c_int32),
        "ldf_interpolate_seeds": ([vp, C.c_uint64, C.c_uint64, C.c_uint32, C.POINTER(_Params), u8p, C.c_size_t],
                                  C.c_int32),
        "ldf_inpaint": ([vp, u8p, u8p, C.c_uint32, C.POINTER(_Params), u8p, C.c_size_t], C.c_int32),
        "ldf_vary": ([vp, u8p, C.c_uint32, C.c_uint32, C.c_float, C.POINTER(_Params), u8p, C.c_size_t], C.c_int32),
        "ldf_cancel_new": ([C.POINTER(vp)], C.c_int32),
        "ldf_cancel_request": ([vp], None),
        "ldf_cancel_reset": ([vp], None),
        "ldf_cancel_free": ([vp], None),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    if lib.ldf_abi_version() != 1:
        raise ImportError(f"{library_path()} implements ABI {lib.ldf_abi_version()}, this package needs 1")
    _lib = lib
    return lib


#: Most images, frames or latents one call takes (LDF_MAX_COUNT); larger jobs use first_index.
MAX_COUNT = 65536
#: Most variations per image of Model.vary (LDF_MAX_VARIATIONS).
MAX_VARIATIONS = 4096


class LediflowError(Exception):
    """A failed lediflow call: `status` is the LDF_* code, `message` ldf_last_error()."""

    def __init__(self, status: int, message: str):
        name = _load().ldf_status_str(status).decode()
        super().__init__(f"{name}: {message}")
        self.status = status
        self.status_name = name
        self.message = message


def _check(status: int):
    if status != OK:
        raise LediflowError(status, (_load().ldf_last_error() or b"").decode(errors="replace"))


def version() -> str:
    return _load().ldf_version().decode()


def abi_version() -> int:
    return _load().ldf_abi_version()


class CancelToken:
    """A flag that another thread may raise to stop a running call (pass it as `cancel=`)."""

    def __init__(self):
        self._ptr = C.c_void_p()
        _check(_load().ldf_cancel_new(C.byref(self._ptr)))

    def request(self):
        _load().ldf_cancel_request(self._ptr)

    def reset(self):
        _load().ldf_cancel_reset(self._ptr)

    def __del__(self):
        if getattr(self, "_ptr", None) and _lib is not None:
            _lib.ldf_cancel_free(self._ptr)
            self._ptr = None


@dataclass(frozen=True)
class ModelInfo:
    width: int
    height: int
    channels: int
    latent_dim: int
    prior: str
    format_version: int
    parameters: int
    time_shift: float  # what time_shift=None samples with: the file's recommendation, else 1
    cpu_bf16: bool = False  # this CPU runs precision="bf16" (AVX512-BF16)
    cpu_amx_bf16: bool = False  # this CPU has AMX-BF16 tiles (reported; the kernels use AVX512-BF16)
    auto_precision: str = "fp32"  # what precision="auto" runs here


def _enum(table: dict, value: str, what: str) -> int:
    try:
        return table[value.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"{what} must be one of {sorted(table)}, got {value!r}") from None


def _uint(value, bits: int, what: str) -> int:
    """An integer that fits an unsigned C field of `bits` bits (the library checks the range)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if not 0 <= int(value) < 1 << bits:
        raise ValueError(f"{what} must be in 0..{(1 << bits) - 1}, got {value}")
    return int(value)


class _Call:
    """Builds the C params for one call and carries the Python progress callback through it."""

    def __init__(self, seed=0, steps=4, solver="midpoint", prior_scale=1.0, progress=None, cancel=None,
                 first_index=0, batch_size=0, latent_steps=16, latent_solver="midpoint",
                 inpaint_candidates=16, interpolation="linear", time_shift=None, tileable=False,
                 class_id=CLASS_NONE, guidance=1.0, precision="fp32"):
        lib = _load()
        p = _Params()
        _check(lib.ldf_sample_params_init_sized(C.byref(p), C.sizeof(p)))
        # ctypes would silently wrap out-of-range integers (seed 2**64 -> 0): refuse them here.
        p.seed, p.first_index = _uint(seed, 64, "seed"), _uint(first_index, 64, "first_index")
        p.steps, p.prior_scale = _uint(steps, 32, "steps"), float(prior_scale)
        p.solver = _enum(SOLVERS, solver, "solver")
        p.latent_solver = _enum(SOLVERS, latent_solver, "latent_solver")
        p.latent_steps = _uint(latent_steps, 32, "latent_steps")
        p.inpaint_candidates = _uint(inpaint_candidates, 32, "inpaint_candidates")
        p.interpolation = _enum(INTERPOLATIONS, interpolation, "interpolation")
        p.batch_size = _uint(batch_size, 32, "batch_size")
        # None (or 0) leaves the shift to the model file's recommendation.
        p.time_shift = 0.0 if time_shift is None else float(time_shift)
        p.tileable = 1 if tileable else 0
        p.class_id, p.guidance = _uint(class_id, 32, "class_"), float(guidance)
        p.precision = _enum(PRECISIONS, precision, "precision")
        if cancel is not None:
            p.cancel = cancel._ptr
        self.error = None
        if progress is not None:
            def trampoline(step, total, _user):
                try:
                    return progress(step, total) is not False
                except BaseException as e:  # stops the call; re-raised after it returns
                    self.error = e
                    return False

            self._cb = _PROGRESS(trampoline)  # kept alive for the call
            p.progress = self._cb
        self.params = p

    def run(self, status: int):
        if self.error is not None:
            raise self.error
        _check(status)


def _u8(a: np.ndarray):
    return a.ctypes.data_as(C.POINTER(C.c_uint8))


def _f32(a: np.ndarray):
    return a.ctypes.data_as(C.POINTER(C.c_float))


class Model:
    """A loaded model. `device` is "cpu" or "cuda" (needs a build with the cuda feature)."""

    def __init__(self, path, device: str = "cpu", precision: str = "fp32"):
        """`precision` is every call's default (a call's own `precision=` wins): see PRECISIONS."""
        lib = _load()
        self._init_state(precision)
        dev = _enum(DEVICES, device, "device")
        _check(lib.ldf_model_load(os.fsencode(path), dev, C.byref(self._ptr)))
        self._read_info()

    @classmethod
    def from_bytes(cls, data: bytes, device: str = "cpu", precision: str = "fp32") -> "Model":
        lib = _load()
        self = cls.__new__(cls)
        self._init_state(precision)
        buf = (C.c_uint8 * len(data)).from_buffer_copy(data)
        _check(lib.ldf_model_load_from_memory(buf, len(data), _enum(DEVICES, device, "device"), C.byref(self._ptr)))
        self._read_info()
        return self

    def _init_state(self, precision):
        _enum(PRECISIONS, precision, "precision")  # refused before anything is loaded
        self.precision = precision.lower()
        self._ptr = C.c_void_p()
        # Calls in flight on any thread, and whether close() was asked for: the model is freed
        # when both the last call has returned and close() (or garbage collection) came, so a
        # close() on one thread never frees the model under another thread's running call.
        self._lock = threading.Lock()
        self._busy = 0
        self._closing = False

    def _read_info(self):
        i = _Info()
        i.struct_size = C.sizeof(_Info)
        with self._handle() as h:
            _check(_load().ldf_model_info(h, C.byref(i)))
        self._raw_info = i
        with self._handle() as h:
            #: The class names of a class-conditional model (empty: unconditional).
            self.classes = [_load().ldf_model_class_name(h, k).decode() for k in range(i.class_count)]
        auto = {v: k for k, v in PRECISIONS.items()}.get(i.auto_precision, str(i.auto_precision))
        self.info = ModelInfo(i.width, i.height, i.channels, i.latent_dim, PRIORS.get(i.prior, str(i.prior)),
                              i.format_version, i.parameters, i.time_shift, bool(i.cpu_features & CPU_AVX512_BF16),
                              bool(i.cpu_features & CPU_AMX_BF16), auto)

    def _opts(self, options: dict) -> dict:
        """`class_` (a name or an index, None: unconditional) as the C params' class_id; the
        model's precision unless the call gives its own."""
        options.setdefault("precision", self.precision)
        if "class_" in options:
            c = options.pop("class_")
            if c is None:
                options["class_id"] = CLASS_NONE
            elif isinstance(c, str):
                if c not in self.classes:
                    known = ", ".join(self.classes) if self.classes else "none (the model is unconditional)"
                    raise ValueError(f"class {c!r} is not one of the model's classes: {known}")
                options["class_id"] = self.classes.index(c)
            else:
                options["class_id"] = c  # an index: the library checks it
        return options

    @contextmanager
    def _handle(self):
        """The C model for one call, kept alive until the call returns."""
        with self._lock:
            if not self._ptr or self._closing:
                raise ValueError("the model is closed")
            self._busy += 1
        try:
            yield self._ptr
        finally:
            with self._lock:
                self._busy -= 1
                last = self._closing and self._busy == 0
            if last:
                self._free()

    def _free(self):
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr and _lib is not None:
            _lib.ldf_model_free(ptr)

    def close(self):
        """Frees the model (also done when it is garbage-collected). Calls running on other
        threads finish first: the model is freed when the last of them returns, and new calls
        raise ValueError."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # the constructor failed before the model existed
            return
        with lock:
            self._closing = True
            idle = self._busy == 0
        if idle:
            self._free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"Model({self.info})"

    @property
    def _shape(self):
        i = self.info
        return (i.height, i.width, i.channels)

    def set_memory_limit(self, nbytes: int):
        """Caps the working memory of each call (0: no cap); see ldf_model_set_memory_limit."""
        with self._handle() as h:
            _check(_load().ldf_model_set_memory_limit(h, _uint(nbytes, 64, "nbytes")))

    def _count(self, n, what="count"):
        # Checked before the output array is allocated: the library refuses the same counts.
        if not isinstance(n, (int, np.integer)) or n < 1 or n > MAX_COUNT:
            raise ValueError(f"{what} must be an integer in 1..={MAX_COUNT}, got {n!r}")
        return int(n)

    def _images(self, images) -> np.ndarray:
        a = np.asarray(images)
        if a.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {a.dtype}")
        h, w, c = self._shape
        if a.ndim == 3 and a.shape == (h, w, c):
            a = a[None]
        elif c == 1 and a.ndim == 3 and a.shape[1:] == (h, w):
            a = a[..., None]
        if a.ndim != 4 or a.shape[1:] != (h, w, c):
            raise ValueError(f"images must have shape (N, {h}, {w}, {c}), got {np.asarray(images).shape}")
        return np.ascontiguousarray(a)

    def _latents(self, z, rows=None) -> np.ndarray:
        d = self.info.latent_dim
        a = np.ascontiguousarray(np.asarray(z, dtype=np.float32))
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2 or a.shape[1] != d or (rows is not None and a.shape[0] != rows):
            raise ValueError(f"latents must have shape (N, {d}), got {np.asarray(z).shape}")
        return a

    def sample(self, count: int, seed: int = 0, steps: int = 4, solver: str = "midpoint",
               prior_scale: float = 1.0, progress: Optional[Callable[[int, int], bool]] = None,
               **options) -> np.ndarray:
        """`count` images as uint8 (count, H, W, C). progress(step, total) returning False cancels.
        Options: cancel, first_index, batch_size, latent_steps, latent_solver, time_shift (solver
        grid: 1 = equal steps, > 1 shorter steps near the prior; about 3 for Gaussian-prior models
        at 4 Midpoint steps; None, the default, = the model file's recommendation, else 1),
        tileable (True: seamless tiles, each image wraps around; every generation call takes it),
        class_ (a class-conditional model's class, by name or index: Model.classes lists them),
        guidance (classifier-free guidance scale for class_, default 1) and precision ("fp32",
        "bf16" or "auto"; default: the model's, see PRECISIONS)."""
        n = self._count(count)
        call = _Call(seed, steps, solver, prior_scale, progress, **self._opts(options))
        out = np.empty((n, *self._shape), np.uint8)
        with self._handle() as h:
            call.run(_load().ldf_sample(h, n, C.byref(call.params), _u8(out), out.nbytes))
        return out

    def sample_latents(self, count: int, seed: int = 0, **options) -> np.ndarray:
        """`count` latents (learned-prior models) as float32 (count, latent_dim)."""
        n = self._count(count)
        call = _Call(seed, **self._opts(options))
        out = np.empty((n, self.info.latent_dim), np.float32)
        with self._handle() as h:
            call.run(_load().ldf_sample_latents(h, n, C.byref(call.params), _f32(out), out.nbytes))
        return out

    def generate(self, latents, seed: int = 0, steps: int = 4, solver: str = "midpoint",
                 prior_scale: float = 1.0, progress=None, **options) -> np.ndarray:
        """One image per latent row: uint8 (N, H, W, C)."""
        z = self._latents(latents)
        call = _Call(seed, steps, solver, prior_scale, progress, **self._opts(options))
        out = np.empty((z.shape[0], *self._shape), np.uint8)
        with self._handle() as h:
            call.run(_load().ldf_generate_from_latents(h, _f32(z), z.shape[0], C.byref(call.params), _u8(out),
                                                       out.nbytes))
        return out

    def encode(self, images) -> np.ndarray:
        """Latents (posterior means) of uint8 images (N, H, W, C): float32 (N, latent_dim)."""
        x = self._images(images)
        out = np.empty((x.shape[0], self.info.latent_dim), np.float32)
        with self._handle() as h:
            _check(_load().ldf_encode(h, _u8(x), x.shape[0], _f32(out), out.nbytes))
        return out

    def interpolate(self, z_from, z_to, frames: int, seed: int = 0, steps: int = 4, solver: str = "midpoint",
                    prior_scale: float = 1.0, progress=None, mode: str = "linear", **options) -> np.ndarray:
        """`frames` images from latent z_from to z_to (endpoints included): uint8 (frames, H, W, C)."""
        a, b = self._latents(z_from, 1), self._latents(z_to, 1)
        n = self._count(frames, "frames")
        call = _Call(seed, steps, solver, prior_scale, progress, interpolation=mode, **self._opts(options))
        out = np.empty((n, *self._shape), np.uint8)
        with self._handle() as h:
            call.run(_load().ldf_interpolate(h, _f32(a), _f32(b), n, C.byref(call.params), _u8(out), out.nbytes))
        return out

    def interpolate_seeds(self, seed_from: int, seed_to: int, frames: int, steps: int = 4, solver: str = "midpoint",
                          prior_scale: float = 1.0, progress=None, seed: int = None, **options) -> np.ndarray:
        """`frames` images walking from the noise of seed_from to that of seed_to (endpoints included),
        for both kinds of model: uint8 (frames, H, W, C). Every frame shares the prior noise of `seed`
        (default seed_from, so frame 0 is image 0 of sample(seed=seed_from))."""
        a, b = _uint(seed_from, 64, "seed_from"), _uint(seed_to, 64, "seed_to")
        n = self._count(frames, "frames")
        call = _Call(a if seed is None else seed, steps, solver, prior_scale, progress, **self._opts(options))
        out = np.empty((n, *self._shape), np.uint8)
        with self._handle() as h:
            call.run(_load().ldf_interpolate_seeds(h, a, b, n, C.byref(call.params), _u8(out),
                                                   out.nbytes))
        return out

    def inpaint(self, images, masks, seed: int = 0, steps: int = 4, solver: str = "midpoint",
                prior_scale: float = 1.0, progress=None, **options) -> np.ndarray:
        """Fills the pixels where `masks` (N, H, W), bool or uint8, is 0/False; keeps the rest exactly."""
        x = self._images(images)
        h, w, _ = self._shape
        m = np.asarray(masks)
        if m.ndim == 4 and m.shape[-1] == 1:
            m = m[..., 0]
        if m.ndim == 2:
            m = m[None]
        if m.shape != (x.shape[0], h, w):
            raise ValueError(f"masks must have shape ({x.shape[0]}, {h}, {w}), got {np.asarray(masks).shape}")
        m = np.ascontiguousarray(m != 0, dtype=np.uint8)
        call = _Call(seed, steps, solver, prior_scale, progress, **self._opts(options))
        out = np.empty_like(x)
        with self._handle() as h:
            call.run(_load().ldf_inpaint(h, _u8(x), _u8(m), x.shape[0], C.byref(call.params), _u8(out),
                                         out.nbytes))
        return out

    def vary(self, images, count: int, strength: float = 0.5, seed: int = 0, steps: int = 4,
             solver: str = "midpoint", prior_scale: float = 1.0, progress=None, **options) -> np.ndarray:
        """`count` variations of each uint8 image (N, H, W, C): uint8 (N, count, H, W, C), image i's
        variation j depending only on (seed, i, j). strength in [0, 1]: 0 returns the images, 1
        keeps only what each image's latent carries (a fresh draw from its own learned prior); in
        between the flow starts part-way from the image."""
        x = self._images(images)
        if not isinstance(count, (int, np.integer)) or count < 1 or count > MAX_VARIATIONS:
            raise ValueError(f"count must be an integer in 1..={MAX_VARIATIONS}, got {count!r}")
        self._count(x.shape[0] * int(count), "images x count")
        call = _Call(seed, steps, solver, prior_scale, progress, **self._opts(options))
        out = np.empty((x.shape[0], int(count), *self._shape), np.uint8)
        with self._handle() as h:
            call.run(_load().ldf_vary(h, _u8(x), x.shape[0], int(count), float(strength), C.byref(call.params),
                                      _u8(out), out.nbytes))
        return out


def make_grid(images: np.ndarray, cols: Optional[int] = None, checker: bool = True) -> np.ndarray:
    """Tiles (N, H, W, C) uint8 images into one image; transparent pixels over a checkerboard
    (returned as RGB) when `checker` and C == 4."""
    a = np.asarray(images)
    n, h, w, c = a.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * h:(r + 1) * h, k * w:(k + 1) * w] = a[i]
    if c == 4 and checker:
        yy, xx = np.mgrid[0:grid.shape[0], 0:grid.shape[1]]
        bg = np.where(((yy // 4) + (xx // 4)) % 2 == 0, 200, 150).astype(np.float32)[..., None]
        alpha = grid[..., 3:4].astype(np.float32) / 255.0
        grid = (grid[..., :3] * alpha + bg * (1.0 - alpha)).round().astype(np.uint8)
    return grid


def save_png(path, image: np.ndarray):
    """Writes an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 array as a PNG (no extra packages)."""
    a = np.asarray(image, dtype=np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    h, w, c = a.shape
    color = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)
