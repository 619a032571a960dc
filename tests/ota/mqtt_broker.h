// A real mosquitto on 127.0.0.1 (a free port) and a mosquitto_sub on the topics a test reads,
// started and known to be subscribed (it got a probe message): for the agent's telemetry events.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "outpostd/process.h"
#include "outpostd/test_util.h"
#include "outpostd/v2_client.h"

namespace outpost::ota::testing_mqtt {

struct Broker {
  std::unique_ptr<outpost::testing::Process> broker, sub;
  uint16_t port = 0;
};

// Fails (ASSERT) when mosquitto or its clients are missing; the caller skips first if it wants.
inline void StartBroker(const std::string& dir, const std::string& topic, Broker* b) {
  namespace t = outpost::testing;
  const std::string sub_bin = t::FindExecutable("mosquitto_sub");
  const std::string pub_bin = t::FindExecutable("mosquitto_pub");
  ASSERT_FALSE(sub_bin.empty() || pub_bin.empty()) << "mosquitto-clients not installed";
  b->port = t::FreePort();
  const std::string ps = std::to_string(b->port);
  t::WriteFile(dir + "/mosquitto.conf",
               "user root\nlistener " + ps + " 127.0.0.1\nallow_anonymous true\n");
  t::ProcessOptions mo;
  mo.argv = {OUTPOST_MOSQUITTO_BIN, "-c", dir + "/mosquitto.conf"};
  mo.capture_stdout = false;
  mo.stderr_path = dir + "/mosquitto.log";
  std::string err;
  b->broker = t::Process::Start(mo, &err);
  ASSERT_TRUE(b->broker) << err;
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    int fd = t::ConnectTcp("127.0.0.1", b->port);
    if (fd >= 0) ::close(fd);
    up = fd >= 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(up) << "mosquitto did not listen";
  t::ProcessOptions so;
  so.argv = {sub_bin, "-h", "127.0.0.1", "-p", ps, "-q", "1", "-t", topic, "-t", "outpost/f/probe"};
  b->sub = t::Process::Start(so, &err);
  ASSERT_TRUE(b->sub) << err;
  bool subscribed = false;  // the subscriber got a probe: it is subscribed
  for (int i = 0; i < 50 && !subscribed; ++i) {
    t::RunCommand(pub_bin + " -h 127.0.0.1 -p " + ps + " -t outpost/f/probe -m probe");
    auto line = b->sub->ReadLine(200);
    subscribed = line && *line == "probe";
  }
  ASSERT_TRUE(subscribed);
}

// The `fields` of the events of `type` that the subscriber reads (each record seq once, every
// batch from `device`), in order, until done(events) or `timeout_s` passed.
inline std::vector<nlohmann::json> ReadEvents(
    outpost::testing::Process* sub, const std::string& device, const std::string& type,
    const std::function<bool(const std::vector<nlohmann::json>&)>& done, int timeout_s) {
  std::vector<nlohmann::json> events;
  std::set<uint64_t> seen;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (!done(events) && std::chrono::steady_clock::now() < until) {
    auto line = sub->ReadLine(1000);
    if (!line || *line == "probe") continue;
    auto batch = nlohmann::json::parse(*line, nullptr, false);
    EXPECT_FALSE(batch.is_discarded()) << *line;
    if (batch.is_discarded()) break;
    EXPECT_EQ(batch["device"], device);
    for (const auto& rec : batch["records"])
      if (seen.insert(rec["seq"].get<uint64_t>()).second && rec["data"]["type"] == type)
        events.push_back(rec["data"]["fields"]);
  }
  return events;
}

}  // namespace outpost::ota::testing_mqtt
