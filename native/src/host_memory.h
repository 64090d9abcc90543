// How much memory this process may use: the machine's RAM (MemTotal in /proc/meminfo), or less when its
// cgroup (a container's memory limit, v1 or v2) says so; and how much of it is free to take now. Graphs whose
// compute buffers need more than the limit are refused with LR_ERR_OUT_OF_MEMORY before ggml is asked to
// allocate them (see backend.h reserve_graph); weights copied into memory and KV caches, which are written
// as soon as they are allocated, are refused when they need more than is available now (check_host_allocation),
// so a model or a context that does not fit is an error instead of the kernel's OOM killer ending the process.
#pragma once

#include <cstdint>
#include <string>

namespace lr {

struct HostMemory {
    uint64_t physical = 0;     // bytes of RAM, 0 when unknown
    uint64_t cgroup_limit = 0; // the tightest cgroup memory limit, 0 when none
    // bytes that can be taken now without the kernel killing a process: MemAvailable plus SwapFree, less
    // when a cgroup on the way up has less headroom (its limit less its working set: usage without the
    // inactive page cache, which the kernel reclaims first); 0 when unknown
    uint64_t available = 0;
    uint64_t limit() const;    // the smaller of the known ones, 0 when neither is known
};

// `root` prefixes /proc and /sys (tests point it at a fake tree). With no root given, the environment
// variable LLAVA_RAD_TEST_HOST_ROOT, when set, is used as one (test-only: child processes of the test suite
// see a machine of a chosen size).
HostMemory host_memory(const std::string & root = "");

// Refuses an allocation of `bytes` of host memory for `what` (LR_ERR_OUT_OF_MEMORY naming both sizes) when it
// is more than `m` allows at all or more than is available now; unknown sizes refuse nothing.
void check_host_allocation(uint64_t bytes, const std::string & what, const HostMemory & m);
// the same with this machine's figures, read now
void check_host_allocation(uint64_t bytes, const std::string & what);

// "512 KiB", "1.2 MiB", "51 MiB", "21.50 GiB"
std::string memory_size(uint64_t bytes);

} // namespace lr
