// llava-rad-make-model: writes random-weight GGUFs of a given shape for benchmarks on machines without
// Node (the GPU machines): a LLaMA decoder (tokenizer keys copied from a template GGUF, e.g. a tiny test
// fixture) or a LLaVA-Rad vision GGUF (the layout of native/src/vision_model.h). Weights are quantized
// with ggml's own quantizers on all cores and streamed to the file tensor by tensor.
//
//   llava-rad-make-model decoder --vocab-from T.gguf --out F.gguf [--type q4_k|q4_0|q8_0|f16|f32]
//                        [--n-embd 4096 --n-ff 11008 --n-layer 32 --n-head 32 --n-head-kv 32 --n-ctx 4096]
//   llava-rad-make-model vision --out F.gguf [--type f16|f32] [--width 768 --depth 12 --heads 12 --mlp 3072
//                        --image 518 --patch 14 --proj 4096]
//
// A bench tool, not part of the engine: it uses ggml's GGUF writer directly.
#include "ggml.h"
#include "gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

struct Spec {
    std::string name;
    std::vector<int64_t> ne;
    ggml_type type;
    float std;       // normal(0, std); ignored for norms
    bool norm;       // values near 1
};

[[noreturn]] void die(const std::string & m) {
    std::fprintf(stderr, "llava-rad-make-model: %s\n", m.c_str());
    std::exit(2);
}

// xorshift + Box-Muller: fast, deterministic per (tensor, row)
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
    float uniform() { return (float) ((next() >> 11) * (1.0 / 9007199254740992.0)); }
    float normal() {
        const float u = std::max(uniform(), 1e-12f), v = uniform();
        return std::sqrt(-2.0f * std::log(u)) * std::cos(6.2831853f * v);
    }
};

uint64_t hash(const std::string & s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) { h ^= c; h *= 1099511628211ull; }
    return h;
}

ggml_type parse_type(const std::string & t) {
    static const std::map<std::string, ggml_type> m = {
        {"f32", GGML_TYPE_F32}, {"f16", GGML_TYPE_F16}, {"q8_0", GGML_TYPE_Q8_0}, {"q4_0", GGML_TYPE_Q4_0},
        {"q4_k", GGML_TYPE_Q4_K}, {"q5_k", GGML_TYPE_Q5_K}, {"q6_k", GGML_TYPE_Q6_K},
    };
    auto it = m.find(t);
    if (it == m.end()) die("unknown --type " + t);
    return it->second;
}

// writes tensor data rows in parallel chunks, padded to the GGUF alignment
void write_tensor(std::FILE * f, const Spec & s, size_t alignment) {
    const int64_t n_per_row = s.ne[0];
    int64_t n_rows = 1;
    for (size_t i = 1; i < s.ne.size(); i++) n_rows *= s.ne[i];
    const size_t row_bytes = ggml_row_size(s.type, n_per_row);
    const int n_threads = (int) std::max(1u, std::thread::hardware_concurrency());
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(n_rows, 4096));
    std::vector<uint8_t> out((size_t) chunk * row_bytes);
    std::vector<float> src((size_t) chunk * (size_t) n_per_row);
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        const int64_t nr = std::min(chunk, n_rows - r0);
        std::vector<std::thread> pool;
        for (int t = 0; t < n_threads; t++) {
            pool.emplace_back([&, t] {
                for (int64_t r = t; r < nr; r += n_threads) {
                    Rng rng(hash(s.name) ^ (uint64_t) (r0 + r));
                    float * row = src.data() + (size_t) r * (size_t) n_per_row;
                    for (int64_t i = 0; i < n_per_row; i++) row[i] = s.norm ? 1.0f + 0.1f * rng.normal() : s.std * rng.normal();
                    ggml_quantize_chunk(s.type, row, out.data() + (size_t) r * row_bytes, 0, 1, n_per_row, nullptr);
                }
            });
        }
        for (auto & th : pool) th.join();
        if (std::fwrite(out.data(), row_bytes, (size_t) nr, f) != (size_t) nr) die("write failed");
    }
    const size_t nbytes = row_bytes * (size_t) n_rows;
    const size_t pad = (alignment - nbytes % alignment) % alignment;
    static const std::vector<uint8_t> zeros(4096, 0);
    if (pad && std::fwrite(zeros.data(), 1, pad, f) != pad) die("write failed");
}

void write_gguf(gguf_context * g, const std::vector<Spec> & specs, const std::string & out) {
    ggml_init_params ip = { ggml_tensor_overhead() * (specs.size() + 1), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    for (const Spec & s : specs) {
        ggml_tensor * t = ggml_new_tensor(ctx, s.type, (int) s.ne.size(), s.ne.data());
        ggml_set_name(t, s.name.c_str());
        gguf_add_tensor(g, t);
    }
    if (!gguf_write_to_file(g, out.c_str(), true)) die("cannot write " + out);
    std::FILE * f = std::fopen(out.c_str(), "ab");
    if (!f) die("cannot append to " + out);
    const size_t alignment = gguf_get_alignment(g);
    for (const Spec & s : specs) {
        write_tensor(f, s, alignment);
        if (isatty(2)) std::fprintf(stderr, "\r%-48s", s.name.c_str());
    }
    std::fclose(f);
    std::fprintf(stderr, "%swrote %s\n", isatty(2) ? "\r" : "", out.c_str());
    ggml_free(ctx);
}

std::map<std::string, std::string> parse(int argc, char ** argv) {
    std::map<std::string, std::string> a;
    for (int i = 2; i < argc; i++) {
        std::string k = argv[i];
        if (k.rfind("--", 0) != 0 || i + 1 >= argc) die("bad argument " + k);
        a[k.substr(2)] = argv[++i];
    }
    return a;
}

int64_t num(std::map<std::string, std::string> & a, const char * k, int64_t def) {
    auto it = a.find(k);
    if (it == a.end()) return def;
    char * end = nullptr;
    const long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (!end || *end || v <= 0 || v > (1 << 20)) die(std::string("--") + k + " must be a positive integer");
    return v;
}

int make_decoder(std::map<std::string, std::string> a) {
    if (!a.count("vocab-from") || !a.count("out")) die("decoder needs --vocab-from T.gguf and --out F.gguf");
    const ggml_type type = parse_type(a.count("type") ? a["type"] : "q4_k");
    const int64_t E = num(a, "n-embd", 4096), F = num(a, "n-ff", 11008), L = num(a, "n-layer", 32);
    const int64_t H = num(a, "n-head", 32), HKV = num(a, "n-head-kv", H), CTX = num(a, "n-ctx", 4096);
    if (E % H || H % HKV) die("n-embd must divide by n-head, n-head by n-head-kv");
    gguf_init_params gp = { true, nullptr };
    gguf_context * src = gguf_init_from_file(a["vocab-from"].c_str(), gp);
    if (!src) die("cannot read " + a["vocab-from"]);
    const int64_t tok = gguf_find_key(src, "tokenizer.ggml.tokens");
    if (tok < 0) die(a["vocab-from"] + " has no tokenizer.ggml.tokens");
    const int64_t V = (int64_t) gguf_get_arr_n(src, tok);
    gguf_context * g = gguf_init_empty();
    gguf_set_kv(g, src); // everything (tokenizer, llama.* of the template), overridden below
    gguf_remove_key(g, "general.file_type");
    gguf_set_val_str(g, "general.architecture", "llama");
    gguf_set_val_str(g, "general.name", ("random-llama-" + std::to_string(E) + "x" + std::to_string(L) + "-" + ggml_type_name(type)).c_str());
    gguf_set_val_u32(g, "llama.context_length", (uint32_t) CTX);
    gguf_set_val_u32(g, "llama.embedding_length", (uint32_t) E);
    gguf_set_val_u32(g, "llama.block_count", (uint32_t) L);
    gguf_set_val_u32(g, "llama.feed_forward_length", (uint32_t) F);
    gguf_set_val_u32(g, "llama.attention.head_count", (uint32_t) H);
    gguf_set_val_u32(g, "llama.attention.head_count_kv", (uint32_t) HKV);
    gguf_set_val_u32(g, "llama.rope.dimension_count", (uint32_t) (E / H));
    gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_f32(g, "llama.rope.freq_base", 10000.0f);
    const int64_t KV = E / H * HKV;
    const float s_in = 1.0f / std::sqrt((float) E), s_ff = 1.0f / std::sqrt((float) F);
    std::vector<Spec> specs;
    specs.push_back({"token_embd.weight", {E, V}, type, 0.5f, false});
    specs.push_back({"output_norm.weight", {E}, GGML_TYPE_F32, 0, true});
    specs.push_back({"output.weight", {E, V}, type == GGML_TYPE_Q4_K ? GGML_TYPE_Q6_K : type, s_in * 4, false});
    for (int64_t l = 0; l < L; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        specs.push_back({p + "attn_norm.weight", {E}, GGML_TYPE_F32, 0, true});
        specs.push_back({p + "attn_q.weight", {E, E}, type, s_in, false});
        specs.push_back({p + "attn_k.weight", {E, KV}, type, s_in, false});
        specs.push_back({p + "attn_v.weight", {E, KV}, type, s_in, false});
        specs.push_back({p + "attn_output.weight", {E, E}, type, s_in, false});
        specs.push_back({p + "ffn_norm.weight", {E}, GGML_TYPE_F32, 0, true});
        specs.push_back({p + "ffn_gate.weight", {E, F}, type, s_in, false});
        specs.push_back({p + "ffn_up.weight", {E, F}, type, s_in, false});
        specs.push_back({p + "ffn_down.weight", {F, E}, type, s_ff, false});
    }
    write_gguf(g, specs, a["out"]);
    gguf_free(g);
    gguf_free(src);
    return 0;
}

int make_vision(std::map<std::string, std::string> a) {
    if (!a.count("out")) die("vision needs --out F.gguf");
    const ggml_type type = parse_type(a.count("type") ? a["type"] : "f16");
    const int64_t D = num(a, "width", 768), depth = num(a, "depth", 12), heads = num(a, "heads", 12), M = num(a, "mlp", 3072);
    const int64_t S = num(a, "image", 518), P = num(a, "patch", 14), T = num(a, "proj", 4096);
    if (S % P || D % heads) die("image must divide by patch, width by heads");
    const int64_t G = S / P;
    gguf_context * g = gguf_init_empty();
    gguf_set_val_str(g, "general.architecture", "clip");
    gguf_set_val_str(g, "general.name", "random-llava-rad-vision");
    gguf_set_val_bool(g, "clip.has_vision_encoder", true);
    gguf_set_val_str(g, "clip.projector_type", "mlp");
    gguf_set_val_u32(g, "clip.vision.image_size", (uint32_t) S);
    gguf_set_val_u32(g, "clip.vision.patch_size", (uint32_t) P);
    gguf_set_val_u32(g, "clip.vision.embedding_length", (uint32_t) D);
    gguf_set_val_u32(g, "clip.vision.feed_forward_length", (uint32_t) M);
    gguf_set_val_u32(g, "clip.vision.block_count", (uint32_t) depth);
    gguf_set_val_u32(g, "clip.vision.attention.head_count", (uint32_t) heads);
    gguf_set_val_f32(g, "clip.vision.attention.layer_norm_epsilon", 1e-6f);
    gguf_set_val_u32(g, "clip.vision.projection_dim", (uint32_t) T);
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    gguf_set_arr_data(g, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, mean, 3);
    gguf_set_arr_data(g, "clip.vision.image_std", GGUF_TYPE_FLOAT32, stdv, 3);
    gguf_set_val_i32(g, "llava_rad.vision.select_layer", -2);
    gguf_set_val_bool(g, "llava_rad.vision.layer_scale", true);
    gguf_set_val_str(g, "llava_rad.vision.gelu", "erf");
    gguf_set_val_str(g, "llava_rad.vision.cls_position", "first");
    gguf_set_val_str(g, "llava_rad.vision.crop_mode", "resize_short_center_crop");
    gguf_set_val_str(g, "llava_rad.projector.type", "mlp2x_gelu");
    const float sD = 1.0f / std::sqrt((float) D), sM = 1.0f / std::sqrt((float) M), sT = 1.0f / std::sqrt((float) T);
    const ggml_type f32 = GGML_TYPE_F32;
    std::vector<Spec> specs;
    specs.push_back({"v.patch_embd.weight", {P, P, 3, D}, type == GGML_TYPE_F32 ? f32 : GGML_TYPE_F16, 1.0f / std::sqrt((float) (P * P * 3)), false});
    specs.push_back({"v.patch_embd.bias", {D}, f32, 0.02f, false});
    specs.push_back({"v.class_embd", {D}, f32, 0.5f, false});
    specs.push_back({"v.position_embd.weight", {D, G * G + 1}, f32, 0.5f, false});
    for (int64_t i = 0; i < depth; i++) {
        const std::string p = "v.blk." + std::to_string(i) + ".";
        for (const char * n : {"ln1", "ln2"}) {
            specs.push_back({p + n + ".weight", {D}, f32, 0, true});
            specs.push_back({p + n + ".bias", {D}, f32, 0.02f, false});
        }
        for (const char * n : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
            specs.push_back({p + n + ".weight", {D, D}, type, sD, false});
            specs.push_back({p + n + ".bias", {D}, f32, 0.02f, false});
        }
        specs.push_back({p + "ffn_up.weight", {D, M}, type, sD, false});
        specs.push_back({p + "ffn_up.bias", {M}, f32, 0.02f, false});
        specs.push_back({p + "ffn_down.weight", {M, D}, type, sM, false});
        specs.push_back({p + "ffn_down.bias", {D}, f32, 0.02f, false});
        specs.push_back({p + "ls1.weight", {D}, f32, 0.1f, false});
        specs.push_back({p + "ls2.weight", {D}, f32, 0.1f, false});
    }
    specs.push_back({"mm.0.weight", {D, T}, type, sD, false});
    specs.push_back({"mm.0.bias", {T}, f32, 0.02f, false});
    specs.push_back({"mm.2.weight", {T, T}, type, sT, false});
    specs.push_back({"mm.2.bias", {T}, f32, 0.02f, false});
    write_gguf(g, specs, a["out"]);
    gguf_free(g);
    return 0;
}

} // namespace

int main(int argc, char ** argv) {
    if (argc < 2) die("usage: llava-rad-make-model decoder|vision --out F.gguf [options] (see the source's header)");
    const std::string kind = argv[1];
    if (kind == "decoder") return make_decoder(parse(argc, argv));
    if (kind == "vision") return make_vision(parse(argc, argv));
    die("unknown kind " + kind + " (decoder or vision)");
}
