#include "harness.h"
#include "sampler.h"
#include "status.h"

#include <cmath>
#include <map>

TEST("sampler: greedy takes the largest logit, the lowest id on ties") {
    const float logits[] = {0.5f, 2.0f, -1.0f, 2.0f};
    lr_sampling s{};
    lr::Sampler greedy(s);
    CHECK(greedy.sample(logits, 4) == 1);
    CHECK(lr::argmax(logits, 4) == 1);
}

TEST("sampler: top_k = 1 is greedy whatever the temperature") {
    const float logits[] = {0.1f, 0.3f, 3.0f, 0.2f};
    lr_sampling s{};
    s.temperature = 5.0f;
    s.top_k = 1;
    s.seed = 7;
    lr::Sampler k1(s);
    for (int i = 0; i < 50; i++) CHECK(k1.sample(logits, 4) == 2);
}

TEST("sampler: top_p keeps only the smallest set reaching p") {
    // probabilities ~ 0.64, 0.24, 0.09, 0.03: top_p 0.5 leaves only the first
    const float logits[] = {3.0f, 2.0f, 1.0f, 0.0f};
    lr_sampling s{};
    s.temperature = 1.0f;
    s.top_p = 0.5f;
    s.seed = 3;
    lr::Sampler p(s);
    for (int i = 0; i < 50; i++) CHECK(p.sample(logits, 4) == 0);
}

TEST("sampler: the same seed gives the same draws; frequencies follow the softmax") {
    const float logits[] = {1.0f, 0.0f, 1.0f, -1.0f};
    lr_sampling s{};
    s.temperature = 1.0f;
    s.seed = 1234;
    lr::Sampler a(s), b(s);
    std::map<int, int> counts;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        const int ta = a.sample(logits, 4);
        CHECK(ta == b.sample(logits, 4));
        counts[ta]++;
    }
    const double z = 2 * std::exp(1.0) + 1 + std::exp(-1.0);
    CHECK(std::fabs(counts[0] / (double) n - std::exp(1.0) / z) < 0.02);
    CHECK(std::fabs(counts[1] / (double) n - 1.0 / z) < 0.02);
    CHECK(std::fabs(counts[3] / (double) n - std::exp(-1.0) / z) < 0.02);
}

TEST("sampler: invalid parameters are refused with LR_ERR_INVALID_ARGUMENT") {
    lr_sampling s{};
    s.temperature = NAN;
    bool threw = false;
    try { lr::validate_sampling(s); } catch (const lr::Error & e) { threw = e.code == LR_ERR_INVALID_ARGUMENT; }
    CHECK(threw);
    s.temperature = 1.0f;
    s.top_k = -2;
    threw = false;
    try { lr::validate_sampling(s); } catch (const lr::Error & e) { threw = e.code == LR_ERR_INVALID_ARGUMENT; }
    CHECK(threw);
}
