// How many CPU threads to compute with when the caller does not say: the physical cores this process may run
// on (its affinity mask, thread siblings counted once), capped by the CPU quota of its cgroup (a container's
// CPU limit, cgroup v1 or v2), at least 1.
//
// ggml's threads spin at barriers between ops, so more threads than the quota grants only get the group
// throttled: a quota of 1.5 CPUs gives 1 thread, not 2.
#pragma once

#include <string>
#include <vector>

namespace lr {

struct CpuBudget {
    int    allowed_cpus = 0;   // logical CPUs in the affinity mask
    int    physical_cores = 0; // distinct cores among them
    double quota = 0;          // CPUs the cgroup grants (quota / period), 0 when unlimited
    int    threads = 1;        // the default thread count
};

// this process's budget; `root` prefixes /proc and /sys (tests point it at a fake tree)
CpuBudget cpu_budget(const std::string & root = "");

// the pieces, for tests: the logical CPUs of the affinity mask; distinct (package, core) pairs among `cpus`
// (a CPU without topology files counts as a core of its own); the tightest cgroup CPU quota on the way from
// the process's cgroup up to the hierarchy's root, 0 when none
std::vector<int> affinity_cpus();
int physical_cores_in(const std::vector<int> & cpus, const std::string & root);
double cgroup_cpu_quota(const std::string & root);

} // namespace lr
