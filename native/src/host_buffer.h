// CPU memory in transparent huge pages (2 MiB) for the buffers a CPU-only run streams through on every
// token: the weights, the KV cache and the graphs' compute buffers. With 4 KiB pages the TLB misses and the
// hardware prefetchers stop at every page boundary; with THP in `madvise` mode (a common distribution default)
// memory only gets huge pages when asked for, and llama.cpp does not ask. A kernel without THP ignores the
// advice, and nothing else changes: the buffers behave as ggml's plain CPU buffers.
#pragma once

#include "ggml-backend.h"

namespace lr {

// A host buffer type: buffers of at least one huge page are 2 MiB-aligned and advised MADV_HUGEPAGE before
// their first use; smaller ones are plain aligned memory. Tensors in it are ordinary CPU tensors.
ggml_backend_buffer_type_t huge_page_buffer_type();

// Advise the 2 MiB-aligned interior of a host buffer allocated elsewhere (e.g. by the CPU backend's
// repacking buffer type); call it before the buffer is written.
void advise_huge_pages(ggml_backend_buffer_t buf);

} // namespace lr
