# Runs inside godot3-server (tests/hosts/godot_test.py copies it into a project that has the add-on
# installed): drives the Lediflow NativeScript class and writes PNGs for the outer test.
#   godot3-server --path PROJECT -s res://godot_test.gd   (LDF_OUT, LDF_MODEL in the environment)
extends SceneTree


func check(ok: bool, what: String) -> bool:
	if not ok:
		printerr("godot_test: FAILED: " + what)
	return ok


func _init():
	quit(0 if run() else 1)


func run() -> bool:
	var out = OS.get_environment("LDF_OUT")
	var model = OS.get_environment("LDF_MODEL")
	var ldf = load("res://addons/lediflow/lediflow.gdns").new()
	if not check(ldf.sample(1, 0, 1).empty(), "sample without a model returned images"):
		return false
	if not check(ldf.load_model(out + "/missing.safetensors") != 0, "a missing model loaded"):
		return false
	if not check("missing.safetensors" in ldf.last_error(), "no reason for a missing model: " + ldf.last_error()):
		return false
	if not check(ldf.load_model(model) == 0, "load_model: " + ldf.last_error()):
		return false
	# The shipped model knows five classes: an unknown one is refused, "" is unconditional.
	if not check(ldf.classes() == ["floor", "wall", "feature", "item", "creature"] and ldf.set_class("dragon") != 0 and ldf.set_class("") == 0, "classes: " + str(ldf.classes())):
		return false

	var images = ldf.sample(3, 5, 2)
	if not check(images.size() == 3, "sample(3, 5, 2): " + ldf.last_error()):
		return false
	for i in range(3):
		if not check(images[i].get_format() == Image.FORMAT_RGBA8, "not FORMAT_RGBA8"):
			return false
		images[i].save_png("%s/sample-%d.png" % [out, i])
	# Precision: an unknown name is refused; "auto" is what the library's auto gives here.
	if not check(ldf.set_precision("half") != 0 and "auto" in ldf.last_error(), "set_precision(\"half\"): " + ldf.last_error()):
		return false
	var info = ldf.info()
	if not check(info["auto_precision"] in ["fp32", "bf16"] and info.has("cpu_features"), "info(): " + str(info)):
		return false
	if not check(ldf.set_precision("auto") == 0, "set_precision(\"auto\")"):
		return false
	var fast = ldf.sample(3, 5, 2)
	if not check(fast.size() == 3, "auto sample: " + ldf.last_error()):
		return false
	for i in range(3):
		fast[i].save_png("%s/auto-%d.png" % [out, i])
	ldf.set_precision("fp32")

	# The model shipped in the add-on, read through res:// (as in an exported game).
	if not check(ldf.load_model("") == 0, "load_model(\"\"): " + ldf.last_error()):
		return false
	var frames = ldf.interpolate(9, 4, 4, 2)
	if not check(frames.size() == 4, "interpolate: " + ldf.last_error()):
		return false
	for i in range(4):
		frames[i].save_png("%s/frame-%d.png" % [out, i])

	# Inpainting with a mask whose grey level grows from left to right (threshold at 128).
	var source = ldf.sample(1, 11, 2)[0]
	var mask = Image.new()
	mask.create(32, 32, false, Image.FORMAT_L8)
	mask.lock()
	for y in range(32):
		for x in range(32):
			var v = x / 31.0 if y >= 8 and y < 24 else 0.0
			mask.set_pixel(x, y, Color(v, v, v))
	mask.unlock()
	source.save_png(out + "/before.png")
	mask.save_png(out + "/mask.png")
	var after = ldf.inpaint(source, mask, 13, 2)
	if not check(after != null, "inpaint: " + ldf.last_error()):
		return false
	after.save_png(out + "/after.png")
	var small = Image.new()
	small.create(20, 20, false, Image.FORMAT_RGBA8)
	if not check(ldf.inpaint(small, mask, 1, 2) == null, "a 20x20 image was inpainted"):
		return false
	if not check("20x20" in ldf.last_error(), "no reason for the wrong size: " + ldf.last_error()):
		return false

	# A class-conditional model: a class by name with guidance, then an unknown one.
	var cm = load("res://addons/lediflow/lediflow.gdns").new()
	if not check(cm.load_model(OS.get_environment("LDF_CLASS_MODEL")) == 0, "class model: " + cm.last_error()):
		return false
	if not check(cm.classes() == ["dark", "light"], "classes(): " + str(cm.classes())):
		return false
	if not check(cm.set_class("light") == 0 and cm.set_class("green") != 0, "set_class"):
		return false
	cm.set_guidance(2.0)
	var lit = cm.sample(2, 5, 2)
	if not check(lit.size() == 2, "class sample: " + cm.last_error()):
		return false
	lit[1].save_png(out + "/class-1.png")

	# On a Thread, with progress, then cancelled from this thread.
	var worker = load("res://addons/lediflow/lediflow_worker.gd").new(ldf)
	if not check(worker.start_sample(8, 3, 2) == OK, "start_sample"):
		return false
	var seen = 0.0
	while not worker.is_done():
		seen = max(seen, worker.progress())
		OS.delay_msec(2)
	var threaded = worker.finish()
	if not check(threaded.size() == 8 and worker.progress() == 1.0, "threaded sample: " + ldf.last_error()):
		return false
	threaded[7].save_png(out + "/thread-7.png")
	worker.start_sample(256, 1, 16)
	# Until the call is part-way (before it starts, progress() still reads 1.0 from the last one).
	while not (worker.progress() > 0.0 and worker.progress() < 1.0) and not worker.is_done():
		OS.delay_msec(1)
	worker.cancel()
	var cancelled = worker.finish()
	if not check(cancelled.empty() and "cancel" in ldf.last_error(), "cancel: " + ldf.last_error()):
		return false
	if not check(ldf.sample(1, 5, 2).size() == 1, "the instance is unusable after a cancel"):
		return false
	print("godot_test: done (progress seen while running: %.2f)" % seen)
	var f = File.new()
	f.open(out + "/done", File.WRITE)
	f.store_string("ok")
	f.close()
	return true
