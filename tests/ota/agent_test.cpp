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

#include "common/signing_keys.h"
#include "fake_sysroot.h"
#include "file_server.h"
#include "outpost/image/image.h"
#include "outpostd/test_util.h"

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using testing::Cmd;
using ::testing::HasSubstr;
using testing::Sh;

class OtaAgentTest : public testing::FakeSysrootTest {
 protected:
  static void SetUpTestSuite() { SetUpSuite("otag"); }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FakeSysrootTest::SetUp());
    cfg_.sysroot = {sysroot_, "outpost", "outpost", "outpost/test/x86_64", {release_fpr_}};
    cfg_.state_dir = dir_ + "/var-lib-outpost-ota";
    cfg_.remote_url = server_->Url() + "/repo";
    cfg_.key_files = {root_ + "/Release.asc"};
    cfg_.gate_runs = 3;
    cfg_.gate_deadline_ms = 30000;

    // v1, good: iris with ONNX Runtime's golden output, deployed by hand (the factory image).
    v1_ = Build(Release("1.0", 1700000000, Golden("good", /*wrong=*/false)));
    ASSERT_EQ(v1_.size(), 64u);
    ASSERT_TRUE(AddRemote(cfg_.sysroot, cfg_.remote_url, cfg_.key_files).ok());
    auto p = Pull(cfg_.sysroot);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_TRUE(Deploy(cfg_.sysroot, v1_).ok());
    ASSERT_EQ(StatusCommits(), std::vector<std::string>{v1_});
  }
  void TearDown() override {
    if (HasFailure() && daemon_ && daemon_->proc)
      std::fprintf(stderr, "---- outpostd stderr ----\n%s%s\n", logs_.c_str(),
                   daemon_->proc->Stderr().c_str());
    daemon_.reset();
    FakeSysrootTest::TearDown();
  }

  // An iris manifest whose golden output is ORT's, or ORT's with one value changed: a release
  // whose model does not give the answers its bundle promises.
  std::string Golden(const std::string& tag, bool wrong) {
    std::string out = testing::kModelsDir + "/golden/iris_mlp/output_0.npy";
    if (wrong) {
      std::string w = dir_ + "/" + tag + "_output.npy";
      fs::copy_file(out, w, fs::copy_options::overwrite_existing);
      std::fstream f(w, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-4, std::ios::end);
      float big = 1234.5f;
      f.write(reinterpret_cast<const char*>(&big), 4);
      out = w;
    }
    std::string p = dir_ + "/manifests-" + tag + "/iris.yaml";
    testing::WriteFile(
        p,
        testing::Manifest("iris", "iris_mlp.onnx",
                          {{"golden-input", testing::kModelsDir + "/golden/iris_mlp/input_0.npy"},
                           {"golden-output", out},
                           {"threads", "1"}}));
    return p;
  }

  // A release with the iris bundle of `manifest` (the outpostd in it is a script: the test runs
  // build/bin/outpostd on the checkout).
  image::BuildOptions Release(const std::string& version, int64_t ts, const std::string& manifest) {
    image::BuildOptions o = FakeSysrootTest::Release(version, ts);
    o.manifests = {manifest};
    o.model_dir = testing::kModelsDir;
    return o;
  }

  // "Boots" the default deployment: a new boot id, its commit as the booted one, and the real
  // outpostd started from the default deployment's checkout (its iris bundle: manifest, model,
  // goldens), as systemd would start it there.
  void Boot() {
    if (daemon_ && daemon_->proc) logs_ += daemon_->proc->Stderr();
    daemon_.reset();
    cfg_.boot_id = "boot-" + std::to_string(++boots_);
    auto list = ListDeployments(cfg_.sysroot);
    ASSERT_TRUE(list.ok() && !list->empty());
    cfg_.booted_commit = (*list)[0].commit;
    std::string bundle = (*list)[0].path + "/usr/lib/outpost/models/iris";
    ASSERT_TRUE(fs::exists(bundle + "/manifest.yaml")) << bundle;
    std::string err;
    daemon_ = box_.Start({}, &err, bundle, bundle);
    ASSERT_TRUE(daemon_) << err;
    cfg_.outpostd_port = daemon_->port;
  }

  Record State() {
    auto l = StateFile(cfg_.state_dir).Load();
    EXPECT_TRUE(l.ok() && l->has_value());
    return l.ok() && l->has_value() ? **l : Record{};
  }

  std::string v1_;
  AgentConfig cfg_;
  testing::Sandbox box_;
  std::unique_ptr<testing::Daemon> daemon_;
  int boots_ = 0;
  std::string logs_;  // stderr of the daemons of earlier boots
};

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
              " --gate-runs 3 --boot-id " + cfg_.boot_id + " --booted-commit " +
              cfg_.booted_commit + " 2>/dev/null");
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
