"""pytest for the ctypes binding, on the shipped models (run by scripts/test.sh)."""

import threading
from pathlib import Path

import numpy as np
import pytest

import lediflow

ROOT = Path(__file__).resolve().parents[3]
LEDI = ROOT / "models" / "dcss-small-ledi.safetensors"
GAUSS = ROOT / "models" / "dcss-small-gaussian.safetensors"


@pytest.fixture(scope="module")
def model():
    with lediflow.Model(LEDI) as m:
        yield m


@pytest.fixture(scope="module")
def gaussian():
    return lediflow.Model(GAUSS)


def test_version():
    assert lediflow.version().count(".") == 2
    assert lediflow.abi_version() == 1


def test_info(model, gaussian):
    i = model.info
    assert (i.width, i.height, i.channels) == (32, 32, 4)
    assert i.prior == "learned" and i.latent_dim > 0 and i.parameters > 0
    assert gaussian.info.prior == "gaussian" and gaussian.info.latent_dim == 0


def test_load_errors_carry_the_message():
    with pytest.raises(lediflow.LediflowError) as e:
        lediflow.Model("/nonexistent/model.safetensors")
    assert e.value.status == lediflow.ERR_IO
    assert "/nonexistent/model.safetensors" in str(e.value)
    with pytest.raises(lediflow.LediflowError) as e:
        lediflow.Model.from_bytes(b"not a model")
    assert e.value.status == lediflow.ERR_FORMAT
    with pytest.raises(ValueError):
        lediflow.Model(LEDI, device="tpu")


def test_from_bytes_matches_file(model):
    m = lediflow.Model.from_bytes(LEDI.read_bytes())
    np.testing.assert_array_equal(m.sample(2, seed=4, steps=2), model.sample(2, seed=4, steps=2))


def test_sample_shape_and_determinism(model):
    a = model.sample(4, seed=3, steps=2)
    assert a.shape == (4, 32, 32, 4) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, model.sample(4, seed=3, steps=2, batch_size=1))
    np.testing.assert_array_equal(a[2:], model.sample(2, seed=3, steps=2, first_index=2))
    assert not np.array_equal(a, model.sample(4, seed=4, steps=2))
    assert a.std() > 1.0


def test_time_shift(model, gaussian):
    # The shipped baseline recommends shift 3 (its file says so); None and 0 take it.
    assert gaussian.info.time_shift == 3.0 and model.info.time_shift == 1.0
    a = gaussian.sample(2, seed=1, steps=2)
    np.testing.assert_array_equal(a, gaussian.sample(2, seed=1, steps=2, time_shift=3.0))
    np.testing.assert_array_equal(a, gaussian.sample(2, seed=1, steps=2, time_shift=0.0))
    assert not np.array_equal(a, gaussian.sample(2, seed=1, steps=2, time_shift=1.0))
    # The shipped LeDiFlow model has no recommendation: equal steps.
    b = model.sample(2, seed=1, steps=2)
    np.testing.assert_array_equal(b, model.sample(2, seed=1, steps=2, time_shift=1.0))
    with pytest.raises(lediflow.LediflowError) as e:
        gaussian.sample(1, time_shift=-1.0)
    assert "time_shift" in e.value.message


@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun", "rk4"])
def test_solvers(model, solver):
    assert model.sample(1, steps=1, solver=solver).shape == (1, 32, 32, 4)


def test_bad_arguments(model):
    with pytest.raises(lediflow.LediflowError) as e:
        model.sample(1, steps=0)
    assert e.value.status == lediflow.ERR_INVALID_ARGUMENT and "steps" in e.value.message
    with pytest.raises(lediflow.LediflowError):
        model.sample(1, prior_scale=float("nan"))
    with pytest.raises(ValueError):
        model.sample(0)
    # Above the library's limit (a -1 cast to unsigned, say): refused before any allocation.
    for bad in [lediflow.MAX_COUNT + 1, 2**32 - 1]:
        with pytest.raises(ValueError, match="65536"):
            model.sample(bad)
        with pytest.raises(ValueError):
            model.interpolate(np.zeros(model.info.latent_dim), np.zeros(model.info.latent_dim), bad)
    with pytest.raises(ValueError):
        model.sample(1, solver="leapfrog")
    with pytest.raises(ValueError):
        model.encode(np.zeros((1, 16, 16, 4), np.uint8))
    with pytest.raises(TypeError):
        model.encode(np.zeros((1, 32, 32, 4), np.float32))
    # ctypes would wrap these silently (seed 2**64 -> seed 0, steps 2**32 + 4 -> 4).
    for bad in [dict(seed=2**64), dict(seed=-1), dict(steps=2**32 + 4), dict(first_index=2**64),
                dict(batch_size=-1)]:
        with pytest.raises(ValueError):
            model.sample(1, **bad)
    with pytest.raises(TypeError):
        model.sample(1, steps=2.5)
    with pytest.raises(lediflow.LediflowError) as e:  # the library's own bound (2**48)
        model.sample(1, first_index=2**63)
    assert e.value.status == lediflow.ERR_INVALID_ARGUMENT and "first_index" in e.value.message


def test_latents_generate_encode(model):
    z = model.sample_latents(3, seed=5, steps=2)
    assert z.shape == (3, model.info.latent_dim) and z.dtype == np.float32 and np.isfinite(z).all()
    imgs = model.generate(z, seed=5, steps=2)
    np.testing.assert_array_equal(imgs, model.sample(3, seed=5, steps=2))
    enc = model.encode(imgs)
    assert enc.shape == z.shape and np.isfinite(enc).all()
    np.testing.assert_array_equal(enc, model.encode(imgs))
    with pytest.raises(lediflow.LediflowError) as e:
        model.generate(np.full_like(z, np.nan))
    assert e.value.status == lediflow.ERR_INVALID_ARGUMENT


def test_gaussian_has_no_latents(gaussian):
    with pytest.raises(lediflow.LediflowError) as e:
        gaussian.sample_latents(1)
    assert e.value.status == lediflow.ERR_UNSUPPORTED
    assert gaussian.sample(2, steps=2).shape == (2, 32, 32, 4)


def test_interpolate(model):
    z = model.encode(model.sample(2, seed=1, steps=2))
    frames = model.interpolate(z[0], z[1], 5, seed=2, steps=2)
    assert frames.shape == (5, 32, 32, 4)
    np.testing.assert_array_equal(frames[0], model.generate(z[:1], seed=2, steps=2)[0])
    slerped = model.interpolate(z[0], z[1], 5, seed=2, steps=2, mode="spherical")
    np.testing.assert_array_equal(slerped[0], frames[0])


def test_interpolate_seeds(model, gaussian):
    for m in (model, gaussian):
        frames = m.interpolate_seeds(4, 9, 4, steps=2)
        assert frames.shape == (4, 32, 32, 4)
        np.testing.assert_array_equal(frames[0], m.sample(1, seed=4, steps=2)[0])
        assert not np.array_equal(frames[0], frames[3])
    np.testing.assert_array_equal(gaussian.interpolate_seeds(4, 9, 3, steps=2)[-1], gaussian.sample(1, seed=9, steps=2)[0])
    with pytest.raises(ValueError):
        model.interpolate_seeds(-1, 9, 2)
    with pytest.raises(lediflow.LediflowError):
        model.interpolate_seeds(1, 2, 2, steps=0)


def test_inpaint_keeps_known_pixels(model, gaussian):
    for m in (model, gaussian):
        imgs = m.sample(2, seed=6, steps=2)
        mask = np.zeros((2, 32, 32), bool)
        mask[:, :16] = True
        out = m.inpaint(imgs, mask, seed=7, steps=2, inpaint_candidates=4)
        np.testing.assert_array_equal(out[:, :16], imgs[:, :16])
        assert out.shape == imgs.shape


def seam_ratio(images):
    """Mean |difference| of pixel pairs that neighbour across the wrap over the interior mean."""
    x = images.astype(np.int32)
    wrap = np.concatenate([np.abs(x[:, :, -1] - x[:, :, 0]).ravel(), np.abs(x[:, -1] - x[:, 0]).ravel()])
    inner = np.concatenate([np.abs(np.diff(x, axis=2)).ravel(), np.abs(np.diff(x, axis=1)).ravel()])
    return wrap.mean() / inner.mean()


def test_tileable_images_wrap_around(model, gaussian):
    # Walls: opaque textures, where a seam shows (a sprite on a transparent ground has none).
    for m in (model, gaussian):
        plain = m.sample(24, seed=3, steps=2, class_="wall")
        tiles = m.sample(24, seed=3, steps=2, class_="wall", tileable=True)
        assert seam_ratio(plain) > 1.3 > seam_ratio(tiles), (seam_ratio(plain), seam_ratio(tiles))
        # Batching changes nothing, as for plain images.
        np.testing.assert_array_equal(m.sample(24, seed=3, steps=2, class_="wall", tileable=True, batch_size=5), tiles)


def test_variations(model, gaussian):
    for m in (model, gaussian):
        imgs = m.sample(2, seed=6, steps=2)
        same = m.vary(imgs, 3, strength=0.0)
        assert same.shape == (2, 3, 32, 32, 4)
        np.testing.assert_array_equal(same, np.repeat(imgs[:, None], 3, axis=1))
        near = m.vary(imgs, 3, strength=0.3, seed=1, steps=2).astype(int)
        far = m.vary(imgs, 3, strength=1.0, seed=1, steps=2).astype(int)
        d = lambda v: np.abs(v - imgs[:, None].astype(int)).mean()
        assert 0 < d(near) < d(far)
        # One image alone gets the variations it had in the pair.
        np.testing.assert_array_equal(m.vary(imgs[:1], 3, strength=0.3, seed=1, steps=2), near[:1])
    with pytest.raises(lediflow.LediflowError) as e:
        model.vary(imgs, 2, strength=float("nan"))
    assert e.value.status == lediflow.ERR_INVALID_ARGUMENT and "strength" in str(e.value)
    with pytest.raises(ValueError):
        model.vary(imgs, 0)


def test_progress_and_cancel(model):
    seen = []
    model.sample(3, steps=2, batch_size=2, progress=lambda s, t: seen.append((s, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(lediflow.LediflowError) as e:
        model.sample(1, steps=3, progress=lambda s, t: s < 2)
    assert e.value.status == lediflow.ERR_CANCELLED

    def boom(s, t):
        raise KeyError("from the callback")

    with pytest.raises(KeyError):
        model.sample(1, steps=2, progress=boom)
    token = lediflow.CancelToken()
    token.request()
    with pytest.raises(lediflow.LediflowError) as e:
        model.sample(1, cancel=token)
    assert e.value.status == lediflow.ERR_CANCELLED
    token.reset()
    assert model.sample(1, steps=1, cancel=token).shape == (1, 32, 32, 4)


def test_memory_limit(model):
    model.set_memory_limit(1000)
    try:
        with pytest.raises(lediflow.LediflowError) as e:
            model.sample(1)
        assert e.value.status == lediflow.ERR_OUT_OF_MEMORY
    finally:
        model.set_memory_limit(0)


def test_threads_share_one_model(model):
    ref = model.sample(2, seed=9, steps=2)
    results = [None] * 3

    def work(i):
        results[i] = model.sample(2, seed=9, steps=2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, ref)


def test_closed_model_raises():
    m = lediflow.Model(GAUSS)
    m.close()
    with pytest.raises(ValueError):
        m.sample(1)
    m.close()  # twice is fine


def test_close_during_a_call_on_another_thread():
    m = lediflow.Model(LEDI)
    started, out = threading.Event(), {}

    def work():
        out["images"] = m.sample(4, steps=6, batch_size=1, progress=lambda s, t: started.set() or True)

    th = threading.Thread(target=work)
    th.start()
    assert started.wait(60)
    m.close()  # the running call keeps the model until it returns
    th.join()
    assert out["images"].shape == (4, 32, 32, 4)
    with pytest.raises(ValueError):
        m.sample(1)


def test_grid_and_png(tmp_path, model):
    imgs = model.sample(5, steps=1)
    grid = lediflow.make_grid(imgs, cols=3)
    assert grid.shape == (64, 96, 3)
    p = tmp_path / "g.png"
    lediflow.save_png(p, grid)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_max_count_is_the_headers():
    header = Path(__file__).resolve().parents[3] / "include" / "lediflow.h"
    define = [l for l in header.read_text().splitlines() if l.startswith("#define LDF_MAX_COUNT ")]
    assert define and int(define[0].split()[2]) == lediflow.MAX_COUNT


def test_classes_of_the_shipped_model(model):
    assert model.classes == ["floor", "wall", "feature", "item", "creature"]
    with pytest.raises(ValueError, match="floor, wall, feature, item, creature"):
        model.sample(1, class_="dragon")
    with pytest.raises(lediflow.LediflowError, match="0 floor, 1 wall"):
        model.sample(1, class_=5)
    with pytest.raises(lediflow.LediflowError, match="guidance"):
        model.sample(1, guidance=float("nan"))
    with pytest.raises(lediflow.LediflowError, match="guidance"):
        model.sample(1, guidance=-1.0)
    # A class by name is the same class by index, and differs from unconditional samples.
    item = model.sample(2, steps=1, class_="item", guidance=2.0)
    np.testing.assert_array_equal(item, model.sample(2, steps=1, class_=3, guidance=2.0))
    assert not np.array_equal(item, model.sample(2, steps=1))
    # Guidance without a class changes nothing.
    np.testing.assert_array_equal(model.sample(1, steps=1, guidance=3.0), model.sample(1, steps=1))


def test_precision(model):
    info = model.info
    assert info.auto_precision == ("bf16" if info.cpu_bf16 else "fp32")
    ref = model.sample(3, seed=5, steps=2)
    with pytest.raises(ValueError, match="precision"):
        model.sample(1, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        lediflow.Model(LEDI, precision="half")
    if not info.cpu_bf16:
        with pytest.raises(lediflow.LediflowError, match="AVX512-BF16"):
            model.sample(1, precision="bf16")
        np.testing.assert_array_equal(model.sample(3, seed=5, steps=2, precision="auto"), ref)
        return
    fast = model.sample(3, seed=5, steps=2, precision="bf16")
    assert not np.array_equal(fast, ref)
    assert np.abs(fast.astype(int) - ref.astype(int)).mean() < 1.0
    np.testing.assert_array_equal(model.sample(3, seed=5, steps=2, precision="auto"), fast)
    # A model's precision is its calls' default; a call's own wins.
    with lediflow.Model(LEDI, precision="bf16") as m:
        np.testing.assert_array_equal(m.sample(3, seed=5, steps=2), fast)
        np.testing.assert_array_equal(m.sample(3, seed=5, steps=2, precision="fp32"), ref)
        # Within bf16, image 2 alone is the same as in the call of three.
        np.testing.assert_array_equal(m.sample(1, seed=5, steps=2, first_index=2, batch_size=1)[0], fast[2])
