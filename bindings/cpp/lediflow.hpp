// lediflow.hpp: header-only C++17 RAII wrapper over the C ABI in lediflow.h.
// Errors become lediflow::Error exceptions carrying the status and ldf_last_error()'s message.
// A Model may be used from several threads at once (the C ABI's contract).
#ifndef LEDIFLOW_HPP
#define LEDIFLOW_HPP

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "lediflow.h"

namespace lediflow {

class Error : public std::runtime_error {
public:
    Error(LdfStatus status, const std::string &message)
        : std::runtime_error(std::string(ldf_status_str(status)) + ": " + message), status_(status) {}
    LdfStatus status() const noexcept { return status_; }

private:
    LdfStatus status_;
};

inline void check(LdfStatus status) {
    if (status != LDF_OK) throw Error(status, ldf_last_error());
}

inline std::string version() { return ldf_version(); }

// Generation parameters: the C struct with its defaults, plus a progress callback that may be
// any callable (returning false cancels; an exception it throws is rethrown by the call).
struct SampleParams {
    LdfSampleParams raw;
    std::function<bool(uint32_t step, uint32_t total)> progress;

    SampleParams() { ldf_sample_params_init(&raw); }
    SampleParams &seed(uint64_t v) { raw.seed = v; return *this; }
    SampleParams &steps(uint32_t v) { raw.steps = v; return *this; }
    SampleParams &solver(LdfSolver v) { raw.solver = v; return *this; }
    SampleParams &prior_scale(float v) { raw.prior_scale = v; return *this; }
    /** Solver-grid shift; 0 (the default) = the model file's recommendation. */
    SampleParams &time_shift(double v) { raw.time_shift = v; return *this; }
    /** Seamless tiles: every image wraps around (right edge into left, bottom into top). */
    SampleParams &tileable(bool v) { raw.tileable = v ? 1u : 0u; return *this; }
    // A class-conditional model's class (Model::class_names() lists them; LDF_CLASS_NONE:
    // unconditional) and its classifier-free guidance scale (1: none).
    SampleParams &class_id(uint32_t v) { raw.class_id = v; return *this; }
    SampleParams &guidance(float v) { raw.guidance = v; return *this; }
    /** LDF_PRECISION_FP32 (default), _BF16 (CPUs with AVX512-BF16) or _AUTO; see info().cpu_features. */
    SampleParams &precision(LdfPrecision v) { raw.precision = v; return *this; }
    SampleParams &first_index(uint64_t v) { raw.first_index = v; return *this; }
    SampleParams &batch_size(uint32_t v) { raw.batch_size = v; return *this; }
    SampleParams &interpolation(LdfInterpolation v) { raw.interpolation = v; return *this; }
    SampleParams &cancel(const LdfCancel *token) { raw.cancel = token; return *this; }
    SampleParams &on_progress(std::function<bool(uint32_t, uint32_t)> f) { progress = std::move(f); return *this; }
};

// A cancel token another thread may raise while a call runs.
class CancelToken {
public:
    CancelToken() { check(ldf_cancel_new(&token_)); }
    ~CancelToken() { ldf_cancel_free(token_); }
    CancelToken(const CancelToken &) = delete;
    CancelToken &operator=(const CancelToken &) = delete;
    void request() const noexcept { ldf_cancel_request(token_); }
    void reset() const noexcept { ldf_cancel_reset(token_); }
    const LdfCancel *get() const noexcept { return token_; }

private:
    LdfCancel *token_ = nullptr;
};

namespace detail {
// Carries a std::function through the C callback; exceptions stop at the C boundary and are
// rethrown after the call returns.
struct Progress {
    const std::function<bool(uint32_t, uint32_t)> *f;
    std::exception_ptr error;

    static bool trampoline(uint32_t step, uint32_t total, void *user) noexcept {
        auto *self = static_cast<Progress *>(user);
        try {
            return (*self->f)(step, total);
        } catch (...) {
            self->error = std::current_exception();
            return false;
        }
    }
};

template <class Call>
void run(const SampleParams &p, Call call) {
    LdfSampleParams raw = p.raw;
    Progress progress{&p.progress, nullptr};
    if (p.progress) {
        raw.progress = &Progress::trampoline;
        raw.user_data = &progress;
    }
    LdfStatus status = call(&raw);
    if (progress.error) std::rethrow_exception(progress.error);
    check(status);
}
}  // namespace detail

class Model {
public:
    explicit Model(const std::string &path, LdfDevice device = LDF_DEVICE_CPU) {
        check(ldf_model_load(path.c_str(), device, &model_));
    }
    static Model from_memory(const void *data, size_t len, LdfDevice device = LDF_DEVICE_CPU) {
        LdfModel *m = nullptr;
        check(ldf_model_load_from_memory(static_cast<const uint8_t *>(data), len, device, &m));
        return Model(m);
    }
    ~Model() { ldf_model_free(model_); }
    Model(Model &&other) noexcept : model_(std::exchange(other.model_, nullptr)) {}
    Model &operator=(Model &&other) noexcept {
        if (this != &other) {
            ldf_model_free(model_);
            model_ = std::exchange(other.model_, nullptr);
        }
        return *this;
    }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;

    LdfModel *get() const noexcept { return model_; }

    LdfModelInfo info() const {
        LdfModelInfo i{};
        i.struct_size = sizeof i;
        check(ldf_model_info(model_, &i));
        return i;
    }

    // The class names of a class-conditional model, by class id (empty: unconditional).
    std::vector<std::string> class_names() const {
        std::vector<std::string> names;
        for (uint32_t k = 0; k < info().class_count; k++) names.emplace_back(ldf_model_class_name(model_, k));
        return names;
    }

    void set_memory_limit(size_t bytes) { check(ldf_model_set_memory_limit(model_, bytes)); }

    // `count` images, count * info().image_bytes bytes (8-bit, interleaved, row-major).
    std::vector<uint8_t> sample(uint32_t count, const SampleParams &p = {}) const {
        check_limit(count, "count");
        std::vector<uint8_t> out(count * info().image_bytes);
        detail::run(p, [&](const LdfSampleParams *raw) {
            return ldf_sample(model_, count, raw, out.data(), out.size());
        });
        return out;
    }

    // `count` latents of info().latent_dim floats each (learned-prior models).
    std::vector<float> sample_latents(uint32_t count, const SampleParams &p = {}) const {
        check_limit(count, "count");
        std::vector<float> out(count * size_t(info().latent_dim));
        detail::run(p, [&](const LdfSampleParams *raw) {
            return ldf_sample_latents(model_, count, raw, out.data(), out.size() * sizeof(float));
        });
        return out;
    }

    std::vector<uint8_t> generate(const std::vector<float> &z, const SampleParams &p = {}) const {
        LdfModelInfo i = info();
        require_latents(i);
        uint32_t count = checked_count(z.size(), i.latent_dim, "latents");
        std::vector<uint8_t> out(count * i.image_bytes);
        detail::run(p, [&](const LdfSampleParams *raw) {
            return ldf_generate_from_latents(model_, z.data(), count, raw, out.data(), out.size());
        });
        return out;
    }

    std::vector<float> encode(const std::vector<uint8_t> &pixels) const {
        LdfModelInfo i = info();
        uint32_t count = checked_count(pixels.size(), i.image_bytes, "pixels");
        std::vector<float> out(count * size_t(i.latent_dim));
        check(ldf_encode(model_, pixels.data(), count, out.data(), out.size() * sizeof(float)));
        return out;
    }

    std::vector<uint8_t> interpolate(const std::vector<float> &z_from, const std::vector<float> &z_to,
                                     uint32_t frames, const SampleParams &p = {}) const {
        LdfModelInfo i = info();
        require_latents(i);
        if (z_from.size() != i.latent_dim || z_to.size() != i.latent_dim)
            throw Error(LDF_ERR_INVALID_ARGUMENT, "interpolation endpoints must have latent_dim floats");
        check_limit(frames, "frames");
        std::vector<uint8_t> out(frames * i.image_bytes);
        detail::run(p, [&](const LdfSampleParams *raw) {
            return ldf_interpolate(model_, z_from.data(), z_to.data(), frames, raw, out.data(), out.size());
        });
        return out;
    }

    // `frames` images from the noise of seed_from to that of seed_to (both kinds of model); every
    // frame shares the prior noise of p.seed: set it to seed_from to make frame 0 that seed's image 0.
    std::vector<uint8_t> interpolate_seeds(uint64_t seed_from, uint64_t seed_to, uint32_t frames,
                                           const SampleParams &p = {}) const {
        LdfModelInfo i = info();
        check_limit(frames, "frames");
        std::vector<uint8_t> out(frames * i.image_bytes);
        detail::run(p, [&](const LdfSampleParams *raw) {
            return ldf_interpolate_seeds(model_, seed_from, seed_to, frames, raw, out.data(), out.size());
        });
        return out;
    }

    // mask: one byte per pixel, non-zero = keep; the kept pixels come back unchanged.
    std::vector<uint8_t> inpaint(const std::vector<uint8_t> &pixels, const std::vector<uint8_t> &mask,
                                 const SampleParams &p = {}) const {
        LdfModelInfo i = info();
        uint32_t count = checked_count(pixels.size(), i.image_bytes, "pixels");
        if (mask.size() != count * i.mask_bytes)
            throw Error(LDF_ERR_INVALID_ARGUMENT, "mask must have mask_bytes per image");
        std::vector<uint8_t> out(pixels.size());
        detail::run(p, [&](const LdfSampleParams *raw) {
            return ldf_inpaint(model_, pixels.data(), mask.data(), count, raw, out.data(), out.size());
        });
        return out;
    }

    // `variations` new images per image of `pixels`: image i's variations in order, each
    // depending only on (seed, i, j). strength 0 returns the images, 1 keeps only what each
    // image's latent carries.
    std::vector<uint8_t> vary(const std::vector<uint8_t> &pixels, uint32_t variations, float strength,
                              const SampleParams &p = {}) const {
        LdfModelInfo i = info();
        uint32_t count = checked_count(pixels.size(), i.image_bytes, "pixels");
        if (variations == 0 || variations > LDF_MAX_VARIATIONS)
            throw Error(LDF_ERR_INVALID_ARGUMENT,
                        "variations must be in 1..=" + std::to_string(LDF_MAX_VARIATIONS));
        if (uint64_t(count) * variations > LDF_MAX_COUNT)
            throw Error(LDF_ERR_INVALID_ARGUMENT,
                        "count x variations must be at most " + std::to_string(LDF_MAX_COUNT));
        std::vector<uint8_t> out(size_t(count) * variations * i.image_bytes);
        detail::run(p, [&](const LdfSampleParams *raw) {
            return ldf_vary(model_, pixels.data(), count, variations, strength, raw, out.data(), out.size());
        });
        return out;
    }

private:
    explicit Model(LdfModel *m) : model_(m) {}

    // As the C functions report it: a Gaussian-prior model has no latent space.
    static void require_latents(const LdfModelInfo &i) {
        if (i.latent_dim == 0)
            throw Error(LDF_ERR_UNSUPPORTED, "a Gaussian-prior model has no latents");
    }

    // The library's count limit, checked before the output is allocated.
    static void check_limit(uint32_t count, const char *what) {
        if (count == 0 || count > LDF_MAX_COUNT)
            throw Error(LDF_ERR_INVALID_ARGUMENT,
                        std::string(what) + " must be in 1..=" + std::to_string(LDF_MAX_COUNT));
    }

    static uint32_t checked_count(size_t len, size_t unit, const char *what) {
        if (unit == 0 || len == 0 || len % unit != 0)
            throw Error(LDF_ERR_INVALID_ARGUMENT, std::string(what) + " is not a whole number of items");
        if (len / unit > LDF_MAX_COUNT)
            throw Error(LDF_ERR_INVALID_ARGUMENT,
                        std::string(what) + " holds more than " + std::to_string(LDF_MAX_COUNT) + " items");
        return static_cast<uint32_t>(len / unit);
    }

    LdfModel *model_ = nullptr;
};

}  // namespace lediflow

#endif
