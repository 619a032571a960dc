#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "outpost/core/metrics.h"
#include "outpost/core/status.h"
#include "outpost/core/tensor.h"
#include "outpost/core/thread_name.h"
#include "outpost/core/thread_pool.h"
#include "outpost/core/thread_priority.h"

namespace outpost {
namespace {

Expected<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status UseHalf(int x, int* out) {
  OP_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::Ok();
}

TEST(Status, ExpectedCarriesValueOrError) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status s = UseHalf(3, &v);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd: 3");
  EXPECT_EQ(s.WithContext("ctx").ToString(), "INVALID_ARGUMENT: ctx: odd: 3");
}

TEST(Shape, FromRejectsNegativeAndHugeRank) {
  std::vector<int64_t> neg = {2, -1};
  EXPECT_EQ(Shape::From(neg).status().code(), Code::kInvalidArgument);
  std::vector<int64_t> big(Shape::kMaxRank + 1, 1);
  EXPECT_EQ(Shape::From(big).status().code(), Code::kUnsupported);
  Shape s{2, 3, 4};
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.ToString(), "[2,3,4]");
}

TEST(Tensor, AllocateRefusesAbsurdSizes) {
  auto t = Tensor::Allocate(DataType::kFloat, Shape{1ll << 40, 1ll << 20});
  EXPECT_EQ(t.status().code(), Code::kResourceExhausted);
  auto ok = Tensor::Allocate(DataType::kFloat, Shape{2, 2});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->nbytes(), 16u);
  EXPECT_EQ(ok->data<float>()[3], 0.0f);
}

TEST(Float16, RoundTripsAndRoundsToEven) {
  EXPECT_EQ(Float16(1.0f).bits, 0x3c00);
  EXPECT_EQ(Float16(-2.0f).bits, 0xc000);
  EXPECT_EQ(Float16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(Float16(1e6f).bits, 0x7c00);  // overflow to +inf
  EXPECT_FLOAT_EQ(static_cast<float>(Float16(0.333251953125f)), 0.333251953125f);
  EXPECT_EQ(Float16::ToFloat(0x0001), 5.9604644775390625e-08f);  // smallest subnormal
  EXPECT_EQ(BFloat16(1.0f).bits, 0x3f80);
}

TEST(ThreadPool, ParallelForCoversRangeFromManyCallers) {
  ThreadPool pool(3);
  std::vector<std::thread> callers;
  std::atomic<int64_t> total{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<int> hit(1000, 0);
        pool.ParallelFor(1000, 7, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hit[i]++;
        });
        for (int h : hit) ASSERT_EQ(h, 1);
        total += 1000;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4 * 50 * 1000);
}

// The pool's workers run `nice_steps` below the creating thread; the caller's own chunks keep
// the caller's priority. Chunks sleep, so that the workers take some of them.
TEST(ThreadPool, WorkersRunTheGivenNiceStepsBelowTheCreator) {
  std::thread t([] {  // a thread of its own: nice values only ever go up without privileges
    const int base = ThreadNice();
    ASSERT_LE(base, 15) << "the test needs room below nice " << base;
    ThreadPool pool(3, 4);
    const std::thread::id caller = std::this_thread::get_id();
    std::mutex mu;
    std::vector<int> worker_nice, caller_nice;
    for (int rep = 0; rep < 5; ++rep) {
      pool.ParallelFor(12, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::lock_guard<std::mutex> l(mu);
        (std::this_thread::get_id() == caller ? caller_nice : worker_nice).push_back(ThreadNice());
      });
    }
    ASSERT_FALSE(worker_nice.empty()) << "no chunk ran on a worker";
    for (int n : worker_nice) EXPECT_EQ(n, base + 4);
    for (int n : caller_nice) EXPECT_EQ(n, base);
    EXPECT_EQ(ThreadNice(), base);
  });
  t.join();
}

TEST(ThreadPriority, LowersByStepsAndStopsAtNineteen) {
  std::thread t([] {
    const int base = ThreadNice();
    ASSERT_LE(base, 17);
    ASSERT_TRUE(LowerThreadPriority(0).ok());
    EXPECT_EQ(ThreadNice(), base);
    ASSERT_TRUE(LowerThreadPriority(2).ok());
    EXPECT_EQ(ThreadNice(), base + 2);
    ASSERT_TRUE(LowerThreadPriority(40).ok());
    EXPECT_EQ(ThreadNice(), 19);
  });
  t.join();
}

// A short scheduler slice for the calling thread (what the HTTP threads ask for). Where the
// kernel has per-thread slices (Linux 6.12 and later: sched_getattr reports the default one) it
// is set, read back, and the nice value kept; elsewhere the call says so instead of pretending.
TEST(ThreadPriority, SetsTheCallingThreadsTimeSliceAndKeepsItsNiceValue) {
  const int main_slice = ThreadSliceUs();
  std::thread t([] {
    EXPECT_EQ(SetThreadSlice(99).code(), Code::kInvalidArgument);
    EXPECT_EQ(SetThreadSlice(100001).code(), Code::kInvalidArgument);
    ASSERT_TRUE(LowerThreadPriority(3).ok());
    const int nice = ThreadNice();
    const int before = ThreadSliceUs();
    const Status st = SetThreadSlice(250);
    if (before == 0) {
      EXPECT_EQ(st.code(), Code::kUnsupported) << st.ToString();
      EXPECT_NE(st.message().find("6.12"), std::string::npos) << st.message();
    } else {
      ASSERT_TRUE(st.ok()) << st.ToString();
      EXPECT_NE(before, 250);
      EXPECT_EQ(ThreadSliceUs(), 250);
      EXPECT_EQ(ThreadSliceUs(static_cast<int>(gettid())), 250);
      ASSERT_TRUE(SetThreadSlice(kMinThreadSliceUs).ok());
      EXPECT_EQ(ThreadSliceUs(), kMinThreadSliceUs);
    }
    EXPECT_EQ(ThreadNice(), nice);
  });
  t.join();
  EXPECT_EQ(ThreadSliceUs(), main_slice);  // the slice is per thread
  EXPECT_EQ(ThreadSliceUs(-1), 0);         // no such thread
}

TEST(ThreadName, NamesTheCallingThreadAndCutsAtFifteenCharacters) {
  auto name_of = [](const char* n) {
    std::string got;
    std::thread t([&] {
      SetThreadName(n);
      char buf[32] = {};
      pthread_getname_np(pthread_self(), buf, sizeof buf);
      got = buf;
    });
    t.join();
    return got;
  };
  EXPECT_EQ(name_of("op-http"), "op-http");
  EXPECT_EQ(name_of("op-run-a-very-long-model-name"), "op-run-a-very-l");
}

TEST(Metrics, RendersPrometheusText) {
  MetricsRegistry r;
  r.GetCounter("outpost_test_total", "A test counter", {{"model", "iris"}}).Inc(3);
  auto& h = r.GetHistogram("outpost_test_seconds", "A test histogram", {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("outpost_test_total{model=\"iris\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_test_seconds_bucket{le=\"0.10000000000000001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_test_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_test_seconds_count 3\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace outpost
