// A USB/offline bundle through the agent: bundles made by outpost image (image::MakeBundle) from
// releases built and signed (or not) by image::Build, applied to a fake sysroot deployed at v1
// with the file server stopped (nothing comes from the network). The agent verifies what
// libostree's offline application does not: a signature by a trusted key. `ostree admin status`
// and `ostree rev-parse` are the independent readers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

class OtaBundleTest : public OtaAgentTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OtaAgentTest::SetUp());
    BootWithoutOutpostd();
    usb_ = dir_ + "/usb";
  }

  // The bundle of the OS ref from srv/repo, its summary signed by Release.
  void MakeUsb() {
    image::BundleOptions o;
    o.repo = dir_ + "/srv/repo";
    o.refs = {"outpost/test/x86_64"};
    o.out = usb_;
    o.key = {gnupg_, release_fpr_};
    auto r = image::MakeBundle(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    server_.reset();  // offline from here on
  }
  // The bundle's delta file from v1 to `to`, as its index lists it.
  std::string DeltaFile(const std::string& to) {
    std::ifstream in(usb_ + "/outpost-bundle.json");
    auto j = nlohmann::json::parse(in, nullptr, false);
    for (const auto& d : j["deltas"])
      if (d["from"] == v1_ && d["to"] == to) return usb_ + "/" + d["file"].get<std::string>();
    ADD_FAILURE() << "no delta from v1 in " << j.dump();
    return "";
  }
  std::string RefCommit() {
    Cmd c = Sh("ostree --repo=" + sysroot_ + "/ostree/repo rev-parse outpost:outpost/test/x86_64");
    EXPECT_EQ(c.rc, 0) << c.out;
    return c.out.substr(0, c.out.find('\n'));
  }
  // Refused or failed, nothing deployed, the ref where it was.
  void ExpectNothingDeployed(const StepResult& s) {
    EXPECT_EQ(s.outcome, Outcome::kFailed) << s.message;
    EXPECT_EQ(State().state, State::kFailed);
    EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
    EXPECT_EQ(RefCommit(), v1_);
  }

  std::string usb_;
};

TEST_F(OtaBundleTest, GoodBundleIsStagedWithoutTheNetwork) {
  const std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_NO_FATAL_FAILURE(MakeUsb());
  StepResult s = ApplyBundle(cfg_, usb_);
  ASSERT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  Record r = State();
  EXPECT_EQ(r.state, State::kRebooting);
  EXPECT_EQ(r.target_commit, v2);
  EXPECT_EQ(r.target_version, "2.0");
  EXPECT_EQ(r.previous_commit, v1_);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_EQ(RefCommit(), v2);
  EXPECT_TRUE(VerifyCommit(cfg_.sysroot, v2).ok());
  // From here the ordinary state machine: before the boot, the next step asks for the reboot.
  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  // A second bundle while the update is in progress is not taken.
  s = ApplyBundle(cfg_, usb_);
  EXPECT_EQ(s.outcome, Outcome::kError) << s.message;
  EXPECT_THAT(s.message, HasSubstr("in progress"));
}

TEST_F(OtaBundleTest, UnsignedBundleIsRefused) {
  image::BuildOptions o = Release("2.0", 1700000100, Golden("good2", /*wrong=*/false));
  o.sign = false;
  const std::string v2 = Build(o);
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_NO_FATAL_FAILURE(MakeUsb());
  StepResult s = ApplyBundle(cfg_, usb_);
  ASSERT_NO_FATAL_FAILURE(ExpectNothingDeployed(s));
  EXPECT_THAT(s.message, HasSubstr("refused"));
  EXPECT_THAT(s.message, HasSubstr("commit " + v2));
  EXPECT_EQ(State().refused_commit, v2);
}

// Signed by "Other", whose key is even imported into the remote: only the trusted fingerprints
// count.
TEST_F(OtaBundleTest, BundleSignedByAnUntrustedKeyIsRefused) {
  image::BuildOptions o = Release("2.0", 1700000100, Golden("good2", /*wrong=*/false));
  o.key = {gnupg_, other_fpr_};
  const std::string v2 = Build(o);
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_NO_FATAL_FAILURE(MakeUsb());
  cfg_.key_files = {root_ + "/Release.asc", root_ + "/Other.asc"};
  StepResult s = ApplyBundle(cfg_, usb_);
  ASSERT_NO_FATAL_FAILURE(ExpectNothingDeployed(s));
  EXPECT_THAT(s.message, HasSubstr("not among the trusted keys"));
  EXPECT_THAT(s.message, HasSubstr(other_fpr_));
}

// A delta file changed on the stick: its sha256 is not the index's. Then the same change with
// the index rewritten to match (the index is not signed): libostree's checksums of the objects,
// or our signature check, still refuse it.
TEST_F(OtaBundleTest, TamperedDeltaFileIsRefused) {
  const std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_NO_FATAL_FAILURE(MakeUsb());
  const std::string file = DeltaFile(v2);
  ASSERT_FALSE(file.empty());
  {  // one byte in the middle (inside a part's data)
    const auto at = static_cast<std::streamoff>(fs::file_size(file) / 2);
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    char c = 0;
    f.seekg(at);
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  StepResult s = ApplyBundle(cfg_, usb_);
  ASSERT_NO_FATAL_FAILURE(ExpectNothingDeployed(s));
  EXPECT_THAT(s.message, HasSubstr(file));
  EXPECT_THAT(s.message, HasSubstr("sha256"));

  Cmd sha = Sh("sha256sum " + file);
  ASSERT_EQ(sha.rc, 0);
  const std::string index = usb_ + "/outpost-bundle.json";
  nlohmann::json j;
  {
    std::ifstream in(index);
    j = nlohmann::json::parse(in);
  }
  for (auto& d : j["deltas"])
    if (usb_ + "/" + d["file"].get<std::string>() == file) d["sha256"] = sha.out.substr(0, 64);
  testing::WriteFile(index, j.dump());
  s = ApplyBundle(cfg_, usb_);
  ASSERT_NO_FATAL_FAILURE(ExpectNothingDeployed(s));
  EXPECT_THAT(s.message, HasSubstr("refused"));
  EXPECT_THAT(s.message, HasSubstr(file));
}

// `outpost ota apply-bundle` with the device config: exit 100 and the staged record; a refused
// bundle exits 1.
TEST_F(OtaBundleTest, ApplyBundleCliStagesFromTheDeviceConfig) {
  const std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  const std::string url = cfg_.remote_url;
  ASSERT_NO_FATAL_FAILURE(MakeUsb());
  fs::create_directories(dir_ + "/keys");
  fs::copy_file(root_ + "/Release.asc", dir_ + "/keys/Release.asc");
  testing::WriteFile(dir_ + "/device.yaml",
                     "server:\n  listen_address: 127.0.0.1\n  port: 8080\nota:\n  enabled: true\n"
                     "  remote_url: " +
                         url +
                         "\n  ref: outpost/test/x86_64\n"
                         "  trusted_keys_dir: " +
                         dir_ + "/keys\n  state_dir: " + cfg_.state_dir + "\n");
  auto apply = [&](const std::string& bundle) {
    return Sh(std::string(OUTPOST_CLI) + " ota apply-bundle " + bundle + " --config " + dir_ +
              "/device.yaml --sysroot " + sysroot_ + " --boot-id boot-1 --booted-commit " + v1_ +
              " 2>/dev/null");
  };
  Cmd c = apply(dir_ + "/no-such-bundle");
  EXPECT_EQ(c.rc, 1) << c.out;
  EXPECT_THAT(c.out, HasSubstr("outpost-bundle.json"));
  c = apply(usb_);
  ASSERT_EQ(c.rc, 100) << c.out;
  auto j = nlohmann::json::parse(c.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << c.out;
  EXPECT_EQ(j["outcome"], "reboot-requested");
  EXPECT_EQ(j["record"]["state"], "rebooting");
  EXPECT_EQ(j["record"]["target_commit"], v2);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  c = Sh(std::string(OUTPOST_CLI) + " ota apply-bundle 2>/dev/null");
  EXPECT_EQ(c.rc, 2) << c.out;
}

}  // namespace
}  // namespace outpost::ota
