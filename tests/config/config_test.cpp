// config/: the device config and KServe-shaped model manifests. Expected values come from the
// documented schema (config/README.md), Kubernetes' quantity rules and KServe's field names.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "outpost/config/device_config.h"
#include "outpost/config/golden.h"
#include "outpost/config/manifest.h"
#include "outpost/core/metrics.h"

namespace outpost::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

fs::path SourceDir() {
  const char* env = std::getenv("OUTPOST_SOURCE_DIR");
  return fs::path(env != nullptr ? env : OUTPOST_SOURCE_DIR_DEFAULT);
}

// A fresh directory per test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "outpost_config_XXXXXX").string();
    path_ = fs::path(mkdtemp(tmpl.data()));
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path Write(const std::string& rel, const std::string& text) const {
    const fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }

 private:
  fs::path path_;
};

std::string DeviceError(const std::string& yaml) {
  auto r = ParseDeviceConfig(yaml, "device.yaml");
  EXPECT_FALSE(r.ok()) << "accepted:\n" << yaml;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  return r.status().message();
}

// ---------------------------------------------------------------------------------------------
// Device config: defaults and values

TEST(DeviceConfig, DefaultsServeOnLoopback8080) {
  const DeviceConfig c = DefaultDeviceConfig();
  EXPECT_EQ(c.server.listen_address, "127.0.0.1");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.server.io_threads, 1);
  EXPECT_EQ(c.server.max_header_bytes, 16384u);
  EXPECT_EQ(c.server.max_body_bytes, 64u * 1024 * 1024);
  EXPECT_EQ(c.server.max_connections, 1024);
  EXPECT_EQ(c.server.header_timeout_ms, 10000);
  EXPECT_EQ(c.server.idle_timeout_ms, 60000);
  EXPECT_EQ(c.server.drain_timeout_ms, 30000);
  EXPECT_EQ(c.compute.threads, 0);
  EXPECT_EQ(c.compute.default_backend, "cpu");
  EXPECT_EQ(c.compute.nice_offset, 5);
  EXPECT_EQ(c.compute.opencl_platform, -1);
  EXPECT_EQ(c.compute.opencl_device, -1);
  EXPECT_EQ(c.models.model_dir, "");     // "" = bundled examples
  EXPECT_EQ(c.models.manifest_dir, "");  // "" = bundled examples
  EXPECT_EQ(c.models.default_queue_size, 64);
  EXPECT_EQ(c.models.default_max_batch_size, 1);
  EXPECT_TRUE(c.models.watch);
  EXPECT_EQ(c.log.level, "info");
  EXPECT_FALSE(c.telemetry.enabled);
  EXPECT_EQ(c.telemetry.sync, "every-batch");
  EXPECT_EQ(c.telemetry.max_bytes_metrics, 16u << 20);
  EXPECT_FALSE(c.ota.enabled);
  EXPECT_EQ(c.ota.maintenance_start_min, -1);
  EXPECT_EQ(c.ota.max_boot_attempts, 3);
}

TEST(DeviceConfig, ShedSettingsAreReadAndBounded) {
  const DeviceConfig d = DefaultDeviceConfig();
  EXPECT_EQ(d.server.shed_target_us, 500);
  EXPECT_EQ(d.server.shed_interval_ms, 10);
  auto r = ParseDeviceConfig("server:\n  shed_target_us: 0\n  shed_interval_ms: 25\n", "d.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server.shed_target_us, 0);  // off
  EXPECT_EQ(r->server.shed_interval_ms, 25);
  for (const char* bad : {"server:\n  shed_target_us: -1\n", "server:\n  shed_interval_ms: 0\n",
                          "server:\n  shed_target_us: soon\n"}) {
    const std::string msg = DeviceError(bad);
    EXPECT_NE(msg.find("shed_"), std::string::npos) << bad << " -> " << msg;
  }
}

// server.io_slice_us: Linux takes per-thread slices of 100 µs .. 100 ms; 0 keeps the default.
TEST(DeviceConfig, IoSliceIsZeroOrWhatLinuxAccepts) {
  EXPECT_EQ(DefaultDeviceConfig().server.io_slice_us, 100);
  for (int v : {0, 100, 250, 100000}) {
    auto r = ParseDeviceConfig("server:\n  io_slice_us: " + std::to_string(v) + "\n", "d.yaml");
    ASSERT_TRUE(r.ok()) << v << ": " << r.status().ToString();
    EXPECT_EQ(r->server.io_slice_us, v);
  }
  EXPECT_EQ(DeviceError("server:\n  io_slice_us: 50\n"),
            "device.yaml:2: server.io_slice_us: expected 0 (the kernel's default) or an integer "
            "in 100..100000, got \"50\"");
  for (const char* bad : {"-1", "100001", "fast", "1.5"}) {
    EXPECT_NE(DeviceError(std::string("server:\n  io_slice_us: ") + bad + "\n")
                  .find("server.io_slice_us: expected 0 (the kernel's default) or an integer"),
              std::string::npos)
        << bad;
  }
}

TEST(DeviceConfig, OtaAgentSettingsAreReadAndBounded) {
  const DeviceConfig d = DefaultDeviceConfig();
  EXPECT_EQ(d.ota.health_gate_runs, 20);
  EXPECT_EQ(d.ota.state_dir, "/var/lib/outpost/ota");
  EXPECT_EQ(d.ota.reboot_command, "systemctl reboot");
  EXPECT_EQ(d.ota.idle_wait_s, 300);
  EXPECT_EQ(d.ota.retry_max, 5);
  EXPECT_EQ(d.ota.retry_base_s, 30);
  EXPECT_EQ(d.ota.retry_max_delay_s, 1800);
  auto r = ParseDeviceConfig(
      "ota:\n  health_gate_runs: 3\n  state_dir: st\n  reboot_command: \"echo hi\"\n"
      "  idle_wait_s: 0\n  retry_max: 2\n  retry_base_s: 1\n  retry_max_delay_s: 4\n"
      "  maintenance_window: always\n",
      "/etc/outpost/d.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ota.health_gate_runs, 3);
  EXPECT_EQ(r->ota.state_dir, "/etc/outpost/st");
  EXPECT_EQ(r->ota.reboot_command, "echo hi");
  EXPECT_EQ(r->ota.idle_wait_s, 0);
  EXPECT_EQ(r->ota.retry_max, 2);
  EXPECT_EQ(r->ota.retry_base_s, 1);
  EXPECT_EQ(r->ota.retry_max_delay_s, 4);
  EXPECT_EQ(r->ota.maintenance_start_min, -1);  // "always" = no window
  EXPECT_NE(DeviceError("ota:\n  health_gate_runs: 0\n").find("device.yaml:2: ota.health_gate_runs"),
            std::string::npos);
  EXPECT_EQ(DeviceError("ota:\n  reboot_command: \"\"\n"),
            "device.yaml:2: ota.reboot_command: the reboot command must not be empty");
  EXPECT_EQ(DeviceError("ota:\n  retry_base_s: 60\n  retry_max_delay_s: 10\n"),
            "device.yaml:3: ota.retry_max_delay_s: must not be below ota.retry_base_s");
}

TEST(DeviceConfig, OtaModelListPrefixAndDirectory) {
  const DeviceConfig d = DefaultDeviceConfig();
  EXPECT_TRUE(d.ota.models.empty());
  EXPECT_EQ(d.ota.models_dir, "/var/lib/outpost/models");
  // The prefix defaults to image's layout: <dirname of ref>/models.
  auto r = ParseDeviceConfig(
      "ota:\n  ref: outpost/stable/x86_64\n  models: [iris, digits-2]\n  models_dir: m\n",
      "/etc/outpost/d.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ota.models, (std::vector<std::string>{"iris", "digits-2"}));
  EXPECT_EQ(r->ota.model_ref_prefix, "outpost/stable/models");
  EXPECT_EQ(r->ota.models_dir, "/etc/outpost/m");
  r = ParseDeviceConfig("ota:\n  models:\n    - iris\n  model_ref_prefix: fleet/a/models\n",
                        "d.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ota.model_ref_prefix, "fleet/a/models");
  EXPECT_EQ(DeviceError("ota:\n  models: iris\n"),
            "device.yaml:2: ota.models: expected a list of model names, e.g. [iris, digits]");
  EXPECT_EQ(DeviceError("ota:\n  models: [iris, Iris]\n"),
            "device.yaml:2: ota.models: element 2: expected a model name (a DNS-1123 label: "
            "lowercase letters, digits and '-', at most 63), got \"Iris\"");
  EXPECT_EQ(DeviceError("ota:\n  models: [iris, iris]\n"),
            "device.yaml:2: ota.models: element 2: \"iris\" is listed twice");
  EXPECT_EQ(DeviceError("ota:\n  models: [[iris]]\n"),
            "device.yaml:2: ota.models: element 1: expected a model name");
  EXPECT_EQ(DeviceError("ota:\n  model_ref_prefix: \"a/b/\"\n"),
            "device.yaml:2: ota.model_ref_prefix: not a valid OSTree ref prefix, got \"a/b/\"");
  EXPECT_THAT(DeviceError("ota:\n  modles: [iris]\n"), HasSubstr("did you mean \"models\""));
  EXPECT_EQ(DeviceError("ota:\n  enabled: true\n  remote_url: http://h/r\n  ref: flat\n"
                        "  trusted_keys_dir: /k\n  models: [iris]\n"),
            "device.yaml:6: ota.models: ota.models needs ota.model_ref_prefix (ota.ref \"flat\" "
            "has no '/' to derive <dirname>/models from)");
}

TEST(DeviceConfig, EmptyFileCommentsAndEmptySectionsAreDefaults) {
  for (const char* text : {"", "# nothing here\n", "---\n", "server:\ntelemetry:\n"}) {
    auto r = ParseDeviceConfig(text, "device.yaml");
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(r->server.port, 8080);
    EXPECT_EQ(r->server.listen_address, "127.0.0.1");
    EXPECT_EQ(r->source, "device.yaml");
  }
}

TEST(DeviceConfig, ReadsValuesAndQuantities) {
  auto r = ParseDeviceConfig(R"(
server:
  listen_address: "::1"
  port: 9000
  max_body_bytes: 1Gi
  max_header_bytes: 8192
compute:
  threads: 3
  nice_offset: 12
  default_backend: opencl
  opencl_platform_name: Intel
models:
  default_max_batch_size: 4
  watch: off
log:
  level: debug
telemetry:
  enabled: yes
  broker_url: mqtt://10.0.0.5:1883
  sync: interval=250ms
  max_bytes:
    logs: 1M
ota:
  maintenance_window: "22:30-01:15"
)",
                             "device.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server.listen_address, "::1");
  EXPECT_EQ(r->server.port, 9000);
  EXPECT_EQ(r->server.max_body_bytes, 1073741824u);
  EXPECT_EQ(r->server.max_header_bytes, 8192u);
  EXPECT_EQ(r->server.io_threads, 1);  // untouched default
  EXPECT_EQ(r->compute.threads, 3);
  EXPECT_EQ(r->compute.nice_offset, 12);
  EXPECT_EQ(r->compute.default_backend, "opencl");
  EXPECT_EQ(r->compute.opencl_platform_name, "Intel");
  EXPECT_EQ(r->models.default_max_batch_size, 4);
  EXPECT_FALSE(r->models.watch);
  EXPECT_EQ(r->log.level, "debug");
  EXPECT_TRUE(r->telemetry.enabled);
  EXPECT_EQ(r->telemetry.broker_url, "mqtt://10.0.0.5:1883");
  EXPECT_EQ(r->telemetry.sync, "interval=250ms");
  EXPECT_EQ(r->telemetry.sync_interval_ms, 250);
  EXPECT_EQ(r->telemetry.max_bytes_logs, 1000000u);
  EXPECT_EQ(r->telemetry.max_bytes_events, 16u << 20);
  EXPECT_EQ(r->ota.maintenance_window, "22:30-01:15");
  EXPECT_EQ(r->ota.maintenance_start_min, 22 * 60 + 30);
  EXPECT_EQ(r->ota.maintenance_end_min, 75);
}

TEST(DeviceConfig, RelativePathsResolveAgainstTheFilesDirectory) {
  auto r = ParseDeviceConfig(
      "models:\n  model_dir: models\n  manifest_dir: /abs/manifests\n"
      "ota:\n  trusted_keys_dir: keys/../trusted\n",
      "/etc/outpost/device.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->models.model_dir, "/etc/outpost/models");
  EXPECT_EQ(r->models.manifest_dir, "/abs/manifests");
  EXPECT_EQ(r->ota.trusted_keys_dir, "/etc/outpost/trusted");
}

// ---------------------------------------------------------------------------------------------
// Device config: every error names file, line and key

TEST(DeviceConfigErrors, BadInteger) {
  EXPECT_EQ(DeviceError("server:\n  port: 80a\n"),
            "device.yaml:2: server.port: expected an integer in 0..65535, got \"80a\"");
  EXPECT_EQ(DeviceError("# c\nserver:\n  io_threads: 2\n  port: 70000\n"),
            "device.yaml:4: server.port: expected an integer in 0..65535, got \"70000\"");
  EXPECT_EQ(DeviceError("server:\n  port: 8080.0\n"),
            "device.yaml:2: server.port: expected an integer in 0..65535, got \"8080.0\"");
  EXPECT_EQ(DeviceError("server:\n  port:\n    a: 1\n"),
            "device.yaml:2: server.port: expected an integer in 0..65535, got a mapping");
  EXPECT_EQ(DeviceError("compute:\n  threads: -1\n"),
            "device.yaml:2: compute.threads: expected an integer in 0..1024, got \"-1\"");
  EXPECT_EQ(DeviceError("compute:\n  nice_offset: 20\n"),
            "device.yaml:2: compute.nice_offset: expected an integer in 0..19, got \"20\"");
}

TEST(DeviceConfigErrors, UnknownKeysWithSuggestions) {
  EXPECT_EQ(DeviceError("server:\n  prot: 8080\n"),
            "device.yaml:2: server.prot: unknown key (did you mean \"port\"?)");
  EXPECT_EQ(DeviceError("severs:\n  port: 8080\n"),
            "device.yaml:1: severs: unknown key (did you mean \"server\"?)");
  EXPECT_EQ(DeviceError("models:\n  model_dri: /x\n"),
            "device.yaml:2: models.model_dri: unknown key (did you mean \"model_dir\"?)");
  EXPECT_EQ(DeviceError("telemetry:\n  max_bytes:\n    metric: 1Mi\n"),
            "device.yaml:3: telemetry.max_bytes.metric: unknown key (did you mean \"metrics\"?)");
  EXPECT_EQ(DeviceError("server:\n  banana: 1\n"), "device.yaml:2: server.banana: unknown key");
}

TEST(DeviceConfigErrors, WrongShapes) {
  EXPECT_EQ(DeviceError("server: [1, 2]\n"),
            "device.yaml:1: server: expected a mapping, got a sequence");
  EXPECT_EQ(DeviceError("server: 8080\n"),
            "device.yaml:1: server: expected a mapping, got \"8080\"");
  EXPECT_THAT(DeviceError("- server\n- compute\n"),
              StartsWith("device.yaml:1: expected a mapping of sections"));
  EXPECT_THAT(DeviceError("just a string\n"),
              StartsWith("device.yaml:1: expected a mapping of sections"));
}

TEST(DeviceConfigErrors, BoolsEnumsStrings) {
  EXPECT_EQ(DeviceError("models:\n  watch: maybe\n"),
            "device.yaml:2: models.watch: expected true or false, got \"maybe\"");
  EXPECT_EQ(DeviceError("compute:\n  default_backend: opencll\n"),
            "device.yaml:2: compute.default_backend: expected one of cpu, opencl, got "
            "\"opencll\" (did you mean \"opencl\"?)");
  EXPECT_EQ(DeviceError("log:\n  level: verbose\n"),
            "device.yaml:2: log.level: expected one of trace, debug, info, warn, error, "
            "critical, off, got \"verbose\"");
  EXPECT_EQ(DeviceError("models:\n  model_dir: [a]\n"),
            "device.yaml:2: models.model_dir: expected a string, got a sequence");
}

TEST(DeviceConfigErrors, YamlSyntaxErrorsCarryTheLine) {
  // yaml-cpp reports the line where the parser gave up: here the mis-indented key on line 3.
  EXPECT_THAT(DeviceError("server:\n  port: 8080\n io_threads: 2\n"),
              StartsWith("device.yaml:3: YAML syntax error: "));
  EXPECT_THAT(DeviceError("log: {level: info\n"), StartsWith("device.yaml:"));
  EXPECT_THAT(DeviceError("log: {level: info\n"), HasSubstr("YAML syntax error"));
}

TEST(DeviceConfigErrors, DuplicateKeys) {
  EXPECT_EQ(DeviceError("server:\n  port: 1\n  io_threads: 2\n  port: 2\n"),
            "device.yaml:4: server.port: duplicate key (first given at line 2)");
  EXPECT_EQ(DeviceError("log:\n  level: info\nlog:\n  level: debug\n"),
            "device.yaml:3: log: duplicate key (first given at line 1)");
}

TEST(DeviceConfigErrors, MoreThanOneDocument) {
  EXPECT_EQ(DeviceError("server:\n  port: 1\n---\nserver:\n  port: 2\n"),
            "device.yaml:4: more than one YAML document in one file; put one per file");
}

TEST(DeviceConfigErrors, ByteSizes) {
  EXPECT_EQ(DeviceError("server:\n  max_body_bytes: 12\n"),
            "device.yaml:2: server.max_body_bytes: expected a byte size in 1024..4294967296 (an "
            "integer or a quantity such as 64Mi), got \"12\"");
  EXPECT_THAT(DeviceError("server:\n  max_header_bytes: 16KB\n"),
              StartsWith("device.yaml:2: server.max_header_bytes: expected a byte size"));
}

TEST(DeviceConfigErrors, ListenAddress) {
  EXPECT_EQ(DeviceError("server:\n  listen_address: 300.1.1.1\n"),
            "device.yaml:2: server.listen_address: expected an IPv4 or IPv6 address or a host "
            "name, got \"300.1.1.1\"");
  EXPECT_EQ(DeviceError("server:\n  listen_address: \"[::1]\"\n"),
            "device.yaml:2: server.listen_address: write IPv6 addresses without brackets here, "
            "got \"[::1]\"");
  auto ok = ParseDeviceConfig("server:\n  listen_address: edge-box.local\n", "d.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(DeviceConfigErrors, CrossFieldRules) {
  EXPECT_EQ(DeviceError("telemetry:\n  enabled: true\n"),
            "device.yaml:2: telemetry.enabled: telemetry is enabled but telemetry.broker_url is "
            "not set");
  EXPECT_EQ(DeviceError("telemetry:\n  broker_url: http://x\n"),
            "device.yaml:2: telemetry.broker_url: unsupported URL scheme \"http\" (expected one "
            "of mqtt://, mqtts://)");
  EXPECT_EQ(DeviceError("telemetry:\n  tls:\n    cert_file: a.pem\n"),
            "device.yaml:2: telemetry.tls: cert_file and key_file go together (client "
            "certificate and its key)");
  EXPECT_EQ(DeviceError("telemetry:\n  sync: interval=0ms\n"),
            "device.yaml:2: telemetry.sync: expected \"every-batch\", \"never\" or "
            "\"interval=<N>ms\" with N in 1..3600000, got \"interval=0ms\"");
  EXPECT_EQ(DeviceError("telemetry:\n  fleet: a/b\n"),
            "device.yaml:2: telemetry.fleet: must not contain '/', '+', '#', spaces or NUL (it "
            "is part of MQTT topic names), got \"a/b\"");
  EXPECT_EQ(DeviceError("ota:\n  enabled: true\n  remote_url: https://u.example.com/repo\n"),
            "device.yaml:2: ota.enabled: ota is enabled but ota.ref is not set");
  EXPECT_EQ(DeviceError("ota:\n  maintenance_window: \"25:00-01:00\"\n"),
            "device.yaml:2: ota.maintenance_window: expected \"HH:MM-HH:MM\" (24-hour local time, "
            "may wrap past midnight), got \"25:00-01:00\"");
  EXPECT_EQ(DeviceError("compute:\n  opencl_device: 0\n  opencl_device_name: Arc\n"),
            "device.yaml:3: compute.opencl_device_name: give opencl_device (an index) or "
            "opencl_device_name, not both");
}

TEST(DeviceConfigFiles, MissingUnreadableAndLoadedErrorsNameThePath) {
  TempDir t;
  const std::string missing = (t.path() / "nope.yaml").string();
  auto r = LoadDeviceConfig(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr(missing));

  r = LoadDeviceConfig(t.path().string());  // a directory
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIoError);
  EXPECT_THAT(r.status().message(), HasSubstr(t.path().string()));

  if (geteuid() != 0) {  // root reads anything
    const fs::path locked = t.Write("locked.yaml", "server:\n  port: 1\n");
    chmod(locked.c_str(), 0);
    r = LoadDeviceConfig(locked.string());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kIoError);
  }

  const fs::path bad = t.Write("device.yaml", "server:\n  port: 80a\n");
  r = LoadDeviceConfig(bad.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            bad.string() + ":2: server.port: expected an integer in 0..65535, got \"80a\"");
}

// ---------------------------------------------------------------------------------------------
// --listen overrides

TEST(ListenOverride, AcceptsIpv4Ipv6AndPortZero) {
  DeviceConfig c = DefaultDeviceConfig();
  ASSERT_TRUE(ApplyListenOverride(c, "127.0.0.1:8080").ok());
  EXPECT_EQ(c.server.listen_address, "127.0.0.1");
  EXPECT_EQ(c.server.port, 8080);
  ASSERT_TRUE(ApplyListenOverride(c, "[::1]:8081").ok());
  EXPECT_EQ(c.server.listen_address, "::1");
  EXPECT_EQ(c.server.port, 8081);
  ASSERT_TRUE(ApplyListenOverride(c, "0.0.0.0:0").ok());
  EXPECT_EQ(c.server.listen_address, "0.0.0.0");
  EXPECT_EQ(c.server.port, 0);
  ASSERT_TRUE(ApplyListenOverride(c, "localhost:65535").ok());
  EXPECT_EQ(c.server.listen_address, "localhost");
  EXPECT_EQ(c.server.port, 65535);
}

TEST(ListenOverride, RejectsMalformedAndLeavesConfigUnchanged) {
  for (const char* bad :
       {"8080", "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:+80", "127.0.0.1:80x", "::1:8080", "[::1]8080", "[::1", "[zz::]:80",
        "[127.0.0.1]:80", "300.0.0.1:80", "bad_host:80", ""}) {
    DeviceConfig c = DefaultDeviceConfig();
    const Status s = ApplyListenOverride(c, bad);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), StartsWith("--listen \"" + std::string(bad) + "\": ")) << bad;
    EXPECT_EQ(c.server.listen_address, "127.0.0.1") << bad;
    EXPECT_EQ(c.server.port, 8080) << bad;
  }
  DeviceConfig c;
  EXPECT_THAT(ApplyListenOverride(c, "::1:8080").message(),
              HasSubstr("IPv6 addresses need brackets"));
}

// ---------------------------------------------------------------------------------------------
// Kubernetes quantities (k8s.io/apimachinery resource.Quantity semantics)

TEST(Quantities, Cpu) {
  EXPECT_EQ(*ParseCpuMillis("500m"), 500);
  EXPECT_EQ(*ParseCpuMillis("2"), 2000);
  EXPECT_EQ(*ParseCpuMillis("0.5"), 500);
  EXPECT_EQ(*ParseCpuMillis("1.25"), 1250);
  EXPECT_EQ(*ParseCpuMillis("100u"), 1);  // 0.1 millicore rounds up
  EXPECT_EQ(*ParseCpuMillis("1e3"), 1000000);
  EXPECT_EQ(*ParseCpuMillis("+4"), 4000);
  EXPECT_EQ(*ParseCpuMillis("0"), 0);
}

TEST(Quantities, Memory) {
  EXPECT_EQ(*ParseMemoryBytes("512Mi"), 536870912);
  EXPECT_EQ(*ParseMemoryBytes("1G"), 1000000000);
  EXPECT_EQ(*ParseMemoryBytes("1Gi"), 1073741824);
  EXPECT_EQ(*ParseMemoryBytes("128974848"), 128974848);
  EXPECT_EQ(*ParseMemoryBytes("129e6"), 129000000);
  EXPECT_EQ(*ParseMemoryBytes("123Mi"), 128974848);
  EXPECT_EQ(*ParseMemoryBytes("1k"), 1000);
  EXPECT_EQ(*ParseMemoryBytes("1Ki"), 1024);
  EXPECT_EQ(*ParseMemoryBytes("0.5Ki"), 512);
  EXPECT_EQ(*ParseMemoryBytes("1.5"), 2);  // fractional bytes round up
  EXPECT_EQ(*ParseMemoryBytes("7Ei"), 8070450532247928832);
  EXPECT_EQ(*ParseMemoryBytes("1500m"), 2);
}

TEST(Quantities, Invalid) {
  for (const char* bad : {"", "-1", "1Xi", "abc", "1.2.3", "Mi", "1 Mi", "8Ei", "10E",
                          "9999999999999999999999", "1e", "1e1000"}) {
    auto r = ParseMemoryBytes(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    }
  }
  EXPECT_FALSE(ParseCpuMillis("-500m").ok());
}

// ---------------------------------------------------------------------------------------------
// Manifests

const char* kIrisManifest = R"(apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
spec:
  predictor:
    model:
      modelFormat:
        name: onnx
      storageUri: STORAGE
)";

std::string Manifest(const std::string& storage, const std::string& extra_annotations = "") {
  std::string m = kIrisManifest;
  m.replace(m.find("STORAGE"), 7, storage);
  if (!extra_annotations.empty()) {
    m.replace(m.find("  name: iris\n"), 13, "  name: iris\n  annotations:\n" + extra_annotations);
  }
  return m;
}

// A model dir with one model and a manifest dir beside it.
struct ManifestFixture : ::testing::Test {
  TempDir t;
  DeviceConfig cfg = DefaultDeviceConfig();
  void SetUp() override {
    t.Write("models/iris.onnx", "onnx bytes");
    cfg.models.model_dir = (t.path() / "models").string();
  }
  Expected<ModelManifest> Parse(const std::string& yaml) {
    return ParseManifest(yaml, (t.path() / "m" / "iris.yaml").string(), cfg);
  }
  std::string Err(const std::string& yaml, Code code = Code::kInvalidArgument) {
    auto r = ParseManifest(yaml, "iris.yaml", cfg);
    EXPECT_FALSE(r.ok()) << yaml;
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    return r.status().message();
  }
};

TEST_F(ManifestFixture, MinimalManifestGetsDeviceDefaults) {
  cfg.compute.default_backend = "opencl";
  cfg.models.default_queue_size = 7;
  cfg.models.default_timeout_ms = 99;
  auto r = Parse(Manifest("iris.onnx"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name, "iris");
  EXPECT_EQ(r->name_line, 4);
  EXPECT_EQ(r->model_format, "onnx");
  EXPECT_EQ(r->storage_uri, "iris.onnx");
  EXPECT_EQ(r->model_path, (t.path() / "models" / "iris.onnx").string());
  EXPECT_EQ(r->version, "1");
  EXPECT_EQ(r->backend, "opencl");
  EXPECT_EQ(r->queue_size, 7);
  EXPECT_EQ(r->timeout_ms, 99);
  EXPECT_EQ(r->max_batch_size, 1);
  EXPECT_TRUE(r->fallback_endpoints.empty());
  EXPECT_FALSE(r->limits.cpu_millis.has_value());
  EXPECT_EQ(r->golden_input, "");
}

TEST_F(ManifestFixture, StorageUriForms) {
  // file:///absolute
  const fs::path elsewhere = t.Write("elsewhere/m.onnx", "x");
  auto r = Parse(Manifest("file://" + elsewhere.string()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model_path, elsewhere.string());
  // plain absolute path (KServe treats scheme-less URIs as local paths)
  r = Parse(Manifest(elsewhere.string()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model_path, elsewhere.string());
  // relative, normalized, staying inside
  t.Write("models/sub/x.onnx", "x");
  r = Parse(Manifest("sub/../sub/./x.onnx"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model_path, (t.path() / "models" / "sub" / "x.onnx").string());
  // pvc://<claim>/<path> maps to <model_dir>/<path>
  r = Parse(Manifest("pvc://my-claim/sub/x.onnx"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model_path, (t.path() / "models" / "sub" / "x.onnx").string());
  // a directory holding model.onnx (KServe's layout), or exactly one .onnx file
  t.Write("models/d1/model.onnx", "x");
  t.Write("models/d1/other.onnx", "x");
  r = Parse(Manifest("d1"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model_path, (t.path() / "models" / "d1" / "model.onnx").string());
  r = Parse(Manifest("sub"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model_path, (t.path() / "models" / "sub" / "x.onnx").string());
}

TEST_F(ManifestFixture, EmptyModelDirResolvesAgainstTheManifestDirectory) {
  cfg.models.model_dir = "";
  t.Write("m/local.onnx", "x");
  auto r = Parse(Manifest("local.onnx"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model_path, (t.path() / "m" / "local.onnx").string());
}

TEST_F(ManifestFixture, StorageUriRefusals) {
  const std::string base = (t.path() / "models").string();
  EXPECT_EQ(Err(Manifest("../secret.onnx")),
            "iris.yaml:10: spec.predictor.model.storageUri: path \"../secret.onnx\" escapes "
            "models.model_dir " +
                base);
  EXPECT_EQ(Err(Manifest("a/../../secret.onnx")),
            "iris.yaml:10: spec.predictor.model.storageUri: path \"a/../../secret.onnx\" escapes "
            "models.model_dir " +
                base);
  EXPECT_EQ(Err(Manifest("pvc://claim/../x.onnx")),
            "iris.yaml:10: spec.predictor.model.storageUri: path \"../x.onnx\" escapes "
            "models.model_dir " +
                base);
  EXPECT_THAT(Err(Manifest("s3://bucket/iris.onnx"), Code::kUnsupported),
              StartsWith("iris.yaml:10: spec.predictor.model.storageUri: storage scheme "
                         "\"s3://\" is not supported on the device: outpostd does not download "
                         "models."));
  EXPECT_THAT(Err(Manifest("gs://bucket/iris"), Code::kUnsupported),
              HasSubstr("storage scheme \"gs://\" is not supported"));
  EXPECT_THAT(Err(Manifest("https://example.com/iris.onnx"), Code::kUnsupported),
              HasSubstr("storage scheme \"https://\" is not supported"));
  EXPECT_THAT(Err(Manifest("file://models/iris.onnx")),
              StartsWith("iris.yaml:10: spec.predictor.model.storageUri: file:// URIs hold an "
                         "absolute path"));
  EXPECT_EQ(Err(Manifest("pvc://claim-only")),
            "iris.yaml:10: spec.predictor.model.storageUri: expected pvc://<claim>/<path>, got "
            "\"pvc://claim-only\"");
  EXPECT_EQ(
      Err(Manifest("missing.onnx"), Code::kNotFound),
      "iris.yaml:10: spec.predictor.model.storageUri: model not found: " + base + "/missing.onnx");
  EXPECT_EQ(Err(Manifest("\"\"")),
            "iris.yaml:10: spec.predictor.model.storageUri: must not "
            "be empty");
  // A symbolic link inside model_dir that points outside it.
  const fs::path outside = t.Write("outside/evil.onnx", "x");
  fs::create_symlink(outside, t.path() / "models" / "link.onnx");
  EXPECT_THAT(Err(Manifest("link.onnx")),
              StartsWith("iris.yaml:10: spec.predictor.model.storageUri: path \"link.onnx\" "
                         "resolves (through a symbolic link) to " +
                         outside.string()));
  // A directory with no .onnx file.
  fs::create_directories(t.path() / "models" / "empty");
  EXPECT_THAT(Err(Manifest("empty"), Code::kNotFound), HasSubstr("holds 0 .onnx files"));
}

TEST_F(ManifestFixture, AnnotationsAreParsedAndValidated) {
  t.Write("m/golden/in.npy", "x");
  t.Write("m/golden/out.npy", "x");
  auto r = Parse(Manifest("iris.onnx",
                          "    outpost.io/version: \"3\"\n"
                          "    outpost.io/backend: opencl\n"
                          "    outpost.io/threads: \"2\"\n"
                          "    outpost.io/max-batch-size: \"16\"\n"
                          "    outpost.io/max-queue-delay-us: \"750\"\n"
                          "    outpost.io/queue-size: \"32\"\n"
                          "    outpost.io/timeout-ms: \"200\"\n"
                          "    outpost.io/latency-budget-ms: \"40\"\n"
                          "    outpost.io/fallback-endpoints: \"https://a.example.com/v2 , "
                          "http://10.0.0.2:8000\"\n"
                          "    outpost.io/golden-input: golden/in.npy\n"
                          "    outpost.io/golden-output: golden/out.npy\n"
                          "    prometheus.io/scrape: \"true\"\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version, "3");
  EXPECT_EQ(r->backend, "opencl");
  EXPECT_EQ(r->threads, 2);
  EXPECT_EQ(r->max_batch_size, 16);
  EXPECT_EQ(r->max_queue_delay_us, 750);
  EXPECT_EQ(r->queue_size, 32);
  EXPECT_EQ(r->timeout_ms, 200);
  EXPECT_EQ(r->latency_budget_ms, 40);
  EXPECT_EQ(r->fallback_endpoints,
            (std::vector<std::string>{"https://a.example.com/v2", "http://10.0.0.2:8000"}));
  EXPECT_EQ(r->golden_input, (t.path() / "m" / "golden" / "in.npy").string());
  EXPECT_EQ(r->golden_output, (t.path() / "m" / "golden" / "out.npy").string());
  EXPECT_EQ(r->annotations.at("prometheus.io/scrape"), "true");
}

TEST_F(ManifestFixture, AnnotationErrors) {
  // Manifest() puts "annotations:" on line 5, the annotation on line 6.
  const std::string p = "iris.yaml:6: metadata.annotations[\"outpost.io/";
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/max-batchsize: \"8\"\n")),
            p + "max-batchsize\"]: unknown outpost.io/ annotation (did you mean "
                "\"outpost.io/max-batch-size\"?)");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/max-batch-size: 8\n")),
            p + "max-batch-size\"]: Kubernetes requires a string here; quote it: \"8\"");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/max-batch-size: \"0\"\n")),
            p + "max-batch-size\"]: expected an integer in 1..65536, got \"0\"");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/threads: \"two\"\n")),
            p + "threads\"]: expected an integer in 0..1024, got \"two\"");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/backend: gpu\n")),
            p + "backend\"]: expected one of cpu, opencl, got \"gpu\" (did you mean \"cpu\"?)");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/version: \"1/2\"\n")),
            p + "version\"]: expected letters, digits, '.', '_' or '-' (it appears in URLs), "
                "got \"1/2\"");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/fallback-endpoints: \"ftp://x\"\n")),
            p + "fallback-endpoints\"]: unsupported URL scheme \"ftp\" (expected one of "
                "http://, https://)");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/fallback-endpoints: \"http://a,\"\n")),
            p + "fallback-endpoints\"]: empty entry in the comma-separated list");
  EXPECT_EQ(Err(Manifest("iris.onnx", "    outpost.io/golden-input: in.npy\n")),
            p + "golden-input\"]: outpost.io/golden-input and outpost.io/golden-output go "
                "together");
  // Any annotation value must be a string for Kubernetes, ours or not.
  EXPECT_EQ(Err(Manifest("iris.onnx", "    example.com/enabled: true\n")),
            "iris.yaml:6: metadata.annotations[\"example.com/enabled\"]: Kubernetes requires a "
            "string here; quote it: \"true\"");
}

TEST_F(ManifestFixture, GoldenPathsMayBeDirectoriesOfOneFilePerTensor) {
  t.Write("m/gin/a.npy", "x");
  t.Write("m/gin/b.pb", "x");
  t.Write("m/gout/y.npy", "x");
  auto golden = [&](const std::string& in, const std::string& out) {
    return "    outpost.io/golden-input: " + (t.path() / "m" / in).string() +
           "\n    outpost.io/golden-output: " + (t.path() / "m" / out).string() + "\n";
  };
  auto r = Parse(Manifest("iris.onnx", golden("gin", "gout")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->golden_input, (t.path() / "m" / "gin").string());
  auto files = ListGoldenFiles(r->golden_input);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].tensor, "a");
  EXPECT_EQ((*files)[1].tensor, "b");
  EXPECT_EQ((*files)[1].path, (t.path() / "m" / "gin" / "b.pb").string());

  // Annotations on lines 6 and 7.
  const std::string p = "iris.yaml:6: metadata.annotations[\"outpost.io/golden-input\"]: ";
  t.Write("m/other/a.npy", "x");
  t.Write("m/other/notes.txt", "x");
  EXPECT_EQ(Err(Manifest("iris.onnx", golden("other", "gout"))),
            p + "golden directory " + (t.path() / "m" / "other").string() +
                " holds 'notes.txt': only <tensor name>.npy or <tensor name>.pb files belong "
                "there");
  t.Write("m/twice/a.npy", "x");
  t.Write("m/twice/a.pb", "x");
  EXPECT_EQ(Err(Manifest("iris.onnx", golden("twice", "gout"))),
            p + "golden directory " + (t.path() / "m" / "twice").string() +
                " holds tensor 'a' twice (.npy and .pb)");
  fs::create_directories(t.path() / "m" / "empty");
  EXPECT_THAT(Err(Manifest("iris.onnx", golden("gin", "empty"))),
              HasSubstr("iris.yaml:7: metadata.annotations[\"outpost.io/golden-output\"]: "
                        "golden directory " +
                        (t.path() / "m" / "empty").string() + " is empty"));

  // Matching against the model's names.
  auto in = MatchGoldenInputs((t.path() / "m" / "gin").string(), {"b", "a"});
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ((*in)[0].tensor, "b");  // in the model's order
  EXPECT_THAT(MatchGoldenInputs((t.path() / "m" / "gin").string(), {"a", "c"})
                  .status()
                  .message(),
              HasSubstr("has no file for input 'c'"));
  EXPECT_THAT(MatchGoldenInputs((t.path() / "m" / "gin").string(), {"a", "b", "c"})
                  .status()
                  .message(),
              HasSubstr("no file for input 'c'"));
  EXPECT_THAT(
      MatchGoldenInputs((t.path() / "m" / "gin").string(), {"a"}).status().message(),
      HasSubstr("b.pb names no input of the model (its inputs: 'a')"));
  const std::string one = t.Write("m/one.npy", "x").string();
  EXPECT_THAT(MatchGoldenInputs(one, {"a", "b"}).status().message(),
              HasSubstr("is one file, but the model has 2 inputs"));
  auto out = MatchGoldenOutputs(one, {"y", "z"});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].tensor, "y");  // a single file is the first output
  EXPECT_THAT(MatchGoldenOutputs((t.path() / "m" / "gin").string(), {"a"})
                  .status()
                  .message(),
              HasSubstr("b.pb names no output of the model"));
}

TEST_F(ManifestFixture, StructureErrors) {
  std::string m = Manifest("iris.onnx");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = m;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_EQ(Err(with("serving.kserve.io/v1beta1", "serving.kserve.io/v1alpha1")),
            "iris.yaml:1: apiVersion: expected serving.kserve.io/v1beta1, got "
            "\"serving.kserve.io/v1alpha1\"");
  EXPECT_EQ(Err(with("kind: InferenceService", "kind: Deployment")),
            "iris.yaml:2: kind: expected InferenceService, got \"Deployment\"");
  EXPECT_EQ(Err(with("kind: InferenceService\n", "")),
            "iris.yaml:1: kind: missing; expected InferenceService");
  EXPECT_EQ(Err(with("name: iris", "name: Iris_Model")),
            "iris.yaml:4: metadata.name: expected a lowercase name of letters, digits and '-', "
            "starting with a letter, ending with a letter or digit, at most 63 characters "
            "(KServe's rule), got \"Iris_Model\"");
  EXPECT_EQ(Err(with("name: iris", "name: 1iris")).substr(0, 31),
            "iris.yaml:4: metadata.name: exp");
  EXPECT_EQ(Err(with("storageUri", "storageURI")),
            "iris.yaml:10: spec.predictor.model.storageURI: unknown key (did you mean "
            "\"storageUri\"?)");
  EXPECT_EQ(Err(with("      storageUri: iris.onnx\n", "")),
            "iris.yaml:7: spec.predictor.model.storageUri: missing; expected the model's location "
            "(a path under models.model_dir, pvc://<claim>/<path> or file:///absolute/path)");
  EXPECT_EQ(Err(with("    model:", "    modle:")),
            "iris.yaml:7: spec.predictor.modle: unknown key (did you mean \"model\"?)");
  EXPECT_EQ(Err(with("metadata:", "metdata:")),
            "iris.yaml:3: metdata: unknown key (did you mean \"metadata\"?)");
  EXPECT_EQ(Err(with("name: onnx", "name: sklearn"), Code::kUnsupported),
            "iris.yaml:9: spec.predictor.model.modelFormat.name: model format \"sklearn\" is not "
            "supported: outpostd serves ONNX models only (modelFormat.name: onnx)");
  EXPECT_EQ(Err(with("      storageUri", "      protocolVersion: v1\n      storageUri"),
                Code::kUnsupported),
            "iris.yaml:10: spec.predictor.model.protocolVersion: outpostd serves the V2 (Open "
            "Inference) protocol over HTTP only; use protocolVersion: v2 or leave it out");
  EXPECT_EQ(Err(with("spec:\n", "spec:\n  transformer:\n    containers: []\n"), Code::kUnsupported),
            "iris.yaml:6: spec.transformer: transformer components are not supported by outpostd "
            "(it serves the predictor only)");
  EXPECT_EQ(
      Err(with("    model:", "    onnx:\n      storageUri: x\n    model:"), Code::kUnsupported),
      "iris.yaml:7: spec.predictor.onnx: framework-specific predictors are not supported; "
      "use spec.predictor.model with modelFormat.name: onnx");
  EXPECT_EQ(Err(with("  name: iris\n", "  name: iris\n  name: iris2\n")),
            "iris.yaml:5: metadata.name: duplicate key (first given at line 4)");
  EXPECT_EQ(Err("- a\n"),
            "iris.yaml:1: expected a KServe InferenceService (a mapping), got a "
            "sequence");
  EXPECT_EQ(Err(""), "iris.yaml: empty manifest; expected a KServe InferenceService");
  EXPECT_THAT(Err("apiVersion: [\n"), StartsWith("iris.yaml:"));
}

TEST_F(ManifestFixture, KServeFieldsWeDoNotUseAreAccepted) {
  std::string m = Manifest("iris.onnx");
  m.replace(m.find("  name: iris\n"), 13,
            "  name: iris\n  namespace: prod\n  labels:\n    team: vision\n"
            "  creationTimestamp: null\n");
  m.replace(m.find("    model:"), 10,
            "    minReplicas: 0\n    maxReplicas: 2\n    scaleMetric: concurrency\n"
            "    batcher:\n      maxBatchSize: 32\n    serviceAccountName: sa\n"
            "    tolerations: []\n    model:");
  m.replace(m.find("      storageUri"), 16,
            "      runtime: kserve-tritonserver\n      runtimeVersion: 23.05-py3\n"
            "      env:\n      - name: A\n        value: b\n      args: [\"--x\"]\n"
            "      storageUri");
  m += "status:\n  url: http://iris.default.example.com\n";
  auto r = Parse(m);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->namespace_name, "prod");
  EXPECT_EQ(r->labels.at("team"), "vision");
  EXPECT_EQ(r->runtime, "kserve-tritonserver");
}

TEST_F(ManifestFixture, Resources) {
  std::string m = Manifest("iris.onnx");
  const std::string res =
      "      resources:\n        requests:\n          cpu: 250m\n          memory: 64Mi\n"
      "        limits:\n          cpu: 2\n          memory: 1G\n"
      "          nvidia.com/gpu: \"1\"\n          ephemeral-storage: 1Gi\n";
  auto r = Parse(m + res);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->requests.cpu_millis, 250);
  EXPECT_EQ(r->requests.memory_bytes, 67108864);
  EXPECT_EQ(r->limits.cpu_millis, 2000);
  EXPECT_EQ(r->limits.memory_bytes, 1000000000);

  EXPECT_EQ(Err(m + "      resources:\n        limits:\n          memroy: 1Gi\n"),
            "iris.yaml:13: spec.predictor.model.resources.limits.memroy: unknown resource name "
            "(Kubernetes accepts cpu, memory, ephemeral-storage, hugepages-<size> or a "
            "domain-qualified name); did you mean \"memory\"?");
  EXPECT_EQ(Err(m + "      resources:\n        limits:\n          memory: lots\n"),
            "iris.yaml:13: spec.predictor.model.resources.limits.memory: invalid quantity "
            "\"lots\" (expected a number such as 500m, 2, 512Mi or 1G)");
  EXPECT_EQ(Err(m + "      resources:\n        requests:\n          cpu: \"2\"\n"
                    "        limits:\n          cpu: 1\n"),
            "iris.yaml:13: spec.predictor.model.resources.requests.cpu: request is greater than "
            "the limit");
  EXPECT_EQ(Err(m + "      resources:\n        limit:\n          cpu: 1\n"),
            "iris.yaml:12: spec.predictor.model.resources.limit: unknown key (did you mean "
            "\"limits\"?)");
}

TEST(ManifestFiles, MissingManifestIsNotFound) {
  auto r = LoadManifest("/nonexistent/dir/iris.yaml", DefaultDeviceConfig());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("/nonexistent/dir/iris.yaml"));
}

TEST(ManifestDir, BadFilesAreReportedAndDoNotHideTheOthers) {
  TempDir t;
  t.Write("models/iris.onnx", "x");
  t.Write("models/digits.onnx", "x");
  DeviceConfig cfg;
  cfg.models.model_dir = (t.path() / "models").string();
  std::string digits = Manifest("digits.onnx");
  digits.replace(digits.find("name: iris"), 10, "name: digits");
  const fs::path a = t.Write("d/a-iris.yaml", Manifest("iris.onnx"));
  const fs::path b = t.Write("d/b-bad.yaml", "apiVersion: serving.kserve.io/v1beta1\nkind: x\n");
  const fs::path c = t.Write("d/c-iris-again.yaml", "# same name\n" + Manifest("iris.onnx"));
  t.Write("d/d-digits.yml", digits);
  t.Write("d/notes.txt", "not a manifest");
  t.Write("d/.editor-swap.yaml", "garbage: [");

  Counter& counter = MetricsRegistry::Global().GetCounter(
      "outpost_config_manifest_errors_total",
      "Model manifests rejected when loading a manifest directory");
  const uint64_t before = counter.value();
  std::vector<Status> errors;
  auto r = LoadManifestDir((t.path() / "d").string(), cfg, &errors);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "iris");
  EXPECT_EQ((*r)[0].source, a.string());
  EXPECT_EQ((*r)[1].name, "digits");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].message(), b.string() + ":2: kind: expected InferenceService, got \"x\"");
  EXPECT_EQ(errors[1].message(), c.string() +
                                     ":5: metadata.name: model \"iris\" is already "
                                     "declared in " +
                                     a.string() + ":4 (the first file in name order wins)");
  EXPECT_EQ(counter.value() - before, 2u);

  // Strict mode: the first error is the result.
  auto strict = LoadManifestDir((t.path() / "d").string(), cfg, nullptr);
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().message(), errors[0].message());
}

TEST(ManifestDir, MissingDirectoryIsNotFound) {
  auto r = LoadManifestDir("/nonexistent/manifests", DefaultDeviceConfig(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("/nonexistent/manifests"));
}

// ---------------------------------------------------------------------------------------------
// The shipped examples

DeviceConfig ExamplesConfig() {
  DeviceConfig cfg;
  cfg.models.model_dir = (SourceDir() / "tests" / "models").string();
  return cfg;
}

TEST(Examples, EveryExampleFileParses) {
  const fs::path dir = SourceDir() / "config" / "examples";
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    ++n;
    if (e.path().filename() == "device.yaml") {
      auto r = LoadDeviceConfig(e.path().string());
      EXPECT_TRUE(r.ok()) << r.status().ToString();
    } else {
      auto r = LoadManifest(e.path().string(), ExamplesConfig());
      EXPECT_TRUE(r.ok()) << r.status().ToString();
    }
  }
  EXPECT_EQ(n, 4);  // device.yaml, iris-full.yaml, manifests/{iris,digits}.yaml
}

TEST(Examples, DeviceYamlValues) {
  const fs::path p = SourceDir() / "config" / "examples" / "device.yaml";
  auto r = LoadDeviceConfig(p.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->source, p.string());
  EXPECT_EQ(r->server.listen_address, "0.0.0.0");
  EXPECT_EQ(r->server.port, 8080);
  EXPECT_EQ(r->server.io_threads, 2);
  EXPECT_EQ(r->server.max_header_bytes, 16384u);
  EXPECT_EQ(r->server.max_body_bytes, 67108864u);
  EXPECT_EQ(r->compute.threads, 4);
  EXPECT_EQ(r->compute.opencl_platform, 0);
  EXPECT_EQ(r->compute.kernel_cache_dir, "/var/cache/outpost/kernels");
  EXPECT_EQ(r->models.model_dir, "/var/lib/outpost/models");
  EXPECT_EQ(r->models.manifest_dir, "/etc/outpost/models.d");
  EXPECT_EQ(r->telemetry.broker_url, "mqtts://broker.example.com:8883");
  EXPECT_EQ(r->telemetry.tls_key_file, "/etc/outpost/tls/device.key");
  EXPECT_EQ(r->telemetry.max_bytes_logs, 32u << 20);
  EXPECT_EQ(r->telemetry.sync_interval_ms, 500);
  EXPECT_EQ(r->ota.ref, "outpost/stable/x86_64");
  EXPECT_EQ(r->ota.maintenance_start_min, 120);
  EXPECT_EQ(r->ota.maintenance_end_min, 240);
}

TEST(Examples, BundledManifestsServeIrisAndDigits) {
  const fs::path dir = SourceDir() / "config" / "examples" / "manifests";
  std::vector<Status> errors;
  auto r = LoadManifestDir(dir.string(), ExamplesConfig(), &errors);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(errors.empty()) << errors[0].ToString();
  ASSERT_EQ(r->size(), 2u);
  const ModelManifest& digits = (*r)[0];
  const ModelManifest& iris = (*r)[1];
  const fs::path models = SourceDir() / "tests" / "models";
  EXPECT_EQ(digits.name, "digits");
  EXPECT_EQ(digits.model_path, (models / "digits_cnn.onnx").lexically_normal().string());
  EXPECT_EQ(digits.max_batch_size, 16);
  EXPECT_EQ(digits.max_queue_delay_us, 2000);
  EXPECT_EQ(digits.queue_size, 64);  // device default
  EXPECT_EQ(digits.limits.cpu_millis, 2000);
  EXPECT_EQ(digits.limits.memory_bytes, 512 << 20);
  EXPECT_EQ(iris.name, "iris");
  EXPECT_EQ(iris.model_path, (models / "iris_mlp.onnx").lexically_normal().string());
  EXPECT_EQ(iris.version, "1");
  EXPECT_EQ(iris.backend, "cpu");
  EXPECT_EQ(iris.threads, 1);
  EXPECT_EQ(iris.max_batch_size, 8);
  EXPECT_EQ(iris.max_queue_delay_us, 0);
  EXPECT_EQ(iris.queue_size, 128);
  EXPECT_EQ(iris.timeout_ms, 1000);
  EXPECT_EQ(iris.requests.cpu_millis, 100);
  EXPECT_EQ(iris.requests.memory_bytes, 64 << 20);
  EXPECT_EQ(iris.limits.cpu_millis, 1000);
  EXPECT_EQ(iris.limits.memory_bytes, 256 << 20);
}

TEST(Examples, FullManifestValues) {
  const fs::path p = SourceDir() / "config" / "examples" / "iris-full.yaml";
  auto r = LoadManifest(p.string(), ExamplesConfig());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const fs::path golden = SourceDir() / "tests" / "models" / "golden" / "iris_mlp";
  EXPECT_EQ(r->name, "iris-full");
  EXPECT_EQ(r->namespace_name, "edge-models");
  EXPECT_EQ(r->format_version, "13");
  EXPECT_EQ(r->runtime, "kserve-tritonserver");
  EXPECT_EQ(r->storage_uri, "pvc://models/iris_mlp.onnx");
  EXPECT_EQ(r->model_path,
            (SourceDir() / "tests" / "models" / "iris_mlp.onnx").lexically_normal().string());
  EXPECT_EQ(r->version, "2");
  EXPECT_EQ(r->backend, "opencl");
  EXPECT_EQ(r->latency_budget_ms, 50);
  EXPECT_EQ(r->timeout_ms, 250);
  EXPECT_EQ(r->fallback_endpoints, (std::vector<std::string>{"https://inference.example.com/v2",
                                                             "https://backup.example.com/v2"}));
  EXPECT_EQ(r->golden_input, (golden / "input_0.npy").lexically_normal().string());
  EXPECT_EQ(r->golden_output, (golden / "output_0.npy").lexically_normal().string());
  EXPECT_EQ(r->annotations.at("serving.kserve.io/deploymentMode"), "RawDeployment");
  EXPECT_EQ(r->limits.memory_bytes, 1 << 30);
}

// The example manifests have the shape of a KServe v1beta1 InferenceService, read here with
// yaml-cpp directly (not through our parser). This checks the structure KServe's CRD and
// admission webhook require; it is not a validation against the CRD's OpenAPI schema (no
// cluster or CRD schema is available to the test).
TEST(Examples, ManifestsHaveKServeInferenceServiceShape) {
  const fs::path ex = SourceDir() / "config" / "examples";
  const std::regex kIsvcName("[a-z]([-a-z0-9]*[a-z0-9])?");  // KServe's name format
  const std::regex kUriScheme("\\w+?://.*");
  for (const fs::path& p :
       {ex / "manifests" / "iris.yaml", ex / "manifests" / "digits.yaml", ex / "iris-full.yaml"}) {
    SCOPED_TRACE(p.string());
    const YAML::Node n = YAML::LoadFile(p.string());
    ASSERT_TRUE(n.IsMap());
    EXPECT_EQ(n["apiVersion"].as<std::string>(), "serving.kserve.io/v1beta1");
    EXPECT_EQ(n["kind"].as<std::string>(), "InferenceService");
    const std::string name = n["metadata"]["name"].as<std::string>();
    EXPECT_TRUE(std::regex_match(name, kIsvcName) && name.size() <= 63) << name;
    // Annotations and labels are map[string]string: every value must be a quoted or plain
    // non-numeric, non-boolean string.
    for (const char* field : {"annotations", "labels"}) {
      const YAML::Node m = n["metadata"][field];
      if (!m) continue;
      ASSERT_TRUE(m.IsMap());
      for (const auto& kv : m) {
        ASSERT_TRUE(kv.second.IsScalar()) << kv.first.as<std::string>();
        if (kv.second.Tag() == "?") {
          const std::string v = kv.second.Scalar();
          EXPECT_FALSE(std::regex_match(v, std::regex("[-+]?[0-9._]+|true|false|yes|no|on|off")))
              << kv.first.as<std::string>() << " = " << v << " must be quoted";
        }
      }
    }
    const YAML::Node pred = n["spec"]["predictor"];
    ASSERT_TRUE(pred.IsMap());
    const YAML::Node model = pred["model"];
    ASSERT_TRUE(model.IsMap());
    EXPECT_EQ(model["modelFormat"]["name"].as<std::string>(), "onnx");
    ASSERT_TRUE(model["storageUri"].IsScalar());
    const std::string uri = model["storageUri"].as<std::string>();
    // KServe's validateStorageURI: a local path, or one of its supported prefixes.
    const bool local = !std::regex_search(uri, std::regex("\\w+?://"));
    const bool known_prefix = uri.rfind("pvc://", 0) == 0 || uri.rfind("file://", 0) == 0;
    EXPECT_TRUE(local || known_prefix) << uri;
    (void)kUriScheme;
    if (model["resources"]) {
      for (const char* k : {"requests", "limits"}) {
        if (!model["resources"][k]) continue;
        for (const auto& kv : model["resources"][k]) EXPECT_TRUE(kv.second.IsScalar());
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Telemetry: stream classes, MQTT version, intervals, log forwarding, input statistics (issue #5)

TEST(DeviceConfigTelemetry, Defaults) {
  const TelemetryConfig t = DefaultDeviceConfig().telemetry;
  EXPECT_EQ(t.full_policy_metrics, "drop-oldest");
  EXPECT_EQ(t.full_policy_events, "block");
  EXPECT_EQ(t.full_policy_logs, "drop-oldest");
  EXPECT_EQ(t.block_timeout_ms, 1000);
  EXPECT_EQ(t.ttl_s_metrics, 0);
  EXPECT_EQ(t.ttl_s_events, 0);
  EXPECT_EQ(t.ttl_s_logs, 0);
  EXPECT_EQ(t.mqtt_version, 5);
  EXPECT_EQ(t.max_inflight, 16);
  EXPECT_EQ(t.live_share_percent, 75);
  EXPECT_EQ(t.log_level, "warn");
  EXPECT_EQ(t.aggregate_interval_ms, 10000);
  EXPECT_FALSE(t.input_stats.enabled);
  EXPECT_EQ(t.input_stats.window_s, 60);
  EXPECT_EQ(t.input_stats.histogram_bins, 10);
  EXPECT_EQ(t.input_stats.histogram_min, 0.0);
  EXPECT_EQ(t.input_stats.histogram_max, 1.0);
  EXPECT_EQ(t.input_stats.max_features, 256);
  EXPECT_EQ(t.input_stats.sample_every, 1);
}

TEST(DeviceConfigTelemetry, EveryKeyParsed) {
  TempDir dir;
  const fs::path p = dir.Write("etc/device.yaml", R"(
telemetry:
  enabled: true
  broker_url: mqtts://broker.local:8883
  device_id: dev-7
  fleet: north
  topic_prefix: acme
  username: edge
  password_file: secrets/mqtt.pw
  tls:
    ca_file: tls/ca.pem
    cert_file: /abs/dev.pem
    key_file: tls/dev.key
  qos: 1
  keepalive_s: 30
  buffer_dir: spool
  max_bytes:
    metrics: 64Ki
    events: 2Mi
    logs: 1Gi
  full_policy:
    metrics: reject
    events: drop-oldest
    logs: block
  block_timeout_ms: 250
  ttl_s:
    metrics: 3600
    events: 0
    logs: 86400
  sync: never
  metrics_interval_ms: 1000
  aggregate_interval_ms: 500
  mqtt_version: 3.1.1
  max_inflight: 4
  live_share_percent: 0
  log_level: error
  input_stats:
    enabled: true
    window_s: 5
    histogram_bins: 20
    histogram_min: -2.5
    histogram_max: 7
    max_features: 8
    sample_every: 4
)");
  auto r = LoadDeviceConfig(p.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const TelemetryConfig& t = r->telemetry;
  const fs::path etc = dir.path() / "etc";
  EXPECT_TRUE(t.enabled);
  EXPECT_EQ(t.broker_url, "mqtts://broker.local:8883");
  EXPECT_EQ(t.device_id, "dev-7");
  EXPECT_EQ(t.fleet, "north");
  EXPECT_EQ(t.topic_prefix, "acme");
  EXPECT_EQ(t.username, "edge");
  EXPECT_EQ(t.password_file, (etc / "secrets/mqtt.pw").string());
  EXPECT_EQ(t.tls_ca_file, (etc / "tls/ca.pem").string());
  EXPECT_EQ(t.tls_cert_file, "/abs/dev.pem");
  EXPECT_EQ(t.tls_key_file, (etc / "tls/dev.key").string());
  EXPECT_EQ(t.keepalive_s, 30);
  EXPECT_EQ(t.buffer_dir, (etc / "spool").string());
  EXPECT_EQ(t.max_bytes_metrics, 65536u);
  EXPECT_EQ(t.max_bytes_events, 2u << 20);
  EXPECT_EQ(t.max_bytes_logs, 1u << 30);
  EXPECT_EQ(t.full_policy_metrics, "reject");
  EXPECT_EQ(t.full_policy_events, "drop-oldest");
  EXPECT_EQ(t.full_policy_logs, "block");
  EXPECT_EQ(t.block_timeout_ms, 250);
  EXPECT_EQ(t.ttl_s_metrics, 3600);
  EXPECT_EQ(t.ttl_s_events, 0);
  EXPECT_EQ(t.ttl_s_logs, 86400);
  EXPECT_EQ(t.sync, "never");
  EXPECT_EQ(t.sync_interval_ms, 0);
  EXPECT_EQ(t.metrics_interval_ms, 1000);
  EXPECT_EQ(t.aggregate_interval_ms, 500);
  EXPECT_EQ(t.mqtt_version, 311);
  EXPECT_EQ(t.max_inflight, 4);
  EXPECT_EQ(t.live_share_percent, 0);
  EXPECT_EQ(t.log_level, "error");
  const InputStatsConfig& s = t.input_stats;
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.window_s, 5);
  EXPECT_EQ(s.histogram_bins, 20);
  EXPECT_EQ(s.histogram_min, -2.5);
  EXPECT_EQ(s.histogram_max, 7.0);
  EXPECT_EQ(s.max_features, 8);
  EXPECT_EQ(s.sample_every, 4);
}

TEST(DeviceConfigTelemetry, MqttVersionSpellings) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, int>>{
           {"5", 5}, {"5.0", 5}, {"\"5\"", 5}, {"3.1.1", 311}, {"\"3.1.1\"", 311}, {"311", 311}}) {
    auto r = ParseDeviceConfig("telemetry:\n  mqtt_version: " + text + "\n", "device.yaml");
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(r->telemetry.mqtt_version, want) << text;
  }
}

TEST(DeviceConfigTelemetry, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(DeviceError("telemetry:\n  broker_url: mqtt://b:1883\n  tls:\n    ca_file: ca.pem\n"),
            "device.yaml:3: telemetry.tls: TLS files are set but broker_url is mqtt:// (plain "
            "TCP); use mqtts://");
  EXPECT_EQ(DeviceError("telemetry:\n  mqtt_version: 4\n"),
            "device.yaml:2: telemetry.mqtt_version: expected 5 or 3.1.1, got \"4\"");
  EXPECT_EQ(DeviceError("telemetry:\n  mqtt_version: [5]\n"),
            "device.yaml:2: telemetry.mqtt_version: expected an MQTT version (5 or 3.1.1), got a "
            "sequence");
  EXPECT_EQ(DeviceError("telemetry:\n  max_bytes:\n    events: 4Ki\n"),
            "device.yaml:3: telemetry.max_bytes.events: expected a byte size in "
            "65536..1099511627776 (an integer or a quantity such as 64Mi), got \"4Ki\"");
  EXPECT_THAT(DeviceError("telemetry:\n  full_policy:\n    events: drop-newest\n"),
              StartsWith("device.yaml:3: telemetry.full_policy.events: expected one of "
                         "drop-oldest, reject, block, got \"drop-newest\""));
  EXPECT_THAT(DeviceError("telemetry:\n  full_policy:\n    gaps: reject\n"),
              StartsWith("device.yaml:3: telemetry.full_policy.gaps: unknown key"));
  EXPECT_EQ(DeviceError("telemetry:\n  block_timeout_ms: -1\n"),
            "device.yaml:2: telemetry.block_timeout_ms: expected an integer in 0..60000, got "
            "\"-1\"");
  EXPECT_EQ(DeviceError("telemetry:\n  ttl_s:\n    logs: 1h\n"),
            "device.yaml:3: telemetry.ttl_s.logs: expected an integer in 0..316224000, got "
            "\"1h\"");
  EXPECT_EQ(DeviceError("telemetry:\n  max_inflight: 0\n"),
            "device.yaml:2: telemetry.max_inflight: expected an integer in 1..1000, got \"0\"");
  EXPECT_EQ(DeviceError("telemetry:\n  live_share_percent: 101\n"),
            "device.yaml:2: telemetry.live_share_percent: expected an integer in 0..100, got "
            "\"101\"");
  EXPECT_THAT(DeviceError("telemetry:\n  log_level: warning\n"),
              StartsWith("device.yaml:2: telemetry.log_level: expected one of trace, debug, info, "
                         "warn, error, critical, off, got \"warning\""));
  EXPECT_EQ(DeviceError("telemetry:\n  aggregate_interval_ms: 5\n"),
            "device.yaml:2: telemetry.aggregate_interval_ms: expected an integer in "
            "100..86400000, got \"5\"");
  EXPECT_EQ(DeviceError("telemetry:\n  input_stats:\n    window: 5\n"),
            "device.yaml:3: telemetry.input_stats.window: unknown key (did you mean "
            "\"window_s\"?)");
  EXPECT_EQ(DeviceError("telemetry:\n  input_stats:\n    histogram_bins: 0\n"),
            "device.yaml:3: telemetry.input_stats.histogram_bins: expected an integer in "
            "1..1000, got \"0\"");
  EXPECT_EQ(DeviceError("telemetry:\n  input_stats:\n    histogram_min: low\n"),
            "device.yaml:3: telemetry.input_stats.histogram_min: expected a number, got \"low\"");
  EXPECT_EQ(
      DeviceError("telemetry:\n  input_stats:\n    histogram_min: 2\n    histogram_max: 1\n"),
      "device.yaml:4: telemetry.input_stats.histogram_max: histogram_min must be less than "
      "histogram_max");
  EXPECT_EQ(DeviceError("telemetry:\n  input_stats:\n    histogram_min: 3\n"),
            "device.yaml:3: telemetry.input_stats.histogram_min: histogram_min must be less "
            "than histogram_max");
  EXPECT_EQ(DeviceError("telemetry:\n  input_stats:\n    sample_every: 0\n"),
            "device.yaml:3: telemetry.input_stats.sample_every: expected an integer in "
            "1..1000000, got \"0\"");
  EXPECT_EQ(DeviceError("telemetry:\n  input_stats:\n    histogram_max: .inf\n"),
            "device.yaml:3: telemetry.input_stats.histogram_max: expected a number, got "
            "\".inf\"");
  // The file name is part of every message when loading from disk.
  TempDir dir;
  const fs::path p =
      dir.Write("d.yaml", "log:\n  level: info\ntelemetry:\n  ttl_s:\n    events: -5\n");
  auto r = LoadDeviceConfig(p.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), p.string() + ":5: telemetry.ttl_s.events: expected an integer "
                                                "in 0..316224000, got \"-5\"");
}

TEST(Examples, DeviceYamlTelemetryKeys) {
  auto r = LoadDeviceConfig((SourceDir() / "config" / "examples" / "device.yaml").string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const TelemetryConfig& t = r->telemetry;
  EXPECT_EQ(t.full_policy_events, "block");
  EXPECT_EQ(t.ttl_s_metrics, 7 * 86400);
  EXPECT_EQ(t.mqtt_version, 5);
  EXPECT_EQ(t.log_level, "warn");
  EXPECT_EQ(t.aggregate_interval_ms, 10000);
  EXPECT_FALSE(t.input_stats.enabled);
  EXPECT_EQ(t.input_stats.histogram_bins, 10);
}

}  // namespace
}  // namespace outpost::config
