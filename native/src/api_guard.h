// Helpers for the C API entry points: run a body, turn any exception into a status + message.
#pragma once

#include "status.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>

namespace lr {

void set_last_error(const std::string & message);
lr_status guard_exceptions(const std::function<void()> & body);

// copies src into a fixed-size char field of a C API struct, cut to fit, always NUL-terminated
inline void copy_str(char * dst, size_t cap, const std::string & src) {
    const size_t n = std::min(cap - 1, src.size());
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

// argument check for C API entry points
#define LR_REQUIRE_ARG(cond, msg) do { if (!(cond)) ::lr::fail(LR_ERR_INVALID_ARGUMENT, (msg)); } while (0)

} // namespace lr
