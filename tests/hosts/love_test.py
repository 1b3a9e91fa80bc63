"""The LÖVE demo (examples/love), run headless: its sprite sheet must hold, byte for byte, the
images the library gives for the same model, count, seed and steps; a missing model file must
end the game with the library's message and no sheet. Run by scripts/test-hosts.sh.

Usage: python3 tests/hosts/love_test.py LIBRARY"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import lediflow  # noqa: E402
from pngio import read_png  # noqa: E402


def run_game(library: str, out: Path, **env) -> subprocess.CompletedProcess:
    runtime = Path(tempfile.mkdtemp())
    runtime.chmod(0o700)
    full = {**os.environ, "LDF_HEADLESS": "1", "LDF_OUT": str(out), "LDF_LIBRARY": library,
            "XDG_RUNTIME_DIR": str(runtime), **env}
    return subprocess.run(["timeout", "300", "love", str(ROOT / "examples" / "love")], env=full,
                          capture_output=True, text=True)


def main():
    library = str(Path(sys.argv[1]).resolve())
    os.environ["LEDIFLOW_LIBRARY"] = library
    model_path = ROOT / "models" / "dcss-small-ledi.safetensors"
    count, seed, steps, columns = 12, 5, 3, 8
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        r = run_game(library, out, LDF_MODEL=str(model_path), LDF_COUNT=str(count), LDF_SEED=str(seed),
                     LDF_STEPS=str(steps))
        assert r.returncode == 0, f"love exited with {r.returncode}: {r.stdout}{r.stderr}"
        sheet = read_png(out / "sheet.png")
        model = lediflow.Model(model_path)
        want = model.sample(count, seed=seed, steps=steps)
        h, w, _ = want.shape[1:]
        assert sheet.shape == (2 * h, columns * w, 4), sheet.shape
        for i in range(count):
            y, x = (i // columns) * h, (i % columns) * w
            got = sheet[y:y + h, x:x + w]
            assert np.array_equal(got, want[i]), f"sprite {i} differs from the library's image {i}"
        # The sheet's unused cells stay transparent black.
        assert not sheet[h:, (count - columns) * w:].any()

        (out / "sheet.png").unlink()
        r = run_game(library, out, LDF_MODEL=str(out / "missing.safetensors"))
        assert r.returncode != 0, "a missing model file did not end the game with an error"
        assert "missing.safetensors" in r.stderr, r.stderr
        assert not (out / "sheet.png").exists(), "a failed run wrote a sheet"
    print(f"love_test: {count} sprites byte-equal to the library's; a missing model is reported")


if __name__ == "__main__":
    main()
