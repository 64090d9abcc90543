#include "sampler.h"
#include "status.h"

#include <algorithm>
#include <cmath>

namespace lr {

void validate_sampling(const lr_sampling & s) {
    if (!std::isfinite(s.temperature) || s.temperature > 100.0f) {
        fail(LR_ERR_INVALID_ARGUMENT, format("temperature must be a finite number <= 100, got %g", s.temperature));
    }
    if (s.top_k < 0) fail(LR_ERR_INVALID_ARGUMENT, format("top_k must be >= 0, got %d", s.top_k));
    if (!std::isfinite(s.top_p)) fail(LR_ERR_INVALID_ARGUMENT, "top_p must be a finite number");
}

int32_t argmax(const float * logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) {
        if (logits[i] > logits[best]) best = i;
    }
    return best;
}

Sampler::Sampler(const lr_sampling & params) : p_(params), rng_(params.seed) {}

int32_t Sampler::sample(const float * logits, int32_t n_vocab) {
    if (p_.temperature <= 0.0f) return argmax(logits, n_vocab);

    cand_.resize((size_t) n_vocab);
    for (int32_t i = 0; i < n_vocab; i++) cand_[(size_t) i] = {logits[i], i};
    // sort by logit, highest first (ties: lower id first)
    auto by_logit = [](const std::pair<float, int32_t> & a, const std::pair<float, int32_t> & b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t keep = cand_.size();
    if (p_.top_k > 0 && (size_t) p_.top_k < keep) {
        keep = (size_t) p_.top_k;
        std::partial_sort(cand_.begin(), cand_.begin() + (ptrdiff_t) keep, cand_.end(), by_logit);
        cand_.resize(keep);
    } else {
        std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    if (p_.top_p > 0.0f && p_.top_p < 1.0f) {
        // smallest prefix whose probability (softmax of the raw logits) reaches top_p
        const float max_l = cand_[0].first;
        double sum = 0;
        for (auto & c : cand_) sum += std::exp((double) c.first - max_l);
        double acc = 0;
        size_t n = 0;
        for (; n < cand_.size(); n++) {
            acc += std::exp((double) cand_[n].first - max_l) / sum;
            if (acc >= p_.top_p) { n++; break; }
        }
        cand_.resize(std::max<size_t>(1, std::min(n, cand_.size())));
    }
    // temperature, softmax, draw
    const float max_l = cand_[0].first;
    std::vector<double> w(cand_.size());
    double sum = 0;
    for (size_t i = 0; i < cand_.size(); i++) {
        w[i] = std::exp(((double) cand_[i].first - max_l) / p_.temperature);
        sum += w[i];
    }
    std::uniform_real_distribution<double> u(0.0, sum);
    double r = u(rng_);
    for (size_t i = 0; i < cand_.size(); i++) {
        r -= w[i];
        if (r <= 0) return cand_[i].second;
    }
    return cand_.back().second;
}

} // namespace lr
