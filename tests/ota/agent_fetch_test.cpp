// The agent's static delta download (libcurl) end to end: a fake sysroot deployed at v1, a v2
// with incompressible bytes built and signed by outpost image, served over loopback HTTP by the
// test's file server with its faults (a connection cut at a byte offset, a status instead of the
// file, ranges ignored). No boot: these tests stop at the staged deployment, which
// `ostree admin status` (the independent reader) and VerifyCommit check.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "agent_fixture.h"
#include "outpost/core/metrics.h"

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Pair;

class OtaFetchTest : public OtaAgentTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OtaAgentTest::SetUp());
    BootWithoutOutpostd();
    cfg_.download.retry_base_s = 0.05;
    cfg_.download.retry_max_s = 0.1;
  }

  // v2: v1 plus `bytes` random (incompressible) bytes, so that its delta has a real part.
  std::string BuildBlobRelease(size_t bytes, const std::string& version = "2.0",
                               int64_t ts = 1700000100) {
    testing::Cmd c = testing::Sh("mkdir -p " + dir_ + "/base/usr/share/outpost && head -c " +
                                 std::to_string(bytes) + " /dev/urandom > " + dir_ +
                                 "/base/usr/share/outpost/blob.bin");
    EXPECT_EQ(c.rc, 0) << c.out;
    return Build(Release(version, ts, Golden("good2", /*wrong=*/false)));
  }

  // The delta from v1 to v2 on the server: the only delta directory with a base ("FROM-TO";
  // modified base64 has no '-'), read from the server's disk. Paths as the server sees them.
  struct ServerDelta {
    std::string dir;                 // "/repo/deltas/XX/REST-TO"
    uint64_t bytes = 0;              // superblock + parts
    std::vector<std::string> parts;  // "/repo/deltas/.../0", ...
  };
  ServerDelta FindDelta() {
    ServerDelta d;
    const std::string srv = dir_ + "/srv";
    for (const auto& e : fs::recursive_directory_iterator(srv + "/repo/deltas")) {
      if (!e.is_directory() || e.path().filename().string().find('-') == std::string::npos)
        continue;
      EXPECT_TRUE(d.dir.empty()) << "two deltas with a base: " << d.dir << ", " << e.path();
      d.dir = e.path().string().substr(srv.size());
    }
    for (const auto& e : fs::directory_iterator(srv + d.dir)) {
      d.bytes += e.file_size();
      if (e.path().filename() != "superblock")
        d.parts.push_back(d.dir + "/" + e.path().filename().string());
    }
    std::sort(d.parts.begin(), d.parts.end());
    return d;
  }
  std::string DownloadDir(const std::string& v2) {
    return cfg_.state_dir + "/download/" + v1_ + "-" + v2;
  }
  int ObjectRequests() {  // libostree's pull fetches objects one by one; the delta does not
    int n = 0;
    for (const auto& p : server_->Requests()) n += p.rfind("/repo/objects/", 0) == 0;
    return n;
  }
  static uint64_t CounterValue(const std::string& name, Labels labels = {}) {
    return MetricsRegistry::Global().GetCounter(name, "", std::move(labels)).value();
  }
};

// The link drops in the middle of the delta's part, on every attempt of the step: the step ends
// as a retryable network failure with the partial file kept; the next step asks for the rest
// with a range request and completes, the bytes served staying within 1.1x of the delta.
TEST_F(OtaFetchTest, NetworkCutMidPullThenResumed) {
  const std::string v2 = BuildBlobRelease(768 << 10);
  ASSERT_EQ(v2.size(), 64u);
  ServerDelta d = FindDelta();
  ASSERT_EQ(d.parts.size(), 1u) << d.dir;
  const uint64_t part_size = fs::file_size(dir_ + "/srv" + d.parts[0]);
  ASSERT_GT(part_size, 700u << 10);
  const uint64_t cut = part_size / 2;
  server_->CutAt(d.parts[0], cut, /*once=*/false);
  server_->ClearRequests();
  cfg_.download.attempts = 2;
  const uint64_t resumes =
      CounterValue("outpost_ota_download_resumes_total", {{"outcome", "resumed"}});

  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;
  EXPECT_TRUE(s.retry);
  EXPECT_THAT(s.message, HasSubstr("download interrupted"));
  EXPECT_EQ(State().state, State::kDownloading);
  EXPECT_EQ(State().target_commit, v2);
  const std::string partial = DownloadDir(v2) + "/0";
  ASSERT_TRUE(fs::exists(partial));
  EXPECT_EQ(fs::file_size(partial), cut);
  EXPECT_EQ(server_->Count(d.parts[0]), 2);  // both attempts of the step, the second ranged
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});

  server_->ClearCut();
  s = RunOnce(cfg_);
  ASSERT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_THAT(server_->Ranges(), ::testing::Contains(Pair(d.parts[0], cut)));
  EXPECT_GT(CounterValue("outpost_ota_download_resumes_total", {{"outcome", "resumed"}}), resumes);
  const uint64_t served = server_->BodyBytes("/repo/deltas/");
  EXPECT_GE(served, d.bytes);
  EXPECT_LT(static_cast<double>(served), 1.1 * static_cast<double>(d.bytes))
      << served << " bytes served for a delta of " << d.bytes;
  EXPECT_EQ(ObjectRequests(), 0) << "libostree's pull was used";
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_TRUE(VerifyCommit(cfg_.sysroot, v2).ok());
  EXPECT_EQ(State().state, State::kRebooting);
  EXPECT_FALSE(fs::exists(DownloadDir(v2))) << "the download directory was left behind";
}

// A server that ignores the range (200 with the whole file) makes the client start the file
// again rather than append the whole file to the half it has.
TEST_F(OtaFetchTest, ServerIgnoringTheRangeRestartsTheFile) {
  const std::string v2 = BuildBlobRelease(256 << 10);
  ServerDelta d = FindDelta();
  ASSERT_EQ(d.parts.size(), 1u);
  const uint64_t cut = fs::file_size(dir_ + "/srv" + d.parts[0]) / 3;
  server_->CutAt(d.parts[0], cut, /*once=*/true);
  server_->IgnoreRanges(true);
  cfg_.download.attempts = 2;
  StepResult s = RunOnce(cfg_);
  ASSERT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_THAT(server_->Ranges(), ::testing::Contains(Pair(d.parts[0], cut)));
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_TRUE(VerifyCommit(cfg_.sysroot, v2).ok());
}

// rate_limit_kbps holds the transfer down: X bytes at L bytes/s take at least ~X/L (a lower
// bound with 20% slack; nothing here says how fast it must be).
TEST_F(OtaFetchTest, RateLimitHoldsTheDownloadDown) {
  const std::string v2 = BuildBlobRelease(256 << 10);
  ASSERT_EQ(v2.size(), 64u);
  cfg_.download.rate_limit_kbps = 800;  // 100000 bytes/s
  server_->ClearRequests();
  const auto t0 = std::chrono::steady_clock::now();
  StepResult s = RunOnce(cfg_);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  const double served = static_cast<double>(server_->BodyBytes("/repo/deltas/"));
  ASSERT_GT(served, 256 << 10);
  EXPECT_GE(took, 0.8 * served / 100000.0) << served << " bytes in " << took << " s";
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
}

// A delta part changed on the server: its sha256 is not the one its (signed) superblock says;
// refused with the file named, nothing deployed, the head not tried again.
TEST_F(OtaFetchTest, TamperedDeltaPartIsRefused) {
  const std::string v2 = BuildBlobRelease(128 << 10);
  ServerDelta d = FindDelta();
  ASSERT_EQ(d.parts.size(), 1u);
  {
    std::fstream f(dir_ + "/srv" + d.parts[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x5a');
  }
  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kFailed) << s.message;
  EXPECT_FALSE(s.retry);
  EXPECT_THAT(s.message, HasSubstr(d.parts[0]));
  EXPECT_THAT(s.message, HasSubstr("sha256"));
  EXPECT_EQ(State().state, State::kFailed);
  EXPECT_EQ(State().refused_commit, v2);
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
  EXPECT_FALSE(fs::exists(DownloadDir(v2) + "/0"));
  s = RunOnce(cfg_);  // the refused head is not downloaded again
  EXPECT_EQ(s.outcome, Outcome::kIdle) << s.message;
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
}

// The superblock changed on the server: not the sha256 the signed summary lists.
TEST_F(OtaFetchTest, TamperedSuperblockIsRefused) {
  const std::string v2 = BuildBlobRelease(64 << 10);
  ServerDelta d = FindDelta();
  const std::string sb = dir_ + "/srv" + d.dir + "/superblock";
  {
    std::fstream f(sb, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(sb) / 2));
    f.put('\x5a');
  }
  server_->ClearRequests();
  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kFailed) << s.message;
  EXPECT_THAT(s.message, HasSubstr(d.dir + "/superblock"));
  EXPECT_THAT(s.message, HasSubstr("signed summary"));
  EXPECT_EQ(State().state, State::kFailed);
  EXPECT_EQ(server_->Count(d.parts[0]), 0) << "a part was fetched for a refused superblock";
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
}

// A release older than the booted one (a replayed, signed old build): refused from the
// superblock's commit, before any part is downloaded.
TEST_F(OtaFetchTest, DowngradeIsRefusedBeforeItsPartsAreDownloaded) {
  const std::string v0 = BuildBlobRelease(64 << 10, "0.9", 1690000000);
  ASSERT_EQ(v0.size(), 64u);
  ServerDelta d = FindDelta();
  server_->ClearRequests();
  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kFailed) << s.message;
  EXPECT_THAT(s.message, HasSubstr("chronologically older"));
  EXPECT_EQ(server_->Count(d.dir + "/superblock"), 1);
  for (const auto& p : d.parts) EXPECT_EQ(server_->Count(p), 0) << p;
  EXPECT_EQ(ObjectRequests(), 0);
  EXPECT_EQ(State().refused_commit, v0);
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
}

// A 403 is not retried within the step (no storm) and fails it without a retry; the release is
// not refused: the next check downloads it.
TEST_F(OtaFetchTest, ForbiddenIsNotRetried) {
  const std::string v2 = BuildBlobRelease(64 << 10);
  ServerDelta d = FindDelta();
  cfg_.download.attempts = 4;
  server_->Answer(d.dir + "/superblock", "403 Forbidden", /*once=*/false);
  server_->ClearRequests();
  StepResult s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kFailed) << s.message;
  EXPECT_FALSE(s.retry);
  EXPECT_THAT(s.message, HasSubstr("HTTP 403"));
  EXPECT_EQ(server_->Count(d.dir + "/superblock"), 1);
  EXPECT_EQ(ObjectRequests(), 0);
  EXPECT_EQ(State().state, State::kFailed);
  EXPECT_TRUE(State().refused_commit.empty());
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});

  server_->Answer(d.dir + "/superblock", "", false);
  s = RunOnce(cfg_);
  EXPECT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
}

// No delta (its superblock 404): the degraded mode, libostree's pull, counted.
TEST_F(OtaFetchTest, MissingDeltaFallsBackToLibostreePull) {
  const std::string v2 = BuildBlobRelease(64 << 10);
  ServerDelta d = FindDelta();
  server_->Answer(d.dir + "/superblock", "404 Not Found", /*once=*/true);
  const uint64_t fallbacks = CounterValue("outpost_ota_delta_fallbacks_total");
  StepResult s = RunOnce(cfg_);
  ASSERT_EQ(s.outcome, Outcome::kRebootRequested) << s.message;
  EXPECT_EQ(CounterValue("outpost_ota_delta_fallbacks_total"), fallbacks + 1);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_TRUE(VerifyCommit(cfg_.sysroot, v2).ok());
}

}  // namespace
}  // namespace outpost::ota
