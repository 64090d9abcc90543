// Helpers for the C API entry points: run a body, turn any exception into a status + message.
#pragma once

#include "status.h"

#include <functional>
#include <string>

namespace lr {

void set_last_error(const std::string & message);
lr_status guard_exceptions(const std::function<void()> & body);

// argument check for C API entry points
#define LR_REQUIRE_ARG(cond, msg) do { if (!(cond)) ::lr::fail(LR_ERR_INVALID_ARGUMENT, (msg)); } while (0)

} // namespace lr
