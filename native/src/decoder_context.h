// A decoder context: the KV cache, the graph scheduler and the batch runner. Computes batches of
// tokens / embedding rows for any mix of sequences and keeps the logits that were asked for.
#pragma once

#include "decoder_graph.h"
#include "decoder_model.h"
#include "kv_cache.h"

#include "ggml-backend.h"

#include <memory>
#include <vector>

namespace lr {

struct DecoderContextParams {
    int32_t n_ctx = 4096;
    int32_t n_batch = 512;
    int32_t n_seq_max = 1;
    ggml_type kv_type = GGML_TYPE_F16;
    bool flash_attn = false;
    int32_t n_threads = 0;
};

// faults a test can make the next decode raise (after its rows took their KV cells): see lr_debug_fault
enum class DecoderFault { None, BackendError, OutOfMemory };

// one row of a batch
struct BatchRow {
    int32_t token;        // id, or LR_TOKEN_EMBD
    const float * embd;   // n_embd floats when token == LR_TOKEN_EMBD
    int32_t pos;
    int32_t seq;
    bool logits;
};

class DecoderContext {
public:
    DecoderContext(const DecoderModel & model, const DecoderContextParams & params);
    ~DecoderContext();
    DecoderContext(const DecoderContext &) = delete;
    DecoderContext & operator=(const DecoderContext &) = delete;

    // Checks every row (ids in range, sequences valid, positions continuing their sequence, room in the
    // cache); throws lr::Error before anything is computed.
    void validate(const std::vector<BatchRow> & rows) const;
    // Computes the rows (in n_batch chunks). Logits of rows with logits=true are kept in order. When it
    // throws, every sequence in the batch is cut back to its length before the call: the cache is as if
    // the batch never ran. A computation stopped by the abort callback throws LR_ERR_CANCELLED.
    void decode(const std::vector<BatchRow> & rows);
    // asked after each graph node on the CPU (the GPU's graphs run to the end)
    void set_abort_callback(ggml_abort_callback cb, void * data);
    void inject_fault(DecoderFault f) { fault_ = f; }

    const float * logits(int32_t i) const; // i-th kept row, or nullptr
    int32_t n_logits() const { return n_out_; }

    const DecoderModel & model() const { return model_; }
    KvCache & kv() { return *kv_; }
    const KvCache & kv() const { return *kv_; }
    const DecoderContextParams & params() const { return params_; }
    int32_t n_threads() const { return backends_.n_threads; }

private:
    const DecoderModel & model_;
    DecoderContextParams params_;
    Backends backends_;
    std::unique_ptr<KvCache> kv_;
    ggml_backend_sched_t sched_ = nullptr;
    std::vector<uint8_t> meta_;          // memory for graph metadata
    // the last graph, reused while batches keep its shape (decode steps mostly do), as llama.cpp does
    ggml_context * graph_ctx_ = nullptr;
    ggml_cgraph * graph_ = nullptr;
    GraphInputs graph_in_;
    GraphShape graph_shape_;
    std::vector<float> logits_;          // [n_out_, n_vocab]
    int32_t n_out_ = 0;

    // host staging for inputs
    std::vector<int32_t> tok_ids_, order_, pos_, seq_, out_ids_;
    std::vector<int64_t> k_idxs_, v_idxs_;
    std::vector<float> embd_, mask_;
    std::vector<ggml_fp16_t> mask_f16_;
    std::vector<float> rot_k_, rot_v_;   // Hadamard matrices for a quantized cache
    DecoderFault fault_ = DecoderFault::None;

    void decode_ubatch(const BatchRow * rows, int32_t n);
    void reserve();
    // builds (or keeps) the graph for a shape; allocates it on the scheduler when built
    void prepare_graph(const GraphShape & s);
    void drop_graph();
};

} // namespace lr
