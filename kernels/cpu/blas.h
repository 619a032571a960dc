// OpenBLAS, loaded at run time so that its kernel set can be chosen for the CPU (see blas.cpp).
#pragma once

#include <cblas.h>

#include <string>

namespace outpost::kernels::cpu {

struct Blas {
  decltype(&cblas_sgemm) sgemm = nullptr;
  decltype(&cblas_dgemm) dgemm = nullptr;
  std::string core;   // OpenBLAS's kernel set ("SkylakeX", "Haswell", ...)
  std::string error;  // why it could not be loaded (then sgemm/dgemm are null)
};

// Loads OpenBLAS once (thread-safe), single-threaded: it runs inside our pool's partitions.
const Blas& GetBlas();

}  // namespace outpost::kernels::cpu
