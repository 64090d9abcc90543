#include "weight_store.h"
#include "cpu_variant.h"
#include "host_memory.h"
#include "status.h"

#include "host_buffer.h"

#include "ggml-cpu.h"

#include <map>

namespace lr {

namespace {

const char * use_name(WeightUse u) {
    switch (u) {
        case WeightUse::Embed: return "an embedding table";
        case WeightUse::MatMul: return "a matrix";
        case WeightUse::Vector: return "an elementwise weight";
        case WeightUse::Conv: return "a convolution kernel";
    }
    return "?";
}

// the op that will use w (built on a dummy context so a device can be asked about it)
ggml_tensor * use_op(ggml_context * ctx, ggml_tensor * w, WeightUse use) {
    switch (use) {
        case WeightUse::Embed: return ggml_get_rows(ctx, w, ggml_new_tensor_1d(ctx, GGML_TYPE_I32, 512));
        case WeightUse::MatMul: return ggml_mul_mat(ctx, w, ggml_new_tensor_2d(ctx, GGML_TYPE_F32, w->ne[0], 512));
        case WeightUse::Vector: { // an activation of w's shape (w may be a table, e.g. position embeddings)
            ggml_tensor * a = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, w->ne[0], w->ne[1], w->ne[2], w->ne[3]);
            return ggml_mul(ctx, a, w);
        }
        case WeightUse::Conv: { // im2col columns times the kernel as a matrix
            ggml_tensor * k = ggml_reshape_2d(ctx, w, w->ne[0] * w->ne[1] * w->ne[2], w->ne[3]);
            return ggml_mul_mat(ctx, k, ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k->ne[0], 512));
        }
    }
    return nullptr;
}

// Would `dev` run the op that uses `t` if it lived in a buffer of type `buft`? (llama.cpp's approach:
// build the op on a dummy tensor and ask the device.)
bool buft_supports(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft, const GgufTensor & t, WeightUse use) {
    ggml_init_params ip = { ggml_tensor_overhead() * 8, nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed");
    ggml_tensor * w = ggml_new_tensor(ctx, t.type, t.n_dims, t.ne);
    ggml_tensor * op = use_op(ctx, w, use);
    w->buffer = ggml_backend_buft_alloc_buffer(buft, 0);
    const bool ok = w->buffer != nullptr && ggml_backend_dev_supports_op(dev, op);
    if (w->buffer) ggml_backend_buffer_free(w->buffer);
    w->buffer = nullptr;
    ggml_free(ctx);
    return ok;
}

// The CPU backend's supports_op answers "yes" for types it would then abort on (an I32 matrix, say),
// so types are checked against the CPU kernels themselves: a matrix needs a dot product (and a way to
// convert activations to its partner type), an embedding table a row conversion to f32.
bool cpu_kernels_exist(ggml_type type, WeightUse use) {
    switch (use) {
        case WeightUse::Vector: return type == GGML_TYPE_F32;
        case WeightUse::Conv: return type == GGML_TYPE_F32 || type == GGML_TYPE_F16;
        case WeightUse::Embed:
            return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ||
                   (ggml_is_quantized(type) && ggml_get_type_traits(type)->to_float != nullptr);
        case WeightUse::MatMul: {
            using traits_fn = const ggml_type_traits_cpu * (*)(ggml_type);
            static const auto traits = reinterpret_cast<traits_fn>(cpu_variant_symbol("ggml_get_type_traits_cpu"));
            if (!traits) fail(LR_ERR_BACKEND, "the CPU backend module does not export ggml_get_type_traits_cpu");
            const ggml_type_traits_cpu * t = traits(type);
            if (t == nullptr || t->vec_dot == nullptr) return false;
            return t->vec_dot_type == GGML_TYPE_F32 || traits(t->vec_dot_type)->from_float != nullptr;
        }
    }
    return false;
}

} // namespace

WeightStore::~WeightStore() {
    for (auto * b : buffers_) ggml_backend_buffer_free(b);
    for (auto * c : contexts_) ggml_free(c);
}

void WeightStore::place(const GgufFile & gguf, const Backends & backends, const std::vector<WeightDecl> & decls, bool use_mmap,
                        bool vnni) {
    // candidate buffer types per use, best first
    ggml_backend_dev_t cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu_dev) fail(LR_ERR_BACKEND, "no CPU device");
    ggml_backend_buffer_type_t cpu_buft = ggml_backend_dev_buffer_type(cpu_dev);
    using Cands = std::vector<std::pair<ggml_backend_dev_t, ggml_backend_buffer_type_t>>;
    Cands matmul, on_device, embed;
    if (backends.gpu_dev) {
        auto gpu_buft = ggml_backend_dev_buffer_type(backends.gpu_dev);
        matmul.push_back({backends.gpu_dev, gpu_buft});
        on_device.push_back({backends.gpu_dev, gpu_buft});
    } else {
        // the CPU backend's repacking buffer types (faster layouts for some quant types), as llama.cpp does
        for (ggml_backend_buffer_type_t b : cpu_extra_buffer_types()) matmul.push_back({cpu_dev, b});
    }
    matmul.push_back({cpu_dev, cpu_buft});
    on_device.push_back({cpu_dev, cpu_buft});
    embed.push_back({cpu_dev, cpu_buft});

    // check every tensor, choose its buffer type
    struct Placed { const WeightDecl * decl; const GgufTensor * src; ggml_backend_buffer_type_t buft; VnniLayout vnni; };
    // matrices repacked for vnni_matmul.h's kernels get their own (copied) CPU buffer, mmap or not, as
    // ggml's repacking buffer types do
    const bool vnni_on = vnni && !backends.gpu && vnni_cpu_supported();
    ggml_backend_buffer_type_t vnni_buft = backends.buffer_type(backends.cpu);
    std::vector<Placed> placed;
    std::map<ggml_type, int64_t> type_bytes;
    for (const WeightDecl & d : decls) {
        const GgufTensor & t = gguf.require_tensor(d.name, d.shape);
        // the CPU computes embeddings always, and everything else when there is no GPU
        if ((d.use == WeightUse::Embed || !backends.gpu) && !cpu_kernels_exist(t.type, d.use)) {
            fail(d.use == WeightUse::MatMul || d.use == WeightUse::Embed ? LR_ERR_UNSUPPORTED : LR_ERR_BAD_GGUF,
                format("%s: tensor '%s' (%s) has type %s, which the CPU backend cannot compute with",
                    gguf.path().c_str(), d.name.c_str(), use_name(d.use), ggml_type_name(t.type)));
        }
        const Cands & cands = d.use == WeightUse::Embed ? embed : d.use == WeightUse::MatMul ? matmul : on_device;
        ggml_backend_buffer_type_t chosen = nullptr;
        for (auto & c : cands) {
            if (buft_supports(c.first, c.second, t, d.use)) { chosen = c.second; break; }
        }
        if (!chosen) {
            fail(LR_ERR_UNSUPPORTED, format("%s: tensor '%s' of type %s cannot be used by the %s backend",
                gguf.path().c_str(), d.name.c_str(), ggml_type_name(t.type), backends.name().c_str()));
        }
        VnniLayout layout = vnni_on && chosen == cpu_buft && d.use == WeightUse::MatMul && t.n_dims == 2
                                ? vnni_layout_for(t.type, t.ne[0], t.ne[1]) : VnniLayout::None;
        if (layout != VnniLayout::None) chosen = vnni_buft;
        // q4_K matrices that ggml repacks into its own 8-row blocks: our kernels read those as they are
        // (checked against the file once copied)
        if (vnni_on && d.use == WeightUse::MatMul && t.type == GGML_TYPE_Q4_K && t.n_dims == 2 &&
            chosen == cpu_repack_buffer_type() && t.ne[0] % ggml_blck_size(GGML_TYPE_Q4_K) == 0 && t.ne[1] % 8 == 0) {
            layout = VnniLayout::Q4_Kx8;
        }
        placed.push_back({&d, &t, chosen, layout});
        n_params += t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
        bytes += (int64_t) t.nbytes;
        if (d.use == WeightUse::MatMul) type_bytes[t.type] += (int64_t) t.nbytes;
    }
    int64_t best = -1;
    for (auto & tb : type_bytes) if (tb.second > best) { best = tb.second; main_type = tb.first; }

    // one metadata context and one buffer per buffer type
    struct Group {
        ggml_backend_buffer_type_t buft;     // placed in
        ggml_backend_buffer_type_t alloc;    // allocated from (the backends' CPU memory for plain CPU weights)
        bool mapped;                         // left in the file mapping
        ggml_context * ctx;
        std::vector<std::pair<const Placed *, ggml_tensor *>> tensors;
    };
    std::vector<Group> groups;
    {
        std::map<ggml_backend_buffer_type_t, size_t> count;
        for (const Placed & p : placed) count[p.buft]++;
        for (auto & c : count) {
            const bool mapped = c.first == cpu_buft && use_mmap;
            groups.push_back({c.first, c.first == cpu_buft ? backends.buffer_type(backends.cpu) : c.first, mapped, nullptr, {}});
            ggml_init_params ip = { ggml_tensor_overhead() * (c.second + 1), nullptr, true };
            groups.back().ctx = ggml_init(ip);
            if (!groups.back().ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed");
            contexts_.push_back(groups.back().ctx);
        }
    }
    for (Group & g : groups) {
        for (const Placed & p : placed) {
            if (p.buft != g.buft) continue;
            ggml_tensor * t = ggml_new_tensor(g.ctx, p.src->type, p.src->n_dims, p.src->ne);
            ggml_set_name(t, p.decl->name.c_str());
            *p.decl->slot = t;
            g.tensors.push_back({&p, t});
        }
    }
    // the copies in this process's memory, written as they are allocated: refused at once when they do not fit
    uint64_t host_copy = 0, plain_copy = 0;
    for (const Group & g : groups) {
        const bool in_host_memory = ggml_backend_buft_is_host(g.alloc) || ggml_backend_buft_get_device(g.buft) == cpu_dev;
        if (g.mapped || !in_host_memory) continue;
        const size_t n = ctx_alloc_size(g.ctx, g.alloc);
        host_copy += n;
        if (g.buft == cpu_buft) plain_copy += n;
    }
    if (host_copy > 0) {
        const std::string hint = plain_copy > 0 ? format("; with mmap, %s of them would be computed from the file mapping instead",
                                                         memory_size(plain_copy).c_str()) : std::string();
        const std::string what = format("copying the weights of %s", gguf.path().c_str());
        try {
            check_host_allocation(host_copy, what);
        } catch (const Error & e) {
            throw Error(e.code, e.what() + hint);
        }
    }
    for (Group & g : groups) {
        ggml_backend_buffer_t buf = nullptr;
        if (g.mapped) {
            // weights stay in the mapping: no copy
            buf = ggml_backend_cpu_buffer_from_ptr(const_cast<uint8_t *>(gguf.base()), gguf.file_size());
            if (!buf) fail(LR_ERR_OUT_OF_MEMORY, "could not wrap the mapped file in a CPU buffer");
            buffers_.push_back(buf);
            for (auto & pt : g.tensors) {
                if (ggml_backend_tensor_alloc(buf, pt.second, const_cast<uint8_t *>(pt.first->src->data)) != GGML_STATUS_SUCCESS) {
                    fail(LR_ERR_INTERNAL, "could not place a mapped tensor");
                }
            }
        } else {
            // plain CPU weights in the backends' CPU memory (huge pages on a CPU-only run)
            buf = ggml_backend_alloc_ctx_tensors_from_buft(g.ctx, g.alloc);
            if (!buf) {
                fail(LR_ERR_OUT_OF_MEMORY, format("could not allocate %s memory for the weights", ggml_backend_buft_name(g.buft)));
            }
            buffers_.push_back(buf);
            // the CPU's repacking buffer types allocate their own memory: advised before it is written
            if (g.buft != cpu_buft && g.buft != vnni_buft && ggml_backend_buft_get_device(g.buft) == cpu_dev) {
                advise_huge_pages(buf);
            }
            for (auto & pt : g.tensors) {
                ggml_tensor * t = pt.second;
                ggml_backend_tensor_set(t, pt.first->src->data, 0, pt.first->src->nbytes);
                if (pt.first->vnni == VnniLayout::Q4_Kx8) {
                    if (vnni_q4_Kx8_matches(t->data, pt.first->src->data, t->ne[0])) vnni_[t] = VnniLayout::Q4_Kx8;
                } else if (pt.first->vnni != VnniLayout::None) {
                    vnni_repack(pt.first->vnni, t->data, t->ne[0], t->ne[1]);
                    vnni_[t] = pt.first->vnni;
                }
                // copied (repacked, or into device / non-mapped memory): its mapped pages are not read again
                gguf.release(pt.first->src->data, pt.first->src->nbytes);
            }
        }
        ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    }
}

} // namespace lr
