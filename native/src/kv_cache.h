// The KV cache: per layer one K and one V tensor of `size` cells, shared by all sequences.
// Each cell holds one (sequence, position); the attention mask lets a token see exactly the cells of
// its own sequence at positions <= its own.
#pragma once

#include "backend.h"
#include "hparams.h"

#include "ggml.h"
#include "ggml-backend.h"

#include <cstdint>
#include <vector>

namespace lr {

class KvCache {
public:
    // v_trans: V stored transposed ([cells, n_embd_kv]) for the mul_mat attention path; flash attention
    // reads it untransposed.
    KvCache(const LlamaHParams & hp, const Backends & backends, int32_t size, int32_t n_seq_max, ggml_type type, bool v_trans);
    ~KvCache();
    KvCache(const KvCache &) = delete;
    KvCache & operator=(const KvCache &) = delete;

    int32_t size() const { return size_; }
    int32_t n_seq_max() const { return n_seq_max_; }
    ggml_type type() const { return type_; }
    bool v_trans() const { return v_trans_; }
    ggml_tensor * k(int il) const { return k_[(size_t) il]; } // [n_embd_kv, size]
    ggml_tensor * v(int il) const { return v_[(size_t) il]; } // [n_embd_kv, size] or transposed
    size_t bytes() const;

    // Walsh-Hadamard rotation sizes for a quantized cache (0: none). llama.cpp rotates Q/K and V by an
    // orthonormal Hadamard matrix before a quantized cache stores them (q.k is unchanged, quantization
    // error is spread evenly); the attention output is rotated back.
    int32_t rot_k() const { return rot_k_; }
    int32_t rot_v() const { return rot_v_; }

    int32_t seq_length(int32_t seq) const { return seq_len_[(size_t) seq]; }
    int32_t free_cells() const;

    // Reserve cells for tokens (seq[i], pos[i]); returns false (and changes nothing) when there is no room.
    // Positions must continue each sequence (checked by the caller).
    bool place(const std::vector<int32_t> & seq, const std::vector<int32_t> & pos, std::vector<int32_t> & cells_out);
    // forget positions >= p0 of a sequence
    void truncate(int32_t seq, int32_t p0);

    // cells to attend over for the next graph: the used range, padded to a multiple of 256 (as llama.cpp,
    // which keeps graph shapes stable and results independent of how full the cache is)
    int32_t n_kv() const;
    // mask[t * n_kv + c] = 0 if token t (seq[t], pos[t]) may see cell c, else -inf
    void fill_mask(float * mask, int32_t n_kv, const std::vector<int32_t> & seq, const std::vector<int32_t> & pos) const;

private:
    struct Cell { int32_t seq = -1; int32_t pos = -1; };
    int32_t size_;
    int32_t n_seq_max_;
    ggml_type type_;
    bool v_trans_;
    int32_t rot_k_ = 0, rot_v_ = 0;
    std::vector<Cell> cells_;
    std::vector<int32_t> seq_len_;
    int32_t used_max_p1_ = 0; // 1 + highest occupied cell
    ggml_context * ctx_ = nullptr;
    ggml_backend_buffer_t buf_ = nullptr;
    std::vector<ggml_tensor *> k_, v_;

    void update_used_max();
};

// the n x n orthonormal Walsh-Hadamard matrix (n a power of two), row-major; its own inverse
std::vector<float> hadamard_matrix(int32_t n);

} // namespace lr
