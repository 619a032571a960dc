// IsLoopbackPeer: who may call /outpost/v1/handoff. Peers are written as http::Request::peer
// gives them ("ip:port", "[ipv6]:port").
#include <gtest/gtest.h>

#include "outpost/serve/service.h"

namespace outpost::serve {
namespace {

TEST(LoopbackPeer, LoopbackAddressesAreAccepted) {
  EXPECT_TRUE(IsLoopbackPeer("127.0.0.1:53211"));
  EXPECT_TRUE(IsLoopbackPeer("127.8.9.10:1"));  // all of 127.0.0.0/8
  EXPECT_TRUE(IsLoopbackPeer("[::1]:40000"));
  EXPECT_TRUE(IsLoopbackPeer("[::ffff:127.0.0.1]:40000"));  // IPv4-mapped on a dual-stack socket
}

TEST(LoopbackPeer, OtherAddressesAreRefused) {
  EXPECT_FALSE(IsLoopbackPeer("192.0.2.2:5000"));
  EXPECT_FALSE(IsLoopbackPeer("10.127.0.1:5000"));
  EXPECT_FALSE(IsLoopbackPeer("1.127.0.0:5000"));
  EXPECT_FALSE(IsLoopbackPeer("[fd00::2]:5000"));
  EXPECT_FALSE(IsLoopbackPeer("[::ffff:192.0.2.2]:5000"));
  EXPECT_FALSE(IsLoopbackPeer("[::10]:5000"));
  EXPECT_FALSE(IsLoopbackPeer("unknown"));
  EXPECT_FALSE(IsLoopbackPeer(""));
}

}  // namespace
}  // namespace outpost::serve
