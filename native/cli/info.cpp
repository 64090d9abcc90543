// llava-rad-cli info: a model's hyperparameters as JSON.
#include "cli_args.h"
#include "cli_commands.h"
#include "cli_engine.h"
#include "cli_json.h"

#include <cstdio>
#include <string>

namespace lrcli {

int cmd_info(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {{"model", 'm', true}, {"backend", 0, true}, {"threads", 't', true}, {"help", 'h', false}}, "info");
    if (a.flags.count("help")) {
        print_usage(stdout);
        return 0;
    }
    const std::string path = require_model(a, "info");
    get_backend(a);
    long long threads = 0;
    get_int(a, "threads", 1, 1024, threads);
    ModelHolder mh;
    lr_model_info info{};
    load(path, a, mh, info);
    std::string o = model_info_json(info, path, 0);
    o += '\n';
    std::fwrite(o.data(), 1, o.size(), stdout);
    return 0;
}

} // namespace lrcli
