// Logging: spdlog, one process-wide logger named "outpost".
#pragma once

#include <spdlog/spdlog.h>

namespace outpost {
// Level from OUTPOST_LOG_LEVEL (trace|debug|info|warn|error|off), default warn for tools.
void InitLogging(const char* default_level = "warn");
}  // namespace outpost

#define OP_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define OP_LOG_INFO(...) spdlog::info(__VA_ARGS__)
#define OP_LOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define OP_LOG_ERROR(...) spdlog::error(__VA_ARGS__)
