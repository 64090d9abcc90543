// TEMPORARY: entry points not implemented yet. Each returns LR_ERR_INTERNAL. Removed as the engine lands.
#include "api_guard.h"

#define LR_STUB(name) lr::set_last_error(#name " is not implemented yet"); return LR_ERR_INTERNAL

extern "C" {
const char * lr_build_info(void) { return "llava-rad (engine under construction)"; }
lr_model_params lr_model_default_params(void) { lr_model_params p{}; p.backend = LR_BACKEND_AUTO; p.n_threads = 0; p.use_mmap = 1; return p; }
lr_status lr_model_load(const char *, const lr_model_params *, lr_model **) { LR_STUB(lr_model_load); }
void lr_model_free(lr_model *) {}
lr_status lr_model_get_info(const lr_model *, lr_model_info *) { LR_STUB(lr_model_get_info); }
lr_status lr_tokenize(const lr_model *, const char *, size_t, int32_t, int32_t *, size_t, size_t *) { LR_STUB(lr_tokenize); }
lr_status lr_detokenize(const lr_model *, const int32_t *, size_t, int32_t, char *, size_t, size_t *) { LR_STUB(lr_detokenize); }
lr_status lr_token_piece(const lr_model *, int32_t, char *, size_t, size_t *) { LR_STUB(lr_token_piece); }
lr_context_params lr_context_default_params(void) { lr_context_params p{}; p.n_batch = 512; p.n_seq_max = 1; p.kv_type = LR_KV_F16; return p; }
lr_status lr_context_create(lr_model *, const lr_context_params *, lr_context **) { LR_STUB(lr_context_create); }
void lr_context_free(lr_context *) {}
lr_status lr_decode(lr_context *, const lr_batch *) { LR_STUB(lr_decode); }
const float * lr_get_logits(lr_context *, int32_t) { return nullptr; }
int32_t lr_seq_length(const lr_context *, int32_t) { return 0; }
lr_status lr_seq_truncate(lr_context *, int32_t, int32_t) { LR_STUB(lr_seq_truncate); }
lr_gen_params lr_gen_default_params(void) { lr_gen_params p{}; p.max_tokens = 256; p.sampling.top_p = 1.0f; return p; }
lr_status lr_submit(lr_context *, const lr_prompt_part *, size_t, const lr_gen_params *, lr_on_token, lr_on_done, void *, lr_request_id *) { LR_STUB(lr_submit); }
lr_status lr_cancel(lr_context *, lr_request_id) { LR_STUB(lr_cancel); }
lr_status lr_generate(lr_context *, const lr_prompt_part *, size_t, const lr_gen_params *, int32_t *, size_t, lr_gen_result *) { LR_STUB(lr_generate); }
}
