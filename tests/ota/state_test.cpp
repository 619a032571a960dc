// The OTA state machine as pure code: names, the transitions table, the state file (atomic
// writes, torn and corrupt files refused) and the resume decision after a crash in every state,
// driven through a simulated device for the kill-at-every-state matrix.
#include "outpost/ota/state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kV1(64, '1'), kV2(64, '2');

std::vector<State> AllStates() {
  return {State::kIdle,
          State::kChecking,
          State::kDownloading,
          State::kVerifying,
          State::kStaged,
          State::kRebooting,
          State::kVerifyingAfterBoot,
          State::kCommitted,
          State::kRollingBack,
          State::kRolledBack,
          State::kFailed};
}

TEST(OtaState, NamesAreTheIssueNames) {
  // The names the issue fixes (and `outpost ota status --json` prints).
  std::vector<std::string> want = {"idle",
                                   "checking",
                                   "downloading",
                                   "verifying",
                                   "staged",
                                   "rebooting",
                                   "verifying-after-boot",
                                   "committed",
                                   "rolling-back",
                                   "rolled-back",
                                   "failed"};
  auto all = AllStates();
  ASSERT_EQ(all.size(), want.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(StateName(all[i]), want[i]);
    EXPECT_EQ(StateFromName(want[i]), all[i]);
  }
  EXPECT_EQ(StateFromName("Staged"), std::nullopt);
}

TEST(OtaState, TransitionsTable) {
  using S = State;
  // The happy path and the rollback path, each step allowed.
  std::vector<S> happy = {S::kIdle,    S::kChecking,  S::kDownloading,        S::kVerifying,
                          S::kStaged,  S::kRebooting, S::kVerifyingAfterBoot, S::kCommitted,
                          S::kChecking};
  for (size_t i = 0; i + 1 < happy.size(); ++i)
    EXPECT_TRUE(CanTransition(happy[i], happy[i + 1])) << StateName(happy[i]);
  for (S from : {S::kStaged, S::kRebooting, S::kVerifyingAfterBoot})
    EXPECT_TRUE(CanTransition(from, S::kRollingBack)) << StateName(from);
  EXPECT_TRUE(CanTransition(S::kRollingBack, S::kRolledBack));
  for (S from : {S::kChecking, S::kDownloading, S::kVerifying, S::kRollingBack})
    EXPECT_TRUE(CanTransition(from, S::kFailed)) << StateName(from);
  // Skipping a step, going back, or committing without the gate are refused.
  EXPECT_FALSE(CanTransition(S::kDownloading, S::kStaged));
  EXPECT_FALSE(CanTransition(S::kIdle, S::kStaged));
  EXPECT_FALSE(CanTransition(S::kStaged, S::kCommitted));
  EXPECT_FALSE(CanTransition(S::kRebooting, S::kCommitted));
  EXPECT_FALSE(CanTransition(S::kRolledBack, S::kCommitted));
  EXPECT_FALSE(CanTransition(S::kVerifyingAfterBoot, S::kFailed));  // after boot: roll back
  EXPECT_FALSE(CanTransition(S::kIdle, S::kIdle));
  // Counting the table: every state reaches at least one other, none reaches itself.
  for (S a : AllStates()) {
    EXPECT_FALSE(CanTransition(a, a)) << StateName(a);
    int out = 0;
    for (S b : AllStates()) out += CanTransition(a, b);
    EXPECT_GT(out, 0) << StateName(a);
  }

  Record r;
  r.state = S::kDownloading;
  r.target_commit = kV2;
  Status st = Transition(r, S::kCommitted, "nope");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kInternal);
  EXPECT_THAT(st.message(), HasSubstr("downloading -> committed is not allowed"));
  EXPECT_EQ(r.state, S::kDownloading);
  EXPECT_EQ(r.target_commit, kV2);
  // A new cycle forgets the previous one's target and counters, keeps the boot id.
  r = Record{S::kCommitted, kV2, "2.0", kV1, "boot-a", 2, 3, 1, "gate passed", 9, 0};
  ASSERT_TRUE(Transition(r, S::kChecking).ok());
  EXPECT_EQ(r.target_commit, "");
  EXPECT_EQ(r.previous_commit, "");
  EXPECT_EQ(r.boot_count, 0u);
  EXPECT_EQ(r.download_attempts, 0u);
  EXPECT_EQ(r.boot_id, "boot-a");
  EXPECT_EQ(r.sequence, 9u);
}

class OtaStateFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ootaXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = std::string(tmpl) + "/var/lib/outpost/ota";
  }
  void TearDown() override {
    fs::remove_all(fs::path(dir_).parent_path().parent_path().parent_path().parent_path());
  }
  std::string ReadAll(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void WriteAll(const std::string& p, const std::string& s) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
  }
  std::string dir_;
};

TEST_F(OtaStateFile, SaveThenLoadRoundTrips) {
  StateFile f(dir_);
  auto none = f.Load();
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value()) << "no file means no update in progress";

  Record r{State::kRebooting, kV2, "2.0", kV1, "boot-a", 1, 2, 0, "staged; rebooting", 0, 0};
  ASSERT_TRUE(f.Save(r).ok());  // creates the directory
  EXPECT_EQ(r.sequence, 1u);
  EXPECT_GT(r.updated_unix, 1700000000);
  ASSERT_TRUE(f.Save(r).ok());
  EXPECT_EQ(r.sequence, 2u);
  EXPECT_FALSE(fs::exists(dir_ + "/state.json.tmp"));
  auto back = f.Load();
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->has_value());
  const Record& b = **back;
  EXPECT_EQ(b.state, State::kRebooting);
  EXPECT_EQ(b.target_commit, kV2);
  EXPECT_EQ(b.target_version, "2.0");
  EXPECT_EQ(b.previous_commit, kV1);
  EXPECT_EQ(b.boot_id, "boot-a");
  EXPECT_EQ(b.boot_count, 1u);
  EXPECT_EQ(b.download_attempts, 2u);
  EXPECT_EQ(b.reason, "staged; rebooting");
  EXPECT_EQ(b.sequence, 2u);
  // Human-readable: the state by name.
  EXPECT_THAT(ReadAll(f.path()), HasSubstr("\"state\": \"rebooting\""));
}

TEST_F(OtaStateFile, TornAndCorruptFilesAreRefusedAndFallBackSafely) {
  StateFile f(dir_);
  Record r{State::kVerifyingAfterBoot, kV2, "2.0", kV1, "boot-a", 1, 1, 1, "booted", 0, 0};
  ASSERT_TRUE(f.Save(r).ok());
  const std::string good = ReadAll(f.path());

  std::string flipped = good;
  flipped.replace(flipped.find(kV2), 1, "3");  // a bit flip in the target commit
  std::string renamed = good;
  renamed.replace(renamed.find("verifying-after-boot"), 20, "committed\"          ");
  std::map<std::string, std::string> bad = {
      {"torn (first half)", good.substr(0, good.size() / 2)},
      {"empty", ""},
      {"zeros", std::string(64, '\0')},
      {"bit flip", flipped},
      {"state renamed by hand", renamed},
      {"other format", "{\"format\": \"outpost-ota-state/0\"}"},
  };
  for (const auto& [what, text] : bad) {
    SCOPED_TRACE(what);
    WriteAll(f.path(), text);
    auto l = f.Load();
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.status().code(), Code::kInvalidArgument);
    EXPECT_THAT(l.status().message(), HasSubstr("OTA state file '" + f.path() + "' refused"));
    // The safe fallback: keep the running deployment and check its health; never roll back or
    // reboot on the word of an unreadable file.
    Decision d = Resume(l, {"boot-b", kV1}, {});
    EXPECT_EQ(d.action, Action::kVerifyUnknown);
    EXPECT_EQ(d.record.state, State::kIdle);
    EXPECT_THAT(d.record.reason, HasSubstr("state file unusable"));
  }
  auto moved = f.Quarantine();
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, f.path() + ".corrupt");
  EXPECT_TRUE(fs::exists(*moved));
  auto after = f.Load();
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());
  // A stale temp file from a crash mid-write is ignored (the rename never happened).
  ASSERT_TRUE(f.Save(r).ok());
  WriteAll(f.path() + ".tmp", good.substr(0, 10));
  auto l = f.Load();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)->state, State::kVerifyingAfterBoot);
}

TEST_F(OtaStateFile, SaveIntoUnwritableDirectoryIsAnIoError) {
  // A regular file where the directory should be (refused even for root).
  fs::create_directories(dir_);
  WriteAll(dir_ + "/file", "x");
  StateFile f(dir_ + "/file/ota");
  Record r;
  Status s = f.Save(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kIoError);
  EXPECT_THAT(s.message(), HasSubstr("cannot create OTA state directory"));
  EXPECT_EQ(r.sequence, 0u) << "the record is untouched on failure";
}

// Resume after a crash in each state, with the boot facts that distinguish the cases.
Record At(State s) {
  Record r{s, kV2, "2.0", kV1, "boot-a", 0, 1, 0, "", 5, 0};
  if (s == State::kVerifyingAfterBoot) r.boot_count = 1, r.gate_attempts = 1;
  if (s == State::kIdle || s == State::kChecking) r.target_commit = r.previous_commit = "";
  return r;
}

Decision ResumeAt(const Record& r, const std::string& boot_id, const std::string& booted,
                  Limits lim = {}) {
  return Resume(std::optional<Record>(r), {boot_id, booted}, lim);
}

TEST(OtaResume, CrashInEveryStateSameBoot) {
  // The agent died (kill -9) and restarted; the machine did not reboot.
  struct Case {
    State at;
    std::string booted;
    Action action;
    State then;
  };
  std::vector<Case> cases = {
      {State::kIdle, kV1, Action::kNone, State::kIdle},
      {State::kChecking, kV1, Action::kCheck, State::kChecking},
      {State::kDownloading, kV1, Action::kDownload, State::kDownloading},
      {State::kVerifying, kV1, Action::kVerify, State::kVerifying},
      {State::kStaged, kV1, Action::kReboot, State::kRebooting},
      {State::kRebooting, kV1, Action::kReboot, State::kRebooting},
      {State::kVerifyingAfterBoot, kV2, Action::kRunHealthGate, State::kVerifyingAfterBoot},
      {State::kCommitted, kV2, Action::kNone, State::kCommitted},
      {State::kRollingBack, kV2, Action::kRollBack, State::kRollingBack},
      {State::kRolledBack, kV1, Action::kNone, State::kRolledBack},
      {State::kFailed, kV1, Action::kNone, State::kFailed},
  };
  ASSERT_EQ(cases.size(), AllStates().size());
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(StateName(c.at)));
    Record r = At(c.at);
    Decision d = ResumeAt(r, "boot-a", c.booted);
    EXPECT_EQ(d.action, c.action) << ActionName(d.action) << ": " << d.why;
    EXPECT_EQ(d.record.state, c.then);
    EXPECT_EQ(d.record.boot_count, r.boot_count) << "no reboot, no boot counted";
  }
  // The counters that bound the retries move.
  Decision d = ResumeAt(At(State::kDownloading), "boot-a", kV1);
  EXPECT_EQ(d.record.download_attempts, 2u);
  d = ResumeAt(At(State::kVerifyingAfterBoot), "boot-a", kV2);
  EXPECT_EQ(d.record.gate_attempts, 2u);
}

TEST(OtaResume, CrashInEveryStateAfterPowerCut) {
  // Power cut: a new boot id; the bootloader booted the default deployment.
  Decision d = ResumeAt(At(State::kStaged), "boot-b", kV2);  // reboot not recorded before the cut
  EXPECT_EQ(d.action, Action::kRunHealthGate);
  EXPECT_EQ(d.record.state, State::kVerifyingAfterBoot);
  EXPECT_EQ(d.record.boot_count, 1u);
  EXPECT_EQ(d.record.boot_id, "boot-b");

  d = ResumeAt(At(State::kRebooting), "boot-b", kV2);
  EXPECT_EQ(d.action, Action::kRunHealthGate);
  EXPECT_EQ(d.record.boot_count, 1u);
  EXPECT_EQ(d.record.gate_attempts, 1u);

  // Rebooting but the old deployment came up (the bootloader fell back): counted, rebooted again
  // until the limit, then rolled back.
  Record r = At(State::kRebooting);
  d = ResumeAt(r, "boot-b", kV1);
  EXPECT_EQ(d.action, Action::kReboot);
  EXPECT_EQ(d.record.boot_count, 1u);
  r.boot_count = 2;
  d = ResumeAt(r, "boot-c", kV1);
  EXPECT_EQ(d.action, Action::kRollBack);
  EXPECT_EQ(d.record.state, State::kRollingBack);
  EXPECT_THAT(d.record.reason, HasSubstr("3 boots ended on " + kV1 + " instead of the target"));

  // Verifying after boot, the gate never finished: each boot counts; over the limit, roll back.
  r = At(State::kVerifyingAfterBoot);
  d = ResumeAt(r, "boot-b", kV2);
  EXPECT_EQ(d.action, Action::kRunHealthGate);
  EXPECT_EQ(d.record.boot_count, 2u);
  r.boot_count = 3;
  d = ResumeAt(r, "boot-b", kV2);
  EXPECT_EQ(d.action, Action::kRollBack);
  EXPECT_THAT(d.record.reason,
              HasSubstr("booted 4 times into the target without a health verdict"));
  // The gate was running and the machine came up on something else: roll back.
  d = ResumeAt(At(State::kVerifyingAfterBoot), "boot-b", kV1);
  EXPECT_EQ(d.action, Action::kRollBack);
  EXPECT_THAT(d.record.reason, HasSubstr("is booted"));
  // Too many gate runs without a verdict (the agent dies inside the gate each time).
  r = At(State::kVerifyingAfterBoot);
  r.gate_attempts = 3;
  d = ResumeAt(r, "boot-a", kV2);
  EXPECT_EQ(d.action, Action::kRollBack);
  EXPECT_THAT(d.record.reason, HasSubstr("health gate started 3 times without a verdict"));

  // A pull that never finishes gives up (no retry storm across restarts).
  r = At(State::kDownloading);
  r.download_attempts = 5;
  d = ResumeAt(r, "boot-b", kV1);
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.record.state, State::kFailed);
  EXPECT_THAT(d.record.reason, HasSubstr("unfinished after 5 attempts"));

  // Rolling back with nothing to go back to: failed, said so, nothing touched.
  r = At(State::kRebooting);
  r.previous_commit = "";
  r.boot_count = 2;
  d = ResumeAt(r, "boot-b", kV1);
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.record.state, State::kFailed);
  EXPECT_THAT(d.record.reason, HasSubstr("no previous deployment"));
}

// A simulated device and agent driven only by the state machine: crash (kill -9) or power cut
// injected right after the agent persists a given state, `times` times, then it restarts. Checks
// that every run ends on a good deployment that is both booted and the default.
struct SimDevice {
  std::string default_commit = kV1, booted = kV1;
  int boot = 0;
  std::string BootId() const { return "boot-" + std::to_string(boot); }
  void Reboot() {
    booted = default_commit;
    ++boot;
  }
};

struct Fault {
  State at;
  int times;
  bool power_cut;  // else kill -9 of the agent only
};

struct SimResult {
  State final_state;
  std::string booted;
  std::string default_commit;
  int restarts = 0;
  int crashes = 0;  // faults actually injected
};

SimResult Simulate(const std::string& dir, Fault fault, bool target_good) {
  StateFile file(dir);
  SimDevice dev;
  int crashes_left = fault.times;
  SimResult res;
  // Returns false when the agent "died" right after this save.
  auto save = [&](Record& r) {
    EXPECT_TRUE(file.Save(r).ok());
    if (r.state == fault.at && crashes_left > 0) {
      --crashes_left;
      return false;
    }
    return true;
  };
  for (int run = 0; run < 50; ++run) {
    Decision d = Resume(file.Load(), {dev.BootId(), dev.booted}, {});
    Record r = d.record;
    bool alive = save(r);
    if (alive && d.action == Action::kNone && r.state == State::kIdle) {
      // Nothing in progress: the agent's scheduled check.
      alive = Transition(r, State::kChecking).ok() && save(r);
      d.action = Action::kCheck;
    }
    Action a = d.action;
    while (alive) {
      if (a == Action::kCheck) {
        r.previous_commit = dev.booted;
        r.target_commit = kV2;
        EXPECT_TRUE(Transition(r, State::kDownloading, "2.0 available").ok());
        r.download_attempts = 1;
        if (!(alive = save(r))) break;
        a = Action::kDownload;
      } else if (a == Action::kDownload) {
        EXPECT_TRUE(Transition(r, State::kVerifying).ok());
        if (!(alive = save(r))) break;
        a = Action::kVerify;
      } else if (a == Action::kVerify) {
        dev.default_commit = r.target_commit;  // deploy: the target becomes the default
        EXPECT_TRUE(Transition(r, State::kStaged).ok());
        if (!(alive = save(r))) break;
        EXPECT_TRUE(Transition(r, State::kRebooting).ok());
        if (!(alive = save(r))) break;
        a = Action::kReboot;
      } else if (a == Action::kReboot) {
        dev.Reboot();
        break;  // the agent starts again on the new boot
      } else if (a == Action::kRunHealthGate || a == Action::kVerifyUnknown) {
        bool good = dev.booted == kV1 || target_good;
        if (a == Action::kVerifyUnknown)
          return {r.state, dev.booted, dev.default_commit, run, fault.times - crashes_left};
        if (good) {
          EXPECT_TRUE(Transition(r, State::kCommitted, "health gate passed").ok());
          if (!(alive = save(r))) break;
          a = Action::kNone;
        } else {
          EXPECT_TRUE(Transition(r, State::kRollingBack, "golden outputs differ").ok());
          if (!(alive = save(r))) break;
          a = Action::kRollBack;
        }
      } else if (a == Action::kRollBack) {
        dev.default_commit = r.previous_commit;
        if (dev.booted != r.previous_commit) {
          dev.Reboot();
          break;
        }
        EXPECT_TRUE(Transition(r, State::kRolledBack, r.reason).ok());
        if (!(alive = save(r))) break;
        a = Action::kNone;
      } else {
        return {r.state, dev.booted, dev.default_commit, run, fault.times - crashes_left};
      }
    }
    if (!alive && fault.power_cut) dev.Reboot();
  }
  ADD_FAILURE() << "no end after 50 restarts";
  return res;
}

TEST(OtaResume, KillAtEveryStateThreeTimesEndsOnAGoodDeployment) {
  char tmpl[] = "/tmp/ootasimXXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  int runs = 0;
  for (bool target_good : {true, false}) {
    for (bool power_cut : {false, true}) {
      for (State s : AllStates()) {
        for (int times : {1, 2, 3}) {
          std::string dir = std::string(tmpl) + "/" + std::to_string(runs++);
          SCOPED_TRACE(std::string(StateName(s)) + " x" + std::to_string(times) +
                       (power_cut ? " power cut" : " kill -9") +
                       (target_good ? ", good target" : ", bad target"));
          SimResult r = Simulate(dir, {s, times, power_cut}, target_good);
          // Always booted into, and defaulting to, a good deployment, with a final verdict.
          EXPECT_EQ(r.booted, r.default_commit);
          if (target_good && r.final_state == State::kCommitted) {
            EXPECT_EQ(r.booted, kV2);
          } else {
            EXPECT_EQ(r.final_state, State::kRolledBack);
            EXPECT_EQ(r.booted, kV1);
          }
          // The fault really happened in every state the update passes through (at least once:
          // a resume may move past a state without entering it again, e.g. staged -> rebooting).
          bool on_path = s != State::kFailed &&
                         !(target_good && (s == State::kRollingBack || s == State::kRolledBack)) &&
                         !(!target_good && s == State::kCommitted);
          if (on_path) {
            EXPECT_GE(r.crashes, 1);
            EXPECT_LE(r.crashes, times);
          }
          if (!target_good) {
            EXPECT_EQ(r.booted, kV1) << "a bad release never stays";
          }
        }
      }
    }
  }
  EXPECT_EQ(runs, 2 * 2 * 11 * 3);
  fs::remove_all(tmpl);
}

}  // namespace
}  // namespace outpost::ota
