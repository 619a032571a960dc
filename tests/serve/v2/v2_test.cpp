// Tests of the KServe V2 / Open Inference Protocol codec. Expected values come from the protocol
// documents (KServe "Open Inference Protocol" REST spec, Triton's binary tensor data and model
// repository extensions) and from IEEE 754 by hand, never from the codec's own output.
#include "outpost/serve/v2/v2.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace outpost::serve::v2 {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// Bytes from a list of values written by hand (each value 0..255).
std::string Bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

InferRequest ParseOk(const std::string& body, std::optional<size_t> json_length = std::nullopt,
                     const Limits& limits = {}) {
  auto r = ParseInferRequest(body, json_length, limits);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << "\nbody: " << body;
  if (!r.ok()) return {};
  return std::move(r).value();
}

// Parses and expects kInvalidArgument whose message contains every fragment.
void ExpectInvalid(const std::string& body, std::initializer_list<std::string> fragments,
                   std::optional<size_t> json_length = std::nullopt, const Limits& limits = {}) {
  auto r = ParseInferRequest(body, json_length, limits);
  ASSERT_FALSE(r.ok()) << "accepted: " << body;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  for (const std::string& f : fragments)
    EXPECT_THAT(r.status().message(), HasSubstr(f)) << "body: " << body.substr(0, 200);
}

// One-input request with JSON data.
std::string OneInput(const std::string& datatype, const std::string& shape, const std::string& data,
                     const std::string& name = "x") {
  return R"({"inputs":[{"name":")" + name + R"(","datatype":")" + datatype + R"(","shape":)" +
         shape + R"(,"data":)" + data + "}]}";
}

std::string Response(const std::vector<InferOutput>& outs, const EncodeOptions& opt = {}) {
  auto r = EncodeInferResponse("m", "", "", json(), outs, opt);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->body : "";
}

template <typename T>
Tensor Make(DataType dt, Shape shape, std::vector<T> values) {
  auto t = Tensor::Allocate(dt, shape);
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(static_cast<size_t>(t->numel()), values.size());
  for (size_t i = 0; i < values.size(); ++i) static_cast<T*>(t->raw())[i] = values[i];
  return *t;
}

Tensor MakeStrings(Shape shape, std::vector<std::string> values) {
  return Make<std::string>(DataType::kString, shape, std::move(values));
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  const T* p = static_cast<const T*>(t.raw());
  return std::vector<T>(p, p + t.numel());
}

// ---- Datatypes ---------------------------------------------------------------------------------

TEST(V2DataType, NamesFromTheSpecTable) {
  EXPECT_EQ(DataTypeFromV2Name("BOOL"), DataType::kBool);
  EXPECT_EQ(DataTypeFromV2Name("UINT8"), DataType::kUInt8);
  EXPECT_EQ(DataTypeFromV2Name("UINT16"), DataType::kUInt16);
  EXPECT_EQ(DataTypeFromV2Name("UINT32"), DataType::kUInt32);
  EXPECT_EQ(DataTypeFromV2Name("UINT64"), DataType::kUInt64);
  EXPECT_EQ(DataTypeFromV2Name("INT8"), DataType::kInt8);
  EXPECT_EQ(DataTypeFromV2Name("INT16"), DataType::kInt16);
  EXPECT_EQ(DataTypeFromV2Name("INT32"), DataType::kInt32);
  EXPECT_EQ(DataTypeFromV2Name("INT64"), DataType::kInt64);
  EXPECT_EQ(DataTypeFromV2Name("FP16"), DataType::kFloat16);
  EXPECT_EQ(DataTypeFromV2Name("FP32"), DataType::kFloat);
  EXPECT_EQ(DataTypeFromV2Name("FP64"), DataType::kDouble);
  EXPECT_EQ(DataTypeFromV2Name("BYTES"), DataType::kString);
  EXPECT_EQ(DataTypeFromV2Name("BF16"), DataType::kBFloat16);  // Triton's addition
  // "All strings in all contexts are case-sensitive."
  EXPECT_FALSE(DataTypeFromV2Name("fp32").has_value());
  EXPECT_FALSE(DataTypeFromV2Name("FLOAT").has_value());
  EXPECT_FALSE(DataTypeFromV2Name("STRING").has_value());
  EXPECT_FALSE(DataTypeFromV2Name("").has_value());
}

// ---- Spec examples -----------------------------------------------------------------------------

// The inference request example of the REST spec, with input1's data completed: the spec's
// example gives one value for shape [3] (see the next test).
TEST(V2Request, SpecExampleRequest) {
  const std::string body = R"({
      "id" : "42",
      "inputs" : [
        { "name" : "input0", "shape" : [ 2, 2 ], "datatype" : "UINT32", "data" : [ 1, 2, 3, 4 ] },
        { "name" : "input1", "shape" : [ 3 ], "datatype" : "BOOL", "data" : [ true, false, true ] }
      ],
      "outputs" : [ { "name" : "output0" } ]
    })";
  InferRequest r = ParseOk(body);
  EXPECT_EQ(r.id, "42");
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[0].name, "input0");
  EXPECT_EQ(r.inputs[0].dtype, DataType::kUInt32);
  EXPECT_EQ(r.inputs[0].shape, Shape({2, 2}));
  EXPECT_EQ(Values<uint32_t>(r.inputs[0].tensor), (std::vector<uint32_t>{1, 2, 3, 4}));
  EXPECT_FALSE(r.inputs[0].binary);
  EXPECT_EQ(r.inputs[1].dtype, DataType::kBool);
  EXPECT_EQ(Values<bool>(r.inputs[1].tensor), (std::vector<bool>{true, false, true}));
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].name, "output0");
  EXPECT_FALSE(r.outputs[0].binary.has_value());
  EXPECT_TRUE(r.parameters.is_null());
  EXPECT_FALSE(r.OutputBinary("output0"));
}

TEST(V2Request, SpecExampleVerbatimHasTooFewBoolValues) {
  const std::string body = R"({"id":"42","inputs":[
      {"name":"input0","shape":[2,2],"datatype":"UINT32","data":[1,2,3,4]},
      {"name":"input1","shape":[3],"datatype":"BOOL","data":[true]}],
      "outputs":[{"name":"output0"}]})";
  ExpectInvalid(body, {"input \"input1\"", "[3]", "needs 3 elements", "has 1"});
}

// "For example, the 2-dimensional matrix [1 2; 4 5] can be represented in its natural format as
// [[1,2],[4,5]] or in a flattened one-dimensional representation as [1,2,4,5]."
TEST(V2Request, SpecNestedAndFlatDataAreTheSame) {
  InferRequest nested = ParseOk(OneInput("INT32", "[2,2]", "[[1,2],[4,5]]"));
  InferRequest flat = ParseOk(OneInput("INT32", "[2,2]", "[1,2,4,5]"));
  EXPECT_EQ(Values<int32_t>(nested.inputs[0].tensor), (std::vector<int32_t>{1, 2, 4, 5}));
  EXPECT_EQ(Values<int32_t>(flat.inputs[0].tensor), (std::vector<int32_t>{1, 2, 4, 5}));
  InferRequest deep = ParseOk(OneInput("FP64", "[2,1,3]", "[[[1,2,3]],[[4,5,6]]]"));
  EXPECT_EQ(Values<double>(deep.inputs[0].tensor), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

// The spec's response example: output0, FP32 [3,2], data [1.0,1.1,2.0,2.1,3.0,3.1], id "42".
TEST(V2Response, SpecExampleResponse) {
  Tensor t = Make<float>(DataType::kFloat, {3, 2}, {1.0f, 1.1f, 2.0f, 2.1f, 3.0f, 3.1f});
  auto r = EncodeInferResponse("mymodel", "", "42", json(), {{"output0", t, false, {}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->json_length.has_value());
  EXPECT_EQ(r->content_type, "application/json");
  // Floats print in their shortest round-trip form: 1.1f is "1.1", not 1.100000023841858.
  EXPECT_EQ(r->body,
            R"({"model_name":"mymodel","id":"42","outputs":[{"name":"output0","shape":[3,2],)"
            R"("datatype":"FP32","data":[1,1.1,2,2.1,3,3.1]}]})");
  json j = json::parse(r->body);
  EXPECT_EQ(j["id"], "42");
  EXPECT_EQ(j["outputs"][0]["data"][1].get<float>(), 1.1f);
  EXPECT_FALSE(j.contains("model_version"));  // not versioned: "should not provide this field"
}

TEST(V2Response, ModelVersionAndParametersWhenGiven) {
  Tensor t = Make<int64_t>(DataType::kInt64, {1}, {7});
  json params = {{"k", "v"}, {"n", 3}, {"b", true}};
  auto r = EncodeInferResponse("m", "2", "", params, {{"y", t, false, {}}});
  ASSERT_TRUE(r.ok());
  json j = json::parse(r->body);
  EXPECT_EQ(j["model_version"], "2");
  EXPECT_FALSE(j.contains("id"));
  EXPECT_EQ(j["parameters"], params);
  EXPECT_EQ(j["outputs"][0]["data"], json::array({7}));
}

// ---- Every datatype in JSON
// ----------------------------------------------------------------------

TEST(V2Json, IntegerTypesDecodeAndEncode) {
  struct Case {
    const char* type;
    const char* data;  // request data, including both extremes of the type
    const char* out;   // the response's data text (the same values)
  };
  const Case cases[] = {
      {"UINT8", "[0,255]", "[0,255]"},
      {"UINT16", "[0,65535]", "[0,65535]"},
      {"UINT32", "[0,4294967295]", "[0,4294967295]"},
      {"UINT64", "[0,18446744073709551615]", "[0,18446744073709551615]"},
      {"INT8", "[-128,127]", "[-128,127]"},
      {"INT16", "[-32768,32767]", "[-32768,32767]"},
      {"INT32", "[-2147483648,2147483647]", "[-2147483648,2147483647]"},
      {"INT64", "[-9223372036854775808,9223372036854775807]",
       "[-9223372036854775808,9223372036854775807]"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    InferRequest r = ParseOk(OneInput(c.type, "[2]", c.data));
    ASSERT_EQ(r.inputs.size(), 1u);
    std::string body = Response({{"y", r.inputs[0].tensor, false, {}}});
    EXPECT_EQ(body, std::string(R"({"model_name":"m","outputs":[{"name":"y","shape":[2],)") +
                        R"("datatype":")" + c.type + R"(","data":)" + c.out + "}]}");
  }
  InferRequest r = ParseOk(OneInput("INT64", "[2]", "[-9223372036854775808,9223372036854775807]"));
  EXPECT_EQ(Values<int64_t>(r.inputs[0].tensor),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max()}));
  r = ParseOk(OneInput("UINT64", "[1]", "[18446744073709551615]"));
  EXPECT_EQ(Values<uint64_t>(r.inputs[0].tensor)[0], 18446744073709551615ull);
}

TEST(V2Json, IntegralFloatsAreAcceptedForIntegerTypes) {
  InferRequest r = ParseOk(OneInput("INT32", "[3]", "[2.0,-1e3,0.0]"));
  EXPECT_EQ(Values<int32_t>(r.inputs[0].tensor), (std::vector<int32_t>{2, -1000, 0}));
}

TEST(V2Json, BoolDecodesAndEncodes) {
  InferRequest r = ParseOk(OneInput("BOOL", "[2,2]", "[[true,false],[false,true]]"));
  EXPECT_EQ(Values<bool>(r.inputs[0].tensor), (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(Response({{"y", r.inputs[0].tensor, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[2,2],"datatype":"BOOL",)"
            R"("data":[true,false,false,true]}]})");
}

TEST(V2Json, Fp32AndFp64) {
  // 0.1 is not a float; the nearest float is 0x3dcccccd. 16777217 rounds to 16777216 (even).
  InferRequest r = ParseOk(OneInput("FP32", "[4]", "[0.1,16777217,-2.5,3]"));
  auto v = Values<float>(r.inputs[0].tensor);
  uint32_t bits;
  std::memcpy(&bits, &v[0], 4);
  EXPECT_EQ(bits, 0x3dcccccdu);
  EXPECT_EQ(v[1], 16777216.0f);
  EXPECT_EQ(v[2], -2.5f);
  EXPECT_EQ(v[3], 3.0f);
  EXPECT_EQ(Response({{"y", r.inputs[0].tensor, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[4],"datatype":"FP32",)"
            R"("data":[0.1,16777216,-2.5,3]}]})");

  r = ParseOk(OneInput("FP64", "[3]", "[0.1,1e300,-5e-324]"));
  auto d = Values<double>(r.inputs[0].tensor);
  EXPECT_EQ(d, (std::vector<double>{0.1, 1e300, -5e-324}));
  EXPECT_EQ(Response({{"y", r.inputs[0].tensor, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[3],"datatype":"FP64",)"
            R"("data":[0.1,1e+300,-5e-324]}]})");
}

// IEEE binary16 encodings worked out by hand: 1.0 = 0 01111 0000000000 = 0x3c00; 65504 (largest
// finite) = 0x7bff; 0.1 rounds to 0x2e66 (0.0999755859375); 2^-24 (smallest subnormal) = 0x0001;
// 2^-25 is halfway between 0 and 2^-24 and rounds to even 0x0000; 3 * 2^-25 is halfway between
// 0x0001 and 0x0002 and rounds to even 0x0002; -2 = 0xc000.
TEST(V2Json, Fp16RoundsToNearestEven) {
  InferRequest r = ParseOk(OneInput(
      "FP16", "[7]",
      "[1.0,65504,0.1,5.9604644775390625e-08,2.98023223876953125e-08,8.94069671630859375e-08,-2]"));
  EXPECT_EQ(Values<uint16_t>(r.inputs[0].tensor),
            (std::vector<uint16_t>{0x3c00, 0x7bff, 0x2e66, 0x0001, 0x0000, 0x0002, 0xc000}));
  // 65519 rounds down to 65504; 65520 is the midpoint to 65536 and rounds to infinity: refused.
  r = ParseOk(OneInput("FP16", "[1]", "[65519]"));
  EXPECT_EQ(Values<uint16_t>(r.inputs[0].tensor)[0], 0x7bff);
  ExpectInvalid(OneInput("FP16", "[1]", "[65520]"), {"out of range for FP16"});
}

// Output FP16 as the shortest decimal that reads back as the same half.
TEST(V2Json, Fp16EncodesShortest) {
  Tensor t = Make<uint16_t>(DataType::kFloat16, {4}, {0x3c00, 0x2e66, 0x7bff, 0xc000});
  EXPECT_EQ(Response({{"y", t, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[4],"datatype":"FP16",)"
            R"("data":[1,0.1,6.55e+04,-2]}]})");
}

// bfloat16 is the top half of a float: 1.0 = 0x3f80, -2 = 0xc000; 1 + 2^-8 is halfway between
// 0x3f80 and 0x3f81 and rounds to even 0x3f80; 1 + 3 * 2^-8 rounds to 0x3f82.
TEST(V2Json, Bf16) {
  InferRequest r = ParseOk(OneInput("BF16", "[4]", "[1,-2,1.00390625,1.01171875]"));
  EXPECT_EQ(Values<uint16_t>(r.inputs[0].tensor),
            (std::vector<uint16_t>{0x3f80, 0xc000, 0x3f80, 0x3f82}));
  EXPECT_EQ(Response({{"y", r.inputs[0].tensor, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[4],"datatype":"BF16",)"
            R"("data":[1,-2,1,1.016]}]})");
}

TEST(V2Json, BytesAreUtf8Strings) {
  InferRequest r = ParseOk(OneInput("BYTES", "[3]", R"(["abc","","h\u00e9 \"q\"\n"])"));
  EXPECT_EQ(Values<std::string>(r.inputs[0].tensor),
            (std::vector<std::string>{"abc", "", "h\xc3\xa9 \"q\"\n"}));
  EXPECT_EQ(Response({{"y", r.inputs[0].tensor, false, {}}}),
            "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"y\",\"shape\":[3],\"datatype\":"
            "\"BYTES\",\"data\":[\"abc\",\"\",\"h\xc3\xa9 \\\"q\\\"\\n\"]}]}");
}

TEST(V2Json, BytesThatAreNotUtf8CannotBeJson) {
  Tensor t = MakeStrings({2}, {"ok", std::string("\xff\x00", 2)});
  auto r = EncodeInferResponse("m", "", "", json(), {{"y", t, false, {}}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("output \"y\""));
  EXPECT_THAT(r.status().message(), HasSubstr("element 1"));
  EXPECT_THAT(r.status().message(), HasSubstr("binary_data"));
  // As binary data they are fine.
  auto b = EncodeInferResponse("m", "", "", json(), {{"y", t, true, {}}});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->body.substr(*b->json_length), Bytes({2, 0, 0, 0, 'o', 'k', 2, 0, 0, 0, 0xff, 0}));
}

TEST(V2Json, EmptyAndScalarTensors) {
  InferRequest r = ParseOk(OneInput("FP32", "[0]", "[]"));
  EXPECT_EQ(r.inputs[0].tensor.numel(), 0);
  r = ParseOk(OneInput("FP32", "[2,0]", "[[],[]]"));
  EXPECT_EQ(r.inputs[0].shape, Shape({2, 0}));
  r = ParseOk(OneInput("INT64", "[]", "[42]"));
  EXPECT_EQ(r.inputs[0].shape.rank(), 0);
  EXPECT_EQ(Values<int64_t>(r.inputs[0].tensor)[0], 42);
  EXPECT_EQ(Response({{"y", r.inputs[0].tensor, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[],"datatype":"INT64",)"
            R"("data":[42]}]})");
}

// ---- NaN and infinities -------------------------------------------------------------------------

TEST(V2Json, NonFiniteOutputs) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor t = Make<float>(DataType::kFloat, {4}, {std::nanf(""), inf, -inf, 1.5f});
  EXPECT_EQ(Response({{"y", t, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[4],"datatype":"FP32",)"
            R"("data":[null,null,null,1.5]}]})");
  EncodeOptions lit;
  lit.non_finite = NonFinite::kLiterals;
  EXPECT_EQ(Response({{"y", t, false, {}}}, lit),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[4],"datatype":"FP32",)"
            R"("data":[NaN,Infinity,-Infinity,1.5]}]})");
  Tensor h = Make<uint16_t>(DataType::kFloat16, {2}, {0x7c00, 0x7e00});  // +inf, NaN
  EXPECT_EQ(Response({{"y", h, false, {}}}),
            R"({"model_name":"m","outputs":[{"name":"y","shape":[2],"datatype":"FP16",)"
            R"("data":[null,null]}]})");
}

// ---- Errors, each naming the input and the fault ----------------------------------------------

TEST(V2Errors, WrongElementTypes) {
  ExpectInvalid(OneInput("FP32", "[2]", R"([1,"abc"])"),
                {"input \"x\"", "element 1", "FP32", "the string \"abc\"", "expected a number"});
  ExpectInvalid(OneInput("INT32", "[2]", "[1,2.5]"),
                {"input \"x\"", "element 1", "2.5", "not an integer"});
  ExpectInvalid(OneInput("UINT8", "[2]", "[1,300]"),
                {"input \"x\"", "element 1", "300", "out of range for UINT8"});
  ExpectInvalid(OneInput("UINT32", "[1]", "[-1]"), {"element 0", "-1", "out of range for UINT32"});
  ExpectInvalid(OneInput("INT8", "[1]", "[-129]"), {"out of range for INT8"});
  ExpectInvalid(OneInput("INT64", "[1]", "[9223372036854775808]"), {"out of range for INT64"});
  ExpectInvalid(OneInput("UINT64", "[1]", "[18446744073709551616]"), {"out of range for UINT64"});
  ExpectInvalid(OneInput("BOOL", "[2]", "[true,1]"),
                {"element 1", "BOOL", "expected true or false"});
  ExpectInvalid(OneInput("BOOL", "[1]", R"(["true"])"), {"expected true or false"});
  ExpectInvalid(OneInput("INT32", "[1]", "[true]"), {"expected an integer"});
  ExpectInvalid(OneInput("BYTES", "[1]", "[5]"), {"BYTES", "expected a string"});
  ExpectInvalid(OneInput("FP32", "[1]", "[null]"), {"null", "expected a number"});
  ExpectInvalid(OneInput("FP32", "[1]", "[1e300]"), {"out of range for FP32"});
  ExpectInvalid(OneInput("FP32", "[1]", "[{}]"), {"an object"});
}

TEST(V2Errors, ShapeProblems) {
  ExpectInvalid(OneInput("FP32", "[2,-1]", "[1,2]"), {"input \"x\"", "negative dimension -1"});
  ExpectInvalid(OneInput("FP32", "[2.5]", "[1,2]"), {"input \"x\"", "non-negative integer"});
  ExpectInvalid(OneInput("FP32", "[\"2\"]", "[1,2]"), {"input \"x\"", "shape"});
  ExpectInvalid(OneInput("FP32", "2", "[1,2]"), {"input \"x\"", "\"shape\" must be an array"});
  ExpectInvalid(OneInput("FP32", "[2,2]", "[1,2,3]"),
                {"input \"x\"", "[2,2]", "needs 4 elements", "has 3"});
  ExpectInvalid(OneInput("FP32", "[1,1,1,1,1,1,1,1,1]", "[1]"),
                {"input \"x\"", "rank 9", "limit of 8"});
  // Ragged nesting whose count happens to match.
  ExpectInvalid(OneInput("FP32", "[2,2]", "[[1,2,3],[4]]"),
                {"input \"x\"", "dimension 1", "[2,2]"});
  ExpectInvalid(OneInput("FP32", "[2,2]", "[[1,2],3,4]"), {"input \"x\"", "mixes"});
  ExpectInvalid(OneInput("FP32", "[1]", "1"), {"input \"x\"", "\"data\" must be an array"});
}

TEST(V2Errors, HugeShapesAreRefusedBeforeAllocating) {
  // A billion elements in a tiny body: refused by the limit, nothing allocated.
  ExpectInvalid(OneInput("FP32", "[1000000000]", "[1]"),
                {"input \"x\"", "[1000000000]", "1000000000 elements", "limit of 67108864"});
  // A product that overflows 64 bits.
  ExpectInvalid(OneInput("FP32", "[4294967296,4294967296,4294967296]", "[1]"),
                {"input \"x\"", "more than 2^64"});
  ExpectInvalid(OneInput("FP32", "[18446744073709551615]", "[1]"), {"input \"x\"", "2^63"});
  // A zero dimension makes any other dimension harmless.
  InferRequest r = ParseOk(OneInput("FP32", "[0,4294967296]", "[]"));
  EXPECT_EQ(r.inputs[0].tensor.numel(), 0);
  // The limit is configurable.
  Limits small;
  small.max_elements = 3;
  ExpectInvalid(OneInput("FP32", "[4]", "[1,2,3,4]"), {"limit of 3"}, std::nullopt, small);
}

TEST(V2Errors, MissingAndMalformedFields) {
  ExpectInvalid("", {"invalid request JSON"});
  ExpectInvalid("{", {"invalid request JSON"});
  ExpectInvalid("[]", {"JSON object"});
  ExpectInvalid("{}", {"missing \"inputs\""});
  ExpectInvalid(R"({"inputs":{}})", {"\"inputs\" must be an array"});
  ExpectInvalid(R"({"inputs":[]})", {"\"inputs\" is empty"});
  ExpectInvalid(R"({"inputs":[5]})", {"input 0 must be an object"});
  ExpectInvalid(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})",
                {"input 0", "missing \"name\""});
  ExpectInvalid(R"({"inputs":[{"name":"","datatype":"FP32","shape":[1],"data":[1]}]})",
                {"input 0", "empty"});
  ExpectInvalid(R"({"inputs":[{"name":"a","shape":[1],"data":[1]}]})",
                {"input \"a\"", "missing \"datatype\""});
  ExpectInvalid(R"({"inputs":[{"name":"a","datatype":"FP32","data":[1]}]})",
                {"input \"a\"", "missing \"shape\""});
  ExpectInvalid(R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1]}]})",
                {"input \"a\"", "missing \"data\""});
  ExpectInvalid(OneInput("FLOAT32", "[1]", "[1]"), {"input \"x\"", "unknown datatype \"FLOAT32\""});
  ExpectInvalid(R"({"id":42,"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}]})",
                {"\"id\" must be a string"});
  ExpectInvalid(R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]},)"
                R"({"name":"a","datatype":"FP32","shape":[1],"data":[2]}]})",
                {"input \"a\"", "twice"});
  ExpectInvalid(R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}],)"
                R"("outputs":[{"name":"y"},{"name":"y"}]})",
                {"output \"y\"", "twice"});
  ExpectInvalid(
      R"({"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[{}]})",
      {"output 0", "missing \"name\""});
  ExpectInvalid(
      R"({"parameters":[1],"inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1]}]})",
      {"\"parameters\" must be an object"});
  ExpectInvalid(R"({"parameters":{"p":{"q":1}},"inputs":[)"
                R"({"name":"a","datatype":"FP32","shape":[1],"data":[1]}]})",
                {"parameter \"p\"", "string, number or boolean"});
  // Trailing garbage after the JSON object (without Inference-Header-Content-Length).
  ExpectInvalid(OneInput("FP32", "[1]", "[1]") + "xyz", {"invalid request JSON"});
  // Invalid UTF-8 in a JSON string.
  ExpectInvalid(OneInput("BYTES", "[1]", "[\"\xff\"]"), {"invalid request JSON"});
}

TEST(V2Errors, TooManyInputs) {
  std::string body = R"({"inputs":[)";
  for (int i = 0; i < 65; ++i) {
    if (i) body += ",";
    body += R"({"name":"i)" + std::to_string(i) + R"(","datatype":"FP32","shape":[1],"data":[1]})";
  }
  body += "]}";
  ExpectInvalid(body, {"65 inputs", "limit of 64"});
}

TEST(V2Errors, HostileNestingIsRefusedWithoutRecursion) {
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  ExpectInvalid(deep, {"deeper than 64"});
  ExpectInvalid(OneInput("FP32", "[1]", std::string(70, '[') + "1" + std::string(70, ']')),
                {"deeper than 64"});
  // Unclosed deep nesting is refused the same way.
  ExpectInvalid(std::string(1000000, '['), {"deeper than 64"});
}

// ---- Parameters, id, outputs selection ----------------------------------------------------------

TEST(V2Request, ParametersPassThroughMinusProtocolKeys) {
  InferRequest r = ParseOk(
      R"({"id":"abc","parameters":{"binary_data_output":true,"priority":2,"tag":"t","f":1.5},)"
      R"("inputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[1],)"
      R"("parameters":{"content_type":"np"}}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":false,"classification":3}},)"
      R"({"name":"z"}]})");
  EXPECT_EQ(r.id, "abc");
  EXPECT_TRUE(r.all_outputs_binary);
  EXPECT_EQ(r.parameters, json({{"priority", 2}, {"tag", "t"}, {"f", 1.5}}));
  EXPECT_EQ(r.inputs[0].parameters, json({{"content_type", "np"}}));
  ASSERT_EQ(r.outputs.size(), 2u);
  EXPECT_EQ(r.outputs[0].binary, std::optional<bool>(false));
  EXPECT_EQ(r.outputs[0].parameters, json({{"classification", 3}}));
  EXPECT_TRUE(r.outputs[1].parameters.is_null());
  // "If binary_data is specified on an output it overrides this setting."
  EXPECT_FALSE(r.OutputBinary("y"));
  EXPECT_TRUE(r.OutputBinary("z"));
  EXPECT_TRUE(r.OutputBinary("not-requested"));

  // Echoed into the response.
  Tensor t = Make<float>(DataType::kFloat, {1}, {2.0f});
  auto e = EncodeInferResponse("m", "", r.id, r.parameters, {{"y", t, false, {}}});
  ASSERT_TRUE(e.ok());
  json j = json::parse(e->body);
  EXPECT_EQ(j["id"], "abc");
  EXPECT_EQ(j["parameters"], r.parameters);
}

TEST(V2Request, OnlyProtocolKeyLeavesNullParameters) {
  InferRequest r = ParseOk(R"({"parameters":{"binary_data_output":false},"inputs":[)"
                           R"({"name":"a","datatype":"FP32","shape":[1],"data":[1]}]})");
  EXPECT_FALSE(r.all_outputs_binary);
  EXPECT_TRUE(r.parameters.is_null());
  ExpectInvalid(R"({"parameters":{"binary_data_output":1},"inputs":[)"
                R"({"name":"a","datatype":"FP32","shape":[1],"data":[1]}]})",
                {"binary_data_output must be true or false"});
}

TEST(V2Response, SelectOutputs) {
  std::vector<std::string> names = {"a", "b", "c"};
  std::vector<Tensor> tensors = {Make<float>(DataType::kFloat, {1}, {1}),
                                 Make<float>(DataType::kFloat, {1}, {2}),
                                 Make<float>(DataType::kFloat, {1}, {3})};
  InferRequest all;
  auto s = SelectOutputs(all, names, tensors);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ((*s)[2].name, "c");
  EXPECT_FALSE((*s)[2].binary);

  InferRequest some =
      ParseOk(R"({"parameters":{"binary_data_output":true},"inputs":[)"
              R"({"name":"i","datatype":"FP32","shape":[1],"data":[1]}],)"
              R"("outputs":[{"name":"c"},{"name":"a","parameters":{"binary_data":false}}]})");
  s = SelectOutputs(some, names, tensors);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].name, "c");
  EXPECT_TRUE((*s)[0].binary);
  EXPECT_EQ(Values<float>((*s)[0].tensor)[0], 3.0f);
  EXPECT_EQ((*s)[1].name, "a");
  EXPECT_FALSE((*s)[1].binary);

  InferRequest bad = ParseOk(R"({"inputs":[{"name":"i","datatype":"FP32","shape":[1],)"
                             R"("data":[1]}],"outputs":[{"name":"zz"}]})");
  s = SelectOutputs(bad, names, tensors);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("no output \"zz\""));
  EXPECT_THAT(s.status().message(), HasSubstr("a, b, c"));
}

// ---- Binary tensor data extension -------------------------------------------------------------

// Triton's example: input0 UINT32 [2,2] (16 bytes) and input1 BOOL [3] (3 bytes) as binary data,
// output0 requested as binary. Bytes written by hand, little-endian.
TEST(V2Binary, SpecExampleRequest) {
  const std::string header = R"({
      "model_name" : "mymodel",
      "inputs" : [
        { "name" : "input0", "shape" : [ 2, 2 ], "datatype" : "UINT32",
          "parameters" : { "binary_data_size" : 16 } },
        { "name" : "input1", "shape" : [ 3 ], "datatype" : "BOOL",
          "parameters" : { "binary_data_size" : 3 } }
      ],
      "outputs" : [ { "name" : "output0", "parameters" : { "binary_data" : true } } ]
    })";
  const std::string data =
      Bytes({1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 1, 0, 1});
  ASSERT_EQ(data.size(), 19u);  // "the total size of the binary data is 19 bytes"
  InferRequest r = ParseOk(header + data, header.size());
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_TRUE(r.inputs[0].binary);
  EXPECT_TRUE(r.inputs[0].parameters.is_null());  // binary_data_size consumed
  EXPECT_EQ(Values<uint32_t>(r.inputs[0].tensor), (std::vector<uint32_t>{1, 2, 3, 0x01020304u}));
  EXPECT_EQ(Values<bool>(r.inputs[1].tensor), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(r.OutputBinary("output0"));
}

// Triton's example response: output0 FP32 [3,2] as 24 bytes of binary data.
TEST(V2Binary, SpecExampleResponse) {
  Tensor t = Make<float>(DataType::kFloat, {3, 2}, {1.0f, 2.0f, -1.0f, 0.5f, 0.0f, 3.0f});
  auto r = EncodeInferResponse("mymodel", "", "", json(), {{"output0", t, true, {}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->json_length.has_value());
  EXPECT_EQ(r->content_type, "application/octet-stream");
  const std::string header = r->body.substr(0, *r->json_length);
  EXPECT_EQ(header, R"({"model_name":"mymodel","outputs":[{"name":"output0","shape":[3,2],)"
                    R"("datatype":"FP32","parameters":{"binary_data_size":24}}]})");
  // 1.0f = 0x3f800000, 2.0f = 0x40000000, -1.0f = 0xbf800000, 0.5f = 0x3f000000, 3.0f =
  // 0x40400000, little-endian.
  EXPECT_EQ(r->body.substr(*r->json_length),
            Bytes({0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x80, 0xbf,
                   0, 0, 0,    0x3f, 0, 0, 0, 0,    0, 0, 0x40, 0x40}));
}

TEST(V2Binary, EveryFixedTypeRoundTrips) {
  struct Case {
    const char* type;
    std::string bytes;  // two elements, little-endian, by hand
  };
  const Case cases[] = {
      {"BOOL", Bytes({1, 0})},
      {"UINT8", Bytes({0x00, 0xff})},
      {"UINT16", Bytes({0x34, 0x12, 0xff, 0xff})},
      {"UINT32", Bytes({1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})},
      {"UINT64", Bytes({1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
      {"INT8", Bytes({0x80, 0x7f})},
      {"INT16", Bytes({0x00, 0x80, 0xff, 0x7f})},
      {"INT32", Bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80})},
      {"INT64", Bytes({0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x80})},
      {"FP16", Bytes({0x00, 0x3c, 0xff, 0x7b})},
      {"BF16", Bytes({0x80, 0x3f, 0x00, 0xc0})},
      {"FP32", Bytes({0, 0, 0x80, 0x3f, 0xcd, 0xcc, 0xcc, 0x3d})},
      {"FP64",
       Bytes({0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    std::string header = std::string(R"({"inputs":[{"name":"x","datatype":")") + c.type +
                         R"(","shape":[2],"parameters":{"binary_data_size":)" +
                         std::to_string(c.bytes.size()) + "}}]}";
    InferRequest r = ParseOk(header + c.bytes, header.size());
    ASSERT_EQ(r.inputs.size(), 1u);
    auto e = EncodeInferResponse("m", "", "", json(), {{"x", r.inputs[0].tensor, true, {}}});
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_EQ(e->body.substr(*e->json_length), c.bytes);
    json j = json::parse(e->body.substr(0, *e->json_length));
    EXPECT_EQ(j["outputs"][0]["parameters"]["binary_data_size"], c.bytes.size());
    EXPECT_EQ(j["outputs"][0]["datatype"], c.type);
    EXPECT_FALSE(j["outputs"][0].contains("data"));
  }
  // Values checked through the decoded tensors for a few of them.
  std::string h = R"({"inputs":[{"name":"x","datatype":"INT16","shape":[2],)"
                  R"("parameters":{"binary_data_size":4}}]})";
  InferRequest r = ParseOk(h + Bytes({0x00, 0x80, 0xff, 0x7f}), h.size());
  EXPECT_EQ(Values<int16_t>(r.inputs[0].tensor), (std::vector<int16_t>{-32768, 32767}));
  h = R"({"inputs":[{"name":"x","datatype":"FP64","shape":[1],)"
      R"("parameters":{"binary_data_size":8}}]})";
  r = ParseOk(h + Bytes({0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f}), h.size());
  EXPECT_EQ(Values<double>(r.inputs[0].tensor)[0], 0.1);
}

// BYTES: "an element is represented by a 4-byte unsigned integer giving the length followed by
// the actual bytes".
TEST(V2Binary, BytesLayout) {
  const std::string data = Bytes({3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 2, 0, 0, 0, 0x00, 0xff});
  std::string header = R"({"inputs":[{"name":"s","datatype":"BYTES","shape":[3],)"
                       R"("parameters":{"binary_data_size":17}}]})";
  InferRequest r = ParseOk(header + data, header.size());
  EXPECT_EQ(Values<std::string>(r.inputs[0].tensor),
            (std::vector<std::string>{"abc", "", std::string("\x00\xff", 2)}));
  auto e = EncodeInferResponse("m", "", "", json(), {{"s", r.inputs[0].tensor, true, {}}});
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->body.substr(*e->json_length), data);
}

TEST(V2Binary, MixedJsonAndBinaryInputsAndOutputs) {
  const std::string header =
      R"({"inputs":[)"
      R"({"name":"a","datatype":"INT32","shape":[2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"b","datatype":"FP32","shape":[2],"data":[0.5,1.5]},)"
      R"({"name":"c","datatype":"UINT8","shape":[3],"parameters":{"binary_data_size":3}}],)"
      R"("outputs":[{"name":"b"},{"name":"a","parameters":{"binary_data":true}},)"
      R"({"name":"c","parameters":{"binary_data":true}}]})";
  const std::string data = Bytes({5, 0, 0, 0, 0xfb, 0xff, 0xff, 0xff, 7, 8, 9});
  InferRequest r = ParseOk(header + data, header.size());
  ASSERT_EQ(r.inputs.size(), 3u);
  EXPECT_EQ(Values<int32_t>(r.inputs[0].tensor), (std::vector<int32_t>{5, -5}));
  EXPECT_EQ(Values<float>(r.inputs[1].tensor), (std::vector<float>{0.5f, 1.5f}));
  EXPECT_EQ(Values<uint8_t>(r.inputs[2].tensor), (std::vector<uint8_t>{7, 8, 9}));

  std::vector<std::string> names = {"a", "b", "c"};
  std::vector<Tensor> tensors = {r.inputs[0].tensor, r.inputs[1].tensor, r.inputs[2].tensor};
  auto outs = SelectOutputs(r, names, tensors);
  ASSERT_TRUE(outs.ok());
  auto e = EncodeInferResponse("m", "1", "", json(), *outs);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->body.substr(0, *e->json_length),
            R"({"model_name":"m","model_version":"1","outputs":[)"
            R"({"name":"b","shape":[2],"datatype":"FP32","data":[0.5,1.5]},)"
            R"({"name":"a","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}},)"
            R"({"name":"c","shape":[3],"datatype":"UINT8","parameters":{"binary_data_size":3}}]})");
  // Binary outputs follow the JSON in output order: a then c.
  EXPECT_EQ(e->body.substr(*e->json_length), data);
}

TEST(V2Binary, OutputParametersAreKept) {
  Tensor t = Make<uint8_t>(DataType::kUInt8, {1}, {9});
  auto e = EncodeInferResponse("m", "", "", json(), {{"y", t, true, json({{"note", "x"}})}});
  ASSERT_TRUE(e.ok());
  json j = json::parse(e->body.substr(0, *e->json_length));
  EXPECT_EQ(j["outputs"][0]["parameters"], json({{"binary_data_size", 1}, {"note", "x"}}));
}

TEST(V2Binary, SizeErrors) {
  auto header = [](const std::string& type, const std::string& shape, const std::string& size) {
    return R"({"inputs":[{"name":"x","datatype":")" + type + R"(","shape":)" + shape +
           R"(,"parameters":{"binary_data_size":)" + size + "}}]}";
  };
  std::string h = header("FP32", "[2,2]", "15");
  ExpectInvalid(h + std::string(15, '\0'), {"input \"x\"", "binary_data_size is 15", "needs 16"},
                h.size());
  h = header("FP32", "[2]", "8");
  ExpectInvalid(h + std::string(4, '\0'), {"input \"x\"", "runs past the end"}, h.size());
  ExpectInvalid(h + std::string(12, '\0'), {"4 bytes of binary data", "not claimed"}, h.size());
  ExpectInvalid(h, {"input \"x\"", "no Inference-Header-Content-Length"});
  h = header("FP32", "[2]", "-8");
  ExpectInvalid(h, {"input \"x\"", "non-negative integer"}, h.size());
  h = header("FP32", "[2]", "\"8\"");
  ExpectInvalid(h, {"input \"x\"", "non-negative integer"}, h.size());
  h = header("BOOL", "[2]", "2");
  ExpectInvalid(h + Bytes({1, 2}), {"input \"x\"", "BOOL byte 1 is 2"}, h.size());
  // BYTES framing errors.
  h = header("BYTES", "[2]", "9");
  ExpectInvalid(h + Bytes({1, 0, 0, 0, 'a', 9, 0, 0, 0}), {"input \"x\"", "element 1", "claims 9"},
                h.size());
  h = header("BYTES", "[1]", "7");
  ExpectInvalid(h + Bytes({1, 0, 0, 0, 'a', 'b', 'c'}), {"input \"x\"", "2 bytes left over"},
                h.size());
  h = header("BYTES", "[1]", "2");
  ExpectInvalid(h + Bytes({1, 0}), {"input \"x\"", "too small"}, h.size());
  // A huge BYTES shape with a tiny binary section is refused before allocating.
  h = header("BYTES", "[60000000]", "8");
  ExpectInvalid(h + std::string(8, '\0'), {"input \"x\"", "too small", "60000000"}, h.size());
  // Both data and binary_data_size.
  h = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],)"
      R"("parameters":{"binary_data_size":4}}]})";
  ExpectInvalid(h + std::string(4, '\0'), {"input \"x\"", "both"}, h.size());
  // Header length beyond the body.
  ExpectInvalid("{}", {"Inference-Header-Content-Length is 10"}, 10);
  // Header length cutting the JSON short.
  std::string j = OneInput("FP32", "[1]", "[1]");
  ExpectInvalid(j, {"invalid request JSON"}, j.size() - 1);
  // Binary output parameter of the wrong type.
  ExpectInvalid(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],)"
                R"("outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]})",
                {"output \"y\"", "binary_data must be true or false"});
}

TEST(V2Binary, HeaderLengthEqualToBodyIsPlainJson) {
  std::string j = OneInput("FP32", "[1]", "[1]");
  InferRequest r = ParseOk(j, j.size());
  EXPECT_EQ(Values<float>(r.inputs[0].tensor)[0], 1.0f);
}

TEST(V2Binary, RawBinaryRequest) {
  // Header length 0 is the raw binary request: not parseable without the model's metadata.
  auto r = ParseInferRequest(Bytes({0, 0, 0x80, 0x3f}), 0, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);

  // With the metadata: FP32 [-1, 2] from 16 bytes gives shape [2, 2].
  std::vector<int64_t> dims = {-1, 2};
  auto raw = ParseRawBinaryInput(std::string(16, '\0'), "in", DataType::kFloat, dims);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  EXPECT_EQ(raw->inputs[0].shape, Shape({2, 2}));
  EXPECT_TRUE(raw->all_outputs_binary);
  raw = ParseRawBinaryInput(std::string(12, '\0'), "in", DataType::kFloat, dims);
  ASSERT_FALSE(raw.ok());
  EXPECT_THAT(raw.status().message(), HasSubstr("input \"in\""));
  std::vector<int64_t> two_var = {-1, -1};
  EXPECT_FALSE(ParseRawBinaryInput(std::string(16, '\0'), "in", DataType::kFloat, two_var).ok());
  // BYTES: the body is the single element; the model's shape must be [1].
  std::vector<int64_t> one = {1};
  raw = ParseRawBinaryInput("hello", "s", DataType::kString, one);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(Values<std::string>(raw->inputs[0].tensor)[0], "hello");
  EXPECT_FALSE(ParseRawBinaryInput("hello", "s", DataType::kString, dims).ok());
}

// ---- Errors, metadata, repository ---------------------------------------------------------------

TEST(V2Misc, ErrorBodyIsEscapedJson) {
  EXPECT_EQ(EncodeError("bad input"), R"({"error":"bad input"})");
  EXPECT_EQ(EncodeError("a \"q\" \\ \n\t\x01"), R"({"error":"a \"q\" \\ \n\t\u0001"})");
  // Invalid UTF-8 is replaced by U+FFFD so the body stays valid JSON.
  EXPECT_EQ(EncodeError("x\xffy"), "{\"error\":\"x\xef\xbf\xbdy\"}");
  EXPECT_EQ(json::parse(EncodeError("\xc3\xa9\xe2\x82\xac"))["error"], "\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(HttpStatusFor(Code::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(Code::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(Code::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(Code::kInternal), 500);
  EXPECT_EQ(HttpStatusFor(Code::kDeadlineExceeded), 504);
}

TEST(V2Misc, HealthAndServerMetadata) {
  EXPECT_EQ(EncodeServerLive(true), R"({"live":true})");
  EXPECT_EQ(EncodeServerReady(false), R"({"ready":false})");
  EXPECT_EQ(EncodeModelReady("iris", true), R"({"name":"iris","ready":true})");
  EXPECT_EQ(EncodeServerMetadata(
                "outpost", "0.1.0",
                {std::string(kExtensionBinaryTensorData), std::string(kExtensionModelRepository)}),
            R"({"name":"outpost","version":"0.1.0",)"
            R"("extensions":["binary_tensor_data","model_repository"]})");
}

TEST(V2Misc, ModelMetadata) {
  auto m = EncodeModelMetadata(
      "iris", {"1", "2"}, kPlatformOnnx, {{"float_input", DataType::kFloat, {-1, 4}}},
      {{"label", DataType::kInt64, {-1}}, {"probabilities", DataType::kFloat, {-1, 3}}});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, R"({"name":"iris","versions":["1","2"],"platform":"onnx_onnxv1",)"
                R"("inputs":[{"name":"float_input","datatype":"FP32","shape":[-1,4]}],)"
                R"("outputs":[{"name":"label","datatype":"INT64","shape":[-1]},)"
                R"({"name":"probabilities","datatype":"FP32","shape":[-1,3]}]})");
  auto no_versions = EncodeModelMetadata("m", {}, kPlatformOnnx, {}, {});
  ASSERT_TRUE(no_versions.ok());
  EXPECT_EQ(*no_versions, R"({"name":"m","platform":"onnx_onnxv1","inputs":[],"outputs":[]})");
  auto bad = EncodeModelMetadata("m", {}, kPlatformOnnx, {{"q", DataType::kFloat8E4M3FN, {1}}}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("input \"q\""));
}

TEST(V2Misc, RepositoryIndex) {
  auto r = ParseRepositoryIndexRequest(R"({"ready":true})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ready);
  r = ParseRepositoryIndexRequest("");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ready);
  r = ParseRepositoryIndexRequest("{}");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ready);
  EXPECT_FALSE(ParseRepositoryIndexRequest(R"({"ready":"yes"})").ok());
  EXPECT_FALSE(ParseRepositoryIndexRequest("[1]").ok());
  EXPECT_FALSE(ParseRepositoryIndexRequest("{").ok());
  EXPECT_EQ(EncodeRepositoryIndex(
                {{"iris", "1", "READY", ""}, {"bad", "", "UNAVAILABLE", "load failed: \"x\""}}),
            R"([{"name":"iris","version":"1","state":"READY","reason":""},)"
            R"({"name":"bad","state":"UNAVAILABLE","reason":"load failed: \"x\""}])");
  EXPECT_EQ(EncodeRepositoryIndex({}), "[]");

  auto p = ParseRepositoryModelRequest(R"({"parameters":{"unload_dependents":true}})");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, json({{"unload_dependents", true}}));
  p = ParseRepositoryModelRequest("");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->is_null());
  EXPECT_FALSE(ParseRepositoryModelRequest(R"({"parameters":3})").ok());
}

TEST(V2Response, RefusesTensorsItCannotSend) {
  Tensor meta = Tensor::Meta(DataType::kFloat, {2});
  auto r = EncodeInferResponse("m", "", "", json(), {{"y", meta, false, {}}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("output \"y\""));
  Tensor undefined;
  EXPECT_FALSE(EncodeInferResponse("m", "", "", json(), {{"y", undefined, false, {}}}).ok());
  Tensor t = Make<float>(DataType::kFloat, {1}, {1});
  EXPECT_FALSE(EncodeInferResponse("m", "", "", json({1, 2}), {{"y", t, false, {}}}).ok());
}

// Every JSON response of the codec parses back to the tensors it was built from.
TEST(V2Response, JsonRoundTripThroughAParser) {
  InferRequest r = ParseOk(
      R"({"inputs":[{"name":"a","datatype":"FP32","shape":[2,3],"data":[[1e-45,3.4028235e38,-0.0],[1,2,3]]},)"
      R"({"name":"b","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},)"
      R"({"name":"c","datatype":"BYTES","shape":[1],"data":["\u0000\u001f"]}]})");
  std::vector<InferOutput> outs;
  for (const InferInput& in : r.inputs) outs.push_back({in.name, in.tensor, false, {}});
  std::string body = Response(outs);
  InferRequest back = ParseOk(R"({"inputs":[)" + [&] {
    json j = json::parse(body);
    std::string s;
    for (size_t i = 0; i < j["outputs"].size(); ++i) {
      if (i) s += ",";
      s += j["outputs"][i].dump();
    }
    return s;
  }() + "]}");
  ASSERT_EQ(back.inputs.size(), 3u);
  auto a0 = Values<float>(r.inputs[0].tensor);
  auto a1 = Values<float>(back.inputs[0].tensor);
  ASSERT_EQ(a0.size(), a1.size());
  for (size_t i = 0; i < a0.size(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, &a0[i], 4);
    std::memcpy(&y, &a1[i], 4);
    EXPECT_EQ(x, y) << i;  // bit-exact, including -0 and the smallest subnormal
  }
  EXPECT_EQ(Values<uint64_t>(back.inputs[1].tensor)[0], 18446744073709551615ull);
  EXPECT_EQ(Values<std::string>(back.inputs[2].tensor)[0], std::string("\0\x1f", 2));
}

}  // namespace
}  // namespace outpost::serve::v2
