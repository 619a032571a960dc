// Measures the machine's FP32 FMA peak (GFLOP/s) with AVX2 and, when present, AVX-512, on 1 and
// 2 threads: 12 independent FMA chains that never touch memory. The reference for the GFLOP/s
// the kernels reach (bench/README.md). Build: g++ -O2 -std=c++20 -pthread bench/fma_peak.cpp.
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

constexpr long kIters = 20'000'000;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One function per ISA (a template would not inherit the target attribute).
#define OUTPOST_FMA_PEAK(name, target_str, vec, lanes, set, fma)                     \
  __attribute__((target(target_str))) double name() {                                \
    vec a0 = set(1.f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, \
        a8 = a0, a9 = a0, a10 = a0, a11 = a0;                                        \
    const vec m = set(0.999f);                                                       \
    const auto t0 = std::chrono::steady_clock::now();                                \
    for (long i = 0; i < kIters; ++i) {                                              \
      a0 = fma(a0, m, m), a1 = fma(a1, m, m), a2 = fma(a2, m, m), a3 = fma(a3, m, m); \
      a4 = fma(a4, m, m), a5 = fma(a5, m, m), a6 = fma(a6, m, m), a7 = fma(a7, m, m); \
      a8 = fma(a8, m, m), a9 = fma(a9, m, m), a10 = fma(a10, m, m);                  \
      a11 = fma(a11, m, m);                                                          \
      __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5)); \
    }                                                                                \
    const double s = Seconds(t0);                                                    \
    volatile float sink = 0;                                                         \
    for (vec v : {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11})                \
      sink = sink + reinterpret_cast<const float*>(&v)[0];                           \
    return 12.0 * kIters * (lanes) * 2 / s / 1e9;                                  \
  }
OUTPOST_FMA_PEAK(Avx2, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps)
OUTPOST_FMA_PEAK(Avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps)

double OnThreads(int n, double (*fn)()) {
  std::vector<double> r(n);
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i) ts.emplace_back([&, i] { r[i] = fn(); });
  for (auto& t : ts) t.join();
  double sum = 0;
  for (double x : r) sum += x;
  return sum;
}

}  // namespace

int main() {
  __builtin_cpu_init();
  std::printf("{\"avx2_1t\": %.1f, \"avx2_2t\": %.1f", OnThreads(1, Avx2), OnThreads(2, Avx2));
  if (__builtin_cpu_supports("avx512f"))
    std::printf(", \"avx512_1t\": %.1f, \"avx512_2t\": %.1f", OnThreads(1, Avx512),
                OnThreads(2, Avx512));
  std::printf("}\n");
}
