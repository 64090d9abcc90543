/*
 * llava_rad.h - the engine's public C API (the one seam between the engine and everything else).
 *
 * Opaque handles, status codes, no exceptions. The Node addon, the standalone CLI and the C++ tests
 * all go through this header.
 *
 * Errors: every function that can fail returns an lr_status. On failure a human-readable message for
 * the calling thread is available from lr_last_error() until the next failing call on that thread.
 *
 * Threads: an lr_model may be shared by any number of contexts, and its tokenizer calls (lr_tokenize,
 * lr_detokenize, lr_token_piece, lr_model_get_info) only read, so they may run on any thread at any time.
 * An lr_context runs its own scheduler thread; lr_submit/lr_cancel may be called from any thread.
 * lr_decode may run while requests are in flight, on sequences no request holds (it waits for the
 * scheduler's current step), but lr_get_logits then returns the rows of whichever batch was computed
 * last: callers that need them should not have requests in flight.
 */
#ifndef LLAVA_RAD_H
#define LLAVA_RAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lr_status {
    LR_OK                   = 0,
    LR_ERR_INVALID_ARGUMENT = 1,  /* a caller passed a value outside what the function accepts */
    LR_ERR_IO               = 2,  /* a file could not be opened, read or mapped */
    LR_ERR_BAD_GGUF         = 3,  /* the file is not a valid GGUF of a supported model */
    LR_ERR_UNSUPPORTED      = 4,  /* valid input this engine does not support (architecture, type, ...) */
    LR_ERR_OUT_OF_MEMORY    = 5,  /* a buffer could not be allocated */
    LR_ERR_CONTEXT_FULL     = 6,  /* the KV cache has no room for the batch */
    LR_ERR_BACKEND          = 7,  /* the compute backend failed or is not available in this build */
    LR_ERR_CANCELLED        = 8,  /* a request was cancelled */
    LR_ERR_BUFFER_TOO_SMALL = 9,  /* an output buffer was too small; the needed size was written */
    LR_ERR_INTERNAL         = 10, /* a bug: please report it */
} lr_status;

/* "LR_ERR_BAD_GGUF" etc.; never NULL */
const char * lr_status_name(lr_status status);
/* the calling thread's message for its last failing call ("" if none); valid until the next call */
const char * lr_last_error(void);
/* a short description of the library build: version, ggml commit, backends compiled in, and the CPU
 * variant and matrix kernels this process uses (lr_get_cpu_info) */
const char * lr_build_info(void);

/* ---------------------------------------------------------------------------------------------- */
/* the CPU code in use                                                                            */

/* ggml's CPU backend is built as several modules (one per CPU generation, or one for the build machine with
 * LLAVA_RAD_NATIVE); one is chosen at run time for this CPU (LLAVA_RAD_CPU_VARIANT overrides). The engine's
 * own AVX512-VNNI matrix kernels are chosen by cpuid (LLAVA_RAD_CPU_KERNELS overrides). */
typedef struct lr_cpu_info {
    char    variant[32];     /* the module in use: "zen4", "haswell", "sse42", "x64", ..., or "native" */
    char    variants[512];   /* the modules this CPU can run, best last, space separated */
    char    features[512];   /* ggml's feature list of the module in use ("SSE3 AVX AVX2 ...") */
    char    kernels[16];     /* quantized matrix products of CPU-only runs: "vnni" (the engine's) or "ggml" */
    int32_t default_threads; /* threads when none are asked for: physical cores allowed, capped by the quota */
    int32_t allowed_cpus;    /* logical CPUs in the process's affinity mask */
    int32_t physical_cores;  /* distinct cores among them */
    double  cpu_quota;       /* CPUs the cgroup grants (a container's limit); 0: none */
} lr_cpu_info;

/* loads the CPU module if no model has yet; LR_ERR_BACKEND when none runs on this CPU (or the one named by
 * LLAVA_RAD_CPU_VARIANT cannot), LR_ERR_INVALID_ARGUMENT for a bad LLAVA_RAD_CPU_KERNELS */
lr_status lr_get_cpu_info(lr_cpu_info * out);

/* LR_OK when `bytes` of host memory for `what` fit; LR_ERR_OUT_OF_MEMORY (lr_last_error names both sizes) when
 * they are more than this machine or its container's memory limit allows, or more than is available now
 * (MemAvailable + SwapFree, less in a cgroup with less headroom). For memory a caller will hold because of the
 * engine (e.g. every step's logits); the engine checks its own allocations itself. Unknown sizes refuse nothing. */
lr_status lr_check_host_memory(uint64_t bytes, const char * what);

/* ---------------------------------------------------------------------------------------------- */
/* models                                                                                         */

typedef struct lr_model   lr_model;
typedef struct lr_context lr_context;

typedef enum lr_backend {
    LR_BACKEND_AUTO = 0, /* CUDA when compiled in and a device is present, else CPU */
    LR_BACKEND_CPU  = 1,
    LR_BACKEND_CUDA = 2,
} lr_backend;

typedef struct lr_model_params {
    lr_backend backend;
    int32_t    n_threads; /* CPU threads for compute; <= 0: lr_cpu_info's default_threads */
    int32_t    use_mmap;  /* 1: weights the CPU uses as stored are computed from the file mapping (pages shared with
                             other processes, 4 KiB pages); 0 (default): every weight is copied into private
                             memory advised to transparent huge pages, which decodes faster on the CPU */
} lr_model_params;

lr_model_params lr_model_default_params(void);

/* Validates the whole file before any tensor is created; a malformed file gives LR_ERR_BAD_GGUF. */
lr_status lr_model_load(const char * path, const lr_model_params * params, lr_model ** out_model);
void      lr_model_free(lr_model * model);

typedef struct lr_model_info {
    char    architecture[32]; /* general.architecture */
    char    name[128];        /* general.name, or "" */
    char    backend[32];      /* "CPU", "CUDA0", ... */
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    int32_t n_rot;
    float   rms_norm_eps;
    float   rope_freq_base;
    int32_t bos_token;
    int32_t eos_token;
    int32_t add_bos;
    int32_t weight_type;      /* ggml type of most weights (ggml_type enum value) */
    int64_t n_params;
    int64_t weight_bytes;
    int32_t n_vnni;           /* q8_0/q6_K matrices repacked for the engine's AVX512-VNNI CPU kernels (0: ggml's) */
} lr_model_info;

lr_status lr_model_get_info(const lr_model * model, lr_model_info * out_info);

/* ---------------------------------------------------------------------------------------------- */
/* tokenizer                                                                                      */

/* Writes up to `capacity` ids; *n_tokens receives the full count. LR_ERR_BUFFER_TOO_SMALL when it
 * did not fit (call again with a buffer of *n_tokens). Special tokens are never produced from text. */
lr_status lr_tokenize(const lr_model * model, const char * text, size_t text_len, int32_t add_bos,
                      int32_t * tokens, size_t capacity, size_t * n_tokens);

typedef enum lr_detok_flags {
    LR_DETOK_SKIP_SPECIAL         = 1, /* drop control tokens (BOS, EOS, ...) */
    LR_DETOK_REMOVE_LEADING_SPACE = 2, /* drop the dummy-prefix space before the first piece */
} lr_detok_flags;

/* ids -> UTF-8 bytes; *n_bytes receives the full length; LR_ERR_BUFFER_TOO_SMALL as above */
lr_status lr_detokenize(const lr_model * model, const int32_t * tokens, size_t n_tokens, int32_t flags,
                        char * text, size_t capacity, size_t * n_bytes);

/* one token's bytes (a byte piece gives one byte, possibly part of a UTF-8 character) */
lr_status lr_token_piece(const lr_model * model, int32_t token, char * piece, size_t capacity, size_t * n_bytes);

/* ---------------------------------------------------------------------------------------------- */
/* contexts: a KV cache shared by up to n_seq_max sequences, plus a scheduler                     */

typedef enum lr_kv_type {
    LR_KV_F16  = 0,
    LR_KV_Q8_0 = 1,
    LR_KV_F32  = 2,
} lr_kv_type;

typedef struct lr_context_params {
    int32_t    n_ctx;      /* KV cells shared by all sequences; <= 0: min(4096, training context) */
    int32_t    n_batch;    /* most tokens computed in one graph; <= 0: 512 */
    int32_t    n_seq_max;  /* most sequences alive at once; <= 0: 1 */
    lr_kv_type kv_type;
    int32_t    n_threads;  /* <= 0: the model's */
    int32_t    flash_attn; /* 1: fused flash attention; 0: mul_mat + soft_max (llama.cpp's non-FA path) */
} lr_context_params;

lr_context_params lr_context_default_params(void);

lr_status lr_context_create(lr_model * model, const lr_context_params * params, lr_context ** out_ctx);
void      lr_context_free(lr_context * ctx); /* cancels pending requests and joins the scheduler */

/* the settings in force: n_ctx is rounded up to a multiple of 256, n_batch capped at n_ctx, flash
 * attention switched on for a q8_0 cache (a quantized V cache cannot be stored transposed) */
typedef struct lr_context_info {
    int32_t    n_ctx;
    int32_t    n_batch;
    int32_t    n_seq_max;
    lr_kv_type kv_type;
    int32_t    n_threads;
    int32_t    flash_attn;
    int64_t    kv_bytes;
} lr_context_info;

lr_status lr_context_get_info(const lr_context * ctx, lr_context_info * out_info);

/* ---- low level: one batch, explicit positions ------------------------------------------------- */

#define LR_TOKEN_EMBD (-1) /* batch entry whose input is an embedding row, not a token id */

typedef struct lr_batch {
    int32_t         n_tokens;
    const int32_t * token;  /* token id, or LR_TOKEN_EMBD: the next row of `embd` */
    const float   * embd;   /* n_embd floats per LR_TOKEN_EMBD entry, in batch order (may be NULL if none) */
    const int32_t * pos;    /* must continue the sequence: its current length, then +1 for each entry */
    const int32_t * seq_id; /* 0 <= seq_id < n_seq_max */
    const int8_t  * logits; /* nonzero: keep this entry's logits (NULL: only the last entry's) */
} lr_batch;

/* Computes the batch (split internally in n_batch pieces). Validates everything first. */
lr_status lr_decode(lr_context * ctx, const lr_batch * batch);
/* logits of the i-th entry that asked for them in the last lr_decode (n_vocab floats), or NULL */
const float * lr_get_logits(lr_context * ctx, int32_t i);
/* number of positions held for a sequence */
int32_t   lr_seq_length(const lr_context * ctx, int32_t seq_id);
/* forget positions >= p0 of a sequence (p0 = 0 clears it) */
lr_status lr_seq_truncate(lr_context * ctx, int32_t seq_id, int32_t p0);

/* ---- high level: generation requests run by the context's scheduler --------------------------- */
/* Requests in flight at the same time are decoded together in one batch per step (continuous
 * batching); each keeps its own sequence in the KV cache. Prompts are prefilled in n_batch chunks. */

typedef struct lr_prompt_part {
    const int32_t * tokens;  /* either tokens ... */
    size_t          n_tokens;
    const float   * embd;    /* ... or n_embd_rows rows of n_embd floats (copied at submit) */
    size_t          n_embd_rows;
} lr_prompt_part;

typedef struct lr_sampling {
    float    temperature; /* <= 0: greedy (argmax, lowest id wins ties) */
    int32_t  top_k;       /* <= 0: off */
    float    top_p;       /* >= 1 or <= 0: off */
    uint64_t seed;
} lr_sampling;

typedef struct lr_gen_params {
    int32_t     max_tokens;  /* 1 ..= n_ctx */
    lr_sampling sampling;
    int32_t     ignore_eos;  /* nonzero: keep going past EOS until max_tokens */
    int32_t     keep_logits; /* nonzero: on_token also receives each step's logits */
} lr_gen_params;

lr_gen_params lr_gen_default_params(void);

typedef enum lr_stop_reason {
    LR_STOP_EOS        = 0,
    LR_STOP_MAX_TOKENS = 1,
    LR_STOP_CANCELLED  = 2,
    LR_STOP_ERROR      = 3,
    LR_STOP_CTX_FULL   = 4,
} lr_stop_reason;

typedef struct lr_gen_result {
    lr_status      status;
    lr_stop_reason stop_reason;
    int32_t        n_prompt;     /* prompt positions fed (tokens + embedding rows) */
    int32_t        n_generated;
    double         queue_ms;     /* submit -> prefill start */
    double         prompt_ms;    /* prefill start -> first token sampled */
    double         decode_ms;    /* first token -> last token */
    const char   * error;        /* message when status != LR_OK (valid during the callback) */
} lr_gen_result;

/* called on the scheduler thread for each generated token; logits is NULL unless keep_logits (n_vocab
 * floats, valid during the call). EOS is not reported as a token (nor counted in n_generated) unless
 * ignore_eos is set: it ends the request with LR_STOP_EOS. */
typedef void (*lr_on_token)(void * user, int32_t token, const float * logits, int32_t n_vocab);
/* called exactly once per accepted request, on the scheduler thread, after the last on_token */
typedef void (*lr_on_done)(void * user, const lr_gen_result * result);

typedef uint64_t lr_request_id;

/* Validates and queues the request. On LR_OK the callbacks will run; on any other status they won't.
 * A request is admitted when a sequence slot is free and the KV cells it may need (prompt + max_tokens - 1,
 * at most n_ctx) are not reserved by others, in submission order; so what it generates does not depend on
 * the other requests in flight. An error in a step ends the requests with rows in it (status set, stop
 * reason LR_STOP_ERROR); the context stays usable. */
lr_status lr_submit(lr_context * ctx, const lr_prompt_part * parts, size_t n_parts, const lr_gen_params * params,
                    lr_on_token on_token, lr_on_done on_done, void * user, lr_request_id * out_id);
/* Stops a request (no-op if it already finished): a CPU graph computing its rows stops after the node in
 * progress; the other requests of that step run it again. */
lr_status lr_cancel(lr_context * ctx, lr_request_id id);

/* Testing only: makes the next scheduler step that decodes fail the way a real fault would, so tests can
 * check that every affected request gets a typed error (and the others go on) and that the context stays
 * usable. The requests with rows in that step end with the fault's status, except for LR_FAULT_ABORT. */
typedef enum lr_fault {
    LR_FAULT_NONE          = 0,
    LR_FAULT_BACKEND_ERROR = 1, /* the decode fails (LR_ERR_BACKEND) after its rows took their KV cells */
    LR_FAULT_OUT_OF_MEMORY = 2, /* the same, as an allocation failure (LR_ERR_OUT_OF_MEMORY) */
    LR_FAULT_THROW         = 3, /* the step throws after the decode, outside its error handling (LR_ERR_INTERNAL) */
    LR_FAULT_ABORT         = 4, /* the graph is stopped after its first node, as by a cancellation of no
                                   request: every request runs the step again, with the same results */
} lr_fault;
lr_status lr_debug_fault(lr_context * ctx, lr_fault fault);

/* Convenience for the CLI: submit and wait. tokens receives up to capacity ids. */
lr_status lr_generate(lr_context * ctx, const lr_prompt_part * parts, size_t n_parts, const lr_gen_params * params,
                      int32_t * tokens, size_t capacity, lr_gen_result * out_result);

/* ---------------------------------------------------------------------------------------------- */
/* vision: LLaVA-Rad's image tower + projector (a vision GGUF, see native/src/vision_model.h)      */

typedef struct lr_vision lr_vision;

typedef struct lr_vision_info {
    char    name[128];
    char    backend[32];
    int32_t image_size;    /* input side in pixels (518) */
    int32_t patch_size;
    int32_t n_patches;     /* embeddings per image (1369) */
    int32_t n_embd;        /* tower width (768) */
    int32_t n_out;         /* projected width = the decoder's n_embd */
    int32_t n_block;
    int32_t n_block_used;  /* blocks that run (up to the selected layer) */
    int32_t n_head;
    int32_t select_layer;
    float   image_mean[3];
    float   image_std[3];
    int64_t n_params;
} lr_vision_info;

/* params->n_threads and backend as for models; max_batch: most images in one graph (<= 0: 8) */
lr_status lr_vision_load(const char * path, const lr_model_params * params, int32_t max_batch, lr_vision ** out_vision);
void      lr_vision_free(lr_vision * vision);
lr_status lr_vision_get_info(const lr_vision * vision, lr_vision_info * out_info);

typedef enum lr_vision_output {
    LR_VISION_PROJECTED = 0, /* n_patches x n_out per image: rows for the decoder's prompt */
    LR_VISION_FEATURES  = 1, /* n_patches x n_embd per image: the tower's selected hidden state without CLS */
} lr_vision_output;

/* pixels: n_images x 3 x image_size x image_size floats (CHW, already normalized with image_mean/std).
 * out: capacity floats; needs n_images x n_patches x (n_out or n_embd). Calls on one lr_vision are
 * serialized; it may be used from any thread. */
lr_status lr_vision_encode(lr_vision * vision, const float * pixels, int32_t n_images, lr_vision_output which,
                           float * out, size_t capacity);
/* returns nonzero to stop the operation it was given to; called from the computing thread */
typedef int (*lr_abort_callback)(void * user);
/* lr_vision_encode that stops with LR_ERR_CANCELLED once should_abort(user) returns nonzero: asked before each
 * batch of images and, on the CPU, after each node of the graph (so within a fraction of a second) */
lr_status lr_vision_encode_abortable(lr_vision * vision, const float * pixels, int32_t n_images, lr_vision_output which,
                                     float * out, size_t capacity, lr_abort_callback should_abort, void * user);

/* ---------------------------------------------------------------------------------------------- */
/* BERT encoder + CheXbert heads (a BERT GGUF from lib/convert/chexbert.ts, see native/src/bert_model.h) */

typedef struct lr_bert lr_bert;

typedef struct lr_bert_info {
    char    name[128];
    char    backend[32];
    int32_t n_vocab;
    int32_t n_ctx;        /* the most token ids one call takes (position embeddings: 512) */
    int32_t n_embd;
    int32_t n_block;
    int32_t n_head;
    int32_t n_heads_cls;  /* classification heads (CheXbert: 14; 0 for a plain encoder) */
    int32_t n_logits;     /* all heads' classes together (CheXbert: 13 x 4 + 2 = 54) */
    int64_t n_params;
} lr_bert_info;

/* params->n_threads and backend as for models */
lr_status lr_bert_load(const char * path, const lr_model_params * params, lr_bert ** out_bert);
void      lr_bert_free(lr_bert * bert);
lr_status lr_bert_get_info(const lr_bert * bert, lr_bert_info * out_info);

/* ids: n_ids token ids ([CLS] first; 1..n_ctx ids, each < n_vocab), one segment, no padding.
 * cls: the last layer's hidden state at [CLS] (n_embd floats); logits (may be NULL): every head's logits,
 * head after head (n_logits floats). Calls on one lr_bert are serialized; it may be used from any thread. */
lr_status lr_bert_encode(lr_bert * bert, const int32_t * ids, int32_t n_ids, float * cls, size_t cls_capacity,
                         float * logits, size_t logits_capacity);

/* the most token slots one batched call takes: n_seqs x its longest sequence (padding included) */
#define LR_BERT_MAX_BATCH_TOKENS 16384

/* n_seqs sequences in one graph, padded to the longest with the padding masked out: each sequence's results
 * equal lr_bert_encode's on it alone (up to float summation order). ids: the sequences one after another;
 * n_ids[s]: sequence s's count (1..n_ctx); n_seqs >= 1 and n_seqs x max(n_ids) <= LR_BERT_MAX_BATCH_TOKENS
 * (else LR_ERR_INVALID_ARGUMENT). cls: n_seqs x n_embd floats, sequence after sequence; logits (may be NULL):
 * n_seqs x n_logits. LR_ERR_BUFFER_TOO_SMALL when a capacity is short. */
lr_status lr_bert_encode_batch(lr_bert * bert, const int32_t * ids, const int32_t * n_ids, int32_t n_seqs, float * cls,
                               size_t cls_capacity, float * logits, size_t logits_capacity);

/* ---------------------------------------------------------------------------------------------- */
/* quantization (ggml's own quantizers)                                                           */

/* ggml type id for a name such as "f32", "f16", "q8_0", "q4_0", "q4_k"; -1 if unknown */
int32_t   lr_type_from_name(const char * name);
/* bytes that n_rows rows of n_per_row values take in `type` (0 when n_per_row does not fit the block) */
size_t    lr_type_row_bytes(int32_t type, int64_t n_per_row);
/* quantize n_rows x n_per_row floats into dst (capacity bytes); types that need an importance matrix are refused */
lr_status lr_quantize(int32_t type, const float * src, int64_t n_rows, int64_t n_per_row,
                      void * dst, size_t capacity, size_t * n_bytes);

/* ---------------------------------------------------------------------------------------------- */
/* RadGraph (DyGIE span model on the BERT encoder; a GGUF from lib/convert/radgraph.ts, see native/src/span_model.h).
 * Text, word pieces, pooling, span enumeration, pruning and decoding are the caller's (lib/radgraph/). */

typedef struct lr_radgraph lr_radgraph;

typedef struct lr_radgraph_info {
    char    name[128];
    char    backend[32];
    int32_t n_vocab;
    int32_t n_ctx;             /* the most token ids one lr_radgraph_encode takes */
    int32_t n_embd;            /* BERT width: a word vector's length */
    int32_t n_width_embd;      /* span width embeddings: spans of 1..n_width_embd words can be scored */
    int32_t span_dim;          /* a span's representation: 2 * n_embd + width feature size */
    int32_t n_ner_labels;      /* scored entity classes (the null class, score 0, excluded) */
    int32_t n_relation_labels; /* scored relation classes (the null class, score 0, excluded) */
    int64_t n_params;
} lr_radgraph_info;

lr_status lr_radgraph_load(const char * path, const lr_model_params * params, lr_radgraph ** out_radgraph);
void      lr_radgraph_free(lr_radgraph * radgraph);
lr_status lr_radgraph_get_info(const lr_radgraph * radgraph, lr_radgraph_info * out_info);

/* the BERT encoder on one segment (ids as lr_bert_encode): every token's last hidden state, token after
 * token (n_ids * n_embd floats) */
lr_status lr_radgraph_encode(lr_radgraph * radgraph, const int32_t * ids, int32_t n_ids, float * hidden, size_t capacity);
/* n_seqs segments in one graph (ids, n_ids and the bounds as lr_bert_encode_batch): every real token's last
 * hidden state, segment after segment, token after token (sum(n_ids) * n_embd floats); each segment's equal
 * lr_radgraph_encode's on it alone up to float summation order */
lr_status lr_radgraph_encode_batch(lr_radgraph * radgraph, const int32_t * ids, const int32_t * n_ids, int32_t n_seqs,
                                   float * hidden, size_t capacity);

/* words: n_words word vectors (n_words * n_embd floats); spans: n_spans (start, end) word pairs, end
 * inclusive, at most n_width_embd words wide. ner: n_spans * n_ner_labels entity scores (span after span);
 * mention: n_spans relation-pruner scores. */
lr_status lr_radgraph_score_spans(lr_radgraph * radgraph, const float * words, int32_t n_words, const int32_t * spans,
                                  int32_t n_spans, float * ner, size_t ner_capacity, float * mention, size_t mention_capacity);

/* the relation scores of every ordered pair of the n_spans spans given (the pruned spans) with their
 * mention scores: relation[(i * n_spans + j) * n_relation_labels + r] = scorer(ffnn([s_i, s_j, s_i * s_j]))[r]
 * + mention[i] + mention[j]. n_spans <= 4096. */
lr_status lr_radgraph_score_pairs(lr_radgraph * radgraph, const float * words, int32_t n_words, const int32_t * spans,
                                  int32_t n_spans, const float * mention, float * relation, size_t relation_capacity);

/* CLIP: BiomedCLIP-CXR's image and text embeddings (a CLIP GGUF from lib/convert/clip.ts + the vision */
/* GGUF, see native/src/clip_model.h)                                                              */

typedef struct lr_clip lr_clip;

typedef struct lr_clip_info {
    char    name[128];
    char    backend[32];
    int32_t n_out;          /* embedding width (BiomedCLIP-CXR: 512) */
    int32_t n_ctx;          /* the most token ids a text takes ([CLS] ... [SEP]: 256) */
    int32_t n_vocab;
    int32_t image_size;     /* input side in pixels (518) */
    float   image_mean[3];
    float   image_std[3];
    float   logit_scale;    /* log of the similarity scale (logits = exp(logit_scale) * image . text) */
    int64_t n_params;
} lr_clip_info;

/* clip_path: the CLIP GGUF (text tower, projections, image head); vision_path: the vision GGUF (its every block
 * runs). params and max_batch (images in one graph, <= 0: 8) as for lr_vision_load. */
lr_status lr_clip_load(const char * clip_path, const char * vision_path, const lr_model_params * params,
                       int32_t max_batch, lr_clip ** out_clip);
void      lr_clip_free(lr_clip * clip);
lr_status lr_clip_get_info(const lr_clip * clip, lr_clip_info * out_info);

/* ids: the texts' token ids one after another ([CLS] first, [SEP] last, each < n_vocab); n_ids[i]: text i's count
 * (1..n_ctx). out: capacity floats; needs n_texts x n_out: L2-normalized rows. On a GPU texts of like length share a
 * graph (at most 16 texts and 4096 token slots, padding masked); on the CPU each has its own. should_abort may be NULL (asked before each graph). Calls on one lr_clip are serialized; it may be used from any thread. */
lr_status lr_clip_embed_texts(lr_clip * clip, const int32_t * ids, const int32_t * n_ids, int32_t n_texts,
                              float * out, size_t capacity, lr_abort_callback should_abort, void * user);
/* pixels as for lr_vision_encode; out: n_images x n_out L2-normalized rows. should_abort as for
 * lr_vision_encode_abortable. */
lr_status lr_clip_embed_images(lr_clip * clip, const float * pixels, int32_t n_images, float * out, size_t capacity,
                               lr_abort_callback should_abort, void * user);

#ifdef __cplusplus
}
#endif

#endif /* LLAVA_RAD_H */
