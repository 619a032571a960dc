// The update agent end to end, with no boot: a fake sysroot deployed at v1, releases built and
// GPG-signed by outpost image served over loopback HTTP, the agent's run-once steps, a reboot
// simulated by a new boot id and the real outpostd restarted from the new default deployment's
// checkout (its model bundles). `ostree admin status` is the independent view of the boot order.
#include "outpost/ota/agent.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent_fixture.h"

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using testing::Cmd;
using ::testing::HasSubstr;
using testing::Sh;

TEST_F(OtaAgentTest, ReleaseWhoseModelGivesWrongAnswersIsRolledBack) {
  ASSERT_NO_FATAL_FAILURE(Boot());  // on v1
  std::string v2 = Build(Release("2.0", 1700000100, Golden("wrong", /*wrong=*/true)));
  ASSERT_EQ(v2.size(), 64u);

  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(State().state, State::kRebooting);
  EXPECT_EQ(State().target_commit, v2);
  EXPECT_EQ(State().target_version, "2.0");
  EXPECT_EQ(State().previous_commit, v1_);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));

  ASSERT_NO_FATAL_FAILURE(Boot());  // into v2: its outpostd, its bundle with the wrong golden
  cfg_.gate_deadline_ms = 8000;     // the gate waits this long for a readiness that never comes
  s = RunOnce(cfg_);
  // Booted into v2, the gate failed: v1 is the default again, the caller reboots into it.
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  Record r = State();
  EXPECT_EQ(r.state, State::kRolledBack);
  EXPECT_THAT(r.reason, HasSubstr("health gate failed"));
  // outpostd runs the bundle's golden check itself when it loads a model and does not serve a
  // model that fails it: the gate finds the daemon never ready and iris not served.
  EXPECT_THAT(r.reason, HasSubstr("outpostd is not ready"));
  EXPECT_THAT(r.reason, HasSubstr("model 'iris'"));
  EXPECT_THAT(daemon_->proc->Stderr(), HasSubstr("golden 1234.5"))
      << "v2's outpostd did not refuse its model";
  EXPECT_EQ(r.boot_count, 1u);
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});

  // Back on v1: the rolled-back head is not tried again.
  ASSERT_NO_FATAL_FAILURE(Boot());
  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;
  EXPECT_THAT(s.message, HasSubstr("was rolled back"));
  EXPECT_EQ(State().state, State::kIdle);
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
}

TEST_F(OtaAgentTest, GoodReleaseIsCommitted) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;  // nothing new yet
  EXPECT_THAT(s.message, HasSubstr("up to date"));

  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  s = RunOnce(cfg_);
  ASSERT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));

  // A second step before the reboot only asks for it again (nothing deployed twice).
  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));

  ASSERT_NO_FATAL_FAILURE(Boot());
  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kCommitted) << s.message;
  Record r = State();
  EXPECT_EQ(r.state, State::kCommitted);
  EXPECT_EQ(r.target_commit, v2);
  EXPECT_EQ(r.gate_attempts, 1u);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));

  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;
  EXPECT_THAT(s.message, HasSubstr("up to date at " + v2));
}

}  // namespace
}  // namespace outpost::ota

namespace outpost::ota {
namespace {

// Killed after Deploy() wrote v2 but before "staged" reached the disk: the next step verifies
// again, finds v2 already the default and does not deploy it a second time.
TEST_F(OtaAgentTest, StepInterruptedAfterDeployDoesNotDeployTwice) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_EQ(RunOnce(cfg_).outcome, Outcome::kRebootRequested);
  Record r = State();
  r.state = State::kVerifying;  // the record as the killed step left it
  r.target_version.clear();
  ASSERT_TRUE(StateFile(cfg_.state_dir).Save(r).ok());

  StepResult s = RunOnce(cfg_);  // same boot
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(State().state, State::kRebooting);
  EXPECT_EQ(State().target_version, "2.0");
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
}

// Power cut while the health gate runs, boot after boot: each boot into the target left the record
// in verifying-after-boot (as a step killed mid-gate writes it). The boot after the last allowed
// one rolls back without running the gate again, and says why.
TEST_F(OtaAgentTest, BootLoopWithoutAVerdictIsRolledBack) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_EQ(RunOnce(cfg_).outcome, Outcome::kRebootRequested);
  ASSERT_EQ(cfg_.limits.max_boots, 3u);
  for (uint32_t boot = 1; boot <= cfg_.limits.max_boots; ++boot) {
    ASSERT_NO_FATAL_FAILURE(Boot());  // into v2
    ASSERT_EQ(cfg_.booted_commit, v2);
    Record r = State();
    r.state = State::kVerifyingAfterBoot;
    r.boot_id = cfg_.boot_id;
    r.boot_count = boot;
    r.gate_attempts = boot;
    ASSERT_TRUE(StateFile(cfg_.state_dir).Save(r).ok());
  }
  ASSERT_NO_FATAL_FAILURE(Boot());  // one boot too many
  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;  // back into v1
  Record r = State();
  EXPECT_EQ(r.state, State::kRolledBack);
  EXPECT_THAT(r.reason, HasSubstr("booted 4 times into the target without a health verdict"));
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
}

// A state file torn or overwritten (bad sector, hand edit): the step moves it aside, keeps the
// running deployment, runs the health gate on it, and the next step works from a fresh file.
TEST_F(OtaAgentTest, CorruptStateFileIsMovedAsideAndTheRunningDeploymentChecked) {
  ASSERT_NO_FATAL_FAILURE(Boot());  // on v1
  const std::string state = cfg_.state_dir + "/state.json";
  fs::create_directories(cfg_.state_dir);
  testing::WriteFile(state, "{\"format\": \"outpost-ota-state/1\", \"rec");  // torn
  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;
  EXPECT_THAT(s.message, HasSubstr("state file unusable"));
  EXPECT_THAT(s.message, HasSubstr("the running deployment passes"));
  EXPECT_TRUE(fs::exists(state + ".corrupt"));
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
  s = RunOnce(cfg_);  // a sound file again: an ordinary check
  EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;
  EXPECT_THAT(s.message, HasSubstr("up to date"));
}

// The same step through `outpost ota run-once`: exit 100 asks for the reboot, 0 after the gate;
// `outpost ota status --json` reads the committed record.
TEST_F(OtaAgentTest, RunOnceCliCommitsAGoodRelease) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  auto run_once = [&] {
    return Sh(std::string(OUTPOST_CLI) + " ota run-once --state-dir " + cfg_.state_dir +
              " --sysroot " + sysroot_ + " --remote " + cfg_.remote_url +
              " --ref outpost/test/x86_64 --trusted-key " + root_ + "/Release.asc" +
              " --outpostd 127.0.0.1:" + std::to_string(cfg_.outpostd_port) +
              " --gate-runs 3 --rate-limit-kbps 100000 --boot-id " + cfg_.boot_id +
              " --booted-commit " + cfg_.booted_commit + " 2>/dev/null");
  };
  Cmd c = run_once();
  ASSERT_EQ(c.rc, 100) << c.out;
  auto j = nlohmann::json::parse(c.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << c.out;
  EXPECT_EQ(j["outcome"], "reboot-requested");
  EXPECT_EQ(j["record"]["state"], "rebooting");
  EXPECT_EQ(j["record"]["target_commit"], v2);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));

  ASSERT_NO_FATAL_FAILURE(Boot());
  c = run_once();
  ASSERT_EQ(c.rc, 0) << c.out;
  j = nlohmann::json::parse(c.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << c.out;
  EXPECT_EQ(j["outcome"], "committed");
  c = Sh(std::string(OUTPOST_CLI) + " ota status --json --state-dir " + cfg_.state_dir);
  ASSERT_EQ(c.rc, 0) << c.out;
  j = nlohmann::json::parse(c.out, nullptr, false);
  EXPECT_EQ(j["state"], "committed") << c.out;
  EXPECT_EQ(j["target_commit"], v2);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
}

}  // namespace
}  // namespace outpost::ota
