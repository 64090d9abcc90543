// llava-rad-cli vision: encode synthetic images with a vision GGUF (timing, checksum, raw dump).
#include "cli_args.h"
#include "cli_commands.h"
#include "cli_engine.h"
#include "cli_json.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace lrcli {

int cmd_vision(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {
        {"model", 'm', true}, {"images", 0, true}, {"batch", 0, true}, {"output", 0, true}, {"dump", 0, true},
        {"threads", 't', true}, {"backend", 0, true}, {"json", 0, false}, {"help", 'h', false},
    }, "vision");
    if (a.flags.count("help")) {
        print_usage(stdout);
        return 0;
    }
    const std::string path = require_model(a, "vision");
    long long n_images = 1, batch = 8, threads = 0;
    get_int(a, "images", 1, 4096, n_images);
    get_int(a, "batch", 1, 256, batch);
    get_int(a, "threads", 1, 1024, threads);
    lr_vision_output which = LR_VISION_PROJECTED;
    auto oit = a.values.find("output");
    if (oit != a.values.end()) {
        if (oit->second == "features") which = LR_VISION_FEATURES;
        else if (oit->second != "projected") throw UsageError{"--output must be projected or features, got '" + oit->second + "'"};
    }
    lr_model_params mp = lr_model_default_params();
    mp.backend = get_backend(a);
    mp.n_threads = (int32_t) threads;
    VisionHolder vh;
    const auto t0 = std::chrono::steady_clock::now();
    lr_status s = lr_vision_load(path.c_str(), &mp, (int32_t) batch, &vh.v);
    if (s != LR_OK) engine_fail(s, "could not load the vision model");
    lr_vision_info vi{};
    s = lr_vision_get_info(vh.v, &vi);
    if (s != LR_OK) engine_fail(s, "could not read the vision model's info");
    const auto t1 = std::chrono::steady_clock::now();

    const size_t per_in = (size_t) 3 * vi.image_size * vi.image_size;
    std::vector<float> pixels(per_in * (size_t) n_images);
    for (long long i = 0; i < n_images; i++) synthetic_image(vi.image_size, i % 2 == 1, vi.image_mean, vi.image_std, pixels.data() + (size_t) i * per_in);
    const size_t width = (size_t) (which == LR_VISION_FEATURES ? vi.n_embd : vi.n_out);
    std::vector<float> out((size_t) n_images * (size_t) vi.n_patches * width);
    const auto t2 = std::chrono::steady_clock::now();
    s = lr_vision_encode(vh.v, pixels.data(), (int32_t) n_images, which, out.data(), out.size());
    if (s != LR_OK) engine_fail(s, "encoding failed");
    const auto t3 = std::chrono::steady_clock::now();
    const Checksum sums = dump_floats(a, out);
    const double load_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    const double encode_ms = std::chrono::duration<double, std::milli>(t3 - t2).count();
    if (!a.flags.count("json")) {
        std::printf("%lld image(s) in %.1f ms (%.1f ms per image), backend %s, output %s [%lld x %d x %zu], sum %.6g, sum|.| %.6g\n",
                    n_images, encode_ms, encode_ms / (double) n_images, vi.backend, which == LR_VISION_FEATURES ? "features" : "projected",
                    n_images, vi.n_patches, width, sums.sum, sums.sum_abs);
        return 0;
    }
    std::string o = "{";
    bool first = true;
    json_key(o, "backend", first); json_string(o, vi.backend, std::strlen(vi.backend));
    json_key(o, "images", first); o += std::to_string(n_images);
    json_key(o, "batch", first); o += std::to_string(batch);
    json_key(o, "load_ms", first); o += json_number(load_ms);
    json_key(o, "encode_ms", first); o += json_number(encode_ms);
    json_key(o, "ms_per_image", first); o += json_number(encode_ms / (double) n_images);
    json_key(o, "n_patches", first); o += std::to_string(vi.n_patches);
    json_key(o, "width", first); o += std::to_string(width);
    print_json_with_checksum(o, first, sums);
    return 0;
}

} // namespace lrcli
