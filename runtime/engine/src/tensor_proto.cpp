// TensorProto decoding (inline and external data), and .pb / .npy tensor files.
#include "tensor_proto.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <onnx/onnx_pb.h>

#include "outpost/core/tensor_file.h"
#include "outpost/engine/session.h"

namespace outpost {
namespace fs = std::filesystem;

namespace {

Status ReadExternal(const onnx::TensorProto& tp, const std::string& base_dir, void* dst, size_t bytes) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (auto& kv : tp.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = std::strtoll(kv.value().c_str(), nullptr, 10);
    else if (kv.key() == "length") length = std::strtoll(kv.value().c_str(), nullptr, 10);
  }
  if (location.empty()) return InvalidModel("external data without a location");
  fs::path rel(location);
  if (rel.is_absolute()) return InvalidModel("external data location '" + location + "' is an absolute path");
  for (auto& part : rel)
    if (part == "..") return InvalidModel("external data location '" + location + "' leaves the model directory");
  if (base_dir.empty()) return InvalidModel("external data '" + location + "' but the model was not loaded from a file");
  std::error_code ec;
  fs::path base = fs::canonical(base_dir, ec);
  if (ec) return NotFound("model directory '" + base_dir + "': " + ec.message());
  fs::path full = fs::weakly_canonical(base / rel, ec);
  if (ec) return NotFound("external data '" + location + "': " + ec.message());
  auto [mis, _] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (mis != base.end()) return InvalidModel("external data location '" + location + "' resolves outside the model directory");
  if (offset < 0 || (length >= 0 && static_cast<size_t>(length) != bytes))
    return InvalidModel("external data '" + location + "': offset " + std::to_string(offset) + " / length " +
                        std::to_string(length) + " do not match the tensor's " + std::to_string(bytes) + " bytes");
  int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("external data file '" + location + "': " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidModel("external data '" + location + "' is not a regular file");
  }
  if (static_cast<uint64_t>(offset) + bytes > static_cast<uint64_t>(st.st_size)) {
    ::close(fd);
    return InvalidModel("external data '" + location + "' is truncated: needs " + std::to_string(offset + bytes) +
                        " bytes, file has " + std::to_string(st.st_size));
  }
  size_t done = 0;
  while (done < bytes) {
    ssize_t r = ::pread(fd, static_cast<char*>(dst) + done, bytes - done, offset + static_cast<off_t>(done));
    if (r <= 0) {
      ::close(fd);
      return IoError("reading external data '" + location + "': " + (r < 0 ? std::strerror(errno) : "unexpected end"));
    }
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  return Status::Ok();
}

template <typename Field>
Status CheckCount(const Field& f, int64_t n, const char* name) {
  if (static_cast<int64_t>(f.size()) != n)
    return InvalidModel(std::string(name) + " holds " + std::to_string(f.size()) + " values, the shape needs " +
                        std::to_string(n));
  return Status::Ok();
}

// The sub-byte types (int4 / uint4 / float4e2m1: two values a byte; int2 / uint2: four), low
// bits first, in raw_data, external data, or int32_data (one packed byte per element). Held
// unpacked, one value per byte (dtype.h): the integers sign- or zero-extended, float4e2m1 as its
// 4-bit code.
Expected<Tensor> ReadSubByte(const onnx::TensorProto& tp, const std::string& base_dir, const Shape& shape) {
  const DataType dt = static_cast<DataType>(tp.data_type());
  const int bits = PackedBits(dt);
  OP_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(dt, shape));
  const int64_t n = t.numel();
  const size_t packed = static_cast<size_t>((n * bits + 7) / 8);
  std::string buf;
  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    buf.resize(packed);
    OP_RETURN_IF_ERROR(ReadExternal(tp, base_dir, buf.data(), packed).WithContext("tensor '" + tp.name() + "'"));
  } else if (tp.has_raw_data()) {
    buf = tp.raw_data();
  } else {
    for (int32_t v : tp.int32_data()) buf.push_back(static_cast<char>(v & 0xFF));
  }
  if (buf.size() != packed)
    return InvalidModel(std::to_string(bits) + "-bit tensor '" + tp.name() + "' has " + std::to_string(buf.size()) +
                        " packed bytes, its shape needs " + std::to_string(packed));
  UnpackSubByte(dt, reinterpret_cast<const uint8_t*>(buf.data()), n, static_cast<uint8_t*>(t.raw()));
  return t;
}

}  // namespace

Expected<Tensor> TensorFromProto(const onnx::TensorProto& tp, const std::string& base_dir) {
  DataType dt = static_cast<DataType>(tp.data_type());
  if (tp.has_segment()) return Unsupported("segmented tensors are not supported");
  if (!IsStorable(dt))
    return Unsupported("tensor '" + tp.name() + "' has data type " + std::string(DataTypeName(dt)) +
                       " (" + std::to_string(tp.data_type()) + "), which is not supported");
  std::vector<int64_t> dims(tp.dims().begin(), tp.dims().end());
  for (int64_t d : dims)
    if (d < 0) return InvalidModel("tensor '" + tp.name() + "' has negative dimension " + std::to_string(d));
  OP_ASSIGN_OR_RETURN(Shape shape, Shape::From(dims));
  // An element count that overflows is a malformed (or hostile) file, not a memory shortage.
  uint64_t count = 1;
  for (int64_t d : dims) {
    if (d != 0 && count > (uint64_t{1} << 62) / static_cast<uint64_t>(d))
      return InvalidModel("tensor '" + tp.name() + "' has dims " + shape.ToString() + " whose element count overflows");
    count *= static_cast<uint64_t>(d);
  }
  if (PackedBits(dt)) return ReadSubByte(tp, base_dir, shape);
  OP_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(dt, shape));
  int64_t n = t.numel();
  size_t bytes = t.nbytes();
  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    if (dt == DataType::kString) return InvalidModel("string tensors cannot use external data");
    OP_RETURN_IF_ERROR(ReadExternal(tp, base_dir, t.raw(), bytes).WithContext("tensor '" + tp.name() + "'"));
    return t;
  }
  if (tp.has_raw_data()) {
    if (dt == DataType::kString) return InvalidModel("string tensor '" + tp.name() + "' uses raw_data");
    if (tp.raw_data().size() != bytes)
      return InvalidModel("tensor '" + tp.name() + "' raw_data has " + std::to_string(tp.raw_data().size()) +
                          " bytes, its type and shape need " + std::to_string(bytes));
    if (bytes) std::memcpy(t.raw(), tp.raw_data().data(), bytes);
    return t;
  }
  Status st;
  switch (dt) {
    case DataType::kFloat:
      st = CheckCount(tp.float_data(), n, "float_data");
      if (st.ok() && n) std::memcpy(t.raw(), tp.float_data().data(), bytes);
      break;
    case DataType::kDouble:
      st = CheckCount(tp.double_data(), n, "double_data");
      if (st.ok() && n) std::memcpy(t.raw(), tp.double_data().data(), bytes);
      break;
    case DataType::kInt64:
      st = CheckCount(tp.int64_data(), n, "int64_data");
      if (st.ok() && n) std::memcpy(t.raw(), tp.int64_data().data(), bytes);
      break;
    case DataType::kUInt32:
    case DataType::kUInt64:
      st = CheckCount(tp.uint64_data(), n, "uint64_data");
      if (st.ok())
        for (int64_t i = 0; i < n; ++i) {
          if (dt == DataType::kUInt32) t.data<uint32_t>()[i] = static_cast<uint32_t>(tp.uint64_data(i));
          else t.data<uint64_t>()[i] = tp.uint64_data(i);
        }
      break;
    case DataType::kString:
      st = CheckCount(tp.string_data(), n, "string_data");
      if (st.ok())
        for (int64_t i = 0; i < n; ++i) t.data<std::string>()[i] = tp.string_data(i);
      break;
    default: {  // everything narrower than 32 bits, and int32, lives in int32_data
      st = CheckCount(tp.int32_data(), n, "int32_data");
      if (!st.ok()) break;
      size_t es = DataTypeSize(dt);
      for (int64_t i = 0; i < n; ++i) {
        int32_t v = tp.int32_data(i);
        if (dt == DataType::kBool) v = v != 0;
        std::memcpy(static_cast<char*>(t.raw()) + i * es, &v, es);  // little-endian truncation
      }
    }
  }
  if (!st.ok()) return st.WithContext("tensor '" + tp.name() + "'");
  return t;
}

namespace engine {

Expected<Tensor> ParseTensorProto(const std::string& bytes) {
  onnx::TensorProto tp;
  if (!tp.ParseFromString(bytes)) return InvalidArgument("not a serialized onnx TensorProto");
  return TensorFromProto(tp, "");
}

Expected<Tensor> ReadTensorFile(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFound("tensor file '" + path + "' does not exist");
  auto size = fs::file_size(path, ec);
  if (ec || size > (4ull << 30)) return InvalidArgument("tensor file '" + path + "' is unreadable or too large");
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) return IoError("reading '" + path + "'");
  if (path.size() >= 4 && path.substr(path.size() - 4) == ".npy") return outpost::ParseNpy(bytes, path);
  auto t = ParseTensorProto(bytes);
  if (!t.ok()) return t.status().WithContext("'" + path + "'");
  return t;
}

Status WriteNpy(const std::string& path, const Tensor& t) {
  const char* code = nullptr;
  switch (t.dtype()) {
    case DataType::kFloat: code = "<f4"; break;
    case DataType::kDouble: code = "<f8"; break;
    case DataType::kFloat16: code = "<f2"; break;
    case DataType::kInt8: code = "|i1"; break;
    case DataType::kInt16: code = "<i2"; break;
    case DataType::kInt32: code = "<i4"; break;
    case DataType::kInt64: code = "<i8"; break;
    case DataType::kUInt8: code = "|u1"; break;
    case DataType::kUInt16: code = "<u2"; break;
    case DataType::kUInt32: code = "<u4"; break;
    case DataType::kUInt64: code = "<u8"; break;
    case DataType::kBool: code = "|b1"; break;
    default: return Unsupported("cannot write " + std::string(DataTypeName(t.dtype())) + " tensors as .npy");
  }
  std::string shape = "(";
  for (int i = 0; i < t.rank(); ++i) shape += std::to_string(t.dim(i)) + (t.rank() == 1 || i + 1 < t.rank() ? "," : "");
  shape += ")";
  std::string header = "{'descr': '" + std::string(code) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return IoError("cannot create '" + tmp + "': " + std::strerror(errno));
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    f.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
    if (!f.good()) return IoError("writing '" + tmp + "' failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return IoError("renaming '" + tmp + "': " + ec.message());
  return Status::Ok();
}

}  // namespace engine
}  // namespace outpost
