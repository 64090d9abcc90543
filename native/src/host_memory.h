// How much memory this process may use: the machine's RAM (MemTotal in /proc/meminfo), or less when its
// cgroup (a container's memory limit, v1 or v2) says so. Graphs whose compute buffers need more are refused
// with LR_ERR_OUT_OF_MEMORY before ggml is asked to allocate them (see backend.h reserve_graph).
#pragma once

#include <cstdint>
#include <string>

namespace lr {

struct HostMemory {
    uint64_t physical = 0;     // bytes of RAM, 0 when unknown
    uint64_t cgroup_limit = 0; // the tightest cgroup memory limit, 0 when none
    uint64_t limit() const;    // the smaller of the known ones, 0 when neither is known
};

// `root` prefixes /proc and /sys (tests point it at a fake tree)
HostMemory host_memory(const std::string & root = "");

} // namespace lr
