#include "host_buffer.h"

#include "ggml-backend-impl.h" // the buffer type interface: this file defines one

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace lr {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kSmallAlign = 64; // ggml's TENSOR_ALIGNMENT is 32; a cache line is enough

// The plain CPU buffer's functions (base address, tensor get/set, clear, copy), taken from a buffer that
// wraps foreign memory, with a free_buffer that releases our allocation.
ggml_backend_buffer_i host_buffer_iface() {
    static const ggml_backend_buffer_i iface = [] {
        alignas(kSmallAlign) static uint8_t probe[kSmallAlign];
        ggml_backend_buffer_t b = ggml_backend_cpu_buffer_from_ptr(probe, sizeof probe);
        ggml_backend_buffer_i i = b->iface;
        ggml_backend_buffer_free(b); // a wrapping buffer owns no memory: this frees the struct only
        i.free_buffer = [](ggml_backend_buffer_t buf) { std::free(buf->context); };
        return i;
    }();
    return iface;
}

const char * buft_name(ggml_backend_buffer_type_t) { return "CPU_HUGE_PAGES"; }

ggml_backend_buffer_t buft_alloc(ggml_backend_buffer_type_t buft, size_t size) {
    const size_t n = std::max<size_t>(size, 1);
    const bool huge = n >= kHugePage;
    const size_t align = huge ? kHugePage : kSmallAlign;
    const size_t rounded = (n + align - 1) / align * align;
    void * p = nullptr;
    if (posix_memalign(&p, align, rounded) != 0 || p == nullptr) return nullptr;
    if (huge) (void) madvise(p, rounded, MADV_HUGEPAGE);
    return ggml_backend_buffer_init(buft, host_buffer_iface(), p, size);
}

size_t buft_alignment(ggml_backend_buffer_type_t) {
    return ggml_backend_buft_get_alignment(ggml_backend_cpu_buffer_type());
}

bool buft_is_host(ggml_backend_buffer_type_t) { return true; }

} // namespace

ggml_backend_buffer_type_t huge_page_buffer_type() {
    static ggml_backend_buffer_type type = {
        /* .iface   = */ {
            /* .get_name       = */ buft_name,
            /* .alloc_buffer   = */ buft_alloc,
            /* .get_alignment  = */ buft_alignment,
            /* .get_max_size   = */ nullptr,
            /* .get_alloc_size = */ nullptr,
            /* .is_host        = */ buft_is_host,
        },
        /* .device  = */ ggml_backend_cpu_buffer_type()->device,
        /* .context = */ nullptr,
    };
    return &type;
}

void advise_huge_pages(ggml_backend_buffer_t buf) {
    const uintptr_t base = (uintptr_t) ggml_backend_buffer_get_base(buf);
    const uintptr_t lo = (base + kHugePage - 1) & ~(uintptr_t) (kHugePage - 1);
    const uintptr_t hi = (base + ggml_backend_buffer_get_size(buf)) & ~(uintptr_t) (kHugePage - 1);
    if (hi > lo) (void) madvise((void *) lo, hi - lo, MADV_HUGEPAGE);
}

} // namespace lr
