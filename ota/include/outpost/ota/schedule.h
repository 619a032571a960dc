// The update agent's timing as pure functions (no clock, no randomness of their own): the
// maintenance window, the check interval with jitter, the retry backoff. `u` arguments are
// uniform draws in [0, 1) supplied by the caller. See ota/README.md, "The agent daemon".
#pragma once

namespace outpost::ota {

// A daily window in local minutes after 00:00; [start, end), wrapping past midnight when
// end < start. start < 0: no window (any time).
struct Window {
  int start_min = -1;
  int end_min = -1;
};

bool InWindow(const Window& w, int minute_of_day);

// Seconds from `second_of_day` (local) until the window next opens; 0 when it is open now.
int SecondsUntilWindow(const Window& w, int second_of_day);

// The delay before the next check: interval + jitter * u.
double CheckDelayS(double interval_s, double jitter_s, double u);

// The delay before retry n (1-based): d = min(base * 2^(n-1), max), drawn from [d/2, d).
double RetryDelayS(int n, double base_s, double max_s, double u);

}  // namespace outpost::ota
