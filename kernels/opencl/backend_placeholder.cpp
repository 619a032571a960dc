// Temporary until the OpenCL backend lands in this directory.
#include "outpost/kernels/backend.h"
namespace outpost::kernels {
Expected<std::unique_ptr<Backend>> CreateOpenClBackend(const BackendOptions&) {
  return Unavailable("the OpenCL backend is not built yet");
}
}  // namespace outpost::kernels
