/* Exercises every function of include/lediflow.h from C, as a host would: every status code,
 * bad arguments, cancellation, threads, batching invariance, inpainting's exact kept pixels.
 * Built by tests/c/run.sh with -Wall -Wextra -Werror -fsanitize=address,undefined.
 * Usage: abi_test <learned-prior model> <gaussian-prior model> */
#define _POSIX_C_SOURCE 200112L /* setenv */
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lediflow.h"

static int failures = 0;
static int checks = 0;

#define EXPECT(cond)                                                                  \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, ldf_last_error());                                         \
        }                                                                             \
    } while (0)

/* The call must return `want`, and a failure must come with a message. */
#define EXPECT_STATUS(call, want)                                                          \
    do {                                                                                   \
        LdfStatus got_ = (call);                                                           \
        checks++;                                                                          \
        if (got_ != (want)) {                                                              \
            failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n",      \
                    __FILE__, __LINE__, #call, ldf_status_str(got_), ldf_status_str(want), \
                    ldf_last_error());                                                     \
        } else if ((want) != LDF_OK && ldf_last_error()[0] == '\0') {                      \
            failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__, #call); \
        }                                                                                  \
    } while (0)

static LdfModel *model;    /* learned prior */
static LdfModel *gaussian; /* Gaussian prior */
static LdfModelInfo info;

static LdfSampleParams params(uint64_t seed) {
    LdfSampleParams p;
    ldf_sample_params_init(&p);
    p.seed = seed;
    p.steps = 2;
    return p;
}

static void test_version(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", LDF_VERSION_MAJOR, LDF_VERSION_MINOR, LDF_VERSION_PATCH);
    EXPECT(strcmp(ldf_version(), want) == 0);
    EXPECT(ldf_abi_version() == LDF_ABI_VERSION);
}

static void test_status_strings(void) {
    const LdfStatus all[] = {LDF_OK, LDF_ERR_INVALID_ARGUMENT, LDF_ERR_IO, LDF_ERR_FORMAT,
                             LDF_ERR_UNSUPPORTED, LDF_ERR_CANCELLED, LDF_ERR_OUT_OF_MEMORY,
                             LDF_ERR_INTERNAL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = ldf_status_str(all[i]);
        EXPECT(s != NULL && strncmp(s, "LDF_", 4) == 0);
        for (size_t j = 0; j < i; j++) EXPECT(strcmp(s, ldf_status_str(all[j])) != 0);
    }
    EXPECT(strcmp(ldf_status_str(12345), "unknown status") == 0);
    EXPECT(strcmp(ldf_status_str(-1), "unknown status") == 0);
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_load(const char *learned_path, const char *gaussian_path) {
    LdfModel *m = (LdfModel *)0x1;
    EXPECT_STATUS(ldf_model_load(NULL, LDF_DEVICE_CPU, &m), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(m == NULL); /* *out is cleared on failure */
    EXPECT_STATUS(ldf_model_load(learned_path, LDF_DEVICE_CPU, NULL), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_model_load("", LDF_DEVICE_CPU, &m), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_model_load("/nonexistent/model.safetensors", LDF_DEVICE_CPU, &m), LDF_ERR_IO);
    EXPECT(strstr(ldf_last_error(), "/nonexistent/model.safetensors") != NULL);
    EXPECT_STATUS(ldf_model_load(learned_path, 7, &m), LDF_ERR_INVALID_ARGUMENT);
    /* This test runs without a GPU (and usually without the cuda feature). */
    EXPECT(ldf_device_available(LDF_DEVICE_CPU) == LDF_OK);
    if (ldf_device_available(LDF_DEVICE_CUDA) != LDF_OK) {
        EXPECT_STATUS(ldf_device_available(LDF_DEVICE_CUDA), LDF_ERR_UNSUPPORTED);
        EXPECT_STATUS(ldf_model_load(learned_path, LDF_DEVICE_CUDA, &m), LDF_ERR_UNSUPPORTED);
        EXPECT(m == NULL);
    }
    EXPECT_STATUS(ldf_device_available(99), LDF_ERR_INVALID_ARGUMENT);

    /* From memory: garbage is a format error; a truncated file too; the real bytes load. */
    const unsigned char garbage[] = "definitely not a safetensors file";
    EXPECT_STATUS(ldf_model_load_from_memory(garbage, sizeof garbage, LDF_DEVICE_CPU, &m), LDF_ERR_FORMAT);
    EXPECT_STATUS(ldf_model_load_from_memory(NULL, 10, LDF_DEVICE_CPU, &m), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_model_load_from_memory(garbage, 0, LDF_DEVICE_CPU, &m), LDF_ERR_INVALID_ARGUMENT);
    size_t len = 0;
    unsigned char *bytes = read_file(learned_path, &len);
    EXPECT(bytes != NULL);
    if (bytes) {
        EXPECT_STATUS(ldf_model_load_from_memory(bytes, len / 2, LDF_DEVICE_CPU, &m), LDF_ERR_FORMAT);
        EXPECT_STATUS(ldf_model_load_from_memory(bytes, len, LDF_DEVICE_CPU, &m), LDF_OK);
        free(bytes); /* the model keeps no reference to the buffer */
        LdfModelInfo i = {.struct_size = sizeof i};
        EXPECT_STATUS(ldf_model_info(m, &i), LDF_OK);
        EXPECT(i.width > 0);
        ldf_model_free(m);
    }
    ldf_model_free(NULL);

    EXPECT_STATUS(ldf_model_load(learned_path, LDF_DEVICE_CPU, &model), LDF_OK);
    EXPECT_STATUS(ldf_model_load(gaussian_path, LDF_DEVICE_CPU, &gaussian), LDF_OK);
    EXPECT(ldf_last_error()[0] == '\0'); /* a successful call clears it */
}

static void test_info(void) {
    LdfModelInfo i = {.struct_size = sizeof i};
    EXPECT_STATUS(ldf_model_info(NULL, &i), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_model_info(model, NULL), LDF_ERR_INVALID_ARGUMENT);
    i.struct_size = 3;
    EXPECT_STATUS(ldf_model_info(model, &i), LDF_ERR_INVALID_ARGUMENT);
    i.struct_size = sizeof i + 64; /* from a "newer header" than the library */
    EXPECT_STATUS(ldf_model_info(model, &i), LDF_ERR_INVALID_ARGUMENT);
    info.struct_size = sizeof info;
    EXPECT_STATUS(ldf_model_info(model, &info), LDF_OK);
    EXPECT(info.prior == LDF_PRIOR_LEARNED);
    EXPECT(info.width == info.height && info.width >= 8);
    EXPECT(info.channels == 1 || info.channels == 3 || info.channels == 4);
    EXPECT(info.latent_dim > 0);
    EXPECT(info.image_bytes == (size_t)info.width * info.height * info.channels);
    EXPECT(info.latent_bytes == info.latent_dim * sizeof(float));
    EXPECT(info.mask_bytes == (size_t)info.width * info.height);
    EXPECT(info.parameters > 0 && info.format_version >= 1);

    EXPECT(info.time_shift == 1.0); /* the shipped LeDiFlow file recommends none */

    LdfModelInfo g = {.struct_size = sizeof g};
    EXPECT_STATUS(ldf_model_info(gaussian, &g), LDF_OK);
    EXPECT(g.prior == LDF_PRIOR_GAUSSIAN && g.latent_dim == 0 && g.latent_bytes == 0);
    EXPECT(g.time_shift == 3.0); /* the shipped baseline's file recommends 3 */
    /* A caller compiled against the first header gets the fields it knows, and nothing is
     * written past its struct_size. */
    LdfModelInfo old;
    memset(&old, 0xAB, sizeof old);
    old.struct_size = offsetof(LdfModelInfo, time_shift);
    EXPECT_STATUS(ldf_model_info(gaussian, &old), LDF_OK);
    EXPECT(old.parameters == g.parameters);
    unsigned char untouched[sizeof old.time_shift];
    memset(untouched, 0xAB, sizeof untouched);
    EXPECT(memcmp(&old.time_shift, untouched, sizeof untouched) == 0);
}

static void test_params(void) {
    LdfSampleParams p;
    memset(&p, 0xAB, sizeof p);
    ldf_sample_params_init(&p);
    EXPECT(p.struct_size == sizeof p);
    EXPECT(p.steps == 4 && p.solver == LDF_SOLVER_MIDPOINT && p.prior_scale == 1.0f);
    EXPECT(p.seed == 0 && p.first_index == 0 && p.progress == NULL && p.cancel == NULL);
    EXPECT(p.batch_size == 0 && p.interpolation == LDF_INTERPOLATION_LINEAR);
    EXPECT(p.time_shift == 0.0); /* the model's recommendation */
    EXPECT(p.tileable == 0 && p.reserved == 0);
    /* Every field starts where the previous one ends: no padding an older caller left unset. */
    EXPECT(offsetof(LdfSampleParams, tileable) == offsetof(LdfSampleParams, time_shift) + sizeof(double));
    EXPECT(offsetof(LdfSampleParams, class_id) == offsetof(LdfSampleParams, reserved) + sizeof(uint32_t));
    EXPECT(offsetof(LdfSampleParams, precision) == offsetof(LdfSampleParams, guidance) + sizeof(float));
    EXPECT(sizeof(LdfSampleParams) == offsetof(LdfSampleParams, reserved2) + sizeof(uint32_t));
    EXPECT(p.class_id == LDF_CLASS_NONE && p.guidance == 1.0f);
    EXPECT(p.precision == LDF_PRECISION_FP32 && p.reserved2 == 0);
    (ldf_sample_params_init)(NULL);
    /* The function behind the macro (what a host built against the first header calls) writes
     * only the first published layout, and says so in struct_size. */
    LdfSampleParams v1;
    memset(&v1, 0xAB, sizeof v1);
    (ldf_sample_params_init)(&v1);
    EXPECT(v1.struct_size == offsetof(LdfSampleParams, time_shift));
    EXPECT(v1.steps == 4 && v1.batch_size == 0);
    const unsigned char *tail = (const unsigned char *)&v1 + offsetof(LdfSampleParams, time_shift);
    int untouched = 1;
    for (size_t k = 0; k < sizeof v1 - offsetof(LdfSampleParams, time_shift); k++) untouched &= tail[k] == 0xAB;
    EXPECT(untouched);
    /* The sized function refuses sizes it does not know, and NULL, writing nothing. */
    memset(&v1, 0xAB, sizeof v1);
    EXPECT_STATUS(ldf_sample_params_init_sized(&v1, 8), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample_params_init_sized(&v1, sizeof v1 + 8), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample_params_init_sized(NULL, sizeof v1), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(v1.struct_size == 0xABABABABu);
    EXPECT_STATUS(ldf_sample_params_init_sized(&v1, sizeof v1), LDF_OK);
    EXPECT(v1.struct_size == sizeof v1 && v1.tileable == 0 && v1.time_shift == 0.0);

    size_t n = info.image_bytes;
    unsigned char *out = malloc(n);
    LdfSampleParams bad;
#define BAD_PARAM(field, value)                                                   \
    bad = params(1);                                                              \
    bad.field = value;                                                            \
    EXPECT_STATUS(ldf_sample(model, 1, &bad, out, n), LDF_ERR_INVALID_ARGUMENT);
    BAD_PARAM(struct_size, 0)
    BAD_PARAM(struct_size, offsetof(LdfSampleParams, time_shift) - 4)
    BAD_PARAM(struct_size, sizeof(LdfSampleParams) + 8)
    BAD_PARAM(steps, 0)
    BAD_PARAM(steps, 1000000)
    BAD_PARAM(solver, 4)
    BAD_PARAM(solver, 0xFFFFFFFFu)
    BAD_PARAM(latent_solver, 17)
    BAD_PARAM(latent_steps, 0)
    BAD_PARAM(prior_scale, NAN)
    BAD_PARAM(prior_scale, INFINITY)
    BAD_PARAM(prior_scale, -1.0f)
    BAD_PARAM(interpolation, 2)
    BAD_PARAM(batch_size, 100000)
    BAD_PARAM(inpaint_candidates, 1u << 20)
    BAD_PARAM(time_shift, NAN)
    BAD_PARAM(time_shift, -1.0)
    BAD_PARAM(time_shift, 0.001)
    BAD_PARAM(time_shift, 1000.0)
    BAD_PARAM(first_index, UINT64_MAX) /* would wrap onto image 0's noise stream */
    BAD_PARAM(first_index, (1ull << 48) + 1)
#undef BAD_PARAM
    /* A caller compiled against the first header (struct_size up to batch_size) gets the
     * default time_shift: the library does not read past its struct_size. */
    LdfSampleParams old = params(1);
    old.struct_size = offsetof(LdfSampleParams, time_shift);
    old.time_shift = NAN;
    EXPECT_STATUS(ldf_sample(model, 1, &old, out, n), LDF_OK);
    /* One compiled before `tileable` gets plain images whatever lies beyond its struct. */
    unsigned char *plain = malloc(n), *older = malloc(n);
    LdfSampleParams before = params(1);
    EXPECT_STATUS(ldf_sample(model, 1, &before, plain, n), LDF_OK);
    before.struct_size = offsetof(LdfSampleParams, tileable);
    before.tileable = 1;
    EXPECT_STATUS(ldf_sample(model, 1, &before, older, n), LDF_OK);
    EXPECT(memcmp(plain, older, n) == 0);
    free(plain);
    free(older);
    /* A shifted grid samples too, and differs; 0 takes the model's recommendation, which for a
     * file without one is 1 (equal steps). */
    LdfSampleParams shifted = params(1);
    shifted.time_shift = 3.0;
    EXPECT_STATUS(ldf_sample(model, 1, &shifted, out, n), LDF_OK);
    unsigned char *out_equal = malloc(n), *out_model = malloc(n);
    LdfSampleParams equal = params(1), model_default = params(1);
    equal.time_shift = 1.0;
    model_default.time_shift = 0.0;
    EXPECT_STATUS(ldf_sample(model, 1, &equal, out_equal, n), LDF_OK);
    EXPECT_STATUS(ldf_sample(model, 1, &model_default, out_model, n), LDF_OK);
    EXPECT(memcmp(out_equal, out_model, n) == 0);
    EXPECT(memcmp(out_equal, out, n) != 0);
    free(out_equal);
    free(out_model);
    /* Every solver works. */
    const LdfSolver solvers[] = {LDF_SOLVER_EULER, LDF_SOLVER_MIDPOINT, LDF_SOLVER_HEUN, LDF_SOLVER_RK4};
    for (int i = 0; i < 4; i++) {
        LdfSampleParams q = params(3);
        q.solver = solvers[i];
        q.steps = 1;
        EXPECT_STATUS(ldf_sample(model, 1, &q, out, n), LDF_OK);
    }
    free(out);
}

static void test_sample(void) {
    size_t per = info.image_bytes;
    LdfSampleParams p = params(42);
    unsigned char *a = malloc(4 * per), *b = malloc(4 * per);
    EXPECT_STATUS(ldf_sample(NULL, 1, &p, a, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample(model, 0, &p, a, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample(model, 1, &p, NULL, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample(model, 2, &p, a, 2 * per - 1), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample(model, 0xFFFFFFFFu, &p, a, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample(model, 1, &p, a, 0), LDF_ERR_INVALID_ARGUMENT);
    /* A count above LDF_MAX_COUNT (a -1 cast to unsigned, say) is refused even when the caller
     * claims a buffer large enough, and nothing is written. */
    memset(a, 0xAB, 4 * per);
    EXPECT_STATUS(ldf_sample(model, 0xFFFFFFFFu, &p, a, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample(model, LDF_MAX_COUNT + 1, &p, a, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(ldf_last_error(), "65536") != NULL);
    EXPECT_STATUS(ldf_sample_latents(model, 0xFFFFFFFFu, &p, (float *)(void *)a, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_generate_from_latents(model, (const float *)(void *)a, 0xFFFFFFFFu, &p, a, SIZE_MAX),
                  LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_encode(model, a, 0xFFFFFFFFu, (float *)(void *)a, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_inpaint(model, a, a, 0xFFFFFFFFu, &p, a, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    for (size_t i = 0; i < 4 * per; i++) {
        if (a[i] != 0xAB) {
            EXPECT(!"a refused call wrote into the caller's buffer");
            break;
        }
    }

    /* Image i depends on (seed, first_index + i) only: not on count or batch size. */
    EXPECT_STATUS(ldf_sample(model, 4, &p, a, 4 * per), LDF_OK);
    LdfSampleParams q = p;
    q.batch_size = 1;
    EXPECT_STATUS(ldf_sample(model, 2, &q, b, 2 * per), LDF_OK);
    q.first_index = 2;
    EXPECT_STATUS(ldf_sample(model, 2, &q, b + 2 * per, 2 * per), LDF_OK);
    EXPECT(memcmp(a, b, 4 * per) == 0);
    /* Another seed gives other images; images are not constant. */
    q = params(43);
    EXPECT_STATUS(ldf_sample(model, 1, &q, b, per), LDF_OK);
    EXPECT(memcmp(a, b, per) != 0);
    int varied = 0;
    for (size_t i = 1; i < per; i++) varied |= a[i] != a[0];
    EXPECT(varied);
    /* NULL params are the defaults. */
    EXPECT_STATUS(ldf_sample(model, 1, NULL, b, per), LDF_OK);
    EXPECT_STATUS(ldf_sample(gaussian, 2, &p, b, 2 * per), LDF_OK);
    free(a);
    free(b);
}

static void test_latents(void) {
    size_t per = info.image_bytes, d = info.latent_dim;
    LdfSampleParams p = params(5);
    float *z = malloc(3 * info.latent_bytes);
    unsigned char *img = malloc(3 * per), *ref = malloc(3 * per);

    EXPECT_STATUS(ldf_sample_latents(model, 3, &p, z, 3 * info.latent_bytes - 1), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample_latents(model, 3, &p, NULL, 3 * info.latent_bytes), LDF_ERR_INVALID_ARGUMENT);
    float *misaligned = (float *)((char *)z + 1);
    EXPECT_STATUS(ldf_sample_latents(model, 1, &p, misaligned, info.latent_bytes), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_sample_latents(gaussian, 1, &p, z, 1024), LDF_ERR_UNSUPPORTED);
    EXPECT_STATUS(ldf_sample_latents(model, 3, &p, z, 3 * info.latent_bytes), LDF_OK);
    for (size_t i = 0; i < 3 * d; i++) EXPECT(isfinite(z[i]));

    /* sample == generate(sample_latents) for the same parameters. */
    EXPECT_STATUS(ldf_generate_from_latents(model, z, 3, &p, img, 3 * per), LDF_OK);
    EXPECT_STATUS(ldf_sample(model, 3, &p, ref, 3 * per), LDF_OK);
    EXPECT(memcmp(img, ref, 3 * per) == 0);
    EXPECT_STATUS(ldf_generate_from_latents(model, NULL, 3, &p, img, 3 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_generate_from_latents(model, z, 3, &p, img, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_generate_from_latents(gaussian, z, 1, &p, img, per), LDF_ERR_UNSUPPORTED);
    z[1] = NAN;
    EXPECT_STATUS(ldf_generate_from_latents(model, z, 1, &p, img, per), LDF_ERR_INVALID_ARGUMENT);

    /* Encoding real pixels gives finite latents, deterministically. */
    float *e1 = malloc(3 * info.latent_bytes), *e2 = malloc(3 * info.latent_bytes);
    EXPECT_STATUS(ldf_encode(model, ref, 3, e1, 3 * info.latent_bytes), LDF_OK);
    EXPECT_STATUS(ldf_encode(model, ref, 3, e2, 3 * info.latent_bytes), LDF_OK);
    EXPECT(memcmp(e1, e2, 3 * info.latent_bytes) == 0);
    for (size_t i = 0; i < 3 * d; i++) EXPECT(isfinite(e1[i]));
    EXPECT_STATUS(ldf_encode(model, NULL, 3, e1, 3 * info.latent_bytes), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_encode(model, ref, 0, e1, 3 * info.latent_bytes), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_encode(model, ref, 3, e1, 8), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_encode(gaussian, ref, 1, e1, info.latent_bytes), LDF_ERR_UNSUPPORTED);

    /* Interpolation: the first frame is generate(z_from) with the noise of (seed, 0). */
    unsigned char *frames = malloc(5 * per);
    EXPECT_STATUS(ldf_interpolate(model, e1, e1 + d, 5, &p, frames, 5 * per), LDF_OK);
    EXPECT_STATUS(ldf_generate_from_latents(model, e1, 1, &p, img, per), LDF_OK);
    EXPECT(memcmp(frames, img, per) == 0);
    LdfSampleParams s = p;
    s.interpolation = LDF_INTERPOLATION_SPHERICAL;
    s.batch_size = 2;
    EXPECT_STATUS(ldf_interpolate(model, e1, e1 + d, 5, &s, frames, 5 * per), LDF_OK);
    EXPECT(memcmp(frames, img, per) == 0);
    EXPECT_STATUS(ldf_interpolate(model, e1, e1 + d, 0, &p, frames, 5 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_interpolate(model, e1, e1 + d, 0xFFFFFFFFu, &p, frames, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_interpolate(model, NULL, e1, 2, &p, frames, 5 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_interpolate(model, e1, e1 + d, 6, &p, frames, 5 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_interpolate(gaussian, e1, e1, 2, &p, frames, 5 * per), LDF_ERR_UNSUPPORTED);
    free(frames);
    free(e1);
    free(e2);
    free(z);
    free(img);
    free(ref);
}

/* Walking between two seeds: both kinds of model; with params.seed = seed_from, frame 0 is
 * image 0 of that seed's sample (and for the Gaussian prior the last frame is seed_to's). */
static void test_interpolate_seeds(LdfModel *m, bool gaussian_prior) {
    size_t per = info.image_bytes;
    unsigned char *frames = malloc(4 * per), *a = malloc(per), *b = malloc(per);
    LdfSampleParams p = params(21);
    EXPECT_STATUS(ldf_interpolate_seeds(m, 21, 22, 4, &p, frames, 4 * per), LDF_OK);
    EXPECT_STATUS(ldf_sample(m, 1, &p, a, per), LDF_OK);
    EXPECT(memcmp(frames, a, per) == 0);
    EXPECT(memcmp(frames, frames + 3 * per, per) != 0);
    if (gaussian_prior) {
        LdfSampleParams q = params(22);
        EXPECT_STATUS(ldf_sample(m, 1, &q, b, per), LDF_OK);
        EXPECT(memcmp(frames + 3 * per, b, per) == 0);
    }
    /* Frames are independent of how many are asked for at the ends. */
    EXPECT_STATUS(ldf_interpolate_seeds(m, 21, 22, 1, &p, a, per), LDF_OK);
    EXPECT(memcmp(frames, a, per) == 0);
    memset(a, 0xA5, per);
    EXPECT_STATUS(ldf_interpolate_seeds(m, 21, 22, 0, &p, a, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_interpolate_seeds(m, 21, 22, 2, &p, a, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_interpolate_seeds(m, 21, 22, 1, &p, NULL, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_interpolate_seeds(NULL, 21, 22, 1, &p, a, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(a[0] == 0xA5 && a[per - 1] == 0xA5);
    free(frames);
    free(a);
    free(b);
}

/* Classes: the shipped models know five classes; a class is honoured, a wrong one refused. */
static void test_classes(void) {
    static const char *names[] = {"floor", "wall", "feature", "item", "creature"};
    LdfModelInfo i;
    memset(&i, 0xA5, sizeof i);
    i.struct_size = sizeof i;
    EXPECT_STATUS(ldf_model_info(model, &i), LDF_OK);
    EXPECT(i.class_count == 5);
    for (uint32_t k = 0; k < 5 && i.class_count == 5; k++) {
        const char *n = ldf_model_class_name(model, k);
        EXPECT(n != NULL && strcmp(n, names[k]) == 0);
    }
    EXPECT(ldf_model_class_name(model, 5) == NULL);
    EXPECT(ldf_model_class_name(NULL, 0) == NULL);
    unsigned char *img = malloc(info.image_bytes), *ref = malloc(info.image_bytes);
    unsigned char *again = malloc(info.image_bytes);
    LdfSampleParams p = params(4);
    EXPECT(p.class_id == LDF_CLASS_NONE && p.guidance == 1.0f);
    EXPECT_STATUS(ldf_sample(model, 1, &p, ref, info.image_bytes), LDF_OK);
    /* An item with guidance 2: deterministic, and not the unconditional image. */
    p.class_id = 3;
    p.guidance = 2.0f;
    EXPECT_STATUS(ldf_sample(model, 1, &p, img, info.image_bytes), LDF_OK);
    EXPECT_STATUS(ldf_sample(model, 1, &p, again, info.image_bytes), LDF_OK);
    EXPECT(memcmp(img, again, info.image_bytes) == 0);
    EXPECT(memcmp(img, ref, info.image_bytes) != 0);
    /* A class out of range is refused with the valid ones named, and nothing is written. */
    memset(img, 0xA5, info.image_bytes);
    p.class_id = 5;
    EXPECT_STATUS(ldf_sample(model, 1, &p, img, info.image_bytes), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(ldf_last_error(), "0 floor, 1 wall, 2 feature, 3 item, 4 creature") != NULL);
    EXPECT(img[0] == 0xA5 && img[info.image_bytes - 1] == 0xA5);
    p = params(4);
    p.guidance = NAN;
    EXPECT_STATUS(ldf_sample(model, 1, &p, img, info.image_bytes), LDF_ERR_INVALID_ARGUMENT);
    p.guidance = -0.5f;
    EXPECT_STATUS(ldf_sample(model, 1, &p, img, info.image_bytes), LDF_ERR_INVALID_ARGUMENT);
    /* A caller whose struct ends before class_id and guidance gets unconditional images. */
    p = params(4);
    p.struct_size = offsetof(LdfSampleParams, class_id);
    p.class_id = 7;
    p.guidance = NAN;
    EXPECT_STATUS(ldf_sample(model, 1, &p, img, info.image_bytes), LDF_OK);
    EXPECT(memcmp(img, ref, info.image_bytes) == 0);
    free(again);
    free(img);
    free(ref);
}

/* Precision: fp32 by default; bf16 where the CPU has it (close to fp32, deterministic, batch
 * independent), refused where it does not; auto follows the CPU; unknown values refused. The
 * environment variable LEDIFLOW_CPU_BF16=0 forces the "no bf16" choice on any CPU. */
static void test_precision(LdfModel *m) {
    LdfModelInfo i;
    memset(&i, 0xA5, sizeof i);
    i.struct_size = sizeof i;
    EXPECT_STATUS(ldf_model_info(m, &i), LDF_OK);
    EXPECT((i.cpu_features & ~(uint32_t)(LDF_CPU_AVX512_BF16 | LDF_CPU_AMX_BF16)) == 0);
    int has_bf16 = (i.cpu_features & LDF_CPU_AVX512_BF16) != 0;
    EXPECT(i.auto_precision == (has_bf16 ? LDF_PRECISION_BF16 : LDF_PRECISION_FP32));
    EXPECT(offsetof(LdfModelInfo, auto_precision) + sizeof(uint32_t) == sizeof(LdfModelInfo));
    size_t per = i.image_bytes;
    unsigned char *ref = malloc(4 * per), *img = malloc(4 * per), *one = malloc(per);
    LdfSampleParams p = params(31);
    EXPECT_STATUS(ldf_sample(m, 4, &p, ref, 4 * per), LDF_OK);
    p.precision = LDF_PRECISION_BF16;
    memset(img, 0xA5, 4 * per);
    if (has_bf16) {
        EXPECT_STATUS(ldf_sample(m, 4, &p, img, 4 * per), LDF_OK);
        long total = 0;
        for (size_t k = 0; k < 4 * per; k++) total += abs((int)img[k] - (int)ref[k]);
        EXPECT(memcmp(img, ref, 4 * per) != 0);    /* the bf16 kernels ran */
        EXPECT(total < (long)(4 * per));           /* under one 8-bit level on average */
        /* Image 2 alone, in a batch of one, is the same bytes as in the call of four. */
        p.first_index = 2;
        p.batch_size = 1;
        EXPECT_STATUS(ldf_sample(m, 1, &p, one, per), LDF_OK);
        EXPECT(memcmp(one, img + 2 * per, per) == 0);
        p.first_index = 0;
        p.batch_size = 0;
        p.precision = LDF_PRECISION_AUTO;
        EXPECT_STATUS(ldf_sample(m, 4, &p, ref, 4 * per), LDF_OK);
        EXPECT(memcmp(img, ref, 4 * per) == 0);    /* auto is bf16 here */
        LdfSampleParams fp32 = params(31);
        EXPECT_STATUS(ldf_sample(m, 4, &fp32, ref, 4 * per), LDF_OK);
    } else {
        EXPECT_STATUS(ldf_sample(m, 4, &p, img, 4 * per), LDF_ERR_UNSUPPORTED);
        EXPECT(strstr(ldf_last_error(), "AVX512-BF16") != NULL);
        EXPECT(img[0] == 0xA5 && img[4 * per - 1] == 0xA5);
    }
    /* Hidden instructions: auto is fp32, bf16 refused, nothing written. */
    setenv("LEDIFLOW_CPU_BF16", "0", 1);
    EXPECT_STATUS(ldf_model_info(m, &i), LDF_OK);
    EXPECT(i.cpu_features == 0 && i.auto_precision == LDF_PRECISION_FP32);
    p = params(31);
    p.precision = LDF_PRECISION_AUTO;
    EXPECT_STATUS(ldf_sample(m, 4, &p, img, 4 * per), LDF_OK);
    EXPECT(memcmp(img, ref, 4 * per) == 0);
    p.precision = LDF_PRECISION_BF16;
    memset(img, 0xA5, 4 * per);
    EXPECT_STATUS(ldf_sample(m, 4, &p, img, 4 * per), LDF_ERR_UNSUPPORTED);
    EXPECT(img[0] == 0xA5 && img[4 * per - 1] == 0xA5);
    unsetenv("LEDIFLOW_CPU_BF16");
    /* An unknown precision is refused; a caller whose struct ends before it gets fp32. */
    p.precision = 3;
    EXPECT_STATUS(ldf_sample(m, 4, &p, img, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(img[0] == 0xA5 && img[4 * per - 1] == 0xA5);
    p.struct_size = offsetof(LdfSampleParams, precision);
    EXPECT_STATUS(ldf_sample(m, 4, &p, img, 4 * per), LDF_OK);
    EXPECT(memcmp(img, ref, 4 * per) == 0);
    free(one);
    free(img);
    free(ref);
}

static void test_inpaint(LdfModel *m) {
    LdfModelInfo i = {.struct_size = sizeof i};
    EXPECT_STATUS(ldf_model_info(m, &i), LDF_OK);
    size_t per = i.image_bytes, mper = i.mask_bytes;
    LdfSampleParams p = params(9);
    p.inpaint_candidates = 4;
    unsigned char *img = malloc(2 * per), *out = malloc(2 * per), *mask = malloc(2 * mper);
    EXPECT_STATUS(ldf_sample(m, 2, &p, img, 2 * per), LDF_OK);
    for (size_t k = 0; k < 2 * mper; k++) mask[k] = (k % mper) < mper / 2; /* keep the top half */
    EXPECT_STATUS(ldf_inpaint(m, img, mask, 2, &p, out, 2 * per), LDF_OK);
    int kept_same = 1;
    for (size_t n = 0; n < 2; n++)
        for (size_t px = 0; px < mper; px++)
            if (mask[n * mper + px])
                for (size_t c = 0; c < i.channels; c++) {
                    size_t at = n * per + px * i.channels + c;
                    kept_same &= out[at] == img[at];
                }
    EXPECT(kept_same);
    /* In place: out may be the input buffer. */
    unsigned char *copy = malloc(2 * per);
    memcpy(copy, img, 2 * per);
    EXPECT_STATUS(ldf_inpaint(m, copy, mask, 2, &p, copy, 2 * per), LDF_OK);
    EXPECT(memcmp(copy, out, 2 * per) == 0);
    EXPECT_STATUS(ldf_inpaint(m, img, NULL, 2, &p, out, 2 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_inpaint(m, img, mask, 2, &p, out, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_inpaint(m, img, mask, 0, &p, out, 2 * per), LDF_ERR_INVALID_ARGUMENT);
    /* out may be pixels itself, but not a buffer that partly overlaps it. */
    memcpy(copy, img, 2 * per);
    EXPECT_STATUS(ldf_inpaint(m, copy, mask, 1, &p, copy + 1, per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(memcmp(copy, img, 2 * per) == 0);
    free(copy);
    free(img);
    free(out);
    free(mask);
}

/* Seamless tiles: tileable images wrap around; batching changes nothing, as for plain ones. */
static void test_tileable(LdfModel *m) {
    LdfModelInfo i = {.struct_size = sizeof i};
    EXPECT_STATUS(ldf_model_info(m, &i), LDF_OK);
    size_t per = i.image_bytes;
    unsigned char *a = malloc(3 * per), *b = malloc(3 * per);
    LdfSampleParams p = params(21);
    p.tileable = 1;
    EXPECT_STATUS(ldf_sample(m, 3, &p, a, 3 * per), LDF_OK);
    LdfSampleParams q = p;
    q.batch_size = 1;
    EXPECT_STATUS(ldf_sample(m, 3, &q, b, 3 * per), LDF_OK);
    EXPECT(memcmp(a, b, 3 * per) == 0);
    q = params(21);
    EXPECT_STATUS(ldf_sample(m, 3, &q, b, 3 * per), LDF_OK);
    EXPECT(memcmp(a, b, 3 * per) != 0);
    free(a);
    free(b);
}

/* Variations: strength 0 gives the input back; variation j of image i depends only on
 * (seed, i, j); bad arguments write nothing. */
static void test_vary(LdfModel *m) {
    LdfModelInfo i = {.struct_size = sizeof i};
    EXPECT_STATUS(ldf_model_info(m, &i), LDF_OK);
    size_t per = i.image_bytes;
    LdfSampleParams p = params(31);
    unsigned char *img = malloc(2 * per), *out = malloc(6 * per), *two = malloc(4 * per);
    EXPECT_STATUS(ldf_sample(m, 2, &p, img, 2 * per), LDF_OK);
    EXPECT_STATUS(ldf_vary(m, img, 2, 3, 0.0f, &p, out, 6 * per), LDF_OK);
    for (int k = 0; k < 6; k++) EXPECT(memcmp(out + k * per, img + (k / 3) * per, per) == 0);
    EXPECT_STATUS(ldf_vary(m, img, 2, 3, 0.5f, &p, out, 6 * per), LDF_OK);
    EXPECT(memcmp(out, out + per, per) != 0);
    EXPECT_STATUS(ldf_vary(m, img, 2, 2, 0.5f, &p, two, 4 * per), LDF_OK);
    EXPECT(memcmp(two, out, 2 * per) == 0 && memcmp(two + 2 * per, out + 3 * per, 2 * per) == 0);
    memset(two, 0xAB, 4 * per);
    EXPECT_STATUS(ldf_vary(m, img, 2, 2, NAN, &p, two, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(ldf_last_error(), "strength") != NULL);
    EXPECT_STATUS(ldf_vary(m, img, 2, 2, -0.5f, &p, two, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 2, 2, 1.5f, &p, two, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 0, 2, 0.5f, &p, two, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 2, 0, 0.5f, &p, two, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 2, LDF_MAX_VARIATIONS + 1, 0.5f, &p, two, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 0xFFFFFFFFu, 2, 0.5f, &p, two, SIZE_MAX), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 2, 2, 0.5f, &p, two, 4 * per - 1), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, NULL, 2, 2, 0.5f, &p, two, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 2, 2, 0.5f, &p, NULL, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(NULL, img, 2, 2, 0.5f, &p, two, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_vary(m, img, 2, 2, 0.5f, &p, img + per, 4 * per), LDF_ERR_INVALID_ARGUMENT);
    for (size_t k = 0; k < 4 * per; k++) {
        if (two[k] != 0xAB) {
            EXPECT(!"a refused ldf_vary wrote into the caller's buffer");
            break;
        }
    }
    free(img);
    free(out);
    free(two);
}

/* ---- cancellation ---- */

struct progress_log {
    uint32_t calls, last_step, last_total, stop_at;
};

static bool count_and_stop(uint32_t step, uint32_t total, void *user) {
    struct progress_log *l = user;
    l->calls++;
    l->last_step = step;
    l->last_total = total;
    return step < l->stop_at;
}

/* Progress counts must rise (or repeat) and stay within one fixed total. */
struct progress_order {
    uint32_t calls, last, total, bad;
};

static bool check_order(uint32_t step, uint32_t total, void *user) {
    struct progress_order *o = user;
    if (step < o->last || step > total || (o->calls > 0 && total != o->total)) o->bad++;
    o->calls++;
    o->last = step;
    o->total = total;
    return true;
}

static void test_progress_and_cancel(void) {
    size_t per = info.image_bytes;
    unsigned char *out = malloc(3 * per);
    struct progress_log log = {0, 0, 0, 1000};
    LdfSampleParams p = params(7);
    p.steps = 3;
    p.batch_size = 2; /* 2 batches: progress counts over the whole call */
    p.progress = count_and_stop;
    p.user_data = &log;
    EXPECT_STATUS(ldf_sample(model, 3, &p, out, 3 * per), LDF_OK);
    EXPECT(log.calls == 6 && log.last_step == 6 && log.last_total == 6);

    /* One batch of 40 is run as chunks of at most 16 images, several of them on the calling
     * thread (whatever the thread count): the count still ends at the call's total. */
    unsigned char *many = malloc(40 * per);
    struct progress_order order = {0, 0, 0, 0};
    LdfSampleParams q = params(7);
    q.steps = 1;
    q.batch_size = 40;
    q.progress = check_order;
    q.user_data = &order;
    EXPECT_STATUS(ldf_sample(model, 40, &q, many, 40 * per), LDF_OK);
    EXPECT(order.calls >= 1 && order.last == 1 && order.total == 1 && !order.bad);
    free(many);

    log = (struct progress_log){0, 0, 0, 2};
    EXPECT_STATUS(ldf_sample(model, 3, &p, out, 3 * per), LDF_ERR_CANCELLED);
    EXPECT(log.calls == 2);
    EXPECT(strstr(ldf_last_error(), "cancel") != NULL);
    /* The model stays usable. */
    p.progress = NULL;
    EXPECT_STATUS(ldf_sample(model, 1, &p, out, per), LDF_OK);

    /* A raised token cancels; a reset one does not. */
    LdfCancel *token = NULL;
    EXPECT_STATUS(ldf_cancel_new(NULL), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_cancel_new(&token), LDF_OK);
    p.cancel = token;
    ldf_cancel_request(token);
    EXPECT_STATUS(ldf_sample(model, 1, &p, out, per), LDF_ERR_CANCELLED);
    EXPECT_STATUS(ldf_inpaint(model, out, out, 1, &p, out, per), LDF_ERR_CANCELLED);
    ldf_cancel_reset(token);
    EXPECT_STATUS(ldf_sample(model, 1, &p, out, per), LDF_OK);
    ldf_cancel_request(NULL);
    ldf_cancel_reset(NULL);
    ldf_cancel_free(token);
    ldf_cancel_free(NULL);
    free(out);
}

/* Another thread raises the token once the call has started. */
struct canceller {
    LdfCancel *token;
    atomic_int started;
};

static bool mark_started(uint32_t step, uint32_t total, void *user) {
    (void)step;
    (void)total;
    atomic_store(&((struct canceller *)user)->started, 1);
    return true;
}

static void *cancel_when_started(void *arg) {
    struct canceller *c = arg;
    while (!atomic_load(&c->started)) {
    }
    ldf_cancel_request(c->token);
    return NULL;
}

static void test_cancel_from_other_thread(void) {
    struct canceller c;
    atomic_init(&c.started, 0);
    EXPECT_STATUS(ldf_cancel_new(&c.token), LDF_OK);
    LdfSampleParams p = params(8);
    p.steps = 200; /* far longer than the canceller needs */
    p.progress = mark_started;
    p.user_data = &c;
    p.cancel = c.token;
    size_t per = info.image_bytes;
    unsigned char *out = malloc(per);
    pthread_t t;
    pthread_create(&t, NULL, cancel_when_started, &c);
    EXPECT_STATUS(ldf_sample(model, 1, &p, out, per), LDF_ERR_CANCELLED);
    pthread_join(t, NULL);
    ldf_cancel_free(c.token);
    free(out);
}

/* ---- two threads on one model ---- */

struct job {
    unsigned char *out;
    LdfStatus status;
    char error[256];
};

static void *sample_job(void *arg) {
    struct job *j = arg;
    LdfSampleParams p = params(99);
    j->status = ldf_sample(model, 3, &p, j->out, 3 * info.image_bytes);
    snprintf(j->error, sizeof j->error, "%s", ldf_last_error());
    if (j->status == LDF_OK) {
        /* A failure on this thread does not show up in the other thread's last error. */
        ldf_sample(model, 0, &p, j->out, 0);
    }
    return NULL;
}

static void test_threads(void) {
    size_t n = 3 * info.image_bytes;
    struct job jobs[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        jobs[i].out = malloc(n);
        pthread_create(&t[i], NULL, sample_job, &jobs[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    unsigned char *ref = malloc(n);
    LdfSampleParams p = params(99);
    EXPECT_STATUS(ldf_sample(model, 3, &p, ref, n), LDF_OK);
    for (int i = 0; i < 2; i++) {
        EXPECT(jobs[i].status == LDF_OK);
        EXPECT(jobs[i].error[0] == '\0');
        EXPECT(memcmp(jobs[i].out, ref, n) == 0);
        free(jobs[i].out);
    }
    free(ref);
}

static void test_memory_limit(void) {
    size_t per = info.image_bytes;
    unsigned char *a = malloc(4 * per), *b = malloc(4 * per);
    LdfSampleParams p = params(11);
    EXPECT_STATUS(ldf_model_set_memory_limit(NULL, 0), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_model_set_memory_limit(model, 1000), LDF_OK);
    EXPECT_STATUS(ldf_sample(model, 1, &p, a, per), LDF_ERR_OUT_OF_MEMORY);
    EXPECT(strstr(ldf_last_error(), "MB") != NULL);
    EXPECT_STATUS(ldf_model_set_memory_limit(model, 0), LDF_OK);
    EXPECT_STATUS(ldf_sample(model, 4, &p, a, 4 * per), LDF_OK);
    /* A limit that fits a few images runs smaller batches with the same result. */
    EXPECT_STATUS(ldf_model_set_memory_limit(model, 64u << 20), LDF_OK);
    EXPECT_STATUS(ldf_sample(model, 4, &p, b, 4 * per), LDF_OK);
    EXPECT(memcmp(a, b, 4 * per) == 0);
    /* Inpainting decodes K + 1 candidates per image: 4096 of them (GBs) do not fit 64 MB, and
     * the call says so before allocating. */
    unsigned char *mask = calloc(info.mask_bytes, 1);
    p.inpaint_candidates = 4096;
    EXPECT_STATUS(ldf_inpaint(model, a, mask, 1, &p, b, per), LDF_ERR_OUT_OF_MEMORY);
    free(mask);
    EXPECT_STATUS(ldf_model_set_memory_limit(model, 0), LDF_OK);
    free(a);
    free(b);
}

/* ---- logging ---- */

static int log_lines = 0;
static void on_log(LdfLogLevel level, const char *target, const char *message, void *user) {
    (void)user;
    if (level >= LDF_LOG_ERROR && level <= LDF_LOG_TRACE && target && message && message[0]) log_lines++;
}

static void test_logging(const char *learned_path) {
    EXPECT_STATUS(ldf_set_log_callback(on_log, 42, NULL), LDF_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(ldf_set_log_callback(on_log, LDF_LOG_DEBUG, NULL), LDF_OK);
    LdfModel *m = NULL;
    EXPECT_STATUS(ldf_model_load(learned_path, LDF_DEVICE_CPU, &m), LDF_OK);
    EXPECT(log_lines > 0);
    ldf_model_free(m);
    EXPECT_STATUS(ldf_set_log_callback(NULL, LDF_LOG_OFF, NULL), LDF_OK);
    int before = log_lines;
    EXPECT_STATUS(ldf_model_load(learned_path, LDF_DEVICE_CPU, &m), LDF_OK);
    EXPECT(log_lines == before);
    ldf_model_free(m);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <learned-prior model> <gaussian-prior model>\n", argv[0]);
        return 2;
    }
    EXPECT(ldf_last_error() != NULL && ldf_last_error()[0] == '\0');
    test_version();
    test_status_strings();
    test_load(argv[1], argv[2]);
    if (!model || !gaussian) {
        fprintf(stderr, "cannot load the test models\n");
        return 1;
    }
    test_info();
    test_params();
    test_sample();
    test_latents();
    test_classes();
    test_precision(model);
    test_precision(gaussian);
    test_interpolate_seeds(model, false);
    test_interpolate_seeds(gaussian, true);
    test_inpaint(model);
    test_inpaint(gaussian);
    test_tileable(model);
    test_tileable(gaussian);
    test_vary(model);
    test_vary(gaussian);
    test_progress_and_cancel();
    test_cancel_from_other_thread();
    test_threads();
    test_memory_limit();
    test_logging(argv[1]);
    ldf_model_free(model);
    ldf_model_free(gaussian);
    printf("abi_test: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
