// Names the calling thread, so that `top -H`, `ps -L`, perf and core dumps tell outpostd's threads
// apart (I/O loops, model workers, the engine's pool, telemetry). Linux keeps 15 characters; a
// longer name is cut.
#pragma once

#include <string_view>

namespace outpost {

void SetThreadName(std::string_view name);

}  // namespace outpost
