"""The GIMP plug-in (integrations/gimp), driven headless by GIMP 2.10's own Script-Fu: every layer
that plug-in-lediflow-sample and plug-in-lediflow-interpolate create must be, byte for byte, the
library's image for the same model, seed and steps; plug-in-lediflow-inpaint must give exactly
ldf_inpaint with the mask "keep where the selection is below 128" (a feathered selection, read
back with gimp-selection-value, so the threshold is tested) and refuse a drawable of the wrong
size with a message, changing nothing. plug-in-lediflow-sample-class must give a tiny
class-conditional model's images for a class and guidance exactly, and name the classes when
asked for one the model lacks.
Under a virtual X display (xvfb-run, xdotool) the interactive dialog runs a long call whose
Cancel must stop it promptly and leave no image.
Run by scripts/test-hosts.sh.

Usage: python3 tests/hosts/gimp_test.py LIBRARY_DIR   (KEEP_TMP=1 keeps the profile and the PNGs)"""

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
# GIMP 2.10 sometimes fails to start a plug-in while a fresh profile queries them.
FLAKY_START = "Failed to execute child process"


def scheme_str(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def gimp(profile: Path, *commands: str) -> subprocess.CompletedProcess:
    """Runs the batch commands in gimp-console with its own profile, retrying a flaky start."""
    env = {**os.environ, "GIMP2_DIRECTORY": str(profile)}
    args = ["timeout", "600", "gimp-console-2.10", "-i", "-d", "-f", "-n"]
    for c in commands:
        args += ["-b", c]
    args += ["-b", "(gimp-quit 0)"]
    for attempt in range(4):
        r = subprocess.run(args, env=env, capture_output=True, text=True)
        if FLAKY_START not in r.stdout + r.stderr:
            return r
        print(f"gimp_test: GIMP failed to start a plug-in (attempt {attempt + 1}); retrying", file=sys.stderr)
    return r


def interactive_cancel(profile: Path):
    """The dialog, GIMP's progress and Cancel, under a virtual X display: a call of 1024 sprites at 64
    steps (about a minute) must stop within seconds of Cancel and leave no image behind."""
    r = subprocess.run(["timeout", "300", "xvfb-run", "-a", "-s", "-screen 0 1024x768x24", "bash",
                        str(ROOT / "tests" / "hosts" / "gimp_cancel.sh"), str(profile)],
                       capture_output=True, text=True)
    log = r.stdout + r.stderr + (profile / "cancel.log").read_text(errors="replace")
    assert "progress-dialog-seen" in r.stdout, f"the interactive run did not reach its progress dialog:\n{log}"
    ms = int(r.stdout.split("finished-after-cancel-ms:")[1].split()[0])
    assert ms < 10000, f"GIMP took {ms} ms to finish after Cancel"
    assert "images-after-cancel: 0" in log, f"a cancelled run left an image:\n{log}"
    print(f"gimp_test: interactive dialog, progress and Cancel (finished {ms} ms after Cancel, no image)")


def main():
    lib_dir = Path(sys.argv[1]).resolve()
    os.environ["LEDIFLOW_LIBRARY"] = str(lib_dir / "liblediflow.so")
    tmp = Path(tempfile.mkdtemp(prefix="lediflow-gimp-"))
    try:
        profile, out = tmp / "profile", tmp / "out"
        out.mkdir()
        subprocess.run(["bash", str(ROOT / "integrations" / "gimp" / "build.sh"), str(profile / "plug-ins")],
                       check=True, env={**os.environ, "LEDIFLOW_LIB_DIR": str(lib_dir)})
        m = scheme_str(MODEL)
        save = ("(define (save image drawable name) (file-png-save2 RUN-NONINTERACTIVE image drawable "
                f"(string-append {scheme_str(out)} \"/\" name) name 0 9 0 0 0 0 0 0 1))")
        layers = ("(define (save-layers image prefix) (let* ((v (cadr (gimp-image-get-layers image)))"
                  " (n (vector-length v))) (let loop ((i 0)) (if (< i n) (begin"
                  " (save image (vector-ref v (- n 1 i)) (string-append prefix (number->string i) \".png\"))"
                  " (loop (+ i 1)))))))")
        count, seed, steps = 3, 7, 2
        seed_a, seed_b, frames = 9, 4, 4
        inpaint_seed, source_seed = 13, 11
        sample = f"(save-layers (car (plug-in-lediflow-sample RUN-NONINTERACTIVE {m} {count} {seed} {steps})) \"sample-\")"
        # An empty model string: the model build.sh installed beside the plug-in.
        interp = (f"(save-layers (car (plug-in-lediflow-interpolate RUN-NONINTERACTIVE \"\" {seed_a} {seed_b} "
                  f"{frames} {steps})) \"frame-\")")
        inpaint = (f"(let* ((image (car (plug-in-lediflow-sample RUN-NONINTERACTIVE {m} 1 {source_seed} {steps})))"
                   " (layer (vector-ref (cadr (gimp-image-get-layers image)) 0)))"
                   " (save image layer \"before.png\")"
                   " (gimp-image-select-ellipse image CHANNEL-OP-REPLACE 5 3 20 22)"
                   " (gimp-selection-feather image 8)"
                   # GIMP's own reading of the selection (0..255, what gimp-selection-value says; a PNG
                   # export of the mask would convert its linear values to sRGB) goes to the log.
                   " (let yl ((y 0) (acc \"\")) (if (< y 32) (yl (+ y 1) (let xl ((x 0) (a acc)) (if (< x 32)"
                   " (xl (+ x 1) (string-append a (number->string (car (gimp-selection-value image x y))) \" \"))"
                   " a))) (gimp-message (string-append \"selection-values: \" acc))))"
                   f" (plug-in-lediflow-inpaint RUN-NONINTERACTIVE image layer {m} {inpaint_seed} {steps})"
                   " (save image layer \"after.png\"))")
        wrong = ("(let* ((image (car (gimp-image-new 20 20 RGB)))"
                 " (layer (car (gimp-layer-new image 20 20 RGBA-IMAGE \"l\" 100 LAYER-MODE-NORMAL))))"
                 " (gimp-image-insert-layer image layer 0 0) (gimp-drawable-fill layer FILL-WHITE)"
                 " (gimp-selection-all image)"
                 f" (catch #f (plug-in-lediflow-inpaint RUN-NONINTERACTIVE image layer {m} 1 {steps}))"
                 " (save image layer \"wrong-size.png\")"
                 f" (plug-in-lediflow-inpaint RUN-NONINTERACTIVE image layer {m} 1 {steps}))")
        # Definitions do not outlive their batch command: one command does it all (the deliberate,
        # uncaught refusal at the end stops it there).
        classes = class_model.make(tmp / "classes")
        cm = scheme_str(classes)
        by_class = (f"(save-layers (car (plug-in-lediflow-sample-class RUN-NONINTERACTIVE {cm} \"light\" 2.0 3 "
                    f"{seed} {steps})) \"class-\")"
                    f" (catch #f (plug-in-lediflow-sample-class RUN-NONINTERACTIVE {cm} \"green\" 1.0 1 1 1))")
        r = gimp(profile, f"(begin {save} {layers} {sample} {interp} {by_class} {inpaint} {wrong})")
        log = r.stdout + r.stderr

        model = lediflow.Model(MODEL)
        want = model.sample(count, seed=seed, steps=steps)
        for i in range(count):
            f = out / f"sample-{i}.png"
            assert f.exists(), f"GIMP wrote no {f.name}:\n{log}"
            assert np.array_equal(read_png(f), want[i]), f"layer {i} differs from the library's image {i}"

        want = model.interpolate_seeds(seed_a, seed_b, frames, steps=steps)
        for i in range(frames):
            f = out / f"frame-{i}.png"
            assert f.exists(), f"GIMP wrote no {f.name}:\n{log}"
            assert np.array_equal(read_png(f), want[i]), f"frame {i} differs from the library's"

        want = lediflow.Model(classes).sample(count, seed=seed, steps=steps, class_="light", guidance=2.0)
        for i in range(count):
            f = out / f"class-{i}.png"
            assert f.exists(), f"GIMP wrote no {f.name}:\n{log}"
            assert np.array_equal(read_png(f), want[i]), f"class layer {i} differs from the library's"
        assert 'no class "green" (its classes: dark, light)' in log, f"an unknown class gave no reason:\n{log}"

        before = read_png(out / "before.png")
        assert np.array_equal(before, model.sample(1, seed=source_seed, steps=steps)[0])
        line = next(x for x in log.splitlines() if "selection-values:" in x)
        values = [float(v) for v in line.split("selection-values:")[1].split()]
        selection = np.round(np.array(values)).astype(np.int32).reshape(32, 32)
        soft = np.count_nonzero((selection > 0) & (selection < 255))
        assert soft > 20, "the feathered selection has no soft edge to test the threshold on"
        keep = (selection < 128).astype(np.uint8)
        want = model.inpaint(before[None], keep[None], seed=inpaint_seed, steps=steps)[0]
        after = read_png(out / "after.png")
        same = (after == before).all(-1)
        assert np.array_equal(after, want), (
            f"the inpainted layer differs from ldf_inpaint's result ({np.count_nonzero(same & (selection >= 128))} "
            f"selected pixels kept, {np.count_nonzero(~same & (selection < 128))} unselected ones changed)")
        assert not np.array_equal(after, before), "inpainting changed nothing"

        assert np.all(read_png(out / "wrong-size.png") == 255), "a refused inpainting changed the layer"
        assert "20x20" in log and "32x32" in log, f"the wrong-size refusal gave no reason:\n{log}"
        print(f"gimp_test: {count} sample layers, {frames} frames, {count} layers of one class and an inpainting "
              f"(selection with {soft} soft pixels) byte-equal to the library's; a 20x20 drawable and an unknown "
              "class refused with their reasons")
        interactive_cancel(profile)
    finally:
        if os.environ.get("KEEP_TMP"):
            print(f"gimp_test: files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
