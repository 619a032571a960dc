// Helpers shared by the telemetry tests: temp dirs and reading a stream back.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "outpost/telemetry/queue.h"

namespace outpost::telemetry::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/outpost-telemetry-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    path_ = p ? p : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Reads every pending batch of `s`, acks it, and returns the records in read order.
inline std::vector<Record> DrainAll(DiskQueue& q, Stream s, size_t max_records = 1000) {
  std::vector<Record> out;
  while (auto b = q.ReadNext(s, max_records, 1 << 20)) {
    for (auto& r : b->records) out.push_back(r);
    q.Ack(s, b->first_seq);
  }
  return out;
}

inline std::vector<nlohmann::json> DrainGaps(DiskQueue& q) {
  std::vector<nlohmann::json> out;
  for (auto& r : DrainAll(q, Stream::kGaps)) out.push_back(nlohmann::json::parse(r.payload));
  return out;
}

}  // namespace outpost::telemetry::testing
