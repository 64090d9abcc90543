// Token sampling: greedy, or temperature with optional top-k / top-p, from a seeded generator.
#pragma once

#include "llava_rad.h"

#include <cstdint>
#include <random>
#include <vector>

namespace lr {

// throws LR_ERR_INVALID_ARGUMENT for values out of range (NaN, negative top_k, ...)
void validate_sampling(const lr_sampling & s);

class Sampler {
public:
    explicit Sampler(const lr_sampling & params);
    // picks a token from n_vocab logits
    int32_t sample(const float * logits, int32_t n_vocab);

private:
    lr_sampling p_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> cand_;
};

// index of the largest logit; the lowest index wins ties (llama.cpp's greedy sampler)
int32_t argmax(const float * logits, int32_t n);

} // namespace lr
