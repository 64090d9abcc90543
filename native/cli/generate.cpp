// llava-rad-cli generate: text prompt -> tokens (greedy by default), the Node CLI's --json fields.
#include "cli_args.h"
#include "cli_commands.h"
#include "cli_engine.h"
#include "cli_json.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace lrcli {

int cmd_generate(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {
        {"model", 'm', true}, {"prompt", 'p', true}, {"max-tokens", 'n', true}, {"threads", 't', true}, {"mmap", 0, true},
        {"backend", 0, true}, {"ctx", 0, true}, {"temperature", 0, true}, {"top-k", 0, true}, {"top-p", 0, true},
        {"seed", 0, true}, {"ignore-eos", 0, false}, {"flash-attn", 0, true}, {"warmup", 0, false},
        {"json", 0, false}, {"help", 'h', false},
    }, "generate");
    if (a.flags.count("help")) {
        print_usage(stdout);
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
    long long flash_attn = 0;
    get_int(a, "flash-attn", 0, 1, flash_attn);
    const bool json = a.flags.count("json") > 0;

    ModelHolder mh;
    lr_model_info info{};
    lr_model * model = load(path, a, mh, info);

    const std::vector<int32_t> ids = tokenize(model, prompt, info.add_bos != 0);
    if (ids.empty()) throw UsageError{"generate: the prompt is empty"};

    lr_context_params cp = lr_context_default_params();
    if (ctx_n > 0) cp.n_ctx = (int32_t) ctx_n;
    cp.n_seq_max = 1;
    cp.n_threads = (int32_t) threads;
    cp.flash_attn = (int32_t) flash_attn;
    ContextHolder ch;
    lr_status s = lr_context_create(model, &cp, &ch.c);
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
    if (a.flags.count("warmup")) {
        // the same request once, untimed and unreported (kernels loaded, buffers allocated, clocks up)
        s = lr_generate(ch.c, &part, 1, &gp, out.data(), out.size(), &res);
        if (s != LR_OK && res.stop_reason != LR_STOP_CTX_FULL) engine_fail(s, "generation failed");
        res = lr_gen_result{};
    }
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
    json_key(o, "cpu", first);
    o += cpu_info_json();
    o += "}\n";
    std::fwrite(o.data(), 1, o.size(), stdout);
    return 0;
}

} // namespace lrcli
