// Pieces shared by the OTA tests that deploy: a fake sysroot as ostree's own tests make it, a
// small base OS tree, and the deployed commits as `ostree admin status` (the independent view)
// lists them.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/signing_keys.h"
#include "file_server.h"
#include "outpost/image/image.h"

namespace outpost::testing {

inline void WriteFile(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// A base rootfs with a kernel (what `outpost image build` needs) and an /etc.
inline void MakeBaseTree(const std::string& base) {
  WriteFile(base + "/usr/lib/modules/6.1.0/vmlinuz", "kernel-6.1.0");
  WriteFile(base + "/usr/lib/modules/6.1.0/initramfs.img", "initramfs");
  WriteFile(base + "/etc/os-release", "ID=outpost-test\n");
}

// `ostree admin init-fs` + `os-init NAME` + a stub syslinux config. Empty, or what failed.
inline std::string MakeFakeSysroot(const std::string& sysroot, const std::string& osname) {
  std::filesystem::create_directories(sysroot);
  for (std::string c :
       {"ostree admin init-fs " + sysroot,
        "ostree admin os-init --sysroot=" + sysroot + " " + osname,
        "mkdir -p " + sysroot + "/boot/loader.0 " + sysroot + "/boot/syslinux",
        "ln -s loader.0 " + sysroot + "/boot/loader",
        "touch " + sysroot + "/boot/loader/syslinux.cfg",
        "ln -s ../loader/syslinux.cfg " + sysroot + "/boot/syslinux/syslinux.cfg"}) {
    Cmd r = Sh(c);
    if (r.rc != 0) return c + ": " + r.out;
  }
  return "";
}

// Deployed commits of stateroot "outpost", bootloader order, parsed from `ostree admin status`
// (its output in *out).
inline std::vector<std::string> AdminStatusCommits(const std::string& sysroot, Cmd* out) {
  *out = Sh("ostree admin status --sysroot=" + sysroot);
  std::vector<std::string> commits;
  std::istringstream in(out->out);
  std::string line;
  while (std::getline(in, line)) {
    auto p = line.find("outpost ");
    if (p != std::string::npos && line.find("origin") == std::string::npos)
      commits.push_back(line.substr(p + 8, 64));
  }
  return commits;
}

// Changes one byte in the middle of the object of file `path` in `rev` of the archive repo
// `repo`, removes the static deltas (which would carry the good bytes, so that the object itself
// is fetched) and signs the summary again with `fpr`. Empty, or what failed.
inline std::string TamperObject(const std::string& repo, const std::string& rev,
                                const std::string& path, const std::string& gnupg,
                                const std::string& fpr) {
  namespace fs = std::filesystem;
  Cmd ls = Sh("ostree --repo=" + repo + " ls -C " + rev + " " + path);
  if (ls.rc != 0) return ls.out;
  std::istringstream in(ls.out);
  std::string mode, uid, gid, size, csum;
  in >> mode >> uid >> gid >> size >> csum;
  if (csum.size() != 64u) return "no checksum in: " + ls.out;
  std::string obj = repo + "/objects/" + csum.substr(0, 2) + "/" + csum.substr(2) + ".filez";
  if (!fs::exists(obj)) return obj + " does not exist";
  {
    std::fstream f(obj, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(obj) / 2));
    f.put('\x5a');
  }
  fs::remove_all(repo + "/deltas");
  fs::remove_all(repo + "/delta-indexes");
  Cmd sum =
      Sh("ostree --repo=" + repo + " summary -u --gpg-sign=" + fpr + " --gpg-homedir=" + gnupg);
  return sum.rc == 0 ? "" : sum.out;
}

// Base of the suites that deploy releases: per test `dir_` (under the suite's key dir) holding
// base/ (MakeBaseTree), an `outpostd` script (v1's, 0755), srv/ served over loopback HTTP by
// `server_`, and the fake sysroot `sysroot_` (stateroot "outpost").
class FakeSysrootTest : public SigningKeysTest {
 protected:
  static void SetUpSuite(const char* key_prefix) {
    setenv("OSTREE_SYSROOT_DEBUG", "mutable-deployments", 1);
    setenv("OSTREE_SKIP_CACHE", "1", 1);
    MakeKeys(key_prefix);
  }
  void SetUp() override {
    namespace fs = std::filesystem;
    dir_ = root_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/srv");
    MakeBaseTree(dir_ + "/base");
    WriteFile(dir_ + "/outpostd", "#!/bin/sh\necho v1\n");
    fs::permissions(dir_ + "/outpostd", fs::perms(0755));
    server_ = std::make_unique<FileServer>(dir_ + "/srv");
    sysroot_ = dir_ + "/sysroot";
    std::string err = MakeFakeSysroot(sysroot_, "outpost");
    ASSERT_EQ(err, "");
  }
  void TearDown() override { server_.reset(); }

  // A release of ref outpost/test/x86_64 into srv/repo, signed by "Release", without models.
  image::BuildOptions Release(const std::string& version, int64_t ts) {
    image::BuildOptions o;
    o.repo = dir_ + "/srv/repo";
    o.ref = "outpost/test/x86_64";
    o.base_rootfs = dir_ + "/base";
    o.outpostd = dir_ + "/outpostd";
    o.systemd_dir = SourceDir() + "/runtime/outpostd/systemd";
    o.device_config = SourceDir() + "/config/examples/device.yaml";
    o.version = version;
    o.timestamp = ts;
    o.key = {gnupg_, release_fpr_};
    return o;
  }
  static std::string SourceDir() {
    const char* s = getenv("OUTPOST_SOURCE_DIR");
    return s && *s ? s : OUTPOST_SOURCE_DIR_DEFAULT;
  }
  std::string Build(const image::BuildOptions& o) {
    auto r = image::Build(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->commit : "";
  }
  // Deployed commits, bootloader order, as `ostree admin status` lists them.
  std::vector<std::string> StatusCommits() {
    Cmd c;
    auto commits = AdminStatusCommits(sysroot_, &c);
    EXPECT_EQ(c.rc, 0) << c.out;
    return commits;
  }

  std::string dir_, sysroot_;
  std::unique_ptr<FileServer> server_;
};

}  // namespace outpost::testing
