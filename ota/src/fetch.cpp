// The static delta's download with libcurl, then its offline application (fetch.h).
#include "fetch.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <glib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "delta.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"

namespace outpost::ota::internal {

namespace fs = std::filesystem;

const char* DeltaOutcomeName(DeltaOutcome o) {
  switch (o) {
    case DeltaOutcome::kApplied:
      return "applied";
    case DeltaOutcome::kNoDelta:
      return "no-delta";
    case DeltaOutcome::kInterrupted:
      return "interrupted";
    case DeltaOutcome::kRefused:
      return "refused";
    case DeltaOutcome::kFailed:
      return "failed";
  }
  return "?";
}

Expected<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read '" + path + "'");
  GChecksum* c = g_checksum_new(G_CHECKSUM_SHA256);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0)
      g_checksum_update(c, reinterpret_cast<const guchar*>(buf.data()),
                        static_cast<gssize>(in.gcount()));
  }
  std::string hex = g_checksum_get_string(c);
  g_checksum_free(c);
  return hex;
}

namespace {

void CountRequest(const char* outcome) {
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_download_requests_total",
                  "OTA delta file requests by outcome (ok, not-found, http-4xx, http-error, "
                  "range-not-satisfiable, network, too-large, io)",
                  {{"outcome", outcome}})
      .Inc();
}

void CountResume(const char* outcome) {
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_download_resumes_total",
                  "OTA delta files continued from a partial file: resumed (206) or restarted "
                  "(the server answered 200 to the range)",
                  {{"outcome", outcome}})
      .Inc();
}

Counter& BytesCounter() {
  return MetricsRegistry::Global().GetCounter("outpost_ota_download_bytes_total",
                                              "Bytes of OTA static delta files received (libcurl)");
}

enum class FileStatus { kOk, kNotFound, kHttp4xx, kNetwork, kTooLarge, kIo };
struct FileResult {
  FileStatus status = FileStatus::kOk;
  std::string message;
  bool disk_full = false;
};

// One request's sink: appends to the partial file, or starts it again when the server ignored
// the range; an error page is not written.
struct Sink {
  CURL* curl = nullptr;
  int fd = -1;
  uint64_t have = 0;       // bytes in the file before this request
  uint64_t written = 0;    // by this request
  uint64_t max_bytes = 0;  // the file may not grow past this (0: no limit)
  double rate = 0;         // bytes/s; 0: unlimited
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  bool decided = false, discard = false, too_large = false;
  int write_errno = 0;
};

size_t OnData(char* p, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t len = size * n;
  if (!s->decided) {
    s->decided = true;
    long code = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300) {
      s->discard = true;
    } else if (s->have > 0) {
      // 206 (or 0: file:// honours the range) continues the file; 200 sends all of it again.
      if (code == 206 || code == 0) {
        CountResume("resumed");
      } else {
        CountResume("restarted");
        OP_LOG_WARN(
            "ota fetch: the server answered {} to a range request; starting the file "
            "again",
            code);
        if (ftruncate(s->fd, 0) != 0) {
          s->write_errno = errno;
          return 0;
        }
        s->have = 0;
      }
    }
  }
  if (s->discard) return len;
  if (s->max_bytes && s->have + s->written + len > s->max_bytes) {
    s->too_large = true;
    return 0;
  }
  for (size_t off = 0; off < len;) {
    ssize_t w = write(s->fd, p + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      s->write_errno = errno;
      return 0;
    }
    off += static_cast<size_t>(w);
  }
  s->written += len;
  BytesCounter().Inc(len);
  // The rate limit, paced here: libcurl 7.88's own limiter (CURLOPT_MAX_RECV_SPEED_LARGE, set
  // too) lets bursts of several times the rate through. Not reading the socket meanwhile makes
  // TCP slow the sender down.
  if (s->rate > 0) {
    const auto due = s->start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(double(s->written) / s->rate));
    std::this_thread::sleep_until(due);
  }
  return len;
}

uint64_t SizeOf(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : n;
}

class Fetcher {
 public:
  explicit Fetcher(const DownloadOptions& o) : o_(o), rng_(std::random_device{}()) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  }

  // `url` into `path`, continuing a partial file with a range request; `expected` (0: unknown)
  // is the complete size, `max_bytes` a bound. Bounded attempts with jittered backoff for the
  // network, 5xx and 416; 404 and other 4xx end at once.
  FileResult Get(const std::string& url, const std::string& path, uint64_t expected,
                 uint64_t max_bytes) {
    std::string last;
    const int attempts = std::max(1, o_.attempts);
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      if (attempt > 1) {
        double d =
            std::min(o_.retry_max_s, o_.retry_base_s * double(1 << std::min(attempt - 2, 16)));
        d *= std::uniform_real_distribution<double>(0.5, 1.0)(rng_);
        OP_LOG_WARN("ota fetch: attempt {}/{} of {} in {:.2f} s: {}", attempt, attempts, url, d,
                    last);
        std::this_thread::sleep_for(std::chrono::duration<double>(d));
      }
      uint64_t have = SizeOf(path);
      if (expected && have == expected) return {};
      if (expected && have > expected) {
        fs::remove(path);
        have = 0;
      }
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) {
        CountRequest("io");
        return {FileStatus::kIo, "cannot write '" + path + "': " + std::strerror(errno),
                errno == ENOSPC || errno == EDQUOT};
      }
      CURL* c = curl_easy_init();
      Sink sink;
      sink.curl = c;
      sink.fd = fd;
      sink.have = have;
      sink.max_bytes = max_bytes;
      sink.rate = o_.rate_limit_kbps > 0 ? double(o_.rate_limit_kbps) * 1000.0 / 8.0 : 0.0;
      char errbuf[CURL_ERROR_SIZE] = "";
      curl_easy_setopt(c, CURLOPT_URL, url.c_str());
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnData);
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
      curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
      curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
      curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
      curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(o_.connect_timeout_s));
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o_.low_speed_time_s));
      if (o_.rate_limit_kbps > 0)
        curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE,
                         static_cast<curl_off_t>(o_.rate_limit_kbps * 1000 / 8));
      const std::string range = std::to_string(have) + "-";
      if (have > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
      const CURLcode rc = curl_easy_perform(c);
      long code = 0;
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
      curl_easy_cleanup(c);
      fsync(fd);  // what arrived survives a power cut: the next step continues from it
      close(fd);
      const std::string what = url + (have > 0 ? " (from byte " + std::to_string(have) + ")" : "");
      if (sink.write_errno) {
        CountRequest("io");
        return {FileStatus::kIo, "cannot write '" + path + "': " + std::strerror(sink.write_errno),
                sink.write_errno == ENOSPC || sink.write_errno == EDQUOT};
      }
      if (sink.too_large) {
        CountRequest("too-large");
        fs::remove(path);
        return {FileStatus::kTooLarge,
                url + " is larger than the " + std::to_string(max_bytes) + " bytes expected"};
      }
      if (rc == CURLE_OK) {
        if (code == 200 || code == 206 || code == 0) {
          CountRequest("ok");
          return {};
        }
        const std::string http = "HTTP " + std::to_string(code) + " for " + what;
        if (code == 404) {
          CountRequest("not-found");
          return {FileStatus::kNotFound, http};
        }
        if (code == 416) {  // the partial file does not fit the server's: start it again
          CountRequest("range-not-satisfiable");
          fs::remove(path);
          last = http;
          continue;
        }
        if (code >= 400 && code < 500) {
          CountRequest("http-4xx");
          return {FileStatus::kHttp4xx, http + " (not retried)"};
        }
        CountRequest("http-error");
        last = http;
        continue;
      }
      CountRequest("network");
      last = what + ": " + (errbuf[0] ? errbuf : curl_easy_strerror(rc)) + " (" +
             std::to_string(SizeOf(path)) + " bytes on disk)";
    }
    return {FileStatus::kNetwork, last + "; " + std::to_string(attempts) + " attempts"};
  }

 private:
  const DownloadOptions& o_;
  std::mt19937_64 rng_;
};

DeltaResult Result(DeltaOutcome o, std::string message) {
  DeltaResult r;
  r.outcome = o;
  r.message = std::move(message);
  return r;
}

// A file fetched and equal to its sha256, or the result that stops the update. A file that
// does not match after continuing bytes from an earlier step is fetched once more from byte 0
// (those bytes may have been lost in a power cut); a fresh mismatch is a refusal.
std::optional<DeltaResult> GetChecked(Fetcher& f, const std::string& url, const std::string& path,
                                      uint64_t expected, uint64_t max_bytes,
                                      const std::string& sha256, const std::string& signed_by) {
  if (SizeOf(path) > 0) {  // complete in an earlier step: nothing to fetch
    auto got = Sha256File(path);
    if (got.ok() && *got == sha256) return std::nullopt;
  }
  for (int round = 0; round < 2; ++round) {
    const bool partial = SizeOf(path) > 0;
    FileResult r = f.Get(url, path, expected, max_bytes);
    switch (r.status) {
      case FileStatus::kOk:
        break;
      case FileStatus::kNotFound:
        return Result(DeltaOutcome::kNoDelta, r.message);
      case FileStatus::kHttp4xx:
        return Result(DeltaOutcome::kFailed, r.message);
      case FileStatus::kTooLarge:
        return Result(DeltaOutcome::kRefused, r.message);
      case FileStatus::kNetwork:
      case FileStatus::kIo: {
        DeltaResult d = Result(DeltaOutcome::kInterrupted, r.message);
        d.disk_full = r.disk_full;
        return d;
      }
    }
    auto got = Sha256File(path);
    if (got.ok() && *got == sha256) return std::nullopt;
    const std::string have = got.ok() ? *got : got.status().message();
    fs::remove(path);
    if (partial && round == 0) {
      OP_LOG_WARN(
          "ota fetch: '{}', continued from an earlier download, has sha256 {}; "
          "downloading it again",
          path, have);
      continue;
    }
    return Result(DeltaOutcome::kRefused,
                  "'" + url + "' has sha256 " + have + ", " + signed_by + " says " + sha256);
  }
  return std::nullopt;  // not reached
}

}  // namespace

DeltaResult FetchAndApplyDelta(const SysrootConfig& cfg, const std::string& from,
                               const std::string& download_root, const DownloadOptions& opts) {
  DeltaResult res = [&]() -> DeltaResult {
    auto sum = ReadRemoteSummary(cfg);
    if (!sum.ok())
      return Result(sum.status().code() == Code::kInvalidArgument ? DeltaOutcome::kRefused
                                                                  : DeltaOutcome::kInterrupted,
                    sum.status().message());
    const std::string to = sum->head;
    std::string base = from;
    auto it = sum->deltas.end();
    if (!from.empty()) it = sum->deltas.find(from + "-" + to);
    if (it == sum->deltas.end()) {
      base.clear();
      it = sum->deltas.find(to);
    }
    if (it == sum->deltas.end())
      return Result(DeltaOutcome::kNoDelta,
                    "the summary lists no static delta to " + to +
                        (from.empty() ? std::string() : " from " + from + " nor from empty"));
    // One download directory per (from, to); any other is a stale target's.
    const std::string name = (base.empty() ? "empty" : base) + "-" + to;
    const std::string dir = download_root + "/" + name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      return Result(DeltaOutcome::kInterrupted, "cannot create '" + dir + "': " + ec.message());
    for (const auto& e : fs::directory_iterator(download_root, ec)) {
      if (e.path().filename() == name) continue;
      OP_LOG_INFO("ota fetch: removing the stale download {}", e.path().string());
      fs::remove_all(e.path(), ec);
    }
    OP_LOG_INFO(
        "ota fetch: static delta {} -> {} into {}{}", base.empty() ? "empty" : base, to, dir,
        opts.rate_limit_kbps > 0 ? " at most " + std::to_string(opts.rate_limit_kbps) + " kbit/s"
                                 : std::string());
    Fetcher f(opts);
    const std::string url = sum->url + "/" + DeltaRelPath(base, to);
    if (auto stop = GetChecked(f, url + "/superblock", dir + "/superblock", 0, 256u << 20,
                               it->second, "the signed summary"))
      return *stop;
    auto sb = ReadSuperblock(dir + "/superblock");
    if (!sb.ok()) return Result(DeltaOutcome::kRefused, sb.status().message());
    if (sb->to != to || sb->from != base)
      return Result(DeltaOutcome::kRefused, "the superblock at " + url + " is for " +
                                                (sb->from.empty() ? "empty" : sb->from) + " -> " +
                                                sb->to);
    // The superblock carries the commit (its checksum is `to`, signed through the summary):
    // a downgrade is refused before its parts are downloaded.
    if (Status s = CheckNotOlder(cfg, to, sb->timestamp, from); !s.ok())
      return Result(
          s.code() == Code::kInvalidArgument ? DeltaOutcome::kRefused : DeltaOutcome::kInterrupted,
          s.message());
    if (sb->fallbacks > 0)
      return Result(DeltaOutcome::kNoDelta, "the delta leaves " + std::to_string(sb->fallbacks) +
                                                " objects to fetch one by one (fallbacks)");
    for (size_t i = 0; i < sb->parts.size(); ++i) {
      const auto& p = sb->parts[i];
      const std::string part = std::to_string(i);
      if (auto stop = GetChecked(f, url + "/" + part, dir + "/" + part, p.bytes, p.bytes, p.sha256,
                                 "its superblock"))
        return *stop;
    }
    auto applied = ApplyStaticDelta(cfg, dir, to, from);
    if (!applied.ok()) {
      const Code c = applied.status().code();
      DeltaResult d =
          Result(c == Code::kInvalidArgument ? DeltaOutcome::kRefused : DeltaOutcome::kInterrupted,
                 applied.status().message());
      d.disk_full = c == Code::kResourceExhausted;
      if (d.outcome == DeltaOutcome::kRefused) fs::remove_all(dir, ec);
      return d;
    }
    fs::remove_all(dir, ec);
    DeltaResult d = Result(DeltaOutcome::kApplied, "applied the static delta to " + *applied);
    d.commit = *applied;
    return d;
  }();
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_delta_updates_total",
                  "OTA updates by static delta (libcurl) by outcome: applied, no-delta (libostree "
                  "pull instead), interrupted, refused, failed",
                  {{"outcome", DeltaOutcomeName(res.outcome)}})
      .Inc();
  if (res.outcome != DeltaOutcome::kApplied)
    OP_LOG_WARN("ota fetch: {}: {}", DeltaOutcomeName(res.outcome), res.message);
  return res;
}

}  // namespace outpost::ota::internal
