#include "kv_cache.h"
#include "host_memory.h"
#include "status.h"

#include <algorithm>
#include <cmath>

namespace lr {

namespace {
constexpr int32_t kKvPad = 256; // n_kv granularity, as llama.cpp
}

KvCache::KvCache(const LlamaHParams & hp, const Backends & backends, int32_t size, int32_t n_seq_max, ggml_type type, bool v_trans)
    : size_(size), n_seq_max_(n_seq_max), type_(type), v_trans_(v_trans),
      cells_((size_t) size), seq_len_((size_t) n_seq_max, 0) {
    // rotation sizes as llama.cpp chooses them: K by the largest power of two (>= 64) dividing the head
    // size, V by 64; only for quantized caches and head sizes that are multiples of 64
    const int32_t head = hp.head_dim();
    if (ggml_is_quantized(type) && head % 64 == 0) {
        int32_t n = 64;
        while (head % (n * 2) == 0) n *= 2;
        rot_k_ = n;
        rot_v_ = 64;
    }
    ggml_init_params ip = { ggml_tensor_overhead() * (size_t) (2 * hp.n_layer + 1), nullptr, true };
    ctx_ = ggml_init(ip);
    if (!ctx_) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed for the KV cache");
    for (int il = 0; il < hp.n_layer; il++) {
        ggml_tensor * k = ggml_new_tensor_2d(ctx_, type, hp.n_embd_kv(), size);
        ggml_tensor * v = ggml_new_tensor_2d(ctx_, type, hp.n_embd_kv(), size);
        ggml_format_name(k, "cache_k_l%d", il);
        ggml_format_name(v, "cache_v_l%d", il);
        k_.push_back(k);
        v_.push_back(v);
    }
    ggml_backend_buffer_type_t buft = backends.buffer_type(backends.main());
    if (!backends.gpu) {
        // the cache is written (cleared) at once: one that does not fit is refused, not left to the OOM killer
        try {
            check_host_allocation(ctx_alloc_size(ctx_, buft),
                format("a KV cache of %d cells (%s; %d layers x %d values x 2)", size, ggml_type_name(type), hp.n_layer, hp.n_embd_kv()));
        } catch (...) {
            ggml_free(ctx_);
            ctx_ = nullptr;
            throw;
        }
    }
    buf_ = ggml_backend_alloc_ctx_tensors_from_buft(ctx_, buft);
    if (!buf_) {
        ggml_free(ctx_);
        fail(LR_ERR_OUT_OF_MEMORY, format("could not allocate the KV cache (%d cells)", size));
    }
    ggml_backend_buffer_clear(buf_, 0); // stale values would be masked anyway, but NaN * 0 is NaN
}

KvCache::~KvCache() {
    if (buf_) ggml_backend_buffer_free(buf_);
    if (ctx_) ggml_free(ctx_);
}

size_t KvCache::bytes() const { return buf_ ? ggml_backend_buffer_get_size(buf_) : 0; }

int32_t KvCache::free_cells() const {
    int32_t n = 0;
    for (auto & c : cells_) n += c.seq < 0;
    return n;
}

bool KvCache::place(const std::vector<int32_t> & seq, const std::vector<int32_t> & pos, std::vector<int32_t> & cells_out) {
    cells_out.clear();
    // first fit: a single sequence fills cells in order, like llama.cpp's
    for (int32_t c = 0; c < size_ && cells_out.size() < seq.size(); c++) {
        if (cells_[(size_t) c].seq < 0) cells_out.push_back(c);
    }
    if (cells_out.size() < seq.size()) {
        cells_out.clear();
        return false;
    }
    for (size_t i = 0; i < seq.size(); i++) {
        Cell & cell = cells_[(size_t) cells_out[i]];
        cell.seq = seq[i];
        cell.pos = pos[i];
        seq_len_[(size_t) seq[i]] = std::max(seq_len_[(size_t) seq[i]], pos[i] + 1);
    }
    update_used_max();
    return true;
}

void KvCache::truncate(int32_t seq, int32_t p0) {
    for (auto & c : cells_) {
        if (c.seq == seq && c.pos >= p0) c = Cell{};
    }
    seq_len_[(size_t) seq] = std::min(seq_len_[(size_t) seq], std::max(p0, 0));
    update_used_max();
}

void KvCache::update_used_max() {
    used_max_p1_ = 0;
    for (int32_t c = size_ - 1; c >= 0; c--) {
        if (cells_[(size_t) c].seq >= 0) { used_max_p1_ = c + 1; break; }
    }
}

int32_t KvCache::n_kv() const {
    const int32_t padded = (used_max_p1_ + kKvPad - 1) / kKvPad * kKvPad;
    return std::min(size_, std::max(kKvPad, padded));
}

std::vector<float> hadamard_matrix(int32_t n) {
    // H_1 = [1/sqrt(n)], H_2s = [[H_s, H_s], [H_s, -H_s]]
    std::vector<float> h((size_t) n * (size_t) n, 0.0f);
    h[0] = 1.0f / std::sqrt((float) n);
    for (int32_t s = 1; s < n; s *= 2) {
        for (int32_t i = 0; i < s; i++) {
            for (int32_t j = 0; j < s; j++) {
                const float v = h[(size_t) i * n + j];
                h[(size_t) (i + s) * n + j] = v;
                h[(size_t) i * n + (j + s)] = v;
                h[(size_t) (i + s) * n + (j + s)] = -v;
            }
        }
    }
    return h;
}

void KvCache::fill_mask(float * mask, int32_t n_kv, const std::vector<int32_t> & seq, const std::vector<int32_t> & pos) const {
    for (size_t t = 0; t < seq.size(); t++) {
        float * row = mask + t * (size_t) n_kv;
        for (int32_t c = 0; c < n_kv; c++) {
            const Cell & cell = cells_[(size_t) c];
            row[c] = (cell.seq == seq[t] && cell.pos <= pos[t]) ? 0.0f : -INFINITY;
        }
    }
}

} // namespace lr
