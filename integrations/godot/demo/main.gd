# Generates a sheet of sprites at run time on a Thread (the game keeps drawing, the bar moves),
# then shows them scaled up. Space: a new batch (new seed); T: toggle seamless tiles; Esc: quit.
# Environment (optional): LDF_MODEL (path; default the model shipped in the add-on), LDF_SEED,
# LDF_COUNT, LDF_STEPS; LDF_SCREENSHOT=FILE.png saves the window once the sprites show, and quits.
extends Node2D

const COLUMNS := 8
const SCALE := 3

var ldf
var worker
var seed_value := 0
var tileable := false
var sprites := []
var screenshot_in := -1  # frames until the screenshot (LDF_SCREENSHOT)


func _ready():
	ldf = load("res://addons/lediflow/lediflow.gdns").new()
	if ldf.load_model(OS.get_environment("LDF_MODEL")) != 0:
		$Status.text = "lediflow: " + ldf.last_error()
		push_error($Status.text)
		return
	worker = preload("res://addons/lediflow/lediflow_worker.gd").new(ldf)
	seed_value = int(OS.get_environment("LDF_SEED")) if OS.has_environment("LDF_SEED") else 0
	generate()


func generate():
	var count = int(OS.get_environment("LDF_COUNT")) if OS.has_environment("LDF_COUNT") else 24
	var steps = int(OS.get_environment("LDF_STEPS")) if OS.has_environment("LDF_STEPS") else 4
	ldf.set_tileable(tileable)
	if worker.start_sample(count, seed_value, steps) != OK:
		return
	$Status.text = "generating %d sprites (seed %d%s)..." % [count, seed_value, ", tileable" if tileable else ""]


func _process(_delta):
	if screenshot_in > 0:
		screenshot_in -= 1
		if screenshot_in == 0:
			var shot = get_viewport().get_texture().get_data()
			shot.flip_y()  # Godot 3 reads the framebuffer bottom row first
			shot.save_png(OS.get_environment("LDF_SCREENSHOT"))
			get_tree().quit()
	if worker == null:
		return
	$Progress.value = worker.progress()
	if worker.is_done():
		show_sprites(worker.finish())


func show_sprites(images):
	for s in sprites:
		s.queue_free()
	sprites.clear()
	if images == null or images.empty():
		$Status.text = "lediflow: " + ldf.last_error()
		return
	var size = ldf.image_size() * SCALE
	for i in range(images.size()):
		var tex := ImageTexture.new()
		tex.create_from_image(images[i], 0)  # no filtering: crisp pixel art
		var s := Sprite.new()
		s.texture = tex
		s.centered = false
		s.scale = Vector2(SCALE, SCALE)
		s.position = Vector2(16 + (i % COLUMNS) * (size + 4), 64 + (i / COLUMNS) * (size + 4))
		add_child(s)
		sprites.append(s)
	$Status.text = "seed %d%s: %d sprites. Space: new seed, T: tileable, Esc: quit" % [
		seed_value, ", tileable" if tileable else "", images.size()]
	if OS.has_environment("LDF_SCREENSHOT") and screenshot_in < 0:
		screenshot_in = 3


func _unhandled_input(event):
	if event is InputEventKey and event.pressed and not event.echo:
		if event.scancode == KEY_ESCAPE:
			get_tree().quit()
		elif event.scancode == KEY_SPACE and worker != null and not worker.is_busy():
			seed_value += 1
			generate()
		elif event.scancode == KEY_T and worker != null and not worker.is_busy():
			tileable = not tileable
			generate()
