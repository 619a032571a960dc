// Shell helpers and a GnuPG home with signing keys, for tests of signed OSTree content
// (tests/image, tests/ota).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace outpost::testing {

struct Cmd {
  int rc;
  std::string out;  // stdout and stderr
};

inline Cmd Sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Creates `gnupg` (0700) and one ed25519 signing key per name ("NAME <NAME@test.invalid>", no
// passphrase), exports each public key to `<export_dir>/<NAME>.asc`. Returns the fingerprints in
// order, or an empty vector with `error` set.
inline std::vector<std::string> MakeSigningKeys(const std::string& gnupg,
                                                const std::string& export_dir,
                                                const std::vector<std::string>& names,
                                                std::string* error) {
  namespace fs = std::filesystem;
  fs::create_directories(gnupg);
  fs::permissions(gnupg, fs::perms::owner_all);
  std::vector<std::string> fprs;
  for (const auto& who : names) {
    Cmd c = Sh("gpg --homedir " + gnupg + " --batch --passphrase '' --quick-gen-key '" + who +
               " <" + who + "@test.invalid>' ed25519 sign never");
    Cmd fp = Sh("gpg --homedir " + gnupg + " --with-colons --list-keys '" + who +
                "' | awk -F: '/^fpr/{print $10; exit}'");
    std::string f = Trim(fp.out);
    if (c.rc != 0 || f.size() != 40 ||
        Sh("gpg --homedir " + gnupg + " --armor --export " + f + " > " + export_dir + "/" + who +
           ".asc")
                .rc != 0) {
      *error = "key generation for " + who + " failed: " + c.out + fp.out;
      return {};
    }
    fprs.push_back(f);
  }
  return fprs;
}

// Base of suites that sign: SetUpTestSuite makes /tmp/<prefix>XXXXXX (root_) holding a GnuPG
// home (gnupg_) with keys "Release" and "Other" (root_/Release.asc, root_/Other.asc);
// TearDownTestSuite stops gpg-agent and removes root_.
class SigningKeysTest : public ::testing::Test {
 protected:
  static void MakeKeys(const char* prefix) {
    std::string tmpl = std::string("/tmp/") + prefix + "XXXXXX";  // short: gpg-agent's socket
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    gnupg_ = root_ + "/g";
    std::string err;
    auto fprs = MakeSigningKeys(gnupg_, root_, {"Release", "Other"}, &err);
    ASSERT_EQ(fprs.size(), 2u) << err;
    release_fpr_ = fprs[0];
    other_fpr_ = fprs[1];
  }
  static void TearDownTestSuite() {
    Sh("gpgconf --homedir " + gnupg_ + " --kill gpg-agent");
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  static inline std::string root_, gnupg_, release_fpr_, other_fpr_;
};

}  // namespace outpost::testing
