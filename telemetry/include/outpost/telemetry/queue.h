// The durable on-disk telemetry queue: append-only segment files per stream, group commit, byte
// limits with a policy when full, TTL, live-before-backlog priority and a persisted consumer
// cursor. See telemetry/README.md for the record format and the loss bound of each sync policy.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::telemetry {

// Stream classes. Each has its own directory, sequence numbers, byte limit and cursor.
enum class Stream : uint8_t { kMetrics = 0, kEvents = 1, kLogs = 2, kGaps = 3 };
inline constexpr int kNumStreams = 4;
const char* StreamName(Stream s);
std::optional<Stream> ParseStream(std::string_view name);

enum class FullPolicy { kDropOldest, kReject, kBlock };
enum class SyncPolicy { kEveryBatch, kInterval, kNone };

// "every-batch" | "interval=<N>ms" | "never" | "none".
Expected<std::pair<SyncPolicy, int>> ParseSyncPolicy(std::string_view text);

struct StreamLimits {
  uint64_t max_bytes = 16ull << 20;  // on-disk bytes of this stream, segment headers included
  FullPolicy full_policy = FullPolicy::kDropOldest;
  int block_timeout_ms = 1000;  // kBlock: longest an Append waits for room
  int64_t ttl_ms = 0;           // records older than this are not sent (expired); 0 = no TTL
};

struct QueueOptions {
  std::string dir;  // created if missing; one sub-directory per stream, plus quarantine/
  SyncPolicy sync = SyncPolicy::kEveryBatch;
  int sync_interval_ms = 1000;  // kInterval: data; every policy: how often cursors are synced
  uint64_t segment_bytes = 4ull << 20;  // a stream uses at most max_bytes/4 per segment
  uint32_t max_record_bytes = 1u << 20;
  // Defaults: metrics 16 MiB drop-oldest, events 16 MiB block (1 s), logs 32 MiB drop-oldest,
  // gaps 1 MiB drop-oldest.
  std::array<StreamLimits, kNumStreams> limits = DefaultLimits();
  // Of the batches read while a stream has both a backlog and live data, this share (percent)
  // is live. 0 = no split: everything is sent strictly in sequence order.
  int live_share_percent = 75;
  std::function<int64_t()> clock_ms;  // wall clock in ms since the epoch; tests may replace it

  static std::array<StreamLimits, kNumStreams> DefaultLimits();
};

struct Record {
  uint64_t seq = 0;
  int64_t ts_ms = 0;
  std::string payload;
};

// What ReadNext hands to the consumer. [first_seq, last_seq] is the range it covers; `records`
// holds the ones to send (expired or missing ones in the range are left out, and reported as gaps).
struct Batch {
  Stream stream = Stream::kMetrics;
  bool live = false;  // read from the live region (see live_share_percent)
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  std::vector<Record> records;
  size_t payload_bytes = 0;
};

struct StreamStats {
  uint64_t next_seq = 1;    // the seq the next Append gets
  uint64_t acked_seq = 0;   // persisted cursor: every seq <= this is done
  uint64_t disk_bytes = 0;  // bytes of segment files
  uint64_t segments = 0;
  uint64_t first_seq = 1;  // the oldest seq still on disk
  bool split = false;      // a live region is being sent ahead of a backlog
};

// What recovery found on Open, per stream.
struct RecoveryReport {
  struct PerStream {
    uint64_t segments = 0;
    uint64_t records = 0;
    uint64_t torn_tail_bytes = 0;       // truncated from the last segment
    uint64_t quarantined_segments = 0;  // moved to quarantine/ (intact records kept)
    uint64_t lost_records = 0;          // unacked records that could not be read back
  };
  std::array<PerStream, kNumStreams> streams;
};

class DiskQueue {
 public:
  // Scans and repairs what is on disk; never fails because of the content of the segment files
  // (only when the directory itself cannot be used).
  static Expected<std::unique_ptr<DiskQueue>> Open(QueueOptions options);
  ~DiskQueue();
  DiskQueue(const DiskQueue&) = delete;
  DiskQueue& operator=(const DiskQueue&) = delete;

  // Appends one record; returns its seq when it is stored per the sync policy (every-batch: on
  // disk). Errors: ResourceExhausted (kReject and full), DeadlineExceeded (kBlock and still full
  // after block_timeout_ms), InvalidArgument (record too large), IoError.
  Expected<uint64_t> Append(Stream stream, std::string_view payload);
  // Appends records with consecutive seqs in one write and one sync; all or nothing. Returns the
  // first seq. Concurrent Append calls of one stream are also committed together (group commit).
  Expected<uint64_t> AppendBatch(Stream stream, const std::vector<std::string_view>& payloads);

  // A loss that happened before the records reached the queue (an in-memory buffer in front of
  // it was full): counted in outpost_telemetry_records_dropped_total{stream,reason} and queued
  // as a gap marker without a seq range.
  void ReportLoss(Stream stream, std::string_view reason, uint64_t count);

  // ---- Consumer side: one consumer thread. ----
  // The next batch of `stream` to send, or nullopt when there is nothing. A batch whose records
  // are all expired comes back with empty `records`; Ack it like any other.
  std::optional<Batch> ReadNext(Stream stream, size_t max_records, size_t max_bytes);
  // The batch that started at `first_seq` was delivered. The persisted cursor advances over the
  // longest prefix of delivered batches; fully delivered segments are deleted.
  void Ack(Stream stream, uint64_t first_seq);
  // Forgets every batch handed out and not acked: they are read again (after a reconnect).
  void Rewind();
  // Starts sending new data ahead of what is already queued (called on connect). No-op when the
  // stream has no backlog, a split already exists or live_share_percent is 0.
  void MarkLive();

  // Syncs data and cursors now.
  Status Sync();
  StreamStats Stats(Stream stream) const;
  const RecoveryReport& recovery() const;
  const QueueOptions& options() const;

 private:
  struct Impl;
  explicit DiskQueue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::telemetry
