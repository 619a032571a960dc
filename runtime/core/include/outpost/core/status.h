// Status and Expected<T>: errors cross module boundaries as values, never as exceptions.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace outpost {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // caller gave something malformed (bad shape, bad flag, bad tensor)
  kNotFound,         // a file, model or value that does not exist
  kUnsupported,      // well-formed, but outside what this runtime implements
  kInvalidModel,     // a model that violates the ONNX spec or is hostile
  kIoError,          // the OS said no (read, write, full disk)
  kResourceExhausted,
  kInternal,         // a bug in Outpost
  kUnavailable,      // a device or service is not there right now
  kDeadlineExceeded,  // the work could not finish before its deadline
  kCancelled,         // the caller went away
};

const char* CodeName(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;
  // Returns a copy of this status with `context` prepended ("context: message").
  Status WithContext(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
inline Status InvalidModel(std::string m) { return {Code::kInvalidModel, std::move(m)}; }
inline Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Expected(Status s) : v_(std::move(s)) {      // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Expected<T> built from an OK status");
  }
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace outpost

#define OUTPOST_CONCAT_INNER(a, b) a##b
#define OUTPOST_CONCAT(a, b) OUTPOST_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when it is not OK.
#define OP_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::outpost::Status _op_st = (expr);            \
    if (!_op_st.ok()) return _op_st;              \
  } while (0)

#define OP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// `OP_ASSIGN_OR_RETURN(auto x, Foo());`
#define OP_ASSIGN_OR_RETURN(lhs, expr) \
  OP_ASSIGN_OR_RETURN_IMPL(OUTPOST_CONCAT(_op_exp_, __LINE__), lhs, expr)
