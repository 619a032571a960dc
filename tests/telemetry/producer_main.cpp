// Test-only producer for the kill -9 matrix.
//   telemetry_test_producer produce <queue dir> <broker port> <ack file>
//     appends events (every-batch) in small groups forever, publishing as it goes; after each
//     Append returns, its seqs go to <ack file> (one per line).
//   telemetry_test_producer drain <queue dir> <broker port> <ack file>
//     publishes until every stream is acknowledged, then exits 0 (1 after 60 s).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>

#include "outpost/telemetry/publisher.h"
#include "outpost/telemetry/queue.h"

using namespace outpost::telemetry;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s produce|drain DIR PORT ACKFILE\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  QueueOptions qo;
  qo.dir = argv[2];
  qo.sync = SyncPolicy::kEveryBatch;
  qo.segment_bytes = 64 * 1024;
  auto q = DiskQueue::Open(qo);
  if (!q.ok()) {
    std::fprintf(stderr, "open: %s\n", q.status().ToString().c_str());
    return 3;
  }
  MqttOptions mo;
  mo.port = std::stoi(argv[3]);
  mo.device_id = "dev-kill";
  mo.fleet = "test";
  mo.max_inflight = 8;
  mo.batch_max_records = 20;
  mo.backoff_initial_ms = 20;
  mo.backoff_max_ms = 200;
  Publisher pub(q->get(), mo);
  if (!pub.Start().ok()) return 4;
  if (mode == "drain") {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until) {
      bool done = true;
      for (int s = 0; s < kNumStreams; ++s) {
        auto st = (*q)->Stats(static_cast<Stream>(s));
        done &= st.acked_seq + 1 >= st.next_seq;
      }
      if (done) {
        pub.Stop();
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return 1;
  }
  int fd = ::open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return 5;
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  for (uint64_t n = 0;; ++n) {
    size_t k = 1 + rng() % 8;
    std::vector<std::string> ps;
    for (size_t i = 0; i < k; ++i)
      ps.push_back(nlohmann::json{{"pid", ::getpid()}, {"n", n}, {"i", i}}.dump());
    std::vector<std::string_view> v(ps.begin(), ps.end());
    auto r = (*q)->AppendBatch(Stream::kEvents, v);
    if (!r.ok()) continue;
    std::string line;
    for (size_t i = 0; i < k; ++i) line += std::to_string(*r + i) + "\n";
    if (::write(fd, line.data(), line.size()) < 0) return 6;
  }
}
