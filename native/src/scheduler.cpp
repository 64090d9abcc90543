#include "scheduler.h"
#include "status.h"

#include <algorithm>

namespace lr {

namespace {
double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}
} // namespace

Scheduler::Scheduler(DecoderContext & ctx) : ctx_(ctx) {
    ctx_.set_abort_callback(abort_requested, this);
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        stopping_ = true; // a graph in progress stops at its next node
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    try {
        ctx_.set_abort_callback(nullptr, nullptr);
    } catch (...) {
        // cannot fail once the constructor set it; a destructor must not throw either way
    }
}

bool Scheduler::abort_requested(void * self) {
    const Scheduler * s = static_cast<const Scheduler *>(self);
    return s->abort_.load(std::memory_order_relaxed) || s->stopping_.load(std::memory_order_relaxed);
}

lr_request_id Scheduler::submit(const lr_prompt_part * parts, size_t n_parts, const lr_gen_params & params,
                                lr_on_token on_token, lr_on_done on_done, void * user) {
    const LlamaHParams & hp = ctx_.model().hp;
    const int32_t n_ctx = ctx_.kv().size();
    if (parts == nullptr || n_parts == 0) fail(LR_ERR_INVALID_ARGUMENT, "the prompt has no parts");
    if (on_done == nullptr) fail(LR_ERR_INVALID_ARGUMENT, "on_done must not be NULL");
    if (params.max_tokens < 1 || params.max_tokens > n_ctx) {
        fail(LR_ERR_INVALID_ARGUMENT, format("max_tokens must be between 1 and the context size %d, got %d", n_ctx, params.max_tokens));
    }
    validate_sampling(params.sampling);

    auto r = std::make_shared<Request>();
    for (size_t p = 0; p < n_parts; p++) {
        const lr_prompt_part & part = parts[p];
        const bool has_tok = part.tokens != nullptr && part.n_tokens > 0;
        const bool has_emb = part.embd != nullptr && part.n_embd_rows > 0;
        if (has_tok == has_emb) {
            fail(LR_ERR_INVALID_ARGUMENT, format("prompt part %zu must hold either tokens or embedding rows (exactly one, non-empty)", p));
        }
        const size_t rows = has_tok ? part.n_tokens : part.n_embd_rows;
        if (r->prompt.size() + rows >= (size_t) n_ctx) {
            fail(LR_ERR_CONTEXT_FULL, format("the prompt (%zu+ positions) does not fit the context of %d with room to generate",
                r->prompt.size() + rows, n_ctx));
        }
        if (has_tok) {
            for (size_t i = 0; i < part.n_tokens; i++) {
                const int32_t t = part.tokens[i];
                if (t < 0 || t >= hp.n_vocab) {
                    fail(LR_ERR_INVALID_ARGUMENT, format("prompt part %zu: token id %d is outside [0, %d)", p, t, hp.n_vocab));
                }
                r->prompt.push_back(t);
            }
        } else {
            r->embd.insert(r->embd.end(), part.embd, part.embd + part.n_embd_rows * (size_t) hp.n_embd);
            r->prompt.insert(r->prompt.end(), part.n_embd_rows, LR_TOKEN_EMBD);
        }
    }
    r->params = params;
    r->sampler = std::make_unique<Sampler>(params.sampling);
    r->on_token = on_token;
    r->on_done = on_done;
    r->user = user;
    r->id = next_id_++;
    r->t_submit = Clock::now();
    const lr_request_id id = r->id;
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_) fail(LR_ERR_CANCELLED, "the context is shutting down");
        if (!dead_.empty()) fail(LR_ERR_INTERNAL, dead_);
        queue_.push_back(std::move(r));
    }
    cv_.notify_all();
    return id;
}

void Scheduler::cancel(lr_request_id id) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        for (auto & r : queue_) if (r->id == id) r->cancelled = true;
        for (auto & r : running_) {
            if (r->id == id) {
                r->cancelled = true;
                abort_ = true; // its rows may be in the graph computing now
            }
        }
    }
    cv_.notify_all();
}

bool Scheduler::owns_seq(int32_t seq) {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto & r : running_) if (r->seq == seq) return true;
    return false;
}

int32_t Scheduler::cells_needed(const Request & r) const {
    // the prompt's rows, then every generated token but the last is fed back
    const int64_t need = (int64_t) r.prompt.size() + (int64_t) r.params.max_tokens - 1;
    return (int32_t) std::min<int64_t>(need, ctx_.kv().size());
}

void Scheduler::admit() {
    KvCache & kv = ctx_.kv();
    const int32_t n_seq_max = kv.n_seq_max();
    while (!queue_.empty() && (int32_t) running_.size() < n_seq_max) {
        // a slot is free when no running request owns it and lr_decode users left it empty; cells that
        // lr_decode users hold are not the scheduler's to hand out
        int32_t slot = -1, held_outside = 0;
        {
            std::lock_guard<std::mutex> ck(compute_mu_);
            for (int32_t s = 0; s < n_seq_max; s++) {
                bool ours = false;
                for (auto & r : running_) ours = ours || r->seq == s;
                if (ours) continue;
                held_outside += kv.seq_length(s);
                if (slot < 0 && kv.seq_length(s) == 0) slot = s;
            }
        }
        if (slot < 0) break;
        auto & r = queue_.front();
        const int32_t need = cells_needed(*r);
        if (need > kv.size() - reserved_ - held_outside) break; // FIFO: later requests wait behind it
        r->seq = slot;
        r->reserved = need;
        reserved_ += need;
        r->t_start = Clock::now();
        running_.push_back(r);
        queue_.pop_front();
    }
}

void Scheduler::finish(Request & r, lr_status status, lr_stop_reason reason, const std::string & error) {
    if (r.finished) return; // a request ends once: on_done may free what its user pointer points to
    r.finished = true;
    {
        std::lock_guard<std::mutex> lk(mu_);
        reserved_ -= r.reserved;
        r.reserved = 0;
        running_.erase(std::remove_if(running_.begin(), running_.end(),
            [&](const std::shared_ptr<Request> & x) { return x.get() == &r; }), running_.end());
    }
    if (r.seq >= 0) {
        std::lock_guard<std::mutex> lk(compute_mu_);
        ctx_.kv().truncate(r.seq, 0);
    }
    const auto now = Clock::now();
    const auto t_start = r.t_start.time_since_epoch().count() ? r.t_start : now;
    lr_gen_result res{};
    res.status = status;
    res.stop_reason = reason;
    res.n_prompt = (int32_t) r.prompt.size();
    res.n_generated = r.n_generated;
    res.queue_ms = ms_between(r.t_submit, t_start);
    res.prompt_ms = r.n_generated > 0 ? ms_between(t_start, r.t_first) : ms_between(t_start, now);
    res.decode_ms = r.n_generated > 0 ? ms_between(r.t_first, r.t_last) : 0.0;
    res.error = error.c_str();
    r.on_done(r.user, &res);
}

void Scheduler::loop() {
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !queue_.empty() || !running_.empty(); });
            if (stop_) break;
        }
        bool worked = true;
        try {
            worked = step();
        } catch (...) {
            std::string message;
            const lr_status status = current_exception_status(message);
            try {
                fail_running(status, message);
            } catch (...) {
                // the requests could not even be ended: refuse new ones rather than run on a cache in an
                // unknown state
                std::lock_guard<std::mutex> lk(mu_);
                dead_ = "the context is unusable after an internal error: " + message;
            }
        }
        if (!worked) {
            // queued requests wait for a sequence slot that lr_decode users still hold
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait_for(lk, std::chrono::milliseconds(5));
        }
    }
    // shutting down: every request still here is cancelled
    std::vector<std::shared_ptr<Request>> left;
    {
        std::lock_guard<std::mutex> lk(mu_);
        left.assign(running_.begin(), running_.end());
        left.insert(left.end(), queue_.begin(), queue_.end());
        queue_.clear();
    }
    for (auto & r : left) finish(*r, LR_ERR_CANCELLED, LR_STOP_CANCELLED, "the context was freed");
}

void Scheduler::fail_running(lr_status status, const std::string & error) {
    std::vector<std::shared_ptr<Request>> running;
    {
        std::lock_guard<std::mutex> lk(mu_);
        running = running_;
    }
    // finish() cuts each one's sequence from the cache, so the context is as before they started
    for (auto & r : running) finish(*r, status, LR_STOP_ERROR, error);
}

bool Scheduler::step() {
    KvCache & kv = ctx_.kv();
    std::vector<std::shared_ptr<Request>> active;
    std::vector<std::shared_ptr<Request>> cancelled;
    abort_ = false; // cancellations from here on stop this step's graph; earlier ones are collected below
    {
        std::lock_guard<std::mutex> lk(mu_);
        for (auto it = queue_.begin(); it != queue_.end();) {
            if ((*it)->cancelled) { cancelled.push_back(*it); it = queue_.erase(it); } else ++it;
        }
        admit();
        active = running_;
    }
    for (auto & r : cancelled) finish(*r, LR_ERR_CANCELLED, LR_STOP_CANCELLED, "cancelled");
    for (auto it = active.begin(); it != active.end();) {
        if ((*it)->cancelled) { finish(**it, LR_ERR_CANCELLED, LR_STOP_CANCELLED, "cancelled"); it = active.erase(it); } else ++it;
    }
    if (active.empty()) return !cancelled.empty();

    // ---- one batch: a token for each decoding request, then prompt rows while room is left ----
    const int32_t n_embd = ctx_.model().hp.n_embd;
    int32_t budget = ctx_.params().n_batch;
    int32_t free_cells = kv.free_cells();
    std::vector<BatchRow> rows;
    std::vector<Request *> owners;               // request of each row that wants logits
    std::vector<std::pair<Request *, size_t>> fed; // prompt rows added per request
    for (auto it = active.begin(); it != active.end();) {
        auto & r = *it;
        if (r->n_fed < r->prompt.size()) { ++it; continue; }
        if (kv.seq_length(r->seq) >= r->reserved || free_cells == 0) {
            // no cell for its next token (its prompt and max_tokens exceed the cache; the second test
            // only guards the reservation): it ends here and takes no further part in this step
            finish(*r, LR_OK, LR_STOP_CTX_FULL, "");
            it = active.erase(it);
            continue;
        }
        rows.push_back({r->last_token, nullptr, kv.seq_length(r->seq), r->seq, true});
        owners.push_back(r.get());
        budget--;
        free_cells--;
        ++it;
    }
    for (auto & r : active) {
        if (r->n_fed >= r->prompt.size() || budget <= 0 || free_cells <= 0) continue;
        const size_t take = std::min({r->prompt.size() - r->n_fed, (size_t) budget, (size_t) free_cells});
        size_t emb_before = 0;
        for (size_t i = 0; i < r->n_fed; i++) emb_before += r->prompt[i] == LR_TOKEN_EMBD;
        for (size_t j = 0; j < take; j++) {
            const size_t i = r->n_fed + j;
            const int32_t tok = r->prompt[i];
            const float * e = nullptr;
            if (tok == LR_TOKEN_EMBD) e = r->embd.data() + (emb_before++) * (size_t) n_embd;
            const bool last = i + 1 == r->prompt.size();
            rows.push_back({tok, e, (int32_t) i, r->seq, last});
            if (last) owners.push_back(r.get());
        }
        fed.push_back({r.get(), take});
        budget -= (int32_t) take;
        free_cells -= (int32_t) take;
    }
    if (rows.empty()) {
        // nothing could be placed: the cache is full of prompts that cannot finish
        for (auto & r : active) finish(*r, LR_ERR_CONTEXT_FULL, LR_STOP_CTX_FULL, "the KV cache is full");
        return true;
    }

    const lr_fault fault = fault_.exchange(LR_FAULT_NONE);
    try {
        std::lock_guard<std::mutex> lk(compute_mu_);
        if (fault == LR_FAULT_BACKEND_ERROR) ctx_.inject_fault(DecoderFault::BackendError);
        if (fault == LR_FAULT_OUT_OF_MEMORY) ctx_.inject_fault(DecoderFault::OutOfMemory);
        if (fault == LR_FAULT_ABORT) abort_ = true;
        ctx_.decode(rows);
    } catch (...) {
        // decode() left the cache as before the batch
        std::string message;
        const lr_status status = current_exception_status(message);
        if (status == LR_ERR_CANCELLED) {
            // stopped between graph nodes: the cancelled requests end (next step, or at shutdown); the
            // others run this step again
            return true;
        }
        std::vector<Request *> in_batch(owners);
        for (auto & f : fed) in_batch.push_back(f.first);
        std::sort(in_batch.begin(), in_batch.end());
        in_batch.erase(std::unique(in_batch.begin(), in_batch.end()), in_batch.end());
        for (auto * r : in_batch) finish(*r, status, LR_STOP_ERROR, message);
        return true;
    }
    for (auto & f : fed) f.first->n_fed += f.second;
    if (fault == LR_FAULT_THROW) throw std::runtime_error("injected fault: a step threw (lr_debug_fault)");

    const int32_t n_vocab = ctx_.model().hp.n_vocab;
    const int32_t eos = ctx_.model().tokenizer->eos();
    for (size_t k = 0; k < owners.size(); k++) {
        Request & r = *owners[k];
        const float * logits = ctx_.logits((int32_t) k);
        const int32_t tok = r.sampler->sample(logits, n_vocab);
        const auto now = Clock::now();
        if (tok == eos && !r.params.ignore_eos) {
            if (r.n_generated == 0) r.t_first = now;
            finish(r, LR_OK, LR_STOP_EOS, "");
            continue;
        }
        if (r.n_generated == 0) r.t_first = now;
        r.t_last = now;
        r.n_generated++;
        r.last_token = tok;
        if (r.on_token) r.on_token(r.user, tok, r.params.keep_logits ? logits : nullptr, n_vocab);
        if (r.n_generated >= r.params.max_tokens) finish(r, LR_OK, LR_STOP_MAX_TOKENS, "");
    }
    return true;
}

} // namespace lr
