// llava-rad-cli study: the study-level benchmark of issue #6, through the C API only.
//
// A study is what a user's request costs: one 518x518 image through the vision tower and projector, then
// the official prompt ([BOS] + text before <image>, the image rows, the text after) prefilled and T tokens
// generated. The images are the `vision` command's synthetic ones (even studies plain, odd ones mirrored);
// the prompt is the official prompt's own token ids (lr_tokenize of the two halves of the text split at
// <image>), fitted to K tokens by keeping the split's proportions (cycling the text's tokens when K is
// longer, truncating when shorter). EOS is ignored so every study generates exactly T tokens.
//
// Phases, each after its own warm-up, in one process:
//   vision   encode 1 image, then P images in one batch (ms per image at batch 1 and batch P)
//   latency  L studies one at a time, nothing else running: time to first token (vision + prefill up to the
//            first sampled token) and ms per study end to end, i.e. the P=1 figures
//   parallel N studies, images encoded in vision batches of up to P (the next batch is encoded while the
//            studies in flight decode), submitted with lr_submit with at most P in flight (the engine's
//            scheduler batches their prefill and decode steps: continuous batching; n_seq_max = P,
//            n_ctx = P x C): wall time, studies/hour, decode tok/s aggregate, generated-token totals.
//            --overlap 0 encodes a batch only when no study is in flight (waves; the vision tower and the
//            decoder never run at the same time)
#include "cli_args.h"
#include "cli_commands.h"
#include "cli_engine.h"
#include "cli_json.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace lrcli {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// conv v1 with the question and no reason (llava/conversation.py, llava/utils.py)
const char * const kOfficialPrompt =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions. USER: <image>\n"
    "Provide a description of the findings in the radiology image. ASSISTANT:";

// completions of one phase (the scheduler thread reports them)
struct Tracker {
    std::mutex mu;
    std::condition_variable cv;
    int n_done = 0;
};

struct Study {
    Tracker * tracker = nullptr;
    std::vector<float> rows;  // projected image rows until submitted
    Clock::time_point t_vision, t_submit, t_first, t_done;
    int32_t n_tokens = 0;     // on_token calls (scheduler thread; read after done)
    lr_gen_result result{};
    std::string error;
    bool done = false;
};

void on_token(void * user, int32_t, const float *, int32_t) {
    auto * s = static_cast<Study *>(user);
    if (s->n_tokens++ == 0) s->t_first = Clock::now();
}

void on_done(void * user, const lr_gen_result * res) {
    auto * s = static_cast<Study *>(user);
    const auto now = Clock::now();
    std::lock_guard<std::mutex> lk(s->tracker->mu);
    s->t_done = now;
    s->result = *res;
    s->error = res->error ? res->error : "";
    s->result.error = nullptr;
    s->done = true;
    s->tracker->n_done++;
    s->tracker->cv.notify_all();
}

// blocks until the tracker counted more than `seen` completions; returns the new count
int wait_done(Tracker & t, int seen) {
    std::unique_lock<std::mutex> lk(t.mu);
    t.cv.wait(lk, [&] { return t.n_done > seen; });
    return t.n_done;
}

struct Prompt {
    std::vector<int32_t> before;  // [BOS] + text before <image>
    std::vector<int32_t> after;   // text after <image> (may be empty when K is tiny)
};

// the official prompt's halves, fitted to k tokens in the same proportions
Prompt fit_prompt(const std::vector<int32_t> & before0, const std::vector<int32_t> & after0, bool has_bos, long long k) {
    std::vector<int32_t> body(before0.begin() + (has_bos && !before0.empty() ? 1 : 0), before0.end());
    body.insert(body.end(), after0.begin(), after0.end());
    if (body.empty()) body = before0.empty() ? std::vector<int32_t>{0} : before0;
    const double total = (double) (before0.size() + after0.size());
    long long kb = after0.empty() || total == 0 ? k : std::llround((double) k * (double) before0.size() / total);
    kb = std::max(1LL, std::min(k, kb));
    const long long ka = k - kb;
    auto fill = [&](const std::vector<int32_t> & natural, long long n) {
        std::vector<int32_t> out(natural.begin(), natural.begin() + (ptrdiff_t) std::min<long long>(n, (long long) natural.size()));
        for (size_t i = 0; (long long) out.size() < n; i++) out.push_back(body[i % body.size()]);
        return out;
    };
    return {fill(before0, kb), fill(after0, ka)};
}

double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

double mean(const std::vector<double> & v) {
    if (v.empty()) return NAN;
    double s = 0;
    for (double x : v) s += x;
    return s / (double) v.size();
}

class StudyBench {
public:
    StudyBench(lr_vision * vision, const lr_vision_info & vi, const Prompt & prompt)
        : vision_(vision), vi_(vi), prompt_(prompt) {
        per_image_ = (size_t) 3 * (size_t) vi.image_size * (size_t) vi.image_size;
        rows_per_image_ = (size_t) vi.n_patches * (size_t) vi.n_out;
        for (int m = 0; m < 2; m++) {
            images_[m].resize(per_image_);
            synthetic_image(vi.image_size, m == 1, vi.image_mean, vi.image_std, images_[m].data());
        }
    }

    // encodes the images of studies [first, first + n) in one call; returns the rows and the encode ms
    std::vector<float> encode(long long first, long long n, double * encode_ms) {
        std::vector<float> pixels(per_image_ * (size_t) n);
        for (long long i = 0; i < n; i++) {
            const std::vector<float> & img = images_[(first + i) % 2];
            std::copy(img.begin(), img.end(), pixels.begin() + (ptrdiff_t) (per_image_ * (size_t) i));
        }
        std::vector<float> out(rows_per_image_ * (size_t) n);
        const auto t0 = Clock::now();
        const lr_status s = lr_vision_encode(vision_, pixels.data(), (int32_t) n, LR_VISION_PROJECTED, out.data(), out.size());
        const auto t1 = Clock::now();
        if (s != LR_OK) engine_fail(s, "vision encoding failed");
        if (encode_ms) *encode_ms = ms_between(t0, t1);
        return out;
    }

    void take_rows(Study & st, const std::vector<float> & all, long long i) {
        st.rows.assign(all.begin() + (ptrdiff_t) (rows_per_image_ * (size_t) i),
                       all.begin() + (ptrdiff_t) (rows_per_image_ * (size_t) (i + 1)));
    }

    void submit(lr_context * ctx, Study & st, const lr_gen_params & gp) {
        lr_prompt_part parts[3] = {};
        size_t n = 0;
        parts[n].tokens = prompt_.before.data();
        parts[n++].n_tokens = prompt_.before.size();
        parts[n].embd = st.rows.data();
        parts[n++].n_embd_rows = (size_t) vi_.n_patches;
        if (!prompt_.after.empty()) {
            parts[n].tokens = prompt_.after.data();
            parts[n++].n_tokens = prompt_.after.size();
        }
        st.t_submit = Clock::now();
        const lr_status s = lr_submit(ctx, parts, n, &gp, on_token, on_done, &st, nullptr);
        if (s != LR_OK) engine_fail(s, "could not submit a study");
        std::vector<float>().swap(st.rows); // lr_submit copied them
    }

    // one study alone: encode (batch 1), submit, wait
    void run_one(lr_context * ctx, Study & st, long long index, const lr_gen_params & gp) {
        int seen = 0;
        {
            std::lock_guard<std::mutex> lk(st.tracker->mu);
            seen = st.tracker->n_done;
        }
        st.t_vision = Clock::now();
        const std::vector<float> rows = encode(index, 1, nullptr);
        take_rows(st, rows, 0);
        submit(ctx, st, gp);
        wait_done(*st.tracker, seen);
    }

private:
    lr_vision * vision_;
    lr_vision_info vi_;
    Prompt prompt_;
    size_t per_image_ = 0;
    size_t rows_per_image_ = 0;
    std::vector<float> images_[2];
};

// every study must have generated exactly T tokens (ignore_eos); anything else is an engine error
void check_study(const Study & st, long long index, long long t) {
    if (st.result.status != LR_OK) {
        throw EngineError{st.result.status, "study " + std::to_string(index) + " failed" + (st.error.empty() ? "" : ": " + st.error)};
    }
    if (st.result.stop_reason != LR_STOP_MAX_TOKENS || st.result.n_generated != t || st.n_tokens != t) {
        throw EngineError{st.result.stop_reason == LR_STOP_CTX_FULL ? LR_ERR_CONTEXT_FULL : LR_ERR_INTERNAL,
                          "study " + std::to_string(index) + " generated " + std::to_string(st.result.n_generated) + " of " +
                          std::to_string(t) + " tokens (stop reason " + std::to_string((int) st.result.stop_reason) + ")"};
    }
}

} // namespace

int cmd_study(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {
        {"model", 'm', true}, {"mmproj", 0, true}, {"studies", 0, true}, {"parallel", 0, true}, {"max-tokens", 'n', true},
        {"prompt-tokens", 0, true}, {"ctx-per-study", 0, true}, {"latency-runs", 0, true}, {"flash-attn", 0, true},
        {"overlap", 0, true},
        {"threads", 't', true}, {"backend", 0, true}, {"json", 0, false}, {"help", 'h', false},
    }, "study");
    if (a.flags.count("help")) {
        print_usage(stdout);
        return 0;
    }
    const std::string path = require_model(a, "study");
    const std::string vision_path = require_file(a, "mmproj", "study", "vision model");
    long long n_studies = 8, parallel = 1, max_tokens = 100, prompt_tokens = 60, ctx_per_study = 2048, threads = 0, flash_attn = 0;
    get_int(a, "studies", 1, 100000, n_studies);
    get_int(a, "parallel", 1, 256, parallel);
    get_int(a, "max-tokens", 1, 65536, max_tokens);
    get_int(a, "prompt-tokens", 1, 65536, prompt_tokens);
    get_int(a, "ctx-per-study", 1, 1 << 20, ctx_per_study);
    long long latency_runs = std::min<long long>(n_studies, 3);
    get_int(a, "latency-runs", 0, 1000, latency_runs);
    get_int(a, "flash-attn", 0, 1, flash_attn);
    long long overlap = 1;
    get_int(a, "overlap", 0, 1, overlap);
    get_int(a, "threads", 1, 1024, threads);
    const lr_backend backend = get_backend(a);
    const bool json = a.flags.count("json") > 0;
    if (parallel * ctx_per_study > (1 << 20)) {
        throw UsageError{"study: --parallel x --ctx-per-study must be at most 1048576 context cells, got " +
                         std::to_string(parallel) + " x " + std::to_string(ctx_per_study)};
    }
    if (prompt_tokens + max_tokens >= ctx_per_study) {
        throw UsageError{"study: --ctx-per-study " + std::to_string(ctx_per_study) + " cannot hold --prompt-tokens " +
                         std::to_string(prompt_tokens) + " + the image rows + --max-tokens " + std::to_string(max_tokens)};
    }

    // ---- load ----
    ModelHolder mh;
    lr_model_info info{};
    auto t0 = Clock::now();
    lr_model * model = load(path, a, mh, info);
    const double decoder_load_ms = ms_between(t0, Clock::now());

    lr_model_params mp = lr_model_default_params();
    mp.backend = backend;
    mp.n_threads = (int32_t) threads;
    VisionHolder vh;
    t0 = Clock::now();
    lr_status s = lr_vision_load(vision_path.c_str(), &mp, (int32_t) parallel, &vh.v);
    if (s != LR_OK) engine_fail(s, "could not load the vision model");
    lr_vision_info vi{};
    s = lr_vision_get_info(vh.v, &vi);
    if (s != LR_OK) engine_fail(s, "could not read the vision model's info");
    const double vision_load_ms = ms_between(t0, Clock::now());
    if (vi.n_out != info.n_embd) {
        throw UsageError{"study: the vision model projects to " + std::to_string(vi.n_out) + "-wide rows but the decoder's n_embd is " +
                         std::to_string(info.n_embd) + ": --mmproj " + vision_path + " does not belong to --model " + path};
    }
    const long long per_study = prompt_tokens + vi.n_patches + max_tokens;
    if (per_study > ctx_per_study) {
        throw UsageError{"study: --ctx-per-study " + std::to_string(ctx_per_study) + " is too small: a study needs " +
                         std::to_string(prompt_tokens) + " prompt tokens + " + std::to_string(vi.n_patches) + " image rows + " +
                         std::to_string(max_tokens) + " generated tokens = " + std::to_string(per_study) + " positions"};
    }

    // ---- the prompt: the official text's own ids, fitted to K ----
    const std::string text = kOfficialPrompt;
    const size_t cut = text.find("<image>");
    const std::vector<int32_t> before0 = tokenize(model, text.substr(0, cut), info.add_bos != 0);
    const std::vector<int32_t> after0 = tokenize(model, text.substr(cut + 7), false);
    const Prompt prompt = fit_prompt(before0, after0, info.add_bos != 0, prompt_tokens);

    lr_gen_params gp = lr_gen_default_params();
    gp.max_tokens = (int32_t) max_tokens;
    gp.ignore_eos = 1;
    StudyBench bench(vh.v, vi, prompt);

    // the trackers and studies outlive the context: freeing it cancels what is left and calls on_done
    Tracker warm_tracker, latency_tracker, run_tracker;
    Study warm;
    warm.tracker = &warm_tracker;
    std::vector<Study> latency((size_t) latency_runs);
    std::vector<Study> studies((size_t) n_studies);
    for (auto & st : latency) st.tracker = &latency_tracker;
    for (auto & st : studies) st.tracker = &run_tracker;

    lr_context_params cp = lr_context_default_params();
    cp.n_ctx = (int32_t) (parallel * ctx_per_study);
    cp.n_seq_max = (int32_t) parallel;
    cp.n_threads = (int32_t) threads;
    cp.flash_attn = (int32_t) flash_attn;
    ContextHolder ch;
    s = lr_context_create(model, &cp, &ch.c);
    if (s != LR_OK) engine_fail(s, "could not create the context");
    lr_context_info ci{};
    s = lr_context_get_info(ch.c, &ci);
    if (s != LR_OK) engine_fail(s, "could not read the context's info");

    // ---- vision: batch 1, then batch P (each after an untimed run of the same shape) ----
    const std::vector<float> warm_rows = bench.encode(0, 1, nullptr);
    double vision_b1_ms = 0, vision_bp_ms = 0;
    bench.encode(0, 1, &vision_b1_ms);
    if (parallel > 1) {
        bench.encode(0, parallel, nullptr);
        bench.encode(0, parallel, &vision_bp_ms);
        vision_bp_ms /= (double) parallel;
    } else {
        vision_bp_ms = vision_b1_ms;
    }

    // ---- decoder warm-up: one study's prompt, two tokens (untimed) ----
    {
        lr_gen_params wgp = gp;
        wgp.max_tokens = (int32_t) std::min<long long>(2, max_tokens);
        bench.take_rows(warm, warm_rows, 0);
        bench.submit(ch.c, warm, wgp);
        wait_done(warm_tracker, 0);
        check_study(warm, -1, wgp.max_tokens);
    }

    // ---- latency: one study at a time ----
    std::vector<double> lat_ttft, lat_study, lat_prefill, lat_decode;
    for (long long i = 0; i < latency_runs; i++) {
        Study & st = latency[(size_t) i];
        bench.run_one(ch.c, st, i, gp);
        check_study(st, i, max_tokens);
        lat_ttft.push_back(ms_between(st.t_vision, st.t_first));
        lat_study.push_back(ms_between(st.t_vision, st.t_done));
        lat_prefill.push_back(st.result.prompt_ms);
        if (max_tokens > 1 && st.result.decode_ms > 0) lat_decode.push_back((double) (max_tokens - 1) / st.result.decode_ms * 1000.0);
    }

    // ---- parallel: N studies, vision batches of up to P, at most P in flight ----
    long long n_encoded = 0, n_submitted = 0;
    int n_done = 0;
    std::vector<double> batch_ms_per_image;
    const auto run0 = Clock::now();
    for (;;) {
        {
            std::lock_guard<std::mutex> lk(run_tracker.mu);
            n_done = run_tracker.n_done;
        }
        while (n_submitted < n_encoded && n_submitted - n_done < parallel) {
            bench.submit(ch.c, studies[(size_t) n_submitted], gp);
            n_submitted++;
        }
        if (n_done == n_studies) break;
        if (n_encoded == n_submitted && n_encoded < n_studies && (overlap || n_submitted == n_done)) {
            // nothing waiting: encode the next batch now (it overlaps the decoding of the studies in flight;
            // with --overlap 0 only once none is in flight: waves of P, vision and decoder never concurrent)
            const long long b = std::min(parallel, n_studies - n_encoded);
            const auto tv = Clock::now();
            double enc_ms = 0;
            const std::vector<float> rows = bench.encode(n_encoded, b, &enc_ms);
            batch_ms_per_image.push_back(enc_ms / (double) b);
            for (long long i = 0; i < b; i++) {
                Study & st = studies[(size_t) (n_encoded + i)];
                st.t_vision = tv;
                bench.take_rows(st, rows, i);
            }
            n_encoded += b;
            continue;
        }
        wait_done(run_tracker, n_done);
    }
    const auto run1 = Clock::now();
    const double wall_ms = ms_between(run0, run1);

    long long generated = 0;
    double decode_steps = 0;
    std::vector<std::pair<Clock::time_point, Clock::time_point>> decoding; // [first token, done] per study
    std::vector<double> run_study, run_ttft, run_queue, run_decode;
    for (long long i = 0; i < n_studies; i++) {
        const Study & st = studies[(size_t) i];
        check_study(st, i, max_tokens);
        generated += st.result.n_generated;
        decode_steps += (double) std::max(0, st.result.n_generated - 1);
        decoding.emplace_back(st.t_first, st.t_done);
        run_study.push_back(ms_between(st.t_vision, st.t_done));
        run_ttft.push_back(ms_between(st.t_vision, st.t_first));
        run_queue.push_back(st.result.queue_ms);
        if (max_tokens > 1 && st.result.decode_ms > 0) run_decode.push_back((double) (max_tokens - 1) / st.result.decode_ms * 1000.0);
    }
    // aggregate decode rate: tokens after each study's first, over the time at least one study was decoding
    // (the union of the studies' [first token, done] intervals; prefill steps of others interleave inside)
    std::sort(decoding.begin(), decoding.end());
    double decode_window_ms = 0;
    for (size_t i = 0; i < decoding.size();) {
        auto lo = decoding[i].first, hi = decoding[i].second;
        for (++i; i < decoding.size() && decoding[i].first <= hi; ++i) hi = std::max(hi, decoding[i].second);
        decode_window_ms += ms_between(lo, hi);
    }
    const double decode_tok_s_aggregate = decode_window_ms > 0 && decode_steps > 0 ? decode_steps / decode_window_ms * 1000.0 : NAN;
    const double studies_per_hour = (double) n_studies / (wall_ms / 3600000.0);

    if (!json) {
        std::printf("study bench: %lld studies, parallel %lld, %lld prompt tokens (%zu + %d image rows + %zu), %lld tokens each, "
                    "backend %s / vision %s\n",
                    n_studies, parallel, prompt_tokens, prompt.before.size(), vi.n_patches, prompt.after.size(), max_tokens,
                    info.backend, vi.backend);
        std::printf("vision: %.2f ms per image at batch 1, %.2f at batch %lld\n", vision_b1_ms, vision_bp_ms, parallel);
        if (latency_runs > 0) {
            std::printf("alone (P=1, %lld runs, medians): time to first token %.1f ms (prefill %.1f ms), %.1f ms per study, decode %.1f tok/s\n",
                        latency_runs, median(lat_ttft), median(lat_prefill), median(lat_study), median(lat_decode));
        } else {
            std::printf("alone (P=1): skipped (--latency-runs 0)\n");
        }
        std::printf("parallel %lld: wall %.1f ms, %.1f ms per study, %.1f studies/hour, %lld tokens generated (%lld expected), "
                    "decode %.1f tok/s aggregate\n",
                    parallel, wall_ms, wall_ms / (double) n_studies, studies_per_hour, generated, n_studies * max_tokens,
                    decode_tok_s_aggregate);
        return 0;
    }
    JsonObject vj;
    vj.str("path", vision_path)
      .str("name", std::string(vi.name, strnlen(vi.name, sizeof vi.name)))
      .str("backend", std::string(vi.backend, strnlen(vi.backend, sizeof vi.backend)))
      .integer("image_size", vi.image_size)
      .integer("n_patches", vi.n_patches)
      .integer("n_embd", vi.n_embd)
      .integer("n_out", vi.n_out)
      .integer("n_block_used", vi.n_block_used)
      .num("n_params", (double) vi.n_params);
    JsonObject o;
    o.str("command", "study")
     .str("backend", std::string(info.backend, strnlen(info.backend, sizeof info.backend)))
     .integer("studies", n_studies)
     .integer("parallel", parallel)
     .integer("max_tokens", max_tokens)
     .integer("prompt_tokens", prompt_tokens)
     .integer("prompt_tokens_before", (long long) prompt.before.size())
     .integer("prompt_tokens_after", (long long) prompt.after.size())
     .integer("image_rows", vi.n_patches)
     .integer("n_prompt", prompt_tokens + vi.n_patches)
     .integer("ctx_per_study", ctx_per_study)
     .integer("n_ctx", ci.n_ctx)
     .integer("n_batch", ci.n_batch)
     .integer("flash_attn", ci.flash_attn)
     .integer("threads", ci.n_threads)
     .num("decoder_load_ms", decoder_load_ms)
     .num("vision_load_ms", vision_load_ms)
     .num("vision_ms_per_image_b1", vision_b1_ms)
     .num("vision_ms_per_image_bp", vision_bp_ms)
     .integer("vision_batch", parallel)
     .integer("overlap", overlap)
     .integer("latency_runs", latency_runs)
     .num("ttft_ms", median(lat_ttft))
     .num("prefill_ms", median(lat_prefill))
     .num("study_ms_p1", median(lat_study))
     .num("decode_tok_s_p1", median(lat_decode))
     .num("wall_ms", wall_ms)
     .num("ms_per_study", wall_ms / (double) n_studies)
     .num("studies_per_hour", studies_per_hour)
     .integer("generated_tokens", generated)
     .integer("expected_tokens", n_studies * max_tokens)
     .num("gen_tok_s_wall", (double) generated / (wall_ms / 1000.0))
     .num("decode_tok_s_aggregate", decode_tok_s_aggregate)
     .num("decode_tok_s_per_study", median(run_decode))
     .num("study_ms_median", median(run_study))
     .num("study_ms_max", run_study.empty() ? NAN : *std::max_element(run_study.begin(), run_study.end()))
     .num("ttft_ms_parallel", median(run_ttft))
     .num("queue_ms_parallel", median(run_queue))
     .integer("vision_batches", (long long) batch_ms_per_image.size())
     .num("vision_ms_per_image_in_run", mean(batch_ms_per_image))
     .raw("prompt_token_ids_before", json_ids(prompt.before.data(), prompt.before.size()))
     .raw("prompt_token_ids_after", json_ids(prompt.after.data(), prompt.after.size()))
     .raw("model", model_info_json(info, path, ci.n_ctx))
     .raw("vision", vj.finish());
    const std::string out = o.finish() + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

} // namespace lrcli
