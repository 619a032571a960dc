// RequestParser against RFC 9112 / RFC 9110 examples, whole and split at every byte.
#include "request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace outpost::serve::http {
namespace {

using namespace std::string_literals;

struct Outcome {
  std::vector<Request> requests;
  bool error = false;
  ParseError err;
  std::string leftover;
  int headers_events = 0;
};

// Feeds `input` `step` bytes at a time, keeping unconsumed bytes like the server does.
Outcome Drive(std::string_view input, size_t step = 0, ParserLimits limits = {}) {
  if (step == 0) step = input.size() ? input.size() : 1;
  RequestParser p(limits);
  Outcome o;
  std::string buf;
  size_t fed = 0;
  for (;;) {
    size_t n = std::min(step, input.size() - fed);
    buf.append(input.substr(fed, n));
    fed += n;
    for (;;) {
      size_t consumed = 0;
      auto ev = p.Parse(buf.data(), buf.size(), &consumed);
      EXPECT_LE(consumed, buf.size());
      buf.erase(0, consumed);
      if (ev == RequestParser::Event::kHeadersComplete) {
        ++o.headers_events;
        continue;
      }
      if (ev == RequestParser::Event::kMessageComplete) {
        o.requests.push_back(p.TakeRequest());
        continue;
      }
      if (ev == RequestParser::Event::kError) {
        o.error = true;
        o.err = p.error();
        return o;
      }
      break;
    }
    if (fed == input.size()) break;
  }
  o.leftover = buf;
  return o;
}

int ErrorStatus(std::string_view input, ParserLimits limits = {}) {
  Outcome o = Drive(input, 0, limits);
  return o.error ? o.err.status : 0;
}

TEST(RequestParser, SimpleGet) {
  Outcome o = Drive(
      "GET /v2/health/ready?verbose=1&x=%20 HTTP/1.1\r\nHost: localhost\r\n"
      "User-Agent: t\r\nX-Empty:\r\nX-Pad: \t spaced value \t\r\n\r\n");
  ASSERT_FALSE(o.error) << o.err.message;
  ASSERT_EQ(o.requests.size(), 1u);
  const Request& r = o.requests[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/v2/health/ready?verbose=1&x=%20");
  EXPECT_EQ(r.path, "/v2/health/ready");
  EXPECT_EQ(r.query, "verbose=1&x=%20");
  EXPECT_EQ(r.version_minor, 1);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.body, "");
  ASSERT_EQ(r.headers.size(), 4u);
  EXPECT_EQ(r.Header("host"), "localhost");
  EXPECT_EQ(r.Header("USER-AGENT"), "t");
  EXPECT_EQ(r.Header("x-pad"), "spaced value");  // OWS trimmed, inner space kept
  EXPECT_TRUE(r.HasHeader("x-empty"));
  EXPECT_EQ(r.Header("x-empty"), "");
  EXPECT_FALSE(r.HasHeader("missing"));
  EXPECT_EQ(o.leftover, "");
}

TEST(RequestParser, PercentDecodedPathKeepsRaw) {
  Outcome o = Drive("GET /v2/models/my%20model/versions/1%2Fa HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(o.requests.size(), 1u);
  EXPECT_EQ(o.requests[0].raw_path, "/v2/models/my%20model/versions/1%2Fa");
  EXPECT_EQ(o.requests[0].path, "/v2/models/my model/versions/1/a");
  EXPECT_EQ(ErrorStatus("GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

TEST(RequestParser, ContentLengthBodyAndPipelining) {
  std::string in =
      "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
      "GET /partial HTTP/1.1\r\nHo";
  for (size_t step : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{64}}) {
    Outcome o = Drive(in, step);
    ASSERT_FALSE(o.error) << o.err.message;
    ASSERT_EQ(o.requests.size(), 3u) << "step " << step;
    EXPECT_EQ(o.requests[0].path, "/a");
    EXPECT_EQ(o.requests[0].body, "hello");
    EXPECT_EQ(o.requests[1].path, "/b");
    EXPECT_EQ(o.requests[1].body, "");
    EXPECT_EQ(o.requests[2].path, "/c");
    EXPECT_FALSE(o.requests[2].keep_alive);
    // Complete lines are consumed as they arrive; only the partial line is left.
    EXPECT_EQ(o.leftover, "Ho") << "step " << step;
    EXPECT_EQ(o.headers_events, 3);
  }
}

TEST(RequestParser, ChunkedBodyWithExtensionsAndTrailers) {
  // RFC 9112 7.1: chunk-size in hex, optional extensions, last-chunk, trailer section.
  std::string in =
      "POST /infer HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n"
      "1A;name=value;flag\r\nabcdefghijklmnopqrstuvwxyz\r\n"
      "000\r\n"
      "X-Checksum: 1\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t step = 1; step <= in.size(); step += (step < 20 ? 1 : 17)) {
    Outcome o = Drive(in, step);
    ASSERT_FALSE(o.error) << o.err.message << " step " << step;
    ASSERT_EQ(o.requests.size(), 2u) << "step " << step;
    EXPECT_EQ(o.requests[0].body, "helloabcdefghijklmnopqrstuvwxyz");
    EXPECT_FALSE(o.requests[0].HasHeader("X-Checksum"));  // trailers are dropped
    EXPECT_EQ(o.requests[1].path, "/next");
  }
}

TEST(RequestParser, ChunkedErrors) {
  const std::string h = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(ErrorStatus(h + "zz\r\n"), 400);                     // not hex
  EXPECT_EQ(ErrorStatus(h + "\r\n"), 400);                       // empty size
  EXPECT_EQ(ErrorStatus(h + "5 x\r\nhello\r\n0\r\n\r\n"), 400);  // junk after size
  EXPECT_EQ(ErrorStatus(h + "10000000000000000\r\n"), 400);      // 2^64: overflow
  EXPECT_EQ(ErrorStatus(h + "fffffffffffffffffffff\r\n"), 400);  // overflow
  EXPECT_EQ(ErrorStatus(h + "3\r\nabcdef\r\n"), 400);            // data longer than size
  EXPECT_EQ(ErrorStatus(h + "3\r\nabc\n0\r\n\r\n"), 400);        // bare LF after data
  EXPECT_EQ(ErrorStatus(h + "3\nabc\r\n0\r\n\r\n"), 400);        // bare LF after size
  EXPECT_EQ(ErrorStatus(h + "3\r\nabc\r\n0\r\nBad Trailer: x\r\n\r\n"), 400);
  ParserLimits small;
  small.max_body_bytes = 10;
  EXPECT_EQ(ErrorStatus(h + "6\r\nabcdef\r\n5\r\nabcde\r\n0\r\n\r\n", small), 413);
  EXPECT_EQ(ErrorStatus(h + "ffffffff\r\n", small), 413);
  Outcome ok = Drive(h + "5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n", 0, small);  // exactly at limit
  ASSERT_FALSE(ok.error);
  EXPECT_EQ(ok.requests.at(0).body, "abcdefghij");
  // A chunk-size line that never ends is cut off.
  EXPECT_EQ(ErrorStatus(h + "5;" + std::string(5000, 'x')), 400);
}

TEST(RequestParser, FramingAndSmuggling) {
  // Content-Length with Transfer-Encoding (RFC 9112 6.3): rejected.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
            400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Content-Length: 3\r\n\r\n"),
            400);
  // Conflicting and malformed Content-Length.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                        "Content-Length: 4\r\n\r\nabcd"),
            400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\n"
                        "Content-Length: 18446744073709551616\r\n\r\n"),  // 2^64
            400);
  // Large but representable: too large for the limit.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\n"
                        "Content-Length: 18446744073709551615\r\n\r\n"),
            413);
  // Identical repeats are one value.
  Outcome o =
      Drive("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.requests.at(0).body, "ok");
  // Transfer codings other than chunked: 501; chunked twice or in HTTP/1.0: 400.
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"), 501);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"),
            400);
  EXPECT_EQ(ErrorStatus("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
  Outcome ci = Drive("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n");
  EXPECT_FALSE(ci.error);
  EXPECT_EQ(ci.requests.size(), 1u);
}

TEST(RequestParser, LineEndingsAndCharacters) {
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\nHost: h\r\n\r\n"), 400);       // bare LF, request line
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\n\r\n"), 400);       // bare LF, field
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\n\n"), 400);       // bare LF, end
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), 400);  // bare CR in value
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\nX-A\0b: 1\r\n\r\n"s), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"s), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\nX-A\x01: 1\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);  // space before colon
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), 400);  // obs-fold
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\n: empty-name\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET /#frag HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET /\r\n\r\n"), 400);  // HTTP/0.9
  EXPECT_EQ(ErrorStatus("GET relative HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  // obs-text in a value is allowed (RFC 9110 5.5).
  Outcome o = Drive("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n");
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.requests.at(0).Header("x"), "caf\xc3\xa9");
  // Empty lines before the request line are skipped (RFC 9112 2.2).
  Outcome lead = Drive("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_FALSE(lead.error);
  EXPECT_EQ(lead.requests.size(), 1u);
}

TEST(RequestParser, Versions) {
  EXPECT_EQ(ErrorStatus("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
  EXPECT_EQ(ErrorStatus("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), 505);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / http/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / FOO/1.1\r\nHost: h\r\n\r\n"), 400);
  // HTTP/1.0: no Host needed, close by default, keep-alive on request.
  Outcome a = Drive("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(a.requests.size(), 1u);
  EXPECT_EQ(a.requests[0].version_minor, 0);
  EXPECT_FALSE(a.requests[0].keep_alive);
  Outcome b = Drive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  ASSERT_EQ(b.requests.size(), 1u);
  EXPECT_TRUE(b.requests[0].keep_alive);
  // HTTP/1.1 needs exactly one Host (RFC 9112 3.2).
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
  // Connection: close among other tokens.
  Outcome c = Drive("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade, CLOSE\r\n\r\n");
  ASSERT_EQ(c.requests.size(), 1u);
  EXPECT_FALSE(c.requests[0].keep_alive);
  // HTTP/1.2 is read as 1.1.
  Outcome d = Drive("GET / HTTP/1.2\r\nHost: h\r\n\r\n");
  ASSERT_EQ(d.requests.size(), 1u);
  EXPECT_EQ(d.requests[0].version_minor, 1);
}

TEST(RequestParser, TargetForms) {
  Outcome a = Drive("GET http://example.com:8000/v2/models?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(a.requests.size(), 1u);
  EXPECT_EQ(a.requests[0].path, "/v2/models");
  EXPECT_EQ(a.requests[0].query, "x=1");
  Outcome b = Drive("GET HTTP://example.com HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(b.requests.size(), 1u);
  EXPECT_EQ(b.requests[0].path, "/");
  Outcome c = Drive("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(c.requests.size(), 1u);
  EXPECT_EQ(c.requests[0].path, "*");
  EXPECT_EQ(ErrorStatus("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(ErrorStatus("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

TEST(RequestParser, Limits) {
  ParserLimits l;
  l.max_header_bytes = 256;
  l.max_headers = 3;
  l.max_body_bytes = 100;
  // Exactly at the header limit is fine; one byte more is 431.
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  std::string exact = head + std::string(256 - head.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 256u);
  EXPECT_EQ(ErrorStatus(exact, l), 0);
  std::string over = head + std::string(256 - head.size() - 3, 'a') + "\r\n\r\n";
  EXPECT_EQ(ErrorStatus(over, l), 431);
  // Incomplete block already past the limit: 431 without waiting for the end.
  Outcome o = Drive(head + std::string(300, 'a'), 1, l);
  EXPECT_TRUE(o.error);
  EXPECT_EQ(o.err.status, 431);
  EXPECT_STREQ(o.err.reason, "header_too_large");
  // Request line alone too long: 414.
  EXPECT_EQ(ErrorStatus("GET /" + std::string(300, 'a') + " HTTP/1.1\r\n", l), 414);
  // Field count.
  EXPECT_EQ(ErrorStatus("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", l), 0);
  Outcome many = Drive("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0, l);
  EXPECT_EQ(many.err.status, 431);
  EXPECT_STREQ(many.err.reason, "too_many_headers");
  // Body limit announced up front: 413 before any body byte.
  Outcome big = Drive("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", 0, l);
  EXPECT_EQ(big.err.status, 413);
  EXPECT_STREQ(big.err.reason, "body_too_large");
  EXPECT_EQ(
      ErrorStatus(
          "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b'), l),
      0);
  // Leading empty lines count toward the header limit.
  std::string crlfs;
  for (int i = 0; i < 200; ++i) crlfs += "\r\n";
  EXPECT_EQ(ErrorStatus(crlfs + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", l), 431);
}

TEST(RequestParser, ExpectContinue) {
  RequestParser p{ParserLimits{}};
  std::string in = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
  size_t consumed = 0;
  EXPECT_EQ(p.Parse(in, &consumed), RequestParser::Event::kHeadersComplete);
  EXPECT_EQ(consumed, in.size());
  EXPECT_TRUE(p.expect_continue());
  EXPECT_TRUE(p.has_body());
  EXPECT_EQ(p.content_length(), 3u);
  EXPECT_EQ(p.Parse("", 0, &consumed), RequestParser::Event::kNeedMore);
  EXPECT_EQ(p.Parse("abc", &consumed), RequestParser::Event::kMessageComplete);
  EXPECT_EQ(consumed, 3u);
  EXPECT_EQ(p.TakeRequest().body, "abc");
  EXPECT_FALSE(p.started());
  EXPECT_EQ(ErrorStatus("PUT / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n"), 417);
  // HTTP/1.0 Expect is ignored (RFC 9110 10.1.1).
  EXPECT_EQ(ErrorStatus("PUT / HTTP/1.0\r\nExpect: something-else\r\n\r\n"), 0);
}

TEST(RequestParser, ByteAtATimeIsLinear) {
  // A 16 KiB header line fed one byte at a time: the scan resumes, so this stays fast.
  ParserLimits l;
  l.max_header_bytes = 1 << 20;
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(200000, 'v') + "\r\n\r\n";
  Outcome o = Drive(in, 1, l);
  ASSERT_FALSE(o.error);
  ASSERT_EQ(o.requests.size(), 1u);
  EXPECT_EQ(o.requests[0].Header("x").size(), 200000u);
}

}  // namespace
}  // namespace outpost::serve::http
