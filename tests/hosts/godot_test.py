"""The Godot 3 GDNative add-on (integrations/godot), run headless in godot3-server: installed with
its build.sh into a fresh project, driven by tests/hosts/godot_test.gd. Every Image it returned
must hold exactly the library's pixels for the same model, seed and steps (sample, interpolate,
inpaint with "regenerate where the mask is 128 or more", a call on a Thread); the shipped model is
read through res://; bad input is refused with a reason; a cancelled call leaves the instance
usable. Run by scripts/test-hosts.sh.

Usage: python3 tests/hosts/godot_test.py LIBRARY_DIR"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import class_model  # noqa: E402
import lediflow  # noqa: E402
from pngio import read_png  # noqa: E402

MODEL = ROOT / "models" / "dcss-small-ledi.safetensors"


def main():
    lib_dir = Path(sys.argv[1]).resolve()
    os.environ["LEDIFLOW_LIBRARY"] = str(lib_dir / "liblediflow.so")
    tmp = Path(tempfile.mkdtemp(prefix="lediflow-godot-"))
    try:
        project, out = tmp / "project", tmp / "out"
        project.mkdir()
        out.mkdir()
        (project / "project.godot").write_text('config_version=4\n\n[application]\n\nconfig/name="lediflow test"\n')
        shutil.copy(ROOT / "tests" / "hosts" / "godot_test.gd", project / "godot_test.gd")
        subprocess.run(["bash", str(ROOT / "integrations" / "godot" / "build.sh"), str(project)], check=True,
                       env={**os.environ, "LEDIFLOW_LIB_DIR": str(lib_dir)})
        env = {k: v for k, v in os.environ.items() if k != "LEDIFLOW_LIBRARY"}
        classes = class_model.make(tmp / "classes")
        env.update(LDF_OUT=str(out), LDF_MODEL=str(MODEL), LDF_CLASS_MODEL=str(classes), HOME=str(tmp))
        r = subprocess.run(["timeout", "600", "godot3-server", "--path", str(project), "-s", "res://godot_test.gd"],
                           env=env, capture_output=True, text=True)
        log = r.stdout + r.stderr
        assert r.returncode == 0 and (out / "done").exists(), f"godot failed ({r.returncode}):\n{log}"

        model = lediflow.Model(MODEL)
        want = model.sample(3, seed=5, steps=2)
        for i in range(3):
            assert np.array_equal(read_png(out / f"sample-{i}.png"), want[i]), f"sample image {i} differs"
        want = model.sample(3, seed=5, steps=2, precision="auto")
        for i in range(3):
            assert np.array_equal(read_png(out / f"auto-{i}.png"), want[i]), f"auto-precision image {i} differs"
        want = model.interpolate_seeds(9, 4, 4, steps=2)
        for i in range(4):
            assert np.array_equal(read_png(out / f"frame-{i}.png"), want[i]), f"frame {i} differs"
        before = read_png(out / "before.png")
        assert np.array_equal(before, model.sample(1, seed=11, steps=2)[0])
        mask = read_png(out / "mask.png")[..., 0]
        assert 0 < np.count_nonzero(mask >= 128) < np.count_nonzero(mask > 0), "the mask has no grey levels"
        keep = (mask < 128).astype(np.uint8)
        after = read_png(out / "after.png")
        assert np.array_equal(after, model.inpaint(before[None], keep[None], seed=13, steps=2)[0]), "inpaint differs"
        want = lediflow.Model(classes).sample(2, seed=5, steps=2, class_="light", guidance=2.0)[1]
        assert np.array_equal(read_png(out / "class-1.png"), want), "the class image differs"
        assert np.array_equal(read_png(out / "thread-7.png"), model.sample(8, seed=3, steps=2)[7]), "threaded differs"
        print("godot_test: sample, interpolate, inpaint, a class and a threaded call byte-equal to the library's; "
              "errors and cancel checked")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
