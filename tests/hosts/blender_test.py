"""The Blender add-on (integrations/blender), run headless in Blender 3.4: installed with its
build.sh into a fresh user scripts folder, enabled, and driven by tests/hosts/blender_script.py.
Every image datablock it made must hold exactly the library's pixels for the same model, count,
seed and steps; the shipped model inside the add-on is found with no environment variable; the
material operator wires the image; a missing model file fails with its name and makes nothing.
Run by scripts/test-hosts.sh.

Usage: python3 tests/hosts/blender_test.py LIBRARY_DIR"""

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

MODEL = ROOT / "models" / "dcss-small-ledi.safetensors"


def main():
    lib_dir = Path(sys.argv[1]).resolve()
    os.environ["LEDIFLOW_LIBRARY"] = str(lib_dir / "liblediflow.so")
    tmp = Path(tempfile.mkdtemp(prefix="lediflow-blender-"))
    try:
        scripts, out = tmp / "scripts", tmp / "out"
        out.mkdir()
        subprocess.run(["bash", str(ROOT / "integrations" / "blender" / "build.sh"), str(scripts / "addons")],
                       check=True, env={**os.environ, "LEDIFLOW_LIB_DIR": str(lib_dir)})
        classes = class_model.make(tmp / "classes")
        env = {k: v for k, v in os.environ.items() if k != "LEDIFLOW_LIBRARY"}
        env["BLENDER_USER_SCRIPTS"] = str(scripts)
        # Blender's embedded Python locates its standard library (and Debian's numpy) through the first
        # python3 on PATH: put the system one, which Blender was built against, first.
        env["PATH"] = "/usr/bin:" + env.get("PATH", "")
        r = subprocess.run(["timeout", "600", "blender", "-b", "--factory-startup", "--python-exit-code", "1",
                            "--python", str(ROOT / "tests" / "hosts" / "blender_script.py"), "--", str(out),
                            str(MODEL), str(classes)], env=env, capture_output=True, text=True)
        assert r.returncode == 0 and (out / "done").exists(), f"blender failed ({r.returncode}):\n{r.stdout}{r.stderr}"

        want = lediflow.Model(MODEL).sample(3, seed=5, steps=2)
        for i in range(3):
            got = np.load(out / f"sample-{i}.npy")
            assert np.array_equal(got, want[i]), f"lediflow_5_{i} differs from the library's image {i}"
        want = lediflow.Model(MODEL).sample(1, seed=8, steps=2, tileable=True)[0]
        assert np.array_equal(np.load(out / "shipped-tileable-0.npy"), want), "the shipped model's image differs"
        want = lediflow.Model(classes).sample(2, seed=6, steps=2, class_="dark", guidance=2.0)[1]
        assert np.array_equal(np.load(out / "class-1.npy"), want), "the class datablock differs"
        want = lediflow.Model(MODEL).sample(2, seed=12, steps=2, precision="auto")[1]
        assert np.array_equal(np.load(out / "auto-1.npy"), want), "the auto-precision datablock differs"
        print("blender_test: 6 image datablocks (one of a class, one in auto precision) byte-equal to the library's; "
              "material and errors checked")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
