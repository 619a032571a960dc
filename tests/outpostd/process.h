// Child processes and temp dirs for the outpostd integration tests: fork/exec written out by hand
// so that a child can get its own pid in its environment (WATCHDOG_PID, as systemd sets it), with
// stdout on a pipe (outpostd prints its port there) and stderr in a file. Every process is killed
// (SIGKILL) and reaped when its object goes away, also when a test fails half-way; PR_SET_PDEATHSIG
// kills it if the test binary itself dies.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "free_port.h"

extern char** environ;

namespace outpost::testing {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/outpostd-it-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data())) path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty() && !std::getenv("OUTPOSTD_IT_KEEP")) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }
  bool ok() const { return !path_.empty(); }

 private:
  std::string path_;
};

inline bool WriteFile(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  return static_cast<bool>(f);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A TCP port on 127.0.0.1 that was free a moment ago (tests/free_port.h).
inline uint16_t FreePort() { return FreeLoopbackPort(); }

// Finds an executable on $PATH (or an absolute path); "" when there is none.
inline std::string FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  p += ":/usr/sbin:/sbin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string f = dir + "/" + name;
    if (::access(f.c_str(), X_OK) == 0) return f;
  }
  return "";
}

struct ProcessOptions {
  std::vector<std::string> argv;       // argv[0] is the executable's path
  std::vector<std::string> env;        // "K=V" added to (and overriding) this process' environment
  std::vector<std::string> unset_env;  // names removed from the inherited environment
  bool watchdog_pid = false;   // put WATCHDOG_PID=<the child's own pid> into its environment
  std::string stderr_path;     // where its stderr goes ("" = /dev/null)
  bool capture_stdout = true;  // stdout on a pipe (ReadLine); else /dev/null
};

class Process {
 public:
  // Starts the process. nullptr (and *error) when fork or exec fails.
  static std::unique_ptr<Process> Start(const ProcessOptions& o, std::string* error = nullptr) {
    auto fail = [&](const std::string& m) -> std::unique_ptr<Process> {
      if (error) *error = m + ": " + std::strerror(errno);
      return nullptr;
    };
    // Everything the child needs is built before fork (after fork only async-signal-safe calls).
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      std::string key = kv.substr(0, kv.find('='));
      bool drop = key == "WATCHDOG_PID";
      for (const auto& u : o.unset_env) drop = drop || key == u;
      for (const auto& add : o.env) drop = drop || add.substr(0, add.find('=')) == key;
      if (!drop) env_strings.push_back(kv);
    }
    for (const auto& add : o.env) env_strings.push_back(add);
    char pid_entry[64] = "WATCHDOG_PID=";
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    if (o.watchdog_pid) envp.push_back(pid_entry);
    envp.push_back(nullptr);
    std::vector<std::string> argv_strings = o.argv;
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (argv_strings.empty()) return fail("no argv");

    int out[2] = {-1, -1};
    if (o.capture_stdout && ::pipe2(out, O_CLOEXEC) != 0) return fail("pipe2");
    const int err_fd =
        o.stderr_path.empty()
            ? ::open("/dev/null", O_WRONLY | O_CLOEXEC)
            : ::open(o.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (err_fd < 0 || null_fd < 0) return fail("open " + o.stderr_path);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return fail("fork");
    if (pid == 0) {
      // Child: only async-signal-safe calls from here on.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      if (o.watchdog_pid) {
        char digits[24];
        int n = 0;
        for (long v = ::getpid(); v > 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
        char* p = pid_entry + 13;  // after "WATCHDOG_PID="
        while (n > 0) *p++ = digits[--n];
        *p = '\0';
      }
      ::dup2(null_fd, 0);
      ::dup2(o.capture_stdout ? out[1] : null_fd, 1);
      ::dup2(err_fd, 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(err_fd);
    ::close(null_fd);
    auto p = std::unique_ptr<Process>(new Process());
    p->pid_ = pid;
    p->stderr_path_ = o.stderr_path;
    if (o.capture_stdout) {
      ::close(out[1]);
      p->out_fd_ = out[0];
    }
    return p;
  }

  ~Process() {
    Kill();
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return !status_.has_value(); }

  bool Signal(int sig) { return running() && ::kill(pid_, sig) == 0; }

  // SIGKILL and reap (no-op when it already exited).
  void Kill() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = st;
  }

  // Waits up to timeout for the process to exit; its exit code (128+signal when killed by one),
  // or nullopt while it still runs.
  std::optional<int> Wait(int timeout_ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (running()) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = st;
        break;
      }
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFEXITED(*status_)) return WEXITSTATUS(*status_);
    if (WIFSIGNALED(*status_)) return 128 + WTERMSIG(*status_);
    return -1;
  }

  // Reads one line of stdout (without the newline); nullopt on EOF or timeout.
  std::optional<std::string> ReadLine(int timeout_ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      size_t nl = out_buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = out_buf_.substr(0, nl);
        out_buf_.erase(0, nl + 1);
        return line;
      }
      if (out_fd_ < 0) return std::nullopt;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            until - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return std::nullopt;
      pollfd pfd{out_fd_, POLLIN, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(std::min<long>(left, 100)));
      if (r < 0 && errno != EINTR) return std::nullopt;
      if (r <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(out_fd_, buf, sizeof buf);
      if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        ::close(out_fd_);
        out_fd_ = -1;
        if (!out_buf_.empty()) {
          std::string line;
          line.swap(out_buf_);
          return line;
        }
        return std::nullopt;
      }
      out_buf_.append(buf, static_cast<size_t>(n));
    }
  }

  std::string Stderr() const { return stderr_path_.empty() ? "" : ReadFile(stderr_path_); }

 private:
  Process() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string out_buf_;
  std::string stderr_path_;
  std::optional<int> status_;
};

}  // namespace outpost::testing
