#include "harness.h"

#include <exception>

namespace lrtest {
std::vector<Case> & registry() { static std::vector<Case> r; return r; }
static std::vector<std::string> g_args;
const std::vector<std::string> & args() { return g_args; }
}

// usage: llava-rad-tests [FILTER [ARGS...]]
int main(int argc, char ** argv) {
    const std::string filter = argc > 1 ? argv[1] : "";
    for (int i = 2; i < argc; i++) lrtest::g_args.push_back(argv[i]);
    int passed = 0, failed = 0, skipped = 0;
    for (auto & c : lrtest::registry()) {
        if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
        try {
            c.fn();
            std::printf("ok   %s\n", c.name);
            passed++;
        } catch (const lrtest::Skipped & s) {
            std::printf("skip %s\n     %s\n", c.name, s.reason.c_str());
            skipped++;
        } catch (const lrtest::Failure & f) {
            std::printf("FAIL %s\n     %s\n", c.name, f.message.c_str());
            failed++;
        } catch (const std::exception & e) {
            std::printf("FAIL %s\n     exception: %s\n", c.name, e.what());
            failed++;
        }
    }
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 ? 0 : 1;
}
