// The agent's timing (ota/schedule.h).
#include "outpost/ota/schedule.h"

#include <algorithm>
#include <cmath>

namespace outpost::ota {

bool InWindow(const Window& w, int minute_of_day) {
  if (w.start_min < 0) return true;
  if (w.start_min < w.end_min) return minute_of_day >= w.start_min && minute_of_day < w.end_min;
  return minute_of_day >= w.start_min || minute_of_day < w.end_min;  // wraps past midnight
}

int SecondsUntilWindow(const Window& w, int second_of_day) {
  if (InWindow(w, second_of_day / 60)) return 0;
  const int start_s = w.start_min * 60;
  const int day = 24 * 3600;
  return ((start_s - second_of_day) % day + day) % day;
}

double CheckDelayS(double interval_s, double jitter_s, double u) {
  return interval_s + jitter_s * std::clamp(u, 0.0, 1.0);
}

double RetryDelayS(int n, double base_s, double max_s, double u) {
  const double d = std::min(max_s, base_s * std::ldexp(1.0, std::clamp(n, 1, 62) - 1));
  return d / 2 + d / 2 * std::clamp(u, 0.0, 1.0);
}

}  // namespace outpost::ota
