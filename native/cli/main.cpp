// llava-rad-cli: the standalone command line of the engine (no Node needed; for GPU machines and benches).
//
//   llava-rad-cli generate --model F.gguf --prompt TEXT [--max-tokens N] [--threads N] [--backend cpu|cuda|auto]
//                          [--ctx N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--ignore-eos] [--json]
//   llava-rad-cli info --model F.gguf [--backend B] [--threads N]
//   llava-rad-cli vision --model VISION.gguf [--images N] [--batch N] [--output projected|features]
//                        [--dump FILE.f32] [--threads N] [--backend B] [--json]
//   llava-rad-cli --version | --help
//
// Same JSON fields as the Node CLI (`llava-rad generate --json`). Exit codes: 0 ok, 1 engine error,
// 2 bad arguments. Everything goes through the C API in llava_rad.h.
#include "llava_rad.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

const char * const kUsage =
    "Usage: llava-rad-cli <command> [options]\n"
    "\n"
    "Commands:\n"
    "  generate  generate text from a text prompt (BOS prepended, greedy by default)\n"
    "  info      print a model's hyperparameters as JSON\n"
    "  vision    encode synthetic images with a vision GGUF (check / time a backend)\n"
    "\n"
    "generate options:\n"
    "  -m, --model FILE        GGUF model (LLaMA architecture)\n"
    "  -p, --prompt TEXT       prompt text\n"
    "  -n, --max-tokens N      most tokens to generate (default 256)\n"
    "      --temperature T     0 = greedy (default 0)\n"
    "      --top-k K           (default: off)\n"
    "      --top-p P           (default: off)\n"
    "      --seed S            (default 0)\n"
    "  -t, --threads N         CPU threads (default: physical cores)\n"
    "      --backend B         auto | cpu | cuda (default auto)\n"
    "      --ctx N             context size (default min(4096, training context))\n"
    "      --ignore-eos        keep generating past EOS\n"
    "      --json              print one JSON object instead of the text\n"
    "\n"
    "info options: --model FILE [--backend B] [--threads N]\n"
    "\n"
    "vision: encode N synthetic 518x518 test images with a vision GGUF (timing, a checksum, and with --dump\n"
    "  the raw float32 output), to check and time a backend without an image decoder:\n"
    "  --model VISION.gguf [--images N (1)] [--batch N (8)] [--output projected|features] [--dump FILE]\n"
    "  [--threads N] [--backend B] [--json]\n"
    "\n"
    "Research use only: LLaVA-Rad is not for clinical care.\n";

struct UsageError {
    std::string message;
};

struct Args {
    std::map<std::string, std::string> values;
    std::map<std::string, bool> flags;
};

struct OptSpec {
    const char * name;  // long name without "--"
    char         short_name;
    bool         takes_value;
};

Args parse_args(int argc, char ** argv, int start, const std::vector<OptSpec> & specs, const std::string & cmd) {
    Args a;
    for (int i = start; i < argc; ++i) {
        std::string arg = argv[i] ? argv[i] : "";
        const OptSpec * spec = nullptr;
        std::string inline_value;
        bool has_inline = false;
        if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
            std::string name = arg.substr(2);
            const size_t eq = name.find('=');
            if (eq != std::string::npos) {
                inline_value = name.substr(eq + 1);
                name = name.substr(0, eq);
                has_inline = true;
            }
            for (const auto & s : specs) if (name == s.name) spec = &s;
        } else if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
            for (const auto & s : specs) if (s.short_name == arg[1]) spec = &s;
        } else {
            throw UsageError{cmd + ": unexpected argument '" + arg + "'"};
        }
        if (!spec) throw UsageError{cmd + ": unknown option '" + arg + "'"};
        if (spec->takes_value) {
            if (has_inline) {
                a.values[spec->name] = inline_value;
            } else {
                if (i + 1 >= argc || argv[i + 1] == nullptr) throw UsageError{cmd + ": option --" + std::string(spec->name) + " needs a value"};
                a.values[spec->name] = argv[++i];
            }
        } else {
            if (has_inline) throw UsageError{cmd + ": option --" + std::string(spec->name) + " takes no value"};
            a.flags[spec->name] = true;
        }
    }
    return a;
}

bool get_int(const Args & a, const char * name, long long lo, long long hi, long long & out) {
    auto it = a.values.find(name);
    if (it == a.values.end()) return false;
    const std::string & s = it->second;
    errno = 0;
    char * end = nullptr;
    const long long v = s.empty() ? 0 : std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || errno != 0 || end == nullptr || *end != '\0' || v < lo || v > hi) {
        throw UsageError{"--" + std::string(name) + " must be an integer between " + std::to_string(lo) + " and " +
                         std::to_string(hi) + ", got '" + s + "'"};
    }
    out = v;
    return true;
}

bool get_float(const Args & a, const char * name, double lo, double hi, bool lo_open, double & out) {
    auto it = a.values.find(name);
    if (it == a.values.end()) return false;
    const std::string & s = it->second;
    errno = 0;
    char * end = nullptr;
    const double v = s.empty() ? NAN : std::strtod(s.c_str(), &end);
    if (s.empty() || errno != 0 || end == nullptr || *end != '\0' || !std::isfinite(v) || v < lo || v > hi || (lo_open && v == lo)) {
        char range[96];
        std::snprintf(range, sizeof range, "%s%g, %g]", lo_open ? "(" : "[", lo, hi);
        throw UsageError{"--" + std::string(name) + " must be a number in " + range + ", got '" + s + "'"};
    }
    out = v;
    return true;
}

lr_backend get_backend(const Args & a) {
    auto it = a.values.find("backend");
    if (it == a.values.end() || it->second == "auto") return LR_BACKEND_AUTO;
    if (it->second == "cpu") return LR_BACKEND_CPU;
    if (it->second == "cuda") return LR_BACKEND_CUDA;
    throw UsageError{"--backend must be one of auto, cpu, cuda, got '" + it->second + "'"};
}

std::string require_model(const Args & a, const std::string & cmd) {
    auto it = a.values.find("model");
    if (it == a.values.end() || it->second.empty()) throw UsageError{cmd + ": --model FILE.gguf is required"};
    std::FILE * f = std::fopen(it->second.c_str(), "rb");
    if (!f) throw UsageError{cmd + ": model file not found or not readable: " + it->second};
    std::fclose(f);
    return it->second;
}

// ---- JSON output ---------------------------------------------------------------------------------------

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
    if (ctx_size > 0) num("context_size", ctx_size);
    return o + "}";
}

// ---- engine errors --------------------------------------------------------------------------------------

struct EngineError {
    lr_status   status;
    std::string message;
};

[[noreturn]] void engine_fail(lr_status s, const std::string & what) {
    const char * msg = lr_last_error();
    throw EngineError{s, what + (msg && *msg ? std::string(": ") + msg : std::string())};
}

// the public error code names (same as the Node package's LlavaRadError codes)
const char * code_name(lr_status s) {
    switch (s) {
        case LR_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
        case LR_ERR_IO: return "IO";
        case LR_ERR_BAD_GGUF: return "BAD_GGUF";
        case LR_ERR_UNSUPPORTED: return "UNSUPPORTED";
        case LR_ERR_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
        case LR_ERR_CONTEXT_FULL: return "CONTEXT_FULL";
        case LR_ERR_BACKEND: return "BACKEND";
        case LR_ERR_CANCELLED: return "ABORTED";
        default: return "INTERNAL";
    }
}

struct ModelHolder {
    lr_model * m = nullptr;
    ~ModelHolder() { if (m) lr_model_free(m); }
};
struct ContextHolder {
    lr_context * c = nullptr;
    ~ContextHolder() { if (c) lr_context_free(c); }
};

lr_model * load(const std::string & path, const Args & a, ModelHolder & holder, lr_model_info & info) {
    lr_model_params mp = lr_model_default_params();
    mp.backend = get_backend(a);
    long long threads = 0;
    if (get_int(a, "threads", 1, 1024, threads)) mp.n_threads = (int32_t) threads;
    const lr_status s = lr_model_load(path.c_str(), &mp, &holder.m);
    if (s != LR_OK) engine_fail(s, "could not load the model");
    const lr_status si = lr_model_get_info(holder.m, &info);
    if (si != LR_OK) engine_fail(si, "could not read the model's info");
    return holder.m;
}

// ---- commands ---------------------------------------------------------------------------------------------

int cmd_generate(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {
        {"model", 'm', true}, {"prompt", 'p', true}, {"max-tokens", 'n', true}, {"threads", 't', true},
        {"backend", 0, true}, {"ctx", 0, true}, {"temperature", 0, true}, {"top-k", 0, true}, {"top-p", 0, true},
        {"seed", 0, true}, {"ignore-eos", 0, false}, {"json", 0, false}, {"help", 'h', false},
    }, "generate");
    if (a.flags.count("help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    const std::string path = require_model(a, "generate");
    auto pit = a.values.find("prompt");
    if (pit == a.values.end()) throw UsageError{"generate: --prompt TEXT is required"};
    const std::string prompt = pit->second;
    long long ctx_n = 0, max_tokens = 256, top_k = 0, seed = 0;
    get_int(a, "ctx", 1, 1 << 20, ctx_n);
    get_int(a, "max-tokens", 1, std::max<long long>(4096, ctx_n), max_tokens);
    get_int(a, "top-k", 0, 1 << 30, top_k);
    get_int(a, "seed", 0, 9007199254740991LL, seed);
    double temperature = 0, top_p = 1;
    get_float(a, "temperature", 0, 100, false, temperature);
    get_float(a, "top-p", 0, 1, true, top_p);
    get_backend(a);
    long long threads = 0;
    get_int(a, "threads", 1, 1024, threads);
    const bool json = a.flags.count("json") > 0;

    ModelHolder mh;
    lr_model_info info{};
    lr_model * model = load(path, a, mh, info);

    std::vector<int32_t> ids(prompt.size() + 8);
    size_t n_ids = 0;
    lr_status s = lr_tokenize(model, prompt.data(), prompt.size(), info.add_bos, ids.data(), ids.size(), &n_ids);
    if (s == LR_ERR_BUFFER_TOO_SMALL) {
        ids.resize(n_ids);
        s = lr_tokenize(model, prompt.data(), prompt.size(), info.add_bos, ids.data(), ids.size(), &n_ids);
    }
    if (s != LR_OK) engine_fail(s, "tokenize failed");
    ids.resize(std::min(n_ids, ids.size()));
    if (ids.empty()) throw UsageError{"generate: the prompt is empty"};

    lr_context_params cp = lr_context_default_params();
    if (ctx_n > 0) cp.n_ctx = (int32_t) ctx_n;
    cp.n_seq_max = 1;
    cp.n_threads = (int32_t) threads;
    ContextHolder ch;
    s = lr_context_create(model, &cp, &ch.c);
    if (s != LR_OK) engine_fail(s, "could not create the context");

    lr_prompt_part part{};
    part.tokens = ids.data();
    part.n_tokens = ids.size();
    lr_gen_params gp = lr_gen_default_params();
    gp.max_tokens = (int32_t) max_tokens;
    gp.sampling.temperature = (float) temperature;
    gp.sampling.top_k = (int32_t) top_k;
    gp.sampling.top_p = (float) top_p;
    gp.sampling.seed = (uint64_t) seed;
    gp.ignore_eos = a.flags.count("ignore-eos") ? 1 : 0;
    std::vector<int32_t> out((size_t) max_tokens);
    lr_gen_result res{};
    s = lr_generate(ch.c, &part, 1, &gp, out.data(), out.size(), &res);
    if (s != LR_OK && res.stop_reason != LR_STOP_CTX_FULL) engine_fail(s, "generation failed");
    const size_t n_out = std::min((size_t) std::max(0, res.n_generated), out.size());

    std::vector<char> text(n_out * 16 + 16);
    size_t n_text = 0;
    s = lr_detokenize(model, out.data(), n_out, LR_DETOK_SKIP_SPECIAL, text.data(), text.size(), &n_text);
    if (s == LR_ERR_BUFFER_TOO_SMALL) {
        text.resize(n_text + 1);
        s = lr_detokenize(model, out.data(), n_out, LR_DETOK_SKIP_SPECIAL, text.data(), text.size(), &n_text);
    }
    if (s != LR_OK) engine_fail(s, "detokenize failed");
    n_text = std::min(n_text, text.size());

    if (!json) {
        std::fwrite(text.data(), 1, n_text, stdout);
        std::fputc('\n', stdout);
        return 0;
    }
    const char * stop = "error";
    switch (res.stop_reason) {
        case LR_STOP_EOS: stop = "eos"; break;
        case LR_STOP_MAX_TOKENS: stop = "max_tokens"; break;
        case LR_STOP_CANCELLED: stop = "aborted"; break;
        case LR_STOP_CTX_FULL: stop = "context_full"; break;
        default: break;
    }
    std::string o = "{";
    bool first = true;
    json_key(o, "prompt_tokens", first); o += json_ids(ids.data(), ids.size());
    json_key(o, "tokens", first); o += json_ids(out.data(), n_out);
    json_key(o, "text", first); json_string(o, text.data(), n_text);
    json_key(o, "n_prompt", first); o += std::to_string(res.n_prompt);
    json_key(o, "n_generated", first); o += std::to_string(n_out);
    json_key(o, "stop_reason", first); json_string(o, stop, std::strlen(stop));
    json_key(o, "queue_ms", first); o += json_number(res.queue_ms);
    json_key(o, "prompt_ms", first); o += json_number(res.prompt_ms);
    json_key(o, "decode_ms", first); o += json_number(res.decode_ms);
    json_key(o, "model", first);
    o += model_info_json(info, path, cp.n_ctx > 0 ? cp.n_ctx : std::min(4096, info.n_ctx_train));
    o += "}\n";
    std::fwrite(o.data(), 1, o.size(), stdout);
    return 0;
}

int cmd_info(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {{"model", 'm', true}, {"backend", 0, true}, {"threads", 't', true}, {"help", 'h', false}}, "info");
    if (a.flags.count("help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    const std::string path = require_model(a, "info");
    get_backend(a);
    long long threads = 0;
    get_int(a, "threads", 1, 1024, threads);
    ModelHolder mh;
    lr_model_info info{};
    load(path, a, mh, info);
    std::string o = model_info_json(info, path, 0);
    o += '\n';
    std::fwrite(o.data(), 1, o.size(), stdout);
    return 0;
}

// the reference's synthetic test image (scripts/reference/llava_rad_reference.py), normalized in float32
void synthetic_image(int32_t size, bool mirrored, const float * mean, const float * stdv, float * out) {
    for (int c = 0; c < 3; c++) {
        for (int y = 0; y < size; y++) {
            for (int x0 = 0; x0 < size; x0++) {
                const int x = mirrored ? size - 1 - x0 : x0;
                const int u8 = (x * 7 + y * 13 + c * 29 + (x * y) / 97) % 256;
                const float v = (float) u8 / 255.0f;
                out[((size_t) c * size + y) * size + x0] = (v - mean[c]) / stdv[c];
            }
        }
    }
}

int cmd_vision(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {
        {"model", 'm', true}, {"images", 0, true}, {"batch", 0, true}, {"output", 0, true}, {"dump", 0, true},
        {"threads", 't', true}, {"backend", 0, true}, {"json", 0, false}, {"help", 'h', false},
    }, "vision");
    if (a.flags.count("help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    const std::string path = require_model(a, "vision");
    long long n_images = 1, batch = 8, threads = 0;
    get_int(a, "images", 1, 4096, n_images);
    get_int(a, "batch", 1, 256, batch);
    get_int(a, "threads", 1, 1024, threads);
    lr_vision_output which = LR_VISION_PROJECTED;
    auto oit = a.values.find("output");
    if (oit != a.values.end()) {
        if (oit->second == "features") which = LR_VISION_FEATURES;
        else if (oit->second != "projected") throw UsageError{"--output must be projected or features, got '" + oit->second + "'"};
    }
    lr_model_params mp = lr_model_default_params();
    mp.backend = get_backend(a);
    mp.n_threads = (int32_t) threads;
    struct VisionHolder { lr_vision * v = nullptr; ~VisionHolder() { lr_vision_free(v); } } vh;
    const auto t0 = std::chrono::steady_clock::now();
    lr_status s = lr_vision_load(path.c_str(), &mp, (int32_t) batch, &vh.v);
    if (s != LR_OK) engine_fail(s, "could not load the vision model");
    lr_vision_info vi{};
    s = lr_vision_get_info(vh.v, &vi);
    if (s != LR_OK) engine_fail(s, "could not read the vision model's info");
    const auto t1 = std::chrono::steady_clock::now();

    const size_t per_in = (size_t) 3 * vi.image_size * vi.image_size;
    std::vector<float> pixels(per_in * (size_t) n_images);
    for (long long i = 0; i < n_images; i++) synthetic_image(vi.image_size, i % 2 == 1, vi.image_mean, vi.image_std, pixels.data() + (size_t) i * per_in);
    const size_t width = (size_t) (which == LR_VISION_FEATURES ? vi.n_embd : vi.n_out);
    std::vector<float> out((size_t) n_images * (size_t) vi.n_patches * width);
    const auto t2 = std::chrono::steady_clock::now();
    s = lr_vision_encode(vh.v, pixels.data(), (int32_t) n_images, which, out.data(), out.size());
    if (s != LR_OK) engine_fail(s, "encoding failed");
    const auto t3 = std::chrono::steady_clock::now();
    double sum = 0, sum_abs = 0;
    for (float v : out) { sum += v; sum_abs += std::fabs(v); }
    auto it = a.values.find("dump");
    if (it != a.values.end()) {
        std::FILE * f = std::fopen(it->second.c_str(), "wb");
        if (!f || std::fwrite(out.data(), sizeof(float), out.size(), f) != out.size()) {
            if (f) std::fclose(f);
            throw EngineError{LR_ERR_IO, "cannot write " + it->second};
        }
        std::fclose(f);
    }
    const double load_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    const double encode_ms = std::chrono::duration<double, std::milli>(t3 - t2).count();
    if (!a.flags.count("json")) {
        std::printf("%lld image(s) in %.1f ms (%.1f ms per image), backend %s, output %s [%lld x %d x %zu], sum %.6g, sum|.| %.6g\n",
                    n_images, encode_ms, encode_ms / (double) n_images, vi.backend, which == LR_VISION_FEATURES ? "features" : "projected",
                    n_images, vi.n_patches, width, sum, sum_abs);
        return 0;
    }
    std::string o = "{";
    bool first = true;
    json_key(o, "backend", first); json_string(o, vi.backend, std::strlen(vi.backend));
    json_key(o, "images", first); o += std::to_string(n_images);
    json_key(o, "batch", first); o += std::to_string(batch);
    json_key(o, "load_ms", first); o += json_number(load_ms);
    json_key(o, "encode_ms", first); o += json_number(encode_ms);
    json_key(o, "ms_per_image", first); o += json_number(encode_ms / (double) n_images);
    json_key(o, "n_patches", first); o += std::to_string(vi.n_patches);
    json_key(o, "width", first); o += std::to_string(width);
    json_key(o, "sum", first); o += json_number(sum);
    json_key(o, "sum_abs", first); o += json_number(sum_abs);
    o += "}\n";
    std::fwrite(o.data(), 1, o.size(), stdout);
    return 0;
}

} // namespace

int main(int argc, char ** argv) {
    try {
        if (argc < 2 || argv[1] == nullptr) {
            std::fputs(kUsage, stderr);
            return 2;
        }
        const std::string cmd = argv[1];
        if (cmd == "-h" || cmd == "--help" || cmd == "help") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (cmd == "-v" || cmd == "--version" || cmd == "version") {
            std::printf("%s\n", lr_build_info());
            return 0;
        }
        if (cmd == "generate") return cmd_generate(argc, argv);
        if (cmd == "info") return cmd_info(argc, argv);
        if (cmd == "vision") return cmd_vision(argc, argv);
        throw UsageError{"unknown command '" + cmd + "' (commands: generate, info, vision; see llava-rad-cli --help)"};
    } catch (const UsageError & e) {
        std::fprintf(stderr, "llava-rad-cli: %s\n", e.message.c_str());
        return 2;
    } catch (const EngineError & e) {
        std::fprintf(stderr, "llava-rad-cli: error [%s]: %s\n", code_name(e.status), e.message.c_str());
        return 1;
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "llava-rad-cli: error [OUT_OF_MEMORY]: out of memory\n");
        return 1;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "llava-rad-cli: error [INTERNAL]: %s\n", e.what());
        return 1;
    }
}
