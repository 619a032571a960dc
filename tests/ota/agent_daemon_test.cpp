// `outpost ota agent`, the daemon, as a process: its settings from a device config, a check on
// SIGUSR1, the reboot by a command that records it (inside the maintenance window only, and not
// while outpostd has inference in flight), the health gate after the "boot" (a new boot id, the
// real outpostd restarted on the new deployment), refusals remembered, network failures retried
// with backoff, and every transition published as a telemetry event to a real mosquitto.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <set>
#include <sstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent_fixture.h"
#include "mqtt_broker.h"

namespace outpost::ota {
namespace {

using ::testing::HasSubstr;
using testing::Process;
using testing::ProcessOptions;

bool WaitFor(const std::function<bool()>& ok, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!ok()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

class OtaAgentDaemonTest : public OtaAgentTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OtaAgentTest::SetUp());
    fs::create_directories(dir_ + "/keys");
    fs::copy_file(root_ + "/Release.asc", dir_ + "/keys/Release.asc");
    reboots_ = dir_ + "/reboots";
    reboot_command_ = "echo reboot >> " + reboots_;
  }
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "---- agent stderr ----\n%s\n", AgentLog().c_str());
    StopAgent();
    OtaAgentTest::TearDown();
  }

  // The device config the agent reads: outpostd at `port`, the remote, the window.
  std::string WriteConfig(uint16_t port, const std::string& window,
                          const std::string& extra_ota = "", const std::string& telemetry = "") {
    std::string y = "server:\n  listen_address: 127.0.0.1\n  port: " + std::to_string(port) +
                    "\nota:\n  enabled: true\n  remote_url: " + cfg_.remote_url +
                    "\n  ref: outpost/test/x86_64\n  trusted_keys_dir: " + dir_ +
                    "/keys\n  state_dir: " + cfg_.state_dir +
                    "\n  jitter_s: 0\n  maintenance_window: \"" + window +
                    "\"\n  reboot_command: \"" + reboot_command_ +
                    "\"\n  health_deadline_s: " + std::to_string(deadline_s_) +
                    "\n  health_gate_runs: 3\n" + extra_ota + telemetry;
    testing::WriteFile(dir_ + "/device.yaml", y);
    return dir_ + "/device.yaml";
  }

  void StartAgent(std::vector<std::string> env = {}) {
    StopAgent();
    ProcessOptions o;
    o.argv = {OUTPOST_CLI, "ota",       "agent",          "--config",  dir_ + "/device.yaml",
              "--sysroot", sysroot_,    "--boot-id",      cfg_.boot_id,
              "--booted-commit",        cfg_.booted_commit};
    o.env = std::move(env);
    o.stderr_path = dir_ + "/agent-" + std::to_string(++agents_) + ".log";
    o.capture_stdout = false;
    std::string err;
    agent_ = Process::Start(o, &err);
    ASSERT_TRUE(agent_) << err;
    log_path_ = o.stderr_path;
  }
  // SIGTERM; the exit status (nullopt when it did not exit in time).
  std::optional<int> StopAgent() {
    if (!agent_) return std::nullopt;
    if (agent_->running()) agent_->Signal(SIGTERM);
    auto st = agent_->Wait(20000);
    if (!st) agent_->Kill();
    agent_.reset();
    return st;
  }
  std::string AgentLog() const {
    return log_path_.empty() ? "" : testing::ReadFile(log_path_);
  }
  bool LogHas(const std::string& s) const { return AgentLog().find(s) != std::string::npos; }
  std::vector<std::string> Reboots() const {
    std::vector<std::string> lines;
    std::istringstream in(testing::ReadFile(reboots_));
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  std::optional<Record> Persisted() const {
    auto l = StateFile(cfg_.state_dir).Load();
    if (!l.ok() || !l->has_value()) return std::nullopt;
    return **l;
  }
  bool StateIs(ota::State s) const {
    auto r = Persisted();
    return r && r->state == s;
  }

  std::unique_ptr<Process> agent_;
  std::string log_path_, reboots_, reboot_command_;
  int agents_ = 0;
  int deadline_s_ = 30;  // ota.health_deadline_s
};

// The daemon's whole cycle: first check at start (up to date), a release found on SIGUSR1,
// staged and rebooted by the command (once), then, after the "boot", the health gate commits it.
TEST_F(OtaAgentDaemonTest, ChecksOnDemandRebootsOnceAndCommitsAfterTheBoot) {
  ASSERT_NO_FATAL_FAILURE(Boot());  // v1
  WriteConfig(cfg_.outpostd_port, "always");
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return LogHas("up to date at " + v1_); }, 60000)) << AgentLog();
  // The transition is logged when decided, then saved (write, fsync, rename): on a loaded
  // machine the file can lag the log line by a few milliseconds.
  EXPECT_TRUE(WaitFor([&] { return StateIs(State::kIdle); }, 10000));

  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_TRUE(agent_->Signal(SIGUSR1));
  ASSERT_TRUE(WaitFor([&] { return Reboots().size() == 1; }, 120000)) << AgentLog();
  auto r = Persisted();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kRebooting);
  EXPECT_EQ(r->target_commit, v2);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_EQ(StopAgent(), std::optional<int>(0)) << "SIGTERM is a clean stop";

  ASSERT_NO_FATAL_FAILURE(Boot());  // into v2
  ASSERT_EQ(cfg_.booted_commit, v2);
  WriteConfig(cfg_.outpostd_port, "always");
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return StateIs(State::kCommitted); }, 120000)) << AgentLog();
  EXPECT_EQ(Reboots().size(), 1u);
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_EQ(StopAgent(), std::optional<int>(0));
}

// Outside the window a staged release waits (no reboot); inside it the reboot waits until
// outpostd has answered the request it holds (a batch that waits 8 s to fill): the reboot
// command reads outpostd's in-flight gauge and finds 0.
TEST_F(OtaAgentDaemonTest, RebootsOnlyInsideTheWindowAndNotWhileInferenceIsInFlight) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  const int m = tm.tm_hour * 60 + tm.tm_min;
  char window[16];
  std::snprintf(window, sizeof window, "%02d:%02d-%02d:%02d", (m + 120) / 60 % 24, (m + 120) % 60,
                (m + 180) / 60 % 24, (m + 180) % 60);
  WriteConfig(cfg_.outpostd_port, window);
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return LogHas("reboot at the maintenance window"); }, 120000))
      << AgentLog();
  EXPECT_TRUE(StateIs(State::kRebooting));
  EXPECT_TRUE(Reboots().empty());
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_EQ(StopAgent(), std::optional<int>(0));

  // An outpostd whose iris holds a request 8 s while its batch fills.
  testing::Sandbox slow;
  slow.AddManifest("iris.yaml", testing::Manifest("iris", "iris_mlp.onnx",
                                                  {{"threads", "1"},
                                                   {"max-batch-size", "4"},
                                                   {"max-queue-delay-us", "8000000"}}));
  std::string err;
  auto d = slow.Start({}, &err);
  ASSERT_TRUE(d) << err;
  const std::string url = "http://127.0.0.1:" + std::to_string(d->port);
  ProcessOptions co;
  co.argv = {"/usr/bin/curl", "-s", "-H", "Content-Type: application/json", "-d",
             R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],)"
             R"("data":[5.1,3.5,1.4,0.2]}]})",
             url + "/v2/models/iris/infer"};
  auto curl = Process::Start(co, &err);
  ASSERT_TRUE(curl) << err;
  auto in_flight = [&] {
    return testing::RunCommand("curl -s " + url + "/metrics | grep '^outpost_serve_in_flight '")
        .output;
  };
  ASSERT_TRUE(WaitFor([&] { return in_flight() == "outpost_serve_in_flight 1\n"; }, 5000))
      << in_flight();

  // The reboot command records the in-flight gauge and the handoff gauge (the agent asked
  // outpostd for the handoff before waiting; this iris has no fallback endpoints, so its request
  // finishes here).
  reboot_command_ = "(curl -s " + url + "/metrics | grep '^outpost_serve_in_flight '; curl -s " +
                    url + "/metrics | grep '^outpost_serve_handoff ') >> " + reboots_;
  WriteConfig(d->port, "always", "  idle_wait_s: 60\n");
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return Reboots().size() == 2; }, 60000)) << AgentLog();
  EXPECT_EQ(Reboots()[0], "outpost_serve_in_flight 0");
  EXPECT_EQ(Reboots()[1], "outpost_serve_handoff 1");
  EXPECT_THAT(AgentLog(), HasSubstr("1 inference requests in flight; waiting"));
  EXPECT_THAT(AgentLog(), HasSubstr("outpostd hands requests of models with fallback endpoints"));
  EXPECT_THAT(d->proc->Stderr(), HasSubstr("handoff on (reboot"));
  ASSERT_TRUE(curl->Wait(10000));
  auto answer = curl->ReadLine(1000);
  ASSERT_TRUE(answer);
  EXPECT_THAT(*answer, HasSubstr("\"outputs\""));
}

// A head refused by the pull (the ref moved back to an older commit: a downgrade) is remembered:
// the next check finds it still the head and pulls nothing. With the server gone, the check
// fails on the network and is retried with backoff, retry_max times, then waits the interval.
TEST_F(OtaAgentDaemonTest, RefusedHeadIsNotPulledAgainAndNetworkFailuresBackOff) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string old = Build(Release("0.9", 1690000000, Golden("old", /*wrong=*/false)));
  ASSERT_EQ(old.size(), 64u);
  WriteConfig(cfg_.outpostd_port, "always",
              "  retry_max: 2\n  retry_base_s: 1\n  retry_max_delay_s: 2\n");
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return StateIs(State::kFailed); }, 60000)) << AgentLog();
  auto r = Persisted();
  ASSERT_TRUE(r);
  EXPECT_THAT(r->reason, HasSubstr("refused"));
  EXPECT_EQ(r->refused_commit, old);

  server_->ClearRequests();
  ASSERT_TRUE(agent_->Signal(SIGUSR1));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto now = Persisted();
        return now && now->state == State::kIdle &&
               now->reason.find("was rolled back or refused before") != std::string::npos;
      },
      60000))
      << AgentLog();
  for (const auto& req : server_->Requests())
    EXPECT_THAT(req, ::testing::Not(HasSubstr("/objects/"))) << "pulled again";
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});

  server_.reset();  // the network is gone
  ASSERT_TRUE(agent_->Signal(SIGUSR1));
  ASSERT_TRUE(WaitFor([&] { return LogHas("2 retries spent"); }, 60000)) << AgentLog();
  const std::string log = AgentLog();
  const auto r1 = log.find("retry 1/2"), r2 = log.find("retry 2/2");
  ASSERT_NE(r1, std::string::npos) << log;
  ASSERT_NE(r2, std::string::npos) << log;
  EXPECT_LT(r1, r2);
  EXPECT_EQ(log.find("retry 3/2"), std::string::npos);
  EXPECT_EQ(StopAgent(), std::optional<int>(0));
}

// Every transition is an `ota_transition` event on <prefix>/<fleet>/<device>-ota/events of the
// telemetry broker (a real mosquitto); the same broker, from telemetry.broker_url, is what the
// health gate checks: down after the boot into v2, the gate fails naming it and v2 is rolled
// back (the rollback's reboot does not wait for the window).
TEST_F(OtaAgentDaemonTest, TransitionsArePublishedAndTheGateChecksTheConfiguredBroker) {
  if (!fs::exists(OUTPOST_MOSQUITTO_BIN)) GTEST_SKIP() << "mosquitto not installed";
  testing_mqtt::Broker mqtt;
  ASSERT_NO_FATAL_FAILURE(testing_mqtt::StartBroker(dir_, "outpost/f/d1-ota/events", &mqtt));
  const std::string ps = std::to_string(mqtt.port);
  auto& sub = mqtt.sub;
  auto& broker = mqtt.broker;
  const std::string telemetry = "telemetry:\n  enabled: true\n  broker_url: mqtt://127.0.0.1:" +
                                ps + "\n  device_id: d1\n  fleet: f\n  buffer_dir: " + dir_ +
                                "/telemetry\n  metrics_interval_ms: 3600000\n";
  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  WriteConfig(cfg_.outpostd_port, "always", "", telemetry);
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return Reboots().size() == 1; }, 120000)) << AgentLog();

  // ota_transition fields, in seq order
  const std::vector<nlohmann::json> events = testing_mqtt::ReadEvents(
      sub.get(), "d1-ota", "ota_transition",
      [](const auto& e) { return !e.empty() && e.back().value("to", "") == "rebooting"; }, 60);
  std::vector<std::string> path;
  for (const auto& e : events)
    path.push_back(e["from"].get<std::string>() + "->" + e["to"].get<std::string>());
  EXPECT_EQ(path, (std::vector<std::string>{"idle->checking", "checking->downloading",
                                            "downloading->verifying", "verifying->staged",
                                            "staged->rebooting"}));
  ASSERT_EQ(events.size(), 5u);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["target_commit"], v2) << i;
    EXPECT_EQ(events[i]["previous_commit"], v1_) << i;
  }
  EXPECT_THAT(events[1]["reason"].get<std::string>(), HasSubstr("new commit " + v2));
  EXPECT_EQ(events[4]["target_version"], "2.0");
  EXPECT_EQ(StopAgent(), std::optional<int>(0));

  broker->Signal(SIGTERM);  // the broker goes down
  ASSERT_TRUE(broker->Wait(10000));
  ASSERT_NO_FATAL_FAILURE(Boot());  // into v2
  WriteConfig(cfg_.outpostd_port, "always", "", telemetry);
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return Reboots().size() == 2; }, 120000)) << AgentLog();
  auto r = Persisted();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->state, State::kRolledBack);
  EXPECT_THAT(r->reason, HasSubstr("the MQTT broker is unreachable"));
  EXPECT_EQ(r->refused_commit, v2);
  EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
}

// The fault matrix on the real agent: the agent SIGKILLs itself right after state S is persisted
// (OUTPOST_OTA_FAULT_KILL_AFTER), up to 3 times (a state that the resumed agent does not enter
// again is hit once), and is restarted on the same boot; a requested reboot is a new boot into
// the default deployment. It always ends on a good deployment: v2 committed and booted, or, for
// a release whose model gives wrong answers, v1 booted and alone, v2 refused from then on.
// `ostree admin status` is the independent reader.
struct FaultCase {
  const char* state;
  bool bad;  // v2's model fails its golden: it must end rolled back
};

// gtest prints the case as "good/checking" (test names, ctest) instead of its bytes.
void PrintTo(const FaultCase& c, std::ostream* os) {
  *os << (c.bad ? "bad/" : "good/") << c.state;
}

class OtaAgentFaultTest : public OtaAgentDaemonTest,
                          public ::testing::WithParamInterface<FaultCase> {};

TEST_P(OtaAgentFaultTest, KilledAfterEachStateEndsOnAGoodDeployment) {
  const FaultCase fc = GetParam();
  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string v2 = Build(Release("2.0", 1700000100, Golden("v2", fc.bad)));
  ASSERT_EQ(v2.size(), 64u);
  int kills = 0, rests = 0;
  for (int round = 0; round < 30; ++round) {
    deadline_s_ = fc.bad ? 10 : 30;  // a bad v2 never gets ready: the gate waits this long
    WriteConfig(cfg_.outpostd_port, "always");
    const size_t reboots = Reboots().size();
    std::vector<std::string> env;
    if (kills < 3) env.push_back(std::string("OUTPOST_OTA_FAULT_KILL_AFTER=") + fc.state);
    ASSERT_NO_FATAL_FAILURE(StartAgent(std::move(env)));
    ASSERT_TRUE(WaitFor(
        [&] {
          return agent_->Wait(0).has_value() || Reboots().size() > reboots ||
                 LogHas("next check in");
        },
        120000))
        << AgentLog();
    if (!agent_->running()) {
      EXPECT_EQ(agent_->Wait(0), std::optional<int>(128 + SIGKILL));
      ASSERT_TRUE(LogHas("OUTPOST_OTA_FAULT_KILL_AFTER")) << "died otherwise:\n" << AgentLog();
      ++kills;
      continue;
    }
    if (Reboots().size() > reboots) {
      StopAgent();
      ASSERT_NO_FATAL_FAILURE(Boot());
      continue;
    }
    // At rest (waiting for the next check): the agent has finished the cycle.
    ++rests;
    break;
  }
  ASSERT_EQ(rests, 1) << "never came to rest; kills " << kills;
  RecordProperty("kills", kills);
  RecordProperty("reboots", static_cast<int>(Reboots().size()));
  std::printf("fault matrix: %s v2, killed after %s %d time(s), %zu reboot(s)\n",
              fc.bad ? "bad" : "good", fc.state, kills, Reboots().size());
  EXPECT_GE(kills, 1) << "state " << fc.state << " was never persisted";
  auto r = Persisted();
  ASSERT_TRUE(r);
  if (fc.bad) {
    EXPECT_EQ(StatusCommits(), std::vector<std::string>{v1_});
    EXPECT_EQ(cfg_.booted_commit, v1_);
    EXPECT_EQ(r->refused_commit, v2);
  } else {
    EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
    EXPECT_EQ(cfg_.booted_commit, v2);
    EXPECT_TRUE(r->state == State::kCommitted || r->state == State::kIdle)
        << StateName(r->state);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, OtaAgentFaultTest,
    ::testing::Values(FaultCase{"checking", false}, FaultCase{"downloading", false},
                      FaultCase{"verifying", false}, FaultCase{"staged", false},
                      FaultCase{"rebooting", false}, FaultCase{"verifying-after-boot", false},
                      FaultCase{"committed", false}, FaultCase{"verifying-after-boot", true},
                      FaultCase{"rolling-back", true}, FaultCase{"rolled-back", true}),
    [](const ::testing::TestParamInfo<FaultCase>& i) {
      std::string n = std::string(i.param.bad ? "Bad_" : "Good_") + i.param.state;
      for (auto& c : n)
        if (c == '-') c = '_';
      return n;
    });

// `outpost ota agent` killed (SIGKILL) in the middle of a rate-limited delta download: the
// partial file stays, and the restarted agent continues it with a range request from the byte
// where the killed one stopped, instead of downloading it again from 0.
TEST_F(OtaAgentDaemonTest, PartialDownloadSurvivesAnAgentKill) {
  ASSERT_NO_FATAL_FAILURE(Boot());  // v1
  testing::Cmd c = testing::Sh("mkdir -p " + dir_ + "/base/usr/share/outpost && head -c " +
                               std::to_string(1 << 20) + " /dev/urandom > " + dir_ +
                               "/base/usr/share/outpost/blob.bin");
  ASSERT_EQ(c.rc, 0) << c.out;
  std::string v2 = Build(Release("2.0", 1700000100, Golden("good2", /*wrong=*/false)));
  ASSERT_EQ(v2.size(), 64u);
  WriteConfig(cfg_.outpostd_port, "always", "  rate_limit_kbps: 2000\n");  // 250 kB/s: ~4 s
  server_->ClearRequests();
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  const std::string part = cfg_.state_dir + "/download/" + v1_ + "-" + v2 + "/0";
  auto size = [&] {
    std::error_code ec;
    auto n = std::filesystem::file_size(part, ec);
    return ec ? uintmax_t{0} : n;
  };
  ASSERT_TRUE(WaitFor([&] { return size() > (256u << 10); }, 60000)) << AgentLog();
  agent_->Kill();
  agent_.reset();
  const uintmax_t have = size();
  ASSERT_LT(have, 1u << 20) << "the download finished before the kill";
  EXPECT_TRUE(StateIs(State::kDownloading));

  ASSERT_NO_FATAL_FAILURE(StartAgent());
  ASSERT_TRUE(WaitFor([&] { return Reboots().size() == 1; }, 120000)) << AgentLog();
  bool resumed = false;
  for (const auto& [path, first] : server_->Ranges())
    resumed |= path.size() > 2 && path.substr(path.size() - 2) == "/0" && first == have;
  EXPECT_TRUE(resumed) << "no range request from byte " << have;
  int part_requests = 0;
  for (const auto& p : server_->Requests())
    part_requests += p.rfind("/repo/deltas/", 0) == 0 && p.substr(p.size() - 2) == "/0";
  EXPECT_EQ(part_requests, 2) << "the part was requested again from 0";
  EXPECT_EQ(StatusCommits(), (std::vector<std::string>{v2, v1_}));
  EXPECT_FALSE(std::filesystem::exists(part));
}

}  // namespace
}  // namespace outpost::ota
