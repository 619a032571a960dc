// ModelRunner: queueing, deadlines, cancellation and dynamic batching, on the Iris MLP
// (input float32[N,4] -> probabilities float32[N,3]). A batched answer must equal the answer of
// the same rows run alone through the session.
#include "outpost/serve/model_runner.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace outpost::serve {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<engine::Session> LoadIris() {
  engine::SessionOptions o;
  o.backend_options.threads = 1;
  auto s = engine::Session::Load(std::string(OUTPOST_TEST_MODELS_DIR) + "/iris_mlp.onnx", o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::shared_ptr<engine::Session>(std::move(s).value());
}

Tensor Rows(int64_t n, float base) {
  Tensor t = Tensor::Allocate(DataType::kFloat, Shape{n, 4}).value();
  for (int64_t i = 0; i < n * 4; ++i) t.data<float>()[i] = base + 0.1f * static_cast<float>(i);
  return t;
}

struct Answer {
  Expected<std::vector<Tensor>> out = Status(Code::kInternal, "unset");
  CallTiming timing;
};

InferCall Call(Tensor t, std::promise<Answer>* p) {
  InferCall c;
  c.inputs.push_back({"input", std::move(t)});
  c.done = [p](Expected<std::vector<Tensor>> out, const CallTiming& timing) {
    p->set_value(Answer{std::move(out), timing});
  };
  return c;
}

// Makes `c` hold its worker inside its callback until `released` is ready, so the queue fills.
InferCall HoldUntil(InferCall c, std::shared_future<void> released) {
  c.done = [done = c.done, released](Expected<std::vector<Tensor>> out, const CallTiming& t) {
    released.wait();
    done(std::move(out), t);
  };
  return c;
}

TEST(ModelRunner, BatchesConcurrentRequestsAndSplitsAnswers) {
  auto session = LoadIris();
  RunnerOptions o;
  o.max_batch_size = 8;
  o.max_queue_delay = 20ms;  // long enough that all four land in one batch
  ModelRunner runner("iris", "1", session, o);
  ASSERT_TRUE(runner.batching());
  constexpr int kCalls = 4;
  std::promise<Answer> answers[kCalls];
  const int64_t rows[kCalls] = {1, 2, 1, 3};
  for (int i = 0; i < kCalls; ++i)
    ASSERT_TRUE(runner.Submit(Call(Rows(rows[i], static_cast<float>(i)), &answers[i])).ok());
  for (int i = 0; i < kCalls; ++i) {
    Answer a = answers[i].get_future().get();
    ASSERT_TRUE(a.out.ok()) << a.out.status().ToString();
    EXPECT_EQ(a.timing.batch_size, kCalls);
    ASSERT_EQ(a.out->size(), 1u);
    const Tensor& got = (*a.out)[0];
    ASSERT_EQ(got.shape(), (Shape{rows[i], 3}));
    // The same rows alone through the session.
    auto alone = session->Run({{"input", Rows(rows[i], static_cast<float>(i))}});
    ASSERT_TRUE(alone.ok());
    for (int64_t k = 0; k < got.numel(); ++k)
      EXPECT_NEAR(got.data<float>()[k], (*alone)[0].data<float>()[k], 1e-6) << i << "," << k;
    for (int64_t r = 0; r < rows[i]; ++r) {  // softmax rows sum to one
      float sum = 0;
      for (int c = 0; c < 3; ++c) sum += got.data<float>()[r * 3 + c];
      EXPECT_NEAR(sum, 1.0f, 1e-5);
    }
  }
}

TEST(ModelRunner, IncompatibleShapesAreNotBatchedTogether) {
  auto session = LoadIris();
  RunnerOptions o;
  o.max_batch_size = 8;
  o.max_queue_delay = 5ms;
  ModelRunner runner("iris", "1", session, o);
  std::promise<Answer> a, b;
  ASSERT_TRUE(runner.Submit(Call(Rows(2, 0), &a)).ok());
  Tensor wrong = Tensor::Allocate(DataType::kFloat, Shape{1, 5}).value();
  ASSERT_TRUE(runner.Submit(Call(std::move(wrong), &b)).ok());
  Answer ra = a.get_future().get(), rb = b.get_future().get();
  EXPECT_TRUE(ra.out.ok());
  EXPECT_EQ(ra.timing.batch_size, 1);
  // The model refuses [1,5] by itself; it did not poison the first request.
  ASSERT_FALSE(rb.out.ok());
  EXPECT_NE(rb.out.status().message().find("input"), std::string::npos)
      << rb.out.status().ToString();
}

TEST(ModelRunner, FullQueueRefusesAtOnce) {
  auto session = LoadIris();
  RunnerOptions o;
  o.queue_size = 2;
  o.max_batch_size = 1;
  ModelRunner runner("iris", "1", session, o);
  // Block the only worker inside a callback so the queue fills behind it.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<Answer> first;
  InferCall blocker = HoldUntil(Call(Rows(1, 0), &first), released);
  ASSERT_TRUE(runner.Submit(std::move(blocker)).ok());
  std::this_thread::sleep_for(20ms);  // the worker is now inside the blocker's callback
  std::promise<Answer> q1, q2, q3;
  EXPECT_TRUE(runner.Submit(Call(Rows(1, 1), &q1)).ok());
  EXPECT_TRUE(runner.Submit(Call(Rows(1, 2), &q2)).ok());
  const auto t0 = Clock::now();
  Status full = runner.Submit(Call(Rows(1, 3), &q3));
  EXPECT_LT(Clock::now() - t0, 1ms);
  EXPECT_EQ(full.code(), Code::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("queue is full"), std::string::npos);
  EXPECT_GE(runner.RetryAfterSeconds(), 1);
  release.set_value();
  EXPECT_TRUE(first.get_future().get().out.ok());
  EXPECT_TRUE(q1.get_future().get().out.ok());
  EXPECT_TRUE(q2.get_future().get().out.ok());
}

TEST(ModelRunner, DeadlinesAreAnsweredAtOnceNotLate) {
  auto session = LoadIris();
  RunnerOptions o;
  ModelRunner runner("iris", "1", session, o);
  // Already past: refused by Submit without queueing.
  std::promise<Answer> late;
  InferCall c = Call(Rows(1, 0), &late);
  c.deadline = Clock::now() - 1ms;
  Status s = runner.Submit(std::move(c));
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded) << s.ToString();

  // Expiring while queued behind a slow call: answered kDeadlineExceeded, not run.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<Answer> first, queued;
  InferCall blocker = HoldUntil(Call(Rows(1, 0), &first), released);
  ASSERT_TRUE(runner.Submit(std::move(blocker)).ok());
  std::this_thread::sleep_for(10ms);
  InferCall q = Call(Rows(1, 1), &queued);
  q.deadline = Clock::now() + 5ms;
  ASSERT_TRUE(runner.Submit(std::move(q)).ok());
  std::this_thread::sleep_for(20ms);
  release.set_value();
  Answer a = queued.get_future().get();
  EXPECT_EQ(a.out.status().code(), Code::kDeadlineExceeded) << a.out.status().ToString();
  EXPECT_TRUE(first.get_future().get().out.ok());
}

TEST(ModelRunner, CancelledCallsAreDroppedAndDrainAnswersTheRest) {
  auto session = LoadIris();
  RunnerOptions o;
  auto runner = std::make_unique<ModelRunner>("iris", "1", session, o);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<Answer> first, gone;
  InferCall blocker = HoldUntil(Call(Rows(1, 0), &first), released);
  ASSERT_TRUE(runner->Submit(std::move(blocker)).ok());
  std::this_thread::sleep_for(10ms);
  InferCall c = Call(Rows(1, 1), &gone);
  c.cancelled = std::make_shared<std::atomic<bool>>(false);
  auto flag = c.cancelled;
  ASSERT_TRUE(runner->Submit(std::move(c)).ok());
  flag->store(true);
  release.set_value();
  EXPECT_EQ(gone.get_future().get().out.status().code(), Code::kCancelled);
  EXPECT_TRUE(first.get_future().get().out.ok());
  runner->Drain(1000ms);
  std::promise<Answer> after;
  EXPECT_EQ(runner->Submit(Call(Rows(1, 0), &after)).code(), Code::kUnavailable);
}

}  // namespace
}  // namespace outpost::serve
