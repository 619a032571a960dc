// Loads OpenBLAS with dlopen and picks its kernel set before it initializes.
//
// OpenBLAS 0.3.21 (Debian 12) chooses its kernels from the CPU model it recognizes when the
// library is loaded. CPUs newer than the library (AMD Zen 4/5 here) are taken for "Haswell" and
// get the AVX2 kernels even though they have AVX-512: measured here, sgemm 256x3136x1152 on one
// thread ran at 104 GFLOP/s with the Haswell kernels and 182-191 with SkylakeX/Cooperlake. The
// only way to choose is the OPENBLAS_CORETYPE variable, read once when the library initializes,
// so we load it ourselves after setting it:
//   - OUTPOST_BLAS_CORETYPE, when set, is passed on as is (the operator's explicit choice);
//   - else, on a CPU with the AVX-512 subsets the SkylakeX/Cooperlake kernels use, we choose
//     those, overriding an inherited OPENBLAS_CORETYPE (this machine's image exports
//     OPENBLAS_CORETYPE=Haswell for every process), with a log line saying so;
//   - else OpenBLAS decides as usual.
// The kernel set in use is logged and exported as the metric outpost_cpu_blas_info.
#include "cpu/blas.h"

#include <dlfcn.h>
#include <strings.h>

#include <cstdlib>
#include <mutex>

#include "outpost/core/log.h"
#include "outpost/core/metrics.h"

namespace outpost::kernels::cpu {
namespace {

const char* AutoCoreType() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512cd");
  if (!avx512) return nullptr;
  return __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
}

Blas Load() {
  Blas b;
  const char* forced = std::getenv("OUTPOST_BLAS_CORETYPE");
  const char* inherited = std::getenv("OPENBLAS_CORETYPE");
  const char* core = forced ? forced : AutoCoreType();
  if (core) {
    if (!forced && inherited && std::string(inherited) != core)
      OP_LOG_INFO(
          "OPENBLAS_CORETYPE={} overridden by {}: the CPU has AVX-512 (set "
          "OUTPOST_BLAS_CORETYPE to choose)",
          inherited, core);
    setenv("OPENBLAS_CORETYPE", core, 1);
  }
  void* h = nullptr;
  for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
    h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h) break;
  }
  if (!h) {
    b.error = std::string("cannot load OpenBLAS: ") + dlerror();
    return b;
  }
  b.sgemm = reinterpret_cast<decltype(b.sgemm)>(dlsym(h, "cblas_sgemm"));
  b.dgemm = reinterpret_cast<decltype(b.dgemm)>(dlsym(h, "cblas_dgemm"));
  auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads"));
  auto corename = reinterpret_cast<char* (*)()>(dlsym(h, "openblas_get_corename"));
  if (!b.sgemm || !b.dgemm || !set_threads) {
    b.sgemm = nullptr, b.dgemm = nullptr;
    b.error = "the loaded OpenBLAS lacks cblas_sgemm/cblas_dgemm/openblas_set_num_threads";
    return b;
  }
  set_threads(1);
  b.core = corename ? corename() : "unknown";
  // OpenBLAS ignores a kernel-set name it does not know and detects the CPU instead.
  if (forced && strcasecmp(forced, b.core.c_str()) != 0)
    OP_LOG_WARN("OUTPOST_BLAS_CORETYPE={} is not a kernel set OpenBLAS knows; it chose {}", forced,
                b.core);
  return b;
}

}  // namespace

const Blas& GetBlas() {
  static const Blas blas = [] {
    Blas b = Load();
    auto& m = MetricsRegistry::Global();
    if (b.sgemm) {
      OP_LOG_INFO("OpenBLAS kernels: {}", b.core);
      m.GetGauge("outpost_cpu_blas_info", "OpenBLAS kernel set in use (value 1)",
                 {{"core", b.core}})
          .Set(1);
    } else {
      OP_LOG_ERROR("{}; GEMM and convolution run on the slow reference loops", b.error);
      m.GetGauge("outpost_cpu_blas_info", "OpenBLAS kernel set in use (value 1)",
                 {{"core", "unavailable"}})
          .Set(1);
    }
    return b;
  }();
  return blas;
}

}  // namespace outpost::kernels::cpu
