// runtime/core's tensor files without protobuf: .npy and TensorProto .pb read from the wire
// format. The references are numpy's files (tests/models/make_multi_io.py) and the engine's
// libonnx reader on the ONNX node test suite.
#include "outpost/core/tensor_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "outpost/engine/session.h"

namespace outpost {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path Source() {
  const char* s = std::getenv("OUTPOST_SOURCE_DIR");
  return s ? fs::path(s) : fs::path(".");
}

std::string Bytes(const Tensor& t) { return {static_cast<const char*>(t.raw()), t.nbytes()}; }

std::string Npy(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  h += std::string((64 - (10 + h.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h + data;
}

TEST(TensorFile, TensorProtoFilesMatchNumpysNpyOfTheSameTensors) {
  const fs::path g = Source() / "tests/models/golden_numpy/multi_io";
  // input_pb holds typed fields (float_data, int64_data), output_pb raw_data.
  for (const auto& [pb, npy] : {std::pair{"input_pb/x.pb", "input/x.npy"},
                                std::pair{"input_pb/k.pb", "input/k.npy"},
                                std::pair{"output_pb/y.pb", "output/y.npy"},
                                std::pair{"output_pb/idx.pb", "output/idx.npy"}}) {
    auto a = ReadNpyOrTensorProto((g / pb).string());
    auto b = ReadNpyOrTensorProto((g / npy).string());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(a->dtype(), b->dtype()) << pb;
    EXPECT_EQ(a->shape(), b->shape()) << pb;
    EXPECT_EQ(Bytes(*a), Bytes(*b)) << pb;
  }
  auto k = ReadNpyOrTensorProto((g / "input_pb/k.pb").string());
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->dtype(), DataType::kInt64);
  EXPECT_EQ(k->shape(), Shape({2, 4}));
}

TEST(TensorFile, WireReaderAgreesWithLibonnxOnTheNodeTestSuite) {
  const char* suite = std::getenv("OUTPOST_SUITE_DIR");
  if (suite == nullptr || !fs::is_directory(suite)) GTEST_SKIP() << "OUTPOST_SUITE_DIR not set";
  int compared = 0, unsupported = 0;
  for (const auto& e : fs::recursive_directory_iterator(suite)) {
    if (e.path().extension() != ".pb") continue;
    auto want = engine::ReadTensorFile(e.path().string());
    if (!want.ok() || want->dtype() == DataType::kString) continue;  // not a tensor, or strings
    auto got = ReadNpyOrTensorProto(e.path().string());
    if (!got.ok()) {
      // Only the types core does not hold unpacked (4-bit) may be refused.
      EXPECT_EQ(got.status().code(), Code::kUnsupported) << e.path() << got.status().ToString();
      ++unsupported;
      continue;
    }
    ASSERT_EQ(got->dtype(), want->dtype()) << e.path();
    ASSERT_EQ(got->shape(), want->shape()) << e.path();
    ASSERT_EQ(Bytes(*got), Bytes(*want)) << e.path();
    ++compared;
  }
  EXPECT_GT(compared, 3000);
  EXPECT_LT(unsupported, 100);
}

TEST(TensorFile, NpyTypesAndErrors) {
  std::string h = {'\x00', '\x3c', '\x00', '\xc0'};  // float16 1.0, -2.0
  auto f16 = ParseNpy(Npy("<f2", "(2,)", h), "h");
  ASSERT_TRUE(f16.ok()) << f16.status().ToString();
  EXPECT_EQ(f16->dtype(), DataType::kFloat16);
  EXPECT_EQ(ReadDouble(*f16, 0), 1.0);
  EXPECT_EQ(ReadDouble(*f16, 1), -2.0);
  auto b = ParseNpy(Npy("|b1", "(1, 3)", std::string("\x01\x00\x01", 3)), "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->dtype(), DataType::kBool);
  EXPECT_EQ(ReadInt(*b, 2), 1);
  auto i8 = ParseNpy(Npy("|i1", "()", "\xfe"), "i8");  // a scalar
  ASSERT_TRUE(i8.ok());
  EXPECT_EQ(i8->rank(), 0);
  EXPECT_EQ(ReadInt(*i8, 0), -2);
  EXPECT_EQ(ParseNpy(Npy(">f4", "(1,)", "abcd"), "be").status().code(), Code::kUnsupported);
  EXPECT_THAT(ParseNpy(Npy("<f4", "(2,)", "abcd"), "short").status().message(),
              HasSubstr("data has 4 bytes, shape [2] needs 8"));
  EXPECT_EQ(ParseNpy(Npy("<c8", "(1,)", "abcdefgh"), "c").status().code(), Code::kUnsupported);
  EXPECT_EQ(ParseNpy("nope", "x").status().code(), Code::kInvalidArgument);
}

TEST(TensorFile, MalformedTensorProtosAreRefused) {
  // dims 2 (field 1 varint), data_type FLOAT, raw_data of 4 bytes: too short for 2 floats.
  const std::string short_raw = std::string("\x08\x02\x10\x01\x4a\x04", 6) + "abcd";
  EXPECT_THAT(ParseTensorProtoWire(short_raw, "t").status().message(),
              HasSubstr("raw_data has 4 bytes, float32[2] needs 8"));
  // raw_data claiming 100 bytes.
  EXPECT_THAT(ParseTensorProtoWire(std::string("\x08\x02\x10\x01\x4a\x64", 6), "t")
                  .status()
                  .message(),
              HasSubstr("field 9 is malformed"));
  // External data (data_location = 1) and strings are not read.
  EXPECT_EQ(ParseTensorProtoWire(std::string("\x08\x01\x10\x01\x70\x01", 6), "t").status().code(),
            Code::kUnsupported);
  EXPECT_EQ(ParseTensorProtoWire(std::string("\x08\x01\x10\x08\x32\x01x", 7), "t").status().code(),
            Code::kUnsupported);
  EXPECT_EQ(ReadNpyOrTensorProto("/nonexistent.pb").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace outpost
