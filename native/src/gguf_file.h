// GGUF reading: maps the file and validates every byte of its structure before anything else
// (ggml included) looks at it. Any malformed file is an lr::Error with LR_ERR_BAD_GGUF (or LR_ERR_IO
// when the file cannot be read); nothing here asserts, aborts or reads outside the mapping.
#pragma once

#include "ggml.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace lr {

// GGUF value types (the file format's numbering)
enum class GgufType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char * gguf_type_name(GgufType t);

struct GgufValue {
    GgufType type = GgufType::U8;
    GgufType elem_type = GgufType::U8;     // for arrays
    uint64_t n = 0;                        // array length (1 for scalars)
    // scalars are widened into one of these
    uint64_t u = 0;
    int64_t  i = 0;
    double   f = 0;
    std::string s;                         // STRING
    const uint8_t * array_data = nullptr;  // numeric arrays: packed elements inside the mapping
    std::vector<std::string> strings;      // string arrays
};

struct GgufTensor {
    std::string name;
    ggml_type type = GGML_TYPE_F32;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};
    uint64_t offset = 0;        // relative to the data section
    size_t nbytes = 0;          // ggml_nbytes of the shape and type
    const uint8_t * data = nullptr; // inside the mapping
};

class GgufFile {
public:
    // Opens and validates. Throws lr::Error (LR_ERR_IO, LR_ERR_BAD_GGUF).
    static std::unique_ptr<GgufFile> open(const std::string & path);
    ~GgufFile();
    GgufFile(const GgufFile &) = delete;
    GgufFile & operator=(const GgufFile &) = delete;

    uint32_t version() const { return version_; }
    size_t file_size() const { return size_; }
    size_t alignment() const { return alignment_; }
    const std::string & path() const { return path_; }

    const GgufValue * find(const std::string & key) const;
    bool has(const std::string & key) const { return find(key) != nullptr; }

    // Typed getters: a missing key (when required) or a wrong type throws LR_ERR_BAD_GGUF naming
    // the key, the expected type and the type found. Integer getters accept any integer type whose
    // value fits.
    std::string get_string(const std::string & key) const;
    std::string get_string(const std::string & key, const std::string & fallback) const;
    uint32_t get_u32(const std::string & key) const;
    uint32_t get_u32(const std::string & key, uint32_t fallback) const;
    float    get_f32(const std::string & key) const;
    float    get_f32(const std::string & key, float fallback) const;
    bool     get_bool(const std::string & key, bool fallback) const;
    const std::vector<std::string> & get_string_array(const std::string & key) const;
    std::vector<float>   get_f32_array(const std::string & key) const;
    std::vector<int32_t> get_i32_array(const std::string & key) const;
    uint64_t array_length(const std::string & key) const; // 0 if missing or not an array

    const std::vector<GgufTensor> & tensors() const { return tensors_; }
    const GgufTensor * tensor(const std::string & name) const;
    // a tensor that must exist with exactly this shape (missing dims are 1); throws LR_ERR_BAD_GGUF
    const GgufTensor & require_tensor(const std::string & name, std::vector<int64_t> shape) const;

    const uint8_t * data_section() const { return base_ + data_offset_; }
    size_t data_offset() const { return data_offset_; }
    const uint8_t * base() const { return base_; }
    // Tells the kernel that [data, data + n) of the mapping will not be read again (a tensor copied into
    // its own buffer), so its pages leave this process's resident set; pages shared with the neighbours
    // at either end are kept. Safe to call on any range inside the file.
    void release(const uint8_t * data, size_t n) const;

private:
    GgufFile() = default;
    void parse();

    std::string path_;
    const uint8_t * base_ = nullptr;
    size_t size_ = 0;
    int fd_ = -1;
    uint32_t version_ = 0;
    size_t alignment_ = 32;
    size_t data_offset_ = 0;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<GgufTensor> tensors_;
    // name -> index into kv_ / tensors_: lookups and the duplicate checks stay linear in the header's size
    std::unordered_map<std::string, size_t> kv_index_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

} // namespace lr
