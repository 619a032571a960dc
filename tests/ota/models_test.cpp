// Model-only updates end to end: model bundles committed and GPG-signed by outpost image (two
// versions of the Iris model whose answers differ), served over loopback HTTP, the real outpostd
// on an ephemeral port, and a client sending inference all the time while the agent updates,
// refuses and rolls back. Zero failed requests and the answers' switch are what is checked.
#include "outpost/ota/models.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <signal.h>

#include <atomic>
#include <functional>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/signing_keys.h"
#include "delta.h"
#include "fake_sysroot.h"
#include "file_server.h"
#include "outpost/image/image.h"
#include "mqtt_broker.h"
#include "outpost/ota/state.h"
#include "outpostd/npy.h"
#include "outpostd/test_util.h"
#include "outpostd/v2_client.h"

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::Sh;

// v2 adds kDelta to logit kClass of the Iris MLP's last layer (its bias "0.4.bias", before the
// Softmax): its probabilities follow from ONNX Runtime's golden output of v1 (below), not from
// anything outpostd computed. Class 1 because the golden rows are far from saturated there.
constexpr float kDelta = 3.0f;
constexpr size_t kClass = 1;

std::string ReadAll(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What a request's answer was: v1's golden, v2's expected, or something else.
enum class Answer { kV1, kV2, kOther };

class OtaModelsTest : public testing::FakeSysrootTest {
 protected:
  static void SetUpTestSuite() { SetUpSuite("otam"); }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FakeSysrootTest::SetUp());
    std::string err;
    auto in = testing::ReadNpyFloat(testing::kModelsDir + "/golden/iris_mlp/input_0.npy", &err);
    auto out = testing::ReadNpyFloat(testing::kModelsDir + "/golden/iris_mlp/output_0.npy", &err);
    ASSERT_TRUE(in && out) << err;
    input_ = *in;
    v1_out_ = out->data;
    // softmax(z + d*e_k) from p = softmax(z): pk' = pk e^d / Z, pj' = pj / Z, Z = 1 - pk + pk e^d.
    const size_t cols = 3;
    ASSERT_EQ(v1_out_.size() % cols, 0u);
    v2_out_ = v1_out_;
    double max_diff = 0;
    for (size_t r = 0; r < v1_out_.size() / cols; ++r) {
      const double pk = v1_out_[r * cols + kClass], z = 1 - pk + pk * std::exp(kDelta);
      for (size_t c = 0; c < cols; ++c) {
        double p = v1_out_[r * cols + c] * (c == kClass ? std::exp(kDelta) : 1.0) / z;
        v2_out_[r * cols + c] = static_cast<float>(p);
        max_diff = std::max(max_diff, std::abs(p - v1_out_[r * cols + c]));
      }
    }
    ASSERT_GT(max_diff, 0.05) << "v1 and v2 must answer detectably differently";

    // v2's model: iris_mlp.onnx with value kClass of its last bias raised by kDelta.
    std::string model = ReadAll(testing::kModelsDir + "/iris_mlp.onnx");
    const std::string key = std::string("\x42\x08", 2) + "0.4.bias" + std::string("\x4a\x0c", 2);
    size_t at = model.find(key);
    ASSERT_NE(at, std::string::npos) << "the bias initializer's raw data not found";
    ASSERT_EQ(model.find(key, at + 1), std::string::npos);
    float b;
    std::memcpy(&b, model.data() + at + key.size() + 4 * kClass, 4);
    b += kDelta;
    std::memcpy(model.data() + at + key.size() + 4 * kClass, &b, 4);
    testing::WriteFile(dir_ + "/v2/iris_v2.onnx", model);
    // v2's golden output: v1's .npy header, v2's expected values.
    std::string npy = ReadAll(testing::kModelsDir + "/golden/iris_mlp/output_0.npy");
    const size_t data_at = npy.size() - v2_out_.size() * 4;
    std::memcpy(npy.data() + data_at, v2_out_.data(), v2_out_.size() * 4);
    testing::WriteFile(dir_ + "/v2/output_v2.npy", npy);

    cfg_.source.repo = dir_ + "/device/repo";
    cfg_.source.remote = "outpost";
    cfg_.source.trusted_fingerprints = {release_fpr_};
    cfg_.remote_url = server_->Url() + "/repo";
    cfg_.key_files = {root_ + "/Release.asc"};
    cfg_.ref_prefix = "outpost/test/models";
    cfg_.models_root = dir_ + "/device/models";
    cfg_.manifest_dir = box_.manifests();
    cfg_.state_dir = dir_ + "/device/ota";
    cfg_.load_timeout_ms = 60000;
  }
  void TearDown() override {
    StopLoad();
    if (HasFailure() && daemon_ && daemon_->proc)
      std::fprintf(stderr, "---- outpostd stderr ----\n%s\n", daemon_->proc->Stderr().c_str());
    daemon_.reset();
    FakeSysrootTest::TearDown();
  }

  // A release (OS ref and the iris bundle on outpost/test/models/iris) with iris `version`:
  // model v1 (ORT's golden) or v2 (the raised bias, its expected output), or v2's model with
  // v1's golden (a bundle whose golden check fails).
  enum class Iris { kV1, kV2, kV2WithV1Golden };
  // `os_ref`: the release's OS ref (another one leaves outpost/test/x86_64 where it is, so that an
  // agent following it sees only the model move); *os_commit: that OS commit.
  std::string Publish(Iris which, const std::string& version, int64_t ts, bool sign = true,
                      const std::string& key_fpr = "",
                      const std::string& os_ref = "outpost/test/x86_64",
                      std::string* os_commit = nullptr) {
    const std::string g = testing::kModelsDir + "/golden/iris_mlp/";
    std::string model =
        which == Iris::kV1 ? testing::kModelsDir + "/iris_mlp.onnx" : dir_ + "/v2/iris_v2.onnx";
    std::string out = which == Iris::kV2 ? dir_ + "/v2/output_v2.npy" : g + "output_0.npy";
    std::string p = dir_ + "/manifests-" + version + "/iris.yaml";
    testing::WriteFile(p, testing::Manifest("iris", model,
                                            {{"golden-input", g + "input_0.npy"},
                                             {"golden-output", out},
                                             {"version", version},
                                             {"threads", "1"}}));
    image::BuildOptions o = Release("os-" + version, ts);
    o.ref = os_ref;
    o.model_ref_prefix = "outpost/test/models";
    o.manifests = {p};
    o.sign = sign;
    if (!key_fpr.empty()) o.key.key_id = key_fpr;
    auto r = image::Build(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || r->models.size() != 1) return "";
    if (os_commit) *os_commit = r->commit;
    EXPECT_EQ(r->models[0].ref, "outpost/test/models/iris");
    return r->models[0].commit;
  }

  void StartDaemon() {
    std::string err;
    daemon_ = box_.Start({}, &err);
    ASSERT_TRUE(daemon_) << err;
    cfg_.outpostd_port = daemon_->port;
  }

  Answer Classify(const std::vector<double>& got) const {
    auto near = [&](const std::vector<float>& want) {
      if (got.size() != want.size()) return false;
      for (size_t i = 0; i < got.size(); ++i)
        if (std::abs(got[i] - want[i]) > 1e-4 + 1e-3 * std::abs(want[i])) return false;
      return true;
    };
    return near(v1_out_) ? Answer::kV1 : near(v2_out_) ? Answer::kV2 : Answer::kOther;
  }

  // A client thread sending the golden input to iris, one request after the other, over a
  // keep-alive connection, recording each answer (and every failure) until StopLoad().
  void StartLoad() {
    stop_ = false;
    load_ = std::thread([this] {
      testing::V2Client c(daemon_->port);
      const testing::Json req = GoldenRequest();
      while (!stop_) {
        auto r = c.Infer("iris", req);
        std::lock_guard<std::mutex> lock(mu_);
        if (!r || r->status != 200) {
          failures_.push_back(r ? std::to_string(r->status) + " " + r->body
                                : "transport: " + c.http().last_error());
          continue;
        }
        testing::Json j = r->JsonBody();
        std::vector<double> got;
        testing::FlattenJson(j["outputs"][0]["data"], &got);
        Answer a = Classify(got);
        answers_.push_back(a);
        versions_.push_back(j.value("model_version", ""));
        if (a == Answer::kOther) others_.push_back(r->body);
      }
    });
  }
  testing::Json GoldenRequest() const {
    return {{"inputs",
             {{{"name", "input"},
               {"shape", input_.shape},
               {"datatype", "FP32"},
               {"data", input_.data}}}}};
  }
  void StopLoad() {
    stop_ = true;
    if (load_.joinable()) load_.join();
  }
  size_t Answers() {
    std::lock_guard<std::mutex> lock(mu_);
    return answers_.size();
  }
  // Waits until the client got `n` more answers (the load really ran across the step).
  void AnswersMore(size_t n) {
    const size_t start = Answers();
    for (int i = 0; i < 3000 && Answers() < start + n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_GE(Answers(), start + n) << "the load client is not getting answers";
  }
  // The answers as runs: "v1 v2 v1" for v1...v1 v2...v2 v1...v1.
  std::string Runs() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string s;
    Answer last = Answer::kOther;
    for (size_t i = 0; i < answers_.size(); ++i) {
      if (i > 0 && answers_[i] == last) continue;
      last = answers_[i];
      s += std::string(s.empty() ? "" : " ") + (last == Answer::kV1   ? "v1"
                                                : last == Answer::kV2 ? "v2"
                                                                      : "other");
    }
    return s;
  }

  std::string ManifestText() { return ReadAll(box_.manifests() + "/iris.yaml"); }

  ModelUpdateConfig cfg_;
  testing::Sandbox box_;
  std::unique_ptr<testing::Daemon> daemon_;
  testing::NpyFloat input_;
  std::vector<float> v1_out_, v2_out_;

  std::thread load_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Answer> answers_;
  std::vector<std::string> versions_, failures_, others_;
};

TEST_F(OtaModelsTest, UpdateAndRollbackUnderLoadWithoutAFailedRequest) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());  // no model yet
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000);
  ASSERT_EQ(c1.size(), 64u);
  ModelStepResult r = UpdateModel(cfg_, "iris");
  ASSERT_EQ(r.outcome, ModelOutcome::kUpdated) << r.message;
  EXPECT_EQ(r.commit, c1);
  EXPECT_TRUE(r.record.previous.empty()) << "nothing served before the first install";
  // The checkout is the commit's tree, and the manifest outpostd reads points into it.
  const std::string co1 = cfg_.models_root + "/" + c1;
  EXPECT_EQ(ReadAll(co1 + "/model.onnx"), ReadAll(testing::kModelsDir + "/iris_mlp.onnx"));
  EXPECT_THAT(ManifestText(), HasSubstr("\"" + co1 + "/model.onnx\""));
  EXPECT_THAT(ManifestText(), HasSubstr("\"" + co1 + "/golden/output.npy\""));

  ASSERT_NO_FATAL_FAILURE(StartLoad());
  ASSERT_NO_FATAL_FAILURE(AnswersMore(20));

  const std::string c2 = Publish(Iris::kV2, "2", 1700000100);
  ASSERT_EQ(c2.size(), 64u);
  r = UpdateModel(cfg_, "iris");
  ASSERT_EQ(r.outcome, ModelOutcome::kUpdated) << r.message;
  EXPECT_EQ(r.commit, c2);
  EXPECT_GE(r.swap_ms, 0);
  ASSERT_NO_FATAL_FAILURE(AnswersMore(20));
  EXPECT_EQ(Runs(), "v1 v2");

  r = RollBackModel(cfg_, "iris");
  ASSERT_EQ(r.outcome, ModelOutcome::kRolledBack) << r.message;
  EXPECT_EQ(r.commit, c1);
  ASSERT_NO_FATAL_FAILURE(AnswersMore(20));
  StopLoad();

  EXPECT_TRUE(failures_.empty()) << failures_.size() << " failed requests, first: "
                                 << (failures_.empty() ? "" : failures_[0]);
  EXPECT_TRUE(others_.empty()) << "answers neither v1's nor v2's: " << others_[0];
  EXPECT_EQ(Runs(), "v1 v2 v1");
  for (size_t i = 0; i < answers_.size(); ++i)
    ASSERT_EQ(versions_[i], answers_[i] == Answer::kV1 ? "1" : "2") << "answer " << i;

  // Recorded: v1 current, v2 rolled back (and its checkout gone), not taken again.
  auto list = ListModels(cfg_.state_dir);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].current.commit, c1);
  EXPECT_EQ((*list)[0].current.version, "1");
  EXPECT_EQ((*list)[0].rolled_back, c2);
  EXPECT_TRUE((*list)[0].previous.empty());
  EXPECT_TRUE(fs::exists(co1));
  EXPECT_FALSE(fs::exists(cfg_.models_root + "/" + c2));
  EXPECT_THAT(ManifestText(), HasSubstr("\"" + co1 + "/model.onnx\""));
  r = UpdateModel(cfg_, "iris");
  EXPECT_EQ(r.outcome, ModelOutcome::kUpToDate) << r.message;
  EXPECT_THAT(r.message, HasSubstr("was rolled back"));
}

// A two-input two-output model whose goldens are directories (one file per tensor, TensorProto
// .pb inputs, .npy outputs): bundled by outpost image with both directories, installed by a
// model-only update (outpostd warms it on every input and checks both outputs), confirmed by
// the V2 golden check with both outputs compared.
// A model-only update downloads the model ref's static delta like the OS update (rate limit,
// byte-range resume): the link drops in the middle of the delta's part on every attempt, the
// step fails as retryable with the partial file kept and the old version serving; the next step
// asks for the rest with a range request and installs v2, libostree's object pull never used.
TEST_F(OtaModelsTest, ModelDeltaCutMidDownloadIsResumed) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000);
  ASSERT_EQ(UpdateModel(cfg_, "iris").outcome, ModelOutcome::kUpdated);
  const std::string c2 = Publish(Iris::kV2, "2", 1700000100);
  ASSERT_EQ(c2.size(), 64u);
  const std::string delta = "/repo/" + internal::DeltaRelPath(c1, c2);
  const std::string part = delta + "/0";
  ASSERT_TRUE(fs::exists(dir_ + "/srv" + part)) << "no delta " << c1 << " -> " << c2;
  const uint64_t part_size = fs::file_size(dir_ + "/srv" + part);
  const uint64_t cut = part_size / 2;
  ASSERT_GT(cut, 0u);
  server_->CutAt(part, cut, /*once=*/false);
  server_->ClearRequests();
  cfg_.download.attempts = 2;
  cfg_.download.retry_base_s = 0.05;

  ModelStepResult r = UpdateModel(cfg_, "iris");
  EXPECT_EQ(r.outcome, ModelOutcome::kError) << r.message;
  EXPECT_THAT(r.message, HasSubstr("bytes on disk"));
  const std::string partial = cfg_.state_dir + "/download-models/iris/" + c1 + "-" + c2 + "/0";
  ASSERT_TRUE(fs::exists(partial));
  EXPECT_EQ(fs::file_size(partial), cut);
  EXPECT_EQ(ListModels(cfg_.state_dir).value()[0].current.commit, c1);

  server_->ClearCut();
  r = UpdateModel(cfg_, "iris");
  ASSERT_EQ(r.outcome, ModelOutcome::kUpdated) << r.message;
  EXPECT_EQ(r.commit, c2);
  EXPECT_THAT(server_->Ranges(), ::testing::Contains(::testing::Pair(part, cut)));
  for (const auto& p : server_->Requests())
    EXPECT_NE(p.rfind("/repo/objects/", 0), 0u) << "libostree's pull fetched " << p;
  EXPECT_FALSE(fs::exists(cfg_.state_dir + "/download-models/iris/" + c1 + "-" + c2));
}

TEST_F(OtaModelsTest, ModelWithGoldenDirectoriesIsBundledAndUpdated) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string g = testing::kModelsDir + "/golden_numpy/multi_io/";
  const std::string p = dir_ + "/manifests-multi/multi.yaml";
  testing::WriteFile(p, testing::Manifest("multi", testing::kModelsDir + "/multi_io.onnx",
                                          {{"golden-input", g + "input_pb"},
                                           {"golden-output", g + "output"},
                                           {"version", "7"},
                                           {"threads", "1"}}));
  image::BuildOptions o = Release("os-multi", 1700000000);
  o.model_ref_prefix = "outpost/test/models";
  o.manifests = {p};
  auto built = image::Build(o);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  ASSERT_EQ(built->models.size(), 1u);
  ModelStepResult r = UpdateModel(cfg_, "multi");
  ASSERT_EQ(r.outcome, ModelOutcome::kUpdated) << r.message;
  EXPECT_EQ(r.commit, built->models[0].commit);
  EXPECT_GE(r.verify_ms, 0);
  const std::string co = cfg_.models_root + "/" + r.commit;
  for (const char* f : {"/golden/input/x.pb", "/golden/input/k.pb", "/golden/output/y.npy",
                        "/golden/output/idx.npy"})
    EXPECT_EQ(ReadAll(co + f), ReadAll(g + (std::string(f).find("input") != std::string::npos
                                                ? "input_pb/"
                                                : "output/") +
                                           fs::path(f).filename().string()))
        << f;
  EXPECT_THAT(ReadAll(box_.manifests() + "/multi.yaml"), HasSubstr("\"" + co + "/golden/input\""));
  // The V2 answer: idx is numpy's [1, 0].
  testing::V2Client c(daemon_->port);
  auto answer = c.Infer("multi", testing::Json::parse(R"({"inputs": [
      {"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0, 0, 0, 0, 0, 0, 0, 0]},
      {"name": "k", "shape": [2, 4], "datatype": "INT64", "data": [0, 5, 0, 0, 7, 0, 0, 0]}],
      "outputs": [{"name": "idx"}]})"));
  ASSERT_TRUE(answer && answer->status == 200) << (answer ? answer->body : "no answer");
  EXPECT_EQ(answer->JsonBody()["outputs"][0]["data"], testing::Json::parse("[1, 0]"));
}

TEST_F(OtaModelsTest, ModelFailingItsGoldenCheckNeverServes) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000);
  ASSERT_EQ(UpdateModel(cfg_, "iris").outcome, ModelOutcome::kUpdated);
  const std::string v1_manifest = ManifestText();
  ASSERT_NO_FATAL_FAILURE(StartLoad());
  ASSERT_NO_FATAL_FAILURE(AnswersMore(20));

  const std::string bad = Publish(Iris::kV2WithV1Golden, "2", 1700000100);
  ASSERT_EQ(bad.size(), 64u);
  ModelStepResult r = UpdateModel(cfg_, "iris");
  EXPECT_EQ(r.outcome, ModelOutcome::kFailedCheck) << r.message;
  EXPECT_THAT(r.message, HasSubstr("golden"));
  ASSERT_NO_FATAL_FAILURE(AnswersMore(20));
  StopLoad();

  EXPECT_TRUE(failures_.empty()) << failures_.size() << " failed requests, first: "
                                 << (failures_.empty() ? "" : failures_[0]);
  EXPECT_EQ(Runs(), "v1") << "the model that failed its check answered";
  EXPECT_EQ(ManifestText(), v1_manifest) << "the manifest points at v1 again";
  EXPECT_FALSE(fs::exists(cfg_.models_root + "/" + bad));
  EXPECT_THAT(daemon_->proc->Stderr(), HasSubstr("golden check"));
  ASSERT_EQ(r.record.refused.size(), 1u);
  EXPECT_EQ(r.record.refused[0].commit, bad);
  EXPECT_EQ(r.record.current.commit, c1);

  r = UpdateModel(cfg_, "iris");  // not tried again
  EXPECT_EQ(r.outcome, ModelOutcome::kUpToDate) << r.message;
  EXPECT_THAT(r.message, HasSubstr("failed its check before"));
}

TEST_F(OtaModelsTest, UnsignedUntrustedAndTamperedModelCommitsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000);
  ASSERT_EQ(UpdateModel(cfg_, "iris").outcome, ModelOutcome::kUpdated);
  const std::string v1_manifest = ManifestText();

  auto refused = [&](const std::string& what) -> std::string {
    ModelStepResult r = UpdateModel(cfg_, "iris");
    EXPECT_EQ(r.outcome, ModelOutcome::kRefused) << what << ": " << r.message;
    EXPECT_EQ(ManifestText(), v1_manifest) << what;
    auto l = ListModels(cfg_.state_dir);
    EXPECT_TRUE(l.ok() && l->size() == 1u && (*l)[0].current.commit == c1) << what;
    return r.message;
  };
  // Unsigned (commit and summary).
  ASSERT_EQ(Publish(Iris::kV2, "2", 1700000100, /*sign=*/false).size(), 64u);
  refused("unsigned");
  // Signed by a key the device does not trust.
  ASSERT_EQ(Publish(Iris::kV2, "3", 1700000200, true, other_fpr_).size(), 64u);
  EXPECT_THAT(refused("untrusted key"), HasSubstr("ignature"));
  // Signed by the release key, then one byte of its model object changed on the server (deltas
  // removed so that the object itself is fetched).
  const std::string c4 = Publish(Iris::kV2, "4", 1700000300);
  ASSERT_EQ(c4.size(), 64u);
  ASSERT_EQ(testing::TamperObject(dir_ + "/srv/repo", c4, "/model.onnx", gnupg_, release_fpr_), "");
  refused("tampered object");
  for (const auto& e : fs::directory_iterator(cfg_.models_root))
    EXPECT_EQ(e.path().filename().string()[0] == '.' || e.path().filename() == c1, true)
        << "a checkout of a refused commit: " << e.path();
  // outpostd still serves v1.
  testing::V2Client c(daemon_->port);
  auto meta = c.Get("/v2/models/iris");
  ASSERT_TRUE(meta && meta->status == 200);
  EXPECT_EQ(meta->JsonBody()["versions"][0], "1");
}

// The same through the CLI: update twice, list, roll back; usage errors exit 2.
// The agent's check (CheckModel): a commit refused at the pull (a tampered object: checksum) is
// recorded against the remote head and not fetched again while it stays the head; a new head
// is taken.
TEST_F(OtaModelsTest, CheckModelRemembersARefusalAtThePull) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000);
  ModelStepResult r = CheckModel(cfg_, "iris");
  ASSERT_EQ(r.outcome, ModelOutcome::kUpdated) << r.message;
  EXPECT_EQ(r.commit, c1);
  r = CheckModel(cfg_, "iris");
  EXPECT_EQ(r.outcome, ModelOutcome::kUpToDate) << r.message;
  EXPECT_THAT(r.message, HasSubstr("nothing pulled"));

  const std::string c2 = Publish(Iris::kV2, "2", 1700000100);
  ASSERT_EQ(testing::TamperObject(dir_ + "/srv/repo", c2, "/model.onnx", gnupg_, release_fpr_), "");
  r = CheckModel(cfg_, "iris");
  EXPECT_EQ(r.outcome, ModelOutcome::kRefused) << r.message;
  EXPECT_EQ(r.commit, c2);
  ASSERT_EQ(r.record.refused.size(), 1u);
  EXPECT_EQ(r.record.refused[0].commit, c2);
  EXPECT_EQ(r.record.current.commit, c1);

  server_->ClearRequests();
  r = CheckModel(cfg_, "iris");
  EXPECT_EQ(r.outcome, ModelOutcome::kUpToDate) << r.message;
  EXPECT_THAT(r.message, HasSubstr("the remote head " + c2 + " was refused before"));
  for (const auto& req : server_->Requests())
    EXPECT_EQ(req.find("/objects/") == std::string::npos && req.find("/deltas/") == std::string::npos,
              true)
        << req;
  EXPECT_FALSE(server_->Requests().empty()) << "the summary was read";

  // A new head (v1's model again: v2's model object stays tampered on the server) is taken.
  const std::string c3 = Publish(Iris::kV1, "3", 1700000200);
  r = CheckModel(cfg_, "iris");
  EXPECT_EQ(r.outcome, ModelOutcome::kUpdated) << r.message;
  EXPECT_EQ(r.commit, c3);
}

TEST_F(OtaModelsTest, CliUpdatesListsAndRollsBack) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string opts = " --remote " + cfg_.remote_url + " --repo " + cfg_.source.repo +
                           " --ref-prefix " + cfg_.ref_prefix + " --models-root " +
                           cfg_.models_root + " --manifest-dir " + cfg_.manifest_dir +
                           " --state-dir " + cfg_.state_dir +
                           " --outpostd 127.0.0.1:" + std::to_string(daemon_->port);
  const std::string cli = std::string(OUTPOST_CLI) + " ota models ";
  auto run = [&](const std::string& args) {  // stdout only: Sh() adds 2>&1 outside the ( )
    return Sh("(" + cli + args + " 2>" + dir_ + "/cli.err)");
  };
  const std::string update = "update iris --trusted-key " + root_ + "/Release.asc" + opts;
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000);
  testing::Cmd r = run(update);
  ASSERT_EQ(r.rc, 0) << r.out << ReadAll(dir_ + "/cli.err");
  EXPECT_EQ(nlohmann::json::parse(r.out)["outcome"], "updated");
  const std::string c2 = Publish(Iris::kV2, "2", 1700000100);
  r = run(update);
  ASSERT_EQ(r.rc, 0) << r.out << ReadAll(dir_ + "/cli.err");
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["outcome"], "updated");
  EXPECT_EQ(j["commit"], c2);
  EXPECT_TRUE(j["swap_ms"].is_number());

  r = run("list --json --state-dir " + cfg_.state_dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u) << j;
  EXPECT_EQ(j[0]["current"]["commit"], c2);
  EXPECT_EQ(j[0]["current"]["version"], "2");
  ASSERT_EQ(j[0]["previous"].size(), 1u);
  EXPECT_EQ(j[0]["previous"][0]["commit"], c1);

  r = run("rollback iris" + opts);
  ASSERT_EQ(r.rc, 0) << r.out << ReadAll(dir_ + "/cli.err");
  EXPECT_EQ(nlohmann::json::parse(r.out)["outcome"], "rolled-back");
  testing::V2Client c(daemon_->port);
  auto meta = c.Get("/v2/models/iris");
  ASSERT_TRUE(meta && meta->status == 200);
  EXPECT_EQ(meta->JsonBody()["versions"][0], "1");
  r = run("rollback iris" + opts);  // nothing older kept
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["outcome"], "error");

  EXPECT_EQ(run("update iris" + opts).rc, 2) << "no --trusted-key";
  EXPECT_EQ(run("update" + opts).rc, 2) << "no model name";
  EXPECT_EQ(run("frobnicate").rc, 2);
}

// `outpost ota agent` with `ota.models: [iris]`: the model's ref checked on the agent's own
// schedule (interval 1 s), beside an OS ref that does not move (the booted commit).
class OtaModelsAgentTest : public OtaModelsTest {
 protected:
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "---- agent stderr ----\n%s\n", AgentLog().c_str());
    StopAgent();
    OtaModelsTest::TearDown();
  }
  void StartAgent(const std::string& booted_commit, const std::string& telemetry = "") {
    fs::create_directories(dir_ + "/keys");
    fs::copy_file(root_ + "/Release.asc", dir_ + "/keys/Release.asc",
                  fs::copy_options::overwrite_existing);
    testing::WriteFile(
        dir_ + "/device.yaml",
        "server:\n  listen_address: 127.0.0.1\n  port: " + std::to_string(daemon_->port) +
            "\nmodels:\n  manifest_dir: " + box_.manifests() + "\nota:\n  enabled: true\n"
            "  remote_url: " + cfg_.remote_url + "\n  ref: outpost/test/x86_64\n"
            "  trusted_keys_dir: " + dir_ + "/keys\n  state_dir: " + cfg_.state_dir +
            "\n  jitter_s: 0\n  reboot_command: \"echo reboot >> " + dir_ + "/reboots\"\n"
            "  models: [iris]\n  model_ref_prefix: outpost/test/models\n  models_dir: " +
            cfg_.models_root + "\n" + telemetry);
    testing::ProcessOptions o;
    o.argv = {OUTPOST_CLI,        "ota",   "agent",   "--config", dir_ + "/device.yaml",
              "--sysroot",        sysroot_, "--boot-id", "boot-1", "--booted-commit",
              booted_commit,      "--check-interval-s", "1"};
    o.stderr_path = dir_ + "/agent.log";
    o.capture_stdout = false;
    std::string err;
    agent_ = testing::Process::Start(o, &err);
    ASSERT_TRUE(agent_) << err;
  }
  void StopAgent() {
    if (!agent_) return;
    if (agent_->running()) agent_->Signal(SIGTERM);
    if (!agent_->Wait(20000)) agent_->Kill();
    agent_.reset();
  }
  std::string AgentLog() const { return ReadAll(dir_ + "/agent.log"); }
  size_t Count(const std::string& what) const {
    const std::string log = AgentLog();
    size_t n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  }
  // What models.json records for iris (empty record when none).
  ModelRecord Iris() {
    auto all = ListModels(cfg_.state_dir);
    if (all.ok())
      for (const auto& r : *all)
        if (r.name == "iris") return r;
    return {};
  }
  bool WaitFor(const std::function<bool()>& ok, int timeout_ms) {
    for (int i = 0; i < timeout_ms / 50 && !ok(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return ok();
  }
  // The answer outpostd gives now to the golden input.
  Answer AnswerNow() {
    testing::V2Client c(daemon_->port);
    auto r = c.Infer("iris", GoldenRequest());
    if (!r || r->status != 200) return Answer::kOther;
    std::vector<double> got;
    testing::FlattenJson(r->JsonBody()["outputs"][0]["data"], &got);
    return Classify(got);
  }
  size_t ObjectRequests() {
    size_t n = 0;
    for (const auto& r : server_->Requests()) n += r.find("/objects/") != std::string::npos;
    return n;
  }

  std::unique_ptr<testing::Process> agent_;
};

TEST_F(OtaModelsAgentTest, AgentPicksUpANewModelCommitOnItsOwnSchedule) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());  // no model yet
  std::string os1;
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000, true, "", "outpost/test/x86_64", &os1);
  ASSERT_EQ(c1.size(), 64u);
  ASSERT_NO_FATAL_FAILURE(StartAgent(os1));
  // The first check at start installs v1 (the OS is up to date: its head is the booted commit).
  ASSERT_TRUE(WaitFor([&] { return Iris().current.commit == c1; }, 60000)) << AgentLog();
  EXPECT_EQ(AnswerNow(), Answer::kV1);
  // v2 published on the model's ref only; nobody tells the agent.
  const std::string c2 =
      Publish(Iris::kV2, "2", 1700000100, true, "", "outpost/test/other/x86_64");
  ASSERT_EQ(c2.size(), 64u);
  ASSERT_TRUE(WaitFor([&] { return Iris().current.commit == c2; }, 60000)) << AgentLog();
  EXPECT_EQ(AnswerNow(), Answer::kV2);
  ModelRecord r = Iris();
  ASSERT_FALSE(r.previous.empty());
  EXPECT_EQ(r.previous[0].commit, c1);
  EXPECT_EQ(r.current.version, "2");
  EXPECT_THAT(AgentLog(), HasSubstr("ota models: iris: new head " + c2));
  // Later checks find it current and pull nothing; the OS never moved, nothing rebooted.
  ASSERT_TRUE(WaitFor([&] { return Count("up to date at " + c2 + "; nothing pulled") >= 2; },
                      30000));
  EXPECT_FALSE(fs::exists(dir_ + "/reboots"));
  EXPECT_EQ(StateFile(cfg_.state_dir).Load().ok(), true);
}

// Each model update the agent makes is an `ota_model_update` event on the agent's own telemetry
// (a real mosquitto; the topic of the agent's identity <device_id>-ota).
TEST_F(OtaModelsAgentTest, ModelUpdatesArePublishedAsTelemetryEvents) {
  if (!fs::exists(OUTPOST_MOSQUITTO_BIN)) GTEST_SKIP() << "mosquitto not installed";
  testing_mqtt::Broker mqtt;
  ASSERT_NO_FATAL_FAILURE(testing_mqtt::StartBroker(dir_, "outpost/f/d1-ota/events", &mqtt));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  std::string os1;
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000, true, "", "outpost/test/x86_64", &os1);
  ASSERT_NO_FATAL_FAILURE(
      StartAgent(os1, "telemetry:\n  enabled: true\n  broker_url: mqtt://127.0.0.1:" +
                          std::to_string(mqtt.port) + "\n  device_id: d1\n  fleet: f\n"
                          "  buffer_dir: " + dir_ + "/telemetry\n  metrics_interval_ms: 3600000\n"));
  ASSERT_TRUE(WaitFor([&] { return Iris().current.commit == c1; }, 60000)) << AgentLog();
  const std::string c2 =
      Publish(Iris::kV2, "2", 1700000100, true, "", "outpost/test/other/x86_64");
  ASSERT_TRUE(WaitFor([&] { return Iris().current.commit == c2; }, 60000)) << AgentLog();

  const std::vector<nlohmann::json> events = testing_mqtt::ReadEvents(
      mqtt.sub.get(), "d1-ota", "ota_model_update",
      [](const auto& e) { return e.size() >= 2; }, 60);
  ASSERT_EQ(events.size(), 2u) << AgentLog();
  EXPECT_EQ(events[0]["model"], "iris");
  EXPECT_EQ(events[0]["outcome"], "updated");
  EXPECT_EQ(events[0]["commit"], c1);
  EXPECT_EQ(events[0]["previous_commit"], "");
  EXPECT_EQ(events[1]["outcome"], "updated");
  EXPECT_EQ(events[1]["commit"], c2);
  EXPECT_EQ(events[1]["current_commit"], c2);
  EXPECT_EQ(events[1]["current_version"], "2");
  EXPECT_EQ(events[1]["previous_commit"], c1);
  EXPECT_GE(events[1]["swap_ms"].get<double>(), 0);
}

TEST_F(OtaModelsAgentTest, BadModelCommitIsRefusedOnceAndNotPulledAgain) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  std::string os1;
  const std::string c1 = Publish(Iris::kV1, "1", 1700000000, true, "", "outpost/test/x86_64", &os1);
  ASSERT_NO_FATAL_FAILURE(StartAgent(os1));
  ASSERT_TRUE(WaitFor([&] { return Iris().current.commit == c1; }, 60000)) << AgentLog();
  // v2's model with v1's golden: outpostd's golden check refuses it.
  const std::string bad =
      Publish(Iris::kV2WithV1Golden, "2", 1700000100, true, "", "outpost/test/other/x86_64");
  ASSERT_EQ(bad.size(), 64u);
  ASSERT_TRUE(WaitFor(
      [&] {
        ModelRecord r = Iris();
        return !r.refused.empty() && r.refused.back().commit == bad;
      },
      60000))
      << AgentLog();
  // Refused once; then the head is known and nothing is pulled while it stays the head.
  ASSERT_TRUE(WaitFor([&] { return Count("was refused before") >= 1; }, 30000)) << AgentLog();
  const size_t objects = ObjectRequests();
  ASSERT_TRUE(WaitFor([&] { return Count("was refused before") >= 4; }, 30000)) << AgentLog();
  EXPECT_EQ(ObjectRequests(), objects) << "objects fetched again for a refused head";
  EXPECT_EQ(Count("ota models: iris: pulling"), 2u) << "v1 once, the bad commit once";
  EXPECT_EQ(Count("failed-check"), 1u);
  ModelRecord r = Iris();
  EXPECT_EQ(r.current.commit, c1);
  EXPECT_EQ(r.refused.size(), 1u);
  EXPECT_EQ(AnswerNow(), Answer::kV1);
  EXPECT_EQ(ReadAll(cfg_.models_root + "/" + bad + "/model.onnx"), "") << "checkout left behind";
}

}  // namespace
}  // namespace outpost::ota
