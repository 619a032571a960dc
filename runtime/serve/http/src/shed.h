// The overload rule of the HTTP loops (ServerOptions::shed_target_us / shed_interval_ms), kept
// pure so that its timeline can be tested without sockets: it sees each request's read delay and
// says whether the request should be refused.
#pragma once

#include <chrono>
#include <cstdint>

namespace outpost::serve::http {

class ShedRule {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Change { kNone, kEntered, kLeft };

  ShedRule(int64_t target_us, int interval_ms) : target_us_(target_us), interval_(interval_ms) {}

  // One request read at `now` after waiting `delay_us` in its socket, with `backlog` other
  // ready items in the loop. Returns whether to refuse it; `change` says whether an overload
  // episode began or ended at this request (for the log and the episode counter), and
  // `window_min_us` the smallest delay of the interval that just closed.
  bool Observe(Clock::time_point now, int64_t delay_us, int backlog, Change* change,
               int64_t* window_min_us) {
    *change = Change::kNone;
    if (now >= window_end_) {
      // CoDel's test for a standing queue: one that never drained below the target for a whole
      // interval is overload; one that did was a burst, which the queue is there to absorb.
      // Once in an episode, refusing what waits past the target drains the queue below it, so
      // the episode ends only after an interval in which no request waited past the target (an
      // on/off rule on the minimum lets the queue rebuild for an interval each time it drains).
      const bool was = overloaded_;
      overloaded_ = window_min_us_ > target_us_ || (was && window_over_ > 0);
      if (overloaded_ != was) *change = overloaded_ ? Change::kEntered : Change::kLeft;
      *window_min_us = window_min_us_;
      window_min_us_ = delay_us;
      window_over_ = 0;
      window_end_ = now + interval_;
    } else if (window_min_us_ < 0 || delay_us < window_min_us_) {
      window_min_us_ = delay_us;
    }
    if (delay_us > target_us_) ++window_over_;
    // Only with other work ready in the loop: a request that waited while nothing else did (the
    // thread starved of CPU, a lone client) gains nothing from refusing it.
    return overloaded_ && delay_us > target_us_ && backlog > 0;
  }

  bool overloaded() const { return overloaded_; }

 private:
  int64_t target_us_;
  std::chrono::milliseconds interval_;
  Clock::time_point window_end_{};
  int64_t window_min_us_ = -1;  // smallest delay in the current interval (-1: none yet)
  int64_t window_over_ = 0;     // requests in the current interval that waited past the target
  bool overloaded_ = false;
};

}  // namespace outpost::serve::http
