#include "status.h"

#include <cstdarg>
#include <cstdio>
#include <new>
#include <vector>

namespace lr {

std::string format(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    const int n = std::vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string out;
    if (n > 0) {
        std::vector<char> buf((size_t) n + 1);
        std::vsnprintf(buf.data(), buf.size(), fmt, ap2);
        out.assign(buf.data(), (size_t) n);
    }
    va_end(ap2);
    return out;
}

void fail(lr_status code, const std::string & message) {
    throw Error(code, message);
}

lr_status current_exception_status(std::string & message) {
    try {
        throw;
    } catch (const Error & e) {
        message = e.what();
        return e.code;
    } catch (const std::bad_alloc &) {
        message = "out of memory";
        return LR_ERR_OUT_OF_MEMORY;
    } catch (const std::exception & e) {
        message = std::string("internal error: ") + e.what();
        return LR_ERR_INTERNAL;
    } catch (...) {
        message = "internal error: unknown exception";
        return LR_ERR_INTERNAL;
    }
}

} // namespace lr
