// RadGraph's span model (DyGIE: radgraph/dygie/models/{dygie,ner,relation}.py) on word vectors, read from the
// GGUF that lib/convert/radgraph.ts writes beside the BERT encoder's tensors:
//
//   radgraph.width_embedding_count (u32: W)   radgraph.feature_size (u32: F)   radgraph.ffnn_dims (u32[]: H_1..H_n)
//   radgraph.ner_labels (str[]: "" first)      radgraph.relation_labels (str[])
//
//   radgraph.span_width_embd.weight [F, W]
//   radgraph.{ner, mention, relation}.ffn.N.{weight [H_N-1, H_N], bias [H_N]}   (H_0: P = 2D + F; relation: 3P)
//   radgraph.ner.out.{weight [H_n, L], bias [L]}        L = entity labels less the null one
//   radgraph.mention.out.{weight [H_n, 1], bias [1]}
//   radgraph.relation.out.{weight [H_n, R], bias [R]}   R = relation labels
// (ggml order: the first number is the row length; all F32)
#pragma once

#include "gguf_file.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace lr {

// y = W x + b; W kept transposed (wt: n_in rows of n_out) so that the inner loop runs over independent outputs
struct Linear {
    int32_t n_in = 0, n_out = 0;
    std::vector<float> wt, b;
    void apply(const double * x, double * y) const;
    // y += W[:, first .. first + n) x (x: n values), the columns of W from `first`
    void accumulate(const double * x, int32_t first, int32_t n, double * y) const;
};

// allennlp FeedForward with ReLU after every layer (DyGIE's make_feedforward; dropout off at inference)
struct Ffnn {
    std::vector<Linear> layers;
    int32_t n_out() const { return layers.empty() ? 0 : layers.back().n_out; }
    // x: layers[0].n_in values -> out: n_out() values
    void apply(const double * x, double * out) const;
};

struct SpanModel {
    int32_t n_embd = 0;       // D: a word vector
    int32_t n_width = 0;      // W: width embeddings (spans of 1..W words)
    int32_t n_feature = 0;    // F
    int32_t span_dim = 0;     // P = 2D + F
    int32_t n_ner = 0;        // L
    int32_t n_relation = 0;   // R
    std::vector<float> width_embd; // [W rows of F]
    Ffnn ner_ffn, mention_ffn, relation_ffn;
    Linear ner_out, mention_out, relation_out;
    int64_t n_params = 0;

    // reads and checks every span tensor of a RadGraph GGUF whose BERT width is n_embd
    static SpanModel load(const GgufFile & gguf, int32_t n_embd);

    // span = [words[start], words[end], width_embd[end - start]]: P values
    void represent(const float * words, int32_t start, int32_t end, double * span) const;
    // ner: L scores, mention: 1 score, of one span representation
    void score_span(const double * span, float * ner, float * mention) const;
    // relation scores of every ordered pair of K span representations (K x P) with their mention scores:
    // out[(i K + j) R + r] (see llava_rad.h lr_radgraph_score_pairs); rows i split over n_threads threads
    void score_pairs(const std::vector<double> & spans, int32_t K, const float * mention, float * out, int32_t n_threads) const;
};

// fn(begin, end) over [0, n) in up to n_threads contiguous parts, one thread each (the caller's the first);
// an exception in any part is rethrown here after all have finished
void parallel_for(int32_t n, int32_t n_threads, const std::function<void(int32_t, int32_t)> & fn);

} // namespace lr
