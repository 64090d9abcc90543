// The request scheduler (continuous batching): a thread that runs every request in flight on one
// decoder context. Each step builds one batch holding one new token per decoding request plus
// as much pending prompt as fits in n_batch, decodes it, samples, and reports tokens.
//
// A request is admitted (FIFO) only when a sequence slot is free and the KV cells it can ever need are
// unreserved: its prompt plus max_tokens - 1 generated tokens, at most the whole cache. So what it
// generates never depends on the other requests in flight: it ends by EOS or max_tokens, or with
// context_full only when its own prompt and max_tokens exceed the cache (then at the same token whatever
// else runs).
#pragma once

#include "decoder_context.h"
#include "sampler.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lr {

class Scheduler {
public:
    explicit Scheduler(DecoderContext & ctx);
    ~Scheduler(); // cancels everything (on_done is still called for each request) and joins
    Scheduler(const Scheduler &) = delete;
    Scheduler & operator=(const Scheduler &) = delete;

    // Validates and queues; throws lr::Error when the request cannot be accepted.
    lr_request_id submit(const lr_prompt_part * parts, size_t n_parts, const lr_gen_params & params,
                         lr_on_token on_token, lr_on_done on_done, void * user);
    void cancel(lr_request_id id);
    // lr_debug_fault: the next step that decodes fails this way
    void inject_fault(lr_fault fault) { fault_ = fault; }

    // the low-level lr_decode path takes this lock so it never overlaps a scheduler step
    std::mutex & compute_mutex() { return compute_mu_; }
    // true when a running request owns this sequence slot
    bool owns_seq(int32_t seq);

private:
    using Clock = std::chrono::steady_clock;
    struct Request {
        lr_request_id id = 0;
        std::vector<int32_t> prompt;  // token ids, LR_TOKEN_EMBD for embedding rows
        std::vector<float> embd;      // the embedding rows, in prompt order
        lr_gen_params params{};
        std::unique_ptr<Sampler> sampler;
        lr_on_token on_token = nullptr;
        lr_on_done on_done = nullptr;
        void * user = nullptr;
        std::atomic<bool> cancelled{false};
        bool finished = false;     // on_done was called (exactly once; scheduler thread only)
        int32_t seq = -1;          // sequence slot while running
        int32_t reserved = 0;      // KV cells set aside for it while running (cells_needed)
        size_t n_fed = 0;          // prompt rows computed so far
        int32_t n_generated = 0;
        int32_t last_token = -1;   // sampled, not yet fed
        Clock::time_point t_submit, t_start, t_first, t_last;
    };

    DecoderContext & ctx_;
    std::mutex mu_;               // guards queue_, running_, stop_
    std::mutex compute_mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Request>> queue_;
    std::vector<std::shared_ptr<Request>> running_;
    bool stop_ = false;
    std::string dead_;            // set when a failure could not be contained: submit refuses with it
    std::atomic<bool> stopping_{false}; // stop_, readable without mu_ by the abort callback
    std::atomic<bool> abort_{false};    // a running request was cancelled: stop the graph in progress
    std::atomic<lr_fault> fault_{LR_FAULT_NONE};
    int32_t reserved_ = 0;        // cells reserved by running requests (mu_)
    std::atomic<lr_request_id> next_id_{1};
    std::thread thread_;

    void loop();
    bool step(); // false when there was nothing to do
    void admit(); // moves queued requests into free slots while their cells can be reserved (holds mu_)
    int32_t cells_needed(const Request & r) const;
    void finish(Request & r, lr_status status, lr_stop_reason reason, const std::string & error);
    // an exception escaped a step: its requests end with its status; the context goes on
    void fail_running(lr_status status, const std::string & error);
    static bool abort_requested(void * self); // ggml's abort callback
};

} // namespace lr
