/* Eight threads on one model, built with -fsanitize=thread by tests/c/run.sh: each thread
 * samples, inpaints and varies with its own seed while one of them is cancelled from the main
 * thread part-way through a long call; the odd threads ask for LDF_PRECISION_AUTO (bf16 where
 * the CPU has it), so on such a CPU the model's bf16 weights are first packed while several
 * threads call at once. No sanitizer report, every finished thread's images equal the
 * single-threaded ones (made on a second copy of the model) byte for byte, the cancelled call
 * writes nothing, and each thread's last error is its own.
 * Usage: threads_test <model> */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lediflow.h"

#define THREADS 8
#define COUNT 3
#define VICTIM 5 /* the thread whose call is cancelled */

static LdfModel *model, *ref_model;
static size_t per;
static int failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: FAILED: %s (%s)\n", __FILE__, __LINE__, #cond, ldf_last_error()); \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

struct job {
    int index;
    unsigned char *sampled, *filled, *varied;
    LdfStatus status;
    char error[256];
    LdfCancel *token;
    atomic_int started;
};

static LdfSampleParams params(uint64_t seed) {
    LdfSampleParams p;
    ldf_sample_params_init(&p);
    p.seed = seed;
    p.steps = 2;
    p.inpaint_candidates = 2;
    return p;
}

/* The three calls one thread makes on model m; the single-threaded reference makes the same
 * ones on its own copy. */
static LdfStatus work(LdfModel *m, int index, unsigned char *sampled, unsigned char *filled, unsigned char *varied) {
    LdfSampleParams p = params(1000 + (uint64_t)index);
    if (index % 2) p.precision = LDF_PRECISION_AUTO;
    LdfStatus s = ldf_sample(m, COUNT, &p, sampled, COUNT * per);
    if (s != LDF_OK) return s;
    unsigned char mask[32 * 32];
    for (size_t k = 0; k < sizeof mask; k++) mask[k] = (k / 32) % 2;
    s = ldf_inpaint(m, sampled, mask, 1, &p, filled, per);
    if (s != LDF_OK) return s;
    return ldf_vary(m, sampled, 1, 2, 0.5f, &p, varied, 2 * per);
}

static bool mark_started(uint32_t step, uint32_t total, void *user) {
    (void)step;
    (void)total;
    atomic_store(&((struct job *)user)->started, 1);
    return true;
}

static void *run_job(void *arg) {
    struct job *j = arg;
    if (j->index == VICTIM) {
        /* A call far longer than the main thread needs to raise the token. */
        LdfSampleParams p = params(77);
        p.steps = 500;
        p.progress = mark_started;
        p.user_data = j;
        p.cancel = j->token;
        memset(j->sampled, 0xAB, COUNT * per);
        j->status = ldf_sample(model, COUNT, &p, j->sampled, COUNT * per);
    } else {
        j->status = work(model, j->index, j->sampled, j->filled, j->varied);
    }
    snprintf(j->error, sizeof j->error, "%s", ldf_last_error());
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <model>\n", argv[0]);
        return 2;
    }
    if (ldf_model_load(argv[1], LDF_DEVICE_CPU, &model) != LDF_OK ||
        ldf_model_load(argv[1], LDF_DEVICE_CPU, &ref_model) != LDF_OK) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], ldf_last_error());
        return 1;
    }
    LdfModelInfo info = {.struct_size = sizeof info};
    CHECK(ldf_model_info(model, &info) == LDF_OK);
    per = info.image_bytes;
    CHECK(info.width == 32 && info.height == 32);

    /* Single-threaded references. */
    unsigned char *ref[THREADS][3];
    for (int i = 0; i < THREADS; i++) {
        ref[i][0] = malloc(COUNT * per);
        ref[i][1] = malloc(per);
        ref[i][2] = malloc(2 * per);
        if (i != VICTIM) CHECK(work(ref_model, i, ref[i][0], ref[i][1], ref[i][2]) == LDF_OK);
    }

    for (int round = 0; round < 2; round++) {
        struct job jobs[THREADS];
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            jobs[i].index = i;
            jobs[i].sampled = malloc(COUNT * per);
            jobs[i].filled = malloc(per);
            jobs[i].varied = malloc(2 * per);
            atomic_init(&jobs[i].started, 0);
            jobs[i].token = NULL;
            if (i == VICTIM) CHECK(ldf_cancel_new(&jobs[i].token) == LDF_OK);
            pthread_create(&t[i], NULL, run_job, &jobs[i]);
        }
        while (!atomic_load(&jobs[VICTIM].started)) {
        }
        ldf_cancel_request(jobs[VICTIM].token);
        for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < THREADS; i++) {
            struct job *j = &jobs[i];
            if (i == VICTIM) {
                CHECK(j->status == LDF_ERR_CANCELLED);
                CHECK(strstr(j->error, "cancel") != NULL);
                int untouched = 1;
                for (size_t k = 0; k < COUNT * per; k++) untouched &= j->sampled[k] == 0xAB;
                CHECK(untouched);
                ldf_cancel_free(j->token);
            } else {
                CHECK(j->status == LDF_OK);
                CHECK(j->error[0] == '\0');
                CHECK(memcmp(j->sampled, ref[i][0], COUNT * per) == 0);
                CHECK(memcmp(j->filled, ref[i][1], per) == 0);
                CHECK(memcmp(j->varied, ref[i][2], 2 * per) == 0);
            }
            free(j->sampled);
            free(j->filled);
            free(j->varied);
        }
    }
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < 3; k++) free(ref[i][k]);
    ldf_model_free(model);
    ldf_model_free(ref_model);
    printf("threads_test: %d threads x 2 rounds, %d failures\n", THREADS, failures);
    return failures ? 1 : 0;
}
