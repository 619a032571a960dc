#include "yaml_util.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <regex>

namespace outpost::config::internal {

Status ErrorAt(Code code, std::string_view source, int line, std::string_view path,
               std::string_view message) {
  std::string m(source);
  if (line > 0) m += ":" + std::to_string(line);
  m += ": ";
  if (!path.empty()) {
    m += path;
    m += ": ";
  }
  m += message;
  return Status(code, std::move(m));
}

int LineOf(const YAML::Node& n, int fallback) {
  if (!n.IsDefined()) return fallback;
  const YAML::Mark m = n.Mark();
  if (m.is_null() || m.line < 0) return fallback;
  return m.line + 1;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string Describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null (no value)";
  if (n.IsMap()) return "a mapping";
  if (n.IsSequence()) return "a sequence";
  return Quote(n.Scalar());
}

std::string KeyPath(std::string_view parent, std::string_view key) {
  const bool plain = !key.empty() && key.find_first_of("./ \"[]") == std::string_view::npos;
  std::string out(parent);
  if (plain) {
    if (!out.empty()) out += '.';
    out += key;
  } else {
    out += '[';
    out += Quote(key);
    out += ']';
  }
  return out;
}

namespace {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string Suggest(std::string_view word, const std::vector<std::string_view>& candidates) {
  const size_t limit = word.size() >= 5 ? 2 : 1;
  size_t best = limit + 1;
  std::string_view best_word;
  for (std::string_view c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best && d < word.size()) {
      best = d;
      best_word = c;
    }
  }
  return std::string(best_word);
}

Status ParseYaml(std::string_view text, std::string_view source, YAML::Node* root) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    return ErrorAt(Code::kInvalidArgument, source, line, "", "YAML syntax error: " + e.msg);
  }
  std::vector<YAML::Node> real;
  for (const YAML::Node& d : docs) {
    if (d.IsDefined() && !d.IsNull()) real.push_back(d);
  }
  if (real.size() > 1) {
    return ErrorAt(Code::kInvalidArgument, source, LineOf(real[1], 0), "",
                   "more than one YAML document in one file; put one per file");
  }
  *root = real.empty() ? YAML::Node(YAML::NodeType::Null) : real[0];
  return Status::Ok();
}

bool ParseInt64(std::string_view s, int64_t* out) {
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i == s.size()) return false;
  __int128 v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
    if (v > static_cast<__int128>(INT64_MAX) + 1) return false;
  }
  if (neg) v = -v;
  if (v > INT64_MAX || v < INT64_MIN) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

Status ParseQuantity(std::string_view s, int scale10, int64_t* out) {
  auto bad = [&](std::string_view why) {
    return Status(Code::kInvalidArgument,
                  "invalid quantity " + Quote(s) + " (" + std::string(why) + ")");
  };
  size_t i = 0;
  if (i < s.size() && s[i] == '+') ++i;
  if (i < s.size() && s[i] == '-') return bad("must not be negative");
  std::string digits;
  int frac = 0;
  bool dot = false;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      digits += s[i];
      if (dot) ++frac;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (digits.empty()) return bad("expected a number such as 500m, 2, 512Mi or 1G");
  const std::string_view suffix = s.substr(i);
  int b2 = 0, e10 = 0;
  if (suffix.empty()) {
  } else if (suffix.size() == 2 && suffix[1] == 'i') {
    const std::string_view bin = "KMGTPE";
    const size_t k = bin.find(suffix[0]);
    if (k == std::string_view::npos) return bad("unknown suffix " + Quote(suffix));
    b2 = 10 * static_cast<int>(k + 1);
  } else if (suffix.size() == 1 &&
             std::string_view("numkMGTPE").find(suffix[0]) != std::string_view::npos) {
    static const std::pair<char, int> kDec[] = {{'n', -9}, {'u', -6}, {'m', -3}, {'k', 3}, {'M', 6},
                                                {'G', 9},  {'T', 12}, {'P', 15}, {'E', 18}};
    for (const auto& [c, e] : kDec) {
      if (c == suffix[0]) e10 = e;
    }
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    int64_t e = 0;
    if (!ParseInt64(suffix.substr(1), &e) || e < -100 || e > 100) {
      return bad("bad exponent " + Quote(suffix));
    }
    e10 = static_cast<int>(e);
  } else {
    return bad("unknown suffix " + Quote(suffix));
  }
  // Normalize the mantissa: drop leading zeros, and trailing zeros of the fraction.
  size_t lead = 0;
  while (lead + 1 < digits.size() && digits[lead] == '0') ++lead;
  digits = digits.substr(lead);
  while (frac > 0 && digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
    --frac;
  }
  if (digits.size() > 18) return bad("too many digits");
  __int128 num = 0;
  for (char c : digits) num = num * 10 + (c - '0');
  num <<= b2;
  const int p = e10 + scale10 - frac;
  const __int128 kMax = INT64_MAX;
  if (p >= 0) {
    for (int k = 0; k < p && num != 0; ++k) {
      if (num > kMax) break;
      num *= 10;
    }
  } else if (-p > 38) {
    num = num > 0 ? 1 : 0;
  } else {
    __int128 div = 1;
    for (int k = 0; k < -p; ++k) div *= 10;
    num = (num + div - 1) / div;
  }
  if (num > kMax) return bad("too large");
  *out = static_cast<int64_t>(num);
  return Status::Ok();
}

bool PlainScalarIsNonString(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return true;
  if (!n.IsScalar() || n.Tag() != "?") return false;
  static const std::regex kNonString(
      "y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|"
      "null|Null|NULL|~|"
      "[-+]?[0-9][0-9_]*|[-+]?0[xX][0-9a-fA-F_]+|0o[0-7]+|[-+]?0b[01_]+|"
      "[-+]?([0-9][0-9_]*)?\\.[0-9_]*([eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|"
      "[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\\.[0-9_]*)?|"
      "[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)");
  const std::string& s = n.Scalar();
  if (s == ".") return false;
  return std::regex_match(s, kNonString);
}

Status MapView::Make(std::string source, const YAML::Node& node, std::string path,
                     int fallback_line, MapView* out) {
  MapView v;
  v.source_ = std::move(source);
  v.path_ = std::move(path);
  v.line_ = fallback_line;
  if (node.IsDefined() && !node.IsNull()) {
    if (!node.IsMap()) {
      return ErrorAt(Code::kInvalidArgument, v.source_, internal::LineOf(node, v.line_), v.path_,
                     "expected a mapping, got " + Describe(node));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: yaml-cpp's iterator hands out a temporary proxy (a reference into it would
      // dangle); a Node copy shares the underlying node.
      const YAML::Node k = it->first;
      const YAML::Node value = it->second;
      const int kline = internal::LineOf(k, v.line_);
      if (!k.IsScalar()) {
        return ErrorAt(Code::kInvalidArgument, v.source_, kline, v.path_,
                       "keys must be plain strings, got " + Describe(k));
      }
      const std::string key = k.Scalar();
      for (const Entry& e : v.entries_) {
        if (e.key == key) {
          return ErrorAt(Code::kInvalidArgument, v.source_, kline, KeyPath(v.path_, key),
                         "duplicate key (first given at line " +
                             std::to_string(internal::LineOf(e.key_node, 0)) + ")");
        }
      }
      v.entries_.push_back(Entry{key, k, value});
    }
  }
  *out = std::move(v);
  return Status::Ok();
}

const Entry* MapView::Find(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

int MapView::LineOf(const Entry& e) const {
  const int key_line = internal::LineOf(e.key_node, line_);
  // A block mapping or sequence starts on the line after its key: point at the key.
  if (e.value.IsMap() || e.value.IsSequence()) return key_line;
  return internal::LineOf(e.value, key_line);
}

Status MapView::Error(const Entry& e, std::string_view message, Code code) const {
  return ErrorAt(code, source_, LineOf(e), PathOf(e.key), message);
}

Status MapView::ErrorHere(std::string_view message, Code code) const {
  return ErrorAt(code, source_, line_, path_, message);
}

Status MapView::RejectUnknown(const std::vector<std::string_view>& known) const {
  for (const Entry& e : entries_) {
    if (std::find(known.begin(), known.end(), e.key) != known.end()) continue;
    std::string msg = "unknown key";
    const std::string hint = Suggest(e.key, known);
    if (!hint.empty()) msg += " (did you mean " + Quote(hint) + "?)";
    return ErrorAt(Code::kInvalidArgument, source_, internal::LineOf(e.key_node, line_),
                   PathOf(e.key), msg);
  }
  return Status::Ok();
}

Status MapView::ScalarOf(const Entry& e, std::string_view what, std::string* out) const {
  if (!e.value.IsScalar()) {
    return Error(e, "expected " + std::string(what) + ", got " + Describe(e.value));
  }
  *out = e.value.Scalar();
  return Status::Ok();
}

Status MapView::Int(std::string_view key, int64_t lo, int64_t hi, int64_t* out) const {
  const Entry* e = Find(key);
  if (e == nullptr) return Status::Ok();
  const std::string what = "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  std::string s;
  OP_RETURN_IF_ERROR(ScalarOf(*e, what, &s));
  int64_t v = 0;
  if (!ParseInt64(s, &v) || v < lo || v > hi) {
    return Error(*e, "expected " + what + ", got " + Quote(s));
  }
  *out = v;
  return Status::Ok();
}

Status MapView::Int(std::string_view key, int64_t lo, int64_t hi, int* out) const {
  int64_t v = *out;
  OP_RETURN_IF_ERROR(Int(key, std::max<int64_t>(lo, INT_MIN), std::min<int64_t>(hi, INT_MAX), &v));
  *out = static_cast<int>(v);
  return Status::Ok();
}

Status MapView::Bool(std::string_view key, bool* out) const {
  const Entry* e = Find(key);
  if (e == nullptr) return Status::Ok();
  std::string s;
  OP_RETURN_IF_ERROR(ScalarOf(*e, "true or false", &s));
  static const std::vector<std::string_view> kTrue = {"true", "True", "TRUE", "yes", "Yes",
                                                      "YES",  "on",   "On",   "ON"};
  static const std::vector<std::string_view> kFalse = {"false", "False", "FALSE", "no", "No",
                                                       "NO",    "off",   "Off",   "OFF"};
  if (std::find(kTrue.begin(), kTrue.end(), s) != kTrue.end()) {
    *out = true;
  } else if (std::find(kFalse.begin(), kFalse.end(), s) != kFalse.end()) {
    *out = false;
  } else {
    return Error(*e, "expected true or false, got " + Quote(s));
  }
  return Status::Ok();
}

Status MapView::String(std::string_view key, std::string* out) const {
  const Entry* e = Find(key);
  if (e == nullptr) return Status::Ok();
  if (e->value.IsNull()) {
    out->clear();
    return Status::Ok();
  }
  return ScalarOf(*e, "a string", out);
}

Status MapView::Enum(std::string_view key, const std::vector<std::string_view>& allowed,
                     std::string* out) const {
  const Entry* e = Find(key);
  if (e == nullptr) return Status::Ok();
  std::string list;
  for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  std::string s;
  OP_RETURN_IF_ERROR(ScalarOf(*e, "one of " + list, &s));
  if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
    std::string msg = "expected one of " + list + ", got " + Quote(s);
    const std::string hint = Suggest(s, allowed);
    if (!hint.empty()) msg += " (did you mean " + Quote(hint) + "?)";
    return Error(*e, msg);
  }
  *out = s;
  return Status::Ok();
}

Status MapView::Bytes(std::string_view key, uint64_t lo, uint64_t hi, uint64_t* out) const {
  const Entry* e = Find(key);
  if (e == nullptr) return Status::Ok();
  const std::string what = "a byte size in " + std::to_string(lo) + ".." + std::to_string(hi) +
                           " (an integer or a quantity such as 64Mi)";
  std::string s;
  OP_RETURN_IF_ERROR(ScalarOf(*e, what, &s));
  int64_t v = 0;
  if (!ParseQuantity(s, 0, &v).ok() || static_cast<uint64_t>(v) < lo ||
      static_cast<uint64_t>(v) > hi) {
    return Error(*e, "expected " + what + ", got " + Quote(s));
  }
  *out = static_cast<uint64_t>(v);
  return Status::Ok();
}

Status MapView::Section(std::string_view key, MapView* out) const {
  const Entry* e = Find(key);
  if (e == nullptr) {
    return Make(source_, YAML::Node(), PathOf(key), line_, out);
  }
  return Make(source_, e->value, PathOf(key), internal::LineOf(e->key_node, line_), out);
}

}  // namespace outpost::config::internal
