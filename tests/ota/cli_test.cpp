// `outpost ota status` end to end: records written through StateFile, read back by the CLI.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/signing_keys.h"
#include "outpost/ota/state.h"

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using testing::Cmd;
using ::testing::HasSubstr;
using testing::Sh;

class OtaCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ootacliXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  Cmd Status(const std::string& args) {
    return Sh(std::string(OUTPOST_CLI) + " ota status --state-dir " + dir_ + "/ota " + args);
  }
  std::string dir_;
};

TEST_F(OtaCliTest, StatusJsonPrintsThePersistedRecord) {
  Cmd none = Status("--json");
  ASSERT_EQ(none.rc, 0) << none.out;
  auto j = nlohmann::json::parse(none.out);
  EXPECT_EQ(j["state"], "idle");
  EXPECT_EQ(j["present"], false);
  EXPECT_EQ(j["state_file"], dir_ + "/ota/state.json");

  StateFile f(dir_ + "/ota");
  const std::string target(64, 'b'), previous(64, 'a');
  Record r{State::kRollingBack,
           target,
           "2.0",
           previous,
           "boot-7",
           3,
           1,
           2,
           "booted 3 times into the target without a health verdict",
           0,
           0};
  ASSERT_TRUE(f.Save(r).ok());
  Cmd c = Status("--json");
  ASSERT_EQ(c.rc, 0) << c.out;
  j = nlohmann::json::parse(c.out);
  EXPECT_EQ(j["state"], "rolling-back");
  EXPECT_EQ(j["present"], true);
  EXPECT_EQ(j["target_commit"], target);
  EXPECT_EQ(j["target_version"], "2.0");
  EXPECT_EQ(j["previous_commit"], previous);
  EXPECT_EQ(j["boot_count"], 3);
  EXPECT_EQ(j["download_attempts"], 1);
  EXPECT_EQ(j["gate_attempts"], 2);
  EXPECT_EQ(j["reason"], "booted 3 times into the target without a health verdict");
  EXPECT_EQ(j["sequence"], 1);

  Cmd text = Status("");
  ASSERT_EQ(text.rc, 0);
  EXPECT_THAT(text.out, HasSubstr("state: rolling-back\n"));
  EXPECT_THAT(text.out, HasSubstr("target_commit: " + target + "\n"));
}

TEST_F(OtaCliTest, CorruptStateFileExits1AndNamesIt) {
  fs::create_directories(dir_ + "/ota");
  std::ofstream(dir_ + "/ota/state.json") << "{\"format\": \"outpost-ota-st";
  Cmd c = Status("--json");
  EXPECT_EQ(c.rc, 1);
  EXPECT_THAT(c.out, HasSubstr("OTA state file '" + dir_ + "/ota/state.json' refused"));
  EXPECT_THAT(c.out, HasSubstr("\"state\": null"));
}

TEST_F(OtaCliTest, UsageErrorsExit2) {
  std::string cli = OUTPOST_CLI;
  EXPECT_EQ(Sh(cli + " ota").rc, 2);
  EXPECT_EQ(Sh(cli + " ota frob").rc, 2);
  EXPECT_EQ(Sh(cli + " ota status --bogus").rc, 2);
  Cmd h = Sh(cli + " ota status --help");
  EXPECT_EQ(h.rc, 0);
  EXPECT_THAT(h.out, HasSubstr("usage: outpost ota status"));
}

}  // namespace
}  // namespace outpost::ota
