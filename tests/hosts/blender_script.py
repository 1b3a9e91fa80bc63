"""Runs inside Blender (tests/hosts/blender_test.py starts it): enables the add-on from the user
scripts folder, runs its operators and writes what they made as .npy files for the outer test.

blender -b --factory-startup --python-exit-code 1 --python blender_script.py -- OUT MODEL CLASS_MODEL"""

import sys
from pathlib import Path

import addon_utils
import bpy
import numpy as np

args = sys.argv[sys.argv.index("--") + 1:]
out, model, class_model = Path(args[0]), args[1], args[2]
mod = addon_utils.enable("lediflow_blender", default_set=True)
assert mod is not None, "the add-on did not enable"
assert "lediflow" in mod.__name__ and Path(mod.__file__).parent.name == "lediflow_blender"
# The bundled bindings load the bundled library (no environment variable is set).
lib = mod.lediflow.library_path()
assert lib.parent == Path(mod.__file__).parent / "lediflow", lib


def dump(name: str, path: Path):
    image = bpy.data.images[name]
    w, h = image.size
    px = np.array(image.pixels[:], np.float32).reshape(h, w, 4)[::-1]  # back to top row first
    np.save(path, np.round(px * 255).astype(np.uint8))


assert bpy.ops.lediflow.generate(model_path=model, count=3, seed=5, steps=2) == {"FINISHED"}
for i in range(3):
    dump(f"lediflow_5_{i}", out / f"sample-{i}.npy")
# An empty path: the model shipped inside the add-on.
assert bpy.ops.lediflow.generate(model_path="", count=1, seed=8, steps=2, tileable=True) == {"FINISHED"}
dump("lediflow_8_0", out / "shipped-tileable-0.npy")

bpy.ops.mesh.primitive_plane_add()
assert bpy.ops.lediflow.make_material(image_name="lediflow_5_0") == {"FINISHED"}
mat = bpy.context.active_object.data.materials[0]
tex = [n for n in mat.node_tree.nodes if n.type == "TEX_IMAGE"][0]
assert tex.image.name == "lediflow_5_0" and tex.interpolation == "Closest"
bsdf = [n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"][0]
assert bsdf.inputs["Base Color"].links[0].from_node == tex

try:
    bpy.ops.lediflow.generate(model_path=str(out / "missing.safetensors"), count=1)
    raise AssertionError("a missing model file did not fail")
except RuntimeError as e:
    assert "missing.safetensors" in str(e), e
assert "lediflow_0_0" not in bpy.data.images, "a failed call made an image"
try:
    bpy.ops.lediflow.generate(model_path=model, count=1, seed=9, class_name="dragon")
    raise AssertionError("an unknown class did not fail")
except RuntimeError as e:
    assert "floor, wall, feature, item, creature" in str(e), e
assert "lediflow_9_0" not in bpy.data.images, "a refused class made an image"
assert bpy.ops.lediflow.generate(model_path=class_model, count=2, seed=6, steps=2, class_name="dark",
                                 guidance=2.0) == {"FINISHED"}
dump("lediflow_6_1", out / "class-1.npy")
# bf16 where this CPU has it (what the library's auto runs here).
assert bpy.ops.lediflow.generate(model_path=model, count=2, seed=12, steps=2, precision="auto") == {"FINISHED"}
dump("lediflow_12_1", out / "auto-1.npy")
(out / "done").write_text("ok")
