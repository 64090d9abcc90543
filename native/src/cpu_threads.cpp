#include "cpu_threads.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

namespace lr {

namespace {

bool read_first_line(const std::string & path, std::string & line) {
    std::ifstream f(path);
    return f.is_open() && std::getline(f, line);
}

bool read_long(const std::string & path, long long & v) {
    std::string line;
    if (!read_first_line(path, line)) return false;
    std::istringstream in(line);
    return static_cast<bool>(in >> v);
}

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

// the tightest limit from mount/path up to mount itself
double tightest(const std::string & mount, std::string path, double (*quota_of)(const std::string &)) {
    double best = 0;
    while (true) {
        const double q = quota_of(mount + path);
        if (q > 0 && (best == 0 || q < best)) best = q;
        if (path.empty() || path == "/") break;
        const size_t slash = path.rfind('/');
        path = slash == std::string::npos ? "" : path.substr(0, slash);
    }
    return best;
}

bool has_controller(const std::string & list, const std::string & want) {
    std::istringstream in(list);
    std::string c;
    while (std::getline(in, c, ',')) if (c == want) return true;
    return false;
}

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
    std::ifstream f(root + "/proc/self/cgroup");
    if (!f.is_open()) return 0;
    double best = 0;
    auto take = [&](double q) { if (q > 0 && (best == 0 || q < best)) best = q; };
    std::string line;
    while (std::getline(f, line)) {
        // "hierarchy-id:controllers:path"; v2 is "0::path"
        const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
        if (b == std::string::npos) continue;
        const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        if (controllers.empty()) {
            take(tightest(root + "/sys/fs/cgroup", path, quota_v2));
        } else if (has_controller(controllers, "cpu")) {
            for (const char * mount : { "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu", "/sys/fs/cgroup/cpu" }) {
                take(tightest(root + mount, path, quota_v1));
            }
        }
    }
    return best;
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
