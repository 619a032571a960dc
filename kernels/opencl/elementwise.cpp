// Elementwise ops on OpenCL: unary math/activations, binary arithmetic/comparison/logic,
// variadic Max/Min/Sum/Mean, Where, Clip, Cast/CastLike, PRelu. All share elementwise.cl.
#include <cstring>
#include <limits>

#include "opencl/cl_common.h"

namespace outpost::kernels::opencl {
namespace {

enum TypeClass { kFloat, kNumeric, kSigned, kInteger, kBoolOnly, kAnyButString };

bool InClass(const ClRuntime& rt, DataType t, TypeClass c) {
  if (!ClType(t) || (t == DataType::kDouble && !rt.fp64)) return false;
  bool fl = t == DataType::kFloat || t == DataType::kDouble;
  switch (c) {
    case kFloat: return t == DataType::kFloat;
    case kNumeric: return t != DataType::kBool;
    case kSigned: return t != DataType::kBool && (fl || IsSigned(t));
    case kInteger: return IsInteger(t);
    case kBoolOnly: return t == DataType::kBool;
    case kAnyButString: return true;
  }
  return false;
}

// Builds the broadcast layout: collapsed output dims and per-input strides.
std::vector<int> BroadcastParams(const Shape& out, const std::vector<Shape>& ins, int* rank,
                                 bool* flat) {
  const int r = out.rank();
  std::vector<std::vector<int64_t>> st(ins.size(), std::vector<int64_t>(r, 0));
  for (size_t k = 0; k < ins.size(); ++k) {
    const Shape& s = ins[k];
    auto in_st = StridesOf(s);
    for (int d = 0; d < s.rank(); ++d) {
      int od = r - s.rank() + d;
      st[k][od] = s[d] == 1 && out[od] != 1 ? 0 : in_st[d];
    }
  }
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> cst(ins.size());
  for (int d = 0; d < r; ++d) {
    if (out[d] == 1) continue;
    bool merge = !dims.empty();
    for (size_t k = 0; k < ins.size() && merge; ++k)
      merge = cst[k].back() == st[k][d] * out[d];
    if (merge) {
      dims.back() *= out[d];
      for (size_t k = 0; k < ins.size(); ++k) cst[k].back() = st[k][d];
    } else {
      dims.push_back(out[d]);
      for (size_t k = 0; k < ins.size(); ++k) cst[k].push_back(st[k][d]);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    for (auto& c : cst) c.push_back(1);
  }
  *rank = static_cast<int>(dims.size());
  *flat = *rank == 1;
  for (auto& c : cst) *flat = *flat && c[0] == 1;
  std::vector<int> p(dims.begin(), dims.end());
  for (auto& c : cst) p.insert(p.end(), c.begin(), c.end());
  return p;
}

// Adds the ew step computing output 0 from inputs `idx` (in order a, b, c) with expression `op`.
Status AddEw(const OpCtx& c, const std::vector<int>& idx, const std::string& op, DataType out_t,
             float alpha = 0, float beta = 0, const std::vector<DataType>& in_types = {}) {
  if (c.check()) return Status::Ok();
  const Tensor& y = c.output(0);
  std::vector<Shape> shapes;
  std::string defs;
  bool dbl = out_t == DataType::kDouble;
  for (size_t k = 0; k < idx.size(); ++k) {
    DataType t = in_types.empty() ? c.input(idx[k]).dtype() : in_types[k];
    dbl = dbl || t == DataType::kDouble;
    shapes.push_back(c.input(idx[k]).shape());
    defs += Def("T" + std::to_string(k), ClType(t));
  }
  int rank = 1;
  bool flat = false;
  auto p = BroadcastParams(y.shape(), shapes, &rank, &flat);
  if (dbl) defs = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + defs;
  defs += Def("TO", ClType(out_t)) + Def("R", rank) + Def("NIN", static_cast<int64_t>(idx.size())) +
          Def("OP(a, b, c)", op) + (flat ? Def("FLAT", 1) : "");
  OP_ASSIGN_OR_RETURN(ClMem params, Params(c, p));
  OP_ASSIGN_OR_RETURN(Step * s, c.AddStep("elementwise.cl", defs, "ew"));
  s->Out(0);
  for (int i : idx) s->In(i);
  s->Buf(params).Arg(alpha).Arg(beta).Global(static_cast<size_t>(y.numel()));
  return Status::Ok();
}

std::string TypeName(DataType t) { return std::string(DataTypeName(t)); }

Status CheckType(const OpCtx& c, int i, TypeClass cls) {
  if (!c.has(i)) return c.No("missing input " + std::to_string(i));
  if (!InClass(c.rt, c.input(i).dtype(), cls))
    return c.No("data type " + TypeName(c.input(i).dtype()));
  return Status::Ok();
}

// ---------------------------------------------------------------- unary

struct UnaryDef {
  const char* op;
  TypeClass cls;
  const char* expr;  // in terms of a, alpha, beta
  const char* alpha_attr;
  float alpha_def;
  const char* beta_attr;
  float beta_def;
};

const UnaryDef kUnary[] = {
    {"Abs", kNumeric, "((a) < 0 ? -(a) : (a))", nullptr, 0, nullptr, 0},
    {"Neg", kSigned, "(-(a))", nullptr, 0, nullptr, 0},
    {"Exp", kFloat, "exp(a)", nullptr, 0, nullptr, 0},
    {"Log", kFloat, "log(a)", nullptr, 0, nullptr, 0},
    {"Sqrt", kFloat, "sqrt(a)", nullptr, 0, nullptr, 0},
    {"Reciprocal", kFloat, "(1.0f / (a))", nullptr, 0, nullptr, 0},
    {"Floor", kFloat, "floor(a)", nullptr, 0, nullptr, 0},
    {"Ceil", kFloat, "ceil(a)", nullptr, 0, nullptr, 0},
    {"Round", kFloat, "rint(a)", nullptr, 0, nullptr, 0},
    {"Sigmoid", kFloat, "(1.0f / (1.0f + exp(-(a))))", nullptr, 0, nullptr, 0},
    {"Tanh", kFloat, "tanh(a)", nullptr, 0, nullptr, 0},
    {"Relu", kSigned, "((a) > 0 ? (a) : 0)", nullptr, 0, nullptr, 0},
    {"LeakyRelu", kFloat, "((a) < 0 ? alpha * (a) : (a))", "alpha", 0.01f, nullptr, 0},
    {"Elu", kFloat, "((a) < 0 ? alpha * (exp(a) - 1.0f) : (a))", "alpha", 1.0f, nullptr, 0},
    {"Selu", kFloat, "((a) > 0 ? beta * (a) : beta * (alpha * exp(a) - alpha))", "alpha",
     1.67326319217681884765625f, "gamma", 1.05070102214813232421875f},
    {"HardSigmoid", kFloat, "fmax(0.0f, fmin(1.0f, alpha * (a) + beta))", "alpha", 0.2f, "beta",
     0.5f},
    {"HardSwish", kFloat, "((a) * fmax(0.0f, fmin(1.0f, (a) / 6.0f + 0.5f)))", nullptr, 0, nullptr,
     0},
    {"Softplus", kFloat, "((a) > 0 ? (a) + log1p(exp(-(a))) : log1p(exp(a)))", nullptr, 0, nullptr,
     0},
    {"Softsign", kFloat, "((a) / (1.0f + fabs(a)))", nullptr, 0, nullptr, 0},
    {"Sin", kFloat, "sin(a)", nullptr, 0, nullptr, 0},
    {"Cos", kFloat, "cos(a)", nullptr, 0, nullptr, 0},
    {"Tan", kFloat, "tan(a)", nullptr, 0, nullptr, 0},
    {"Asin", kFloat, "asin(a)", nullptr, 0, nullptr, 0},
    {"Acos", kFloat, "acos(a)", nullptr, 0, nullptr, 0},
    {"Atan", kFloat, "atan(a)", nullptr, 0, nullptr, 0},
    {"Sinh", kFloat, "sinh(a)", nullptr, 0, nullptr, 0},
    {"Cosh", kFloat, "cosh(a)", nullptr, 0, nullptr, 0},
    {"Asinh", kFloat, "asinh(a)", nullptr, 0, nullptr, 0},
    {"Acosh", kFloat, "acosh(a)", nullptr, 0, nullptr, 0},
    {"Atanh", kFloat, "atanh(a)", nullptr, 0, nullptr, 0},
    {"Erf", kFloat, "erf(a)", nullptr, 0, nullptr, 0},
    {"Sign", kSigned, "(((a) > 0) - ((a) < 0))", nullptr, 0, nullptr, 0},
    {"Mish", kFloat, "((a) * tanh((a) > 0 ? (a) + log1p(exp(-(a))) : log1p(exp(a))))", nullptr, 0,
     nullptr, 0},
    {"ThresholdedRelu", kFloat, "((a) > alpha ? (a) : 0.0f)", "alpha", 1.0f, nullptr, 0},
    {"Shrink", kFloat, "((a) < -beta ? (a) + alpha : ((a) > beta ? (a) - alpha : 0.0f))", "bias", 0.0f,
     "lambd", 0.5f},
    {"Celu", kFloat, "(fmax(0.0f, (float)(a)) + fmin(0.0f, alpha * (exp((a) / alpha) - 1.0f)))",
     "alpha", 1.0f, nullptr, 0},
    {"Not", kBoolOnly, "(!(a))", nullptr, 0, nullptr, 0},
    {"BitwiseNot", kInteger, "(~(a))", nullptr, 0, nullptr, 0},
    {"IsNaN", kFloat, "isnan(a)", nullptr, 0, nullptr, 0},
};

const UnaryDef* FindUnary(const std::string& op) {
  for (const auto& u : kUnary)
    if (op == u.op) return &u;
  return nullptr;
}

Status Unary(const OpCtx& c) {
  const std::string& op = c.node.op_type;
  TypeClass cls = kFloat;
  std::string expr;
  float alpha = 0, beta = 0;
  DataType out_t = c.has(0) ? c.input(0).dtype() : DataType::kUndefined;
  if (op == "IsInf") {
    bool pos = c.attr_i("detect_positive", 1) != 0, neg = c.attr_i("detect_negative", 1) != 0;
    expr = std::string("(isinf(a) && ((a) > 0 ? ") + (pos ? "1" : "0") + " : " + (neg ? "1" : "0") +
           "))";
    out_t = DataType::kBool;
  } else if (op == "Gelu") {
    std::string approx = c.node.attrs.String("approximate", "none");
    if (approx == "tanh")
      expr = "(0.5f * (a) * (1.0f + tanh(0.7978845608028654f * ((a) + 0.044715f * (a) * (a) * (a)))))";
    else if (approx == "none")
      expr = "(0.5f * (a) * (1.0f + erf((a) * 0.7071067811865476f)))";
    else
      return c.No("Gelu approximate=" + approx);
  } else {
    const UnaryDef* u = FindUnary(op);
    if (!u) return c.No("unknown unary op");
    cls = u->cls;
    expr = u->expr;
    if (u->alpha_attr) alpha = c.attr_f(u->alpha_attr, u->alpha_def);
    if (u->beta_attr) beta = c.attr_f(u->beta_attr, u->beta_def);
    if (op == "IsNaN") out_t = DataType::kBool;
  }
  OP_RETURN_IF_ERROR(CheckType(c, 0, cls));
  return AddEw(c, {0}, expr, out_t, alpha, beta);
}

// ---------------------------------------------------------------- binary

struct BinaryDef {
  const char* op;
  TypeClass cls;
  bool bool_out;
  const char* expr;
};

const BinaryDef kBinary[] = {
    {"Add", kNumeric, false, "((a) + (b))"},
    {"Sub", kNumeric, false, "((a) - (b))"},
    {"Mul", kNumeric, false, "((a) * (b))"},
    {"Div", kNumeric, false, "((a) / (b))"},
    {"Equal", kAnyButString, true, "((a) == (b))"},
    {"Less", kNumeric, true, "((a) < (b))"},
    {"Greater", kNumeric, true, "((a) > (b))"},
    {"LessOrEqual", kNumeric, true, "((a) <= (b))"},
    {"GreaterOrEqual", kNumeric, true, "((a) >= (b))"},
    {"And", kBoolOnly, true, "((a) && (b))"},
    {"Or", kBoolOnly, true, "((a) || (b))"},
    {"Xor", kBoolOnly, true, "(((a) != 0) != ((b) != 0))"},
    {"BitwiseAnd", kInteger, false, "((a) & (b))"},
    {"BitwiseOr", kInteger, false, "((a) | (b))"},
    {"BitwiseXor", kInteger, false, "((a) ^ (b))"},
    {"PRelu", kSigned, false, "((a) < 0 ? (a) * (b) : (a))"},
};

Status Binary(const OpCtx& c) {
  const std::string& op = c.node.op_type;
  if (c.nin() < 2 || !c.has(0) || !c.has(1)) return c.No("needs two inputs");
  DataType t = c.input(0).dtype();
  std::string expr;
  TypeClass cls = kNumeric;
  bool bool_out = false;
  if (op == "Pow") {
    OP_RETURN_IF_ERROR(CheckType(c, 1, kNumeric));
    const char* ft = t == DataType::kDouble || (c.rt.fp64 && !IsFloating(t)) ? "double" : "float";
    expr = std::string("pow((") + ft + ")(a), (" + ft + ")(b))";
    if (!IsFloating(t)) expr = "(" + expr + ")";
  } else if (op == "Mod") {
    if (c.attr_i("fmod", 0)) {
      expr = IsFloating(t) ? "fmod(a, b)" : "((a) % (b))";
    } else {
      if (IsFloating(t)) return c.No("Mod with fmod=0 on floating point");
      expr = "((a) % (b) != 0 && (((a) % (b) < 0) != ((b) < 0)) ? (a) % (b) + (b) : (a) % (b))";
    }
  } else if (op == "BitShift") {
    std::string dir = c.node.attrs.String("direction", "");
    if (dir != "LEFT" && dir != "RIGHT") return c.No("BitShift direction '" + dir + "'");
    expr = dir == "LEFT" ? "((a) << (b))" : "((a) >> (b))";
    cls = kInteger;
  } else {
    const BinaryDef* d = nullptr;
    for (const auto& b : kBinary)
      if (op == b.op) d = &b;
    if (!d) return c.No("unknown binary op");
    expr = d->expr;
    cls = d->cls;
    bool_out = d->bool_out;
  }
  OP_RETURN_IF_ERROR(CheckType(c, 0, cls));
  if (op != "Pow" && c.input(1).dtype() != t) return c.No("mixed input types");
  return AddEw(c, {0, 1}, expr, bool_out ? DataType::kBool : t);
}

// Max/Min/Sum/Mean with 1..3 inputs.
Status Variadic(const OpCtx& c) {
  const std::string& op = c.node.op_type;
  int n = c.nin();
  if (n < 1 || n > 3) return c.No(std::to_string(n) + " inputs (1..3 supported)");
  for (int i = 0; i < n; ++i) {
    OP_RETURN_IF_ERROR(CheckType(c, i, op == "Sum" || op == "Mean" ? kFloat : kNumeric));
    if (c.input(i).dtype() != c.input(0).dtype()) return c.No("mixed input types");
  }
  static const char* kArgs[] = {"(a)", "(b)", "(c)"};
  std::string e = kArgs[0];
  for (int i = 1; i < n; ++i) {
    if (op == "Max") e = "(" + e + " > " + kArgs[i] + " || isnan((float)" + e + ") ? " + e + " : " + kArgs[i] + ")";
    else if (op == "Min") e = "(" + e + " < " + kArgs[i] + " || isnan((float)" + e + ") ? " + e + " : " + kArgs[i] + ")";
    else e = "(" + e + " + " + kArgs[i] + ")";
  }
  if (op == "Mean") e = "(" + e + " / " + std::to_string(n) + ".0f)";
  std::vector<int> idx;
  for (int i = 0; i < n; ++i) idx.push_back(i);
  return AddEw(c, idx, e, c.input(0).dtype());
}

Status Where(const OpCtx& c) {
  if (c.nin() != 3) return c.No("needs 3 inputs");
  OP_RETURN_IF_ERROR(CheckType(c, 0, kBoolOnly));
  OP_RETURN_IF_ERROR(CheckType(c, 1, kAnyButString));
  OP_RETURN_IF_ERROR(CheckType(c, 2, kAnyButString));
  return AddEw(c, {0, 1, 2}, "((a) ? (b) : (c))", c.input(1).dtype());
}

Status Clip(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckType(c, 0, c.node.opset < 11 ? kFloat : kNumeric));
  DataType t = c.input(0).dtype();
  if (c.node.opset < 11) {
    float lo = c.attr_f("min", -std::numeric_limits<float>::infinity());
    float hi = c.attr_f("max", std::numeric_limits<float>::infinity());
    return AddEw(c, {0}, "fmin(fmax((a), alpha), beta)", t, lo, hi);
  }
  bool has_lo = c.has(1) && c.input(1).numel() > 0, has_hi = c.has(2) && c.input(2).numel() > 0;
  for (int i = 1; i <= 2; ++i)
    if (c.has(i) && c.input(i).dtype() != t) return c.No("min/max type differs from input");
  // Constant float bounds (Relu6 and friends) become kernel arguments: one flat operand.
  if (t == DataType::kFloat && (!has_lo || (c.is_const(1) && c.input(1).numel() == 1)) &&
      (!has_hi || (c.is_const(2) && c.input(2).numel() == 1)))
    return AddEw(c, {0}, "((a) < alpha ? alpha : (a) > beta ? beta : (a))", t,
                 has_lo ? c.input(1).data<float>()[0] : -std::numeric_limits<float>::infinity(),
                 has_hi ? c.input(2).data<float>()[0] : std::numeric_limits<float>::infinity());
  const std::string lo = "((a) < (b) ? (b) : (a))";
  if (has_lo && has_hi) return AddEw(c, {0, 1, 2}, "(" + lo + " > (c) ? (c) : " + lo + ")", t);
  if (has_lo) return AddEw(c, {0, 1}, lo, t);
  if (has_hi) return AddEw(c, {0, 2}, "((a) > (b) ? (b) : (a))", t);
  return AddEw(c, {0}, "(a)", t);
}

Status Cast(const OpCtx& c) {
  OP_RETURN_IF_ERROR(CheckType(c, 0, kAnyButString));
  if (!c.has_out(0)) return c.No("no output");
  DataType to = c.output(0).dtype();
  if (!InClass(c.rt, to, kAnyButString)) return c.No("cast to " + TypeName(to));
  DataType from = c.input(0).dtype();
  std::string e = to == DataType::kBool ? "((a) != 0)" : "(a)";
  if (IsFloating(from) && IsInteger(to)) e = "((a) != (a) ? 0 : (a))";  // NaN -> 0, like x86
  return AddEw(c, {0}, e, to);
}

}  // namespace

OUTPOST_CL_OP(Abs, 1, 25, Unary);
OUTPOST_CL_OP(Neg, 1, 25, Unary);
OUTPOST_CL_OP(Exp, 1, 25, Unary);
OUTPOST_CL_OP(Log, 1, 25, Unary);
OUTPOST_CL_OP(Sqrt, 1, 25, Unary);
OUTPOST_CL_OP(Reciprocal, 1, 25, Unary);
OUTPOST_CL_OP(Floor, 1, 25, Unary);
OUTPOST_CL_OP(Ceil, 1, 25, Unary);
OUTPOST_CL_OP(Round, 11, 25, Unary);
OUTPOST_CL_OP(Sigmoid, 1, 25, Unary);
OUTPOST_CL_OP(Tanh, 1, 25, Unary);
OUTPOST_CL_OP(Relu, 1, 25, Unary);
OUTPOST_CL_OP(LeakyRelu, 1, 25, Unary);
OUTPOST_CL_OP(Elu, 1, 25, Unary);
OUTPOST_CL_OP(Selu, 1, 25, Unary);
OUTPOST_CL_OP(HardSigmoid, 1, 25, Unary);
OUTPOST_CL_OP(HardSwish, 14, 25, Unary);
OUTPOST_CL_OP(Softplus, 1, 25, Unary);
OUTPOST_CL_OP(Softsign, 1, 25, Unary);
OUTPOST_CL_OP(Sin, 7, 25, Unary);
OUTPOST_CL_OP(Cos, 7, 25, Unary);
OUTPOST_CL_OP(Tan, 7, 25, Unary);
OUTPOST_CL_OP(Asin, 7, 25, Unary);
OUTPOST_CL_OP(Acos, 7, 25, Unary);
OUTPOST_CL_OP(Atan, 7, 25, Unary);
OUTPOST_CL_OP(Sinh, 9, 25, Unary);
OUTPOST_CL_OP(Cosh, 9, 25, Unary);
OUTPOST_CL_OP(Asinh, 9, 25, Unary);
OUTPOST_CL_OP(Acosh, 9, 25, Unary);
OUTPOST_CL_OP(Atanh, 9, 25, Unary);
OUTPOST_CL_OP(Erf, 9, 25, Unary);
OUTPOST_CL_OP(Sign, 9, 25, Unary);
OUTPOST_CL_OP(Mish, 18, 25, Unary);
OUTPOST_CL_OP(ThresholdedRelu, 10, 25, Unary);
OUTPOST_CL_OP(Shrink, 9, 25, Unary);
OUTPOST_CL_OP(Celu, 12, 25, Unary);
OUTPOST_CL_OP(Not, 1, 25, Unary);
OUTPOST_CL_OP(BitwiseNot, 18, 25, Unary);
OUTPOST_CL_OP(IsNaN, 9, 25, Unary);
OUTPOST_CL_OP(IsInf, 10, 25, Unary);
OUTPOST_CL_OP(Gelu, 20, 25, Unary);
OUTPOST_CL_OP(Add, 7, 25, Binary);
OUTPOST_CL_OP(Sub, 7, 25, Binary);
OUTPOST_CL_OP(Mul, 7, 25, Binary);
OUTPOST_CL_OP(Div, 7, 25, Binary);
OUTPOST_CL_OP(Pow, 7, 25, Binary);
OUTPOST_CL_OP(Mod, 10, 25, Binary);
OUTPOST_CL_OP(Equal, 7, 25, Binary);
OUTPOST_CL_OP(Less, 7, 25, Binary);
OUTPOST_CL_OP(Greater, 7, 25, Binary);
OUTPOST_CL_OP(LessOrEqual, 12, 25, Binary);
OUTPOST_CL_OP(GreaterOrEqual, 12, 25, Binary);
OUTPOST_CL_OP(And, 7, 25, Binary);
OUTPOST_CL_OP(Or, 7, 25, Binary);
OUTPOST_CL_OP(Xor, 7, 25, Binary);
OUTPOST_CL_OP(BitwiseAnd, 18, 25, Binary);
OUTPOST_CL_OP(BitwiseOr, 18, 25, Binary);
OUTPOST_CL_OP(BitwiseXor, 18, 25, Binary);
OUTPOST_CL_OP(BitShift, 11, 25, Binary);
OUTPOST_CL_OP(PRelu, 7, 25, Binary);
OUTPOST_CL_OP(Max, 8, 25, Variadic);
OUTPOST_CL_OP(Min, 8, 25, Variadic);
OUTPOST_CL_OP(Sum, 8, 25, Variadic);
OUTPOST_CL_OP(Mean, 8, 25, Variadic);
OUTPOST_CL_OP(Where, 9, 25, Where);
OUTPOST_CL_OP(Clip, 6, 25, Clip);
OUTPOST_CL_OP(Cast, 6, 25, Cast);
OUTPOST_CL_OP(CastLike, 15, 25, Cast);

}  // namespace outpost::kernels::opencl
