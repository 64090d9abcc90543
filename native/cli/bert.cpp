// llava-rad-cli bert: run a BERT GGUF (CheXbert's encoder and heads, lib/convert/chexbert.ts) on given or
// pseudo-random token ids, in one batched graph or one sequence at a time (timing, a checksum, raw dump).
#include "cli_args.h"
#include "cli_commands.h"
#include "cli_engine.h"
#include "cli_json.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace lrcli {

namespace {

struct BertHolder {
    lr_bert * b = nullptr;
    ~BertHolder() { lr_bert_free(b); }
};

// --ids-file: one sequence a line, ids separated by spaces or commas
std::vector<std::vector<int32_t>> read_ids(const std::string & path) {
    std::ifstream in(path);
    if (!in) throw EngineError{LR_ERR_IO, "cannot read " + path};
    std::vector<std::vector<int32_t>> seqs;
    std::string line;
    while (std::getline(in, line)) {
        for (char & c : line) if (c == ',') c = ' ';
        std::istringstream words(line);
        std::vector<int32_t> ids;
        long long id;
        while (words >> id) ids.push_back((int32_t) id);
        if (!words.eof()) throw UsageError{"--ids-file: '" + line + "' is not a list of integers"};
        if (!ids.empty()) seqs.push_back(ids);
    }
    if (seqs.empty()) throw UsageError{"--ids-file " + path + " holds no ids"};
    return seqs;
}

// n_seqs sequences, sequence s of max(1, len - 3s) ids: a fixed first id, then ids from a 64-bit LCG below
// n_vocab (mixed lengths, so a batch pads and masks)
std::vector<std::vector<int32_t>> random_ids(long long n_seqs, long long len, long long seed, int32_t n_vocab) {
    std::vector<std::vector<int32_t>> seqs((size_t) n_seqs);
    uint64_t state = 0x9E3779B97F4A7C15ull ^ (uint64_t) seed;
    for (long long s = 0; s < n_seqs; s++) {
        const long long n = std::max(1LL, len - 3 * s);
        seqs[(size_t) s].push_back(n_vocab > 101 ? 101 : 0);
        for (long long i = 1; i < n; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            seqs[(size_t) s].push_back((int32_t) ((state >> 33) % (uint64_t) n_vocab));
        }
    }
    return seqs;
}

} // namespace

int cmd_bert(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {
        {"model", 'm', true}, {"ids-file", 0, true}, {"seqs", 0, true}, {"len", 0, true}, {"seed", 0, true},
        {"batch", 0, true}, {"dump", 0, true}, {"threads", 't', true}, {"backend", 0, true}, {"json", 0, false},
        {"help", 'h', false},
    }, "bert");
    if (a.flags.count("help")) {
        print_usage(stdout);
        return 0;
    }
    const std::string path = require_model(a, "bert");
    long long n_seqs = 8, len = 64, seed = 0, batch = 1, threads = 0;
    get_int(a, "seqs", 1, 4096, n_seqs);
    get_int(a, "len", 1, 512, len);
    get_int(a, "seed", 0, (1LL << 62), seed);
    get_int(a, "batch", 0, 1, batch);
    get_int(a, "threads", 1, 1024, threads);
    lr_model_params mp = lr_model_default_params();
    mp.backend = get_backend(a);
    mp.n_threads = (int32_t) threads;
    BertHolder bh;
    lr_status s = lr_bert_load(path.c_str(), &mp, &bh.b);
    if (s != LR_OK) engine_fail(s, "could not load the BERT model");
    lr_bert_info bi{};
    s = lr_bert_get_info(bh.b, &bi);
    if (s != LR_OK) engine_fail(s, "could not read the BERT model's info");

    auto fit = a.values.find("ids-file");
    const std::vector<std::vector<int32_t>> seqs =
        fit != a.values.end() ? read_ids(fit->second) : random_ids(n_seqs, std::min<long long>(len, bi.n_ctx), seed, bi.n_vocab);
    const size_t n = seqs.size(), embd = (size_t) bi.n_embd, n_logits = (size_t) bi.n_logits;
    std::vector<float> cls(n * embd), logits(n * n_logits);
    const auto t0 = std::chrono::steady_clock::now();
    if (batch) {
        std::vector<int32_t> ids, counts;
        for (const auto & q : seqs) {
            ids.insert(ids.end(), q.begin(), q.end());
            counts.push_back((int32_t) q.size());
        }
        s = lr_bert_encode_batch(bh.b, ids.data(), counts.data(), (int32_t) n, cls.data(), cls.size(),
                                 n_logits ? logits.data() : nullptr, logits.size());
        if (s != LR_OK) engine_fail(s, "encoding failed");
    } else {
        for (size_t i = 0; i < n; i++) {
            s = lr_bert_encode(bh.b, seqs[i].data(), (int32_t) seqs[i].size(), cls.data() + i * embd, embd,
                               n_logits ? logits.data() + i * n_logits : nullptr, n_logits);
            if (s != LR_OK) engine_fail(s, "encoding sequence " + std::to_string(i) + " failed");
        }
    }
    const double encode_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    // the dump: every sequence's [CLS] state, then every sequence's logits (float32)
    std::vector<float> out(cls);
    out.insert(out.end(), logits.begin(), logits.end());
    const Checksum sums = dump_floats(a, out);
    size_t n_tokens = 0;
    for (const auto & q : seqs) n_tokens += q.size();
    if (!a.flags.count("json")) {
        std::printf("%zu sequence(s), %zu tokens in %.1f ms (%s), backend %s, [CLS] %zu x %zu, logits %zu x %zu, sum %.6g, sum|.| %.6g\n",
                    n, n_tokens, encode_ms, batch ? "one batch" : "one at a time", bi.backend, n, embd, n, n_logits, sums.sum, sums.sum_abs);
        return 0;
    }
    std::string o = "{";
    bool first = true;
    json_key(o, "backend", first); json_string(o, bi.backend, std::strlen(bi.backend));
    json_key(o, "sequences", first); o += std::to_string(n);
    json_key(o, "tokens", first); o += std::to_string(n_tokens);
    json_key(o, "batch", first); o += batch ? "true" : "false";
    json_key(o, "encode_ms", first); o += json_number(encode_ms);
    json_key(o, "n_embd", first); o += std::to_string(embd);
    json_key(o, "n_logits", first); o += std::to_string(n_logits);
    print_json_with_checksum(o, first, sums);
    return 0;
}

} // namespace lrcli
