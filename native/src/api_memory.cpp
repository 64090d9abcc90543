// C API: host memory, for callers that hold memory the engine hands them (the addon's kept logits).
#include "api_guard.h"
#include "host_memory.h"

extern "C" {

lr_status lr_check_host_memory(uint64_t bytes, const char * what) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(what != nullptr, "lr_check_host_memory: what must not be NULL");
        lr::check_host_allocation(bytes, what);
    });
}

} // extern "C"
