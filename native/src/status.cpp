#include "status.h"

#include <cstdarg>
#include <cstdio>
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

} // namespace lr
