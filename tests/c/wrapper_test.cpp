// Tests bindings/cpp/lediflow.hpp: RAII, exceptions with the library's message, callbacks.
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "lediflow.hpp"

static int failures = 0;
#define EXPECT(c)                                                                 \
    do {                                                                          \
        if (!(c)) {                                                               \
            failures++;                                                           \
            std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #c); \
        }                                                                         \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    try {
        lediflow::Model missing("/nonexistent.safetensors");
        EXPECT(false);
    } catch (const lediflow::Error &e) {
        EXPECT(e.status() == LDF_ERR_IO);
        EXPECT(std::strstr(e.what(), "/nonexistent.safetensors") != nullptr);
    }
    lediflow::Model model(argv[1]);
    LdfModelInfo info = model.info();
    auto params = lediflow::SampleParams().seed(3).steps(2);
    auto images = model.sample(3, params);
    EXPECT(images.size() == 3 * info.image_bytes);
    EXPECT(model.sample(3, lediflow::SampleParams().seed(3).steps(2).time_shift(3.0)).size() == images.size());
    auto z = model.sample_latents(3, params);
    EXPECT(model.generate(z, params) == images);
    auto enc = model.encode(images);
    EXPECT(enc.size() == 3 * size_t(info.latent_dim));
    std::vector<float> a(enc.begin(), enc.begin() + info.latent_dim), b(enc.end() - info.latent_dim, enc.end());
    EXPECT(model.interpolate(a, b, 4, params).size() == 4 * info.image_bytes);
    EXPECT((model.class_names() == std::vector<std::string>{"floor", "wall", "feature", "item", "creature"}));
    auto items = model.sample(3, lediflow::SampleParams(params).class_id(3).guidance(2.0f));
    EXPECT(items.size() == images.size() && items != images);
    bool refused = false;
    try {
        model.sample(1, lediflow::SampleParams(params).class_id(5));
    } catch (const lediflow::Error &e) {
        refused = e.status() == LDF_ERR_INVALID_ARGUMENT && std::string(e.what()).find("4 creature") != std::string::npos;
    }
    EXPECT(refused);
    // bf16 where this CPU has it (images close to fp32's), refused where it does not.
    if (info.cpu_features & LDF_CPU_AVX512_BF16) {
        auto fast = model.sample(3, lediflow::SampleParams(params).precision(LDF_PRECISION_BF16));
        EXPECT(fast.size() == images.size() && fast != images);
        EXPECT(model.sample(3, lediflow::SampleParams(params).precision(LDF_PRECISION_AUTO)) == fast);
    } else {
        bool unsupported = false;
        try {
            model.sample(1, lediflow::SampleParams(params).precision(LDF_PRECISION_BF16));
        } catch (const lediflow::Error &e) {
            unsupported = e.status() == LDF_ERR_UNSUPPORTED;
        }
        EXPECT(unsupported);
        EXPECT(model.sample(3, lediflow::SampleParams(params).precision(LDF_PRECISION_AUTO)) == images);
    }
    auto walk = model.interpolate_seeds(3, 9, 4, params);  // params.seed is 3: frame 0 is image 0
    EXPECT(walk.size() == 4 * info.image_bytes);
    EXPECT(std::equal(walk.begin(), walk.begin() + info.image_bytes, images.begin()));
    std::vector<uint8_t> mask(3 * info.mask_bytes, 1);
    EXPECT(model.inpaint(images, mask, params) == images);  // everything kept
    auto tiles = model.sample(3, lediflow::SampleParams(params).tileable(true));
    EXPECT(tiles.size() == images.size() && tiles != images);
    EXPECT(model.vary(images, 2, 0.0f, params).size() == 6 * info.image_bytes);
    std::vector<uint8_t> first(images.begin(), images.begin() + info.image_bytes);
    auto same = model.vary(images, 2, 0.0f, params);
    EXPECT(std::equal(first.begin(), first.end(), same.begin()));
    try {
        model.vary(images, 2, 2.0f, params);
        EXPECT(false);
    } catch (const lediflow::Error &e) {
        EXPECT(e.status() == LDF_ERR_INVALID_ARGUMENT);
    }

    // Moving keeps one owner.
    lediflow::Model moved = std::move(model);
    EXPECT(model.get() == nullptr && moved.get() != nullptr);

    // A callback returning false cancels; one that throws has its exception rethrown.
    uint32_t calls = 0;
    try {
        moved.sample(1, lediflow::SampleParams(params).on_progress([&](uint32_t, uint32_t) { return ++calls < 1; }));
        EXPECT(false);
    } catch (const lediflow::Error &e) {
        EXPECT(e.status() == LDF_ERR_CANCELLED);
    }
    try {
        moved.sample(1, lediflow::SampleParams(params).on_progress([](uint32_t, uint32_t) -> bool {
            throw std::logic_error("from the callback");
        }));
        EXPECT(false);
    } catch (const std::logic_error &e) {
        EXPECT(std::strcmp(e.what(), "from the callback") == 0);
    }
    lediflow::CancelToken token;
    token.request();
    try {
        moved.sample(1, lediflow::SampleParams(params).cancel(token.get()));
        EXPECT(false);
    } catch (const lediflow::Error &e) {
        EXPECT(e.status() == LDF_ERR_CANCELLED);
    }
    // A count above the library's limit is refused before the wrapper allocates its output.
    try {
        moved.sample(UINT32_MAX);
        EXPECT(false);
    } catch (const lediflow::Error &e) {
        EXPECT(e.status() == LDF_ERR_INVALID_ARGUMENT);
    }
    lediflow::Model gaussian(argv[2]);
    try {
        gaussian.sample_latents(1);
        EXPECT(false);
    } catch (const lediflow::Error &e) {
        EXPECT(e.status() == LDF_ERR_UNSUPPORTED);
    }
    try {
        gaussian.generate(std::vector<float>(8));
        EXPECT(false);
    } catch (const lediflow::Error &e) {
        EXPECT(e.status() == LDF_ERR_UNSUPPORTED);
    }
    std::printf("wrapper_test: %d failures\n", failures);
    return failures ? 1 : 0;
}
