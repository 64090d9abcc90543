// llava-rad-cli: option parsing and typed usage errors (exit 2).
#pragma once

#include "llava_rad.h"

#include <map>
#include <string>
#include <vector>

namespace lrcli {

// bad arguments: main() prints "llava-rad-cli: <message>" (one line) and exits 2
struct UsageError {
    std::string message;
};

struct Args {
    std::map<std::string, std::string> values;
    std::map<std::string, bool> flags;
};

struct OptSpec {
    const char * name;  // long name without "--"
    char         short_name;
    bool         takes_value;
};

// argv[start..argc): --name VALUE, --name=VALUE, -x VALUE, --flag; anything else is a UsageError
Args parse_args(int argc, char ** argv, int start, const std::vector<OptSpec> & specs, const std::string & cmd);

// false when the option is absent; a UsageError when it is not an integer in [lo, hi]
bool get_int(const Args & a, const char * name, long long lo, long long hi, long long & out);
// false when absent; a UsageError when it is not a finite number in [lo, hi] (or (lo, hi] with lo_open)
bool get_float(const Args & a, const char * name, double lo, double hi, bool lo_open, double & out);
// --backend auto|cpu|cuda (default auto)
lr_backend get_backend(const Args & a);
// --model FILE: present and readable
std::string require_model(const Args & a, const std::string & cmd);
// --<name> FILE: present and readable; `what` names it in the messages ("vision model")
std::string require_file(const Args & a, const char * name, const std::string & cmd, const std::string & what);

} // namespace lrcli
