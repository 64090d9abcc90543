// Included first in every C++ file of the engine, the addon, the CLI and the tests, and in ggml's CUDA module
// (CMakeLists.txt: -include, nvcc --pre-include).
//
// GCC 12's headers bind std::condition_variable::wait(std::unique_lock<std::mutex>&) to a symbol version new in
// GCC 12's libstdc++ (GLIBCXX_3.4.30); it is the only thing the prebuilt binaries need from a libstdc++ newer
// than GCC 11's, which RHEL 9 and Amazon Linux 2023 have. Binding it to the version every libstdc++ since
// GCC 4.4 exports (GLIBCXX_3.4.11) lets the prebuilt packages load there. The two symbols are the same wait but
// for exception specification: the newer one lets a pthread cancellation unwind through it, and this engine never
// cancels a thread.
#pragma once
// Host code only: nvcc's device passes (__CUDA_ARCH__) see it too, through --pre-include.
#if defined(__cplusplus) && defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__)) && !defined(__CUDA_ARCH__)
#include <cstddef> // defines _GLIBCXX_RELEASE when the C++ library is libstdc++
#if defined(_GLIBCXX_RELEASE) && _GLIBCXX_RELEASE >= 12
__asm__(".symver _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE,"
        "_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE@GLIBCXX_3.4.11");
#endif
#endif
