// outpostd under systemd, without systemd: the unit files are checked by systemd's own offline
// tools (systemd-analyze verify, systemctl --root preset, systemd-sysusers/-tmpfiles --root), and
// the sd_notify protocol is checked for real with a unix datagram socket standing in for
// systemd's NOTIFY_SOCKET (READY/RELOADING/STOPPING/STATUS/WATCHDOG, sd_notify(3)).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "outpostd/test_util.h"

#ifndef OUTPOSTD_SYSTEMD_DIR
#error "OUTPOSTD_SYSTEMD_DIR must name runtime/outpostd/systemd"
#endif

namespace outpost::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::string kSystemdDir = OUTPOSTD_SYSTEMD_DIR;

std::string RequireTool(const std::string& name) {
  std::string p = FindExecutable(name);
  if (p.empty()) ADD_FAILURE() << name << " is not installed (Debian package systemd)";
  return p;
}

// The value of `Key=` in the unit file (last one wins, as in systemd); "" when absent.
std::string UnitSetting(const std::string& unit, const std::string& key) {
  std::istringstream in(unit);
  std::string line, value;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
  return value;
}

TEST(SystemdUnit, VerifiesWithTheBuiltBinary) {
  const std::string analyze = RequireTool("systemd-analyze");
  ASSERT_FALSE(analyze.empty());
  TempDir dir;
  std::string unit = ReadFile(kSystemdDir + "/outpostd.service");
  ASSERT_FALSE(unit.empty());
  // The unit names the installed path; point it at the binary under test.
  const std::string exec = UnitSetting(unit, "ExecStart");
  ASSERT_EQ(exec.rfind("/usr/bin/outpostd ", 0), 0u) << exec;
  unit.replace(unit.find("ExecStart=/usr/bin/outpostd"), 27, "ExecStart=" + kOutpostd);
  WriteFile(dir / "outpostd.service", unit);
  CommandResult r =
      RunCommand(analyze + " verify --man=no " + ShellQuote(dir / "outpostd.service") + " 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "") << "systemd-analyze verify complained";

  // The settings the daemon's behaviour relies on.
  EXPECT_EQ(UnitSetting(unit, "Type"), "notify");
  EXPECT_EQ(UnitSetting(unit, "NotifyAccess"), "main");
  EXPECT_EQ(UnitSetting(unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
  EXPECT_EQ(UnitSetting(unit, "KillSignal"), "SIGTERM");
  EXPECT_EQ(UnitSetting(unit, "WatchdogSec"), "30s");
  EXPECT_EQ(UnitSetting(unit, "Restart"), "on-failure");
  EXPECT_EQ(UnitSetting(unit, "User"), "outpost");
  // Drain: connections and model queues within one server.drain_timeout_ms (30 s by default);
  // systemd must not SIGKILL before.
  std::smatch m;
  const std::string stop = UnitSetting(unit, "TimeoutStopSec");
  ASSERT_TRUE(std::regex_match(stop, m, std::regex(R"(([0-9]+)s?)"))) << stop;
  EXPECT_GT(std::stoi(m[1]), 30);
  // PoCL's kernel cache must be writable under ProtectSystem=strict/ProtectHome: inside the
  // unit's CacheDirectory, and the daemon's own.
  EXPECT_EQ(UnitSetting(unit, "CacheDirectory"), "outpost");
  EXPECT_EQ(UnitSetting(unit, "Environment"), "POCL_CACHE_DIR=/var/cache/outpost/pocl");
}

TEST(SystemdUnit, PresetEnablesTheService) {
  const std::string systemctl = RequireTool("systemctl");
  ASSERT_FALSE(systemctl.empty());
  TempDir root;
  fs::create_directories(root / "usr/lib/systemd/system");
  fs::create_directories(root / "usr/lib/systemd/system-preset");
  fs::copy_file(kSystemdDir + "/outpostd.service",
                root / "usr/lib/systemd/system/outpostd.service");
  fs::copy_file(kSystemdDir + "/outpostd.preset",
                root / "usr/lib/systemd/system-preset/80-outpostd.preset");
  const std::string r = " --root=" + ShellQuote(root.path()) + " ";
  CommandResult p = RunCommand(systemctl + r + "preset outpostd.service 2>&1");
  EXPECT_EQ(p.status, 0) << p.output;
  CommandResult e = RunCommand(systemctl + r + "is-enabled outpostd.service 2>&1");
  EXPECT_EQ(e.output, "enabled\n");
  EXPECT_TRUE(fs::is_symlink(root / "etc/systemd/system/multi-user.target.wants/outpostd.service"));
}

TEST(SystemdUnit, SysusersAndTmpfilesCreateUserAndDirectories) {
  const std::string sysusers = RequireTool("systemd-sysusers");
  const std::string tmpfiles = RequireTool("systemd-tmpfiles");
  ASSERT_FALSE(sysusers.empty() || tmpfiles.empty());
  TempDir root;
  fs::create_directories(root / "etc");
  // A minimal base system: root and the stock groups, no outpost.
  WriteFile(root / "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
  WriteFile(root / "etc/group", "root:x:0:\nvideo:x:44:\n");
  CommandResult s = RunCommand(sysusers + " --root=" + ShellQuote(root.path()) + " " +
                               ShellQuote(kSystemdDir + "/outpostd.sysusers.conf") + " 2>&1");
  ASSERT_EQ(s.status, 0) << s.output;
  const std::string passwd = ReadFile(root / "etc/passwd");
  const std::string group = ReadFile(root / "etc/group");
  EXPECT_TRUE(std::regex_search(
      passwd,
      std::regex(R"(\noutpost:x:[0-9]+:[0-9]+:[^:]*:/var/lib/outpost:/usr/sbin/nologin\n)")))
      << passwd;
  EXPECT_TRUE(std::regex_search(group, std::regex(R"((^|\n)render:x:[0-9]+:outpost\n)"))) << group;
  EXPECT_TRUE(std::regex_search(group, std::regex(R"((^|\n)video:x:44:outpost\n)"))) << group;
  if (::geteuid() != 0) {
    std::printf("(not root: systemd-tmpfiles --create cannot chown; only its syntax is checked)\n");
    CommandResult t = RunCommand(tmpfiles + " --cat-config --root=" + ShellQuote(root.path()) +
                                 " >/dev/null 2>&1");
    EXPECT_EQ(t.status, 0);
    return;
  }
  CommandResult t = RunCommand(tmpfiles + " --create --root=" + ShellQuote(root.path()) + " " +
                               ShellQuote(kSystemdDir + "/outpostd.tmpfiles.conf") + " 2>&1");
  ASSERT_EQ(t.status, 0) << t.output;
  for (const std::string d : {"var/lib/outpost", "var/lib/outpost/models", "var/cache/outpost",
                              "var/cache/outpost/kernels", "etc/outpost/models.d"}) {
    struct stat st {};
    ASSERT_EQ(::stat((root / d).c_str(), &st), 0) << d;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
    if (d.rfind("var/", 0) == 0) {
      EXPECT_NE(st.st_uid, 0u) << d << " should belong to outpost";
      EXPECT_EQ(st.st_mode & 07777, 0750u) << d;
    }
  }
}

// ---- sd_notify ------------------------------------------------------------------------------

class SdNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    notify_ = std::make_unique<NotifySocket>(box_.path("notify.sock"));
    ASSERT_TRUE(notify_->ok()) << "cannot bind " << box_.path("notify.sock");
    box_.AddManifest("iris.yaml", Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}}));
    box_.AddManifest("digits.yaml", Manifest("digits", "digits_cnn.onnx", {{"threads", "1"}}));
  }
  void TearDown() override {
    if (HasFailure() && daemon_ && daemon_->proc)
      std::fprintf(stderr, "---- outpostd stderr ----\n%s\nnotifications: %s\n",
                   daemon_->proc->Stderr().c_str(), Join(seen_).c_str());
  }
  void Start(StartOptions o) {
    o.env.push_back("NOTIFY_SOCKET=" + notify_->path());
    std::string err;
    daemon_ = box_.Start(o, &err);
    ASSERT_TRUE(daemon_) << err;
  }
  // WATCHDOG=1 datagrams within `ms`, and the longest gap between two of them.
  int CountWatchdog(int ms, double* max_gap_ms) {
    int n = 0;
    *max_gap_ms = 0;
    const auto until = Clock::now() + milliseconds(ms);
    std::optional<Clock::time_point> last;
    while (Clock::now() < until) {
      auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
      auto m = notify_->Receive(static_cast<int>(std::max<int64_t>(1, left)));
      if (!m) break;
      seen_.push_back(*m);
      if (!NotifySocket::HasLine(*m, "WATCHDOG=1")) continue;
      const auto now = Clock::now();
      if (last)
        *max_gap_ms =
            std::max(*max_gap_ms, std::chrono::duration<double, std::milli>(now - *last).count());
      last = now;
      ++n;
    }
    return n;
  }

  Sandbox box_;
  std::unique_ptr<NotifySocket> notify_;
  std::unique_ptr<Daemon> daemon_;
  std::vector<std::string> seen_;
};

TEST_F(SdNotifyTest, ReadyReloadingStopping) {
  ASSERT_NO_FATAL_FAILURE(Start({}));
  // READY=1 comes once the models are loaded, with a STATUS naming them and MAINPID.
  auto ready = notify_->WaitFor("READY=1", 10000, &seen_);
  ASSERT_TRUE(ready) << "no READY=1; got: " << Join(seen_);
  const std::string status = NotifySocket::Field(*ready, "STATUS");
  EXPECT_NE(status.find("iris"), std::string::npos) << status;
  EXPECT_NE(status.find("digits"), std::string::npos) << status;
  EXPECT_EQ(NotifySocket::Field(*ready, "MAINPID"), std::to_string(daemon_->proc->pid()));
  // Nothing claimed readiness before (a STATUS while loading is fine).
  for (size_t i = 0; i + 1 < seen_.size(); ++i)
    EXPECT_FALSE(NotifySocket::HasLine(seen_[i], "READY=1")) << seen_[i];
  // When READY=1 arrives, the server answers and both models serve.
  V2Client c(daemon_->port);
  for (const std::string m : {"iris", "digits"}) {
    auto r = c.Get("/v2/models/" + m + "/ready");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << m;
  }

  // SIGHUP: RELOADING=1, then READY=1 again.
  seen_.clear();
  ASSERT_TRUE(daemon_->proc->Signal(SIGHUP));
  auto reloading = notify_->WaitFor("RELOADING=1", 10000, &seen_);
  ASSERT_TRUE(reloading) << Join(seen_);
  auto ready2 = notify_->WaitFor("READY=1", 10000, &seen_);
  ASSERT_TRUE(ready2) << Join(seen_);
  EXPECT_NE(NotifySocket::Field(*ready2, "STATUS").find("iris"), std::string::npos) << *ready2;

  // SIGTERM: STOPPING=1, then a clean exit.
  seen_.clear();
  ASSERT_TRUE(daemon_->proc->Signal(SIGTERM));
  auto stopping = notify_->WaitFor("STOPPING=1", 10000, &seen_);
  ASSERT_TRUE(stopping) << Join(seen_);
  auto rc = daemon_->proc->Wait(10000);
  ASSERT_TRUE(rc);
  EXPECT_EQ(*rc, 0);
}

TEST_F(SdNotifyTest, WatchdogPingsWhenEnabledForItsPid) {
  StartOptions o;
  o.env = {"WATCHDOG_USEC=400000"};
  o.watchdog_pid = true;  // WATCHDOG_PID=<outpostd's own pid>, as systemd sets it
  ASSERT_NO_FATAL_FAILURE(Start(o));
  ASSERT_TRUE(notify_->WaitFor("READY=1", 10000, &seen_)) << Join(seen_);
  double gap = 0;
  const int n = CountWatchdog(1500, &gap);
  // Every WatchdogSec/2 = 200 ms: about 7 in 1.5 s; systemd would kill it after a 400 ms gap.
  EXPECT_GE(n, 4) << Join(seen_);
  EXPECT_LT(gap, 400.0);
}

TEST_F(SdNotifyTest, NoWatchdogPingsForAnotherPid) {
  StartOptions o;
  o.env = {"WATCHDOG_USEC=400000", "WATCHDOG_PID=1"};  // meant for some other process
  ASSERT_NO_FATAL_FAILURE(Start(o));
  ASSERT_TRUE(notify_->WaitFor("READY=1", 10000, &seen_)) << Join(seen_);
  double gap = 0;
  EXPECT_EQ(CountWatchdog(1000, &gap), 0) << Join(seen_);
}

// The watchdog must not slow down the manifest watcher: with WatchdogSec=10s a changed manifest
// is still picked up within about models.watch_interval_ms.
TEST_F(SdNotifyTest, WatchdogDoesNotSlowTheManifestWatch) {
  box_.AddConfig("models:\n  watch: true\n  watch_interval_ms: 200\n");
  StartOptions o;
  o.args = {"--config", box_.path("device.yaml")};
  o.env = {"WATCHDOG_USEC=10000000"};
  o.watchdog_pid = true;
  ASSERT_NO_FATAL_FAILURE(Start(o));
  ASSERT_TRUE(notify_->WaitFor("READY=1", 10000, &seen_)) << Join(seen_);
  std::this_thread::sleep_for(milliseconds(100));
  box_.AddManifest("iris.yaml",
                   Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}, {"version", "2"}}));
  const auto t0 = Clock::now();
  V2Client c(daemon_->port);
  bool switched = false;
  while (!switched && Clock::now() - t0 < milliseconds(6000)) {
    auto r = c.Get("/v2/models/iris");
    switched = r && r->status == 200 && r->JsonBody()["versions"] == Json::array({"2"});
    if (!switched) std::this_thread::sleep_for(milliseconds(20));
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  ASSERT_TRUE(switched) << "version 2 not served after 6 s";
  EXPECT_LT(ms, 1500.0) << "the manifest change took " << ms
                        << " ms to be noticed with watch_interval_ms 200";
}

// listen_address may be a host name (config/README.md; `--listen localhost:9000`): the daemon
// serves there, and its watchdog probe reaches it.
TEST_F(SdNotifyTest, HostNameListenAddressServesAndPingsWatchdog) {
  StartOptions o;
  o.listen = "localhost:0";
  o.env = {"WATCHDOG_USEC=400000"};
  o.watchdog_pid = true;
  ASSERT_NO_FATAL_FAILURE(Start(o));
  EXPECT_EQ(daemon_->host, "localhost");
  V2Client c(daemon_->port, "localhost");
  auto r = c.Get("/v2/health/ready");
  ASSERT_TRUE(r) << c.http().last_error();
  EXPECT_EQ(r->status, 200);
  ASSERT_TRUE(notify_->WaitFor("READY=1", 10000, &seen_)) << Join(seen_);
  double gap = 0;
  EXPECT_GE(CountWatchdog(1500, &gap), 4) << "no watchdog pings: " << Join(seen_);
}

}  // namespace
}  // namespace outpost::testing
