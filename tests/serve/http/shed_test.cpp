// The HTTP loops' overload rule (runtime/serve/http/src/shed.h) on synthetic timelines: target
// 500 µs, interval 10 ms, one request every 100 µs unless a test says otherwise.
#include "shed.h"

#include <gtest/gtest.h>

namespace outpost::serve::http {
namespace {

using namespace std::chrono_literals;

struct Timeline {
  ShedRule rule{500, 10};
  ShedRule::Clock::time_point now{};  // the epoch: the first request opens the first interval
  int entered = 0, left = 0;
  // Feeds `n` requests 100 µs apart with the given delay and backlog; returns how many were shed.
  int Feed(int n, int64_t delay_us, int backlog = 4) {
    int shed = 0;
    for (int i = 0; i < n; ++i) {
      ShedRule::Change c;
      int64_t min_us = 0;
      shed += rule.Observe(now, delay_us, backlog, &c, &min_us) ? 1 : 0;
      entered += c == ShedRule::Change::kEntered;
      left += c == ShedRule::Change::kLeft;
      now += 100us;
    }
    return shed;
  }
};

TEST(ShedRule, ABurstShorterThanAnIntervalIsAbsorbed) {
  Timeline t;
  EXPECT_EQ(t.Feed(100, 50), 0);    // 10 ms quiet
  EXPECT_EQ(t.Feed(50, 3000), 0);   // 5 ms of long waits: the interval's minimum stays 50 µs
  EXPECT_EQ(t.Feed(100, 50), 0);
  EXPECT_EQ(t.entered, 0);
  EXPECT_FALSE(t.rule.overloaded());
}

TEST(ShedRule, AStandingQueueStartsAnEpisodeAndOnlyLateRequestsAreRefused) {
  Timeline t;
  EXPECT_EQ(t.Feed(100, 2000), 0);  // the first interval: nothing known yet
  EXPECT_EQ(t.Feed(1, 2000), 1);    // its minimum was over the target: overload from here
  EXPECT_EQ(t.entered, 1);
  EXPECT_TRUE(t.rule.overloaded());
  EXPECT_EQ(t.Feed(10, 400), 0);    // under the target: served
  EXPECT_EQ(t.Feed(10, 600), 10);   // over it: refused
  EXPECT_EQ(t.Feed(10, 600, /*backlog=*/0), 0);  // nothing else ready: refusing gains nothing
}

// The case the rule is for: refusing keeps the delays near the target, so most intervals now
// have a minimum under it. The episode goes on as long as requests still arrive late.
TEST(ShedRule, AnEpisodeLastsWhileRequestsStillWaitPastTheTarget) {
  Timeline t;
  t.Feed(101, 2000);
  ASSERT_TRUE(t.rule.overloaded());
  int refused = 0;
  for (int k = 0; k < 20; ++k) {  // 200 ms: each 1 ms, nine early requests and one late
    t.Feed(9, 100);
    refused += t.Feed(1, 900);
  }
  EXPECT_EQ(refused, 20);
  EXPECT_TRUE(t.rule.overloaded());
  EXPECT_EQ(t.entered, 1);
  EXPECT_EQ(t.left, 0);
}

TEST(ShedRule, AnEpisodeEndsAfterAnIntervalWithNoLateRequest) {
  Timeline t;
  t.Feed(101, 2000);
  ASSERT_TRUE(t.rule.overloaded());
  t.Feed(99, 100);  // the rest of the interval that began with a late request
  EXPECT_TRUE(t.rule.overloaded());
  t.Feed(101, 100);  // a whole interval on time, and the first request after it
  EXPECT_FALSE(t.rule.overloaded());
  EXPECT_EQ(t.left, 1);
  EXPECT_EQ(t.Feed(30, 900), 0);  // a late request after the episode is not refused
}

}  // namespace
}  // namespace outpost::serve::http
