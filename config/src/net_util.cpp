#include "net_util.h"

#include <arpa/inet.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "yaml_util.h"

namespace outpost::config::internal {

namespace {

bool IsIpv4(std::string_view s) {
  in_addr a;
  return inet_pton(AF_INET, std::string(s).c_str(), &a) == 1;
}

bool IsIpv6(std::string_view s) {
  in6_addr a;
  return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}

bool IsHostName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) dot = s.size();
    const std::string_view label = s.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = dot + 1;
    if (dot == s.size()) break;
  }
  // All-numeric dotted names are IPv4 attempts, not host names.
  return s.find_first_not_of("0123456789.") != std::string_view::npos;
}

}  // namespace

std::string CheckListenHost(std::string_view host) {
  if (host.empty()) return "empty address (use 0.0.0.0 or :: for all interfaces)";
  if (host.front() == '[') return "write IPv6 addresses without brackets here, got " + Quote(host);
  if (IsIpv4(host) || IsIpv6(host) || IsHostName(host)) return "";
  return "expected an IPv4 or IPv6 address or a host name, got " + Quote(host);
}

std::string SplitHostPort(std::string_view s, std::string* host, uint16_t* port) {
  std::string_view h, p;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
    h = s.substr(1, close - 1);
    if (close + 1 >= s.size() || s[close + 1] != ':') {
      return "expected ADDR:PORT, e.g. [::1]:8080 (the port is missing)";
    }
    p = s.substr(close + 2);
    if (!IsIpv6(h)) return "not an IPv6 address: " + Quote(h);
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      return "expected ADDR:PORT, e.g. 127.0.0.1:8080 or [::1]:8080";
    }
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) {
      return "IPv6 addresses need brackets, e.g. [::1]:8080";
    }
    const std::string why = CheckListenHost(h);
    if (!why.empty()) return why;
  }
  int64_t n = 0;
  if (p.empty() || p.front() == '+' || p.front() == '-' || !ParseInt64(p, &n) || n < 0 ||
      n > 65535) {
    return "expected a port in 0..65535, got " + Quote(p);
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(n);
  return "";
}

std::string CheckUrl(std::string_view url, std::initializer_list<std::string_view> schemes) {
  std::string list;
  for (std::string_view sc : schemes) list += (list.empty() ? "" : ", ") + std::string(sc) + "://";
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return "expected a URL starting with one of " + list + ", got " + Quote(url);
  }
  const std::string_view scheme = url.substr(0, sep);
  bool ok = false;
  for (std::string_view sc : schemes) ok = ok || sc == scheme;
  if (!ok) {
    return "unsupported URL scheme " + Quote(scheme) + " (expected one of " + list + ")";
  }
  if (url.find_first_of(" \t\r\n") != std::string_view::npos) {
    return "URL must not contain whitespace, got " + Quote(url);
  }
  if (scheme == "file") {
    if (url.size() <= sep + 3 || url[sep + 3] != '/') {
      return "file URLs must hold an absolute path (file:///path), got " + Quote(url);
    }
    return "";
  }
  std::string_view rest = url.substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority = authority.substr(at + 1);
  std::string_view h = authority, p;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || !IsIpv6(authority.substr(1, close - 1))) {
      return "bad IPv6 host in " + Quote(url);
    }
    h = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return "bad host in " + Quote(url);
      p = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      h = authority.substr(0, colon);
      p = authority.substr(colon + 1);
    }
    if (h.empty()) return "URL has no host: " + Quote(url);
    if (!IsIpv4(h) && !IsHostName(h)) return "bad host " + Quote(h) + " in " + Quote(url);
  }
  if (!p.empty() || authority.find(':') != std::string_view::npos) {
    int64_t n = 0;
    if (!ParseInt64(p, &n) || n < 1 || n > 65535 || p.front() == '+' || p.front() == '-') {
      return "bad port " + Quote(p) + " in " + Quote(url);
    }
  }
  return "";
}

Status ReadTextFile(const std::string& path, std::string_view what, std::string* out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) {
    return NotFound(std::string(what) + " not found: " + path);
  }
  if (ec) return IoError("cannot read " + std::string(what) + " " + path + ": " + ec.message());
  if (fs::is_directory(st)) {
    return IoError("cannot read " + std::string(what) + " " + path + ": is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return IoError("cannot read " + std::string(what) + " " + path + ": " + std::strerror(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return IoError("error reading " + std::string(what) + " " + path);
  *out = ss.str();
  return Status::Ok();
}

}  // namespace outpost::config::internal
