/* Samples a grid of images from a lediflow model and writes it as a PNG, with a progress bar
 * that Ctrl-C cancels, and error handling for every call.
 *
 *   cargo build --release --lib
 *   cc -O2 -Iinclude examples/c/sample_grid.c -Ltarget/release -llediflow -Wl,-rpath,$PWD/target/release -o sample_grid
 *   ./sample_grid models/dcss-small-ledi.safetensors grid.png 64
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "lediflow.h"
#include "png_write.h"

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* Draws a progress bar; returning false cancels the call (the model stays usable). */
static bool progress(uint32_t step, uint32_t total, void *user_data) {
    const char *label = user_data;
    int width = 30, done = (int)((uint64_t)step * width / total);
    fprintf(stderr, "\r%s [%.*s%*s] %u/%u", label, done, "##############################", width - done, "", step,
            total);
    if (step == total) fputc('\n', stderr);
    return !interrupted;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL OUT.png [COUNT] [STEPS] [SEED]\n", argv[0]);
        return 2;
    }
    uint32_t count = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 64;
    LdfSampleParams params;
    ldf_sample_params_init(&params); /* 4 Midpoint steps */
    if (argc > 4) params.steps = (uint32_t)strtoul(argv[4], NULL, 10);
    if (argc > 5) params.seed = strtoull(argv[5], NULL, 10);
    params.progress = progress;
    params.user_data = "sampling";
    signal(SIGINT, on_sigint);

    printf("lediflow %s (ABI %u)\n", ldf_version(), ldf_abi_version());
    LdfModel *model = NULL;
    LdfStatus s = ldf_model_load(argv[1], LDF_DEVICE_CPU, &model);
    if (s != LDF_OK) {
        fprintf(stderr, "cannot load %s: %s (%s)\n", argv[1], ldf_last_error(), ldf_status_str(s));
        return 1;
    }
    LdfModelInfo info = {.struct_size = sizeof info};
    if ((s = ldf_model_info(model, &info)) != LDF_OK) {
        fprintf(stderr, "ldf_model_info: %s\n", ldf_last_error());
        ldf_model_free(model);
        return 1;
    }
    printf("model: %ux%u, %u channels, %s prior\n", info.width, info.height, info.channels,
           info.prior == LDF_PRIOR_LEARNED ? "learned" : "Gaussian");

    size_t len = (size_t)count * info.image_bytes;
    unsigned char *pixels = malloc(len ? len : 1);
    if (!pixels) {
        fprintf(stderr, "out of memory\n");
        ldf_model_free(model);
        return 1;
    }
    s = ldf_sample(model, count, &params, pixels, len);
    if (s == LDF_ERR_CANCELLED) {
        fprintf(stderr, "\ncancelled\n");
    } else if (s != LDF_OK) {
        fprintf(stderr, "ldf_sample failed: %s (%s)\n", ldf_last_error(), ldf_status_str(s));
    } else {
        uint32_t cols = 1, w, h;
        while (cols * cols < count) cols++;
        unsigned char *grid = png_grid(pixels, count, info.width, info.channels, cols, &w, &h);
        if (!grid || png_write(argv[2], grid, w, h, info.channels) != 0) {
            fprintf(stderr, "cannot write %s\n", argv[2]);
            s = LDF_ERR_IO;
        } else {
            printf("wrote %s (%u images)\n", argv[2], count);
        }
        free(grid);
    }
    free(pixels);
    ldf_model_free(model);
    return s == LDF_OK ? 0 : 1;
}
