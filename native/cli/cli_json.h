// llava-rad-cli: JSON writers (the same field names and number format as the Node CLI).
#pragma once

#include "llava_rad.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace lrcli {

// appends s as a JSON string; invalid UTF-8 becomes U+FFFD
void json_string(std::string & out, const char * s, size_t n);
// appends ,"key": (no comma before the first key)
void json_key(std::string & out, const char * key, bool & first);
// %.10g, or null when not finite
std::string json_number(double v);
// [1,2,3]
std::string json_ids(const int32_t * ids, size_t n);
// the "model" object of generate --json and the output of info (context_size only when ctx_size > 0)
std::string model_info_json(const lr_model_info & mi, const std::string & path, int32_t ctx_size);

// the CPU code in use (lr_get_cpu_info) as the Node CLI's "cpu" object; engine errors throw EngineError
std::string cpu_info_json();

// a flat object built key by key
class JsonObject {
public:
    JsonObject & str(const char * key, const std::string & v);
    JsonObject & num(const char * key, double v);      // null when not finite
    JsonObject & integer(const char * key, long long v);
    JsonObject & boolean(const char * key, bool v);
    JsonObject & raw(const char * key, const std::string & json); // an already-encoded value
    std::string finish() const { return o_ + "}"; }
private:
    std::string o_ = "{";
    bool first_ = true;
};

} // namespace lrcli
