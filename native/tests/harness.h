// A minimal test harness for the C++ tests (llava-rad-tests): TEST(name) { CHECK(...); }.
// Each test file registers its tests; test_main.cpp runs them (optionally filtered by a substring)
// and prints one line per test plus "N passed, N failed".
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace lrtest {

struct Case { const char * name; std::function<void()> fn; };
std::vector<Case> & registry();
struct Register { Register(const char * name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); } };
struct Failure { std::string message; };
struct Skipped { std::string reason; }; // thrown by SKIP(): counted and printed as skipped, never as passed
// argv[1..] after the filter: extra arguments a test may read (e.g. a fixture path)
const std::vector<std::string> & args();

} // namespace lrtest

#define LRT_CAT2(a, b) a##b
#define LRT_CAT(a, b) LRT_CAT2(a, b)
#define TEST(name) \
    static void LRT_CAT(lrt_fn_, __LINE__)(); \
    static ::lrtest::Register LRT_CAT(lrt_reg_, __LINE__)(name, LRT_CAT(lrt_fn_, __LINE__)); \
    static void LRT_CAT(lrt_fn_, __LINE__)()
#define SKIP(reason) throw ::lrtest::Skipped{reason}
#define CHECK(cond) do { if (!(cond)) throw ::lrtest::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": CHECK(" #cond ") failed"}; } while (0)
#define CHECK_MSG(cond, msg) do { if (!(cond)) throw ::lrtest::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + std::string(msg)}; } while (0)
