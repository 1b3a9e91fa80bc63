/*
 * Godot 3 GDNative library: the NativeScript class `Lediflow` (a Reference), so that a game can
 * generate sprites at run time.
 *
 *   var ldf = load("res://addons/lediflow/lediflow.gdns").new()
 *   if ldf.load_model("") != 0: push_error(ldf.last_error())   # "" = the model shipped in the add-on
 *   var images = ldf.sample(16, 7, 4)                            # Array of Image (FORMAT_RGBA8)
 *
 * Methods:
 *   load_model(path: String) -> int             0 = ok (res:// and user:// paths work, also in an
 *                                               exported game, where the file is read through File)
 *   last_error() -> String                      why the last call on this instance failed ("" after
 *                                               one that succeeded)
 *   sample(count, seed, steps) -> Array         image i is exactly image i of ldf_sample
 *   inpaint(image, mask, seed, steps) -> Image  regenerates the pixels where the mask is 128 or
 *                                               more (its first channel, or luminance), keeps the
 *                                               rest byte for byte; both the model's size
 *   interpolate(seed_from, seed_to, frames, steps) -> Array   ldf_interpolate_seeds (shared
 *                                               prior noise of seed_from)
 *   set_tileable(bool), set_solver(int)         options of the following calls (0 Euler,
 *                                               1 Midpoint (default), 2 Heun, 3 RK4)
 *   set_precision(name) -> int                  "fp32" (default), "bf16" (CPUs with AVX512-BF16:
 *                                               about 0.6x the time) or "auto" (bf16 where the
 *                                               CPU has it); info() says what the CPU offers
 *   classes() -> Array                          a class-conditional model's class names
 *   set_class(name or index) -> int             the class of the following calls ("" or -1:
 *                                               unconditional); set_guidance(float) its
 *                                               classifier-free guidance (1 = none)
 *   image_size() -> int, info() -> Dictionary   what the loaded model makes
 *   progress() -> float                         0..1 of the call running now, or of the last one
 *                                               (any thread)
 *   cancel()                                    stops the running call, or the next one if none
 *                                               has started yet (any thread); it returns an empty
 *                                               result and last_error() says "cancelled"
 * Failing calls return an empty Array or null and set last_error(); nothing crashes the game.
 * The generation methods may run on a Thread (see demo/) while the game calls progress() and
 * cancel() from its main thread. Run one generation at a time per instance (progress and
 * last_error describe that call); instances are independent.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#include <gdnative_api_struct.gen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lediflow.h"

#define GODOT_FORMAT_L8 0
#define GODOT_FORMAT_RGBA8 5
#define GODOT_FILE_READ 1
#define DEFAULT_MODEL "res://addons/lediflow/models/dcss-small-ledi.safetensors"
#define MAX_IMAGES 4096

static const godot_gdnative_core_api_struct *api = NULL;
static const godot_gdnative_ext_nativescript_api_struct *ns = NULL;

typedef struct {
  LdfModel *model;
  LdfModelInfo info;
  LdfCancel *cancel;
  atomic_uint step, total;
  atomic_int tileable, solver;
  atomic_uint precision; /* LDF_PRECISION_* */
  /* The class of the following calls (LDF_CLASS_NONE: unconditional) and its guidance. */
  atomic_uint class_id;
  _Atomic float guidance;
  /* last_error is per instance; the library's own message is per thread. */
  char error[1024];
} State;

/* ---------------------------------------------------------------------------------------------
 * Variant helpers. */

static godot_variant nil(void) {
  godot_variant v;
  api->godot_variant_new_nil(&v);
  return v;
}

static godot_variant from_int(int64_t x) {
  godot_variant v;
  api->godot_variant_new_int(&v, x);
  return v;
}

static godot_variant from_cstr(const char *s) {
  godot_string str = api->godot_string_chars_to_utf8(s);
  godot_variant v;
  api->godot_variant_new_string(&v, &str);
  api->godot_string_destroy(&str);
  return v;
}

/* A variant's text as a malloc'd UTF-8 string. */
static char *to_cstr(const godot_variant *v) {
  godot_string s = api->godot_variant_as_string(v);
  godot_char_string cs = api->godot_string_utf8(&s);
  const char *data = api->godot_char_string_get_data(&cs);
  char *out = strdup(data ? data : "");
  api->godot_char_string_destroy(&cs);
  api->godot_string_destroy(&s);
  return out;
}

/* self.method(args...) like GDScript; `ok` is cleared when the call itself fails. */
static godot_variant call(godot_variant *self, const char *method, int argc, const godot_variant **args, int *ok) {
  godot_string name = api->godot_string_chars_to_utf8(method);
  godot_variant_call_error err;
  godot_variant r = api->godot_variant_call(self, &name, args, argc, &err);
  api->godot_string_destroy(&name);
  if (err.error != GODOT_CALL_ERROR_CALL_OK && ok) *ok = 0;
  return r;
}

/* A new instance of a Godot class (nil if the class does not exist). */
static godot_variant new_object(const char *cls) {
  godot_class_constructor ctor = api->godot_get_class_constructor(cls);
  godot_variant v;
  if (!ctor) {
    api->godot_variant_new_nil(&v);
    return v;
  }
  api->godot_variant_new_object(&v, ctor());
  return v;
}

static void fail(State *s, const char *fmt, const char *detail) {
  snprintf(s->error, sizeof s->error, fmt, detail);
}

static int64_t arg_int(godot_variant **args, int n, int i, int64_t fallback) {
  return i < n ? api->godot_variant_as_int(args[i]) : fallback;
}

/* ---------------------------------------------------------------------------------------------
 * Images. */

/* An Image (FORMAT_RGBA8) from one image of the model's layout. */
static godot_variant image_from(const State *s, const uint8_t *px) {
  uint32_t w = s->info.width, h = s->info.height, c = s->info.channels;
  godot_pool_byte_array data;
  api->godot_pool_byte_array_new(&data);
  api->godot_pool_byte_array_resize(&data, (godot_int)(w * h * 4));
  godot_pool_byte_array_write_access *wa = api->godot_pool_byte_array_write(&data);
  uint8_t *dst = api->godot_pool_byte_array_write_access_ptr(wa);
  for (uint32_t i = 0; i < w * h; i++) {
    const uint8_t *p = px + (size_t)i * c;
    dst[4 * i + 0] = p[0];
    dst[4 * i + 1] = c >= 3 ? p[1] : p[0];
    dst[4 * i + 2] = c >= 3 ? p[2] : p[0];
    dst[4 * i + 3] = c == 4 ? p[3] : 255;
  }
  api->godot_pool_byte_array_write_access_destroy(wa);

  godot_variant img = new_object("Image");
  godot_variant a_w = from_int(w), a_h = from_int(h), a_mip, a_fmt = from_int(GODOT_FORMAT_RGBA8), a_data;
  api->godot_variant_new_bool(&a_mip, 0);
  api->godot_variant_new_pool_byte_array(&a_data, &data);
  const godot_variant *args[] = {&a_w, &a_h, &a_mip, &a_fmt, &a_data};
  godot_variant r = call(&img, "create_from_data", 5, args, NULL);
  api->godot_variant_destroy(&r);
  api->godot_variant_destroy(&a_data);
  api->godot_pool_byte_array_destroy(&data);
  return img;
}

/* The pixels of an Image argument, converted to `format` (a copy; the caller's image is left
 * alone), into `out` (`bpp` bytes per pixel); 0 with an error when it is not an Image of the
 * model's size. */
static int image_pixels(State *s, godot_variant *image, int64_t format, uint8_t *out, size_t bpp, const char *what) {
  if (api->godot_variant_get_type(image) != GODOT_VARIANT_TYPE_OBJECT) {
    fail(s, "%s is not an Image", what);
    return 0;
  }
  int ok = 1;
  godot_variant copy = new_object("Image");
  const godot_variant *a1[] = {image};
  godot_variant r = call(&copy, "copy_from", 1, a1, &ok);
  api->godot_variant_destroy(&r);
  if (!ok) {
    api->godot_variant_destroy(&copy);
    fail(s, "%s is not an Image", what);
    return 0;
  }
  godot_variant vw = call(&copy, "get_width", 0, NULL, &ok), vh = call(&copy, "get_height", 0, NULL, &ok);
  int64_t w = api->godot_variant_as_int(&vw), h = api->godot_variant_as_int(&vh);
  if (w != s->info.width || h != s->info.height) {
    char detail[128];
    snprintf(detail, sizeof detail, "%s is %lldx%lld pixels; the model makes %ux%u images", what, (long long)w,
             (long long)h, s->info.width, s->info.height);
    fail(s, "%s", detail);
    api->godot_variant_destroy(&copy);
    return 0;
  }
  godot_variant fmt = from_int(format);
  const godot_variant *a2[] = {&fmt};
  r = call(&copy, "convert", 1, a2, &ok);
  api->godot_variant_destroy(&r);
  godot_variant data = call(&copy, "get_data", 0, NULL, &ok);
  godot_pool_byte_array bytes = api->godot_variant_as_pool_byte_array(&data);
  size_t n = (size_t)api->godot_pool_byte_array_size(&bytes);
  if (!ok || n != (size_t)(w * h) * bpp) {
    fail(s, "%s could not be read as 8-bit pixels", what);
    ok = 0;
  } else {
    godot_pool_byte_array_read_access *ra = api->godot_pool_byte_array_read(&bytes);
    memcpy(out, api->godot_pool_byte_array_read_access_ptr(ra), n);
    api->godot_pool_byte_array_read_access_destroy(ra);
  }
  api->godot_pool_byte_array_destroy(&bytes);
  api->godot_variant_destroy(&data);
  api->godot_variant_destroy(&copy);
  return ok;
}

/* ---------------------------------------------------------------------------------------------
 * Calls into the library. */

static bool on_progress(uint32_t step, uint32_t total, void *user_data) {
  State *s = user_data;
  atomic_store(&s->total, total);
  atomic_store(&s->step, step);
  return true;
}

static int ready(State *s) {
  if (!s->model) {
    fail(s, "%s", "no model is loaded (call load_model first)");
    return 0;
  }
  return 1;
}

static LdfSampleParams params_for(State *s, int64_t seed, int64_t steps) {
  LdfSampleParams p;
  ldf_sample_params_init(&p);
  p.seed = (uint64_t)seed;
  p.steps = steps < 1 || steps > LDF_MAX_STEPS ? 0 : (uint32_t)steps; /* 0: refused by the library */
  p.solver = (LdfSolver)atomic_load(&s->solver);
  p.tileable = (uint32_t)atomic_load(&s->tileable);
  p.class_id = atomic_load(&s->class_id);
  p.guidance = atomic_load(&s->guidance);
  p.precision = atomic_load(&s->precision);
  p.progress = on_progress;
  p.user_data = s;
  p.cancel = s->cancel;
  atomic_store(&s->step, 0);
  atomic_store(&s->total, 1);
  return p;
}

/* After a library call: the instance's error, and the cancel token lowered for the next call
 * (a cancel() that came before this call started stopped this call, not a later one). */
static int check(State *s, LdfStatus status) {
  ldf_cancel_reset(s->cancel);
  if (status == LDF_OK) {
    s->error[0] = 0;
    return 1;
  }
  fail(s, "%s", ldf_last_error());
  return 0;
}

/* An Array of Images from `n` images of the model's layout. */
static godot_variant array_of(const State *s, const uint8_t *px, uint32_t n) {
  godot_array arr;
  api->godot_array_new(&arr);
  for (uint32_t i = 0; i < n; i++) {
    godot_variant img = image_from(s, px + (size_t)i * s->info.image_bytes);
    api->godot_array_append(&arr, &img);
    api->godot_variant_destroy(&img);
  }
  godot_variant v;
  api->godot_variant_new_array(&v, &arr);
  api->godot_array_destroy(&arr);
  return v;
}

static godot_variant empty_array(void) {
  godot_array arr;
  api->godot_array_new(&arr);
  godot_variant v;
  api->godot_variant_new_array(&v, &arr);
  api->godot_array_destroy(&arr);
  return v;
}

static uint8_t *alloc_images(State *s, int64_t n, size_t *len) {
  if (n < 1 || n > MAX_IMAGES) {
    char detail[64];
    snprintf(detail, sizeof detail, "%lld (it must be 1..%d)", (long long)n, MAX_IMAGES);
    fail(s, "count or frames is %s", detail);
    return NULL;
  }
  *len = (size_t)n * s->info.image_bytes;
  uint8_t *out = malloc(*len);
  if (!out) fail(s, "%s", "out of memory");
  return out;
}

/* ---------------------------------------------------------------------------------------------
 * Methods. */

#define METHOD(name)                                                                                          \
  static godot_variant name(godot_object *self, void *method_data, void *user_data, int n, godot_variant **args)
#define UNUSED (void)self, (void)method_data, (void)args, (void)n

/* The bytes of a res:// or user:// file through Godot's File (works inside an exported .pck). */
static uint8_t *read_godot_file(const char *path, size_t *len) {
  /* Scripts' File is the core class _File. */
  godot_variant file = new_object("_File"), p = from_cstr(path), mode = from_int(GODOT_FILE_READ);
  const godot_variant *a[] = {&p, &mode};
  int ok = 1;
  godot_variant r = call(&file, "open", 2, a, &ok);
  uint8_t *out = NULL;
  if (ok && api->godot_variant_as_int(&r) == 0) {
    godot_variant vl = call(&file, "get_len", 0, NULL, &ok);
    const godot_variant *a2[] = {&vl};
    godot_variant data = call(&file, "get_buffer", 1, a2, &ok);
    godot_pool_byte_array bytes = api->godot_variant_as_pool_byte_array(&data);
    *len = (size_t)api->godot_pool_byte_array_size(&bytes);
    if (ok && *len > 0 && (out = malloc(*len))) {
      godot_pool_byte_array_read_access *ra = api->godot_pool_byte_array_read(&bytes);
      memcpy(out, api->godot_pool_byte_array_read_access_ptr(ra), *len);
      api->godot_pool_byte_array_read_access_destroy(ra);
    }
    api->godot_pool_byte_array_destroy(&bytes);
    api->godot_variant_destroy(&data);
    godot_variant c = call(&file, "close", 0, NULL, NULL);
    api->godot_variant_destroy(&c);
  }
  api->godot_variant_destroy(&r);
  api->godot_variant_destroy(&p);
  api->godot_variant_destroy(&file);
  return out;
}

METHOD(m_load_model) {
  UNUSED;
  State *s = user_data;
  char *path = n > 0 ? to_cstr(args[0]) : strdup("");
  if (!*path) {
    free(path);
    path = strdup(DEFAULT_MODEL);
  }
  LdfModel *model = NULL;
  LdfStatus status;
  if (strncmp(path, "res://", 6) == 0 || strncmp(path, "user://", 7) == 0) {
    size_t len = 0;
    uint8_t *bytes = read_godot_file(path, &len);
    if (bytes) {
      status = ldf_model_load_from_memory(bytes, len, LDF_DEVICE_CPU, &model);
      free(bytes);
    } else {
      fail(s, "cannot read the model file %s", path);
      free(path);
      return from_int(LDF_ERR_IO);
    }
  } else {
    status = ldf_model_load(path, LDF_DEVICE_CPU, &model);
  }
  free(path);
  if (!check(s, status)) return from_int(status);
  LdfModelInfo info = {.struct_size = sizeof info};
  status = ldf_model_info(model, &info);
  if (!check(s, status)) {
    ldf_model_free(model);
    return from_int(status);
  }
  ldf_model_free(s->model);
  s->model = model;
  s->info = info;
  s->error[0] = 0;
  return from_int(LDF_OK);
}

METHOD(m_last_error) {
  UNUSED;
  return from_cstr(((State *)user_data)->error);
}

METHOD(m_sample) {
  UNUSED;
  State *s = user_data;
  if (!ready(s)) return empty_array();
  int64_t count = arg_int(args, n, 0, 1);
  size_t len;
  uint8_t *out = alloc_images(s, count, &len);
  if (!out) return empty_array();
  LdfSampleParams p = params_for(s, arg_int(args, n, 1, 0), arg_int(args, n, 2, 4));
  godot_variant r = check(s, ldf_sample(s->model, (uint32_t)count, &p, out, len)) ? array_of(s, out, (uint32_t)count)
                                                                                   : empty_array();
  free(out);
  return r;
}

METHOD(m_interpolate) {
  UNUSED;
  State *s = user_data;
  if (!ready(s)) return empty_array();
  int64_t from = arg_int(args, n, 0, 0), to = arg_int(args, n, 1, 1), frames = arg_int(args, n, 2, 8);
  size_t len;
  uint8_t *out = alloc_images(s, frames, &len);
  if (!out) return empty_array();
  LdfSampleParams p = params_for(s, from, arg_int(args, n, 3, 4));
  LdfStatus st = ldf_interpolate_seeds(s->model, (uint64_t)from, (uint64_t)to, (uint32_t)frames, &p, out, len);
  godot_variant r = check(s, st) ? array_of(s, out, (uint32_t)frames) : empty_array();
  free(out);
  return r;
}

METHOD(m_inpaint) {
  UNUSED;
  State *s = user_data;
  if (!ready(s)) return nil();
  if (n < 2) {
    fail(s, "%s", "inpaint(image, mask, seed, steps) needs an image and a mask");
    return nil();
  }
  size_t px_len = (size_t)s->info.width * s->info.height * 4, mask_len = s->info.mask_bytes;
  uint8_t *rgba = malloc(px_len), *mask = malloc(mask_len), *px = malloc(s->info.image_bytes);
  godot_variant r = nil();
  if (rgba && mask && px && image_pixels(s, args[0], GODOT_FORMAT_RGBA8, rgba, 4, "the image") &&
      image_pixels(s, args[1], GODOT_FORMAT_L8, mask, 1, "the mask")) {
    uint32_t c = s->info.channels;
    for (size_t i = 0; i < mask_len; i++) {
      mask[i] = mask[i] < 128 ? 1 : 0; /* white regenerates, black keeps; the library keeps non-zero */
      if (c == 1) px[i] = rgba[4 * i];
      else memcpy(px + i * c, rgba + 4 * i, c);
    }
    LdfSampleParams p = params_for(s, arg_int(args, n, 2, 0), arg_int(args, n, 3, 4));
    if (check(s, ldf_inpaint(s->model, px, mask, 1, &p, px, s->info.image_bytes))) {
      api->godot_variant_destroy(&r);
      r = image_from(s, px);
    }
  } else if (!(rgba && mask && px)) {
    fail(s, "%s", "out of memory");
  }
  free(rgba);
  free(mask);
  free(px);
  return r;
}

METHOD(m_set_tileable) {
  UNUSED;
  atomic_store(&((State *)user_data)->tileable, n > 0 && api->godot_variant_as_bool(args[0]));
  return nil();
}

METHOD(m_set_solver) {
  UNUSED;
  State *s = user_data;
  int64_t solver = arg_int(args, n, 0, LDF_SOLVER_MIDPOINT);
  if (solver < 0 || solver > 3) {
    fail(s, "%s", "the solver must be 0 (Euler), 1 (Midpoint), 2 (Heun) or 3 (RK4)");
    return from_int(LDF_ERR_INVALID_ARGUMENT);
  }
  atomic_store(&s->solver, (int)solver);
  return from_int(LDF_OK);
}

/* set_class(name or index; "" or -1: unconditional) -> int (0 = ok) */
METHOD(m_set_class) {
  UNUSED;
  State *s = user_data;
  if (n < 1 || api->godot_variant_get_type(args[0]) == GODOT_VARIANT_TYPE_NIL) {
    atomic_store(&s->class_id, LDF_CLASS_NONE);
    return from_int(LDF_OK);
  }
  uint32_t count = s->model ? s->info.class_count : 0;
  int64_t id = -1;
  if (api->godot_variant_get_type(args[0]) == GODOT_VARIANT_TYPE_STRING) {
    char *name = to_cstr(args[0]);
    if (!*name) {
      free(name);
      atomic_store(&s->class_id, LDF_CLASS_NONE);
      return from_int(LDF_OK);
    }
    for (uint32_t k = 0; k < count; k++)
      if (strcmp(ldf_model_class_name(s->model, k), name) == 0) id = k;
    if (id < 0) fail(s, "%s is not one of the model's classes (see classes())", name);
    free(name);
  } else {
    id = api->godot_variant_as_int(args[0]);
    if (id == -1) {
      atomic_store(&s->class_id, LDF_CLASS_NONE);
      return from_int(LDF_OK);
    }
    if (id < 0 || id >= (int64_t)count) {
      fail(s, "%s", count ? "the class index is out of range (see classes())" : "the model has no classes");
      id = -1;
    }
  }
  if (id < 0) return from_int(LDF_ERR_INVALID_ARGUMENT);
  atomic_store(&s->class_id, (uint32_t)id);
  return from_int(LDF_OK);
}

/* set_guidance(float): classifier-free guidance for the class (1 = none); checked by the calls. */
METHOD(m_set_guidance) {
  UNUSED;
  atomic_store(&((State *)user_data)->guidance, n > 0 ? (float)api->godot_variant_as_real(args[0]) : 1.0f);
  return nil();
}

/* set_precision(name) -> int: "fp32", "bf16" or "auto" for the following calls (a bf16 call on a
 * CPU without AVX512-BF16 then fails with the library's reason). */
METHOD(m_set_precision) {
  UNUSED;
  State *s = user_data;
  static const char *names[] = {"fp32", "bf16", "auto"};
  static const LdfPrecision codes[] = {LDF_PRECISION_FP32, LDF_PRECISION_BF16, LDF_PRECISION_AUTO};
  char *name = n > 0 && api->godot_variant_get_type(args[0]) == GODOT_VARIANT_TYPE_STRING ? to_cstr(args[0]) : NULL;
  for (int i = 0; name && i < 3; i++)
    if (strcmp(name, names[i]) == 0) {
      free(name);
      atomic_store(&s->precision, codes[i]);
      return from_int(LDF_OK);
    }
  free(name);
  fail(s, "%s", "the precision must be \"fp32\", \"bf16\" or \"auto\"");
  return from_int(LDF_ERR_INVALID_ARGUMENT);
}

/* classes() -> Array of String: the class names of a class-conditional model. */
METHOD(m_classes) {
  UNUSED;
  State *s = user_data;
  godot_array arr;
  api->godot_array_new(&arr);
  for (uint32_t k = 0; s->model && k < s->info.class_count; k++) {
    godot_variant v = from_cstr(ldf_model_class_name(s->model, k));
    api->godot_array_append(&arr, &v);
    api->godot_variant_destroy(&v);
  }
  godot_variant v;
  api->godot_variant_new_array(&v, &arr);
  api->godot_array_destroy(&arr);
  return v;
}

METHOD(m_image_size) {
  UNUSED;
  return from_int(((State *)user_data)->info.width);
}

/* d[key] = value; takes value. */
static void dict_put(godot_dictionary *d, const char *key, godot_variant value) {
  godot_variant k = from_cstr(key);
  api->godot_dictionary_set(d, &k, &value);
  api->godot_variant_destroy(&k);
  api->godot_variant_destroy(&value);
}

METHOD(m_info) {
  UNUSED;
  State *s = user_data;
  godot_dictionary d;
  api->godot_dictionary_new(&d);
  const char *keys[] = {"width", "height", "channels", "latent_dim", "prior", "parameters"};
  int64_t vals[] = {s->info.width, s->info.height, s->info.channels, s->info.latent_dim, s->info.prior,
                    (int64_t)s->info.parameters};
  for (int i = 0; i < 6 && s->model; i++) dict_put(&d, keys[i], from_int(vals[i]));
  /* What this CPU offers for bf16 now (LDF_CPU_* bits), and what "auto" runs. */
  LdfModelInfo now = {.struct_size = sizeof now};
  if (s->model && ldf_model_info(s->model, &now) == LDF_OK) {
    dict_put(&d, "cpu_features", from_int(now.cpu_features));
    dict_put(&d, "auto_precision", from_cstr(now.auto_precision == LDF_PRECISION_BF16 ? "bf16" : "fp32"));
  }
  godot_variant v;
  api->godot_variant_new_dictionary(&v, &d);
  api->godot_dictionary_destroy(&d);
  return v;
}

METHOD(m_progress) {
  UNUSED;
  State *s = user_data;
  unsigned total = atomic_load(&s->total), step = atomic_load(&s->step);
  godot_variant v;
  api->godot_variant_new_real(&v, total ? (double)step / total : 0.0);
  return v;
}

METHOD(m_cancel) {
  UNUSED;
  ldf_cancel_request(((State *)user_data)->cancel);
  return nil();
}

/* ---------------------------------------------------------------------------------------------
 * Registration. */

static void *create(godot_object *self, void *method_data) {
  (void)self, (void)method_data;
  State *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  atomic_store(&s->solver, LDF_SOLVER_MIDPOINT);
  atomic_store(&s->class_id, LDF_CLASS_NONE);
  atomic_store(&s->guidance, 1.0f);
  atomic_store(&s->precision, LDF_PRECISION_FP32);
  if (ldf_cancel_new(&s->cancel) != LDF_OK) s->cancel = NULL;
  return s;
}

static void destroy(godot_object *self, void *method_data, void *user_data) {
  (void)self, (void)method_data;
  State *s = user_data;
  if (!s) return;
  ldf_model_free(s->model);
  ldf_cancel_free(s->cancel);
  free(s);
}

void GDN_EXPORT godot_gdnative_init(godot_gdnative_init_options *options) {
  api = options->api_struct;
  for (unsigned i = 0; i < api->num_extensions; i++)
    if (api->extensions[i]->type == GDNATIVE_EXT_NATIVESCRIPT)
      ns = (const godot_gdnative_ext_nativescript_api_struct *)api->extensions[i];
}

void GDN_EXPORT godot_gdnative_terminate(godot_gdnative_terminate_options *options) {
  (void)options;
  api = NULL;
  ns = NULL;
}

void GDN_EXPORT godot_nativescript_init(void *handle) {
  godot_instance_create_func c = {create, NULL, NULL};
  godot_instance_destroy_func d = {destroy, NULL, NULL};
  ns->godot_nativescript_register_class(handle, "Lediflow", "Reference", c, d);
  struct {
    const char *name;
    godot_variant (*fn)(godot_object *, void *, void *, int, godot_variant **);
  } methods[] = {
      {"load_model", m_load_model}, {"last_error", m_last_error}, {"sample", m_sample},
      {"inpaint", m_inpaint},       {"interpolate", m_interpolate}, {"set_tileable", m_set_tileable},
      {"set_solver", m_set_solver}, {"image_size", m_image_size},  {"info", m_info},
      {"progress", m_progress},     {"cancel", m_cancel},          {"set_class", m_set_class},
      {"set_guidance", m_set_guidance}, {"classes", m_classes},   {"set_precision", m_set_precision},
  };
  godot_method_attributes attr = {GODOT_METHOD_RPC_MODE_DISABLED};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    godot_instance_method m = {methods[i].fn, NULL, NULL};
    ns->godot_nativescript_register_method(handle, "Lediflow", methods[i].name, attr, m);
  }
}
