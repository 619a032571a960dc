// outpost image against real OSTree repositories and a real GnuPG home made here. What was
// committed is read back with the ostree CLI and checked against sha256sum of the inputs, never
// against our own output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/signing_keys.h"
#include "outpost/image/image.h"

namespace outpost::image {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing::Cmd;
using testing::Sh;
using testing::Trim;
std::string Sha256sum(const std::string& path) {
  Cmd c = Sh("sha256sum '" + path + "'");
  return c.out.substr(0, 64);
}

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string SourceDir() {
  const char* s = getenv("OUTPOST_SOURCE_DIR");
  return s && *s ? s : OUTPOST_SOURCE_DIR_DEFAULT;
}

std::string Models() { return SourceDir() + "/tests/models"; }

class ImageTest : public testing::SigningKeysTest {
 protected:
  static void SetUpTestSuite() {
    MakeKeys("oimg");
  }

  void SetUp() override {
    dir_ = root_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    MakeBase(dir_ + "/base");
    Write(dir_ + "/outpostd", "#!/bin/sh\necho outpostd\n");
    fs::permissions(dir_ + "/outpostd", fs::perms(0755));
  }

  // A small base rootfs: a kernel where OSTree looks, /etc, /var state, odd modes and owners.
  static void MakeBase(const std::string& b) {
    Write(b + "/usr/lib/modules/6.1.0/vmlinuz", "kernel-6.1.0");
    Write(b + "/usr/lib/modules/6.1.0/initramfs.img", "initramfs");
    Write(b + "/usr/bin/busybox", "busybox");
    fs::permissions(b + "/usr/bin/busybox", fs::perms(0700));
    Write(b + "/usr/share/secret.txt", "x");
    fs::permissions(b + "/usr/share/secret.txt", fs::perms(0600));
    (void)chown((b + "/usr/share/secret.txt").c_str(), 1234, 1234);
    fs::create_symlink("busybox", b + "/usr/bin/sh");
    Write(b + "/etc/os-release", "ID=outpost-test\n");
    Write(b + "/var/lib/dpkg/status", "state");
    fs::create_directories(b + "/boot");
  }

  // A manifest for `model` with golden files; `name` is its V2 name.
  std::string Manifest(const std::string& name, const std::string& model, const std::string& golden) {
    std::string p = dir_ + "/manifests/" + name + ".yaml";
    Write(p, "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: " +
                 name + "\n  annotations:\n    outpost.io/version: \"3\"\n"
                 "    outpost.io/golden-input: " + Models() + "/golden/" + golden + "/input_0.npy\n"
                 "    outpost.io/golden-output: '" + Models() + "/golden/" + golden +
                 "/output_0.npy'  # ORT's\nspec:\n  predictor:\n    model:\n      modelFormat:\n"
                 "        name: onnx\n      storageUri: " + model + "\n");
    return p;
  }

  BuildOptions Options(const std::string& repo, const std::string& version, int64_t ts) {
    BuildOptions o;
    o.repo = repo;
    o.ref = "outpost/test/x86_64";
    o.base_rootfs = dir_ + "/base";
    o.outpostd = dir_ + "/outpostd";
    o.systemd_dir = SourceDir() + "/runtime/outpostd/systemd";
    o.device_config = SourceDir() + "/config/examples/device.yaml";
    o.model_dir = Models();
    o.version = version;
    o.timestamp = ts;
    o.build_info = {{"git", "test"}};
    o.key = {gnupg_, release_fpr_};
    return o;
  }

  BuildOptions V1(const std::string& repo) {
    BuildOptions o = Options(repo, "1.0", 1700000000);
    o.manifests = {Manifest("iris", "iris_mlp.onnx", "iris_mlp"),
                   Manifest("digits", "digits_cnn.onnx", "digits_cnn")};
    return o;
  }

  // The next release on top of V1: version 2.0, 100 s later; the caller may change the models.
  BuildOptions V2(const std::string& repo) {
    BuildOptions o = V1(repo);
    o.version = "2.0";
    o.timestamp += 100;
    return o;
  }

  VerifyOptions Trust(const std::string& path, const std::string& who = "Release") {
    return {path, {root_ + "/" + who + ".asc"}, {}};
  }

  static std::string Ostree(const std::string& repo, const std::string& args) {
    Cmd c = Sh("ostree --repo=" + repo + " " + args);
    EXPECT_EQ(c.rc, 0) << args << ": " << c.out;
    return c.out;
  }

  std::string dir_;
};

TEST_F(ImageTest, BuildComposesSignedOsTreeAndModelRefs) {
  std::string repo = dir_ + "/repo";
  auto r = Build(V1(repo));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Trim(Ostree(repo, "rev-parse outpost/test/x86_64")), r->commit);

  std::string ls = Ostree(repo, "ls -R outpost/test/x86_64");
  EXPECT_THAT(ls, HasSubstr("-00755 0 0     24 /usr/bin/outpostd"));
  EXPECT_THAT(ls, HasSubstr("-00755 0 0      7 /usr/bin/busybox"));     // 0700 -> 0755
  EXPECT_THAT(ls, HasSubstr("-00644 0 0      1 /usr/share/secret.txt"));  // 0600, 1234 -> 0644, 0
  EXPECT_THAT(ls, HasSubstr("l00777 0 0      0 /usr/bin/sh -> busybox"));
  EXPECT_THAT(ls, HasSubstr("/usr/etc/os-release"));  // /etc moved to /usr/etc
  EXPECT_THAT(ls, ::testing::Not(HasSubstr(" /etc")));
  EXPECT_THAT(ls, HasSubstr("d00755 0 0      0 /var\n"));
  EXPECT_THAT(ls, ::testing::Not(HasSubstr("/var/lib")));
  EXPECT_THAT(ls, HasSubstr("/usr/etc/outpost/device.yaml"));
  EXPECT_THAT(ls, HasSubstr("/usr/lib/systemd/system/outpostd.service"));
  EXPECT_THAT(ls, HasSubstr("/usr/lib/systemd/system-preset/80-outpostd.preset"));
  EXPECT_THAT(ls, HasSubstr("/usr/lib/sysusers.d/outpostd.conf"));
  EXPECT_THAT(ls, HasSubstr("/usr/lib/tmpfiles.d/outpostd.conf"));
  EXPECT_THAT(ls, HasSubstr("/usr/etc/systemd/system/multi-user.target.wants/outpostd.service -> "
                            "/usr/lib/systemd/system/outpostd.service"));
  EXPECT_THAT(ls, HasSubstr("/usr/etc/outpost/models.d/digits.yaml"));
  EXPECT_EQ(Ostree(repo, "cat outpost/test/x86_64 /usr/etc/outpost/device.yaml"),
            Sh("cat " + SourceDir() + "/config/examples/device.yaml").out);

  // Metadata, read back by ostree and compared with sha256sum of the inputs.
  auto key = [&](const std::string& k) {
    return Trim(Ostree(repo, "show --print-metadata-key=" + k + " outpost/test/x86_64"));
  };
  EXPECT_EQ(key("version"), "'1.0'");
  EXPECT_EQ(key("outpost.kind"), "'os'");
  EXPECT_EQ(key("ostree.linux"), "'6.1.0'");
  EXPECT_EQ(key("outpost.runtime.abi"), "uint32 1");
  EXPECT_EQ(key("outpost.outpostd.sha256"), "'" + Sha256sum(dir_ + "/outpostd") + "'");
  std::string digits_sha = Sha256sum(Models() + "/digits_cnn.onnx");
  std::string iris_sha = Sha256sum(Models() + "/iris_mlp.onnx");
  EXPECT_EQ(key("outpost.models"), "[('digits', '3', '" + digits_sha + "', uint64 56873), ('iris', '3', '" +
                                       iris_sha + "', 2430)]");
  EXPECT_EQ(key("outpost.build"), "{'git': 'test', 'timestamp': '1700000000', 'tool': 'outpost image 0.1.0'}");
  EXPECT_EQ(key("ostree.ref-binding"), "['outpost/test/x86_64']");
  EXPECT_THAT(Ostree(repo, "show outpost/test/x86_64"), HasSubstr("Date:  2023-11-14 22:13:20 +0000"));
  // Signed: ostree itself checks the signature against the exported key (through a remote that
  // holds only that key).
  Ostree(repo, "remote add --set=gpg-verify=true self file://" + repo);
  Ostree(repo, "remote gpg-import self -k " + root_ + "/Release.asc");
  EXPECT_THAT(Ostree(repo, "show --gpg-verify-remote=self outpost/test/x86_64"),
              HasSubstr("Good signature from \"Release <Release@test.invalid>\""));

  // Each model alone on its ref: the ONNX file, its manifest, golden tensors.
  ASSERT_EQ(r->models.size(), 2u);
  for (auto [name, file, golden] : {std::tuple{"digits", "digits_cnn.onnx", "digits_cnn"},
                                    std::tuple{"iris", "iris_mlp.onnx", "iris_mlp"}}) {
    std::string ref = std::string("outpost/test/models/") + name;
    std::string mls = Ostree(repo, "ls -R " + ref);
    for (const char* f : {"/model.onnx", "/manifest.yaml", "/golden/input.npy", "/golden/output.npy"})
      EXPECT_THAT(mls, HasSubstr(f)) << ref;
    std::string sum = Sh("ostree --repo=" + repo + " cat " + ref + " /model.onnx | sha256sum").out;
    EXPECT_EQ(sum.substr(0, 64), Sha256sum(Models() + "/" + file)) << ref;
    sum = Sh("ostree --repo=" + repo + " cat " + ref + " /golden/output.npy | sha256sum").out;
    EXPECT_EQ(sum.substr(0, 64), Sha256sum(Models() + "/golden/" + golden + "/output_0.npy"));
    EXPECT_EQ(Trim(Ostree(repo, "show --print-metadata-key=outpost.model.sha256 " + ref)),
              "'" + Sha256sum(Models() + "/" + file) + "'");
    std::string manifest = Ostree(repo, "cat " + ref + " /manifest.yaml");
    EXPECT_THAT(manifest, HasSubstr("storageUri: \"model.onnx\""));
    EXPECT_THAT(manifest, HasSubstr("outpost.io/golden-output: \"golden/output.npy\"  # ORT's"));
  }
  EXPECT_EQ(Trim(Ostree(repo, "cat outpost/test/x86_64 /usr/lib/outpost/models/iris/manifest.yaml")),
            Trim(Ostree(repo, "cat outpost/test/models/iris /manifest.yaml")));
  EXPECT_THAT(Ostree(repo, "cat outpost/test/x86_64 /usr/etc/outpost/models.d/iris.yaml"),
              HasSubstr("storageUri: \"/usr/lib/outpost/models/iris/model.onnx\""));
}

TEST_F(ImageTest, SameInputsGiveSameChecksumInFreshRepos) {
  auto a = Build(V1(dir_ + "/a"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  // Same content elsewhere, copied later (other mtimes, other owner and modes of the copy).
  ASSERT_EQ(Sh("cp -r " + dir_ + "/base " + dir_ + "/base2 && chmod 0640 " + dir_ +
               "/base2/usr/share/secret.txt && touch -d 2001-01-01 " + dir_ + "/base2/usr/bin/busybox").rc, 0);
  BuildOptions o = V1(dir_ + "/b");
  o.base_rootfs = dir_ + "/base2";
  auto b = Build(o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(Trim(Ostree(dir_ + "/a", "rev-parse outpost/test/x86_64")),
            Trim(Ostree(dir_ + "/b", "rev-parse outpost/test/x86_64")));
  for (const char* m : {"outpost/test/models/iris", "outpost/test/models/digits"})
    EXPECT_EQ(Ostree(dir_ + "/a", std::string("rev-parse ") + m),
              Ostree(dir_ + "/b", std::string("rev-parse ") + m));
  // And the checksum does depend on the inputs.
  BuildOptions later = V1(dir_ + "/c");
  later.timestamp += 1;
  auto c = Build(later);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->commit, a->commit);
}

TEST_F(ImageTest, VerifyAcceptsSignedRepo) {
  std::string repo = dir_ + "/repo";
  ASSERT_TRUE(Build(V1(repo)).ok());
  auto v = Verify(Trust(repo));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->refs.size(), 3u);
  for (const auto& r : v->refs) {
    EXPECT_THAT(r.signed_by, ::testing::ElementsAre(release_fpr_)) << r.ref;
    EXPECT_EQ(r.commit, Trim(Ostree(repo, "rev-parse " + r.ref)));
  }
  EXPECT_EQ(v->refs[2].ref, "outpost/test/x86_64");
  EXPECT_EQ(v->refs[2].kind, "os");
  EXPECT_EQ(v->refs[2].models.size(), 2u);
  Cmd cli = Sh(std::string(OUTPOST_CLI) + " image verify " + repo + " --trusted-key " + root_ +
               "/Release.asc");
  EXPECT_EQ(cli.rc, 0) << cli.out;
  EXPECT_THAT(cli.out, HasSubstr("ok os outpost/test/x86_64"));
}

TEST_F(ImageTest, VerifyRefusesUnsignedCommits) {
  // Built unsigned: nothing is signed, the summary included.
  BuildOptions o = V1(dir_ + "/unsigned");
  o.sign = false;
  ASSERT_TRUE(Build(o).ok());
  auto v = Verify(Trust(dir_ + "/unsigned"));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("summary of '" + dir_ + "/unsigned' is not signed"));

  // A signed repo where someone added an unsigned commit and re-signed the summary.
  std::string repo = dir_ + "/repo";
  ASSERT_TRUE(Build(V1(repo)).ok());
  Write(dir_ + "/evil/usr/bin/outpostd", "evil");
  Ostree(repo, "commit -b outpost/test/x86_64 --tree=dir=" + dir_ + "/evil");
  Ostree(repo, "summary -u --gpg-sign=" + release_fpr_ + " --gpg-homedir=" + gnupg_);
  std::string evil = Trim(Ostree(repo, "rev-parse outpost/test/x86_64"));
  v = Verify(Trust(repo));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(),
              HasSubstr("ref 'outpost/test/x86_64' (commit " + evil + "): not signed"));
  Cmd cli = Sh(std::string(OUTPOST_CLI) + " image verify " + repo + " --trusted-key " + root_ +
               "/Release.asc");
  EXPECT_EQ(cli.rc, 1);
  EXPECT_THAT(cli.out, HasSubstr("not signed"));
}

TEST_F(ImageTest, VerifyRefusesTamperedObject) {
  std::string repo = dir_ + "/repo";
  ASSERT_TRUE(Build(V1(repo)).ok());
  // The content object of the digits model inside the OS tree (`ls -C` prints its checksum).
  std::string line = Ostree(repo, "ls -C outpost/test/x86_64 /usr/lib/outpost/models/digits/model.onnx");
  std::istringstream ls(line);
  std::string mode, uid, gid, size, csum;
  ls >> mode >> uid >> gid >> size >> csum;
  ASSERT_EQ(csum.size(), 64u) << line;
  std::string obj = repo + "/objects/" + csum.substr(0, 2) + "/" + csum.substr(2) + ".filez";
  ASSERT_TRUE(fs::exists(obj));
  {
    std::fstream f(obj, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(obj) / 2));
    f.put('\x5a');
  }
  auto v = Verify(Trust(repo));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("object " + csum + ".file is corrupt"));
}

TEST_F(ImageTest, VerifyRefusesWrongKey) {
  std::string repo = dir_ + "/repo";
  ASSERT_TRUE(Build(V1(repo)).ok());
  auto v = Verify(Trust(repo, "Other"));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("no valid signature by a trusted key"));
  EXPECT_THAT(v.status().message(), HasSubstr("public key not found"));
  // libostree also trusts its global keyring; a signature by a key only known there is refused.
  std::string global = dir_ + "/global";
  fs::create_directories(global);
  ASSERT_EQ(Sh("gpg --homedir " + gnupg_ + " --export " + release_fpr_ + " > " + global +
               "/release.gpg").rc, 0);
  setenv("OSTREE_GPG_HOME", global.c_str(), 1);
  v = Verify(Trust(repo, "Other"));
  unsetenv("OSTREE_GPG_HOME");
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(),
              HasSubstr("signed only by key " + release_fpr_ + ", which is not among the trusted keys"));
  // No key at all is a usage problem, not a pass.
  v = Verify({repo, {}, {}});
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("no trusted keys"));
}

TEST_F(ImageTest, VerifyRefusesRefMovedAfterSigning) {
  std::string repo = dir_ + "/repo";
  auto v1 = Build(V1(repo));
  ASSERT_TRUE(v1.ok());
  auto v2 = Build(V2(repo));
  ASSERT_TRUE(v2.ok());
  // A downgrade: the ref pointed back at the older (signed) commit.
  Ostree(repo, "refs --force --create=outpost/test/x86_64 " + v1->commit);
  auto v = Verify(Trust(repo));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(),
              HasSubstr("ref 'outpost/test/x86_64' points to " + v1->commit +
                        " but the signed summary says " + v2->commit));
}

// A model "retrained" from scratch, the worst case for a delta: every byte past the first KiB
// (the weights of digits_cnn.onnx) re-drawn at random. Same size, nothing in common.
void Retrain(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(in)), {});
  uint32_t x = 2463534242u;
  for (size_t i = 1024; i + 4 <= b.size(); i += 4) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    for (int k = 0; k < 4; ++k) b[i + k] = static_cast<char>((x >> (8 * k)) & 0xff);
  }
  Write(to, b);
}

TEST_F(ImageTest, StaticDeltasExistAndApplyOffline) {
  std::string repo = dir_ + "/repo";
  auto v1 = Build(V1(repo));
  ASSERT_TRUE(v1.ok());
  BuildOptions o = V2(repo);
  Retrain(Models() + "/digits_cnn.onnx", dir_ + "/digits_v2.onnx");
  o.manifests[1] = Manifest("digits", dir_ + "/digits_v2.onnx", "digits_cnn");
  auto v2 = Build(o);
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(Trim(Ostree(repo, "rev-parse outpost/test/x86_64^")), v1->commit);  // parent
  std::string deltas = Ostree(repo, "static-delta list");
  EXPECT_THAT(deltas, HasSubstr(v1->commit + "-" + v2->commit));
  EXPECT_THAT(deltas, HasSubstr(v2->commit + "\n"));  // from empty

  // The unchanged model keeps its commit; the changed one gets a child of the old one.
  EXPECT_FALSE(v2->models[1].new_commit);
  EXPECT_EQ(v2->models[1].commit, v1->models[1].commit);
  EXPECT_TRUE(v2->models[0].new_commit);
  EXPECT_EQ(Trim(Ostree(repo, "rev-parse outpost/test/models/digits^")), v1->models[0].commit);

  // USB bundle: verified offline, then applied offline into fresh repos by ostree itself.
  std::string usb = dir_ + "/usb";
  auto bd = MakeBundle({repo, {}, usb, 2, {gnupg_, release_fpr_}});
  ASSERT_TRUE(bd.ok()) << bd.status().ToString();
  auto vb = Verify(Trust(usb));
  ASSERT_TRUE(vb.ok()) << vb.status().ToString();
  EXPECT_TRUE(vb->bundle);
  // OS and digits: from v1 and from empty; iris (one commit): from empty.
  EXPECT_EQ(vb->deltas.size(), 5u);
  std::string from_empty, from_v1;
  for (const auto& e : fs::directory_iterator(usb + "/deltas")) {
    std::string n = e.path().filename().string();
    if (n.rfind("outpost_test_x86_64_empty_", 0) == 0) from_empty = e.path();
    if (n.rfind("outpost_test_x86_64_" + v1->commit.substr(0, 12), 0) == 0) from_v1 = e.path();
  }
  ASSERT_FALSE(from_empty.empty());
  ASSERT_FALSE(from_v1.empty());
  std::string fresh = dir_ + "/fresh";
  Ostree(fresh, "init --mode=archive");
  Ostree(fresh, "static-delta apply-offline " + from_empty);
  EXPECT_EQ(Trim(Ostree(fresh, "cat " + v2->commit + " /usr/etc/os-release")), "ID=outpost-test");
  Ostree(fresh, "fsck");
  // v1 -> v2 on a repo that holds v1 only (as a device would).
  std::string dev = dir_ + "/device";
  Ostree(dev, "init --mode=bare");  // as a sysroot's repo (2022.7 cannot apply this into archive)
  Ostree(repo, "static-delta generate --empty --to=" + v1->commit +
                   " --inline --min-fallback-size=0 --filename=" + dir_ + "/v1.delta");
  Ostree(dev, "static-delta apply-offline " + dir_ + "/v1.delta");
  Ostree(dev, "static-delta apply-offline " + from_v1);
  std::string sum = Sh("ostree --repo=" + dev + " cat " + v2->commit +
                       " /usr/lib/outpost/models/digits/model.onnx | sha256sum").out;
  EXPECT_EQ(sum.substr(0, 64), Sha256sum(dir_ + "/digits_v2.onnx"));
  Ostree(dev, "fsck");

  // The bundle's repo as a GPG-verified remote (summary and commit signatures checked by ostree).
  std::string puller = dir_ + "/puller";
  Ostree(puller, "init --mode=bare");
  Ostree(puller, "remote add --set=gpg-verify=true --set=gpg-verify-summary=true usb file://" +
                     usb + "/repo");
  Ostree(puller, "remote gpg-import usb -k " + root_ + "/Release.asc");
  Ostree(puller, "pull usb outpost/test/x86_64 outpost/test/models/digits");
  EXPECT_EQ(Trim(Ostree(puller, "rev-parse usb:outpost/test/x86_64")), v2->commit);

  // The one-model update through the static delta, against the changed model's bytes.
  uint64_t model_bytes = fs::file_size(dir_ + "/digits_v2.onnx");
  uint64_t delta_bytes = 0, file_bytes = fs::file_size(from_v1);
  for (const auto& d : v2->deltas)
    if (d.ref == "outpost/test/x86_64" && d.from == v1->commit) delta_bytes = d.bytes;
  std::printf("one-model update (digits, retrained): model %llu bytes, OS static delta v1->v2 "
              "%llu bytes in the repo (%.3fx), %llu bytes as one file (%.3fx)\n",
              static_cast<unsigned long long>(model_bytes),
              static_cast<unsigned long long>(delta_bytes), double(delta_bytes) / model_bytes,
              static_cast<unsigned long long>(file_bytes), double(file_bytes) / model_bytes);
  RecordProperty("model_bytes", std::to_string(model_bytes));
  RecordProperty("delta_bytes", std::to_string(delta_bytes));
  EXPECT_GT(delta_bytes, 0u);
  EXPECT_LE(double(delta_bytes), 1.1 * model_bytes);
  EXPECT_LE(double(file_bytes), 1.1 * model_bytes);

  // A corrupted delta file on the stick is named.
  {
    std::fstream f(from_v1, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x01');
  }
  auto bad = Verify(Trust(usb));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr(fs::path(from_v1).filename().string() + "' is corrupt"));
}

TEST_F(ImageTest, OpsetOnlyModelChangeDelta) {
  // The committed pair digits_cnn / digits_cnn_opset17 (2 bytes apart): bsdiff makes it tiny.
  std::string repo = dir_ + "/repo";
  auto v1 = Build(V1(repo));
  ASSERT_TRUE(v1.ok());
  BuildOptions o = V2(repo);
  o.manifests[1] = Manifest("digits", "digits_cnn_opset17.onnx", "digits_cnn_opset17");
  auto v2 = Build(o);
  ASSERT_TRUE(v2.ok());
  uint64_t model_bytes = fs::file_size(Models() + "/digits_cnn_opset17.onnx"), delta_bytes = 0;
  for (const auto& d : v2->deltas)
    if (d.ref == "outpost/test/x86_64" && d.from == v1->commit) delta_bytes = d.bytes;
  std::printf("one-model update (digits opset 13 -> 17): model %llu bytes, OS delta %llu bytes\n",
              static_cast<unsigned long long>(model_bytes),
              static_cast<unsigned long long>(delta_bytes));
  EXPECT_GT(delta_bytes, 0u);
  EXPECT_LE(double(delta_bytes), 1.1 * model_bytes);
}

TEST_F(ImageTest, BadInputsGiveClearErrors) {
  std::string repo = dir_ + "/repo";
  BuildOptions o = V1(repo);
  o.base_rootfs = dir_ + "/nope";
  auto r = Build(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("base rootfs not found: '" + dir_ + "/nope'"));

  o = V1(repo);
  o.manifests = {Manifest("ghost", "ghost.onnx", "iris_mlp")};
  r = Build(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("ghost.onnx"));

  o = V1(repo);
  Write(dir_ + "/bad.yaml", "server:\n  prot: 80\n");
  o.device_config = dir_ + "/bad.yaml";
  r = Build(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("bad.yaml:2: server.prot: unknown key"));

  o = V1(repo);
  Write(dir_ + "/nogolden.yaml", "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        "metadata:\n  name: plain\nspec:\n  predictor:\n    model:\n      modelFormat:\n"
        "        name: onnx\n      storageUri: iris_mlp.onnx\n");
  o.manifests = {dir_ + "/nogolden.yaml"};
  r = Build(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("model 'plain' has no outpost.io/golden-input"));

  o = V1(repo);
  o.timestamp = -1;
  r = Build(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("SOURCE_DATE_EPOCH"));

  o = V1(repo);
  fs::remove_all(dir_ + "/base/usr/lib/modules");
  r = Build(o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("has no kernel"));
  EXPECT_FALSE(fs::exists(repo + "/refs/heads/outpost")) << "nothing committed on failure";

  auto v = Verify(Trust(dir_ + "/nothing"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Code::kNotFound);
}

TEST_F(ImageTest, CliUsageErrorsExit2) {
  std::string cli = OUTPOST_CLI;
  EXPECT_EQ(Sh(cli + " image").rc, 2);
  EXPECT_EQ(Sh(cli + " image frob").rc, 2);
  for (const char* sub : {"build", "bundle", "verify"}) {
    Cmd h = Sh(cli + " image " + sub + " --help");
    EXPECT_EQ(h.rc, 0) << sub;
    EXPECT_THAT(h.out, HasSubstr(std::string("usage: outpost image ") + sub));
  }
  Cmd c = Sh(cli + " image build --repo " + dir_ + "/r");
  EXPECT_EQ(c.rc, 2);
  EXPECT_THAT(c.out, HasSubstr("missing --ref"));
  c = Sh(cli + " image verify " + dir_);
  EXPECT_EQ(c.rc, 2);
  EXPECT_THAT(c.out, HasSubstr("missing --trusted-key"));
  c = Sh(cli + " image build --repo r --ref a --base b --outpostd o --systemd-dir s --config c "
               "--version 1 --unsigned --timestamp soon");
  EXPECT_EQ(c.rc, 2);
  // The CLI end to end: a signed build, then a bad base named in the error (exit 1).
  std::string base = cli + " image build --repo " + dir_ + "/r --ref outpost/cli/x86_64 --outpostd " +
                     dir_ + "/outpostd --systemd-dir " + SourceDir() + "/runtime/outpostd/systemd " +
                     "--config " + SourceDir() + "/config/examples/device.yaml --version 7 " +
                     "--gpg-homedir " + gnupg_ + " --gpg-key " + release_fpr_;
  c = Sh("SOURCE_DATE_EPOCH=1700000000 " + base + " --base " + dir_ + "/base");
  EXPECT_EQ(c.rc, 0) << c.out;
  EXPECT_THAT(c.out, HasSubstr("os outpost/cli/x86_64 " +
                               Trim(Ostree(dir_ + "/r", "rev-parse outpost/cli/x86_64"))));
  c = Sh("SOURCE_DATE_EPOCH=1700000000 " + base + " --base " + dir_ + "/missing");
  EXPECT_EQ(c.rc, 1);
  EXPECT_THAT(c.out, HasSubstr("base rootfs not found"));
}

}  // namespace
}  // namespace outpost::image
