// Free TCP ports on 127.0.0.1 for tests that start servers (outpostd, mosquitto, proxies).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <random>

namespace outpost::testing {

// A port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral port range
// (net.ipv4.ip_local_port_range). A port inside that range can be handed to an outgoing
// connection as its source port: a client that keeps reconnecting to a listener that is down for
// a while (a broker restarting, an uplink cut by a proxy) can then connect to itself (TCP
// simultaneous open), hold the port, and keep the listener from coming back on it.
inline uint16_t FreeLoopbackPort() {
  int lo = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo;
  constexpr int kBase = 10000;
  static std::mt19937 rng(std::random_device{}());
  const bool below = lo > kBase + 1000;
  for (int attempt = 0; attempt < 200; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Without room below the ephemeral range: any port the kernel picks.
    a.sin_port = below ? htons(static_cast<uint16_t>(kBase + rng() % (lo - kBase))) : 0;
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
    ::close(fd);
    if (port != 0) return port;
  }
  return 0;
}

}  // namespace outpost::testing
