// A full disk under the sysroot (a small tmpfs, mounted by the test as root): a pull stopped by
// it and a deploy stopped by it are clear, counted errors; the state stays resumable
// (downloading, verifying), nothing is half-deployed (`ostree admin status` and the deploy
// directory), and once there is room the next step goes on to a staged release.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent_fixture.h"
#include "outpost/core/metrics.h"

namespace outpost::ota {
namespace {

using ::testing::HasSubstr;

uint64_t DiskFullCount() {
  return MetricsRegistry::Global()
      .GetCounter("outpost_ota_disk_full_total",
                  "OTA operations stopped by a full disk (the update stays resumable)")
      .value();
}

class OtaAgentDiskTest : public OtaAgentTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
    ASSERT_NO_FATAL_FAILURE(OtaAgentTest::SetUp());  // v1 deployed in dir_/sysroot
    mnt_ = dir_ + "/small";
    fs::create_directories(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=256m") != 0)
      GTEST_SKIP() << "mount(tmpfs) not permitted here: " << std::strerror(errno);
    mounted_ = true;
    // The deployed sysroot moved onto the tmpfs (cp -a keeps the repo's hard links).
    testing::Cmd c = testing::Sh("cp -a " + sysroot_ + "/. " + mnt_ + "/");
    ASSERT_EQ(c.rc, 0) << c.out;
    sysroot_ = mnt_;
    cfg_.sysroot.sysroot = mnt_;
    ASSERT_EQ(StatusCommits(), std::vector<std::string>{v1_});
  }
  void TearDown() override {
    OtaAgentTest::TearDown();
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }

  struct Usage {
    uint64_t bytes, inodes;
  };
  Usage Used() {
    struct statvfs v {};
    EXPECT_EQ(::statvfs(mnt_.c_str(), &v), 0);
    return {(v.f_blocks - v.f_bfree) * v.f_frsize, v.f_files - v.f_ffree};
  }
  void Remount(const std::string& opts) {
    ASSERT_EQ(::mount("tmpfs", mnt_.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()), 0)
        << opts << ": " << std::strerror(errno);
  }
  // Deployment directories of stateroot "outpost" (what a half-done deploy would leave).
  std::vector<std::string> DeployDirs() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(mnt_ + "/ostree/deploy/outpost/deploy"))
      if (e.is_directory()) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  // A release with 6 MiB of random bytes (incompressible): its objects do not fit in 2 MiB.
  std::string BuildBigRelease() {
    testing::Cmd c = testing::Sh("mkdir -p " + dir_ + "/base/usr/share/outpost && head -c " +
                                 std::to_string(6 << 20) + " /dev/urandom > " + dir_ +
                                 "/base/usr/share/outpost/blob.bin");
    EXPECT_EQ(c.rc, 0) << c.out;
    return Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  }

  // The step stopped on the full disk: a retry (not a refusal), counted, v1 alone deployed.
  void ExpectDiskFull(const StepResult& s, const std::string& what, uint64_t full_before) {
    EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;
    EXPECT_TRUE(s.retry);
    EXPECT_THAT(s.message, HasSubstr(what));
    EXPECT_GT(DiskFullCount(), full_before);
    EXPECT_EQ(State().refused_commit, "");
    EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
  }

  std::string mnt_;
  bool mounted_ = false;
};

TEST_F(OtaAgentDiskTest, PullStoppedByAFullDiskIsCountedAndResumes) {
  ASSERT_NO_FATAL_FAILURE(Boot());  // v1, from the tmpfs
  const std::string v2 = BuildBigRelease();
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_NO_FATAL_FAILURE(Remount("size=" + std::to_string(Used().bytes + (2 << 20))));
  const uint64_t full_before = DiskFullCount();

  StepResult s = RunOnce(cfg_);
  ExpectDiskFull(s, "pull stopped, disk full", full_before);
  EXPECT_EQ(State().state, State::kDownloading);  // resumable
  EXPECT_EQ(State().target_commit, v2);

  ASSERT_NO_FATAL_FAILURE(Remount("size=256m"));  // room again
  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(State().state, State::kRebooting);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
}

// The objects are there, the deployment's directories are not: no inodes left. The deploy
// stops with "disk full", leaves no deployment directory behind, the record stays in verifying,
// and the next step deploys once there is room.
TEST_F(OtaAgentDiskTest, DeployStoppedByAFullDiskLeavesNothingHalfDeployed) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  const std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  auto p = Pull(cfg_.sysroot);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(*p, v2);
  Record r;  // the record of a step that pulled v2 and was stopped before deploying
  r.state = State::kVerifying;
  r.target_commit = v2;
  r.previous_commit = v1_;
  r.boot_id = cfg_.boot_id;
  ASSERT_TRUE(StateFile(cfg_.state_dir).Save(r).ok());
  const auto dirs_before = DeployDirs();
  ASSERT_EQ(dirs_before.size(), 1u);
  ASSERT_NO_FATAL_FAILURE(Remount("nr_inodes=" + std::to_string(Used().inodes + 3)));
  const uint64_t full_before = DiskFullCount();

  StepResult s = RunOnce(cfg_);
  ExpectDiskFull(s, "deploy stopped, disk full", full_before);
  EXPECT_EQ(State().state, State::kVerifying);
  EXPECT_EQ(DeployDirs(), dirs_before) << "a half-written deployment was left";

  ASSERT_NO_FATAL_FAILURE(Remount("nr_inodes=1000000"));
  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
}

}  // namespace
}  // namespace outpost::ota
