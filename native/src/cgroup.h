// Limits a container puts on this process, read from its cgroups (v1 or v2): walk from the process's cgroup
// (/proc/self/cgroup) up to the hierarchy's root and take the tightest limit found on the way.
#pragma once

#include <string>

namespace lr {

// one kind of limit: the cgroup v1 controller that carries it, where v1 hierarchies of that controller are
// mounted, and how to read the limit from one cgroup directory of each version (0 = no limit there)
struct CgroupLimit {
    const char * v1_controller;
    const char * const * v1_mounts; // null-terminated
    double (*read_v2)(const std::string & dir);
    double (*read_v1)(const std::string & dir);
};

// the smallest positive limit on the way up, 0 when none; `root` prefixes /proc and /sys (tests use fake trees)
double cgroup_tightest(const std::string & root, const CgroupLimit & limit);

// small readers for limit files: the first line; the first line as a number
bool read_first_line(const std::string & path, std::string & line);
bool read_long(const std::string & path, long long & v);

} // namespace lr
