// SentencePiece-BPE tokenizer over a GGUF "llama" vocabulary (tokens, scores, token types),
// behaving exactly like llama.cpp's SPM tokenizer with parse_special = false.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace lr {

class GgufFile;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type)
enum class TokenType : int32_t {
    Undefined   = 0,
    Normal      = 1,
    Unknown     = 2,
    Control     = 3,
    UserDefined = 4,
    Unused      = 5,
    Byte        = 6,
};

class Tokenizer {
public:
    // Build from the GGUF's tokenizer.ggml.* keys. Throws lr::Error(LR_ERR_BAD_GGUF) when the
    // vocabulary is malformed (lengths differ, ids out of range, model is not "llama", ...).
    static Tokenizer from_gguf(const GgufFile & gguf);

    // Build directly from arrays (used by the C++ tests).
    Tokenizer(std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> types,
              int32_t bos_id, int32_t eos_id, int32_t unk_id, bool add_bos, bool add_space_prefix);

    // Text (UTF-8, any bytes) -> ids. Special/control tokens are never produced from text.
    // With add_bos the BOS id is prepended. The dummy-prefix space is added when add_space_prefix
    // is set and the text is not empty (llama.cpp's rule).
    std::vector<int32_t> tokenize(const std::string & text, bool add_bos) const;

    // One token's bytes as text: "▁" -> ' ', <0xNN> byte pieces -> that byte, control tokens -> ""
    // unless `special` is set (then their text).
    std::string piece(int32_t id, bool special = false) const;

    // ids -> UTF-8 bytes (byte pieces joined so multi-byte characters come out whole).
    // skip_special drops control tokens; remove_leading_space drops the one space the dummy
    // prefix puts before the first piece (llama.cpp's detokenize with remove_special semantics).
    std::string detokenize(const std::vector<int32_t> & ids, bool skip_special, bool remove_leading_space) const;

    int32_t n_vocab() const { return (int32_t) tokens_.size(); }
    int32_t bos() const { return bos_id_; }
    int32_t eos() const { return eos_id_; }
    int32_t unk() const { return unk_id_; }
    bool add_bos() const { return add_bos_; }
    bool is_control(int32_t id) const;
    TokenType type(int32_t id) const;
    const std::string & text(int32_t id) const { return tokens_.at(id); }

private:
    std::vector<std::string> tokens_;
    std::vector<float> scores_;
    std::vector<int32_t> types_;
    std::unordered_map<std::string, int32_t> text_to_id_;
    int32_t byte_to_id_[256];
    int32_t bos_id_ = 1, eos_id_ = 2, unk_id_ = 0;
    bool add_bos_ = true;
    bool add_space_prefix_ = true;
    // user-defined tokens, longest text first: split out of the text before the BPE (as llama.cpp does
    // even with parse_special = false)
    std::vector<int32_t> user_defined_;

    // id of a token that text may produce (not control, unknown or byte), or -1
    int32_t find_text_token(const std::string & piece) const;
    // one fragment of text (spaces not yet escaped) through the BPE merges
    void tokenize_fragment(const std::string & text, bool space_prefix, std::vector<int32_t> & out) const;
    // a final symbol -> its token, or its bytes as byte pieces
    void resegment(const char * text, size_t n, std::vector<int32_t> & out) const;
};

} // namespace lr
