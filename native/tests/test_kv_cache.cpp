#include "harness.h"
#include "kv_cache.h"

#include <cmath>

namespace {

lr::LlamaHParams tiny_hparams() {
    lr::LlamaHParams hp;
    hp.n_vocab = 10; hp.n_ctx_train = 64; hp.n_embd = 8; hp.n_layer = 1; hp.n_head = 2; hp.n_head_kv = 2; hp.n_ff = 16; hp.n_rot = 4;
    return hp;
}

bool visible(const std::vector<float> & mask, int n_kv, int t, int c) { return mask[(size_t) (t * n_kv + c)] == 0.0f; }

} // namespace

TEST("kv cache: a token sees its own sequence up to its position, nothing else") {
    lr::Backends b;
    lr::init_backends(b, LR_BACKEND_CPU, 1);
    lr::KvCache kv(tiny_hparams(), b, 16, 2, GGML_TYPE_F16, true);
    std::vector<int32_t> cells;
    CHECK(kv.place({0, 0, 1}, {0, 1, 0}, cells));
    CHECK(cells == std::vector<int32_t>({0, 1, 2}));
    CHECK(kv.seq_length(0) == 2 && kv.seq_length(1) == 1);
    CHECK(kv.n_kv() == 16); // padded range, capped at the cache size

    std::vector<float> mask(16 * 3);
    kv.fill_mask(mask.data(), 16, {0, 0, 1}, {0, 1, 0});
    CHECK(visible(mask, 16, 0, 0) && !visible(mask, 16, 0, 1) && !visible(mask, 16, 0, 2));
    CHECK(visible(mask, 16, 1, 0) && visible(mask, 16, 1, 1) && !visible(mask, 16, 1, 2));
    CHECK(!visible(mask, 16, 2, 0) && !visible(mask, 16, 2, 1) && visible(mask, 16, 2, 2));
    for (int c = 3; c < 16; c++) CHECK(!visible(mask, 16, 1, c) && std::isinf(mask[(size_t) (16 + c)]));
}

TEST("kv cache: truncating a sequence frees its cells for reuse; a full cache refuses") {
    lr::Backends b;
    lr::init_backends(b, LR_BACKEND_CPU, 1);
    lr::KvCache kv(tiny_hparams(), b, 4, 2, GGML_TYPE_F16, false);
    std::vector<int32_t> cells;
    CHECK(kv.place({0, 0, 0}, {0, 1, 2}, cells));
    CHECK(!kv.place({1, 1}, {0, 1}, cells));
    CHECK(kv.free_cells() == 1);
    kv.truncate(0, 1);
    CHECK(kv.seq_length(0) == 1 && kv.free_cells() == 3);
    CHECK(kv.place({1, 1}, {0, 1}, cells));
    CHECK(cells == std::vector<int32_t>({1, 2}));
}
