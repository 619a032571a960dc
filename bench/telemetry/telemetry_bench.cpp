// Telemetry benchmarks (see bench/telemetry/run.sh).
//   telemetry_bench append DIR [records] [batch] [threads]
//     every-batch appends: `threads` producers each calling AppendBatch with `batch` records
//     (batch 1 = single-record Append; concurrent producers are group-committed).
//   telemetry_bench drain DIR PORT [records] [live_per_s]
//     fills a backlog of `records` events, then drains it to the broker on 127.0.0.1:PORT while
//     a live producer appends `live_per_s` metrics records per second; prints rate and RSS.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "outpost/telemetry/publisher.h"
#include "outpost/telemetry/queue.h"

using namespace outpost::telemetry;
using Clock = std::chrono::steady_clock;

namespace {

long RssKb(const char* key = "VmRSS:") {
  std::ifstream f("/proc/self/status");
  std::string k;
  long v = 0;
  while (f >> k) {
    if (k == key) {
      f >> v;
      return v;
    }
    std::getline(f, k);
  }
  return 0;
}

std::string Payload(uint64_t i) {
  // ~200 bytes, shaped like an event record.
  std::string s = R"({"type":"inference","ts":1700000000000,"fields":{"model":"resnet18","i":)" +
                  std::to_string(i) + R"(,"latency_ms":3.25,"backend":"cpu","pad":")";
  s.append(200 - std::min<size_t>(s.size(), 190), 'x');
  s += "\"}}";
  return s;
}

double Secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int Append(const std::string& dir, uint64_t n, size_t batch, int threads) {
  QueueOptions qo;
  qo.dir = dir;
  qo.sync = SyncPolicy::kEveryBatch;
  qo.limits[1].max_bytes = 4ull << 30;  // no limit in the way
  qo.limits[1].full_policy = FullPolicy::kDropOldest;
  auto q = DiskQueue::Open(qo);
  if (!q.ok()) {
    std::fprintf(stderr, "%s\n", q.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> ps;
  for (size_t i = 0; i < batch; ++i) ps.push_back(Payload(i));
  std::vector<std::string_view> views(ps.begin(), ps.end());
  uint64_t per_thread = n / static_cast<uint64_t>(threads);
  std::atomic<uint64_t> failures{0};
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (uint64_t done = 0; done < per_thread; done += batch) {
        auto r = batch == 1 ? (*q)->Append(Stream::kEvents, views[0])
                            : (*q)->AppendBatch(Stream::kEvents, views);
        if (!r.ok()) failures++;
      }
    });
  }
  for (auto& t : ts) t.join();
  auto t1 = Clock::now();
  uint64_t total = per_thread * static_cast<uint64_t>(threads);
  double s = Secs(t0, t1);
  std::printf(
      "append every-batch: %llu records of %zu B, batch %zu, %d threads: %.2f s, %.0f records/s, "
      "%.1f MB/s, failures %llu, RSS %ld KiB\n",
      static_cast<unsigned long long>(total), ps[0].size(), batch, threads, s, total / s,
      total * (ps[0].size() + 24) / s / 1e6, static_cast<unsigned long long>(failures.load()),
      RssKb());
  return failures ? 1 : 0;
}

int Drain(const std::string& dir, int port, uint64_t n, int live_per_s) {
  QueueOptions qo;
  qo.dir = dir;
  qo.sync = SyncPolicy::kEveryBatch;
  qo.limits[1].max_bytes = 4ull << 30;
  qo.limits[1].full_policy = FullPolicy::kDropOldest;
  {
    auto q = DiskQueue::Open(qo);
    if (!q.ok()) return 1;
    std::vector<std::string> ps;
    for (size_t i = 0; i < 1000; ++i) ps.push_back(Payload(i));
    std::vector<std::string_view> views(ps.begin(), ps.end());
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < n; i += 1000) {
      if (!(*q)->AppendBatch(Stream::kEvents, views).ok()) return 1;
    }
    std::printf("backlog: %llu events written in %.2f s\n", static_cast<unsigned long long>(n),
                Secs(t0, Clock::now()));
  }
  // A fresh process state as after a reboot: open (recovery scan) then drain.
  long rss0 = RssKb();
  auto t_open = Clock::now();
  auto q = DiskQueue::Open(qo);
  if (!q.ok()) return 1;
  double open_s = Secs(t_open, Clock::now());
  long rss_open = RssKb();
  MqttOptions mo;
  mo.port = port;
  mo.device_id = "bench";
  mo.fleet = "bench";
  mo.max_inflight = 16;
  mo.batch_max_records = 500;
  mo.batch_max_bytes = 512 * 1024;
  Publisher pub(q->get(), mo);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> live{0};
  std::thread producer([&] {
    auto next = Clock::now();
    while (!stop) {
      if ((*q)->Append(Stream::kMetrics, Payload(live)).ok()) live++;
      next += std::chrono::microseconds(1000000 / std::max(live_per_s, 1));
      std::this_thread::sleep_until(next);
    }
  });
  auto t0 = Clock::now();
  if (!pub.Start().ok()) return 1;
  long rss_peak_during = 0;
  uint64_t target = n;
  double live_lag_max = 0;
  while (true) {
    auto ev = (*q)->Stats(Stream::kEvents);
    auto me = (*q)->Stats(Stream::kMetrics);
    live_lag_max = std::max(live_lag_max, static_cast<double>(me.next_seq - 1 - me.acked_seq));
    rss_peak_during = std::max(rss_peak_during, RssKb());
    if (ev.acked_seq >= target) break;
    if (Secs(t0, Clock::now()) > 300) {
      std::printf("drain: timed out at %llu\n", static_cast<unsigned long long>(ev.acked_seq));
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double s = Secs(t0, Clock::now());
  stop = true;
  producer.join();
  pub.Stop();
  auto st = pub.stats();
  std::printf(
      "drain: %llu backlog records to mosquitto in %.2f s = %.0f records/s (%llu live records "
      "appended meanwhile at %d/s; max live records not yet acked %.0f); %llu batches\n",
      static_cast<unsigned long long>(n), s, n / s, static_cast<unsigned long long>(live.load()),
      live_per_s, live_lag_max, static_cast<unsigned long long>(st.acked_batches));
  std::printf("recovery scan on open: %.2f s\n", open_s);
  std::printf("RSS KiB: before open %ld, after open %ld, peak during drain %ld, after drain %ld\n",
              rss0, rss_open, rss_peak_during, RssKb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(
        stderr,
        "usage: %s append DIR [records] [batch] [threads] | drain DIR PORT [records] [live/s]\n",
        argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  if (mode == "append") {
    uint64_t n = argc > 3 ? std::stoull(argv[3]) : 1000000;
    size_t batch = argc > 4 ? std::stoul(argv[4]) : 256;
    int threads = argc > 5 ? std::stoi(argv[5]) : 1;
    return Append(argv[2], n, batch, threads);
  }
  if (mode == "drain" && argc >= 4) {
    uint64_t n = argc > 4 ? std::stoull(argv[4]) : 1000000;
    int live = argc > 5 ? std::stoi(argv[5]) : 1000;
    return Drain(argv[2], std::stoi(argv[3]), n, live);
  }
  return 2;
}
