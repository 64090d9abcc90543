#include "host_memory.h"
#include "cgroup.h"
#include "status.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
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

// the value of `key` in a "key value" file (memory.stat), -1 when absent
long long stat_value(const std::string & path, const std::string & key) {
    std::ifstream f(path);
    std::string k;
    long long v = 0;
    while (f >> k >> v) {
        if (k == key) return v;
    }
    return -1;
}

// what a limited cgroup can still take: its limit less its working set (usage without the inactive page
// cache); at least 1 byte (0 would read as "no limit"), 0 when the cgroup sets no limit or its usage is unknown
double headroom(double limit, const std::string & usage_file, const std::string & stat_file, const char * inactive_key) {
    long long usage = 0;
    if (limit <= 0 || !read_long(usage_file, usage) || usage < 0) return 0;
    const long long inactive = stat_value(stat_file, inactive_key);
    const double working_set = (double) std::max(0LL, usage - std::max(0LL, inactive));
    return std::max(1.0, limit - working_set);
}

double memory_headroom_v2(const std::string & dir) {
    return headroom(memory_max_v2(dir), dir + "/memory.current", dir + "/memory.stat", "inactive_file");
}

double memory_headroom_v1(const std::string & dir) {
    return headroom(memory_max_v1(dir), dir + "/memory.usage_in_bytes", dir + "/memory.stat", "total_inactive_file");
}

const char * const kMemoryMounts[] = { "/sys/fs/cgroup/memory", nullptr };

// a /proc/meminfo field in bytes, 0 when absent
uint64_t meminfo(const std::string & root, const std::string & field) {
    std::ifstream f(root + "/proc/meminfo");
    std::string key, unit;
    long long kib = 0;
    while (f >> key >> kib) {
        std::getline(f, unit);
        if (key == field) return kib > 0 ? (uint64_t) kib * 1024 : 0;
    }
    return 0;
}

uint64_t mem_total(const std::string & root) {
    const uint64_t total = meminfo(root, "MemTotal:");
    if (total > 0 || !root.empty()) return total;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (uint64_t) pages * (uint64_t) page : 0;
}

// the smaller of two sizes where 0 means unknown
uint64_t min_known(uint64_t a, uint64_t b) {
    if (a == 0) return b;
    if (b == 0) return a;
    return std::min(a, b);
}

} // namespace

std::string memory_size(uint64_t bytes) {
    const double mib = (double) bytes / (1024.0 * 1024.0);
    if (mib < 1.0) return format("%.0f KiB", mib * 1024.0);
    if (mib < 10.0) return format("%.1f MiB", mib);
    return mib < 1024.0 ? format("%.0f MiB", mib) : format("%.2f GiB", mib / 1024.0);
}

uint64_t HostMemory::limit() const { return min_known(physical, cgroup_limit); }

HostMemory host_memory(const std::string & root_arg) {
    const char * env = root_arg.empty() ? std::getenv("LLAVA_RAD_TEST_HOST_ROOT") : nullptr;
    const std::string root = env && *env ? std::string(env) : root_arg;
    HostMemory m;
    m.physical = mem_total(root);
    m.cgroup_limit = (uint64_t) cgroup_tightest(root, CgroupLimit{ "memory", kMemoryMounts, memory_max_v2, memory_max_v1 });
    const uint64_t cgroup_headroom =
        (uint64_t) cgroup_tightest(root, CgroupLimit{ "memory", kMemoryMounts, memory_headroom_v2, memory_headroom_v1 });
    // swap counts: past MemAvailable the kernel swaps before it kills
    const uint64_t mem_available = meminfo(root, "MemAvailable:");
    m.available = min_known(mem_available > 0 ? mem_available + meminfo(root, "SwapFree:") : 0, cgroup_headroom);
    return m;
}

void check_host_allocation(uint64_t bytes, const std::string & what, const HostMemory & m) {
    const uint64_t limit = m.limit();
    if (limit > 0 && bytes > limit) {
        const bool container = m.cgroup_limit > 0 && (m.physical == 0 || m.cgroup_limit < m.physical);
        fail(LR_ERR_OUT_OF_MEMORY, format("%s needs %s of memory; %s has %s", what.c_str(), memory_size(bytes).c_str(),
            container ? "this container's memory limit" : "this machine", memory_size(limit).c_str()));
    }
    if (m.available > 0 && bytes > m.available) {
        const std::string of = limit > 0 ? format(" (of %s)", memory_size(limit).c_str()) : std::string();
        fail(LR_ERR_OUT_OF_MEMORY, format("%s needs %s of memory; %s is available now%s", what.c_str(),
            memory_size(bytes).c_str(), memory_size(m.available).c_str(), of.c_str()));
    }
}

void check_host_allocation(uint64_t bytes, const std::string & what) { check_host_allocation(bytes, what, host_memory()); }

} // namespace lr
