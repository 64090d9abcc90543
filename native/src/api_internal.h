// The structs behind the C API's opaque handles.
#pragma once

#include "decoder_context.h"
#include "decoder_model.h"
#include "scheduler.h"

#include <memory>

struct lr_model {
    std::unique_ptr<lr::DecoderModel> decoder;
};

struct lr_context {
    lr_model * model = nullptr;
    std::unique_ptr<lr::DecoderContext> decoder;
    std::unique_ptr<lr::Scheduler> scheduler; // declared last: stopped first
    ~lr_context() { scheduler.reset(); }
};
