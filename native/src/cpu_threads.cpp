#include "cpu_threads.h"
#include "cgroup.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

namespace lr {

namespace {

// CPUs granted by one cgroup directory, 0 when it sets no limit (or has no such files)
double quota_v2(const std::string & dir) {
    std::string line;
    if (!read_first_line(dir + "/cpu.max", line)) return 0;
    std::istringstream in(line);
    std::string quota;
    long long period = 0;
    if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
    const double q = std::atof(quota.c_str());
    return q > 0 ? q / (double) period : 0;
}

double quota_v1(const std::string & dir) {
    long long quota = 0, period = 0;
    if (!read_long(dir + "/cpu.cfs_quota_us", quota) || !read_long(dir + "/cpu.cfs_period_us", period)) return 0;
    return quota > 0 && period > 0 ? (double) quota / (double) period : 0;
}

const char * const kCpuMounts[] = { "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu", "/sys/fs/cgroup/cpu", nullptr };

} // namespace

std::vector<int> affinity_cpus() {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; c++) if (CPU_ISSET(c, &set)) out.push_back(c);
    }
    if (out.empty()) {
        const unsigned hc = std::max(1u, std::thread::hardware_concurrency());
        for (unsigned c = 0; c < hc; c++) out.push_back((int) c);
    }
    return out;
}

int physical_cores_in(const std::vector<int> & cpus, const std::string & root) {
    std::set<std::pair<long long, long long>> cores;
    for (int c : cpus) {
        const std::string topo = root + "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
        long long package = 0, core = 0;
        if (read_long(topo + "physical_package_id", package) && read_long(topo + "core_id", core)) {
            cores.insert({package, core});
        } else {
            cores.insert({-1, c}); // unknown topology: a core of its own
        }
    }
    return (int) cores.size();
}

double cgroup_cpu_quota(const std::string & root) {
    return cgroup_tightest(root, CgroupLimit{ "cpu", kCpuMounts, quota_v2, quota_v1 });
}

CpuBudget cpu_budget(const std::string & root) {
    CpuBudget b;
    const std::vector<int> cpus = affinity_cpus();
    b.allowed_cpus = (int) cpus.size();
    b.physical_cores = physical_cores_in(cpus, root);
    b.quota = cgroup_cpu_quota(root);
    b.threads = b.physical_cores;
    if (b.quota > 0) b.threads = std::min(b.threads, (int) std::floor(b.quota + 1e-9));
    b.threads = std::max(1, b.threads);
    return b;
}

} // namespace lr
