// lr_status_name / lr_last_error: the thread-local error message behind every failing C API call.
#include "api_guard.h"

namespace {
thread_local std::string t_last_error;
}

namespace lr {

void set_last_error(const std::string & message) { t_last_error = message; }

lr_status guard_exceptions(const std::function<void()> & body) {
    try {
        body();
        return LR_OK;
    } catch (...) {
        std::string message;
        const lr_status s = current_exception_status(message);
        set_last_error(message);
        return s;
    }
}

} // namespace lr

extern "C" {

const char * lr_status_name(lr_status status) {
    switch (status) {
        case LR_OK:                   return "LR_OK";
        case LR_ERR_INVALID_ARGUMENT: return "LR_ERR_INVALID_ARGUMENT";
        case LR_ERR_IO:               return "LR_ERR_IO";
        case LR_ERR_BAD_GGUF:         return "LR_ERR_BAD_GGUF";
        case LR_ERR_UNSUPPORTED:      return "LR_ERR_UNSUPPORTED";
        case LR_ERR_OUT_OF_MEMORY:    return "LR_ERR_OUT_OF_MEMORY";
        case LR_ERR_CONTEXT_FULL:     return "LR_ERR_CONTEXT_FULL";
        case LR_ERR_BACKEND:          return "LR_ERR_BACKEND";
        case LR_ERR_CANCELLED:        return "LR_ERR_CANCELLED";
        case LR_ERR_BUFFER_TOO_SMALL: return "LR_ERR_BUFFER_TOO_SMALL";
        case LR_ERR_INTERNAL:         return "LR_ERR_INTERNAL";
    }
    return "LR_ERR_UNKNOWN";
}

const char * lr_last_error(void) { return t_last_error.c_str(); }

} // extern "C"
