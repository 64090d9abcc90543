// Mutation fuzzing of model loading: a valid GGUF (the path is the first extra argument) is damaged in
// many seeded ways and loaded through the C API. Every outcome must be a status code; a crash, an abort
// or a sanitizer report fails the run. (Run under -fsanitize=address,undefined locally for the strong
// version of this check.)
#include "harness.h"
#include "llava_rad.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

std::vector<uint8_t> read_file(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const std::string & path, const std::vector<uint8_t> & data, size_t n) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char *>(data.data()), (std::streamsize) n);
}

// header + metadata + tensor infos end well before this for the fixtures (the vocabulary is ~0.7 MB)
size_t header_span(const std::vector<uint8_t> & d) { return std::min<size_t>(d.size(), 1u << 20); }

} // namespace

TEST("gguf fuzz: 1000 damaged copies of a valid model give status codes, never a crash") {
    CHECK_MSG(!lrtest::args().empty(), "usage: llava-rad-tests 'gguf fuzz' FILE.gguf");
    const std::vector<uint8_t> orig = read_file(lrtest::args()[0]);
    CHECK_MSG(orig.size() > 1024, "the seed GGUF could not be read");
    const std::string tmp = "/tmp/llava-rad-fuzz-" + std::to_string(getpid()) + ".gguf";
    std::mt19937_64 rng(20261128);
    int ok = 0, bad = 0, other = 0;
    for (int iter = 0; iter < 1000; iter++) {
        std::vector<uint8_t> d = orig;
        size_t n = d.size();
        const size_t span = header_span(d);
        switch (iter % 5) {
            case 0: { // flip a few bytes anywhere in the header region
                for (int k = 0; k < 1 + (int) (rng() % 8); k++) d[rng() % span] ^= (uint8_t) (1u << (rng() % 8));
                break;
            }
            case 1: { // overwrite a u64 with an extreme value (lengths, counts, offsets, dims)
                static const uint64_t extremes[] = {0, 1, 0x7fffffffffffffffull, 0xffffffffffffffffull, 0x100000000ull, 32, 4097};
                const size_t at = rng() % (span - 8);
                const uint64_t v = extremes[rng() % (sizeof(extremes) / sizeof(extremes[0]))];
                std::memcpy(&d[at], &v, 8);
                break;
            }
            case 2: { // truncate anywhere
                n = rng() % d.size();
                break;
            }
            case 3: { // the first 64 bytes: counts and the first key
                for (int k = 0; k < 3; k++) d[rng() % 64] = (uint8_t) rng();
                break;
            }
            case 4: { // overwrite a u32 (types, dimension counts, ggml types)
                const size_t at = rng() % (span - 4);
                const uint32_t v = (uint32_t) (rng() % 64);
                std::memcpy(&d[at], &v, 4);
                break;
            }
        }
        write_file(tmp, d, n);
        lr_model_params p = lr_model_default_params();
        p.backend = LR_BACKEND_CPU;
        p.n_threads = 1;
        lr_model * m = nullptr;
        const lr_status st = lr_model_load(tmp.c_str(), &p, &m);
        if (st == LR_OK) {
            ok++;
            // a file that still loads must also tokenize without trouble
            int32_t ids[64];
            size_t nt = 0;
            if (lr_tokenize(m, "No acute cardiopulmonary process.", 33, 1, ids, 64, &nt) == LR_OK) {
                // ... and compute: a context and two generated tokens (types and shapes reach ggml here)
                lr_context_params cp = lr_context_default_params();
                cp.n_ctx = 256;
                lr_context * c = nullptr;
                if (lr_context_create(m, &cp, &c) == LR_OK) {
                    lr_prompt_part part{ids, nt, nullptr, 0};
                    lr_gen_params gp = lr_gen_default_params();
                    gp.max_tokens = 2;
                    int32_t out[2];
                    lr_gen_result r{};
                    lr_generate(c, &part, 1, &gp, out, 2, &r);
                    lr_context_free(c);
                }
            }
            lr_model_free(m);
        } else if (st == LR_ERR_BAD_GGUF || st == LR_ERR_UNSUPPORTED) {
            bad++;
            CHECK_MSG(std::strlen(lr_last_error()) > 0, "an error without a message");
        } else {
            other++;
            CHECK_MSG(false, std::string("unexpected status ") + lr_status_name(st) + ": " + lr_last_error());
        }
    }
    std::remove(tmp.c_str());
    std::printf("     fuzz: %d loaded, %d rejected, %d other\n", ok, bad, other);
    CHECK(bad > 500);
}
