# Runs a Lediflow call on a Thread so the game keeps drawing frames; poll progress() and
# is_done() from _process, then finish() for the result.
#
#     var worker = preload("res://addons/lediflow/lediflow_worker.gd").new(ldf)
#     worker.start_sample(16, rng_seed, 4)
#     ...  # in _process: bar.value = worker.progress(); if worker.is_done(): var images = worker.finish()
extends Reference

var lediflow
var _thread := Thread.new()
var _mutex := Mutex.new()
var _busy := false
var _done := false


func _init(instance):
	lediflow = instance


func start_sample(count: int, rng_seed: int, steps: int) -> int:
	return _start("sample", [count, rng_seed, steps])


func start_interpolate(seed_from: int, seed_to: int, frames: int, steps: int) -> int:
	return _start("interpolate", [seed_from, seed_to, frames, steps])


func start_inpaint(image: Image, mask: Image, rng_seed: int, steps: int) -> int:
	return _start("inpaint", [image, mask, rng_seed, steps])


# 0..1 of the running call.
func progress() -> float:
	return lediflow.progress()


# Whether a call was started and not finished yet.
func is_busy() -> bool:
	return _busy


# Whether the started call has returned (finish() then does not block).
func is_done() -> bool:
	_mutex.lock()
	var done = _busy and _done
	_mutex.unlock()
	return done


# Stops the running call; finish() then returns an empty result and lediflow.last_error() says why.
func cancel() -> void:
	lediflow.cancel()


# Waits for the call and returns its result (an Array of Image, or an Image, or null).
func finish():
	if not _busy:
		return null
	var result = _thread.wait_to_finish()
	_mutex.lock()
	_busy = false
	_done = false
	_mutex.unlock()
	return result


func _start(method: String, args: Array) -> int:
	if _busy:
		return ERR_BUSY
	_mutex.lock()
	_busy = true
	_done = false
	_mutex.unlock()
	var err = _thread.start(self, "_run", [method, args])
	if err != OK:
		_busy = false
	return err


func _run(job):
	var result = lediflow.callv(job[0], job[1])
	_mutex.lock()
	_done = true
	_mutex.unlock()
	return result
