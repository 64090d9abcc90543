#include "span_model.h"
#include "status.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

namespace lr {

namespace {

constexpr uint32_t kMaxDim = 1 << 16;
constexpr size_t kMaxLayers = 16;
constexpr size_t kMaxLabels = 1024;

std::vector<float> read_f32(const GgufFile & g, const std::string & name, std::vector<int64_t> shape) {
    const GgufTensor & t = g.require_tensor(name, shape);
    if (t.type != GGML_TYPE_F32) fail(LR_ERR_BAD_GGUF, format("%s: %s must be f32, is %s", g.path().c_str(), name.c_str(), ggml_type_name(t.type)));
    std::vector<float> v(t.nbytes / sizeof(float));
    std::memcpy(v.data(), t.data, t.nbytes);
    return v;
}

Linear read_linear(const GgufFile & g, const std::string & prefix, int32_t n_in, int32_t n_out) {
    Linear l;
    l.n_in = n_in;
    l.n_out = n_out;
    const std::vector<float> w = read_f32(g, prefix + ".weight", {n_in, n_out}); // n_out rows of n_in
    l.wt.resize(w.size());
    for (int32_t o = 0; o < n_out; o++) {
        for (int32_t i = 0; i < n_in; i++) l.wt[(size_t) i * n_out + o] = w[(size_t) o * n_in + i];
    }
    l.b = read_f32(g, prefix + ".bias", {n_out});
    return l;
}

Ffnn read_ffnn(const GgufFile & g, const std::string & prefix, int32_t n_in, const std::vector<int32_t> & dims) {
    Ffnn f;
    for (size_t i = 0; i < dims.size(); i++) {
        f.layers.push_back(read_linear(g, prefix + ".ffn." + std::to_string(i), n_in, dims[i]));
        n_in = dims[i];
    }
    return f;
}

int64_t params_of(const Linear & l) { return (int64_t) l.wt.size() + (int64_t) l.b.size(); }
int64_t params_of(const Ffnn & f) {
    int64_t n = 0;
    for (const Linear & l : f.layers) n += params_of(l);
    return n;
}

} // namespace

void parallel_for(int32_t n, int32_t n_threads, const std::function<void(int32_t, int32_t)> & fn) {
    const int32_t parts = std::max(1, std::min(n_threads, n));
    std::vector<std::exception_ptr> errors((size_t) parts);
    const auto run = [&](int32_t p) {
        try {
            fn((int32_t) ((int64_t) n * p / parts), (int32_t) ((int64_t) n * (p + 1) / parts));
        } catch (...) {
            errors[(size_t) p] = std::current_exception();
        }
    };
    std::vector<std::thread> threads;
    for (int32_t p = 1; p < parts; p++) threads.emplace_back(run, p);
    run(0);
    for (std::thread & t : threads) t.join();
    for (const std::exception_ptr & e : errors) {
        if (e) std::rethrow_exception(e);
    }
}

void Linear::accumulate(const double * x, int32_t first, int32_t n, double * y) const {
    for (int32_t i = 0; i < n; i++) {
        const double xi = x[i];
        if (xi == 0.0) continue; // ReLU outputs are often 0
        const float * row = wt.data() + (size_t) (first + i) * n_out;
        for (int32_t o = 0; o < n_out; o++) y[o] += (double) row[o] * xi;
    }
}

void Linear::apply(const double * x, double * y) const {
    for (int32_t o = 0; o < n_out; o++) y[o] = b[(size_t) o];
    accumulate(x, 0, n_in, y);
}

void Ffnn::apply(const double * x, double * out) const {
    std::vector<double> cur(x, x + layers.front().n_in), next;
    for (const Linear & l : layers) {
        next.assign((size_t) l.n_out, 0.0);
        l.apply(cur.data(), next.data());
        for (double & v : next) v = std::max(v, 0.0); // ReLU
        cur.swap(next);
    }
    std::copy(cur.begin(), cur.end(), out);
}

SpanModel SpanModel::load(const GgufFile & g, int32_t n_embd) {
    const std::string path = g.path();
    SpanModel m;
    m.n_embd = n_embd;
    m.n_width = (int32_t) g.get_u32("radgraph.width_embedding_count");
    m.n_feature = (int32_t) g.get_u32("radgraph.feature_size");
    if (m.n_width < 1 || (uint32_t) m.n_width > kMaxDim || m.n_feature < 1 || (uint32_t) m.n_feature > kMaxDim) {
        fail(LR_ERR_BAD_GGUF, format("%s: radgraph.width_embedding_count %d / feature_size %d out of range", path.c_str(), m.n_width, m.n_feature));
    }
    const std::vector<int32_t> dims = g.get_i32_array("radgraph.ffnn_dims");
    if (dims.empty() || dims.size() > kMaxLayers) fail(LR_ERR_BAD_GGUF, format("%s: radgraph.ffnn_dims must hold 1..%zu layers", path.c_str(), kMaxLayers));
    for (int32_t d : dims) {
        if (d < 1 || (uint32_t) d > kMaxDim) fail(LR_ERR_BAD_GGUF, format("%s: a feedforward layer of %d", path.c_str(), d));
    }
    const size_t n_ner = g.array_length("radgraph.ner_labels"), n_rel = g.array_length("radgraph.relation_labels");
    if (n_ner < 2 || n_ner > kMaxLabels || n_rel < 1 || n_rel > kMaxLabels) {
        fail(LR_ERR_BAD_GGUF, format("%s: radgraph.ner_labels (%zu) / relation_labels (%zu) missing or out of range", path.c_str(), n_ner, n_rel));
    }
    m.n_ner = (int32_t) n_ner - 1; // the null label is not scored
    m.n_relation = (int32_t) n_rel;
    m.span_dim = 2 * n_embd + m.n_feature;
    const int32_t H = dims.back();

    m.width_embd = read_f32(g, "radgraph.span_width_embd.weight", {m.n_feature, m.n_width});
    m.ner_ffn = read_ffnn(g, "radgraph.ner", m.span_dim, dims);
    m.ner_out = read_linear(g, "radgraph.ner.out", H, m.n_ner);
    m.mention_ffn = read_ffnn(g, "radgraph.mention", m.span_dim, dims);
    m.mention_out = read_linear(g, "radgraph.mention.out", H, 1);
    m.relation_ffn = read_ffnn(g, "radgraph.relation", 3 * m.span_dim, dims);
    m.relation_out = read_linear(g, "radgraph.relation.out", H, m.n_relation);
    m.n_params = (int64_t) m.width_embd.size() + params_of(m.ner_ffn) + params_of(m.ner_out) + params_of(m.mention_ffn)
                 + params_of(m.mention_out) + params_of(m.relation_ffn) + params_of(m.relation_out);
    return m;
}

void SpanModel::represent(const float * words, int32_t start, int32_t end, double * span) const {
    const float * s = words + (size_t) start * n_embd;
    const float * e = words + (size_t) end * n_embd;
    const float * w = width_embd.data() + (size_t) (end - start) * n_feature;
    for (int32_t i = 0; i < n_embd; i++) span[i] = s[i];
    for (int32_t i = 0; i < n_embd; i++) span[n_embd + i] = e[i];
    for (int32_t i = 0; i < n_feature; i++) span[2 * n_embd + i] = w[i];
}

void SpanModel::score_span(const double * span, float * ner, float * mention) const {
    std::vector<double> hidden((size_t) ner_ffn.n_out()), out((size_t) std::max(n_ner, 1));
    ner_ffn.apply(span, hidden.data());
    ner_out.apply(hidden.data(), out.data());
    for (int32_t l = 0; l < n_ner; l++) ner[l] = (float) out[(size_t) l];
    hidden.assign((size_t) mention_ffn.n_out(), 0.0);
    mention_ffn.apply(span, hidden.data());
    double m = 0;
    mention_out.apply(hidden.data(), &m);
    *mention = (float) m;
}

void SpanModel::score_pairs(const std::vector<double> & spans, int32_t K, const float * mention, float * out, int32_t n_threads) const {
    // the first layer on [s_i, s_j, s_i * s_j] is A s_i + B s_j + C (s_i * s_j) + b: A s_i and B s_j once per span
    const Linear & first = relation_ffn.layers.front();
    const int32_t P = span_dim, H1 = first.n_out;
    std::vector<double> a((size_t) K * H1, 0.0), bj((size_t) K * H1, 0.0);
    for (int32_t k = 0; k < K; k++) {
        const double * s = spans.data() + (size_t) k * P;
        first.accumulate(s, 0, P, a.data() + (size_t) k * H1);
        first.accumulate(s, P, P, bj.data() + (size_t) k * H1);
    }
    parallel_for(K, n_threads, [&](int32_t i0, int32_t i1) {
        std::vector<double> prod((size_t) P), h1((size_t) H1), cur, next, scores((size_t) n_relation);
        for (int32_t i = i0; i < i1; i++) {
            const double * si = spans.data() + (size_t) i * P;
            for (int32_t j = 0; j < K; j++) {
                const double * sj = spans.data() + (size_t) j * P;
                for (int32_t p = 0; p < P; p++) prod[(size_t) p] = si[p] * sj[p];
                for (int32_t o = 0; o < H1; o++) h1[(size_t) o] = first.b[(size_t) o] + a[(size_t) i * H1 + o] + bj[(size_t) j * H1 + o];
                first.accumulate(prod.data(), 2 * P, P, h1.data());
                for (double & v : h1) v = std::max(v, 0.0);
                cur = h1;
                for (size_t l = 1; l < relation_ffn.layers.size(); l++) {
                    const Linear & layer = relation_ffn.layers[l];
                    next.assign((size_t) layer.n_out, 0.0);
                    layer.apply(cur.data(), next.data());
                    for (double & v : next) v = std::max(v, 0.0);
                    cur.swap(next);
                }
                relation_out.apply(cur.data(), scores.data());
                float * o = out + ((size_t) i * K + j) * n_relation;
                for (int32_t r = 0; r < n_relation; r++) o[r] = (float) (scores[(size_t) r] + mention[i] + mention[j]);
            }
        }
    });
}

} // namespace lr
