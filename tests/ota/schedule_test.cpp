// The agent's timing (ota/schedule.h) and the refused head in the record (ota/state.h), unit.
#include "outpost/ota/schedule.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "outpost/core/hash.h"

#include "outpost/ota/state.h"

namespace outpost::ota {
namespace {

TEST(OtaSchedule, WindowInsideAndAcrossMidnight) {
  const Window always;
  EXPECT_TRUE(InWindow(always, 0));
  EXPECT_TRUE(InWindow(always, 1439));
  EXPECT_EQ(SecondsUntilWindow(always, 12345), 0);

  const Window night{2 * 60, 4 * 60};  // 02:00-04:00
  EXPECT_FALSE(InWindow(night, 119));
  EXPECT_TRUE(InWindow(night, 120));
  EXPECT_TRUE(InWindow(night, 239));
  EXPECT_FALSE(InWindow(night, 240));  // the end is not inside
  EXPECT_EQ(SecondsUntilWindow(night, 3 * 3600), 0);
  EXPECT_EQ(SecondsUntilWindow(night, 1 * 3600 + 59 * 60 + 30), 30);
  EXPECT_EQ(SecondsUntilWindow(night, 5 * 3600), 21 * 3600);  // tomorrow at 02:00

  const Window wrap{23 * 60, 1 * 60};  // 23:00-01:00
  EXPECT_TRUE(InWindow(wrap, 23 * 60));
  EXPECT_TRUE(InWindow(wrap, 0));
  EXPECT_TRUE(InWindow(wrap, 59));
  EXPECT_FALSE(InWindow(wrap, 60));
  EXPECT_FALSE(InWindow(wrap, 22 * 60 + 59));
  EXPECT_EQ(SecondsUntilWindow(wrap, 0), 0);
  EXPECT_EQ(SecondsUntilWindow(wrap, 22 * 3600), 3600);
  EXPECT_EQ(SecondsUntilWindow(wrap, 2 * 3600), 21 * 3600);
}

TEST(OtaSchedule, CheckDelayIsIntervalPlusJitter) {
  EXPECT_EQ(CheckDelayS(3600, 300, 0.0), 3600);
  EXPECT_EQ(CheckDelayS(3600, 300, 0.5), 3750);
  EXPECT_EQ(CheckDelayS(3600, 0, 0.9), 3600);
  EXPECT_LE(CheckDelayS(3600, 300, 1.5), 3900);  // u is clamped
}

TEST(OtaSchedule, RetryDelayDoublesWithinHalfToFullAndIsCapped) {
  // d = 30 * 2^(n-1), capped at 1800; drawn from [d/2, d).
  EXPECT_EQ(RetryDelayS(1, 30, 1800, 0.0), 15);
  EXPECT_EQ(RetryDelayS(1, 30, 1800, 1.0), 30);
  EXPECT_EQ(RetryDelayS(2, 30, 1800, 0.0), 30);
  EXPECT_EQ(RetryDelayS(3, 30, 1800, 0.5), 90);  // d = 120: 60 + 30
  EXPECT_EQ(RetryDelayS(7, 30, 1800, 0.0), 900);  // 30 * 64 = 1920 -> 1800
  EXPECT_EQ(RetryDelayS(40, 30, 1800, 1.0), 1800);
  EXPECT_EQ(RetryDelayS(0, 30, 1800, 1.0), 30);  // n < 1 counts as the first retry
}

TEST(OtaRecord, RefusedCommitCarriesOverANewCycleAndIsOptionalInTheFile) {
  Record r;
  r.state = State::kFailed;
  r.target_commit = std::string(64, 'b');
  r.refused_commit = std::string(64, 'b');
  r.reason = "refused: downgrade";
  ASSERT_TRUE(Transition(r, State::kChecking, "checking").ok());
  EXPECT_EQ(r.refused_commit, std::string(64, 'b'));
  EXPECT_EQ(r.target_commit, "");  // nothing else of the cycle
  auto back = Parse(Serialize(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->refused_commit, std::string(64, 'b'));

  // A record written before the field existed: no refused_commit key at all.
  nlohmann::json body = nlohmann::json::parse(RecordJson(Record{}));
  ASSERT_TRUE(body.contains("refused_commit"));
  body.erase("refused_commit");
  const nlohmann::json doc = {{"format", "outpost-ota-state/1"},
                              {"record", body},
                              {"fnv1a64", Hex64(Fnv1a64(body.dump()))}};
  auto old = Parse(doc.dump());
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->refused_commit, "");
  EXPECT_EQ(old->state, State::kIdle);
}

}  // namespace
}  // namespace outpost::ota
