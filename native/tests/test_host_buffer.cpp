#include "harness.h"
#include "host_buffer.h"

#include "ggml.h"
#include "backend.h"

#include <cstdint>
#include <vector>

TEST("huge-page buffers: host memory, 2 MiB-aligned when large, usable as ordinary CPU tensors") {
    ggml_backend_buffer_type_t buft = lr::huge_page_buffer_type();
    CHECK(ggml_backend_buft_is_host(buft));

    // a CPU backend accepts it (the graph scheduler asserts this for its compute buffers)
    ggml_backend_t cpu = lr::new_cpu_backend(1);
    CHECK(ggml_backend_supports_buft(cpu, buft));

    // a 3 MiB f32 tensor: written, read back, added on the CPU backend
    ggml_init_params ip = { ggml_tensor_overhead() * 4 + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    const int64_t n = (int64_t) 3 << 18; // 786432 floats = 3 MiB
    ggml_tensor * a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, n);
    ggml_tensor * s = ggml_add(ctx, a, a);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, buft);
    CHECK(buf != nullptr);
    CHECK(((uintptr_t) ggml_backend_buffer_get_base(buf)) % ((uintptr_t) 2 << 20) == 0);
    std::vector<float> in((size_t) n), out((size_t) n);
    for (int64_t i = 0; i < n; i++) in[(size_t) i] = (float) (i % 1000) - 500.0f;
    ggml_backend_tensor_set(a, in.data(), 0, ggml_nbytes(a));
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, s);
    CHECK(ggml_backend_graph_compute(cpu, gf) == GGML_STATUS_SUCCESS);
    ggml_backend_tensor_get(s, out.data(), 0, ggml_nbytes(s));
    bool same = true;
    for (int64_t i = 0; i < n; i++) same = same && out[(size_t) i] == 2.0f * in[(size_t) i];
    CHECK(same);
    ggml_backend_buffer_free(buf);

    // a small buffer is plain aligned memory
    ggml_backend_buffer_t small = ggml_backend_buft_alloc_buffer(buft, 1000);
    CHECK(small != nullptr && ggml_backend_buffer_get_size(small) == 1000);
    CHECK(((uintptr_t) ggml_backend_buffer_get_base(small)) % ggml_backend_buft_get_alignment(buft) == 0);
    ggml_backend_buffer_free(small);

    ggml_free(ctx);
    ggml_backend_free(cpu);
}
