"""lediflow for Blender: generate sprites and textures with a LeDiFlow model, inside Blender.

- Image Editor > Sidebar (N) > lediflow: model file, count, seed, steps, tileable, class and
  guidance (class-conditional models), precision (fp32, or bf16 on CPUs with AVX512-BF16: faster),
  and buttons to generate and to make a material from the image shown.
- ``bpy.ops.lediflow.generate(model_path=..., count=..., seed=..., steps=...)`` creates image
  datablocks named ``lediflow_<seed>_<i>``: image i is exactly image i of the library's
  ``sample(count, seed, steps)`` (rows flipped, as Blender stores images bottom row first).
- ``bpy.ops.lediflow.make_material(image_name=...)`` makes a pixel-art material from an image:
  nearest-neighbour texture into a Principled BSDF, alpha clipped.

The add-on carries the library and the shipped model (installed by integrations/blender/build.sh),
so it needs no environment variable. An empty model path means the shipped model.
"""

from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import lediflow

bl_info = {
    "name": "lediflow",
    "author": "lediflow",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Image Editor > Sidebar > lediflow",
    "description": "Generate sprites and textures with a LeDiFlow model (learned-prior flow matching)",
    "category": "Image",
}

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "dcss-small-ledi.safetensors"
MAX_IMAGES = 1024

_models = {}


def model_for(path: str) -> lediflow.Model:
    """The model at `path` (empty: the shipped one), loaded once while Blender runs."""
    p = str(Path(bpy.path.abspath(path)).resolve()) if path else str(DEFAULT_MODEL)
    if p not in _models:
        _models[p] = lediflow.Model(p)
    return _models[p]


def store(name: str, pixels: np.ndarray) -> bpy.types.Image:
    """Puts one uint8 (H, W, C) image into the datablock `name` (created or replaced in size)."""
    h, w, c = pixels.shape
    rgba = np.empty((h, w, 4), np.uint8)
    if c == 4:
        rgba[:] = pixels
    else:  # grey or RGB: opaque RGBA
        rgba[..., :3] = pixels
        rgba[..., 3] = 255
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (w, h):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, w, h, alpha=True)
    image.alpha_mode = "STRAIGHT"
    # Blender's first row is the bottom one; byte images round v / 255 back to v exactly.
    image.pixels.foreach_set((rgba[::-1].astype(np.float32) / 255.0).ravel())
    image.update()
    image.pack()  # kept in the .blend file
    return image


PRECISIONS = [("fp32", "fp32", "fp32 throughout: the same images on every CPU"),
              ("auto", "auto", "bf16 where the CPU has AVX512-BF16 (about 0.6x the time), fp32 elsewhere"),
              ("bf16", "bf16", "bf16 products with fp32 sums; fails on a CPU without AVX512-BF16")]


class LediflowSettings(bpy.types.PropertyGroup):
    model_path: StringProperty(name="Model", subtype="FILE_PATH", default="",
                               description="lediflow model file (.safetensors); empty: the shipped sprite model")
    count: IntProperty(name="Count", default=8, min=1, max=MAX_IMAGES)
    seed: IntProperty(name="Seed", default=0, min=0)
    steps: IntProperty(name="Steps", default=4, min=1, max=64)
    tileable: BoolProperty(name="Tileable", default=False, description="Seamless tiles: edges wrap around")
    class_name: StringProperty(name="Class", default="",
                               description="A class-conditional model's class (empty: unconditional)")
    guidance: FloatProperty(name="Guidance", default=1.0, min=0.0, max=100.0,
                            description="Classifier-free guidance for the class (1: none)")
    precision: EnumProperty(name="Precision", items=PRECISIONS, default="fp32",
                            description="Arithmetic of the CPU's matrix products")


class LEDIFLOW_OT_generate(bpy.types.Operator):
    """Generate images with a lediflow model"""

    bl_idname = "lediflow.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}

    model_path: StringProperty(name="Model", subtype="FILE_PATH", default="")
    count: IntProperty(name="Count", default=8, min=1, max=MAX_IMAGES)
    seed: IntProperty(name="Seed", default=0, min=0)
    steps: IntProperty(name="Steps", default=4, min=1, max=10000)
    tileable: BoolProperty(name="Tileable", default=False)
    class_name: StringProperty(name="Class", default="", description="Empty: unconditional")
    guidance: FloatProperty(name="Guidance", default=1.0, min=0.0, max=100.0)
    precision: EnumProperty(name="Precision", items=PRECISIONS, default="fp32")

    def execute(self, context):
        try:
            model = model_for(self.model_path)
        except (OSError, lediflow.LediflowError) as e:
            self.report({"ERROR"}, f"lediflow: {e}")
            return {"CANCELLED"}
        wm = context.window_manager
        wm.progress_begin(0, 1)

        def progress(step, total):
            wm.progress_update(step / max(total, 1))
            return True

        try:
            images = model.sample(self.count, seed=self.seed, steps=self.steps, tileable=self.tileable,
                                  class_=self.class_name or None, guidance=self.guidance,
                                  precision=self.precision, progress=progress)
        except (lediflow.LediflowError, ValueError) as e:
            self.report({"ERROR"}, f"lediflow: {e}")
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        made = [store(f"lediflow_{self.seed}_{i}", img) for i, img in enumerate(images)]
        space = context.space_data
        if space is not None and space.type == "IMAGE_EDITOR":
            space.image = made[0]
        self.report({"INFO"}, f"lediflow: {len(made)} images, lediflow_{self.seed}_0 ...")
        return {"FINISHED"}


class LEDIFLOW_OT_make_material(bpy.types.Operator):
    """Make a pixel-art material from a generated image"""

    bl_idname = "lediflow.make_material"
    bl_label = "Make Material"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Image", default="")

    def execute(self, context):
        name = self.image_name
        if not name and context.space_data is not None and getattr(context.space_data, "image", None):
            name = context.space_data.image.name
        image = bpy.data.images.get(name)
        if image is None:
            self.report({"ERROR"}, f"lediflow: no image named {name!r}")
            return {"CANCELLED"}
        mat = bpy.data.materials.get(f"{image.name}_material") or bpy.data.materials.new(f"{image.name}_material")
        mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        nodes.clear()
        out = nodes.new("ShaderNodeOutputMaterial")
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        tex = nodes.new("ShaderNodeTexImage")
        tex.image, tex.interpolation = image, "Closest"  # crisp pixel art
        tex.location, bsdf.location, out.location = (-400, 0), (0, 0), (300, 0)
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        links.new(tex.outputs["Alpha"], bsdf.inputs["Alpha"])
        links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
        mat.blend_method = "CLIP"
        obj = context.active_object
        if obj is not None and obj.type == "MESH":
            if obj.data.materials:
                obj.data.materials[0] = mat
            else:
                obj.data.materials.append(mat)
        self.report({"INFO"}, f"lediflow: material {mat.name}")
        return {"FINISHED"}


class LEDIFLOW_PT_panel(bpy.types.Panel):
    bl_label = "lediflow"
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "lediflow"

    def draw(self, context):
        s = context.scene.lediflow
        col = self.layout.column()
        col.prop(s, "model_path")
        col.prop(s, "count")
        col.prop(s, "seed")
        col.prop(s, "steps")
        col.prop(s, "tileable")
        col.prop(s, "class_name")
        if s.class_name:
            col.prop(s, "guidance")
        col.prop(s, "precision")
        op = col.operator(LEDIFLOW_OT_generate.bl_idname, icon="IMAGE_DATA")
        op.model_path, op.count, op.seed, op.steps, op.tileable = s.model_path, s.count, s.seed, s.steps, s.tileable
        op.class_name, op.guidance, op.precision = s.class_name, s.guidance, s.precision
        image = getattr(context.space_data, "image", None)
        row = col.row()
        row.enabled = image is not None
        mat = row.operator(LEDIFLOW_OT_make_material.bl_idname, icon="MATERIAL")
        mat.image_name = image.name if image is not None else ""


CLASSES = (LediflowSettings, LEDIFLOW_OT_generate, LEDIFLOW_OT_make_material, LEDIFLOW_PT_panel)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.lediflow = PointerProperty(type=LediflowSettings)


def unregister():
    del bpy.types.Scene.lediflow
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    _models.clear()
