// Errors and argument checks of the addon.
#include "addon.h"

#include <cmath>
#include <limits>

namespace lra {

Napi::Error make_error(Napi::Env env, const std::string & code, const std::string & message) {
    Napi::Error e = Napi::Error::New(env, message);
    e.Set("code", Napi::String::New(env, code));
    return e;
}

Napi::Error status_error(Napi::Env env, lr_status status, const std::string & message) {
    Napi::Error e = make_error(env, lr_status_name(status), message);
    e.Set("lrStatus", Napi::Number::New(env, (double) status));
    return e;
}

void throw_status(Napi::Env env, lr_status status, const std::string & what) {
    const char * msg = lr_last_error();
    std::string full = what;
    if (msg && *msg) full += (full.empty() ? "" : ": ") + std::string(msg);
    Napi::Error e = status_error(env, status, full);
    e.Set("lrMessage", Napi::String::New(env, msg ? msg : ""));
    throw e;
}

void throw_type(Napi::Env env, const std::string & message) {
    Napi::TypeError e = Napi::TypeError::New(env, message);
    e.Set("code", Napi::String::New(env, lr_status_name(LR_ERR_INVALID_ARGUMENT)));
    throw e;
}

void throw_range(Napi::Env env, const std::string & message) {
    Napi::RangeError e = Napi::RangeError::New(env, message);
    e.Set("code", Napi::String::New(env, lr_status_name(LR_ERR_INVALID_ARGUMENT)));
    throw e;
}

void throw_disposed(Napi::Env env, const std::string & what) {
    throw make_error(env, "DISPOSED", what + " has been disposed");
}

std::string describe(const Napi::Value & v) {
    switch (v.Type()) {
        case napi_undefined: return "undefined";
        case napi_null: return "null";
        case napi_boolean: return std::string("a boolean (") + (v.As<Napi::Boolean>().Value() ? "true" : "false") + ")";
        case napi_number: {
            const double d = v.As<Napi::Number>().DoubleValue();
            if (std::isnan(d)) return "NaN";
            std::string s = std::to_string(d);
            if (d == std::floor(d) && std::fabs(d) < 1e15) s = std::to_string((long long) d);
            return "the number " + s;
        }
        case napi_string: return "a string";
        case napi_symbol: return "a symbol";
        case napi_function: return "a function";
        case napi_bigint: return "a bigint";
        case napi_external: return "an external";
        case napi_object:
            if (v.IsArray()) return "an array";
            if (v.IsTypedArray()) {
                switch (v.As<Napi::TypedArray>().TypedArrayType()) {
                    case napi_int32_array: return "an Int32Array";
                    case napi_float32_array: return "a Float32Array";
                    case napi_uint8_array: return "a Uint8Array";
                    case napi_int8_array: return "an Int8Array";
                    default: return "a typed array";
                }
            }
            if (v.IsBuffer()) return "a Buffer";
            return "an object";
    }
    return "a value";
}

std::string arg_string(const Napi::Value & v, const char * what) {
    if (!v.IsString()) throw_type(v.Env(), std::string(what) + " must be a string, got " + describe(v));
    return v.As<Napi::String>().Utf8Value();
}

double arg_number(const Napi::Value & v, const char * what) {
    if (!v.IsNumber()) throw_type(v.Env(), std::string(what) + " must be a number, got " + describe(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d)) throw_range(v.Env(), std::string(what) + " must be a finite number, got " + describe(v));
    return d;
}

int32_t arg_int32(const Napi::Value & v, const char * what, int64_t lo, int64_t hi) {
    if (!v.IsNumber()) throw_type(v.Env(), std::string(what) + " must be an integer, got " + describe(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < (double) lo || d > (double) hi) {
        throw_range(v.Env(), std::string(what) + " must be an integer between " + std::to_string(lo) + " and " +
                                 std::to_string(hi) + ", got " + describe(v));
    }
    return (int32_t) d;
}

bool arg_bool(const Napi::Value & v, const char * what) {
    if (!v.IsBoolean()) throw_type(v.Env(), std::string(what) + " must be a boolean, got " + describe(v));
    return v.As<Napi::Boolean>().Value();
}

Napi::Object arg_object(const Napi::Value & v, const char * what) {
    if (!v.IsObject() || v.IsArray() || v.IsFunction()) {
        throw_type(v.Env(), std::string(what) + " must be an object, got " + describe(v));
    }
    return v.As<Napi::Object>();
}

Napi::Function arg_function(const Napi::Value & v, const char * what) {
    if (!v.IsFunction()) throw_type(v.Env(), std::string(what) + " must be a function, got " + describe(v));
    return v.As<Napi::Function>();
}

bool has_opt(const Napi::Object & o, const char * key) {
    if (!o.Has(key)) return false;
    Napi::Value v = o.Get(key);
    return !v.IsUndefined() && !v.IsNull();
}

std::vector<int32_t> arg_int32_list(const Napi::Value & v, const char * what) {
    std::vector<int32_t> out;
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
        Napi::Int32Array a = v.As<Napi::Int32Array>();
        out.assign(a.Data(), a.Data() + a.ElementLength());
        return out;
    }
    if (v.IsArray()) {
        Napi::Array a = v.As<Napi::Array>();
        const uint32_t n = a.Length();
        out.reserve(n);
        for (uint32_t i = 0; i < n; ++i) {
            Napi::Value e = a.Get(i);
            if (!e.IsNumber()) {
                throw_type(v.Env(), std::string(what) + "[" + std::to_string(i) + "] must be an integer, got " + describe(e));
            }
            const double d = e.As<Napi::Number>().DoubleValue();
            if (!std::isfinite(d) || d != std::floor(d) || d < (double) std::numeric_limits<int32_t>::min() ||
                d > (double) std::numeric_limits<int32_t>::max()) {
                throw_range(v.Env(), std::string(what) + "[" + std::to_string(i) + "] must be a 32-bit integer, got " + describe(e));
            }
            out.push_back((int32_t) d);
        }
        return out;
    }
    throw_type(v.Env(), std::string(what) + " must be an Int32Array or an array of integers, got " + describe(v));
}

IdBatch arg_id_batch(const Napi::Value & ids, const Napi::Value & counts, const char * what) {
    IdBatch b{arg_int32_list(ids, "ids"), arg_int32_list(counts, "counts")};
    if (b.counts.empty()) throw_range(ids.Env(), std::string("counts must name at least one ") + what + ", got none");
    size_t total = 0;
    for (int32_t n : b.counts) total += n > 0 ? (size_t) n : 0;
    if (total != b.ids.size()) {
        throw_range(ids.Env(), "ids must hold the counts' sum (" + std::to_string(total) + ") token ids, got " + std::to_string(b.ids.size()));
    }
    return b;
}

void Failure::capture(lr_status s, const std::string & what) {
    status = s;
    const char * msg = lr_last_error();
    message = what;
    engine_message = msg ? msg : "";
    if (msg && *msg) message += std::string(": ") + msg;
}

// ---- Gate -----------------------------------------------------------------------------------------------

bool Gate::enter() {
    std::lock_guard<std::mutex> lock(mu);
    if (disposed) return false;
    ++ops;
    return true;
}

void Gate::leave() {
    std::lock_guard<std::mutex> lock(mu);
    --ops;
    cv.notify_all();
}

void Gate::drain() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return ops == 0; });
}

// ---- module functions -------------------------------------------------------------------------------------

static Napi::Value StatusName(const Napi::CallbackInfo & info) {
    const int32_t s = arg_int32(info[0], "status", 0, 1000);
    return Napi::String::New(info.Env(), lr_status_name((lr_status) s));
}

static Napi::Value BuildInfo(const Napi::CallbackInfo & info) {
    const char * s = lr_build_info();
    return Napi::String::New(info.Env(), s ? s : "");
}

static Napi::Value CpuInfo(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    lr_cpu_info c{};
    const lr_status s = lr_get_cpu_info(&c);
    if (s != LR_OK) throw_status(env, s, "the CPU backend");
    auto words = [&](const char * text) {
        Napi::Array a = Napi::Array::New(env);
        std::string w;
        for (const char * p = text;; p++) {
            if (*p == ' ' || *p == '\0') {
                if (!w.empty()) a.Set(a.Length(), Napi::String::New(env, w));
                w.clear();
                if (*p == '\0') break;
            } else {
                w += *p;
            }
        }
        return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("variant", Napi::String::New(env, c.variant));
    o.Set("variants", words(c.variants));
    o.Set("features", words(c.features));
    o.Set("kernels", Napi::String::New(env, c.kernels));
    o.Set("defaultThreads", Napi::Number::New(env, c.default_threads));
    o.Set("allowedCpus", Napi::Number::New(env, c.allowed_cpus));
    o.Set("physicalCores", Napi::Number::New(env, c.physical_cores));
    o.Set("cpuQuota", Napi::Number::New(env, c.cpu_quota));
    return o;
}

// checkHostMemory(bytes, what): throws OUT_OF_MEMORY when that much host memory is not there to take
static Napi::Value CheckHostMemory(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString()) {
        throw_type(env, "checkHostMemory(bytes: number, what: string)");
    }
    const double bytes = info[0].As<Napi::Number>().DoubleValue();
    if (!(bytes >= 0) || bytes > 1.8e19) throw_range(env, "checkHostMemory: bytes must be a number from 0 to 2^64");
    const lr_status s = lr_check_host_memory(static_cast<uint64_t>(bytes), info[1].As<Napi::String>().Utf8Value().c_str());
    if (s != LR_OK) throw_status(env, s, "");
    return env.Undefined();
}

void init_errors(Napi::Env env, Napi::Object exports) {
    exports.Set("statusName", Napi::Function::New(env, StatusName, "statusName"));
    exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
    exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
    exports.Set("checkHostMemory", Napi::Function::New(env, CheckHostMemory, "checkHostMemory"));
}

} // namespace lra

namespace lra {

// ---- PromiseWorker -----------------------------------------------------------------------------------------

PromiseWorker::PromiseWorker(Napi::Env env, const char * name, Exec exec, Done done)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), exec_(std::move(exec)),
      done_(std::move(done)) {}

Napi::Promise PromiseWorker::Queue(Napi::Env env, const char * name, Exec exec, Done done) {
    auto * w = new PromiseWorker(env, name, std::move(exec), std::move(done));
    Napi::Promise p = w->deferred_.Promise();
    w->Napi::AsyncWorker::Queue();
    return p;
}

void PromiseWorker::Execute() {
    try {
        exec_(failure_);
    } catch (const std::bad_alloc &) {
        failure_.set(LR_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception & e) {
        failure_.set(LR_ERR_INTERNAL, std::string("unexpected exception in the addon: ") + e.what());
    } catch (...) {
        failure_.set(LR_ERR_INTERNAL, "unexpected exception in the addon");
    }
    exec_ = nullptr; // drop captured references on the worker thread's watch, not later
}

void PromiseWorker::OnOK() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!failure_.ok()) {
        Napi::Error e = status_error(env, failure_.status, failure_.message);
        e.Set("lrMessage", Napi::String::New(env, failure_.engine_message));
        deferred_.Reject(e.Value());
        done_ = nullptr;
        return;
    }
    try {
        Napi::Value v = done_ ? done_(env) : env.Undefined();
        deferred_.Resolve(v);
    } catch (const Napi::Error & e) {
        deferred_.Reject(e.Value());
    } catch (const std::exception & e) {
        deferred_.Reject(status_error(env, LR_ERR_INTERNAL, e.what()).Value());
    }
    done_ = nullptr;
}

void PromiseWorker::OnError(const Napi::Error & e) {
    deferred_.Reject(e.Value());
}

GateUse::GateUse(Napi::Env env, Gate & g, const char * what) {
    if (!g.enter()) throw_disposed(env, what);
    gate = &g;
}

} // namespace lra
