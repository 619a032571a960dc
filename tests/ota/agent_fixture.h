// The fixture of the agent's end-to-end tests (agent_test.cpp, agent_daemon_test.cpp): a fake
// sysroot deployed at v1 (iris with ONNX Runtime's golden), releases built by image::Build and
// served over loopback HTTP, a reboot simulated by a new boot id and the real outpostd
// restarted from the new default deployment's checkout.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "common/signing_keys.h"
#include "fake_sysroot.h"
#include "file_server.h"
#include "outpost/image/image.h"
#include "outpost/ota/agent.h"
#include "outpostd/test_util.h"

namespace outpost::ota {

namespace fs = std::filesystem;

class OtaAgentTest : public testing::FakeSysrootTest {
 protected:
  static void SetUpTestSuite() { SetUpSuite("otag"); }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FakeSysrootTest::SetUp());
    cfg_.sysroot = {sysroot_, "outpost", "outpost", "outpost/test/x86_64", {release_fpr_}};
    cfg_.state_dir = dir_ + "/var-lib-outpost-ota";
    cfg_.remote_url = server_->Url() + "/repo";
    cfg_.key_files = {root_ + "/Release.asc"};
    cfg_.gate_runs = 3;
    cfg_.gate_deadline_ms = 30000;

    // v1, good: iris with ONNX Runtime's golden output, deployed by hand (the factory image).
    v1_ = Build(Release("1.0", 1700000000, Golden("good", /*wrong=*/false)));
    ASSERT_EQ(v1_.size(), 64u);
    ASSERT_TRUE(AddRemote(cfg_.sysroot, cfg_.remote_url, cfg_.key_files).ok());
    auto p = Pull(cfg_.sysroot);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ASSERT_TRUE(Deploy(cfg_.sysroot, v1_).ok());
    ASSERT_EQ(StatusCommits(), std::vector<std::string>{v1_});
  }
  void TearDown() override {
    if (HasFailure() && daemon_ && daemon_->proc)
      std::fprintf(stderr, "---- outpostd stderr ----\n%s%s\n", logs_.c_str(),
                   daemon_->proc->Stderr().c_str());
    daemon_.reset();
    FakeSysrootTest::TearDown();
  }

  // An iris manifest whose golden output is ORT's, or ORT's with one value changed: a release
  // whose model does not give the answers its bundle promises.
  std::string Golden(const std::string& tag, bool wrong) {
    std::string out = testing::kModelsDir + "/golden/iris_mlp/output_0.npy";
    if (wrong) {
      std::string w = dir_ + "/" + tag + "_output.npy";
      fs::copy_file(out, w, fs::copy_options::overwrite_existing);
      std::fstream f(w, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-4, std::ios::end);
      float big = 1234.5f;
      f.write(reinterpret_cast<const char*>(&big), 4);
      out = w;
    }
    std::string p = dir_ + "/manifests-" + tag + "/iris.yaml";
    testing::WriteFile(
        p,
        testing::Manifest("iris", "iris_mlp.onnx",
                          {{"golden-input", testing::kModelsDir + "/golden/iris_mlp/input_0.npy"},
                           {"golden-output", out},
                           {"threads", "1"}}));
    return p;
  }

  // A release with the iris bundle of `manifest` (the outpostd in it is a script: the test runs
  // build/bin/outpostd on the checkout).
  image::BuildOptions Release(const std::string& version, int64_t ts, const std::string& manifest) {
    image::BuildOptions o = FakeSysrootTest::Release(version, ts);
    o.manifests = {manifest};
    o.model_dir = testing::kModelsDir;
    return o;
  }

  // "Boots" the default deployment: a new boot id, its commit as the booted one, and the real
  // outpostd started from the default deployment's checkout (its iris bundle: manifest, model,
  // goldens), as systemd would start it there.
  void Boot() {
    if (daemon_ && daemon_->proc) logs_ += daemon_->proc->Stderr();
    daemon_.reset();
    cfg_.boot_id = "boot-" + std::to_string(++boots_);
    auto list = ListDeployments(cfg_.sysroot);
    ASSERT_TRUE(list.ok() && !list->empty());
    cfg_.booted_commit = (*list)[0].commit;
    std::string bundle = (*list)[0].path + "/usr/lib/outpost/models/iris";
    ASSERT_TRUE(fs::exists(bundle + "/manifest.yaml")) << bundle;
    std::string err;
    daemon_ = box_.Start({}, &err, bundle, bundle);
    ASSERT_TRUE(daemon_) << err;
    cfg_.outpostd_port = daemon_->port;
  }

  // Booted into v1 without outpostd: for tests that stop at the staged deployment (no gate).
  void BootWithoutOutpostd() {
    cfg_.boot_id = "boot-1";
    cfg_.booted_commit = v1_;
  }

  Record State() {
    auto l = StateFile(cfg_.state_dir).Load();
    EXPECT_TRUE(l.ok() && l->has_value());
    return l.ok() && l->has_value() ? **l : Record{};
  }

  std::string v1_;
  AgentConfig cfg_;
  testing::Sandbox box_;
  std::unique_ptr<testing::Daemon> daemon_;
  int boots_ = 0;
  std::string logs_;  // stderr of the daemons of earlier boots
};

}  // namespace outpost::ota
