// Errors inside the engine: one exception type carrying a public status code.
// Every C API entry point catches it (and everything else) and turns it into an lr_status.
#pragma once

#include "llava_rad.h"

#include <stdexcept>
#include <string>

namespace lr {

struct Error : std::runtime_error {
    lr_status code;
    Error(lr_status code, const std::string & message) : std::runtime_error(message), code(code) {}
};

// printf-style formatting into a std::string
std::string format(const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

[[noreturn]] void fail(lr_status code, const std::string & message);

// the status and message of the exception being handled (call inside a catch block): lr::Error's own code,
// std::bad_alloc as LR_ERR_OUT_OF_MEMORY, anything else as LR_ERR_INTERNAL
lr_status current_exception_status(std::string & message);

} // namespace lr
