/* Load, sample, free, again and again, as a long-running host (an editor, a game) does: no leak
 * and a flat resident set. tests/c/run.sh runs it twice: plain, to measure the resident set
 * (a sanitizer's allocator would inflate it), and under LeakSanitizer, which fails the run on any
 * block the library (or this program) did not free.
 * Usage: cycles_test <model> <cycles> [max growth in KiB after the warm-up] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lediflow.h"

/* This process's resident set in KiB (VmRSS), or -1 where /proc is unavailable. */
static long resident_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <model> <cycles> [max growth KiB]\n", argv[0]);
        return 2;
    }
    long cycles = strtol(argv[2], NULL, 10), limit = argc > 3 ? strtol(argv[3], NULL, 10) : -1;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(len);
    if (fread(bytes, 1, len, f) != len) return 1;
    fclose(f);

    LdfSampleParams p;
    ldf_sample_params_init(&p);
    p.steps = 1;
    p.latent_steps = 1;
    unsigned char *out = NULL;
    long warm = -1, peak = 0, warmup = cycles / 10 > 0 ? cycles / 10 : 1;
    for (long c = 0; c < cycles; c++) {
        LdfModel *m = NULL;
        /* Every other cycle loads from the file, the others from memory. */
        LdfStatus s = c % 2 ? ldf_model_load(argv[1], LDF_DEVICE_CPU, &m)
                            : ldf_model_load_from_memory(bytes, len, LDF_DEVICE_CPU, &m);
        if (s != LDF_OK) {
            fprintf(stderr, "cycle %ld: load: %s\n", c, ldf_last_error());
            return 1;
        }
        LdfModelInfo info = {.struct_size = sizeof info};
        ldf_model_info(m, &info);
        if (!out) out = malloc(2 * info.image_bytes);
        p.seed = (uint64_t)c;
        if (ldf_sample(m, 2, &p, out, 2 * info.image_bytes) != LDF_OK) {
            fprintf(stderr, "cycle %ld: sample: %s\n", c, ldf_last_error());
            return 1;
        }
        /* A failing call too: its message must not pile up. */
        ldf_sample(m, 0, &p, out, 0);
        ldf_model_free(m);
        long rss = resident_kib();
        if (c + 1 == warmup) warm = rss;
        if (c + 1 > warmup && rss > peak) peak = rss;
    }
    long growth = peak > warm ? peak - warm : 0;
    printf("cycles_test: %ld load/sample/free cycles; resident %ld KiB after %ld, at most %ld KiB after "
           "(growth %ld KiB)\n",
           cycles, warm, warmup, peak, growth);
    free(out);
    free(bytes);
    if (limit >= 0 && warm >= 0 && growth > limit) {
        fprintf(stderr, "resident memory grew by %ld KiB after the warm-up (limit %ld)\n", growth, limit);
        return 1;
    }
    return 0;
}
