#include "outpost/core/log.h"

#include <cstdlib>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace outpost {

void InitLogging(const char* default_level) {
  const char* env = std::getenv("OUTPOST_LOG_LEVEL");
  auto level = spdlog::level::from_str(env ? env : default_level);
  auto logger = spdlog::stderr_color_mt("outpost");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace outpost
