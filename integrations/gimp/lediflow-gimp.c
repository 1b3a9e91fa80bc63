/*
 * GIMP 2.10 plug-in: sprite generation with lediflow.
 *
 * Procedures (Procedural Database; run-mode first, as every GIMP plug-in):
 *   plug-in-lediflow-sample       (run-mode, model, count, seed, steps) -> image
 *       A new RGBA image of the model's size with `count` layers; the bottom layer is image 0,
 *       layer i exactly image i of ldf_sample(count, seed, steps).
 *   plug-in-lediflow-inpaint      (run-mode, image, drawable, model, seed, steps)
 *       Regenerates the selected part of the drawable (selection value 128 and above); the rest
 *       comes back byte for byte. The drawable must be the model's size.
 *   plug-in-lediflow-interpolate  (run-mode, model, seed-from, seed-to, frames, steps) -> image
 *       An animation strip: one layer per frame of ldf_interpolate_seeds.
 *   plug-in-lediflow-sample-class (run-mode, model, class, guidance, count, seed, steps) -> image
 *       plug-in-lediflow-sample for one class of a class-conditional model (by name; "" means
 *       unconditional), with classifier-free guidance (1 = none).
 * An empty model string means the model installed next to the plug-in. Seeds are INT32 in the
 * PDB and reach the library as their 32-bit unsigned value. Every other parameter is the
 * library's default, except the solver, which the interactive dialog offers.
 *
 * Interactive use shows a dialog (model file, the numbers, solver; remembered between runs),
 * then runs the library on a worker thread while GIMP's progress bar and a Cancel button stay
 * live: Cancel raises the call's cancel token and nothing is changed.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0
 */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <string.h>
#include <unistd.h>

#include "lediflow.h"

#define PROC_SAMPLE "plug-in-lediflow-sample"
#define PROC_INPAINT "plug-in-lediflow-inpaint"
#define PROC_INTERPOLATE "plug-in-lediflow-interpolate"
#define PROC_SAMPLE_CLASS "plug-in-lediflow-sample-class"
#define DATA_KEY "plug-in-lediflow-settings"
#define DEFAULT_MODEL_FILE "dcss-small-ledi.safetensors"
#define MAX_LAYERS 1024

typedef struct {
  gchar model[4096];
  gint count, seed, seed_to, frames, steps, solver;
  gchar klass[256]; /* a class-conditional model's class ("": unconditional) */
  gdouble guidance;
} Settings;

static void query(void);
static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals,
                GimpParam **return_vals);

const GimpPlugInInfo PLUG_IN_INFO = {NULL, NULL, query, run};

MAIN()

static void query(void) {
  static const GimpParamDef sample_args[] = {
      {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
      {GIMP_PDB_STRING, "model", "Model file (.safetensors); empty: the model installed with the plug-in"},
      {GIMP_PDB_INT32, "count", "Number of sprites (layers), 1..1024"},
      {GIMP_PDB_INT32, "seed", "Seed: sprite i depends only on (seed, i)"},
      {GIMP_PDB_INT32, "steps", "Solver steps (4 is the library's default)"},
  };
  static const GimpParamDef image_ret[] = {{GIMP_PDB_IMAGE, "image", "The new image"}};
  static const GimpParamDef inpaint_args[] = {
      {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
      {GIMP_PDB_IMAGE, "image", "Input image"},
      {GIMP_PDB_DRAWABLE, "drawable", "Drawable to inpaint (the model's size)"},
      {GIMP_PDB_STRING, "model", "Model file (.safetensors); empty: the model installed with the plug-in"},
      {GIMP_PDB_INT32, "seed", "Seed"},
      {GIMP_PDB_INT32, "steps", "Solver steps"},
  };
  static const GimpParamDef interpolate_args[] = {
      {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
      {GIMP_PDB_STRING, "model", "Model file (.safetensors); empty: the model installed with the plug-in"},
      {GIMP_PDB_INT32, "seed-from", "Seed of the first frame"},
      {GIMP_PDB_INT32, "seed-to", "Seed of the last frame"},
      {GIMP_PDB_INT32, "frames", "Number of frames (layers), 1..1024"},
      {GIMP_PDB_INT32, "steps", "Solver steps"},
  };

  gimp_install_procedure(PROC_SAMPLE, "Generate sprites with a lediflow model",
                         "Samples COUNT images from a LeDiFlow model into a new image, one layer each "
                         "(bottom layer: image 0). Image i depends only on (seed, i).",
                         "lediflow", "MIT OR Apache-2.0", "2026", "_Sprites (lediflow)...", NULL, GIMP_PLUGIN,
                         G_N_ELEMENTS(sample_args), G_N_ELEMENTS(image_ret), sample_args, image_ret);
  gimp_plugin_menu_register(PROC_SAMPLE, "<Image>/File/Create");

  gimp_install_procedure(PROC_INPAINT, "Regenerate the selection with a lediflow model",
                         "Fills the selected pixels of a drawable of the model's size with new content that "
                         "fits the rest; pixels whose selection value is below 128 are kept byte for byte.",
                         "lediflow", "MIT OR Apache-2.0", "2026", "_Inpaint selection (lediflow)...", "RGB*, GRAY*",
                         GIMP_PLUGIN, G_N_ELEMENTS(inpaint_args), 0, inpaint_args, NULL);
  gimp_plugin_menu_register(PROC_INPAINT, "<Image>/Filters/Render");

  gimp_install_procedure(PROC_INTERPOLATE, "Animate between two seeds with a lediflow model",
                         "Renders FRAMES images walking from the sprite of SEED-FROM to that of SEED-TO, one "
                         "layer per frame (an animation strip).",
                         "lediflow", "MIT OR Apache-2.0", "2026", "Sprite _animation (lediflow)...", NULL,
                         GIMP_PLUGIN, G_N_ELEMENTS(interpolate_args), G_N_ELEMENTS(image_ret), interpolate_args,
                         image_ret);
  gimp_plugin_menu_register(PROC_INTERPOLATE, "<Image>/File/Create");

  static const GimpParamDef sample_class_args[] = {
      {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
      {GIMP_PDB_STRING, "model", "Model file (.safetensors); empty: the model installed with the plug-in"},
      {GIMP_PDB_STRING, "class", "Class name of a class-conditional model; empty: unconditional"},
      {GIMP_PDB_FLOAT, "guidance", "Classifier-free guidance scale, 0..100 (1 = none)"},
      {GIMP_PDB_INT32, "count", "Number of sprites (layers), 1..1024"},
      {GIMP_PDB_INT32, "seed", "Seed: sprite i depends only on (seed, i)"},
      {GIMP_PDB_INT32, "steps", "Solver steps (4 is the library's default)"},
  };
  gimp_install_procedure(PROC_SAMPLE_CLASS, "Generate sprites of one class with a lediflow model",
                         "As plug-in-lediflow-sample, for one class of a class-conditional model and a "
                         "classifier-free guidance scale.",
                         "lediflow", "MIT OR Apache-2.0", "2026", NULL, NULL, GIMP_PLUGIN,
                         G_N_ELEMENTS(sample_class_args), G_N_ELEMENTS(image_ret), sample_class_args, image_ret);
}

/* ---------------------------------------------------------------------------------------------
 * Errors: the PDB's error message (the second return value of a failed call). */

static GimpParam values[2];
static gchar error_text[1024];

static GimpPDBStatusType fail(gint *nreturn_vals, const gchar *fmt, ...) G_GNUC_PRINTF(2, 3);

static GimpPDBStatusType fail(gint *nreturn_vals, const gchar *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_vsnprintf(error_text, sizeof error_text, fmt, ap);
  va_end(ap);
  values[1].type = GIMP_PDB_STRING;
  values[1].data.d_string = error_text;
  *nreturn_vals = 2;
  return GIMP_PDB_EXECUTION_ERROR;
}

/* ---------------------------------------------------------------------------------------------
 * Models: the file given, or the one build.sh installed beside the plug-in. */

static gchar *default_model_path(void) {
  gchar *exe = g_file_read_link("/proc/self/exe", NULL);
  if (!exe) return g_strdup(DEFAULT_MODEL_FILE);
  gchar *dir = g_path_get_dirname(exe);
  gchar *path = g_build_filename(dir, "models", DEFAULT_MODEL_FILE, NULL);
  g_free(dir);
  g_free(exe);
  return path;
}

static LdfModel *load_model(const gchar *path, LdfModelInfo *info, gchar *err, gsize err_len) {
  gchar *chosen = (path && *path) ? g_strdup(path) : default_model_path();
  LdfModel *model = NULL;
  if (ldf_model_load(chosen, LDF_DEVICE_CPU, &model) != LDF_OK) {
    g_snprintf(err, err_len, "lediflow: cannot load the model %s: %s", chosen, ldf_last_error());
    g_free(chosen);
    return NULL;
  }
  g_free(chosen);
  info->struct_size = sizeof *info;
  if (ldf_model_info(model, info) != LDF_OK) {
    g_snprintf(err, err_len, "lediflow: %s", ldf_last_error());
    ldf_model_free(model);
    return NULL;
  }
  return model;
}

/* The id of class `klass` ("" = LDF_CLASS_NONE) of `model`; FALSE with a message naming the
 * model's classes when it has no such class. */
static gboolean class_id_of(const LdfModel *model, const LdfModelInfo *info, const gchar *klass, uint32_t *id,
                            gchar *err, gsize err_len) {
  *id = LDF_CLASS_NONE;
  if (!*klass) return TRUE;
  GString *names = g_string_new(NULL);
  for (uint32_t k = 0; k < info->class_count; k++) {
    const char *name = ldf_model_class_name(model, k);
    if (strcmp(name, klass) == 0) *id = k;
    g_string_append_printf(names, "%s%s", k ? ", " : "", name);
  }
  gboolean ok = *id != LDF_CLASS_NONE;
  if (!ok)
    g_snprintf(err, err_len, "lediflow: the model has no class \"%s\" (its classes: %s)", klass,
               info->class_count ? names->str : "none, it is unconditional");
  g_string_free(names, TRUE);
  return ok;
}

static const Babl *format_of(uint32_t channels) {
  switch (channels) {
  case 1: return babl_format("Y' u8");
  case 3: return babl_format("R'G'B' u8");
  default: return babl_format("R'G'B'A u8");
  }
}

/* ---------------------------------------------------------------------------------------------
 * A library call on a worker thread; the main thread keeps GIMP's progress bar (and, when
 * interactive, a dialog with a Cancel button) live. */

typedef enum { JOB_SAMPLE, JOB_INPAINT, JOB_INTERPOLATE } JobKind;

typedef struct {
  JobKind kind;
  const LdfModel *model;
  LdfSampleParams params;
  uint32_t count;
  uint64_t seed_from, seed_to;
  const uint8_t *pixels, *mask;
  uint8_t *out;
  size_t out_len;
  LdfStatus status;
  gchar error[1024];
  volatile gint step, total, done;
  GMainLoop *loop;
  GtkWidget *bar;
  const gchar *what;
  gboolean interactive;
} Job;

static bool on_progress(uint32_t step, uint32_t total, void *user_data) {
  Job *job = user_data;
  g_atomic_int_set(&job->total, (gint)total);
  g_atomic_int_set(&job->step, (gint)step);
  return true;
}

static gpointer job_thread(gpointer data) {
  Job *job = data;
  switch (job->kind) {
  case JOB_SAMPLE:
    job->status = ldf_sample(job->model, job->count, &job->params, job->out, job->out_len);
    break;
  case JOB_INPAINT:
    job->status = ldf_inpaint(job->model, job->pixels, job->mask, 1, &job->params, job->out, job->out_len);
    break;
  case JOB_INTERPOLATE:
    job->status = ldf_interpolate_seeds(job->model, job->seed_from, job->seed_to, job->count, &job->params,
                                        job->out, job->out_len);
    break;
  }
  if (job->status != LDF_OK) g_strlcpy(job->error, ldf_last_error(), sizeof job->error);
  g_atomic_int_set(&job->done, 1);
  return NULL;
}

static gboolean job_poll(gpointer data) {
  Job *job = data;
  gint total = g_atomic_int_get(&job->total);
  gdouble fraction = total > 0 ? (gdouble)g_atomic_int_get(&job->step) / total : 0.0;
  gimp_progress_update(fraction);
  if (job->bar && total > 0) {
    gchar text[128];
    g_snprintf(text, sizeof text, "%s: step %d of %d", job->what, g_atomic_int_get(&job->step), total);
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(job->bar), text);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(job->bar), fraction);
  }
  if (g_atomic_int_get(&job->done)) {
    g_main_loop_quit(job->loop);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static void on_cancel(GtkDialog *dialog, gint response, gpointer data) {
  (void)dialog;
  (void)response;
  ldf_cancel_request(data);
}

/* Runs the job; returns its status (LDF_ERR_CANCELLED when the user pressed Cancel). */
static LdfStatus run_job(Job *job, const gchar *what) {
  LdfCancel *cancel = NULL;
  if (ldf_cancel_new(&cancel) != LDF_OK) {
    g_strlcpy(job->error, ldf_last_error(), sizeof job->error);
    return LDF_ERR_INTERNAL;
  }
  job->params.progress = on_progress;
  job->params.user_data = job;
  job->params.cancel = cancel;
  job->loop = g_main_loop_new(NULL, FALSE);
  GtkWidget *dialog = NULL;
  if (job->interactive) {
    dialog = gimp_dialog_new(what, "lediflow-progress", NULL, 0, NULL, NULL, "_Cancel", GTK_RESPONSE_CANCEL, NULL);
    gtk_window_set_default_size(GTK_WINDOW(dialog), 360, -1);
    GtkWidget *box = gtk_vbox_new(FALSE, 0);
    gtk_container_set_border_width(GTK_CONTAINER(box), 12);
    job->bar = gtk_progress_bar_new();
    job->what = what;
    gtk_progress_bar_set_text(GTK_PROGRESS_BAR(job->bar), what);
    gtk_box_pack_start(GTK_BOX(box), job->bar, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), box, TRUE, TRUE, 0);
    g_signal_connect(dialog, "response", G_CALLBACK(on_cancel), cancel);
    gtk_widget_show_all(dialog);
  }
  gimp_progress_init(what);
  GThread *thread = g_thread_new("lediflow", job_thread, job);
  g_timeout_add(50, job_poll, job);
  g_main_loop_run(job->loop);
  g_thread_join(thread);
  gimp_progress_end();
  if (dialog) gtk_widget_destroy(dialog);
  g_main_loop_unref(job->loop);
  ldf_cancel_free(cancel);
  return job->status;
}

/* ---------------------------------------------------------------------------------------------
 * The interactive dialog. */

typedef struct {
  GtkWidget *chooser, *count, *seed, *seed_to, *frames, *steps, *solver, *klass, *guidance;
  gint classes; /* entries of `klass` after "none" */
} Widgets;

/* Fills the class list from the chosen model's classes, selecting `want` when it has it. */
static void fill_classes(Widgets *w, const gchar *want) {
  for (; w->classes >= 0; w->classes--) gtk_combo_box_text_remove(GTK_COMBO_BOX_TEXT(w->klass), w->classes);
  w->classes = 0;
  gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(w->klass), "none (unconditional)");
  gint active = 0;
  gchar *file = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(w->chooser));
  LdfModel *model = NULL;
  LdfModelInfo info = {.struct_size = sizeof info};
  if (file && ldf_model_load(file, LDF_DEVICE_CPU, &model) == LDF_OK && ldf_model_info(model, &info) == LDF_OK) {
    for (uint32_t k = 0; k < info.class_count; k++) {
      const char *name = ldf_model_class_name(model, k);
      gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(w->klass), name);
      w->classes++;
      if (want && strcmp(name, want) == 0) active = w->classes;
    }
  }
  ldf_model_free(model);
  g_free(file);
  gtk_combo_box_set_active(GTK_COMBO_BOX(w->klass), active);
  gtk_widget_set_sensitive(w->klass, w->classes > 0);
  gtk_widget_set_sensitive(w->guidance, w->classes > 0);
}

static void on_model_chosen(GtkFileChooserButton *button, gpointer data) {
  (void)button;
  fill_classes(data, NULL);
}

static GtkWidget *spin(GtkWidget *table, gint row, const gchar *label, gint value, gint lo, gint hi) {
  GtkWidget *text = gtk_label_new_with_mnemonic(label);
  gtk_misc_set_alignment(GTK_MISC(text), 0.0, 0.5);
  gtk_table_attach(GTK_TABLE(table), text, 0, 1, row, row + 1, GTK_FILL, GTK_FILL, 0, 0);
  GtkWidget *button = gtk_spin_button_new_with_range(lo, hi, 1);
  gtk_spin_button_set_value(GTK_SPIN_BUTTON(button), CLAMP(value, lo, hi));
  gtk_label_set_mnemonic_widget(GTK_LABEL(text), button);
  gtk_table_attach(GTK_TABLE(table), button, 1, 2, row, row + 1, GTK_EXPAND | GTK_FILL, GTK_FILL, 0, 0);
  return button;
}

static gboolean settings_dialog(const gchar *proc, Settings *s) {
  gboolean sample = strcmp(proc, PROC_SAMPLE) == 0 || strcmp(proc, PROC_SAMPLE_CLASS) == 0;
  gboolean interp = strcmp(proc, PROC_INTERPOLATE) == 0;
  const gchar *title = sample ? "Sprites (lediflow)" : interp ? "Sprite animation (lediflow)" : "Inpaint (lediflow)";
  gimp_ui_init("lediflow", FALSE);
  GtkWidget *dialog = gimp_dialog_new(title, "lediflow", NULL, 0, gimp_standard_help_func, proc, "_Cancel",
                                      GTK_RESPONSE_CANCEL, "_OK", GTK_RESPONSE_OK, NULL);
  gtk_window_set_default_size(GTK_WINDOW(dialog), 420, -1);
  GtkWidget *box = gtk_vbox_new(FALSE, 8);
  gtk_container_set_border_width(GTK_CONTAINER(box), 12);
  gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), box, TRUE, TRUE, 0);

  Widgets w = {0};
  GtkWidget *row = gtk_hbox_new(FALSE, 8);
  gtk_box_pack_start(GTK_BOX(row), gtk_label_new("Model"), FALSE, FALSE, 0);
  w.chooser = gtk_file_chooser_button_new("Choose a lediflow model", GTK_FILE_CHOOSER_ACTION_OPEN);
  GtkFileFilter *filter = gtk_file_filter_new();
  gtk_file_filter_set_name(filter, "lediflow models (*.safetensors)");
  gtk_file_filter_add_pattern(filter, "*.safetensors");
  gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(w.chooser), filter);
  gchar *initial = *s->model ? g_strdup(s->model) : default_model_path();
  gtk_file_chooser_set_filename(GTK_FILE_CHOOSER(w.chooser), initial);
  g_free(initial);
  gtk_box_pack_start(GTK_BOX(row), w.chooser, TRUE, TRUE, 0);
  gtk_box_pack_start(GTK_BOX(box), row, FALSE, FALSE, 0);

  GtkWidget *table = gtk_table_new(4, 2, FALSE);
  gtk_table_set_col_spacings(GTK_TABLE(table), 6);
  gtk_table_set_row_spacings(GTK_TABLE(table), 4);
  gtk_box_pack_start(GTK_BOX(box), table, FALSE, FALSE, 0);
  gint r = 0;
  if (sample) w.count = spin(table, r++, "_Count", s->count, 1, MAX_LAYERS);
  w.seed = spin(table, r++, interp ? "Seed _from" : "_Seed", s->seed, 0, G_MAXINT);
  if (interp) {
    w.seed_to = spin(table, r++, "Seed _to", s->seed_to, 0, G_MAXINT);
    w.frames = spin(table, r++, "_Frames", s->frames, 1, MAX_LAYERS);
  }
  w.steps = spin(table, r++, "S_teps", s->steps, 1, 64);

  row = gtk_hbox_new(FALSE, 8);
  gtk_box_pack_start(GTK_BOX(row), gtk_label_new("Solver"), FALSE, FALSE, 0);
  w.solver = gtk_combo_box_text_new();
  const gchar *names[] = {"Euler (1 evaluation per step)", "Midpoint (2)", "Heun (2)", "RK4 (4)"};
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(w.solver), names[i]);
  gtk_combo_box_set_active(GTK_COMBO_BOX(w.solver), s->solver);
  gtk_box_pack_start(GTK_BOX(row), w.solver, TRUE, TRUE, 0);
  gtk_box_pack_start(GTK_BOX(box), row, FALSE, FALSE, 0);

  /* A class-conditional model's class, and the classifier-free guidance for it. */
  row = gtk_hbox_new(FALSE, 8);
  gtk_box_pack_start(GTK_BOX(row), gtk_label_new("Class"), FALSE, FALSE, 0);
  w.klass = gtk_combo_box_text_new();
  gtk_box_pack_start(GTK_BOX(row), w.klass, TRUE, TRUE, 0);
  gtk_box_pack_start(GTK_BOX(row), gtk_label_new("Guidance"), FALSE, FALSE, 0);
  w.guidance = gtk_spin_button_new_with_range(0.0, 100.0, 0.1);
  gtk_spin_button_set_digits(GTK_SPIN_BUTTON(w.guidance), 1);
  gtk_spin_button_set_value(GTK_SPIN_BUTTON(w.guidance), s->guidance);
  gtk_box_pack_start(GTK_BOX(row), w.guidance, FALSE, FALSE, 0);
  gtk_box_pack_start(GTK_BOX(box), row, FALSE, FALSE, 0);
  w.classes = -1;
  fill_classes(&w, s->klass);
  g_signal_connect(w.chooser, "file-set", G_CALLBACK(on_model_chosen), &w);

  gtk_widget_show_all(dialog);
  gboolean ok = gimp_dialog_run(GIMP_DIALOG(dialog)) == GTK_RESPONSE_OK;
  if (ok) {
    gchar *file = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(w.chooser));
    g_strlcpy(s->model, file ? file : "", sizeof s->model);
    g_free(file);
    if (w.count) s->count = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(w.count));
    s->seed = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(w.seed));
    if (w.seed_to) s->seed_to = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(w.seed_to));
    if (w.frames) s->frames = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(w.frames));
    s->steps = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(w.steps));
    s->solver = gtk_combo_box_get_active(GTK_COMBO_BOX(w.solver));
    gint k = gtk_combo_box_get_active(GTK_COMBO_BOX(w.klass));
    gchar *klass = k > 0 ? gtk_combo_box_text_get_active_text(GTK_COMBO_BOX_TEXT(w.klass)) : NULL;
    g_strlcpy(s->klass, klass ? klass : "", sizeof s->klass);
    g_free(klass);
    s->guidance = gtk_spin_button_get_value(GTK_SPIN_BUTTON(w.guidance));
  }
  gtk_widget_destroy(dialog);
  return ok;
}

/* ---------------------------------------------------------------------------------------------
 * The procedures. */

/* A new image of `n` layers from `pixels` (n images back to back), bottom layer first. */
static gint32 image_from(const uint8_t *pixels, uint32_t n, const LdfModelInfo *info, const gchar *prefix) {
  gint32 image = gimp_image_new((gint)info->width, (gint)info->height, info->channels == 1 ? GIMP_GRAY : GIMP_RGB);
  gimp_image_undo_disable(image);
  GimpImageType type = info->channels == 1 ? GIMP_GRAYA_IMAGE : GIMP_RGBA_IMAGE;
  for (uint32_t i = 0; i < n; i++) {
    gchar name[64];
    g_snprintf(name, sizeof name, "%s %u", prefix, i);
    gint32 layer = gimp_layer_new(image, name, (gint)info->width, (gint)info->height, type, 100.0,
                                  GIMP_LAYER_MODE_NORMAL);
    gimp_image_insert_layer(image, layer, 0, 0);
    GeglBuffer *buffer = gimp_drawable_get_buffer(layer);
    gegl_buffer_set(buffer, GEGL_RECTANGLE(0, 0, (gint)info->width, (gint)info->height), 0,
                    format_of(info->channels), pixels + (size_t)i * info->image_bytes, GEGL_AUTO_ROWSTRIDE);
    g_object_unref(buffer);
  }
  gimp_image_undo_enable(image);
  return image;
}

static LdfSampleParams params_for(const Settings *s, uint32_t class_id) {
  LdfSampleParams p;
  ldf_sample_params_init(&p);
  p.seed = (uint64_t)(uint32_t)s->seed;
  p.steps = (uint32_t)s->steps;
  p.solver = (LdfSolver)s->solver;
  p.class_id = class_id;
  p.guidance = (float)s->guidance;
  return p;
}

static GimpPDBStatusType do_generate(const gchar *name, const Settings *s, gboolean interactive, gint *nreturn_vals) {
  gboolean sample = strcmp(name, PROC_SAMPLE) == 0 || strcmp(name, PROC_SAMPLE_CLASS) == 0;
  uint32_t n = (uint32_t)(sample ? s->count : s->frames);
  if (n < 1 || n > MAX_LAYERS)
    return fail(nreturn_vals, "lediflow: %s is %d; it must be 1..%d (one layer each)", sample ? "count" : "frames",
                (gint)n, MAX_LAYERS);
  LdfModelInfo info;
  gchar err[1024];
  LdfModel *model = load_model(s->model, &info, err, sizeof err);
  if (!model) return fail(nreturn_vals, "%s", err);
  uint32_t class_id;
  if (!class_id_of(model, &info, s->klass, &class_id, err, sizeof err)) {
    ldf_model_free(model);
    return fail(nreturn_vals, "%s", err);
  }
  Job job = {0};
  job.kind = sample ? JOB_SAMPLE : JOB_INTERPOLATE;
  job.model = model;
  job.params = params_for(s, class_id);
  job.count = n;
  job.seed_from = (uint64_t)(uint32_t)s->seed;
  job.seed_to = (uint64_t)(uint32_t)s->seed_to;
  job.interactive = interactive;
  job.out_len = (size_t)n * info.image_bytes;
  job.out = g_malloc(job.out_len);
  LdfStatus status = run_job(&job, sample ? "Sampling sprites" : "Rendering frames");
  GimpPDBStatusType result = GIMP_PDB_SUCCESS;
  if (status == LDF_OK) {
    gint32 image = image_from(job.out, n, &info, sample ? "lediflow" : "frame");
    values[1].type = GIMP_PDB_IMAGE;
    values[1].data.d_image = image;
    *nreturn_vals = 2;
    if (interactive) gimp_display_new(image);
  } else if (status == LDF_ERR_CANCELLED) {
    result = GIMP_PDB_CANCEL;
  } else {
    result = fail(nreturn_vals, "lediflow: %s", job.error);
  }
  g_free(job.out);
  ldf_model_free(model);
  return result;
}

static GimpPDBStatusType do_inpaint(gint32 image, gint32 drawable, const Settings *s, gboolean interactive,
                                    gint *nreturn_vals) {
  LdfModelInfo info;
  gchar err[1024];
  LdfModel *model = load_model(s->model, &info, err, sizeof err);
  if (!model) return fail(nreturn_vals, "%s", err);
  uint32_t class_id;
  if (!class_id_of(model, &info, s->klass, &class_id, err, sizeof err)) {
    ldf_model_free(model);
    return fail(nreturn_vals, "%s", err);
  }
  gint w = gimp_drawable_width(drawable), h = gimp_drawable_height(drawable);
  GimpPDBStatusType result = GIMP_PDB_SUCCESS;
  if ((guint)w != info.width || (guint)h != info.height) {
    result = fail(nreturn_vals,
                  "lediflow: the drawable is %dx%d pixels but the model makes %ux%u images; scale or crop the "
                  "layer to %ux%u first",
                  w, h, info.width, info.height, info.width, info.height);
    ldf_model_free(model);
    return result;
  }
  if (gimp_selection_is_empty(image)) {
    ldf_model_free(model);
    return fail(nreturn_vals, "lediflow: nothing is selected; select the part of the layer to regenerate");
  }
  const Babl *format = format_of(info.channels);
  uint8_t *pixels = g_malloc(info.image_bytes), *out = g_malloc(info.image_bytes), *mask = g_malloc(info.mask_bytes);
  GeglBuffer *buffer = gimp_drawable_get_buffer(drawable);
  gegl_buffer_get(buffer, GEGL_RECTANGLE(0, 0, w, h), 1.0, format, pixels, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref(buffer);

  /* The selection covers the image; the drawable may sit at an offset in it. */
  gint ox = 0, oy = 0;
  gimp_drawable_offsets(drawable, &ox, &oy);
  gint32 selection = gimp_image_get_selection(image);
  GeglBuffer *sel = gimp_drawable_get_buffer(selection);
  const Babl *sel_format = gimp_drawable_get_format(selection);
  if (babl_format_get_bytes_per_pixel(sel_format) != 1) sel_format = babl_format("Y u8");
  gegl_buffer_get(sel, GEGL_RECTANGLE(ox, oy, w, h), 1.0, sel_format, mask, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref(sel);
  for (size_t i = 0; i < info.mask_bytes; i++) mask[i] = mask[i] < 128 ? 1 : 0; /* non-zero = keep */

  Job job = {0};
  job.kind = JOB_INPAINT;
  job.model = model;
  job.params = params_for(s, class_id);
  job.pixels = pixels;
  job.mask = mask;
  job.out = out;
  job.out_len = info.image_bytes;
  job.interactive = interactive;
  LdfStatus status = run_job(&job, "Inpainting");
  if (status == LDF_OK) {
    /* The result already keeps the unselected pixels exactly; merging through the (soft)
     * selection would blend partly selected ones with the old pixels. So the selection is set
     * aside while the result is merged in, and restored: one undo step in all. */
    gimp_image_undo_group_start(image);
    gint32 saved = gimp_selection_save(image);
    gimp_selection_none(image);
    GeglBuffer *shadow = gimp_drawable_get_shadow_buffer(drawable);
    gegl_buffer_set(shadow, GEGL_RECTANGLE(0, 0, w, h), 0, format, out, GEGL_AUTO_ROWSTRIDE);
    gegl_buffer_flush(shadow);
    g_object_unref(shadow);
    gimp_drawable_merge_shadow(drawable, TRUE);
    gimp_drawable_update(drawable, 0, 0, w, h);
    gimp_image_select_item(image, GIMP_CHANNEL_OP_REPLACE, saved);
    gimp_image_remove_channel(image, saved);
    gimp_image_undo_group_end(image);
    if (interactive) gimp_displays_flush();
  } else if (status == LDF_ERR_CANCELLED) {
    result = GIMP_PDB_CANCEL;
  } else {
    result = fail(nreturn_vals, "lediflow: %s", job.error);
  }
  g_free(pixels);
  g_free(out);
  g_free(mask);
  ldf_model_free(model);
  return result;
}

static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals,
                GimpParam **return_vals) {
  *nreturn_vals = 1;
  *return_vals = values;
  values[0].type = GIMP_PDB_STATUS;
  gegl_init(NULL, NULL);

  GimpRunMode mode = nparams > 0 ? (GimpRunMode)param[0].data.d_int32 : GIMP_RUN_NONINTERACTIVE;
  Settings s = {.count = 16, .seed = 0, .seed_to = 1, .frames = 8, .steps = 4, .solver = LDF_SOLVER_MIDPOINT,
                .guidance = 1.0};
  gimp_get_data(DATA_KEY, &s); /* the last interactive run's values, if any */
  gboolean inpaint = strcmp(name, PROC_INPAINT) == 0;
  gboolean by_class = strcmp(name, PROC_SAMPLE_CLASS) == 0;
  gint expected = by_class ? 7 : inpaint || strcmp(name, PROC_INTERPOLATE) == 0 ? 6 : 5;
  GimpPDBStatusType status = GIMP_PDB_SUCCESS;

  if (mode == GIMP_RUN_INTERACTIVE) {
    if (!settings_dialog(name, &s)) {
      values[0].data.d_status = GIMP_PDB_CANCEL;
      return;
    }
    gimp_set_data(DATA_KEY, &s, sizeof s);
  } else if (mode == GIMP_RUN_NONINTERACTIVE) {
    if (nparams != expected) {
      values[0].data.d_status = fail(nreturn_vals, "lediflow: %s takes %d arguments, got %d", name, expected, nparams);
      return;
    }
    s.solver = LDF_SOLVER_MIDPOINT;
    s.klass[0] = 0;
    s.guidance = 1.0;
    if (by_class) {
      g_strlcpy(s.model, param[1].data.d_string ? param[1].data.d_string : "", sizeof s.model);
      g_strlcpy(s.klass, param[2].data.d_string ? param[2].data.d_string : "", sizeof s.klass);
      s.guidance = param[3].data.d_float;
      s.count = param[4].data.d_int32;
      s.seed = param[5].data.d_int32;
      s.steps = param[6].data.d_int32;
    } else if (inpaint) {
      g_strlcpy(s.model, param[3].data.d_string ? param[3].data.d_string : "", sizeof s.model);
      s.seed = param[4].data.d_int32;
      s.steps = param[5].data.d_int32;
    } else if (strcmp(name, PROC_SAMPLE) == 0) {
      g_strlcpy(s.model, param[1].data.d_string ? param[1].data.d_string : "", sizeof s.model);
      s.count = param[2].data.d_int32;
      s.seed = param[3].data.d_int32;
      s.steps = param[4].data.d_int32;
    } else {
      g_strlcpy(s.model, param[1].data.d_string ? param[1].data.d_string : "", sizeof s.model);
      s.seed = param[2].data.d_int32;
      s.seed_to = param[3].data.d_int32;
      s.frames = param[4].data.d_int32;
      s.steps = param[5].data.d_int32;
    }
  } /* GIMP_RUN_WITH_LAST_VALS: the remembered settings */

  if (s.steps < 1 || s.steps > LDF_MAX_STEPS) {
    values[0].data.d_status = fail(nreturn_vals, "lediflow: steps is %d; it must be 1..%d", s.steps, LDF_MAX_STEPS);
    return;
  }
  gboolean interactive = mode == GIMP_RUN_INTERACTIVE;
  if (inpaint)
    status = do_inpaint(param[1].data.d_image, param[2].data.d_drawable, &s, interactive, nreturn_vals);
  else
    status = do_generate(name, &s, interactive, nreturn_vals);
  values[0].data.d_status = status;
}
