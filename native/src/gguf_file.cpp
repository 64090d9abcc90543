// GGUF reading with complete validation. Layout (little endian):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32) | data section (tensor offsets are relative to it)
// where string = u64 length + bytes, array = u32 element type + u64 count + elements.
#include "gguf_file.h"
#include "status.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lr {

namespace {

constexpr uint32_t kMaxDims = 4;                     // GGML_MAX_DIMS
constexpr uint64_t kMaxStringBytes = 1u << 30;       // no key, name or string value is anywhere near 1 GiB
constexpr uint64_t kMaxArrayDepth = 1;               // arrays of arrays are refused

size_t scalar_size(GgufType t) {
    switch (t) {
        case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
        case GgufType::U16: case GgufType::I16: return 2;
        case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
        case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
        default: return 0;
    }
}

bool is_integer(GgufType t) {
    switch (t) {
        case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
        case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
        default: return false;
    }
}

bool is_signed(GgufType t) {
    return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

// A bounds-checked little-endian cursor over the mapping.
class Cursor {
public:
    Cursor(const uint8_t * base, size_t size, const std::string & path) : base_(base), size_(size), path_(path) {}

    size_t pos() const { return pos_; }
    size_t remaining() const { return size_ - pos_; }

    [[noreturn]] void bad(const std::string & what) const {
        fail(LR_ERR_BAD_GGUF, format("%s: invalid GGUF at byte %zu: %s", path_.c_str(), pos_, what.c_str()));
    }

    const uint8_t * take(size_t n, const char * what) {
        if (n > remaining()) {
            bad(format("file ends inside %s (needs %zu more bytes, %zu left)", what, n, remaining()));
        }
        const uint8_t * p = base_ + pos_;
        pos_ += n;
        return p;
    }

    template <typename T> T read(const char * what) {
        T v;
        std::memcpy(&v, take(sizeof(T), what), sizeof(T));
        return v;
    }

    std::string read_string(const char * what) {
        const uint64_t n = read<uint64_t>(what);
        if (n > kMaxStringBytes || n > remaining()) {
            bad(format("%s has length %llu but only %zu bytes remain", what, (unsigned long long) n, remaining()));
        }
        const uint8_t * p = take((size_t) n, what);
        return std::string(reinterpret_cast<const char *>(p), (size_t) n);
    }

private:
    const uint8_t * base_;
    size_t size_;
    size_t pos_ = 0;
    const std::string & path_;
};

GgufType read_type(Cursor & c, const char * what) {
    const uint32_t t = c.read<uint32_t>(what);
    if (t > (uint32_t) GgufType::F64) c.bad(format("unknown value type %u for %s", t, what));
    return (GgufType) t;
}

void read_scalar(Cursor & c, GgufType t, GgufValue & v, const std::string & key) {
    const uint8_t * p = c.take(scalar_size(t), key.c_str());
    switch (t) {
        case GgufType::U8:   { uint8_t  x; std::memcpy(&x, p, 1); v.u = x; v.i = x; v.f = x; break; }
        case GgufType::I8:   { int8_t   x; std::memcpy(&x, p, 1); v.i = x; v.u = (uint64_t) x; v.f = x; break; }
        case GgufType::U16:  { uint16_t x; std::memcpy(&x, p, 2); v.u = x; v.i = x; v.f = x; break; }
        case GgufType::I16:  { int16_t  x; std::memcpy(&x, p, 2); v.i = x; v.u = (uint64_t) x; v.f = x; break; }
        case GgufType::U32:  { uint32_t x; std::memcpy(&x, p, 4); v.u = x; v.i = x; v.f = x; break; }
        case GgufType::I32:  { int32_t  x; std::memcpy(&x, p, 4); v.i = x; v.u = (uint64_t) x; v.f = x; break; }
        case GgufType::U64:  { uint64_t x; std::memcpy(&x, p, 8); v.u = x; v.i = (int64_t) x; v.f = (double) x; break; }
        case GgufType::I64:  { int64_t  x; std::memcpy(&x, p, 8); v.i = x; v.u = (uint64_t) x; v.f = (double) x; break; }
        case GgufType::F32:  { float    x; std::memcpy(&x, p, 4); v.f = x; break; }
        case GgufType::F64:  { double   x; std::memcpy(&x, p, 8); v.f = x; break; }
        case GgufType::BOOL: {
            const uint8_t x = *p;
            if (x > 1) c.bad(format("bool value %u for key '%s' (must be 0 or 1)", x, key.c_str()));
            v.u = x; v.i = x; v.f = x; break;
        }
        default: c.bad("internal: not a scalar type");
    }
}

void read_value(Cursor & c, GgufType t, GgufValue & v, const std::string & key, uint64_t depth) {
    v.type = t;
    v.n = 1;
    if (t == GgufType::STRING) {
        v.s = c.read_string(("string value of key '" + key + "'").c_str());
        return;
    }
    if (t != GgufType::ARRAY) {
        read_scalar(c, t, v, key);
        return;
    }
    if (depth >= kMaxArrayDepth) c.bad(format("nested array in key '%s' is not supported", key.c_str()));
    v.elem_type = read_type(c, ("array element type of key '" + key + "'").c_str());
    v.n = c.read<uint64_t>("array length");
    if (v.elem_type == GgufType::ARRAY) c.bad(format("nested array in key '%s' is not supported", key.c_str()));
    if (v.elem_type == GgufType::STRING) {
        // each string needs at least its 8-byte length
        if (v.n > c.remaining() / 8) {
            c.bad(format("string array '%s' claims %llu elements, more than the file can hold", key.c_str(), (unsigned long long) v.n));
        }
        v.strings.reserve((size_t) v.n);
        for (uint64_t i = 0; i < v.n; i++) v.strings.push_back(c.read_string("string array element"));
        return;
    }
    const size_t es = scalar_size(v.elem_type);
    if (v.n > c.remaining() / es) {
        c.bad(format("array '%s' claims %llu elements of %zu bytes, more than the file holds", key.c_str(), (unsigned long long) v.n, es));
    }
    v.array_data = c.take((size_t) v.n * es, key.c_str());
    if (v.elem_type == GgufType::BOOL) {
        for (uint64_t i = 0; i < v.n; i++) {
            if (v.array_data[i] > 1) c.bad(format("bool array '%s' holds the value %u", key.c_str(), v.array_data[i]));
        }
    }
}

bool valid_ggml_type(uint32_t t) {
    if (t >= GGML_TYPE_COUNT) return false;
    const ggml_type type = (ggml_type) t;
    return ggml_blck_size(type) > 0 && ggml_type_size(type) > 0;
}

} // namespace

const char * gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::U8: return "u8";    case GgufType::I8: return "i8";
        case GgufType::U16: return "u16";  case GgufType::I16: return "i16";
        case GgufType::U32: return "u32";  case GgufType::I32: return "i32";
        case GgufType::F32: return "f32";  case GgufType::BOOL: return "bool";
        case GgufType::STRING: return "string"; case GgufType::ARRAY: return "array";
        case GgufType::U64: return "u64";  case GgufType::I64: return "i64";
        case GgufType::F64: return "f64";
    }
    return "?";
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string & path) {
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->path_ = path;
    // non-blocking: a FIFO named as a model opens at once (and is refused below) instead of waiting for a writer
    f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f->fd_ < 0) {
        fail(LR_ERR_IO, format("cannot open '%s': %s", path.c_str(), std::strerror(errno)));
    }
    struct stat st;
    if (fstat(f->fd_, &st) != 0) fail(LR_ERR_IO, format("cannot stat '%s': %s", path.c_str(), std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) fail(LR_ERR_IO, format("'%s' is not a regular file", path.c_str()));
    fcntl(f->fd_, F_SETFL, fcntl(f->fd_, F_GETFL) & ~O_NONBLOCK);
    f->size_ = (size_t) st.st_size;
    if (f->size_ < 24) {
        fail(LR_ERR_BAD_GGUF, format("%s: not a GGUF file (%zu bytes; a GGUF header alone is 24)", path.c_str(), f->size_));
    }
    void * m = mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, f->fd_, 0);
    if (m == MAP_FAILED) fail(LR_ERR_IO, format("cannot map '%s': %s", path.c_str(), std::strerror(errno)));
    f->base_ = static_cast<const uint8_t *>(m);
    f->parse();
    return f;
}

GgufFile::~GgufFile() {
    if (base_) munmap(const_cast<uint8_t *>(base_), size_);
    if (fd_ >= 0) ::close(fd_);
}

void GgufFile::parse() {
    Cursor c(base_, size_, path_);
    const uint8_t * magic = c.take(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) {
        // the file's own bytes are not echoed: it may be any file the user can read (a config naming /etc/passwd)
        fail(LR_ERR_BAD_GGUF, format("%s: not a GGUF file (it does not start with \"GGUF\")", path_.c_str()));
    }
    version_ = c.read<uint32_t>("version");
    if (version_ == 1) c.bad("GGUF version 1 is not supported (re-convert the model)");
    if (version_ != 2 && version_ != 3) {
        if ((version_ & 0xFFFF) == 0 && version_ != 0) c.bad("big-endian GGUF files are not supported");
        c.bad(format("unsupported GGUF version %u (2 and 3 are supported)", version_));
    }
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    // each kv needs at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes; each tensor info 8+1+4+8+4+8
    if (n_kv > c.remaining() / 14) c.bad(format("metadata count %llu is larger than the file can hold", (unsigned long long) n_kv));
    if (n_tensors > c.remaining() / 33) c.bad(format("tensor count %llu is larger than the file can hold", (unsigned long long) n_tensors));

    kv_.reserve((size_t) n_kv);
    for (uint64_t k = 0; k < n_kv; k++) {
        std::string key = c.read_string("metadata key");
        if (key.empty()) c.bad("empty metadata key");
        if (!kv_index_.emplace(key, kv_.size()).second) c.bad(format("duplicate metadata key '%s'", key.c_str()));
        GgufValue v;
        const GgufType t = read_type(c, ("type of key '" + key + "'").c_str());
        read_value(c, t, v, key, 0);
        kv_.emplace_back(std::move(key), std::move(v));
    }

    if (const GgufValue * a = find("general.alignment")) {
        if (a->type != GgufType::U32) c.bad(format("general.alignment must be u32, found %s", gguf_type_name(a->type)));
        if (a->u == 0 || (a->u & (a->u - 1)) != 0 || a->u > (1u << 20)) {
            c.bad(format("general.alignment %llu is not a power of two up to 1 MiB", (unsigned long long) a->u));
        }
        alignment_ = (size_t) a->u;
    }

    tensors_.reserve((size_t) n_tensors);
    for (uint64_t ti = 0; ti < n_tensors; ti++) {
        GgufTensor t;
        t.name = c.read_string("tensor name");
        if (t.name.empty() || t.name.size() >= GGML_MAX_NAME) {
            c.bad(format("tensor name '%s' is empty or longer than %d bytes", t.name.c_str(), GGML_MAX_NAME - 1));
        }
        const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
        if (n_dims == 0 || n_dims > kMaxDims) c.bad(format("tensor '%s' has %u dimensions (1 to 4 allowed)", t.name.c_str(), n_dims));
        t.n_dims = (int) n_dims;
        int64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            const uint64_t ne = c.read<uint64_t>("tensor dimension");
            if (ne == 0 || ne > (uint64_t) std::numeric_limits<int64_t>::max()) {
                c.bad(format("tensor '%s' dimension %u is %llu", t.name.c_str(), d, (unsigned long long) ne));
            }
            if ((int64_t) ne > std::numeric_limits<int64_t>::max() / n_elements) {
                c.bad(format("tensor '%s' has more elements than fit in 64 bits", t.name.c_str()));
            }
            t.ne[d] = (int64_t) ne;
            n_elements *= (int64_t) ne;
        }
        const uint32_t type = c.read<uint32_t>("tensor type");
        if (!valid_ggml_type(type)) c.bad(format("tensor '%s' has unknown ggml type %u", t.name.c_str(), type));
        t.type = (ggml_type) type;
        const int64_t blck = ggml_blck_size(t.type);
        if (t.ne[0] % blck != 0) {
            c.bad(format("tensor '%s' row length %lld is not a multiple of the %s block size %lld",
                t.name.c_str(), (long long) t.ne[0], ggml_type_name(t.type), (long long) blck));
        }
        // bytes = rows * row size, computed with overflow checks
        const uint64_t row_bytes = (uint64_t) ggml_type_size(t.type) * (uint64_t) (t.ne[0] / blck);
        const uint64_t rows = (uint64_t) (n_elements / t.ne[0]);
        if (row_bytes != 0 && rows > std::numeric_limits<uint64_t>::max() / row_bytes) {
            c.bad(format("tensor '%s' is too large", t.name.c_str()));
        }
        const uint64_t nbytes = rows * row_bytes;
        if (nbytes > size_) c.bad(format("tensor '%s' needs %llu bytes, more than the whole file", t.name.c_str(), (unsigned long long) nbytes));
        t.nbytes = (size_t) nbytes;
        t.offset = c.read<uint64_t>("tensor data offset");
        if (t.offset % alignment_ != 0) {
            c.bad(format("tensor '%s' offset %llu is not aligned to %zu", t.name.c_str(), (unsigned long long) t.offset, alignment_));
        }
        if (!tensor_index_.emplace(t.name, tensors_.size()).second) c.bad(format("duplicate tensor name '%s'", t.name.c_str()));
        tensors_.push_back(std::move(t));
    }

    // the data section starts at the next multiple of the alignment
    const size_t header_end = c.pos();
    data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
    if (data_offset_ > size_) {
        if (!tensors_.empty()) {
            fail(LR_ERR_BAD_GGUF, format("%s: invalid GGUF: file ends before its data section", path_.c_str()));
        }
        data_offset_ = size_;
    }
    const size_t data_size = size_ - data_offset_;

    // every tensor lies inside the data section, and no two overlap
    std::vector<const GgufTensor *> by_offset;
    by_offset.reserve(tensors_.size());
    for (auto & t : tensors_) {
        if (t.offset > data_size || t.nbytes > data_size - t.offset) {
            fail(LR_ERR_BAD_GGUF, format("%s: invalid GGUF: tensor '%s' (offset %llu, %zu bytes) extends past the end of the file "
                "(data section holds %zu bytes; the file may be truncated)", path_.c_str(), t.name.c_str(),
                (unsigned long long) t.offset, t.nbytes, data_size));
        }
        t.data = base_ + data_offset_ + t.offset;
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](const GgufTensor * a, const GgufTensor * b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); i++) {
        const GgufTensor * a = by_offset[i - 1];
        const GgufTensor * b = by_offset[i];
        if (a->offset + a->nbytes > b->offset) {
            fail(LR_ERR_BAD_GGUF, format("%s: invalid GGUF: tensors '%s' and '%s' overlap", path_.c_str(), a->name.c_str(), b->name.c_str()));
        }
    }
}

const GgufValue * GgufFile::find(const std::string & key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor * GgufFile::tensor(const std::string & name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

[[noreturn]] void wrong_type(const std::string & path, const std::string & key, const char * expected, const GgufValue & v) {
    std::string found = gguf_type_name(v.type);
    if (v.type == GgufType::ARRAY) found += std::string(" of ") + gguf_type_name(v.elem_type);
    fail(LR_ERR_BAD_GGUF, format("%s: metadata key '%s' must be %s, found %s", path.c_str(), key.c_str(), expected, found.c_str()));
}

[[noreturn]] void missing(const std::string & path, const std::string & key) {
    fail(LR_ERR_BAD_GGUF, format("%s: required metadata key '%s' is missing", path.c_str(), key.c_str()));
}

} // namespace

std::string GgufFile::get_string(const std::string & key) const {
    const GgufValue * v = find(key);
    if (!v) missing(path_, key);
    if (v->type != GgufType::STRING) wrong_type(path_, key, "a string", *v);
    return v->s;
}

std::string GgufFile::get_string(const std::string & key, const std::string & fallback) const {
    return has(key) ? get_string(key) : fallback;
}

uint32_t GgufFile::get_u32(const std::string & key) const {
    const GgufValue * v = find(key);
    if (!v) missing(path_, key);
    if (!is_integer(v->type)) wrong_type(path_, key, "an integer", *v);
    if ((is_signed(v->type) && v->i < 0) || v->u > std::numeric_limits<uint32_t>::max()) {
        fail(LR_ERR_BAD_GGUF, format("%s: metadata key '%s' = %lld is out of range", path_.c_str(), key.c_str(), (long long) v->i));
    }
    return (uint32_t) v->u;
}

uint32_t GgufFile::get_u32(const std::string & key, uint32_t fallback) const {
    return has(key) ? get_u32(key) : fallback;
}

float GgufFile::get_f32(const std::string & key) const {
    const GgufValue * v = find(key);
    if (!v) missing(path_, key);
    if (v->type != GgufType::F32 && v->type != GgufType::F64) wrong_type(path_, key, "a float", *v);
    return (float) v->f;
}

float GgufFile::get_f32(const std::string & key, float fallback) const {
    return has(key) ? get_f32(key) : fallback;
}

bool GgufFile::get_bool(const std::string & key, bool fallback) const {
    const GgufValue * v = find(key);
    if (!v) return fallback;
    if (v->type != GgufType::BOOL) wrong_type(path_, key, "a bool", *v);
    return v->u != 0;
}

const std::vector<std::string> & GgufFile::get_string_array(const std::string & key) const {
    const GgufValue * v = find(key);
    if (!v) missing(path_, key);
    if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING) wrong_type(path_, key, "an array of strings", *v);
    return v->strings;
}

std::vector<float> GgufFile::get_f32_array(const std::string & key) const {
    const GgufValue * v = find(key);
    if (!v) missing(path_, key);
    if (v->type != GgufType::ARRAY || v->elem_type != GgufType::F32) wrong_type(path_, key, "an array of f32", *v);
    std::vector<float> out((size_t) v->n);
    if (v->n) std::memcpy(out.data(), v->array_data, (size_t) v->n * sizeof(float));
    return out;
}

std::vector<int32_t> GgufFile::get_i32_array(const std::string & key) const {
    const GgufValue * v = find(key);
    if (!v) missing(path_, key);
    if (v->type != GgufType::ARRAY || (v->elem_type != GgufType::I32 && v->elem_type != GgufType::U32)) {
        wrong_type(path_, key, "an array of i32", *v);
    }
    std::vector<int32_t> out((size_t) v->n);
    if (v->n) std::memcpy(out.data(), v->array_data, (size_t) v->n * sizeof(int32_t));
    return out;
}

uint64_t GgufFile::array_length(const std::string & key) const {
    const GgufValue * v = find(key);
    return (v && v->type == GgufType::ARRAY) ? v->n : 0;
}

const GgufTensor & GgufFile::require_tensor(const std::string & name, std::vector<int64_t> shape) const {
    const GgufTensor * t = tensor(name);
    if (!t) fail(LR_ERR_BAD_GGUF, format("%s: required tensor '%s' is missing", path_.c_str(), name.c_str()));
    bool ok = shape.size() <= kMaxDims;
    for (size_t d = 0; ok && d < kMaxDims; d++) {
        const int64_t want = d < shape.size() ? shape[d] : 1;
        ok = t->ne[d] == want;
    }
    if (!ok) {
        auto dims = [](const int64_t * ne, size_t n) {
            std::string s = "[";
            for (size_t i = 0; i < n; i++) s += (i ? ", " : "") + std::to_string(ne[i]);
            return s + "]";
        };
        fail(LR_ERR_BAD_GGUF, format("%s: tensor '%s' has shape %s, expected %s", path_.c_str(), name.c_str(),
            dims(t->ne, (size_t) t->n_dims).c_str(), dims(shape.data(), shape.size()).c_str()));
    }
    return *t;
}

void GgufFile::release(const uint8_t * data, size_t n) const {
    if (base_ == nullptr || data < base_ || n == 0 || (size_t) (data - base_) > size_ || n > size_ - (size_t) (data - base_)) return;
    const uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t) data + page - 1) / page * page; // first whole page inside
    const uintptr_t hi = ((uintptr_t) data + n) / page * page;        // end of the last whole page inside
    if (hi > lo) madvise((void *) lo, hi - lo, MADV_DONTNEED);        // advisory: failure changes nothing
}

} // namespace lr
