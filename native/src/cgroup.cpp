#include "cgroup.h"

#include <fstream>
#include <sstream>

namespace lr {

namespace {

// the tightest limit from mount/path up to mount itself
double tightest_on_path(const std::string & mount, std::string path, double (*read)(const std::string &)) {
    double best = 0;
    while (true) {
        const double q = read(mount + path);
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

bool read_first_line(const std::string & path, std::string & line) {
    std::ifstream f(path);
    return f.is_open() && static_cast<bool>(std::getline(f, line));
}

bool read_long(const std::string & path, long long & v) {
    std::string line;
    if (!read_first_line(path, line)) return false;
    std::istringstream in(line);
    return static_cast<bool>(in >> v);
}

double cgroup_tightest(const std::string & root, const CgroupLimit & limit) {
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
            take(tightest_on_path(root + "/sys/fs/cgroup", path, limit.read_v2));
        } else if (has_controller(controllers, limit.v1_controller)) {
            for (const char * const * mount = limit.v1_mounts; *mount; ++mount) {
                take(tightest_on_path(root + *mount, path, limit.read_v1));
            }
        }
    }
    return best;
}

} // namespace lr
