// Internal: host, port, URL and file helpers shared by the device config and the manifests.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "outpost/core/status.h"

namespace outpost::config::internal {

// A listen host: IPv4 or IPv6 literal (no brackets) or an RFC 1123 host name. "" when fine,
// else why not.
std::string CheckListenHost(std::string_view host);

// "HOST:PORT" or "[IPV6]:PORT", port 0..65535. "" when fine, else why not.
std::string SplitHostPort(std::string_view s, std::string* host, uint16_t* port);

// scheme://host[:port][/path...] with the scheme in `schemes` (file: any path, no host needed).
// "" when fine, else why not.
std::string CheckUrl(std::string_view url, std::initializer_list<std::string_view> schemes);

// Whole file. Missing: kNotFound; unreadable or a directory: kIoError. `what` names it.
Status ReadTextFile(const std::string& path, std::string_view what, std::string* out);

}  // namespace outpost::config::internal
