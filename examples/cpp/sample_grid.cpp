/* Samples a grid from a lediflow model with the C++ wrapper and writes it as a PNG.
 *
 *   cargo build --release --lib
 *   c++ -std=c++17 -O2 -Iinclude -Ibindings/cpp -Iexamples/c examples/cpp/sample_grid.cpp \
 *       -Ltarget/release -llediflow -Wl,-rpath,$PWD/target/release -o sample_grid_cpp
 *   ./sample_grid_cpp models/dcss-small-ledi.safetensors grid.png 64
 */
#include <cstdio>
#include <cstdlib>
#include <string>

#include "lediflow.hpp"
#include "png_write.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL OUT.png [COUNT] [SEED]\n", argv[0]);
        return 2;
    }
    uint32_t count = argc > 3 ? uint32_t(std::stoul(argv[3])) : 64;
    try {
        lediflow::Model model(argv[1]);
        LdfModelInfo info = model.info();
        auto params = lediflow::SampleParams().seed(argc > 4 ? std::stoull(argv[4]) : 0).on_progress(
            [](uint32_t step, uint32_t total) {
                std::fprintf(stderr, "\rstep %u/%u%s", step, total, step == total ? "\n" : "");
                return true;
            });
        std::vector<uint8_t> images = model.sample(count, params);
        uint32_t cols = 1, w = 0, h = 0;
        while (cols * cols < count) cols++;
        unsigned char *grid = png_grid(images.data(), count, info.width, info.channels, cols, &w, &h);
        int rc = grid ? png_write(argv[2], grid, w, h, info.channels) : -1;
        std::free(grid);
        if (rc != 0) {
            std::fprintf(stderr, "cannot write %s\n", argv[2]);
            return 1;
        }
        std::printf("wrote %s (%u images, lediflow %s)\n", argv[2], count, lediflow::version().c_str());
    } catch (const lediflow::Error &e) {
        std::fprintf(stderr, "lediflow error: %s\n", e.what());
        return 1;
    }
    return 0;
}
