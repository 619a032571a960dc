// String ops: StringNormalizer, StringConcat, StringSplit, RegexFullMatch (std::regex ECMAScript).
#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

std::string ChangeCase(const std::string& s, bool upper) {
  std::string r = s;
  for (char& c : r)
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  return r;
}

Status StringNormalizerKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || ctx.input(0).dtype() != DataType::kString)
    return ctx.Fail("input must be a string tensor");
  const Tensor& x = ctx.input(0);
  if (x.rank() != 1 && !(x.rank() == 2 && x.dim(0) == 1))
    return ctx.Fail("input must be [C] or [1, C]");
  const std::string action = ctx.attrs().String("case_change_action", "NONE");
  if (action != "NONE" && action != "LOWER" && action != "UPPER")
    return ctx.Fail("bad case_change_action " + action);
  const bool sensitive = ctx.attrs().Int("is_case_sensitive", 0) != 0;
  std::set<std::string> stop;
  for (const std::string& w : ctx.attrs().Strings("stopwords"))
    stop.insert(sensitive ? w : ChangeCase(w, false));
  if (ctx.infer_only()) {
    if (!stop.empty() || x.numel() == 0) return ctx.DataDependent();
    return ctx.Output(0, DataType::kString, x.shape()).status();
  }
  std::vector<std::string> kept;
  for (const std::string& s : x.span<std::string>()) {
    if (stop.count(sensitive ? s : ChangeCase(s, false))) continue;
    kept.push_back(action == "NONE" ? s : ChangeCase(s, action == "UPPER"));
  }
  if (kept.empty()) kept.push_back("");
  const int64_t n = static_cast<int64_t>(kept.size());
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kString,
                                            x.rank() == 1 ? Shape{n} : Shape{1, n}));
  if (y) std::copy(kept.begin(), kept.end(), y->data<std::string>());
  return Status::Ok();
}

Status StringConcatKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing input");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != DataType::kString || b.dtype() != DataType::kString)
    return ctx.Fail("inputs must be strings");
  const Shape shapes[2] = {a.shape(), b.shape()};
  OP_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(ctx, shapes));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kString, out));
  if (ctx.infer_only() || !y) return Status::Ok();
  BroadcastIndexer ia(a.shape(), out), ib(b.shape(), out);
  for (int64_t i = 0; i < out.numel(); ++i)
    y->data<std::string>()[i] = a.data<std::string>()[ia.Offset(i)] + b.data<std::string>()[ib.Offset(i)];
  return Status::Ok();
}

// Python str.split semantics: with a delimiter, exact splits; without, runs of whitespace.
std::vector<std::string> Split(const std::string& s, const std::string& delim, int64_t maxsplit) {
  std::vector<std::string> parts;
  int64_t splits = 0;
  if (delim.empty()) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && splits == maxsplit) {
        size_t e = s.find_last_not_of(" \t\n\r\f\v");
        parts.push_back(s.substr(i, e + 1 - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      parts.push_back(s.substr(i, j - i));
      ++splits;
      i = j;
    }
    return parts;
  }
  size_t p = 0;
  while (true) {
    size_t q = (maxsplit >= 0 && splits == maxsplit) ? std::string::npos : s.find(delim, p);
    if (q == std::string::npos) {
      parts.push_back(s.substr(p));
      break;
    }
    parts.push_back(s.substr(p, q - p));
    ++splits;
    p = q + delim.size();
  }
  return parts;
}

Status StringSplitKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || ctx.input(0).dtype() != DataType::kString)
    return ctx.Fail("input must be a string tensor");
  const Tensor& x = ctx.input(0);
  if (ctx.infer_only()) return ctx.DataDependent();
  const std::string delim = ctx.attrs().String("delimiter", "");
  const int64_t maxsplit = ctx.attrs().Int("maxsplit", -1);
  std::vector<std::vector<std::string>> all(x.numel());
  int64_t width = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    all[i] = Split(x.data<std::string>()[i], delim, maxsplit);
    width = std::max<int64_t>(width, static_cast<int64_t>(all[i].size()));
  }
  Shape ys = x.shape();
  ys.push_back(width);
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kString, ys));
  OP_ASSIGN_OR_RETURN(Tensor* z, ctx.Output(1, DataType::kInt64, x.shape()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (z) z->data<int64_t>()[i] = static_cast<int64_t>(all[i].size());
    if (!y) continue;
    for (int64_t k = 0; k < width; ++k)
      y->data<std::string>()[i * width + k] =
          k < static_cast<int64_t>(all[i].size()) ? all[i][k] : std::string();
  }
  return Status::Ok();
}

Status RegexFullMatchKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || ctx.input(0).dtype() != DataType::kString)
    return ctx.Fail("input must be a string tensor");
  const std::string pattern = ctx.attrs().String("pattern", "");
  // The op is specified with RE2 syntax; std::regex (ECMAScript) covers the common subset.
  // Refuse RE2-only constructs up front.
  for (const char* re2_only : {"(?P<", "(?i", "(?s", "(?m", "\\p{", "\\P{", "[[:", "\\C", "\\z"})
    if (pattern.find(re2_only) != std::string::npos)
      return ctx.NotSupported("RE2 syntax in pattern: " + std::string(re2_only));
  // std::regex reports bad patterns (and runaway matches) only by throwing: this is the one
  // place we catch, turning it into a status so a model can never crash the runtime.
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return ctx.NotSupported("pattern std::regex cannot parse: " + pattern);
  }
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kBool, ctx.input(0).shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  try {
    for (int64_t i = 0; i < ctx.input(0).numel(); ++i)
      y->data<bool>()[i] = std::regex_match(ctx.input(0).data<std::string>()[i], re);
  } catch (const std::regex_error& e) {
    return ctx.BadInput(std::string("regex match failed: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(StringNormalizer, "", 10, 25, StringNormalizerKernel);
OUTPOST_REGISTER_OP(StringConcat, "", 20, 25, StringConcatKernel);
OUTPOST_REGISTER_OP(StringSplit, "", 20, 25, StringSplitKernel);
OUTPOST_REGISTER_OP(RegexFullMatch, "", 20, 25, RegexFullMatchKernel);

}  // namespace outpost::kernels::cpu
