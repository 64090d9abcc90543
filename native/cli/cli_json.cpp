#include "cli_json.h"
#include "cli_engine.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace lrcli {

// appends s as a JSON string; invalid UTF-8 becomes U+FFFD
void json_string(std::string & out, const char * s, size_t n) {
    out += '"';
    size_t i = 0;
    while (i < n) {
        const unsigned char c = (unsigned char) s[i];
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                default:
                    if (c < 0x20 || c == 0x7f) {
                        char buf[8];
                        std::snprintf(buf, sizeof buf, "\\u%04x", c);
                        out += buf;
                    } else {
                        out += (char) c;
                    }
            }
            ++i;
            continue;
        }
        size_t len = 0;
        uint32_t cp = 0;
        if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            const unsigned char cc = (unsigned char) s[i + k];
            if ((cc & 0xc0) != 0x80) ok = false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))) ok = false;
        if (ok) {
            out.append(s + i, len);
            i += len;
        } else {
            out += "\xef\xbf\xbd";
            ++i;
        }
    }
    out += '"';
}

void json_key(std::string & out, const char * key, bool & first) {
    if (!first) out += ',';
    first = false;
    json_string(out, key, std::strlen(key));
    out += ':';
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

std::string json_ids(const int32_t * ids, size_t n) {
    std::string s = "[";
    for (size_t i = 0; i < n; ++i) {
        if (i) s += ',';
        s += std::to_string(ids[i]);
    }
    return s + "]";
}

std::string model_info_json(const lr_model_info & mi, const std::string & path, int32_t ctx_size) {
    std::string o = "{";
    bool first = true;
    auto str = [&](const char * key, const char * v, size_t cap) {
        json_key(o, key, first);
        json_string(o, v, strnlen(v, cap));
    };
    auto num = [&](const char * key, double v) {
        json_key(o, key, first);
        o += json_number(v);
    };
    json_key(o, "path", first);
    json_string(o, path.data(), path.size());
    str("name", mi.name, sizeof mi.name);
    str("architecture", mi.architecture, sizeof mi.architecture);
    str("backend", mi.backend, sizeof mi.backend);
    num("n_vocab", mi.n_vocab);
    num("n_ctx_train", mi.n_ctx_train);
    num("n_embd", mi.n_embd);
    num("n_layer", mi.n_layer);
    num("n_head", mi.n_head);
    num("n_head_kv", mi.n_head_kv);
    num("n_ff", mi.n_ff);
    num("n_rot", mi.n_rot);
    num("rms_norm_eps", mi.rms_norm_eps);
    num("rope_freq_base", mi.rope_freq_base);
    num("bos_token", mi.bos_token);
    num("eos_token", mi.eos_token);
    json_key(o, "add_bos", first);
    o += mi.add_bos ? "true" : "false";
    num("weight_type", mi.weight_type);
    num("n_params", (double) mi.n_params);
    num("weight_bytes", (double) mi.weight_bytes);
    num("vnni_matrices", mi.n_vnni);
    if (ctx_size > 0) num("context_size", ctx_size);
    return o + "}";
}

namespace {

// "a b c" -> ["a","b","c"]
std::string json_words(const char * s) {
    std::string o = "[";
    const char * p = s;
    while (*p) {
        while (*p == ' ') p++;
        const char * e = p;
        while (*e && *e != ' ') e++;
        if (e > p) {
            if (o.size() > 1) o += ',';
            json_string(o, p, (size_t) (e - p));
        }
        p = e;
    }
    return o + "]";
}

} // namespace

std::string cpu_info_json() {
    lr_cpu_info c{};
    const lr_status s = lr_get_cpu_info(&c);
    if (s != LR_OK) engine_fail(s, "could not load the CPU backend");
    return JsonObject()
        .str("variant", c.variant)
        .raw("variants", json_words(c.variants))
        .raw("features", json_words(c.features))
        .str("kernels", c.kernels)
        .integer("default_threads", c.default_threads)
        .integer("allowed_cpus", c.allowed_cpus)
        .integer("physical_cores", c.physical_cores)
        .num("cpu_quota", c.cpu_quota)
        .finish();
}

JsonObject & JsonObject::str(const char * key, const std::string & v) {
    json_key(o_, key, first_);
    json_string(o_, v.data(), v.size());
    return *this;
}

JsonObject & JsonObject::num(const char * key, double v) {
    json_key(o_, key, first_);
    o_ += json_number(v);
    return *this;
}

JsonObject & JsonObject::integer(const char * key, long long v) {
    json_key(o_, key, first_);
    o_ += std::to_string(v);
    return *this;
}

JsonObject & JsonObject::boolean(const char * key, bool v) {
    json_key(o_, key, first_);
    o_ += v ? "true" : "false";
    return *this;
}

JsonObject & JsonObject::raw(const char * key, const std::string & json) {
    json_key(o_, key, first_);
    o_ += json;
    return *this;
}

} // namespace lrcli
