// The durable on-disk queue. Layout under QueueOptions::dir:
//   <stream>/seg-<base seq, 20 digits>.log   segment files (header + records)
//   <stream>/cursor                          the persisted consumer cursor (acked seq + CRC)
//   quarantine/<stream>-seg-...-<unix ms>    corrupt segments as found, for inspection
// Segment header (24 bytes): "OPQSEG01", u64 base seq, u32 CRC32C of the first 16 bytes, u32 0.
// Record frame (24 bytes + payload): u32 length, u32 CRC32C(length, seq, ts, payload), u64 seq,
// i64 timestamp (ms since the epoch), payload. Little-endian.
#include "outpost/telemetry/queue.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "crc32c.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/core/thread_name.h"

namespace outpost::telemetry {
namespace {

constexpr char kSegMagic[8] = {'O', 'P', 'Q', 'S', 'E', 'G', '0', '1'};
constexpr size_t kSegHeader = 24;
constexpr size_t kRecHeader = 24;
constexpr size_t kReadBuf = 256 * 1024;

const char* kStreamNames[kNumStreams] = {"metrics", "events", "logs", "gaps"};

void Put32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void Put64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t Get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t FrameCrc(const char* hdr, const char* payload, uint32_t len) {
  uint32_t c = Crc32cExtend(0, hdr, 4);  // length
  c = Crc32cExtend(c, hdr + 8, 16);      // seq, ts
  return Crc32cExtend(c, payload, len);
}

void EncodeFrame(std::string* out, uint64_t seq, int64_t ts, std::string_view payload) {
  char hdr[kRecHeader];
  Put32(hdr, static_cast<uint32_t>(payload.size()));
  Put64(hdr + 8, seq);
  Put64(hdr + 16, static_cast<uint64_t>(ts));
  Put32(hdr + 4, FrameCrc(hdr, payload.data(), static_cast<uint32_t>(payload.size())));
  out->append(hdr, kRecHeader);
  out->append(payload);
}

std::string SegHeader(uint64_t base) {
  char h[kSegHeader] = {};
  std::memcpy(h, kSegMagic, 8);
  Put64(h + 8, base);
  Put32(h + 16, Crc32c(h, 16));
  return std::string(h, kSegHeader);
}

std::string SegName(uint64_t base) {
  char b[64];
  std::snprintf(b, sizeof b, "seg-%020llu.log", static_cast<unsigned long long>(base));
  return b;
}

bool ParseSegName(const char* name, uint64_t* base) {
  size_t n = std::strlen(name);
  if (n != 4 + 20 + 4 || std::strncmp(name, "seg-", 4) != 0 || std::strcmp(name + 24, ".log") != 0)
    return false;
  uint64_t v = 0;
  for (int i = 4; i < 24; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *base = v;
  return v > 0;
}

Status Errno(const std::string& what) { return IoError(what + ": " + std::strerror(errno)); }

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Gap {
  Stream stream;
  std::string reason;
  uint64_t first = 0;  // 0/0 when no seq was assigned (rejected, block_timeout)
  uint64_t last = 0;
  uint64_t count = 0;
  bool counted = false;  // already counted where it happened
};

Counter& DroppedCounter(Stream s, const std::string& reason) {
  return MetricsRegistry::Global().GetCounter(
      "outpost_telemetry_records_dropped_total",
      "Telemetry records lost before delivery, by stream and reason",
      {{"stream", kStreamNames[static_cast<int>(s)]}, {"reason", reason}});
}

}  // namespace

const char* StreamName(Stream s) { return kStreamNames[static_cast<int>(s)]; }

std::optional<Stream> ParseStream(std::string_view name) {
  for (int i = 0; i < kNumStreams; ++i)
    if (name == kStreamNames[i]) return static_cast<Stream>(i);
  return std::nullopt;
}

Expected<std::pair<SyncPolicy, int>> ParseSyncPolicy(std::string_view t) {
  if (t == "every-batch") return std::pair{SyncPolicy::kEveryBatch, 0};
  if (t == "never" || t == "none") return std::pair{SyncPolicy::kNone, 0};
  if (t.substr(0, 9) == "interval=" && t.size() > 11 && t.substr(t.size() - 2) == "ms") {
    std::string_view num = t.substr(9, t.size() - 11);
    int v = 0;
    for (char c : num) {
      if (c < '0' || c > '9' || v > 100000000)
        return InvalidArgument("bad sync policy: " + std::string(t));
      v = v * 10 + (c - '0');
    }
    if (v <= 0) return InvalidArgument("sync interval must be > 0: " + std::string(t));
    return std::pair{SyncPolicy::kInterval, v};
  }
  return InvalidArgument("unknown sync policy '" + std::string(t) +
                         "' (every-batch | interval=<N>ms | never)");
}

std::array<StreamLimits, kNumStreams> QueueOptions::DefaultLimits() {
  std::array<StreamLimits, kNumStreams> l;
  l[0] = {16ull << 20, FullPolicy::kDropOldest, 1000, 0};
  l[1] = {16ull << 20, FullPolicy::kBlock, 1000, 0};
  l[2] = {32ull << 20, FullPolicy::kDropOldest, 1000, 0};
  l[3] = {1ull << 20, FullPolicy::kDropOldest, 1000, 0};
  return l;
}

// ---------------------------------------------------------------------------------------------

struct DiskQueue::Impl {
  struct Segment {
    uint64_t base = 0;
    uint64_t last = 0;   // base - 1 while empty
    uint64_t bytes = 0;  // committed (readable) size of the file
    int64_t last_ts = 0;
    std::string path;
  };
  struct Pending {
    std::string data;
    uint64_t first = 0, last = 0;
    int64_t ts = 0;
    Status result;
    bool done = false;
  };
  struct Region {
    struct Out {
      uint64_t first, last;
      bool done;
    };
    uint64_t acked = 0;  // every seq <= acked of this region is done
    uint64_t next = 1;   // next seq to read
    std::deque<Out> out;
    // read cursor
    int fd = -1;
    uint64_t seg_base = 0;  // 0 = not positioned
    uint64_t off = 0;
    std::vector<char> buf;
    uint64_t buf_off = 0;
    size_t buf_len = 0;

    void Invalidate() {
      if (fd >= 0) ::close(fd);
      fd = -1;
      seg_base = 0;
      buf_len = 0;
    }
  };
  struct StreamState {
    Stream id{};
    std::string dir;
    StreamLimits lim;
    uint64_t seg_limit = 0;
    mutable std::mutex mu;
    std::condition_variable cv_commit, cv_room;
    std::deque<Segment> segs;  // never empty after Open; back() is the active segment
    uint64_t next_seq = 1;
    uint64_t total_bytes = 0;  // files + staged + being written
    std::vector<Pending*> staged;
    bool committing = false;
    // Writer side, used by the commit leader (and the flusher) under io_mu.
    std::mutex io_mu;
    int wfd = -1;
    uint64_t wsize = 0;
    bool dirty = false;
    // Consumer side.
    Region backlog, live;
    uint64_t split = 0;  // 0 = no live region
    int share_acc = 0;
    int cursor_fd = -1;
    uint64_t persisted_acked = 0;
    bool cursor_dirty = false;
    uint64_t pending_rejected = 0, pending_timeouts = 0;
    Counter* appended = nullptr;
    Gauge* bytes_gauge = nullptr;
    Gauge* backlog_gauge = nullptr;
  };

  QueueOptions opt;
  std::array<StreamState, kNumStreams> st;
  RecoveryReport report;
  std::mutex flush_mu;
  std::condition_variable flush_cv;
  bool stopping = false;
  std::thread flusher;

  int64_t Now() const { return opt.clock_ms ? opt.clock_ms() : SystemNowMs(); }

  // ---- gaps ----
  void EmitGaps(std::vector<Gap>* gaps) {
    for (const Gap& g : *gaps) {
      if (!g.counted) DroppedCounter(g.stream, g.reason).Inc(g.count);
      if (g.stream == Stream::kGaps) continue;  // no markers about lost markers: counted only
      MetricsRegistry::Global()
          .GetCounter("outpost_telemetry_gap_markers_total", "Gap markers queued, by stream",
                      {{"stream", StreamName(g.stream)}})
          .Inc();
      nlohmann::json j = {{"stream", StreamName(g.stream)},
                          {"reason", g.reason},
                          {"count", g.count},
                          {"ts", Now()}};
      if (g.first != 0) {
        j["first_seq"] = g.first;
        j["last_seq"] = g.last;
      }
      std::string text = j.dump();
      std::vector<std::string_view> one{text};
      auto r = AppendBatch(Stream::kGaps, one, /*from_gap=*/true);
      if (!r.ok())
        OP_LOG_WARN("telemetry: could not queue a gap marker: {}", r.status().ToString());
    }
    gaps->clear();
  }

  void UpdateGauges(StreamState& s) {
    s.bytes_gauge->Set(static_cast<double>(s.total_bytes));
    uint64_t last = s.next_seq - 1;
    s.backlog_gauge->Set(static_cast<double>(last > s.backlog.acked ? last - s.backlog.acked : 0));
  }

  // ---- cursor ----
  void WriteCursor(StreamState& s) {
    if (s.backlog.acked == s.persisted_acked || s.cursor_fd < 0) return;
    char b[16] = {};
    Put64(b, s.backlog.acked);
    Put32(b + 8, Crc32c(b, 8));
    if (::pwrite(s.cursor_fd, b, 16, 0) == 16) {
      s.persisted_acked = s.backlog.acked;
      s.cursor_dirty = true;
    }
  }

  // ---- segment bookkeeping (under mu) ----
  uint64_t ReadableLast(const StreamState& s) const {
    const Segment& b = s.segs.back();
    return b.last >= b.base ? b.last : b.base - 1;
  }

  void MaybeMerge(StreamState& s) {
    if (s.split == 0 || s.backlog.acked + 1 < s.split) return;
    s.backlog.Invalidate();
    s.backlog = std::move(s.live);
    s.live = Region{};
    s.split = 0;
  }

  void PopDone(Region& r) {
    while (!r.out.empty() && r.out.front().done) {
      r.acked = std::max(r.acked, r.out.front().last);
      r.out.pop_front();
    }
  }

  // Everything below `first_avail` is gone from disk: move cursors and acks past it.
  void AdvancePast(StreamState& s, uint64_t first_avail) {
    auto advance = [&](Region& r, uint64_t hi) {
      if (hi == 0) return;
      while (!r.out.empty() && r.out.front().last < hi) r.out.pop_front();
      if (r.acked + 1 < hi) r.acked = hi - 1;
      if (r.next < hi) {
        r.next = hi;
        r.Invalidate();
      }
      PopDone(r);
    };
    advance(s.backlog, s.split ? std::min(first_avail, s.split) : first_avail);
    if (s.split && first_avail > s.split) advance(s.live, first_avail);
    MaybeMerge(s);
    WriteCursor(s);
  }

  void DropFront(StreamState& s, const char* reason, std::vector<Gap>* gaps) {
    Segment f = s.segs.front();
    s.segs.pop_front();
    ::unlink(f.path.c_str());
    s.total_bytes -= std::min(s.total_bytes, f.bytes);
    uint64_t lo = std::max(f.base, s.backlog.acked + 1);
    if (f.last >= lo) gaps->push_back({s.id, reason, lo, f.last, f.last - lo + 1});
    AdvancePast(s, s.segs.front().base);
    s.cv_room.notify_all();
  }

  void DeleteAcked(StreamState& s) {
    while (s.segs.size() >= 2 && s.segs.front().last <= s.backlog.acked) {
      ::unlink(s.segs.front().path.c_str());
      s.total_bytes -= std::min(s.total_bytes, s.segs.front().bytes);
      s.segs.pop_front();
      s.cv_room.notify_all();
    }
  }

  void TtlSweep(StreamState& s, int64_t now, std::vector<Gap>* gaps) {
    if (s.lim.ttl_ms <= 0) return;
    while (s.segs.size() >= 2 && s.segs.front().last_ts < now - s.lim.ttl_ms) {
      DropFront(s, "expired", gaps);
    }
  }

  Status MakeRoom(StreamState& s, uint64_t need, uint64_t nrec, std::unique_lock<std::mutex>& lk,
                  std::vector<Gap>* gaps) {
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(s.lim.block_timeout_ms);
    while (s.total_bytes + need > s.lim.max_bytes) {
      switch (s.lim.full_policy) {
        case FullPolicy::kDropOldest:
          if (s.segs.size() >= 2) {
            DropFront(s, "drop_oldest", gaps);
          } else if (s.committing || !s.staged.empty()) {
            s.cv_commit.wait(lk);
          } else {
            return ResourceExhausted(std::string("telemetry ") + StreamName(s.id) +
                                     " queue full and nothing left to drop");
          }
          break;
        case FullPolicy::kReject:
          s.pending_rejected += nrec;
          return ResourceExhausted(std::string("telemetry ") + StreamName(s.id) + " queue full");
        case FullPolicy::kBlock:
          if (s.cv_room.wait_until(lk, deadline) == std::cv_status::timeout &&
              s.total_bytes + need > s.lim.max_bytes) {
            s.pending_timeouts += nrec;
            return DeadlineExceeded(std::string("telemetry ") + StreamName(s.id) +
                                    " queue still full after " +
                                    std::to_string(s.lim.block_timeout_ms) + " ms");
          }
          break;
      }
    }
    return Status::Ok();
  }

  void FlushPendingRefusals(StreamState& s, std::vector<Gap>* gaps) {
    if (s.pending_rejected) gaps->push_back({s.id, "rejected", 0, 0, s.pending_rejected, true});
    if (s.pending_timeouts)
      gaps->push_back({s.id, "block_timeout", 0, 0, s.pending_timeouts, true});
    s.pending_rejected = s.pending_timeouts = 0;
  }

  // ---- writer ----
  Status OpenActive(StreamState& s, std::unique_lock<std::mutex>& lk) {
    // io_mu held by the caller; mu held via lk.
    const Segment& a = s.segs.back();
    int fd = ::open(a.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open " + a.path);
    if (::lseek(fd, static_cast<off_t>(a.bytes), SEEK_SET) < 0) {
      ::close(fd);
      return Errno("lseek " + a.path);
    }
    s.wfd = fd;
    s.wsize = a.bytes;
    (void)lk;
    return Status::Ok();
  }

  // Creates a new active segment starting at `base` (io_mu held, mu held via lk).
  Status Rotate(StreamState& s, uint64_t base, int* err) {
    if (s.wfd >= 0) {
      if (opt.sync == SyncPolicy::kInterval && s.dirty) ::fdatasync(s.wfd);
      ::close(s.wfd);
      s.wfd = -1;
    }
    std::string path = s.dir + "/" + SegName(base);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      *err = errno;
      return Errno("create " + path);
    }
    std::string h = SegHeader(base);
    if (!WriteAll(fd, h.data(), h.size())) {
      *err = errno;
      Status e = Errno("write " + path);
      ::close(fd);
      ::unlink(path.c_str());
      return e;
    }
    if (opt.sync == SyncPolicy::kEveryBatch) {
      ::fdatasync(fd);
      SyncDir(s.dir);
    }
    s.wfd = fd;
    s.wsize = kSegHeader;
    s.segs.push_back({base, base - 1, kSegHeader, 0, path});
    s.total_bytes += kSegHeader;
    return Status::Ok();
  }

  // The group-commit leader: writes everything staged, syncs per policy, publishes the result.
  void Commit(StreamState& s, std::unique_lock<std::mutex>& lk, std::vector<Gap>* gaps) {
    s.committing = true;
    std::vector<Pending*> batch;
    batch.swap(s.staged);
    std::lock_guard<std::mutex> io(s.io_mu);
    size_t i = 0;
    int disk_full_retries = 0;
    while (i < batch.size()) {
      Status st;
      // Choose the run of pendings that goes to the current segment.
      int err = 0;
      if (s.wfd < 0) st = OpenActive(s, lk);
      if (st.ok() && s.wsize + batch[i]->data.size() > s.seg_limit &&
          s.segs.back().last >= s.segs.back().base) {
        st = Rotate(s, batch[i]->first, &err);
        if (!st.ok() && err == ENOSPC && disk_full_retries < 8 &&
            s.lim.full_policy == FullPolicy::kDropOldest && s.segs.size() >= 2) {
          ++disk_full_retries;
          DropFront(s, "disk_full", gaps);
          continue;
        }
      }
      size_t j = i;
      uint64_t run_bytes = 0;
      if (st.ok()) {
        while (j < batch.size() &&
               (j == i || s.wsize + run_bytes + batch[j]->data.size() <= s.seg_limit)) {
          run_bytes += batch[j]->data.size();
          ++j;
        }
        lk.unlock();
        bool ok = true;
        for (size_t k = i; k < j && ok;) {
          iovec iov[64];
          int n = 0;
          size_t want = 0;
          for (; k < j && n < 64; ++k, ++n) {
            iov[n].iov_base = batch[k]->data.data();
            iov[n].iov_len = batch[k]->data.size();
            want += batch[k]->data.size();
          }
          // writev may write short: finish with plain writes.
          ssize_t w = ::writev(s.wfd, iov, n);
          if (w < 0) {
            ok = false;
            err = errno;
            break;
          }
          size_t done = static_cast<size_t>(w);
          for (int q = 0; q < n && ok; ++q) {
            size_t len = iov[q].iov_len;
            if (done >= len) {
              done -= len;
              continue;
            }
            if (!WriteAll(s.wfd, static_cast<char*>(iov[q].iov_base) + done, len - done)) {
              ok = false;
              err = errno;
            }
            done = 0;
          }
          (void)want;
        }
        if (ok && opt.sync == SyncPolicy::kEveryBatch && ::fdatasync(s.wfd) != 0) {
          ok = false;
          err = errno;
        }
        lk.lock();
        if (ok) {
          s.wsize += run_bytes;
          s.dirty = true;
          Segment& a = s.segs.back();
          a.bytes = s.wsize;
          a.last = batch[j - 1]->last;
          a.last_ts = batch[j - 1]->ts;
          for (size_t k = i; k < j; ++k) {
            batch[k]->done = true;
            batch[k]->result = Status::Ok();
          }
          i = j;
          continue;
        }
        // Roll the file back to its last good size so the segment stays well-formed.
        if (::ftruncate(s.wfd, static_cast<off_t>(s.wsize)) != 0 ||
            ::lseek(s.wfd, static_cast<off_t>(s.wsize), SEEK_SET) < 0) {
          ::close(s.wfd);
          s.wfd = -1;
        }
        if (err == ENOSPC && disk_full_retries < 8 &&
            s.lim.full_policy == FullPolicy::kDropOldest && s.segs.size() >= 2) {
          ++disk_full_retries;
          DropFront(s, "disk_full", gaps);
          continue;  // retry the same run once
        }
        errno = err;
        st = Errno(std::string("telemetry ") + StreamName(s.id) + " append");
      }
      // Failure: this pending and all later ones of the batch fail; their seqs are burned.
      for (size_t k = i; k < batch.size(); ++k) {
        batch[k]->done = true;
        batch[k]->result = st;
        s.total_bytes -= std::min<uint64_t>(s.total_bytes, batch[k]->data.size());
        uint64_t n = batch[k]->last - batch[k]->first + 1;
        gaps->push_back(
            {s.id, err == ENOSPC ? "disk_full" : "io_error", batch[k]->first, batch[k]->last, n});
      }
      break;
    }
    s.committing = false;
    s.cv_commit.notify_all();
  }

  Expected<uint64_t> AppendBatch(Stream id, const std::vector<std::string_view>& payloads,
                                 bool from_gap = false) {
    if (payloads.empty()) return InvalidArgument("empty append");
    StreamState& s = st[static_cast<int>(id)];
    uint64_t bytes = 0;
    for (auto p : payloads) {
      if (p.size() > opt.max_record_bytes)
        return InvalidArgument("telemetry record of " + std::to_string(p.size()) +
                               " bytes exceeds max_record_bytes");
      bytes += kRecHeader + p.size();
    }
    if (bytes > s.seg_limit * 2)
      return InvalidArgument("telemetry append larger than the stream's segment budget");
    std::vector<Gap> gaps;
    Pending pend;
    {
      std::unique_lock<std::mutex> lk(s.mu);
      Status room = MakeRoom(s, bytes, payloads.size(), lk, &gaps);
      if (room.ok()) {
        FlushPendingRefusals(s, &gaps);
        pend.ts = Now();
        pend.first = s.next_seq;
        pend.data.reserve(bytes);
        for (auto p : payloads) EncodeFrame(&pend.data, s.next_seq++, pend.ts, p);
        pend.last = s.next_seq - 1;
        s.total_bytes += bytes;
        s.staged.push_back(&pend);
        while (!pend.done) {
          if (!s.committing) {
            Commit(s, lk, &gaps);
          } else {
            s.cv_commit.wait(lk);
          }
        }
        UpdateGauges(s);
      } else {
        pend.result = room;
      }
    }
    (void)from_gap;
    EmitGaps(&gaps);
    if (!pend.result.ok()) {
      if (pend.result.code() == Code::kResourceExhausted &&
          s.lim.full_policy == FullPolicy::kReject)
        DroppedCounter(id, "rejected").Inc(payloads.size());
      if (pend.result.code() == Code::kDeadlineExceeded)
        DroppedCounter(id, "block_timeout").Inc(payloads.size());
      return pend.result;
    }
    s.appended->Inc(payloads.size());
    return pend.first;
  }

  // ---- reader ----
  // Ensures [off, off+n) of the cursor's segment is in its buffer; returns a pointer or null.
  // Never reads at or past `limit` (the committed size): bytes beyond it may be half written.
  const char* Fetch(Region& r, uint64_t off, size_t n, uint64_t limit) {
    if (off >= r.buf_off && off + n <= r.buf_off + r.buf_len)
      return r.buf.data() + (off - r.buf_off);
    if (off + n > limit) return nullptr;
    size_t want = std::min<uint64_t>(std::max(n, kReadBuf), limit - off);
    if (r.buf.size() < want) r.buf.resize(want);
    ssize_t got = ::pread(r.fd, r.buf.data(), want, static_cast<off_t>(off));
    if (got < 0) got = 0;
    r.buf_off = off;
    r.buf_len = static_cast<size_t>(got);
    if (static_cast<size_t>(got) < n) return nullptr;
    return r.buf.data();
  }

  // Positions the cursor of `r` on segment `seg` at the first record with seq >= r.next.
  bool Position(StreamState& s, Region& r, const Segment& seg) {
    (void)s;
    if (r.seg_base == seg.base && r.fd >= 0) return true;
    r.Invalidate();
    r.fd = ::open(seg.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (r.fd < 0) return false;
    r.seg_base = seg.base;
    r.off = kSegHeader;
    while (r.off + kRecHeader <= seg.bytes) {
      const char* h = Fetch(r, r.off, kRecHeader, seg.bytes);
      if (!h) return false;
      if (Get64(h + 8) >= r.next) break;
      r.off += kRecHeader + Get32(h);
    }
    return true;
  }

  std::optional<Batch> ReadRegion(StreamState& s, bool live, size_t max_records, size_t max_bytes,
                                  int64_t now, std::vector<Gap>* gaps) {
    Region& r = live ? s.live : s.backlog;
    uint64_t hi = ReadableLast(s);
    if (!live && s.split) hi = std::min(hi, s.split - 1);
    uint64_t first_avail = s.segs.front().base;
    if (r.next < first_avail) {
      r.next = first_avail;
      r.Invalidate();
    }
    if (r.next > hi) return std::nullopt;
    Batch b;
    b.stream = s.id;
    b.live = live;
    b.first_seq = r.next;
    uint64_t expired = 0;
    int64_t cutoff = s.lim.ttl_ms > 0 ? now - s.lim.ttl_ms : INT64_MIN;
    while (r.next <= hi) {
      // The segment holding r.next (or the first after a hole).
      auto it = std::upper_bound(s.segs.begin(), s.segs.end(), r.next,
                                 [](uint64_t v, const Segment& g) { return v < g.base; });
      if (it != s.segs.begin()) --it;
      if (it->last < r.next || it->last < it->base) {
        ++it;  // r.next is past this segment (or it is empty): go to the next one
        if (it == s.segs.end()) break;
        if (r.next < it->base) r.next = it->base;
        if (it->last < it->base) break;
        continue;
      }
      const Segment& seg = *it;
      if (!Position(s, r, seg)) {
        gaps->push_back({s.id, "corrupt", r.next, seg.last, seg.last - r.next + 1});
        r.next = seg.last + 1;
        r.Invalidate();
        continue;
      }
      if (r.off + kRecHeader > seg.bytes) {  // nothing more here
        r.next = seg.last + 1;
        continue;
      }
      const char* h = Fetch(r, r.off, kRecHeader, seg.bytes);
      uint32_t len = h ? Get32(h) : 0;
      bool bad = !h || len > opt.max_record_bytes || r.off + kRecHeader + len > seg.bytes;
      const char* p = nullptr;
      char hdr[kRecHeader];
      if (!bad) {
        std::memcpy(hdr, h, kRecHeader);
        p = Fetch(r, r.off + kRecHeader, len, seg.bytes);
        bad = !p || FrameCrc(hdr, p, len) != Get32(hdr + 4) || Get64(hdr + 8) < r.next;
      }
      if (bad) {  // damaged after recovery checked it (media error): skip the rest of the segment
        gaps->push_back({s.id, "corrupt", r.next, seg.last, seg.last - r.next + 1});
        r.next = seg.last + 1;
        r.Invalidate();
        continue;
      }
      uint64_t seq = Get64(hdr + 8);
      int64_t ts = static_cast<int64_t>(Get64(hdr + 16));
      if (seq > hi) break;
      bool is_expired = ts < cutoff;
      if (is_expired) {
        if (!b.records.empty()) break;
        ++expired;
      } else {
        if (expired > 0) break;
        if (!b.records.empty() &&
            (b.records.size() >= max_records || b.payload_bytes + len > max_bytes))
          break;
        b.records.push_back({seq, ts, std::string(p, len)});
        b.payload_bytes += len;
      }
      r.next = seq + 1;
      r.off += kRecHeader + len;
    }
    if (r.next == b.first_seq) return std::nullopt;
    b.last_seq = r.next - 1;
    if (expired) gaps->push_back({s.id, "expired", b.first_seq, b.last_seq, expired});
    r.out.push_back({b.first_seq, b.last_seq, b.records.empty()});
    if (b.records.empty()) AfterAck(s);
    return b;
  }

  void AfterAck(StreamState& s) {
    PopDone(s.backlog);
    if (s.split) PopDone(s.live);
    MaybeMerge(s);
    WriteCursor(s);
    DeleteAcked(s);
    UpdateGauges(s);
  }

  // ---- recovery ----
  struct ScanOut {
    uint64_t last = 0;  // last good seq (base-1 if none)
    int64_t last_ts = 0;
    uint64_t good_end = kSegHeader;
    uint64_t records = 0;
    bool damaged = false;  // header bad or bytes skipped before good_end
    uint64_t tail_garbage = 0;
    std::vector<std::pair<uint64_t, uint64_t>> frames;  // (offset, size) of good frames
    std::vector<std::pair<uint64_t, uint64_t>> holes;   // missing seq ranges inside
  };

  ScanOut Scan(const char* m, uint64_t size, uint64_t base) {
    ScanOut o;
    o.last = base - 1;
    bool header_ok = size >= kSegHeader && std::memcmp(m, kSegMagic, 8) == 0 &&
                     Get64(m + 8) == base && Get32(m + 16) == Crc32c(m, 16);
    o.damaged = !header_ok;
    uint64_t off = kSegHeader;
    auto valid_at = [&](uint64_t at, uint64_t min_seq, uint64_t max_seq) -> uint64_t {
      if (at + kRecHeader > size) return 0;
      uint32_t len = Get32(m + at);
      uint64_t seq = Get64(m + at + 8);
      if (len > opt.max_record_bytes || at + kRecHeader + len > size) return 0;
      if (seq < min_seq || seq > max_seq) return 0;
      if (FrameCrc(m + at, m + at + kRecHeader, len) != Get32(m + at + 4)) return 0;
      return kRecHeader + len;
    };
    while (off < size) {
      uint64_t n = valid_at(off, o.last + 1, o.last + 1);
      if (n == 0) {
        // Resync: a later frame whose seq fits the bytes in between.
        uint64_t found = 0, fsz = 0;
        for (uint64_t p = off + 1; p + kRecHeader <= size; ++p) {
          uint64_t max_seq = o.last + 1 + (p - off) / kRecHeader;
          fsz = valid_at(p, o.last + 1, max_seq);
          if (fsz) {
            found = p;
            break;
          }
        }
        if (!found) {
          o.tail_garbage = size - off;
          break;
        }
        o.damaged = true;
        off = found;
        n = fsz;
      }
      uint64_t seq = Get64(m + off + 8);
      if (seq > o.last + 1) o.holes.push_back({o.last + 1, seq - 1});
      o.last = seq;
      o.last_ts = static_cast<int64_t>(Get64(m + off + 16));
      o.frames.push_back({off, n});
      ++o.records;
      off += n;
      o.good_end = off;
    }
    return o;
  }

  void Quarantine(StreamState& s, const std::string& path, const std::string& name) {
    std::string qdir = opt.dir + "/quarantine";
    ::mkdir(qdir.c_str(), 0755);
    std::string dst = qdir + "/" + StreamName(s.id) + "-" + name + "." + std::to_string(Now());
    if (::rename(path.c_str(), dst.c_str()) != 0) ::unlink(path.c_str());
    MetricsRegistry::Global()
        .GetCounter("outpost_telemetry_segments_quarantined_total",
                    "Corrupt telemetry segment files moved to quarantine/",
                    {{"stream", StreamName(s.id)}})
        .Inc();
    report.streams[static_cast<int>(s.id)].quarantined_segments++;
    OP_LOG_WARN("telemetry: corrupt segment {} quarantined as {}", path, dst);
  }

  Status Recover(StreamState& s, std::vector<Gap>* gaps) {
    auto& rep = report.streams[static_cast<int>(s.id)];
    if (::mkdir(s.dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("mkdir " + s.dir);
    std::vector<uint64_t> bases;
    DIR* d = ::opendir(s.dir.c_str());
    if (!d) return Errno("opendir " + s.dir);
    while (dirent* e = ::readdir(d)) {
      uint64_t b;
      if (ParseSegName(e->d_name, &b)) bases.push_back(b);
      std::string n = e->d_name;
      if (n.size() > 4 && n.substr(n.size() - 4) == ".tmp") ::unlink((s.dir + "/" + n).c_str());
    }
    ::closedir(d);
    std::sort(bases.begin(), bases.end());

    // Cursor.
    std::string cpath = s.dir + "/cursor";
    s.cursor_fd = ::open(cpath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s.cursor_fd < 0) return Errno("open " + cpath);
    char cb[16];
    bool have_cursor = ::pread(s.cursor_fd, cb, 16, 0) == 16 && Get32(cb + 8) == Crc32c(cb, 8);
    uint64_t acked = have_cursor ? Get64(cb) : 0;

    std::vector<std::pair<uint64_t, uint64_t>> holes;
    for (size_t i = 0; i < bases.size(); ++i) {
      uint64_t base = bases[i];
      bool is_last = i + 1 == bases.size();
      std::string name = SegName(base);
      std::string path = s.dir + "/" + name;
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) continue;
      struct stat stt;
      ::fstat(fd, &stt);
      uint64_t size = static_cast<uint64_t>(stt.st_size);
      if (!s.segs.empty() && base <= s.segs.back().last) {  // overlaps the previous: unusable
        ::close(fd);
        Quarantine(s, path, name);
        continue;
      }
      const char* m = nullptr;
      if (size > 0) {
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) m = static_cast<const char*>(p);
      }
      ScanOut o;
      static const char kZero[kSegHeader] = {};
      o = Scan(m ? m : kZero, m ? size : 0, base);
      Segment seg{base, o.last, o.good_end, o.last_ts, path};
      if (!o.damaged && o.tail_garbage > 0 && is_last) {
        // Torn tail: an interrupted write. Cut it off.
        if (::ftruncate(fd, static_cast<off_t>(o.good_end)) == 0) ::fsync(fd);
        rep.torn_tail_bytes += o.tail_garbage;
        MetricsRegistry::Global()
            .GetCounter("outpost_telemetry_torn_tail_bytes_total",
                        "Bytes of interrupted writes truncated on start",
                        {{"stream", StreamName(s.id)}})
            .Inc(o.tail_garbage);
      } else if (o.damaged || o.tail_garbage > 0) {
        // Corrupt: keep the intact records in a rewritten segment, the original in quarantine/.
        std::string tmp = path + ".tmp";
        int tfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        bool ok = tfd >= 0;
        std::string h = SegHeader(base);
        ok = ok && WriteAll(tfd, h.data(), h.size());
        uint64_t sz = kSegHeader;
        for (auto& [off, n] : o.frames) {
          ok = ok && WriteAll(tfd, m + off, n);
          sz += n;
        }
        ok = ok && ::fsync(tfd) == 0;
        if (tfd >= 0) ::close(tfd);
        Quarantine(s, path, name);
        if (ok && ::rename(tmp.c_str(), path.c_str()) == 0) {
          seg.bytes = sz;
        } else {
          ::unlink(tmp.c_str());
          seg.last = base - 1;
          seg.bytes = 0;
        }
        for (auto& hpair : o.holes) holes.push_back(hpair);
        if (!is_last && seg.last + 1 < (i + 1 < bases.size() ? bases[i + 1] : 0))
          holes.push_back({seg.last + 1, bases[i + 1] - 1});
      }
      if (m) ::munmap(const_cast<char*>(m), size);
      ::close(fd);
      if (seg.bytes == 0 || (seg.last < seg.base && !is_last)) {
        ::unlink(path.c_str());
        if (seg.last < seg.base && !is_last) continue;
        // An unusable last segment: recreated below with the right base.
        continue;
      }
      rep.segments++;
      rep.records += o.records;
      s.segs.push_back(seg);
    }
    SyncDir(s.dir);
    // Holes between segments (a segment lost entirely).
    for (size_t i = 0; i + 1 < s.segs.size(); ++i) {
      if (s.segs[i].last + 1 < s.segs[i + 1].base && s.segs[i].last >= s.segs[i].base - 1) {
        bool known = false;
        for (auto& hp : holes) known |= hp.first == s.segs[i].last + 1;
        if (!known) holes.push_back({s.segs[i].last + 1, s.segs[i + 1].base - 1});
      }
    }
    uint64_t last_on_disk = 0;
    if (!s.segs.empty()) {
      const Segment& b = s.segs.back();
      last_on_disk = b.last >= b.base ? b.last : b.base - 1;
    }
    // Sequence numbers never go back: the cursor, the file names and the records all bound it.
    uint64_t max_base = bases.empty() ? 0 : bases.back();
    s.next_seq = std::max({acked + 1, last_on_disk + 1, max_base, uint64_t{1}});
    if (!s.segs.empty() && (!have_cursor || acked + 1 < s.segs.front().base))
      acked = s.segs.front().base - 1;
    if (s.segs.empty()) acked = std::max(acked, s.next_seq - 1);
    for (auto& [lo0, hi] : holes) {
      uint64_t lo = std::max(lo0, acked + 1);
      if (hi >= lo) {
        gaps->push_back({s.id, "corrupt", lo, hi, hi - lo + 1});
        rep.lost_records += hi - lo + 1;
      }
    }
    if (s.segs.empty()) {
      // An empty segment whose name carries the next seq: sequence numbers survive even when
      // everything was delivered and the cursor file is lost.
      std::string path = s.dir + "/" + SegName(s.next_seq);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return Errno("create " + path);
      std::string h = SegHeader(s.next_seq);
      bool ok = WriteAll(fd, h.data(), h.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) return Errno("write " + path);
      SyncDir(s.dir);
      s.segs.push_back({s.next_seq, s.next_seq - 1, kSegHeader, 0, path});
    }
    s.total_bytes = 0;
    for (auto& g : s.segs) s.total_bytes += g.bytes;
    s.backlog.acked = acked;
    s.backlog.next = acked + 1;
    s.persisted_acked = have_cursor ? Get64(cb) : UINT64_MAX;
    WriteCursor(s);
    DeleteAcked(s);
    UpdateGauges(s);
    return Status::Ok();
  }

  void FlushLoop() {
    int period = opt.sync == SyncPolicy::kInterval ? opt.sync_interval_ms : 1000;
    std::unique_lock<std::mutex> lk(flush_mu);
    while (!stopping) {
      flush_cv.wait_for(lk, std::chrono::milliseconds(period));
      if (stopping) break;
      lk.unlock();
      SyncAll(opt.sync == SyncPolicy::kInterval);
      lk.lock();
    }
  }

  void SyncAll(bool data) {
    for (auto& s : st) {
      if (data) {
        std::lock_guard<std::mutex> io(s.io_mu);
        if (s.dirty && s.wfd >= 0) {
          ::fdatasync(s.wfd);
          s.dirty = false;
        }
      }
      int cfd = -1;
      {
        std::lock_guard<std::mutex> lk(s.mu);
        if (s.cursor_dirty) {
          cfd = s.cursor_fd;
          s.cursor_dirty = false;
        }
      }
      if (cfd >= 0) ::fdatasync(cfd);
    }
  }
};

// ---------------------------------------------------------------------------------------------

DiskQueue::DiskQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DiskQueue::~DiskQueue() {
  {
    std::lock_guard<std::mutex> lk(impl_->flush_mu);
    impl_->stopping = true;
  }
  impl_->flush_cv.notify_all();
  if (impl_->flusher.joinable()) impl_->flusher.join();
  impl_->SyncAll(impl_->opt.sync != SyncPolicy::kNone);
  for (auto& s : impl_->st) {
    if (s.wfd >= 0) ::close(s.wfd);
    if (s.cursor_fd >= 0) ::close(s.cursor_fd);
    s.backlog.Invalidate();
    s.live.Invalidate();
  }
}

Expected<std::unique_ptr<DiskQueue>> DiskQueue::Open(QueueOptions options) {
  if (options.dir.empty()) return InvalidArgument("telemetry queue directory is empty");
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  if (::mkdir(impl->opt.dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Errno("mkdir " + impl->opt.dir);
  std::vector<Gap> gaps;
  // The gaps stream first: recovery of the others queues markers into it.
  for (int i : {3, 0, 1, 2}) {
    auto& s = impl->st[i];
    s.id = static_cast<Stream>(i);
    s.dir = impl->opt.dir + "/" + kStreamNames[i];
    s.lim = impl->opt.limits[i];
    s.seg_limit = std::max<uint64_t>(4096, std::min(impl->opt.segment_bytes, s.lim.max_bytes / 4));
    Labels l = {{"stream", kStreamNames[i]}};
    auto& reg = MetricsRegistry::Global();
    s.appended = &reg.GetCounter("outpost_telemetry_records_appended_total",
                                 "Telemetry records appended to the on-disk queue", l);
    s.bytes_gauge = &reg.GetGauge("outpost_telemetry_queue_bytes", "Bytes in the on-disk queue", l);
    s.backlog_gauge = &reg.GetGauge("outpost_telemetry_queue_unacked_records",
                                    "Records in the on-disk queue not yet acknowledged", l);
    OP_RETURN_IF_ERROR(impl->Recover(s, &gaps));
  }
  impl->EmitGaps(&gaps);
  impl->flusher = std::thread([p = impl.get()] {
    SetThreadName("op-queue-flush");
    p->FlushLoop();
  });
  return std::unique_ptr<DiskQueue>(new DiskQueue(std::move(impl)));
}

Expected<uint64_t> DiskQueue::Append(Stream stream, std::string_view payload) {
  std::vector<std::string_view> one{payload};
  return impl_->AppendBatch(stream, one);
}

Expected<uint64_t> DiskQueue::AppendBatch(Stream stream,
                                          const std::vector<std::string_view>& payloads) {
  return impl_->AppendBatch(stream, payloads);
}

void DiskQueue::ReportLoss(Stream stream, std::string_view reason, uint64_t count) {
  if (count == 0) return;
  std::vector<Gap> gaps{{stream, std::string(reason), 0, 0, count, false}};
  impl_->EmitGaps(&gaps);
}

std::optional<Batch> DiskQueue::ReadNext(Stream stream, size_t max_records, size_t max_bytes) {
  auto& s = impl_->st[static_cast<int>(stream)];
  std::vector<Gap> gaps;
  std::optional<Batch> b;
  int64_t now = impl_->Now();
  {
    std::lock_guard<std::mutex> lk(s.mu);
    impl_->TtlSweep(s, now, &gaps);
    impl_->FlushPendingRefusals(s, &gaps);
    bool prefer_live = false;
    if (s.split) {
      s.share_acc += impl_->opt.live_share_percent;
      if (s.share_acc >= 100) {
        s.share_acc -= 100;
        prefer_live = true;
      }
    }
    max_records = std::max<size_t>(max_records, 1);
    if (s.split && prefer_live) b = impl_->ReadRegion(s, true, max_records, max_bytes, now, &gaps);
    if (!b) b = impl_->ReadRegion(s, false, max_records, max_bytes, now, &gaps);
    if (!b && s.split) b = impl_->ReadRegion(s, true, max_records, max_bytes, now, &gaps);
  }
  impl_->EmitGaps(&gaps);
  return b;
}

void DiskQueue::Ack(Stream stream, uint64_t first_seq) {
  auto& s = impl_->st[static_cast<int>(stream)];
  std::lock_guard<std::mutex> lk(s.mu);
  for (auto* r : {&s.backlog, &s.live}) {
    for (auto& o : r->out) {
      if (o.first == first_seq) {
        o.done = true;
        break;
      }
    }
  }
  impl_->AfterAck(s);
}

void DiskQueue::Rewind() {
  for (auto& s : impl_->st) {
    std::lock_guard<std::mutex> lk(s.mu);
    for (auto* r : {&s.backlog, &s.live}) {
      r->out.clear();
      r->next = r->acked + 1;
      r->Invalidate();
    }
    impl_->MaybeMerge(s);
  }
}

void DiskQueue::MarkLive() {
  if (impl_->opt.live_share_percent <= 0) return;
  for (auto& s : impl_->st) {
    std::lock_guard<std::mutex> lk(s.mu);
    if (s.split) continue;
    uint64_t last = impl_->ReadableLast(s);
    if (s.backlog.acked >= last) continue;  // no backlog
    uint64_t split = std::max(last + 1, s.backlog.next);
    s.split = split;
    s.live = Impl::Region{};
    s.live.acked = split - 1;
    s.live.next = split;
    s.share_acc = 0;
  }
}

Status DiskQueue::Sync() {
  impl_->SyncAll(true);
  return Status::Ok();
}

StreamStats DiskQueue::Stats(Stream stream) const {
  auto& s = impl_->st[static_cast<int>(stream)];
  std::lock_guard<std::mutex> lk(s.mu);
  StreamStats r;
  r.next_seq = s.next_seq;
  r.acked_seq = s.backlog.acked;
  r.disk_bytes = 0;
  for (auto& g : s.segs) r.disk_bytes += g.bytes;
  r.segments = s.segs.size();
  r.first_seq = s.segs.front().base;
  r.split = s.split != 0;
  return r;
}

const RecoveryReport& DiskQueue::recovery() const { return impl_->report; }
const QueueOptions& DiskQueue::options() const { return impl_->opt; }

}  // namespace outpost::telemetry
