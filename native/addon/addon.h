// Shared declarations of the Node addon. The addon only wraps the C API in llava_rad.h: it converts
// arguments (checking every JS type first), runs everything that touches weights off the event loop and
// turns every non-OK status into a JS error. No C++ exception leaves a N-API callback: node-addon-api
// (NAPI_CPP_EXCEPTIONS) converts Napi::Error into a JS exception, and every other exception is caught here.
#pragma once

#include <napi.h>

#include "llava_rad.h"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lra {

// ---- errors (errors.cpp) ----------------------------------------------------------------------------
// Every error the addon throws or rejects with is an Error (or TypeError for wrong JS types) with
//   code:      an lr_status name ("LR_ERR_BAD_GGUF", ...) or "DISPOSED"
//   lrMessage: lr_last_error() text at the failing call (when it came from the engine)
Napi::Error make_error(Napi::Env env, const std::string & code, const std::string & message);
Napi::Error status_error(Napi::Env env, lr_status status, const std::string & message);
[[noreturn]] void throw_status(Napi::Env env, lr_status status, const std::string & what);
[[noreturn]] void throw_type(Napi::Env env, const std::string & message);
[[noreturn]] void throw_range(Napi::Env env, const std::string & message);
[[noreturn]] void throw_disposed(Napi::Env env, const std::string & what);
// "a string", "undefined", "an object", ... for argument messages
std::string describe(const Napi::Value & v);

// ---- argument helpers (errors.cpp); `what` names the argument in messages ----------------------------
std::string   arg_string(const Napi::Value & v, const char * what);
int32_t       arg_int32(const Napi::Value & v, const char * what, int64_t lo, int64_t hi);
double        arg_number(const Napi::Value & v, const char * what);
bool          arg_bool(const Napi::Value & v, const char * what);
Napi::Object  arg_object(const Napi::Value & v, const char * what);
Napi::Function arg_function(const Napi::Value & v, const char * what);
// a member of an options object; undefined/null means "not given"
bool          has_opt(const Napi::Object & o, const char * key);
// Int32Array or array of integers -> ids
std::vector<int32_t> arg_int32_list(const Napi::Value & v, const char * what);
// a batch of id sequences: ids one after another, counts each one's length; refuses no sequence at all and ids
// that do not hold exactly the counts' sum (each count's range is the engine's to check)
struct IdBatch {
    std::vector<int32_t> ids, counts;
};
IdBatch arg_id_batch(const Napi::Value & ids, const Napi::Value & counts, const char * what);

// a status plus the thread's message, captured where the call failed (lr_last_error is per thread)
struct Failure {
    lr_status   status = LR_OK;
    std::string message;
    std::string engine_message; // lr_last_error() text, when the engine reported the failure
    void capture(lr_status s, const std::string & what);
    void set(lr_status s, std::string msg) { status = s; message = std::move(msg); }
    bool ok() const { return status == LR_OK; }
};

// ---- lifetime of native objects ------------------------------------------------------------------------
// A "core" owns one engine handle. JS wrappers and async workers hold shared_ptrs to it. Disposal:
//   1. synchronously (on the JS thread) mark the core disposed: new calls throw DISPOSED;
//   2. on a worker thread wait for the operations already running to finish, then free the handle.
// A context holds its model core, so a model handle is never freed before its contexts.
struct Gate {
    std::mutex              mu;
    std::condition_variable cv;
    int                     ops      = 0;
    bool                    disposed = false;
    // JS thread: refuse when disposed, else count one operation in flight
    bool enter();
    void leave();
    // worker thread: wait for every operation to leave
    void drain();
};

struct ContextCore;

struct ModelCore {
    lr_model *    model = nullptr;
    lr_model_info info{};
    Gate          gate;
    std::mutex    ctx_mu;
    std::vector<std::weak_ptr<ContextCore>> contexts;
    void free_now(); // worker thread (or a finalizer with nothing in flight)
    ~ModelCore();
};

struct RequestState;

struct ContextCore {
    lr_context *               ctx = nullptr;
    std::shared_ptr<ModelCore> model;
    lr_context_params          params{};
    Gate                       gate;
    // low-level decode in flight (lr_decode must not be mixed with submitted requests)
    bool                       decoding = false;
    std::mutex                 req_mu;
    std::vector<std::shared_ptr<RequestState>> requests; // accepted, on_done not yet called
    std::mutex                 free_mu;
    void free_now(); // worker thread: frees the context, then completes requests the engine left open
    ~ContextCore();
};

// ---- a Promise whose work runs on the libuv pool -----------------------------------------------------------
// exec runs on a worker thread and reports failure through Failure (it may also throw: any exception
// becomes LR_ERR_INTERNAL / LR_ERR_OUT_OF_MEMORY); done runs on the JS thread and gives the value.
class PromiseWorker : public Napi::AsyncWorker {
public:
    using Exec = std::function<void(Failure &)>;
    using Done = std::function<Napi::Value(Napi::Env)>;
    static Napi::Promise Queue(Napi::Env env, const char * name, Exec exec, Done done);

protected:
    PromiseWorker(Napi::Env env, const char * name, Exec exec, Done done);
    void Execute() override;
    void OnOK() override;
    void OnError(const Napi::Error & e) override;

private:
    Napi::Promise::Deferred deferred_;
    Exec                    exec_;
    Done                    done_;
    Failure                 failure_;
};

// RAII: one operation in flight on a gate, entered on the JS thread (throws DISPOSED when disposed)
struct GateUse {
    Gate * gate = nullptr;
    GateUse(Napi::Env env, Gate & g, const char * what);
    ~GateUse() { if (gate) gate->leave(); }
    GateUse(const GateUse &) = delete;
    GateUse & operator=(const GateUse &) = delete;
};

// the same, as a token a worker lambda captures: dropping the lambda (end of Execute) leaves the gate
// (the token keeps the core alive until it leaves)
template <class Core> std::shared_ptr<void> gate_op(Napi::Env env, const std::shared_ptr<Core> & core, const char * what) {
    if (!core->gate.enter()) throw_disposed(env, what);
    return std::shared_ptr<void>(core.get(), [core](void *) { core->gate.leave(); });
}

// ---- per-env data ------------------------------------------------------------------------------------
// Frees every still-alive context in `list` (emptied under `mu`): marks each gate disposed, then frees it,
// which cancels its requests and joins its scheduler thread, so no callback runs after this returns.
void free_contexts(std::mutex & mu, std::vector<std::weak_ptr<ContextCore>> & list);

struct AddonData {
    Napi::FunctionReference model_ctor;
    Napi::FunctionReference context_ctor;
    Napi::FunctionReference vision_ctor;
    Napi::FunctionReference bert_ctor;
    Napi::FunctionReference clip_ctor;
    // every context created in this env: freed by the env cleanup hook (a worker thread ending, or the
    // main env tearing down), so that no scheduler thread calls into a thread-safe function after Node
    // has deleted it
    std::mutex                              ctx_mu;
    std::vector<std::weak_ptr<ContextCore>> contexts;
    void register_context(const std::shared_ptr<ContextCore> & c);
    void free_all_contexts();
};

// ---- module parts --------------------------------------------------------------------------------------
void init_errors(Napi::Env env, Napi::Object exports);
void init_model(Napi::Env env, Napi::Object exports, AddonData * data);
void init_context(Napi::Env env, Napi::Object exports, AddonData * data);
void init_quantize(Napi::Env env, Napi::Object exports);
void init_vision(Napi::Env env, Napi::Object exports, AddonData * data);
void init_bert(Napi::Env env, Napi::Object exports, AddonData * data);
void init_radgraph(Napi::Env env, Napi::Object exports);
void init_clip(Napi::Env env, Napi::Object exports, AddonData * data);

// creates a JS Context wrapping `core` (context.cpp)
Napi::Object new_context_object(Napi::Env env, std::shared_ptr<ContextCore> core);
// the ModelCore of a JS Model object (model.cpp); throws TypeError for anything else
std::shared_ptr<ModelCore> model_core_of(const Napi::Value & v);

// {backend, threads, mmap} options -> lr_model_params (model.cpp); throws TypeError/RangeError
lr_model_params model_params_arg(const Napi::Object & o);

// info struct -> JS object
Napi::Object model_info_object(Napi::Env env, const lr_model_info & info);

} // namespace lra
