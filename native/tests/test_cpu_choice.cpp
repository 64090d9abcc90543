// The CPU choices made at run time: which ggml CPU module (cpu_variant.h), how many threads (cpu_threads.h)
// and how much memory graphs may take (host_memory.h), on made-up module lists and on fake /proc + /sys trees.
#include "harness.h"
#include "llava_rad.h"
#include "cpu_threads.h"
#include "host_memory.h"
#include "cpu_variant.h"
#include "status.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace {

lr::CpuVariant variant(const std::string & name, int score, bool amx = false) {
    lr::CpuVariant v;
    v.name = name;
    v.path = "/nowhere/libggml-cpu-" + name + ".so";
    v.score = score;
    v.amx = amx;
    return v;
}

// the error choose_cpu_variant throws, or "" when it chose
std::string choice_error(const std::vector<lr::CpuVariant> & found, const std::string & forced, std::string * chosen = nullptr) {
    try {
        const lr::CpuVariant v = lr::choose_cpu_variant(found, forced);
        if (chosen) *chosen = v.name;
        return "";
    } catch (const lr::Error & e) {
        CHECK(e.code == LR_ERR_BACKEND);
        return e.what();
    }
}

// a scratch folder removed at the end of the scope
struct TempTree {
    fs::path dir;
    TempTree() {
        char tmpl[] = "/tmp/lr-cpu-tree-XXXXXX";
        const char * d = mkdtemp(tmpl);
        CHECK(d != nullptr);
        dir = d;
    }
    ~TempTree() { std::error_code ec; fs::remove_all(dir, ec); }
    void write(const std::string & rel, const std::string & text) const {
        const fs::path p = dir / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text << "\n";
    }
    std::string root() const { return dir.string(); }
};

void topology(const TempTree & t, int cpu, int package, int core) {
    const std::string base = "sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    t.write(base + "physical_package_id", std::to_string(package));
    t.write(base + "core_id", std::to_string(core));
}

} // namespace

TEST("cpu variant: the best-scoring module this CPU runs, never an AMX one unless named") {
    const std::vector<lr::CpuVariant> found = {
        variant("x64", 1), variant("haswell", 36), variant("skylakex", 0), variant("zen4", 120),
        variant("sapphirerapids", 250, true),
    };
    std::string chosen;
    CHECK(choice_error(found, "", &chosen).empty());
    CHECK(chosen == "zen4");
    CHECK(choice_error(found, "sapphirerapids", &chosen).empty());
    CHECK(chosen == "sapphirerapids");
    CHECK(choice_error(found, "haswell", &chosen).empty());
    CHECK(chosen == "haswell");
    // a module this CPU cannot run is refused, not loaded (it would die with SIGILL)
    const std::string lacks = choice_error(found, "skylakex");
    CHECK_MSG(lacks.find("lacks instructions") != std::string::npos && lacks.find("skylakex (not on this CPU)") != std::string::npos, lacks);
    const std::string missing = choice_error(found, "power10");
    CHECK_MSG(missing.find("no such CPU backend module") != std::string::npos && missing.find("zen4") != std::string::npos, missing);
    // a module that cannot be opened (a missing dependency, say) says so, and is never chosen
    std::vector<lr::CpuVariant> broken = found;
    broken.push_back(variant("icelake", 0));
    broken.back().error = "libgomp.so.1: cannot open shared object file";
    const std::string opened = choice_error(broken, "icelake");
    CHECK_MSG(opened.find("could not be opened") != std::string::npos && opened.find("libgomp.so.1") != std::string::npos, opened);
    CHECK(choice_error(broken, "", &chosen).empty() && chosen == "zen4");
    // nothing runnable but AMX: no silent fallback to it
    const std::string none = choice_error({variant("skylakex", 0), variant("sapphirerapids", 250, true)}, "");
    CHECK_MSG(none.find("no CPU backend module") != std::string::npos, none);
    CHECK(choice_error({}, "") != "");
}

TEST("cpu variant: on arm64 the best module without SVE, an SVE one only when named") {
    std::vector<lr::CpuVariant> found = {
        variant("armv8.0_1", 10), variant("armv8.2_1", 30), variant("armv8.2_2", 50), variant("armv8.2_3", 70),
        variant("armv8.6_1", 90), variant("armv8.6_2", 110), variant("armv9.2_1", 0), variant("armv9.2_2", 0),
    };
    for (lr::CpuVariant & v : found) v.sve = v.name >= "armv8.2_3"; // as scan_cpu_variants marks ggml's SVE modules
    std::string chosen;
    CHECK(choice_error(found, "", &chosen).empty());
    CHECK_MSG(chosen == "armv8.2_2", chosen);
    CHECK(choice_error(found, "armv8.6_1", &chosen).empty());
    CHECK(chosen == "armv8.6_1");
}

TEST("cpu variant: the modules built beside libggml are found, and this CPU runs at least the baseline") {
    const std::vector<lr::CpuVariant> found = lr::cpu_variants();
    CHECK(!found.empty());
    bool runnable = false;
    for (const lr::CpuVariant & v : found) {
        CHECK(v.path.rfind(lr::ggml_module_dir() + "/", 0) == 0);
        CHECK(v.amx == (v.name == "sapphirerapids"));
        // ggml's SVE modules: the arm64 ones from armv8.2_3 on (armv8.0_1, armv8.2_1, armv8.2_2 have none)
        const bool arm = v.name.rfind("armv", 0) == 0;
        CHECK_MSG(v.sve == (arm && v.name >= "armv8.2_3"), v.name);
        runnable = runnable || v.score > 0;
        // x64 (any x86-64) and the native module make no demands a CPU of the build's kind could miss
        if (v.name == "x64" || v.name == "native" || v.name == "baseline") CHECK_MSG(v.score > 0, v.name);
    }
    CHECK(runnable);
}

TEST("cpu threads: cgroup v2 quota, the tightest on the way up, 'max' is no limit") {
    TempTree t;
    t.write("proc/self/cgroup", "0::/kubepods/pod1/c1");
    t.write("sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "150000 100000");
    t.write("sys/fs/cgroup/kubepods/pod1/cpu.max", "max 100000");
    CHECK(lr::cgroup_cpu_quota(t.root()) == 1.5);
    t.write("sys/fs/cgroup/kubepods/cpu.max", "50000 100000");
    CHECK(lr::cgroup_cpu_quota(t.root()) == 0.5);
    t.write("sys/fs/cgroup/kubepods/cpu.max", "max 100000");
    t.write("sys/fs/cgroup/kubepods/pod1/c1/cpu.max", "max 100000");
    CHECK(lr::cgroup_cpu_quota(t.root()) == 0);
    // a container's own namespace: its cgroup is the mount root ("0::/")
    TempTree ns;
    ns.write("proc/self/cgroup", "0::/");
    ns.write("sys/fs/cgroup/cpu.max", "400000 100000");
    CHECK(lr::cgroup_cpu_quota(ns.root()) == 4);
}

TEST("cpu threads: cgroup v1 quota (cpu,cpuacct and cpu mounts), -1 is no limit, no files no limit") {
    TempTree t;
    t.write("proc/self/cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc");
    t.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000");
    t.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000");
    CHECK(lr::cgroup_cpu_quota(t.root()) == 2.5);
    t.write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1");
    CHECK(lr::cgroup_cpu_quota(t.root()) == 0);
    TempTree cpu_only;
    cpu_only.write("proc/self/cgroup", "3:cpu:/batch");
    cpu_only.write("sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us", "100000");
    cpu_only.write("sys/fs/cgroup/cpu/batch/cpu.cfs_period_us", "100000");
    CHECK(lr::cgroup_cpu_quota(cpu_only.root()) == 1);
    TempTree empty;
    CHECK(lr::cgroup_cpu_quota(empty.root()) == 0);
}

TEST("host memory: MemTotal, capped by the tightest cgroup memory limit (v2 'max' and v1's huge value are none)") {
    TempTree t;
    t.write("proc/meminfo", "MemTotal:       16384000 kB\nMemFree:         1000 kB\n");
    t.write("proc/self/cgroup", "0::/kubepods/pod1/c1");
    CHECK(lr::host_memory(t.root()).physical == 16384000ull * 1024);
    CHECK(lr::host_memory(t.root()).cgroup_limit == 0);
    CHECK(lr::host_memory(t.root()).limit() == 16384000ull * 1024);
    t.write("sys/fs/cgroup/kubepods/pod1/c1/memory.max", "max");
    t.write("sys/fs/cgroup/kubepods/pod1/memory.max", "4294967296");
    t.write("sys/fs/cgroup/kubepods/memory.max", "8589934592");
    CHECK(lr::host_memory(t.root()).cgroup_limit == 4294967296ull);
    CHECK(lr::host_memory(t.root()).limit() == 4294967296ull);
    TempTree v1;
    v1.write("proc/meminfo", "MemTotal:       1024 kB\n");
    v1.write("proc/self/cgroup", "9:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc");
    v1.write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712");
    CHECK(lr::host_memory(v1.root()).limit() == 1024ull * 1024); // "unlimited" loses to the RAM size
    v1.write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "524288");
    CHECK(lr::host_memory(v1.root()).limit() == 524288ull);
    TempTree empty;
    CHECK(lr::host_memory(empty.root()).limit() == 0); // nothing known: no refusal on this ground
    CHECK(lr::host_memory().limit() > 0);              // this machine's own
}

// the message check_host_allocation refuses with (its code must be OUT_OF_MEMORY), or "" when it allows
std::string allocation_error(uint64_t bytes, const lr::HostMemory & m) {
    try {
        lr::check_host_allocation(bytes, "a test buffer", m);
        return "";
    } catch (const lr::Error & e) {
        CHECK(e.code == LR_ERR_OUT_OF_MEMORY);
        return e.what();
    }
}

TEST("host memory available: MemAvailable + SwapFree, capped by a limited cgroup's limit less its working set") {
    TempTree t;
    t.write("proc/meminfo", "MemTotal:       16777216 kB\nMemFree:         1000 kB\nMemAvailable:    8388608 kB\nSwapFree:        1048576 kB\n");
    t.write("proc/self/cgroup", "0::/kubepods/pod1/c1");
    CHECK(lr::host_memory(t.root()).available == 9ull << 30); // 8 GiB available + 1 GiB of swap
    // the pod: 4 GiB, 3 GiB used of which 1 GiB is inactive page cache -> 2 GiB of headroom
    t.write("sys/fs/cgroup/kubepods/pod1/memory.max", "4294967296");
    t.write("sys/fs/cgroup/kubepods/pod1/memory.current", "3221225472");
    t.write("sys/fs/cgroup/kubepods/pod1/memory.stat", "anon 2147483648\nfile 1073741824\nactive_file 0\ninactive_file 1073741824\n");
    CHECK(lr::host_memory(t.root()).available == 2ull << 30);
    // without memory.stat the whole usage counts
    t.write("sys/fs/cgroup/kubepods/pod1/memory.stat", "anon 1\n");
    CHECK(lr::host_memory(t.root()).available == 1ull << 30);
    // a container over its limit has 1 byte of headroom, not "no limit"
    t.write("sys/fs/cgroup/kubepods/pod1/memory.current", "5368709120");
    CHECK(lr::host_memory(t.root()).available == 1);
    // cgroup v1: limit_in_bytes less (usage_in_bytes - total_inactive_file); "unlimited" loses to MemAvailable
    TempTree v1;
    v1.write("proc/meminfo", "MemTotal:       16777216 kB\nMemAvailable:    8388608 kB\n");
    v1.write("proc/self/cgroup", "9:memory:/docker/abc");
    v1.write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712");
    v1.write("sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes", "1073741824");
    CHECK(lr::host_memory(v1.root()).available == 8ull << 30);
    v1.write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "2147483648");
    v1.write("sys/fs/cgroup/memory/docker/abc/memory.stat", "cache 536870912\ntotal_inactive_file 536870912\n");
    CHECK(lr::host_memory(v1.root()).available == 1610612736ull); // 2 GiB - (1 GiB - 0.5 GiB)
    TempTree empty;
    CHECK(lr::host_memory(empty.root()).available == 0); // unknown: no refusal on this ground
    CHECK(lr::host_memory().available > 0);              // this machine's own
}

TEST("check_host_allocation: more than the limit or than is available now is OUT_OF_MEMORY naming both sizes") {
    lr::HostMemory m;
    m.physical = 16ull << 30;
    m.available = 6ull << 30;
    CHECK(allocation_error(6ull << 30, m).empty());
    CHECK(allocation_error(1ull << 20, m).empty());
    const std::string now = allocation_error((6ull << 30) + 1, m);
    CHECK_MSG(now == "a test buffer needs 6.00 GiB of memory; 6.00 GiB is available now (of 16.00 GiB)", now);
    const std::string machine = allocation_error(20ull << 30, m);
    CHECK_MSG(machine == "a test buffer needs 20.00 GiB of memory; this machine has 16.00 GiB", machine);
    m.cgroup_limit = 512ull << 20;
    const std::string container = allocation_error(600ull << 20, m);
    CHECK_MSG(container == "a test buffer needs 600 MiB of memory; this container's memory limit has 512 MiB", container);
    lr::HostMemory unknown; // nothing known: nothing refused
    CHECK(allocation_error(1ull << 50, unknown).empty());
}

TEST("lr_check_host_memory: the C API's check of memory a caller will hold, on a fake machine") {
    TempTree t;
    t.write("proc/meminfo", "MemTotal:       1048576 kB\nMemAvailable:      51200 kB\n");
    setenv("LLAVA_RAD_TEST_HOST_ROOT", t.root().c_str(), 1);
    CHECK(lr_check_host_memory(50ull << 20, "kept logits") == LR_OK);
    CHECK(lr_check_host_memory((50ull << 20) + 1, "kept logits") == LR_ERR_OUT_OF_MEMORY);
    const std::string msg = lr_last_error();
    CHECK_MSG(msg == "kept logits needs 50 MiB of memory; 50 MiB is available now (of 1.00 GiB)", msg);
    CHECK(lr_check_host_memory(2ull << 30, "kept logits") == LR_ERR_OUT_OF_MEMORY);
    CHECK(lr_check_host_memory(1, nullptr) == LR_ERR_INVALID_ARGUMENT);
    unsetenv("LLAVA_RAD_TEST_HOST_ROOT");
}

TEST("cpu threads: thread siblings count once; the default is the cores allowed, capped by the quota, at least 1") {
    TempTree t;
    topology(t, 0, 0, 0);
    topology(t, 1, 0, 0); // cpu1 is cpu0's sibling
    topology(t, 2, 0, 1);
    topology(t, 3, 1, 0); // same core id, other package
    CHECK(lr::physical_cores_in({0, 1, 2, 3}, t.root()) == 3);
    CHECK(lr::physical_cores_in({0, 1}, t.root()) == 1);
    CHECK(lr::physical_cores_in({0, 1, 7}, t.root()) == 2); // cpu7 has no topology: a core of its own

    // this process's real affinity mask, each CPU its own core in the fake tree
    const std::vector<int> allowed = lr::affinity_cpus();
    CHECK(!allowed.empty());
    TempTree own;
    for (int c : allowed) topology(own, c, 0, c);
    lr::CpuBudget b = lr::cpu_budget(own.root());
    CHECK(b.allowed_cpus == (int) allowed.size());
    CHECK(b.physical_cores == (int) allowed.size());
    CHECK(b.quota == 0 && b.threads == (int) allowed.size());
    own.write("proc/self/cgroup", "0::/");
    own.write("sys/fs/cgroup/cpu.max", "150000 100000");
    b = lr::cpu_budget(own.root());
    CHECK(b.quota == 1.5);
    CHECK(b.threads == 1); // 1.5 CPUs: one spinning thread, not two throttled ones
    own.write("sys/fs/cgroup/cpu.max", "20000 100000");
    CHECK(lr::cpu_budget(own.root()).threads == 1);
    // all allowed CPUs siblings of one core: one thread
    TempTree smt;
    for (int c : allowed) topology(smt, c, 0, 0);
    CHECK(lr::cpu_budget(smt.root()).threads == 1);
}
