// SentencePiece-BPE ("llama" vocabulary) tokenizer, written to give the same ids and text as llama.cpp's
// SPM tokenizer (parse_special = false) and SentencePiece itself. See tokenizer.h for the contract.
//
// Encoding, in order:
//   1. user-defined tokens are cut out of the text first (llama.cpp does this even without special parsing);
//   2. each remaining fragment gets the dummy-prefix space when add_space_prefix is set and the fragment
//      is the first one or follows a user-defined token; every ' ' becomes U+2581 "▁";
//   3. the fragment is split into UTF-8 characters (the length comes from the lead byte only and is
//      clamped to the bytes left, so invalid or truncated UTF-8 never reads past the end);
//   4. adjacent symbols are merged, best-scoring pair first (equal scores: the leftmost pair first),
//      while the concatenation is a token of the vocabulary;
//   5. each final symbol is its token, or (not in the vocabulary) one byte piece <0xNN> per byte, or the
//      unknown token when the vocabulary has no piece for that byte.
// Control, unknown and byte tokens are never matched against text (SentencePiece keeps them out of its
// piece table; in the LLaMA vocabulary no merge chain reaches them, so llama.cpp gives the same ids).

#include "tokenizer.h"

#include "gguf_file.h"
#include "status.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <string_view>
#include <utility>

namespace lr {

namespace {

const char kSpaceMark[] = "\xE2\x96\x81"; // U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space
constexpr size_t kSpaceMarkLen = 3;

// bytes in the UTF-8 sequence that starts with `lead` (continuation and invalid bytes count as 1;
// 0xF8..0xFF count as 4, as in llama.cpp)
size_t utf8_seq_len(unsigned char lead) {
    const unsigned hi = lead >> 4;
    if (hi < 0xC) return 1;
    if (hi < 0xE) return 2;
    if (hi == 0xE) return 3;
    return 4;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// "<0xNN>" -> NN, or -1
int parse_byte_piece(const std::string & s) {
    if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    const int hi = hex_value(s[3]), lo = hex_value(s[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

bool is_special_type(int32_t t) {
    return t == (int32_t) TokenType::Control || t == (int32_t) TokenType::Unknown;
}

struct Symbol {
    int prev;
    int next;
    size_t off; // into the escaped fragment
    size_t n;   // 0 once merged into its left neighbour
};

struct Bigram {
    int left;
    int right;
    float score;
    size_t size; // bytes of the merged text: a stale entry no longer matches its symbols' sizes
};

// std::priority_queue pops the greatest: higher score first, then the smaller left index
struct BigramLess {
    bool operator()(const Bigram & a, const Bigram & b) const {
        if (a.score != b.score) return a.score < b.score;
        return a.left > b.left;
    }
};

} // namespace

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> types,
                     int32_t bos_id, int32_t eos_id, int32_t unk_id, bool add_bos, bool add_space_prefix)
    : tokens_(std::move(tokens)), scores_(std::move(scores)), types_(std::move(types)),
      bos_id_(bos_id), eos_id_(eos_id), unk_id_(unk_id), add_bos_(add_bos), add_space_prefix_(add_space_prefix) {
    const size_t n = tokens_.size();
    if (n == 0) fail(LR_ERR_BAD_GGUF, "tokenizer: the vocabulary is empty");
    if (n > (size_t) std::numeric_limits<int32_t>::max()) {
        fail(LR_ERR_BAD_GGUF, format("tokenizer: the vocabulary has too many tokens (%zu)", n));
    }
    if (scores_.size() != n) {
        fail(LR_ERR_BAD_GGUF, format("tokenizer: %zu scores for %zu tokens", scores_.size(), n));
    }
    if (types_.size() != n) {
        fail(LR_ERR_BAD_GGUF, format("tokenizer: %zu token types for %zu tokens", types_.size(), n));
    }
    const auto check_id = [n](const char * what, int32_t id) {
        if (id < 0 || (size_t) id >= n) {
            fail(LR_ERR_BAD_GGUF, format("tokenizer: %s token id %d is outside the vocabulary (%zu tokens)", what, (int) id, n));
        }
    };
    check_id("BOS", bos_id_);
    check_id("EOS", eos_id_);
    check_id("unknown", unk_id_);

    text_to_id_.reserve(n * 2);
    for (size_t i = 0; i < n; i++) {
        const int32_t t = types_[i];
        if (t < (int32_t) TokenType::Undefined || t > (int32_t) TokenType::Byte) {
            fail(LR_ERR_BAD_GGUF, format("tokenizer: token %zu has an invalid type %d", i, (int) t));
        }
        if (std::isnan(scores_[i])) fail(LR_ERR_BAD_GGUF, format("tokenizer: token %zu has a NaN score", i));
        // llama.cpp renames empty pieces the same way, so they can never match text
        if (tokens_[i].empty()) tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";
        if (t == (int32_t) TokenType::Byte && parse_byte_piece(tokens_[i]) < 0) {
            fail(LR_ERR_BAD_GGUF, format("tokenizer: byte token %zu is not of the form <0xNN>", i));
        }
        if (!text_to_id_.emplace(tokens_[i], (int32_t) i).second) {
            fail(LR_ERR_BAD_GGUF, format("tokenizer: tokens %d and %zu have the same text", (int) text_to_id_[tokens_[i]], i));
        }
        if (t == (int32_t) TokenType::UserDefined) user_defined_.push_back((int32_t) i);
    }
    // longest first (so a user-defined token is never split by a shorter one it contains); ties by id
    std::stable_sort(user_defined_.begin(), user_defined_.end(), [this](int32_t a, int32_t b) {
        return tokens_[a].size() > tokens_[b].size();
    });

    // byte fallback: the <0xNN> piece, else a token whose text is that single byte, else <unk>
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        int32_t id = -1;
        const char piece[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        auto it = text_to_id_.find(piece);
        if (it != text_to_id_.end() && !is_special_type(types_[it->second])) id = it->second;
        if (id < 0) {
            it = text_to_id_.find(std::string(1, (char) b));
            if (it != text_to_id_.end() && !is_special_type(types_[it->second])) id = it->second;
        }
        byte_to_id_[b] = id >= 0 ? id : unk_id_;
    }
}

Tokenizer Tokenizer::from_gguf(const GgufFile & gguf) {
    const std::string model = gguf.get_string("tokenizer.ggml.model");
    if (model != "llama") {
        fail(LR_ERR_BAD_GGUF, format("tokenizer.ggml.model is \"%s\"; only the SentencePiece \"llama\" tokenizer is supported",
                                     model.c_str()));
    }
    std::vector<std::string> tokens = gguf.get_string_array("tokenizer.ggml.tokens");
    const size_t n = tokens.size();
    if (n == 0) fail(LR_ERR_BAD_GGUF, "tokenizer.ggml.tokens is empty");

    std::vector<float> scores;
    if (const GgufValue * v = gguf.find("tokenizer.ggml.scores")) {
        if (v->type == GgufType::ARRAY && v->elem_type == GgufType::I32) {
            // llama.cpp accepts integer scores too
            for (int32_t s : gguf.get_i32_array("tokenizer.ggml.scores")) scores.push_back((float) s);
        } else {
            scores = gguf.get_f32_array("tokenizer.ggml.scores");
        }
        if (scores.size() != n) {
            fail(LR_ERR_BAD_GGUF, format("tokenizer.ggml.scores has %zu entries for %zu tokens", scores.size(), n));
        }
    } else {
        scores.assign(n, 0.0f);
    }

    std::vector<int32_t> types;
    if (gguf.has("tokenizer.ggml.token_type")) {
        types = gguf.get_i32_array("tokenizer.ggml.token_type");
        if (types.size() != n) {
            fail(LR_ERR_BAD_GGUF, format("tokenizer.ggml.token_type has %zu entries for %zu tokens", types.size(), n));
        }
        for (size_t i = 0; i < n; i++) {
            if (types[i] < (int32_t) TokenType::Undefined || types[i] > (int32_t) TokenType::Byte) {
                fail(LR_ERR_BAD_GGUF, format("tokenizer.ggml.token_type[%zu] = %d is not a token type", i, (int) types[i]));
            }
        }
    } else {
        types.assign(n, (int32_t) TokenType::Normal);
    }

    // llama.cpp's defaults for the "llama" tokenizer: BOS 1, EOS 2, unknown 0, BOS added, space prefix
    const auto read_id = [&](const char * key, uint32_t fallback) -> int32_t {
        const uint32_t id = gguf.get_u32(key, fallback);
        if ((uint64_t) id >= (uint64_t) n) {
            fail(LR_ERR_BAD_GGUF, format("%s = %u is outside the vocabulary (%zu tokens)", key, id, n));
        }
        return (int32_t) id;
    };
    const int32_t bos = read_id("tokenizer.ggml.bos_token_id", 1);
    const int32_t eos = read_id("tokenizer.ggml.eos_token_id", 2);
    const int32_t unk = read_id("tokenizer.ggml.unknown_token_id", 0);
    const bool add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token", true);
    const bool add_space_prefix = gguf.get_bool("tokenizer.ggml.add_space_prefix", true);

    return Tokenizer(std::move(tokens), std::move(scores), std::move(types), bos, eos, unk, add_bos, add_space_prefix);
}

int32_t Tokenizer::find_text_token(const std::string & piece) const {
    const auto it = text_to_id_.find(piece);
    if (it == text_to_id_.end()) return -1;
    const int32_t t = types_[it->second];
    if (is_special_type(t) || t == (int32_t) TokenType::Byte) return -1;
    return it->second;
}

void Tokenizer::resegment(const char * text, size_t n, std::vector<int32_t> & out) const {
    // A merged symbol is always a token (merges only happen into tokens), so only single characters can
    // miss the vocabulary: they go out byte by byte.
    const int32_t id = find_text_token(std::string(text, n));
    if (id >= 0) {
        out.push_back(id);
        return;
    }
    for (size_t j = 0; j < n; j++) out.push_back(byte_to_id_[(unsigned char) text[j]]);
}

void Tokenizer::tokenize_fragment(const std::string & fragment, bool space_prefix, std::vector<int32_t> & out) const {
    std::string s;
    s.reserve(fragment.size() + kSpaceMarkLen * 4);
    if (space_prefix) s.append(kSpaceMark, kSpaceMarkLen);
    for (char c : fragment) {
        if (c == ' ') s.append(kSpaceMark, kSpaceMarkLen);
        else s.push_back(c);
    }
    if (s.empty()) return;

    std::vector<Symbol> sym;
    sym.reserve(s.size());
    for (size_t off = 0; off < s.size();) {
        const size_t len = std::min(utf8_seq_len((unsigned char) s[off]), s.size() - off);
        const int idx = (int) sym.size();
        sym.push_back(Symbol{idx - 1, off + len < s.size() ? idx + 1 : -1, off, len});
        off += len;
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue;
    const auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        const size_t size = sym[left].n + sym[right].n; // neighbours in the chain are contiguous in s
        const int32_t id = find_text_token(s.substr(sym[left].off, size));
        if (id < 0) return;
        queue.push(Bigram{left, right, scores_[id], size});
    };

    for (int i = 1; i < (int) sym.size(); i++) try_add(i - 1, i);

    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol & l = sym[b.left];
        Symbol & r = sym[b.right];
        // stale: one side was merged away or grew since this pair was queued
        if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
    }

    for (int i = 0; i != -1; i = sym[i].next) resegment(s.data() + sym[i].off, sym[i].n, out);
}

std::vector<int32_t> Tokenizer::tokenize(const std::string & text, bool add_bos) const {
    std::vector<int32_t> out;
    if (add_bos) out.push_back(bos_id_);
    if (text.empty()) return out;

    // cut user-defined tokens out of the text (longest first, leftmost non-overlapping matches)
    struct Fragment { size_t off, len; int32_t token; }; // token -1: raw text
    std::vector<Fragment> frags{{0, text.size(), -1}};
    for (int32_t id : user_defined_) {
        const std::string & t = tokens_[id];
        std::vector<Fragment> next;
        for (const Fragment & f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            const size_t end = f.off + f.len;
            const std::string_view view(text.data(), end);
            size_t pos = f.off;
            for (;;) {
                const size_t m = view.find(t, pos);
                if (m == std::string_view::npos) break;
                if (m > pos) next.push_back({pos, m - pos, -1});
                next.push_back({m, t.size(), id});
                pos = m + t.size();
            }
            if (pos < end) next.push_back({pos, end - pos, -1});
        }
        frags.swap(next);
    }

    bool prev_special = true; // the first fragment gets the dummy prefix, and so does one after a token
    for (const Fragment & f : frags) {
        if (f.token >= 0) {
            out.push_back(f.token);
            prev_special = true;
        } else {
            tokenize_fragment(text.substr(f.off, f.len), add_space_prefix_ && prev_special, out);
            prev_special = false;
        }
    }
    return out;
}

TokenType Tokenizer::type(int32_t id) const {
    if (id < 0 || id >= n_vocab()) fail(LR_ERR_INVALID_ARGUMENT, format("token id %d is outside the vocabulary (%d tokens)", (int) id, (int) n_vocab()));
    return (TokenType) types_[id];
}

bool Tokenizer::is_control(int32_t id) const {
    return id >= 0 && id < n_vocab() && types_[id] == (int32_t) TokenType::Control;
}

std::string Tokenizer::piece(int32_t id, bool special) const {
    switch (type(id)) {
        case TokenType::Control:
        case TokenType::Unknown:
            return special ? tokens_[id] : std::string();
        case TokenType::UserDefined:
            return tokens_[id];
        case TokenType::Normal: {
            const std::string & t = tokens_[id];
            std::string r;
            r.reserve(t.size());
            for (size_t i = 0; i < t.size();) {
                if (t.compare(i, kSpaceMarkLen, kSpaceMark) == 0) {
                    r.push_back(' ');
                    i += kSpaceMarkLen;
                } else {
                    r.push_back(t[i++]);
                }
            }
            return r;
        }
        case TokenType::Byte:
            return std::string(1, (char) parse_byte_piece(tokens_[id]));
        case TokenType::Unused:
        case TokenType::Undefined:
            break; // no text, as in llama.cpp
    }
    return std::string();
}

std::string Tokenizer::detokenize(const std::vector<int32_t> & ids, bool skip_special, bool remove_leading_space) const {
    std::string out;
    // llama.cpp strips one space from the first token's text only (a leading BOS, even when it
    // prints nothing, uses up that chance), and only for vocabularies that add the dummy prefix
    bool strip = remove_leading_space && add_space_prefix_;
    for (int32_t id : ids) {
        std::string p = piece(id, !skip_special);
        if (strip && !p.empty() && p[0] == ' ') p.erase(0, 1);
        strip = false;
        out += p;
    }
    return out;
}

} // namespace lr
