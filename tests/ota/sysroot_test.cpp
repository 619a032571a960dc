// The libostree side of the agent against a fake sysroot (ostree admin init-fs / os-init, a stub
// syslinux config) and a real archive repo built and GPG-signed by outpost image, served over
// loopback HTTP. `ostree admin status` and the deployment files are the independent view.
#include "outpost/ota/sysroot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/signing_keys.h"
#include "fake_sysroot.h"
#include "file_server.h"
#include "outpost/image/image.h"

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing::Cmd;
using testing::Sh;
using testing::Trim;
void Write(const fs::path& p, const std::string& text) { testing::WriteFile(p, text); }

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class OtaSysrootTest : public testing::FakeSysrootTest {
 protected:
  static void SetUpTestSuite() { SetUpSuite("oots"); }
  void SetUp() override {
    FakeSysrootTest::SetUp();
    Write(dir_ + "/base/etc/app.conf", "a=1\n");
    cfg_ = {sysroot_, "outpost", "outpost", "outpost/test/x86_64", {release_fpr_}};
  }
  SysrootConfig cfg_;
};

TEST_F(OtaSysrootTest, V1ToV2ThroughStaticDeltaKeepsEtcAndVarThenRollsBack) {
  std::string v1 = Build(Release("1.0", 1700000000));
  ASSERT_EQ(v1.size(), 64u);
  ASSERT_TRUE(AddRemote(cfg_, server_->Url() + "/repo", {root_ + "/Release.asc"}).ok());
  auto pulled = Pull(cfg_);
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  EXPECT_EQ(*pulled, v1);
  auto d1 = Deploy(cfg_, v1);
  ASSERT_TRUE(d1.ok()) << d1.status().ToString();
  EXPECT_EQ(d1->version, "1.0");
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1});
  // Local state: an edited /etc file, a new one, and data in /var.
  Write(d1->path + "/etc/app.conf", "a=1\nlocal=1\n");
  Write(d1->path + "/etc/site.conf", "site=7\n");
  std::string var = sysroot_ + "/ostree/deploy/outpost/var/lib/outpost/db";
  Write(var, "state");

  // v2 changes the default of app.conf and the daemon; its static delta from v1 is in the repo.
  Write(dir_ + "/base/etc/app.conf", "a=2\n");
  Write(dir_ + "/base/etc/new.conf", "new=1\n");
  Write(dir_ + "/outpostd", "#!/bin/sh\necho v2\n");
  std::string v2 = Build(Release("2.0", 1700000100));
  ASSERT_EQ(v2.size(), 64u);
  server_->ClearRequests();
  pulled = Pull(cfg_);
  ASSERT_TRUE(pulled.ok()) << pulled.status().ToString();
  EXPECT_EQ(*pulled, v2);
  bool delta = false;
  for (const auto& p : server_->Requests()) delta = delta || p.find("/repo/deltas/") == 0;
  EXPECT_TRUE(delta) << "pulled without the static delta";
  auto d2 = Deploy(cfg_, v2);
  ASSERT_TRUE(d2.ok()) << d2.status().ToString();
  EXPECT_EQ(d2->version, "2.0");
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1}));
  EXPECT_EQ(Read(d2->path + "/etc/app.conf"), "a=1\nlocal=1\n") << "local edit kept";
  EXPECT_EQ(Read(d2->path + "/etc/site.conf"), "site=7\n");
  EXPECT_EQ(Read(d2->path + "/etc/new.conf"), "new=1\n") << "new upstream file appears";
  EXPECT_EQ(Read(d2->path + "/usr/bin/outpostd"), "#!/bin/sh\necho v2\n");
  EXPECT_EQ(Read(var), "state");
  // The bootloader entries: v2 first (ostree:0), v1 kept as the rollback entry.
  std::string entries = Sh("cat " + sysroot_ + "/boot/loader/entries/*.conf").out;
  EXPECT_THAT(entries, HasSubstr("title outpost-test 2.0 (ostree:0)"));
  EXPECT_THAT(entries, HasSubstr("title outpost-test 1.0 (ostree:1)"));

  auto list = ListDeployments(cfg_);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].commit, v2);
  EXPECT_EQ((*list)[1].commit, v1);

  // Roll back: v1 the default again, v2 gone; /var untouched.
  ASSERT_TRUE(RollBack(cfg_, v1, v2).ok());
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1});
  entries = Sh("cat " + sysroot_ + "/boot/loader/entries/*.conf").out;
  EXPECT_THAT(entries, HasSubstr("title outpost-test 1.0 (ostree:0)"));
  EXPECT_THAT(entries, ::testing::Not(HasSubstr("2.0")));
  EXPECT_EQ(Read(var), "state");
  Status again = RollBack(cfg_, v2, "");
  EXPECT_EQ(again.code(), Code::kNotFound);
}

TEST_F(OtaSysrootTest, UnsignedAndUntrustedCommitsAreRefused) {
  std::string v1 = Build(Release("1.0", 1700000000));
  ASSERT_TRUE(AddRemote(cfg_, server_->Url() + "/repo", {root_ + "/Release.asc"}).ok());
  ASSERT_TRUE(Pull(cfg_).ok());
  ASSERT_TRUE(Deploy(cfg_, v1).ok());

  // An unsigned release on top (summary unsigned too).
  Write(dir_ + "/outpostd", "#!/bin/sh\necho evil\n");
  image::BuildOptions o = Release("2.0", 1700000100);
  o.sign = false;
  std::string unsigned_commit = Build(o);
  auto p = Pull(cfg_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << p.status().ToString();
  EXPECT_THAT(p.status().message(), HasSubstr("outpost:outpost/test/x86_64"));
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1});
  // Not deployable even when its objects are in the repo (as after an offline delta).
  Cmd pull = Sh("ostree --repo=" + sysroot_ + "/ostree/repo pull-local " + dir_ + "/srv/repo " +
                unsigned_commit);
  ASSERT_EQ(pull.rc, 0) << pull.out;
  auto d = Deploy(cfg_, unsigned_commit);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("commit " + unsigned_commit));
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1});

  // Signed by a key the device does not trust, summary included.
  o = Release("3.0", 1700000200);
  o.key = {gnupg_, other_fpr_};
  std::string other = Build(o);
  p = Pull(cfg_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << p.status().ToString();
  // Trusting the key in the remote's keyring is not enough: the fingerprint must be configured.
  ASSERT_TRUE(
      AddRemote(cfg_, server_->Url() + "/repo", {root_ + "/Release.asc", root_ + "/Other.asc"})
          .ok());
  p = Pull(cfg_);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("signed only by key " + other_fpr_ +
                                              ", which is not among the trusted keys"));
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1});
  (void)other;
}

TEST_F(OtaSysrootTest, DowngradeIsRefused) {
  std::string v1 = Build(Release("1.0", 1700000000));
  Write(dir_ + "/outpostd", "#!/bin/sh\necho v2\n");
  std::string v2 = Build(Release("2.0", 1700000100));
  ASSERT_TRUE(AddRemote(cfg_, server_->Url() + "/repo", {root_ + "/Release.asc"}).ok());
  auto p = Pull(cfg_);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(*p, v2);
  ASSERT_TRUE(Deploy(cfg_, v2).ok());
  // The server's ref moved back to v1 (signed, and the summary re-signed): a downgrade.
  std::string repo = dir_ + "/srv/repo";
  ASSERT_EQ(Sh("ostree --repo=" + repo + " refs --force --create=outpost/test/x86_64 " + v1).rc, 0);
  ASSERT_EQ(Sh("ostree --repo=" + repo + " summary -u --gpg-sign=" + release_fpr_ +
               " --gpg-homedir=" + gnupg_)
                .rc,
            0);
  p = Pull(cfg_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << p.status().ToString();
  EXPECT_THAT(p.status().message(), HasSubstr("older"));
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v2});
}

TEST_F(OtaSysrootTest, TamperedObjectIsRefused) {
  std::string v1 = Build(Release("1.0", 1700000000));
  ASSERT_EQ(testing::TamperObject(dir_ + "/srv/repo", "outpost/test/x86_64", "/usr/bin/outpostd",
                                  gnupg_, release_fpr_),
            "");
  ASSERT_TRUE(AddRemote(cfg_, server_->Url() + "/repo", {root_ + "/Release.asc"}).ok());
  auto p = Pull(cfg_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << p.status().ToString();
  EXPECT_TRUE(StatusCommits().empty());
  (void)v1;
}

}  // namespace
}  // namespace outpost::ota
