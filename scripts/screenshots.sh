#!/usr/bin/env bash
# Retakes the README's pictures of the host integrations under Xvfb (a virtual X display):
# docs/gimp-dialog.png (the plug-in's dialog), docs/blender-panel.png (the add-on's sidebar panel)
# and docs/godot-demo.png (integrations/godot/demo). Needs xvfb, x11-apps, netpbm and xdotool,
# plus gimp, blender and godot3 (Debian). The library comes from target/release.
#   scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export LEDIFLOW_LIB_DIR=$ROOT/target/release
[ -f "$LEDIFLOW_LIB_DIR/liblediflow.so" ] || cargo build --release --lib
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "== GIMP dialog"
bash integrations/gimp/build.sh "$TMP/gimp/plug-ins" > /dev/null
xvfb-run -a -s "-screen 0 1024x768x24" bash -c '
    GIMP2_DIRECTORY='"$TMP"'/gimp gimp-console-2.10 -i -d -f -n \
        -b "(plug-in-lediflow-sample RUN-INTERACTIVE \"\" 16 7 4)" -b "(gimp-quit 0)" > /dev/null 2>&1 &
    for _ in $(seq 1 90); do
        id=$(xdotool search --name "Sprites \(lediflow\)" 2>/dev/null | head -1 || true)
        [ -n "$id" ] && break
        sleep 1
    done
    sleep 2
    xwd -id "$id" -silent | xwdtopnm 2>/dev/null | pnmtopng > '"$ROOT"'/docs/gimp-dialog.png
    xdotool key --window "$id" Escape
    sleep 2
    kill %1 2>/dev/null || true'

echo "== Blender panel"
bash integrations/blender/build.sh "$TMP/blender/addons" > /dev/null
cat > "$TMP/blender.py" <<'PY'
import addon_utils
import bpy

addon_utils.enable("lediflow_blender", default_set=True)


def editor():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    return win, area, [r for r in area.regions if r.type == "WINDOW"][0]


def setup():
    editor()[1].type = "IMAGE_EDITOR"
    win, area, region = editor()
    s = bpy.context.scene.lediflow
    s.count, s.seed, s.steps = 8, 3, 4
    with bpy.context.temp_override(window=win, area=area, region=region):
        bpy.ops.lediflow.generate(model_path="", count=8, seed=3, steps=4)
    area.spaces.active.show_region_ui = True
    area.spaces.active.image = bpy.data.images["lediflow_3_0"]
    bpy.app.timers.register(zoom, first_interval=1.0)


def zoom():
    win, area, region = editor()
    with bpy.context.temp_override(window=win, area=area, region=region):
        bpy.ops.image.view_zoom_ratio(ratio=12)


bpy.app.timers.register(setup, first_interval=1.0)
PY
xvfb-run -a -s "-screen 0 1280x720x24 +extension GLX" bash -c '
    PATH=/usr/bin:$PATH BLENDER_USER_SCRIPTS='"$TMP"'/blender blender --factory-startup --python '"$TMP"'/blender.py \
        > /dev/null 2>&1 &
    sleep 8
    xdotool mousemove 640 200 click 1    # dismisses the splash screen
    sleep 2
    xdotool mousemove 1044 295 click 1   # the sidebar tab "lediflow"
    sleep 2
    xwd -root -silent | xwdtopnm 2>/dev/null | pnmtopng > '"$ROOT"'/docs/blender-panel.png
    kill %1'

echo "== Godot demo"
bash integrations/godot/build.sh integrations/godot/demo > /dev/null
(cd integrations/godot/demo && LDF_SCREENSHOT="$ROOT/docs/godot-demo.png" \
    xvfb-run -a -s "-screen 0 1024x768x24 +extension GLX" godot3 --path . > /dev/null 2>&1)
ls -l docs/gimp-dialog.png docs/blender-panel.png docs/godot-demo.png
