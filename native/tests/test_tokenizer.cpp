// Tokenizer tests on small hand-made vocabularies (the parity test against llama.cpp and
// llama-tokenizer-js on the real LLaMA vocabulary is test/tokenizer.test.ts).
#include "harness.h"

#include "gguf_file.h"
#include "status.h"
#include "tokenizer.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

using lr::Tokenizer;
using lr::TokenType;

namespace {

const std::string SP = "\xE2\x96\x81"; // "▁"

struct Vocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;

    int32_t add(const std::string & text, float score = 0.0f, TokenType type = TokenType::Normal) {
        tokens.push_back(text);
        scores.push_back(score);
        types.push_back((int32_t) type);
        return (int32_t) tokens.size() - 1;
    }
    int32_t id(const std::string & text) const {
        for (size_t i = 0; i < tokens.size(); i++) if (tokens[i] == text) return (int32_t) i;
        throw lrtest::Failure{"no token " + text};
    }
    Tokenizer make(bool add_space_prefix = true) const {
        return Tokenizer(tokens, scores, types, 1, 2, 0, true, add_space_prefix);
    }
};

// <unk> <s> </s>, then (optionally) the 256 byte pieces, like the LLaMA vocabulary
Vocab base_vocab(bool bytes = true) {
    Vocab v;
    v.add("<unk>", 0, TokenType::Unknown);
    v.add("<s>", 0, TokenType::Control);
    v.add("</s>", 0, TokenType::Control);
    if (bytes) {
        char buf[8];
        for (int b = 0; b < 256; b++) {
            std::snprintf(buf, sizeof buf, "<0x%02X>", b);
            v.add(buf, 0, TokenType::Byte);
        }
    }
    return v;
}

int32_t byte_id(int b) { return 3 + b; } // in base_vocab(true)

using Ids = std::vector<int32_t>;

std::string show(const Ids & ids) {
    std::string s = "[";
    for (size_t i = 0; i < ids.size(); i++) s += (i ? "," : "") + std::to_string(ids[i]);
    return s + "]";
}

#define CHECK_IDS(got, want) do { const Ids g_ = (got), w_ = (want); \
    CHECK_MSG(g_ == w_, "got " + show(g_) + ", want " + show(w_)); } while (0)

template <typename F>
lr_status error_code(F && f) {
    try {
        f();
    } catch (const lr::Error & e) {
        return e.code;
    }
    return LR_OK;
}

// A vocabulary with merges: scores decide the order (higher first).
Vocab merge_vocab() {
    Vocab v = base_vocab();
    v.add(SP, -1);
    v.add("a", -2);
    v.add("b", -3);
    v.add("c", -4);
    v.add("ab", -10);
    v.add("bc", -5);       // better than "ab": "abc" -> a + bc
    v.add(SP + "a", -20);
    v.add("aa", -30);
    v.add("aaa", -40);
    v.add(SP + SP, -50);
    v.add("\xC3\xA9", -60); // é
    return v;
}

} // namespace

TEST("tokenizer: merges follow scores") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make();
    // "▁abc": candidates ▁a(-20) ab(-10) bc(-5): bc first, then ▁a, leaving ▁a + bc
    CHECK_IDS(t.tokenize("abc", false), (Ids{v.id(SP + "a"), v.id("bc")}));
    // "▁ab": ab(-10) beats ▁a(-20), and "▁ab" is not a token
    CHECK_IDS(t.tokenize("ab", false), (Ids{v.id(SP), v.id("ab")}));
    CHECK_IDS(t.tokenize("ab", true), (Ids{1, v.id(SP), v.id("ab")}));
    Tokenizer np = v.make(false);
    CHECK_IDS(np.tokenize("ab", false), (Ids{v.id("ab")}));
    CHECK_IDS(np.tokenize("cab", false), (Ids{v.id("c"), v.id("ab")}));
}

TEST("tokenizer: equal scores merge the leftmost pair first") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make(false);
    // "aaa": pairs (0,1) and (1,2) both "aa"; the left one wins, then "aa"+"a" = "aaa"
    CHECK_IDS(t.tokenize("aaa", false), (Ids{v.id("aaa")}));
    // "aaaa": aa + aa (left pair first, then the remaining right pair), then aa+aa is not a token
    CHECK_IDS(t.tokenize("aaaa", false), (Ids{v.id("aa"), v.id("aa")}));
    // "aaaaa": (0,1) -> aa; then pairs (aa,a)=aaa(-40) and (a,a)=aa(-30): aa wins -> aa aa a;
    // then aa+a = aaa at the tail
    CHECK_IDS(t.tokenize("aaaaa", false), (Ids{v.id("aa"), v.id("aaa")}));
}

TEST("tokenizer: spaces become the space mark, runs and edges kept") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make();
    const int32_t s = v.id(SP), ss = v.id(SP + SP), sa = v.id(SP + "a");
    CHECK_IDS(t.tokenize(" ", false), (Ids{ss}));
    CHECK_IDS(t.tokenize("  ", false), (Ids{ss, s}));
    CHECK_IDS(t.tokenize("a a", false), (Ids{sa, sa}));
    CHECK_IDS(t.tokenize("a  a", false), (Ids{sa, s, sa}));
    CHECK_IDS(t.tokenize("a ", false), (Ids{sa, s}));
    Tokenizer np = v.make(false);
    CHECK_IDS(np.tokenize(" a", false), (Ids{sa}));
    CHECK_IDS(np.tokenize("a", false), (Ids{v.id("a")}));
}

TEST("tokenizer: empty text gives nothing (or only BOS)") {
    Tokenizer t = merge_vocab().make();
    CHECK(t.tokenize("", false).empty());
    CHECK_IDS(t.tokenize("", true), (Ids{1}));
}

TEST("tokenizer: byte fallback for characters not in the vocabulary") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make(false);
    CHECK_IDS(t.tokenize("\xC3\xA9", false), (Ids{v.id("\xC3\xA9")}));
    // ü (C3 BC) is not a token: two byte pieces
    CHECK_IDS(t.tokenize("\xC3\xBC", false), (Ids{byte_id(0xC3), byte_id(0xBC)}));
    // 4-byte emoji
    CHECK_IDS(t.tokenize("\xF0\x9F\x98\x80" "a", false),
              (Ids{byte_id(0xF0), byte_id(0x9F), byte_id(0x98), byte_id(0x80), v.id("a")}));
    CHECK_IDS(t.tokenize("\n", false), (Ids{byte_id(0x0A)}));
    CHECK_IDS(t.tokenize(std::string("a\0b", 3), false), (Ids{v.id("a"), byte_id(0), v.id("b")}));
}

TEST("tokenizer: unknown token when no byte piece exists") {
    Vocab v = base_vocab(false);
    v.add("a", -1);
    v.add("<0x0A>", 0, TokenType::Byte);
    Tokenizer t = v.make(false);
    CHECK_IDS(t.tokenize("a\nz", false), (Ids{v.id("a"), v.id("<0x0A>"), 0}));
    CHECK_IDS(t.tokenize("\xC3\xBC", false), (Ids{0, 0}));
    // a single-byte normal token stands in for a missing byte piece (llama.cpp's second choice)
    Vocab w = base_vocab(false);
    w.add("a", -1);
    w.add("\xC3", -2);
    Tokenizer u = w.make(false);
    CHECK_IDS(u.tokenize("\xC3\xBC", false), (Ids{w.id("\xC3"), 0}));
}

TEST("tokenizer: invalid and truncated UTF-8 never reads out of bounds") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make(false);
    // each case: bytes in -> the same bytes back out as byte pieces (none are tokens)
    const std::vector<std::string> cases = {
        "\xE2\x96",           // truncated 3-byte sequence at the end
        "\xF0",               // lone 4-byte lead at the end
        "\xF0\x9F\x98",       // truncated 4-byte
        "\xFF\xFE\xFD",       // never-valid bytes
        "\x80\x81\xBF",       // stray continuation bytes
        "\xC0\xAF",           // overlong encoding
        "\xED\xA0\x80",       // UTF-16 surrogate encoded in UTF-8
        "\xF8\x88\x80\x80\x80", // 5-byte form
    };
    for (const std::string & c : cases) {
        for (size_t cut = 1; cut <= c.size(); cut++) {
            const std::string s = c.substr(0, cut);
            // the string is copied into an exactly-sized heap buffer so ASan would catch overreads
            const Ids ids = t.tokenize(std::string(s.data(), s.size()), false);
            CHECK(ids.size() == s.size());
            for (size_t i = 0; i < s.size(); i++) CHECK(ids[i] == byte_id((unsigned char) s[i]));
            CHECK(t.detokenize(ids, true, false) == s);
        }
    }
    // a lead byte followed by ASCII swallows that ASCII into one (unknown) symbol, as llama.cpp does
    CHECK_IDS(t.tokenize("\xE2" "ab", false), (Ids{byte_id(0xE2), byte_id('a'), byte_id('b')}));
    // ... and a good character right after a truncated one is still found
    CHECK_IDS(t.tokenize("\xC3" "a" "\xC3\xA9", false), (Ids{byte_id(0xC3), byte_id('a'), v.id("\xC3\xA9")}));
}

TEST("tokenizer: control and unknown texts are never produced from text") {
    Vocab v = base_vocab();
    v.add("<", -1);
    v.add("s", -2);
    v.add(">", -3);
    v.add("/", -4);
    v.add("<s", -5);      // with "<s" a merge chain reaches "<s>" ...
    v.add("</", -6);
    v.add("</s", -7);
    v.add("<unk", -8);
    v.add("u", -9);
    v.add("n", -10);
    v.add("k", -11);
    v.add("un", -12);
    v.add("unk", -13);
    v.add("<0x", -14);
    v.add("0", -15);
    v.add("x", -16);
    v.add("<0", -17);
    v.add("4", -18);
    v.add("1", -19);
    v.add("<0x4", -20);
    v.add("<0x41", -21);
    Tokenizer t = v.make(false);
    // ... but the control token is never the result
    CHECK_IDS(t.tokenize("<s>", false), (Ids{v.id("<s"), v.id(">")}));
    CHECK_IDS(t.tokenize("</s>", false), (Ids{v.id("</s"), v.id(">")}));
    CHECK_IDS(t.tokenize("<unk>", false), (Ids{v.id("<unk"), v.id(">")}));
    // nor a byte piece from its literal text
    CHECK_IDS(t.tokenize("<0x41>", false), (Ids{v.id("<0x41"), v.id(">")}));
}

TEST("tokenizer: user-defined tokens are cut out first and reset the space prefix") {
    Vocab v = merge_vocab();
    const int32_t ud = v.add("<img>", 0, TokenType::UserDefined);
    const int32_t ud2 = v.add("<img>x", 0, TokenType::UserDefined);
    Tokenizer t = v.make();
    const int32_t sa = v.id(SP + "a");
    CHECK_IDS(t.tokenize("a<img>a", false), (Ids{sa, ud, sa}));
    CHECK_IDS(t.tokenize("<img>", false), (Ids{ud}));
    CHECK_IDS(t.tokenize("<img><img>", false), (Ids{ud, ud}));
    // the longer user-defined token is matched first
    CHECK_IDS(t.tokenize("<img>x", false), (Ids{ud2}));
    CHECK(t.detokenize({ud, sa}, true, false) == "<img> a");
}

TEST("tokenizer: detokenize joins byte pieces and unescapes spaces") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make();
    const int32_t sa = v.id(SP + "a");
    // é split over two byte pieces comes back whole
    CHECK(t.detokenize({byte_id(0xC3), byte_id(0xA9)}, true, false) == "\xC3\xA9");
    CHECK(t.detokenize({sa, byte_id(0xF0), byte_id(0x9F), byte_id(0x98), byte_id(0x80)}, true, true) ==
          "a\xF0\x9F\x98\x80");
    CHECK(t.detokenize({sa, v.id("b"), v.id(SP + SP)}, true, false) == " ab  ");
    CHECK(t.piece(v.id(SP + SP)) == "  ");
    CHECK(t.piece(byte_id(0x41)) == "A");
    CHECK(t.piece(byte_id(0x00)) == std::string(1, '\0'));
    // the one dummy-prefix space is removed from the first piece only
    CHECK(t.detokenize({sa, sa}, true, true) == "a a");
    CHECK(t.detokenize({v.id(SP + SP), sa}, true, true) == "  a");
    CHECK(t.detokenize({byte_id(' '), sa}, true, true) == " a"); // a byte space is stripped too
    // round trip
    for (const std::string s : {"abc", "a  a ", " a", "\xC3\xA9\xC3\xBC c", "aaaaa"}) {
        CHECK(t.detokenize(t.tokenize(s, false), true, true) == s);
        CHECK(t.detokenize(t.tokenize(s, true), true, false) == " " + s);
    }
    // no dummy prefix in this vocabulary: nothing to remove
    Tokenizer np = v.make(false);
    CHECK(np.detokenize({sa}, true, true) == " a");
}

TEST("tokenizer: control tokens are skipped or printed, BOS uses up the space removal") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make();
    const int32_t sa = v.id(SP + "a");
    CHECK(t.detokenize({1, sa, 2}, true, true) == " a");
    CHECK(t.detokenize({1, sa, 2}, false, true) == "<s> a</s>");
    CHECK(t.detokenize({sa, 0, sa}, true, true) == "a a");
    CHECK(t.detokenize({sa, 0, sa}, false, true) == "a<unk> a");
    CHECK(t.piece(1).empty());
    CHECK(t.piece(1, true) == "<s>");
    CHECK(t.is_control(1) && t.is_control(2) && !t.is_control(0) && !t.is_control(sa));
    CHECK(!t.is_control(-1) && !t.is_control(100000));
    CHECK(t.type(0) == TokenType::Unknown);
    CHECK(t.type(byte_id(7)) == TokenType::Byte);
    CHECK(error_code([&] { t.piece(-1); }) == LR_ERR_INVALID_ARGUMENT);
    CHECK(error_code([&] { t.detokenize({t.n_vocab()}, true, true); }) == LR_ERR_INVALID_ARGUMENT);
    // unused / undefined tokens have no text
    Vocab w = merge_vocab();
    const int32_t unused = w.add("zz", -1, TokenType::Unused);
    const int32_t undef = w.add("yy", -1, TokenType::Undefined);
    Tokenizer u = w.make();
    CHECK(u.detokenize({unused, undef}, false, false).empty());
}

TEST("tokenizer: malformed vocabularies are errors, not crashes") {
    const auto build = [](Vocab v, int32_t bos = 1, int32_t eos = 2, int32_t unk = 0) {
        return error_code([&] { Tokenizer(v.tokens, v.scores, v.types, bos, eos, unk, true, true); });
    };
    Vocab good = merge_vocab();
    CHECK(build(good) == LR_OK);
    CHECK(build(Vocab{}) == LR_ERR_BAD_GGUF);
    { Vocab v = good; v.scores.pop_back(); CHECK(build(v) == LR_ERR_BAD_GGUF); }
    { Vocab v = good; v.types.push_back(1); CHECK(build(v) == LR_ERR_BAD_GGUF); }
    { Vocab v = good; v.types[5] = 7; CHECK(build(v) == LR_ERR_BAD_GGUF); }
    { Vocab v = good; v.types[5] = -1; CHECK(build(v) == LR_ERR_BAD_GGUF); }
    { Vocab v = good; v.scores[5] = std::nanf(""); CHECK(build(v) == LR_ERR_BAD_GGUF); }
    { Vocab v = good; v.add("ab"); CHECK(build(v) == LR_ERR_BAD_GGUF); }          // duplicate text
    { Vocab v = good; v.add("<0xZZ>", 0, TokenType::Byte); CHECK(build(v) == LR_ERR_BAD_GGUF); }
    { Vocab v = good; v.add("x", 0, TokenType::Byte); CHECK(build(v) == LR_ERR_BAD_GGUF); }
    CHECK(build(good, -1) == LR_ERR_BAD_GGUF);
    CHECK(build(good, 1, (int32_t) good.tokens.size()) == LR_ERR_BAD_GGUF);
    CHECK(build(good, 1, 2, 100000) == LR_ERR_BAD_GGUF);
    // empty pieces are renamed (as llama.cpp does) and never match
    { Vocab v = good; v.add(""); v.add(""); CHECK(build(v) == LR_OK);
      Tokenizer t = v.make(); CHECK(t.text(t.n_vocab() - 1) == "[EMPTY_" + std::to_string(t.n_vocab() - 1) + "]"); }
}

TEST("tokenizer: long inputs") {
    Vocab v = merge_vocab();
    Tokenizer t = v.make(false);
    const std::string a(100000, 'a');
    const Ids ids = t.tokenize(a, false);
    CHECK(t.detokenize(ids, true, false) == a);
    std::string mixed;
    for (int i = 0; i < 20000; i++) mixed += (i % 7 == 0) ? " " : (i % 5 == 0 ? "\xC3\xA9" : "ab");
    CHECK(t.detokenize(t.tokenize(mixed, false), true, false) == mixed);
}

// ---- from_gguf over a small GGUF written here ----------------------------------------------------

namespace {

struct GgufWriter {
    std::string buf;
    uint64_t n_kv = 0;
    void raw(const void * p, size_t n) { buf.append((const char *) p, n); }
    void u32(uint32_t x) { raw(&x, 4); }
    void u64(uint64_t x) { raw(&x, 8); }
    void str(const std::string & s) { u64(s.size()); buf += s; }
    void key(const std::string & k, lr::GgufType t) { str(k); u32((uint32_t) t); n_kv++; }
    void kv_str(const std::string & k, const std::string & v) { key(k, lr::GgufType::STRING); str(v); }
    void kv_u32(const std::string & k, uint32_t v) { key(k, lr::GgufType::U32); u32(v); }
    void kv_i32(const std::string & k, int32_t v) { key(k, lr::GgufType::I32); raw(&v, 4); }
    void kv_bool(const std::string & k, bool v) { key(k, lr::GgufType::BOOL); const uint8_t b = v; raw(&b, 1); }
    void kv_strs(const std::string & k, const std::vector<std::string> & v) {
        key(k, lr::GgufType::ARRAY); u32((uint32_t) lr::GgufType::STRING); u64(v.size());
        for (auto & s : v) str(s);
    }
    void kv_f32s(const std::string & k, const std::vector<float> & v) {
        key(k, lr::GgufType::ARRAY); u32((uint32_t) lr::GgufType::F32); u64(v.size()); raw(v.data(), v.size() * 4);
    }
    void kv_i32s(const std::string & k, const std::vector<int32_t> & v) {
        key(k, lr::GgufType::ARRAY); u32((uint32_t) lr::GgufType::I32); u64(v.size()); raw(v.data(), v.size() * 4);
    }
    std::string file() const {
        std::string out = "GGUF";
        const uint32_t version = 3;
        const uint64_t n_tensors = 0;
        out.append((const char *) &version, 4);
        out.append((const char *) &n_tensors, 8);
        out.append((const char *) &n_kv, 8);
        out += buf;
        while (out.size() % 32) out.push_back('\0');
        return out;
    }
};

std::string write_temp(const std::string & bytes) {
    char path[] = "/tmp/lr-tok-test-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) throw lrtest::Failure{"mkstemp failed"};
    const bool ok = write(fd, bytes.data(), bytes.size()) == (ssize_t) bytes.size();
    close(fd);
    if (!ok) throw lrtest::Failure{"write failed"};
    return path;
}

// open a GGUF from bytes; returns the status from from_gguf (and the tokenizer through *out)
lr_status load_gguf(const GgufWriter & w, std::vector<Tokenizer> * out = nullptr) {
    const std::string path = write_temp(w.file());
    lr_status st = LR_OK;
    try {
        auto f = lr::GgufFile::open(path);
        Tokenizer t = Tokenizer::from_gguf(*f);
        if (out) out->push_back(std::move(t));
    } catch (const lr::Error & e) {
        st = e.code;
    }
    unlink(path.c_str());
    return st;
}

GgufWriter vocab_gguf(const Vocab & v, bool with_scores = true, bool with_types = true) {
    GgufWriter w;
    w.kv_str("general.architecture", "llama");
    w.kv_str("tokenizer.ggml.model", "llama");
    w.kv_strs("tokenizer.ggml.tokens", v.tokens);
    if (with_scores) w.kv_f32s("tokenizer.ggml.scores", v.scores);
    if (with_types) w.kv_i32s("tokenizer.ggml.token_type", v.types);
    return w;
}

} // namespace

TEST("tokenizer: from_gguf reads the vocabulary and llama.cpp's defaults") {
    Vocab v = merge_vocab();
    std::vector<Tokenizer> t;
    CHECK(load_gguf(vocab_gguf(v), &t) == LR_OK);
    CHECK(t[0].n_vocab() == (int32_t) v.tokens.size());
    CHECK(t[0].bos() == 1 && t[0].eos() == 2 && t[0].unk() == 0 && t[0].add_bos());
    CHECK_IDS(t[0].tokenize("abc", true), (Ids{1, v.id(SP + "a"), v.id("bc")}));

    GgufWriter w = vocab_gguf(v);
    w.kv_u32("tokenizer.ggml.bos_token_id", 2);
    w.kv_u32("tokenizer.ggml.eos_token_id", 1);
    w.kv_u32("tokenizer.ggml.unknown_token_id", 5);
    w.kv_bool("tokenizer.ggml.add_bos_token", false);
    w.kv_bool("tokenizer.ggml.add_space_prefix", false);
    CHECK(load_gguf(w, &t) == LR_OK);
    CHECK(t[1].bos() == 2 && t[1].eos() == 1 && t[1].unk() == 5 && !t[1].add_bos());
    CHECK_IDS(t[1].tokenize("abc", false), (Ids{v.id("a"), v.id("bc")}));

    // scores and types may be missing: all 0 and all normal
    CHECK(load_gguf(vocab_gguf(v, false, false), &t) == LR_OK);
    CHECK(t[2].type(1) == TokenType::Normal);
}

TEST("tokenizer: from_gguf rejects malformed tokenizer keys") {
    Vocab v = merge_vocab();
    { GgufWriter w; w.kv_str("tokenizer.ggml.model", "llama"); CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w; w.kv_strs("tokenizer.ggml.tokens", v.tokens); CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w; w.kv_str("tokenizer.ggml.model", "gpt2"); w.kv_strs("tokenizer.ggml.tokens", v.tokens);
      CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w; w.kv_str("tokenizer.ggml.model", "llama"); w.kv_strs("tokenizer.ggml.tokens", {});
      CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w; w.kv_u32("tokenizer.ggml.model", 1); w.kv_strs("tokenizer.ggml.tokens", v.tokens);
      CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { Vocab s = v; s.scores.pop_back(); CHECK(load_gguf(vocab_gguf(s)) == LR_ERR_BAD_GGUF); }
    { Vocab s = v; s.types.push_back(1); CHECK(load_gguf(vocab_gguf(s)) == LR_ERR_BAD_GGUF); }
    { Vocab s = v; s.types[4] = 42; CHECK(load_gguf(vocab_gguf(s)) == LR_ERR_BAD_GGUF); }
    { GgufWriter w = vocab_gguf(v); w.kv_u32("tokenizer.ggml.bos_token_id", 100000); CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w = vocab_gguf(v); w.kv_i32("tokenizer.ggml.eos_token_id", -1); CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w = vocab_gguf(v); w.kv_str("tokenizer.ggml.unknown_token_id", "0"); CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w = vocab_gguf(v); w.kv_u32("tokenizer.ggml.add_bos_token", 1); CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    { GgufWriter w; w.kv_str("tokenizer.ggml.model", "llama"); w.kv_strs("tokenizer.ggml.tokens", v.tokens);
      w.kv_i32s("tokenizer.ggml.scores", std::vector<int32_t>(v.tokens.size(), 0)); // integer scores are accepted
      CHECK(load_gguf(w) == LR_OK); }
    { GgufWriter w; w.kv_str("tokenizer.ggml.model", "llama"); w.kv_strs("tokenizer.ggml.tokens", v.tokens);
      w.kv_f32s("tokenizer.ggml.token_type", std::vector<float>(v.tokens.size(), 1.0f));
      CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
    // the tiny vocabulary has fewer than 3 tokens: the default EOS id 2 is outside it
    { GgufWriter w; w.kv_str("tokenizer.ggml.model", "llama"); w.kv_strs("tokenizer.ggml.tokens", {"<unk>", "<s>"});
      CHECK(load_gguf(w) == LR_ERR_BAD_GGUF); }
}

// ---- the real LLaMA vocabulary: llama.cpp's ggml-vocab-llama-spm.gguf (converted from LLaMA's
// tokenizer.model) with its test-tokenizer-0 cases (SentencePiece's own ids), from the llama.cpp
// checkout next to this test binary (<build>/llama.cpp/models); a failure when it is not there.

namespace {

std::string read_all(const std::string & path, bool * ok) {
    std::string out;
    FILE * f = std::fopen(path.c_str(), "rb");
    *ok = f != nullptr;
    if (!f) return out;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
    return out;
}

std::string spm_vocab_path() {
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return "";
    std::string dir(exe, (size_t) n);
    dir = dir.substr(0, dir.rfind('/'));
    return dir + "/llama.cpp/models/ggml-vocab-llama-spm.gguf";
}

} // namespace

TEST("tokenizer: SentencePiece's ids on llama.cpp's LLaMA vocabulary test cases") {
    const std::string path = spm_vocab_path();
    bool ok_inp = false, ok_out = false;
    const std::string inp = read_all(path + ".inp", &ok_inp);
    const std::string out = read_all(path + ".out", &ok_out);
    // every build checks llama.cpp out next to this binary (CMakeLists.txt: <build>/llama.cpp), so a missing
    // file is a broken build or a moved binary: a failure, never a pass
    CHECK_MSG(ok_inp && ok_out, path + ".inp / .out not found (llama.cpp's checkout next to this test binary): "
                                "cannot check the tokenizer against SentencePiece's ids");
    auto f = lr::GgufFile::open(path);
    const Tokenizer t = Tokenizer::from_gguf(*f);
    CHECK(t.n_vocab() == 32000 && t.bos() == 1 && t.eos() == 2 && t.unk() == 0 && t.add_bos());

    std::vector<std::string> inputs;
    const std::string sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0; pos < inp.size();) {
        const size_t next = inp.find(sep, pos);
        if (next == std::string::npos) {
            inputs.push_back(inp.substr(pos));
            break;
        }
        inputs.push_back(inp.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::vector<Ids> expected;
    for (size_t pos = 0; pos < out.size();) {
        size_t eol = out.find('\n', pos);
        if (eol == std::string::npos) eol = out.size();
        Ids ids;
        const std::string line = out.substr(pos, eol - pos);
        for (size_t i = 0; i < line.size();) {
            while (i < line.size() && line[i] == ' ') i++;
            if (i >= line.size()) break;
            ids.push_back(std::stoi(line.substr(i)));
            while (i < line.size() && line[i] != ' ') i++;
        }
        expected.push_back(ids);
        pos = eol + 1;
    }
    CHECK_MSG(inputs.size() == expected.size() && inputs.size() > 20,
              std::to_string(inputs.size()) + " inputs, " + std::to_string(expected.size()) + " expected id lists (more than 20 expected)");
    for (size_t i = 0; i < inputs.size(); i++) {
        CHECK_IDS(t.tokenize(inputs[i], false), expected[i]);
        // and back: the text again (no literal U+2581 in these cases)
        CHECK_MSG(t.detokenize(t.tokenize(inputs[i], true), true, true) == " " + inputs[i] || inputs[i].empty(),
                  "round trip of case " + std::to_string(i));
    }
    // llama.cpp's own checks of the LLaMA vocabulary
    CHECK_IDS(t.tokenize(" Hello world", false), (Ids{29871, 15043, 3186}));
    CHECK_IDS(t.tokenize("\n", false), (Ids{29871, 13}));
}
