// DiskQueue: append/read/ack/restart, recovery from damaged files, limits, TTL and priorities.
// Expected seqs come from the documented format (24-byte segment header, 24-byte frame header).
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "crc32c.h"
#include "outpost/core/metrics.h"
#include "test_util.h"

namespace outpost::telemetry {
namespace {

namespace fs = std::filesystem;
using testing::DrainAll;
using testing::DrainGaps;
using testing::TempDir;

constexpr size_t kPayload = 100;  // every test record: 24 + 100 = 124 bytes on disk
constexpr uint64_t kFrame = 24 + kPayload;

std::string Payload(uint64_t i) {
  std::string s = "record-" + std::to_string(i) + "-";
  s.resize(kPayload, 'x');
  return s;
}

uint64_t Dropped(Stream s, const std::string& reason) {
  return MetricsRegistry::Global()
      .GetCounter("outpost_telemetry_records_dropped_total", "",
                  {{"stream", StreamName(s)}, {"reason", reason}})
      .value();
}

QueueOptions SmallSegments(const std::string& dir) {
  QueueOptions o;
  o.dir = dir;
  o.segment_bytes = 4096;  // (4096 - 24) / 124 = 32 records per segment
  return o;
}

std::vector<fs::path> Segments(const std::string& dir, Stream s) {
  std::vector<fs::path> v;
  for (auto& e : fs::directory_iterator(dir + "/" + StreamName(s)))
    if (e.path().filename().string().rfind("seg-", 0) == 0) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

void AppendN(DiskQueue& q, Stream s, uint64_t from, uint64_t to) {
  for (uint64_t i = from; i <= to; ++i) {
    auto r = q.Append(s, Payload(i));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(*r, i);
  }
}

void Patch(const fs::path& p, uint64_t off, const std::string& bytes) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(off));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void FlipBit(const fs::path& p, uint64_t off) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(off));
  char c;
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(static_cast<std::streamoff>(off));
  f.write(&c, 1);
}

std::set<uint64_t> Seqs(const std::vector<Record>& rs) {
  std::set<uint64_t> s;
  for (auto& r : rs) {
    EXPECT_EQ(r.payload, Payload(r.seq)) << "seq " << r.seq;
    s.insert(r.seq);
  }
  return s;
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 and the usual check value.
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), 32), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), 32), 0x62A8AB43u);
}

TEST(SyncPolicy, Parses) {
  EXPECT_EQ(ParseSyncPolicy("every-batch")->first, SyncPolicy::kEveryBatch);
  auto iv = ParseSyncPolicy("interval=250ms");
  ASSERT_TRUE(iv.ok());
  EXPECT_EQ(iv->first, SyncPolicy::kInterval);
  EXPECT_EQ(iv->second, 250);
  EXPECT_EQ(ParseSyncPolicy("never")->first, SyncPolicy::kNone);
  EXPECT_FALSE(ParseSyncPolicy("interval=ms").ok());
  EXPECT_FALSE(ParseSyncPolicy("sometimes").ok());
}

TEST(DiskQueue, AppendReadAckRestart) {
  TempDir d;
  {
    auto q = DiskQueue::Open(SmallSegments(d.path()));
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    AppendN(**q, Stream::kEvents, 1, 100);
    auto b = (*q)->ReadNext(Stream::kEvents, 30, 1 << 20);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->first_seq, 1u);
    EXPECT_EQ(b->last_seq, 30u);
    ASSERT_EQ(b->records.size(), 30u);
    (*q)->Ack(Stream::kEvents, 1);
    auto b2 = (*q)->ReadNext(Stream::kEvents, 30, 1 << 20);  // read, never acked
    ASSERT_TRUE(b2);
    EXPECT_EQ(b2->first_seq, 31u);
    EXPECT_EQ((*q)->Stats(Stream::kEvents).acked_seq, 30u);
  }
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)->Stats(Stream::kEvents).next_seq, 101u);
  auto rs = DrainAll(**q, Stream::kEvents);
  ASSERT_EQ(rs.size(), 70u);  // 31..100: the unacked batch comes again
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(rs[i].seq, 31 + i);
  Seqs(rs);
  AppendN(**q, Stream::kEvents, 101, 105);
  EXPECT_EQ(DrainAll(**q, Stream::kEvents).size(), 5u);
  // Fully acknowledged segments are deleted; the active one stays.
  EXPECT_EQ((*q)->Stats(Stream::kEvents).segments, 1u);
  EXPECT_TRUE(DrainGaps(**q).empty());
}

TEST(DiskQueue, GroupCommitConcurrentAppends) {
  TempDir d;
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  constexpr int kThreads = 8, kEach = 300;
  std::vector<std::thread> ts;
  std::mutex mu;
  std::map<uint64_t, std::string> got;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string p = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto r = (*q)->Append(Stream::kLogs, p);
        ASSERT_TRUE(r.ok());
        std::lock_guard<std::mutex> lk(mu);
        EXPECT_TRUE(got.emplace(*r, p).second);
      }
    });
  }
  for (auto& t : ts) t.join();
  q->reset();
  auto q2 = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q2.ok());
  auto rs = DrainAll(**q2, Stream::kLogs);
  ASSERT_EQ(rs.size(), static_cast<size_t>(kThreads * kEach));
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(rs[i].seq, i + 1);
    EXPECT_EQ(rs[i].payload, got[rs[i].seq]);
  }
}

TEST(DiskQueue, AppendBatchIsConsecutive) {
  TempDir d;
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  std::vector<std::string> ps;
  for (int i = 1; i <= 50; ++i) ps.push_back(Payload(i));
  std::vector<std::string_view> views(ps.begin(), ps.end());
  auto r = (*q)->AppendBatch(Stream::kMetrics, views);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 1u);
  auto rs = DrainAll(**q, Stream::kMetrics);
  ASSERT_EQ(rs.size(), 50u);
  Seqs(rs);
}

TEST(DiskQueueRecovery, TornTailIsTruncated) {
  TempDir d;
  {
    auto q = DiskQueue::Open(SmallSegments(d.path()));
    ASSERT_TRUE(q.ok());
    AppendN(**q, Stream::kEvents, 1, 40);  // segment 1: 1..32, segment 33: 33..40
  }
  auto segs = Segments(d.path(), Stream::kEvents);
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(fs::file_size(segs[1]), 24 + 8 * kFrame);
  fs::resize_file(segs[1], 24 + 8 * kFrame - 30);  // the last record loses 30 bytes
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)->recovery().streams[1].torn_tail_bytes, kFrame - 30);
  EXPECT_EQ((*q)->recovery().streams[1].quarantined_segments, 0u);
  EXPECT_EQ((*q)->Stats(Stream::kEvents).next_seq, 40u);  // seq 40 was never complete
  auto rs = DrainAll(**q, Stream::kEvents);
  ASSERT_EQ(rs.size(), 39u);
  EXPECT_EQ(Seqs(rs).size(), 39u);
  AppendN(**q, Stream::kEvents, 40, 41);
}

TEST(DiskQueueRecovery, BitFlipLosesOnlyThatRecord) {
  TempDir d;
  {
    auto q = DiskQueue::Open(SmallSegments(d.path()));
    ASSERT_TRUE(q.ok());
    AppendN(**q, Stream::kEvents, 1, 200);
  }
  auto segs = Segments(d.path(), Stream::kEvents);
  ASSERT_GE(segs.size(), 4u);
  EXPECT_EQ(segs[2].filename().string(), "seg-00000000000000000065.log");
  FlipBit(segs[2], 24 + 5 * kFrame + 24 + 10);  // payload of the 6th record: seq 70
  FlipBit(segs[3], 24 + 0 * kFrame + 1);        // length field of seq 97
  uint64_t before = Dropped(Stream::kEvents, "corrupt");
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)->recovery().streams[1].quarantined_segments, 2u);
  EXPECT_EQ((*q)->recovery().streams[1].lost_records, 2u);
  EXPECT_EQ(Dropped(Stream::kEvents, "corrupt") - before, 2u);
  EXPECT_EQ(fs::directory_iterator(d.path() + "/quarantine") != fs::directory_iterator(), true);
  auto seqs = Seqs(DrainAll(**q, Stream::kEvents));
  EXPECT_EQ(seqs.size(), 198u);
  EXPECT_FALSE(seqs.count(70));
  EXPECT_FALSE(seqs.count(97));
  auto gaps = DrainGaps(**q);
  ASSERT_EQ(gaps.size(), 2u);
  std::set<uint64_t> gap_seqs;
  for (auto& g : gaps) {
    EXPECT_EQ(g["stream"], "events");
    EXPECT_EQ(g["reason"], "corrupt");
    EXPECT_EQ(g["first_seq"], g["last_seq"]);
    EXPECT_EQ(g["count"], 1);
    gap_seqs.insert(g["first_seq"].get<uint64_t>());
  }
  EXPECT_EQ(gap_seqs, (std::set<uint64_t>{70, 97}));
  // A second start finds nothing more to repair.
  q->reset();
  auto q2 = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q2.ok());
  EXPECT_EQ((*q2)->recovery().streams[1].quarantined_segments, 0u);
}

TEST(DiskQueueRecovery, ZeroedBlocksAndHeader) {
  TempDir d;
  {
    auto q = DiskQueue::Open(SmallSegments(d.path()));
    ASSERT_TRUE(q.ok());
    AppendN(**q, Stream::kLogs, 1, 100);
  }
  auto segs = Segments(d.path(), Stream::kLogs);
  // Segment 33..64: zero bytes [396, 908) = records 3..7 of the segment (seqs 36..40).
  Patch(segs[1], 24 + 3 * kFrame, std::string(512, '\0'));
  // Segment 65..96: zero the header and the first 40 bytes of seq 65.
  Patch(segs[2], 0, std::string(64, '\0'));
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)->recovery().streams[2].quarantined_segments, 2u);
  auto seqs = Seqs(DrainAll(**q, Stream::kLogs));
  std::set<uint64_t> expect;
  for (uint64_t i = 1; i <= 100; ++i)
    if ((i < 36 || i > 40) && i != 65) expect.insert(i);
  EXPECT_EQ(seqs, expect);
  uint64_t lost = 0;
  for (auto& g : DrainGaps(**q)) lost += g["count"].get<uint64_t>();
  EXPECT_EQ(lost, 6u);
}

TEST(DiskQueueRecovery, CutTailOfOlderSegmentAndWholeGarbage) {
  TempDir d;
  {
    auto q = DiskQueue::Open(SmallSegments(d.path()));
    ASSERT_TRUE(q.ok());
    AppendN(**q, Stream::kMetrics, 1, 100);
  }
  auto segs = Segments(d.path(), Stream::kMetrics);
  fs::resize_file(segs[0], 24 + 10 * kFrame + 50);  // 11..32 gone
  {
    std::ofstream f(segs[1], std::ios::binary | std::ios::trunc);  // 33..64: random garbage
    std::string junk(4000, '\0');
    uint32_t x = 12345;
    for (auto& c : junk) c = static_cast<char>((x = x * 1103515245 + 12345) >> 16);
    f << junk;
  }
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  auto seqs = Seqs(DrainAll(**q, Stream::kMetrics));
  std::set<uint64_t> expect;
  for (uint64_t i = 1; i <= 100; ++i)
    if (i <= 10 || i >= 65) expect.insert(i);
  EXPECT_EQ(seqs, expect);
  uint64_t lost = 0;
  for (auto& g : DrainGaps(**q)) {
    EXPECT_EQ(g["reason"], "corrupt");
    lost += g["count"].get<uint64_t>();
  }
  EXPECT_EQ(lost, 54u);
  EXPECT_EQ((*q)->Stats(Stream::kMetrics).next_seq, 101u);
}

TEST(DiskQueueRecovery, GarbageEverywhereStillStarts) {
  TempDir d;
  fs::create_directories(d.path() + "/events");
  {
    std::ofstream(d.path() + "/events/seg-00000000000000000001.log") << "not a segment at all";
    std::ofstream(d.path() + "/events/seg-00000000000000000009.log");  // empty file
    std::ofstream(d.path() + "/events/cursor") << "garbage";
  }
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_GE((*q)->Stats(Stream::kEvents).next_seq, 9u);
  auto r = (*q)->Append(Stream::kEvents, "hello");
  ASSERT_TRUE(r.ok());
  auto rs = DrainAll(**q, Stream::kEvents);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].payload, "hello");
}

TEST(DiskQueueLimits, DropOldestKeepsNewestAndSendsGapMarkers) {
  TempDir d;
  auto o = SmallSegments(d.path());
  o.limits[0].max_bytes = 16 * 1024;  // 4 segments of 4 KiB
  o.sync = SyncPolicy::kNone;         // not what this test is about; keeps it fast
  auto q = DiskQueue::Open(o);
  ASSERT_TRUE(q.ok());
  uint64_t before = Dropped(Stream::kMetrics, "drop_oldest");
  AppendN(**q, Stream::kMetrics, 1, 1000);
  EXPECT_LE((*q)->Stats(Stream::kMetrics).disk_bytes, 16u * 1024);
  auto rs = DrainAll(**q, Stream::kMetrics);
  ASSERT_FALSE(rs.empty());
  EXPECT_EQ(rs.back().seq, 1000u);
  uint64_t first = rs.front().seq;
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(rs[i].seq, first + i);
  EXPECT_GE(first, 1000u - 4 * 32);  // at most 4 segments' worth survive
  uint64_t dropped = 0;
  std::set<uint64_t> covered;
  for (auto& g : DrainGaps(**q)) {
    EXPECT_EQ(g["reason"], "drop_oldest");
    dropped += g["count"].get<uint64_t>();
    for (uint64_t s = g["first_seq"]; s <= g["last_seq"].get<uint64_t>(); ++s) covered.insert(s);
  }
  EXPECT_EQ(dropped, first - 1);
  EXPECT_EQ(covered.size(), first - 1);
  EXPECT_EQ(*covered.begin(), 1u);
  EXPECT_EQ(*covered.rbegin(), first - 1);
  EXPECT_EQ(Dropped(Stream::kMetrics, "drop_oldest") - before, first - 1);
}

TEST(DiskQueueLimits, RejectWhenFullThenRecovers) {
  TempDir d;
  auto o = SmallSegments(d.path());
  o.limits[1] = {16 * 1024, FullPolicy::kReject, 0, 0};
  auto q = DiskQueue::Open(o);
  ASSERT_TRUE(q.ok());
  uint64_t ok = 0;
  for (int i = 0; i < 200; ++i) {
    auto r = (*q)->Append(Stream::kEvents, Payload(ok + 1));
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
      break;
    }
    ++ok;
  }
  EXPECT_GT(ok, 100u);
  EXPECT_LT(ok, 16u * 1024 / kFrame + 1);
  uint64_t before = Dropped(Stream::kEvents, "rejected");
  for (int i = 0; i < 4; ++i) EXPECT_FALSE((*q)->Append(Stream::kEvents, "x").ok());
  EXPECT_EQ(Dropped(Stream::kEvents, "rejected") - before, 4u);
  auto rs = DrainAll(**q, Stream::kEvents);  // delivers and frees whole segments
  EXPECT_EQ(rs.size(), ok);
  auto r = (*q)->Append(Stream::kEvents, "again");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, ok + 1);  // a rejected append takes no seq
  auto gaps = DrainGaps(**q);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0]["reason"], "rejected");
  EXPECT_EQ(gaps[0]["count"], 5);  // the one that ended the fill loop + 4
}

TEST(DiskQueueLimits, BlockWaitsBoundedThenGivesUpOrProceeds) {
  TempDir d;
  auto o = SmallSegments(d.path());
  o.limits[1] = {16 * 1024, FullPolicy::kBlock, 300, 0};
  auto q = DiskQueue::Open(o);
  ASSERT_TRUE(q.ok());
  uint64_t n = 0;
  while (true) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = (*q)->Append(Stream::kEvents, Payload(n + 1));
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
      EXPECT_GE(ms, 290);
      EXPECT_LT(ms, 1500);
      break;
    }
    ++n;
    ASSERT_LT(n, 1000u);
  }
  // A consumer that frees room while the producer waits lets it through.
  std::thread consumer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    DrainAll(**q, Stream::kEvents);
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*q)->Append(Stream::kEvents, "late");
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  consumer.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE(ms, 50);
  EXPECT_LT(ms, 300);
}

TEST(DiskQueueLimits, TtlExpiresOldRecords) {
  TempDir d;
  std::atomic<int64_t> now{1'000'000};
  auto o = SmallSegments(d.path());
  o.clock_ms = [&] { return now.load(); };
  o.limits[0].ttl_ms = 60'000;
  auto q = DiskQueue::Open(o);
  ASSERT_TRUE(q.ok());
  AppendN(**q, Stream::kMetrics, 1, 100);  // t = 1,000,000
  now += 30'000;
  AppendN(**q, Stream::kMetrics, 101, 110);  // t = 1,030,000
  now += 40'000;                             // the first 100 are 70 s old, the last 10 are 40 s old
  auto rs = DrainAll(**q, Stream::kMetrics);
  ASSERT_EQ(rs.size(), 10u);
  EXPECT_EQ(rs.front().seq, 101u);
  uint64_t expired = 0;
  std::set<uint64_t> covered;
  for (auto& g : DrainGaps(**q)) {
    EXPECT_EQ(g["reason"], "expired");
    expired += g["count"].get<uint64_t>();
    for (uint64_t s = g["first_seq"]; s <= g["last_seq"].get<uint64_t>(); ++s) covered.insert(s);
  }
  EXPECT_EQ(expired, 100u);
  EXPECT_EQ(covered.size(), 100u);
  EXPECT_EQ((*q)->Stats(Stream::kMetrics).acked_seq, 110u);
}

TEST(DiskQueuePriority, LiveGoesFirstAndBacklogStillDrains) {
  TempDir d;
  auto q = DiskQueue::Open(SmallSegments(d.path()));  // live share 75 %
  ASSERT_TRUE(q.ok());
  AppendN(**q, Stream::kEvents, 1, 200);  // backlog from before the connection
  (*q)->MarkLive();
  AppendN(**q, Stream::kEvents, 201, 240);       // live data
  std::vector<std::pair<bool, uint64_t>> order;  // (live, first seq)
  std::vector<uint64_t> seqs;
  while (auto b = (*q)->ReadNext(Stream::kEvents, 10, 1 << 20)) {
    order.push_back({b->live, b->first_seq});
    for (auto& r : b->records) seqs.push_back(r.seq);
    (*q)->Ack(Stream::kEvents, b->first_seq);
  }
  // 4 live batches and 20 backlog batches.
  ASSERT_EQ(order.size(), 24u);
  size_t last_live = 0, backlog_before = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i].first) last_live = i;
    EXPECT_EQ(order[i].first, order[i].second > 200);
  }
  for (size_t i = 0; i < last_live; ++i) backlog_before += !order[i].first;
  EXPECT_LE(last_live, 5u);       // live data done within the first 6 batches ...
  EXPECT_GE(backlog_before, 1u);  // ... while the backlog kept moving
  std::vector<uint64_t> sorted = seqs;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_EQ(sorted.size(), 240u);
  for (size_t i = 0; i < 240; ++i) EXPECT_EQ(sorted[i], i + 1);
  auto st = (*q)->Stats(Stream::kEvents);
  EXPECT_EQ(st.acked_seq, 240u);
  EXPECT_FALSE(st.split);
}

TEST(DiskQueuePriority, RewindResendsUnacked) {
  TempDir d;
  auto q = DiskQueue::Open(SmallSegments(d.path()));
  ASSERT_TRUE(q.ok());
  AppendN(**q, Stream::kEvents, 1, 50);
  auto a = (*q)->ReadNext(Stream::kEvents, 10, 1 << 20);
  auto b = (*q)->ReadNext(Stream::kEvents, 10, 1 << 20);
  ASSERT_TRUE(a && b);
  (*q)->Ack(Stream::kEvents, b->first_seq);  // out of order: the cursor cannot move yet
  EXPECT_EQ((*q)->Stats(Stream::kEvents).acked_seq, 0u);
  (*q)->Rewind();
  auto rs = DrainAll(**q, Stream::kEvents);
  ASSERT_EQ(rs.size(), 50u);
  EXPECT_EQ(rs.front().seq, 1u);
}

TEST(DiskQueueLimits, FullDisk) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  TempDir d;
  std::string mnt = d.path() + "/mnt";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") != 0)
    GTEST_SKIP() << "mount(tmpfs) not permitted here: " << std::strerror(errno);
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  auto o = SmallSegments(mnt + "/q");
  o.limits[0].max_bytes = 64ull << 20;  // the byte limits are not what stops it: the disk is
  o.limits[1] = {64ull << 20, FullPolicy::kReject, 0, 0};
  std::vector<uint64_t> acked;
  {
    auto q = DiskQueue::Open(o);
    ASSERT_TRUE(q.ok());
    Status err;
    for (uint64_t i = 1; i < 100000; ++i) {
      auto r = (*q)->Append(Stream::kEvents, Payload(i));
      if (!r.ok()) {
        err = r.status();
        break;
      }
      acked.push_back(*r);
    }
    EXPECT_EQ(err.code(), Code::kIoError) << err.ToString();
    EXPECT_GT(acked.size(), 100u);
    // A drop-oldest stream makes room by dropping its own oldest segments... once it has some;
    // here events fill the disk, so metrics can only fail cleanly.
    auto m = (*q)->Append(Stream::kMetrics, Payload(1));
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), Code::kIoError);
    }
  }
  auto q = DiskQueue::Open(o);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto rs = DrainAll(**q, Stream::kEvents);
  ASSERT_GE(rs.size(), acked.size());
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(rs[i].seq, acked[i]);
    EXPECT_EQ(rs[i].payload, Payload(acked[i]));
  }
  // Room again after delivery.
  EXPECT_TRUE((*q)->Append(Stream::kEvents, "after").ok());
}

TEST(DiskQueueLimits, FullDiskDropOldestKeepsGoing) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  TempDir d;
  std::string mnt = d.path() + "/mnt";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") != 0)
    GTEST_SKIP() << "mount(tmpfs) not permitted here: " << std::strerror(errno);
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  auto o = SmallSegments(mnt + "/q");
  o.limits[0].max_bytes = 64ull << 20;
  auto q = DiskQueue::Open(o);
  ASSERT_TRUE(q.ok());
  uint64_t before = Dropped(Stream::kMetrics, "disk_full");
  for (uint64_t i = 1; i <= 5000; ++i) {
    auto r = (*q)->Append(Stream::kMetrics, Payload(i));
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
  }
  EXPECT_GT(Dropped(Stream::kMetrics, "disk_full") - before, 0u);
  auto rs = DrainAll(**q, Stream::kMetrics);
  ASSERT_FALSE(rs.empty());
  EXPECT_EQ(rs.back().seq, 5000u);
}

}  // namespace
}  // namespace outpost::telemetry
