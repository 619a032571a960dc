// Internal: reading validated values out of yaml-cpp nodes with file:line:key errors.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::config::internal {

// Where messages point: "source:line: path: message".
Status ErrorAt(Code code, std::string_view source, int line, std::string_view path,
               std::string_view message);

// 1-based line of `n`, or `fallback` when yaml-cpp has no mark for it (null nodes).
int LineOf(const YAML::Node& n, int fallback);

// "a mapping", "a sequence", "null", or the quoted scalar.
std::string Describe(const YAML::Node& n);

// `parent.key`, or `parent["key"]` when the key holds '.', '/' or spaces.
std::string KeyPath(std::string_view parent, std::string_view key);

std::string Quote(std::string_view s);

// Closest candidate within a small edit distance, or "" when none is close.
std::string Suggest(std::string_view word, const std::vector<std::string_view>& candidates);

// Parses a YAML document (exactly one, or none: returns a null node). Syntax errors become
// kInvalidArgument "source:line: YAML syntax error: ...".
Status ParseYaml(std::string_view text, std::string_view source, YAML::Node* root);

// Strict integer text: optional sign and decimal digits.
bool ParseInt64(std::string_view s, int64_t* out);

// Kubernetes quantity, returned as ceil(value * 10^scale10). Rejects negatives.
Status ParseQuantity(std::string_view s, int scale10, int64_t* out);

// True when YAML (1.1 or 1.2, as Kubernetes tools read it) would resolve this plain scalar to
// something other than a string: a number, a bool or null.
bool PlainScalarIsNonString(const YAML::Node& n);

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

// A mapping checked for non-scalar and duplicate keys, with typed readers that leave the target
// untouched when the key is absent.
class MapView {
 public:
  // `node` may be null (an empty section): no entries. Anything else but a mapping is an error.
  // `line` is where the mapping is named (its key's line; for the root, its first line): errors
  // about the mapping as a whole, such as a missing key, point there.
  static Status Make(std::string source, const YAML::Node& node, std::string path, int line,
                     MapView* out);

  const std::string& source() const { return source_; }
  const std::string& path() const { return path_; }
  int line() const { return line_; }
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* Find(std::string_view key) const;
  std::string PathOf(std::string_view key) const { return KeyPath(path_, key); }
  int LineOf(const Entry& e) const;

  Status Error(const Entry& e, std::string_view message, Code code = Code::kInvalidArgument) const;
  Status ErrorHere(std::string_view message, Code code = Code::kInvalidArgument) const;

  // Every key must be in `known`; otherwise an error naming it, with "did you mean".
  Status RejectUnknown(const std::vector<std::string_view>& known) const;

  Status Int(std::string_view key, int64_t lo, int64_t hi, int64_t* out) const;
  Status Int(std::string_view key, int64_t lo, int64_t hi, int* out) const;
  Status Bool(std::string_view key, bool* out) const;
  Status String(std::string_view key, std::string* out) const;
  Status Enum(std::string_view key, const std::vector<std::string_view>& allowed,
              std::string* out) const;
  // Byte size: an integer or a Kubernetes quantity ("64Mi", "1G").
  Status Bytes(std::string_view key, uint64_t lo, uint64_t hi, uint64_t* out) const;
  Status Section(std::string_view key, MapView* out) const;  // absent or null: empty view

  // Value-level helpers (for values obtained from Find).
  Status ScalarOf(const Entry& e, std::string_view what, std::string* out) const;

 private:
  std::string source_;
  std::string path_;
  int line_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace outpost::config::internal
