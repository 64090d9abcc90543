#include "host_memory.h"
#include "cgroup.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace lr {

namespace {

// bytes allowed by one cgroup directory, 0 when it sets no limit (v2 "max"; v1's "unlimited" is a huge number,
// which the caller's min with the RAM size absorbs)
double memory_max_v2(const std::string & dir) {
    std::string line;
    if (!read_first_line(dir + "/memory.max", line) || line == "max") return 0;
    long long v = 0;
    std::istringstream in(line);
    return (in >> v) && v > 0 ? (double) v : 0;
}

double memory_max_v1(const std::string & dir) {
    long long v = 0;
    return read_long(dir + "/memory.limit_in_bytes", v) && v > 0 ? (double) v : 0;
}

const char * const kMemoryMounts[] = { "/sys/fs/cgroup/memory", nullptr };

uint64_t mem_total(const std::string & root) {
    std::ifstream f(root + "/proc/meminfo");
    std::string key, unit;
    long long kib = 0;
    while (f >> key >> kib) {
        std::getline(f, unit);
        if (key == "MemTotal:") return (uint64_t) kib * 1024;
    }
    if (!root.empty()) return 0;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (uint64_t) pages * (uint64_t) page : 0;
}

} // namespace

uint64_t HostMemory::limit() const {
    if (physical == 0) return cgroup_limit;
    if (cgroup_limit == 0) return physical;
    return std::min(physical, cgroup_limit);
}

HostMemory host_memory(const std::string & root) {
    HostMemory m;
    m.physical = mem_total(root);
    m.cgroup_limit = (uint64_t) cgroup_tightest(root, CgroupLimit{ "memory", kMemoryMounts, memory_max_v2, memory_max_v1 });
    return m;
}

} // namespace lr
