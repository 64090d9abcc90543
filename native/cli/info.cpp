// llava-rad-cli info: the build and the CPU code in use, and a model's hyperparameters, as JSON.
#include "cli_args.h"
#include "cli_commands.h"
#include "cli_engine.h"
#include "cli_json.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace lrcli {

int cmd_info(int argc, char ** argv) {
    const Args a = parse_args(argc, argv, 2, {{"model", 'm', true}, {"backend", 0, true}, {"threads", 't', true}, {"help", 'h', false}}, "info");
    if (a.flags.count("help")) {
        print_usage(stdout);
        return 0;
    }
    std::string o = "{";
    bool first = true;
    json_key(o, "build", first);
    const char * build = lr_build_info();
    json_string(o, build, std::strlen(build));
    json_key(o, "cpu", first);
    o += cpu_info_json();
    if (a.values.count("model")) {
        const std::string path = require_model(a, "info");
        get_backend(a);
        long long threads = 0;
        get_int(a, "threads", 1, 1024, threads);
        ModelHolder mh;
        lr_model_info info{};
        load(path, a, mh, info);
        json_key(o, "model", first);
        o += model_info_json(info, path, 0);
    }
    o += "}\n";
    std::fwrite(o.data(), 1, o.size(), stdout);
    return 0;
}

} // namespace lrcli
