// .npy and TensorProto (.pb) files into host tensors, without protobuf: the TensorProto fields are
// read from the wire format (field numbers of onnx.proto3's TensorProto).
#include "outpost/core/tensor_file.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace outpost {
namespace {

namespace fs = std::filesystem;

// Reads the tensor's element count and storage after the checks both formats share.
Expected<Tensor> AllocateChecked(DataType dt, const std::vector<int64_t>& dims,
                                 const std::string& what) {
  uint64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument(what + ": negative dimension " + std::to_string(d));
    if (d != 0 && count > (uint64_t{1} << 40) / static_cast<uint64_t>(d))
      return InvalidArgument(what + ": element count overflows");
    count *= static_cast<uint64_t>(d);
  }
  OP_ASSIGN_OR_RETURN(Shape shape, Shape::From(dims));
  return Tensor::Allocate(dt, shape);
}

// ---- protobuf wire format ----------------------------------------------------------------------

class Wire {
 public:
  explicit Wire(std::string_view b) : b_(b) {}
  bool done() const { return p_ >= b_.size(); }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= b_.size()) return false;
      const uint8_t c = static_cast<uint8_t>(b_[p_++]);
      *v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  }
  bool Fixed(size_t n, uint64_t* v) {
    if (b_.size() - p_ < n) return false;
    *v = 0;
    for (size_t i = 0; i < n; ++i) *v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[p_ + i])) << (8 * i);
    p_ += n;
    return true;
  }
  bool Bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!Varint(&n) || n > b_.size() - p_) return false;
    *out = b_.substr(p_, n);
    p_ += n;
    return true;
  }
  // Skips a field of wire type `wt`; false on a malformed or group field.
  bool Skip(uint32_t wt) {
    uint64_t v = 0;
    std::string_view s;
    switch (wt) {
      case 0: return Varint(&v);
      case 1: return Fixed(8, &v);
      case 2: return Bytes(&s);
      case 5: return Fixed(4, &v);
      default: return false;
    }
  }

 private:
  std::string_view b_;
  size_t p_ = 0;
};

// A repeated scalar field, packed (wire type 2) or not. `fixed` = 4 or 8 bytes, 0 = varint.
bool ReadRepeated(Wire* w, uint32_t wt, size_t fixed, std::vector<uint64_t>* out) {
  auto one = [&](Wire* from) {
    uint64_t v = 0;
    if (!(fixed ? from->Fixed(fixed, &v) : from->Varint(&v))) return false;
    out->push_back(v);
    return true;
  };
  if (wt == 2) {
    std::string_view s;
    if (!w->Bytes(&s)) return false;
    Wire packed(s);
    while (!packed.done())
      if (!one(&packed)) return false;
    return true;
  }
  if (wt != (fixed == 4 ? 5u : fixed == 8 ? 1u : 0u)) return false;
  return one(w);
}

}  // namespace

Expected<Tensor> ParseTensorProtoWire(std::string_view bytes, const std::string& what) {
  auto bad = [&](const std::string& m) {
    return InvalidArgument(what + " is not a valid TensorProto: " + m);
  };
  std::vector<uint64_t> dims, floats, int32s, int64s, doubles, uint64s;
  std::string_view raw;
  bool has_raw = false;
  uint64_t data_type = 0, location = 0;
  Wire w(bytes);
  while (!w.done()) {
    uint64_t key = 0;
    if (!w.Varint(&key)) return bad("truncated field key");
    const uint32_t field = static_cast<uint32_t>(key >> 3), wt = static_cast<uint32_t>(key & 7);
    bool ok = true;
    switch (field) {
      case 1: ok = ReadRepeated(&w, wt, 0, &dims); break;
      case 2: ok = wt == 0 && w.Varint(&data_type); break;
      case 3: return Unsupported(what + ": segmented TensorProto");
      case 4: ok = ReadRepeated(&w, wt, 4, &floats); break;
      case 5: ok = ReadRepeated(&w, wt, 0, &int32s); break;
      case 6: return Unsupported(what + ": string tensors are not read");
      case 7: ok = ReadRepeated(&w, wt, 0, &int64s); break;
      case 9: ok = wt == 2 && w.Bytes(&raw); has_raw = true; break;
      case 10: ok = ReadRepeated(&w, wt, 8, &doubles); break;
      case 11: ok = ReadRepeated(&w, wt, 0, &uint64s); break;
      case 14: ok = wt == 0 && w.Varint(&location); break;
      default: ok = w.Skip(wt);  // name, doc_string, external_data (seen via location), ...
    }
    if (!ok) return bad("field " + std::to_string(field) + " is malformed");
  }
  if (location != 0) return Unsupported(what + ": external data is not read");
  const DataType dt = static_cast<DataType>(data_type);
  if (dt == DataType::kString || DataTypeSize(dt) == 0)
    return Unsupported(what + ": data type " + std::to_string(data_type) + " is not read");
  std::vector<int64_t> shape(dims.begin(), dims.end());
  OP_ASSIGN_OR_RETURN(Tensor t, AllocateChecked(dt, shape, what));
  const size_t n = static_cast<size_t>(t.numel()), es = DataTypeSize(dt);
  char* dst = static_cast<char*>(t.raw());
  if (const int bits = PackedBits(dt)) {  // packed in raw_data, or a byte per int32_data value
    const size_t packed = (n * static_cast<size_t>(bits) + 7) / 8;
    std::string bytes = has_raw ? std::string(raw) : std::string();
    if (!has_raw)
      for (uint64_t v : int32s) bytes.push_back(static_cast<char>(v & 0xFF));
    if (bytes.size() != packed)
      return bad(std::string(has_raw ? "raw_data" : "int32_data") + " holds " +
                 std::to_string(bytes.size()) + " packed bytes, " + t.Describe() + " needs " +
                 std::to_string(packed));
    UnpackSubByte(dt, reinterpret_cast<const uint8_t*>(bytes.data()), t.numel(),
                  reinterpret_cast<uint8_t*>(dst));
    return t;
  }
  if (has_raw) {
    if (raw.size() != t.nbytes())
      return bad("raw_data has " + std::to_string(raw.size()) + " bytes, " + t.Describe() +
                 " needs " + std::to_string(t.nbytes()));
    if (n) std::memcpy(dst, raw.data(), raw.size());
    return t;
  }
  const std::vector<uint64_t>* src = nullptr;
  const char* field = nullptr;
  switch (dt) {
    case DataType::kFloat: src = &floats; field = "float_data"; break;
    case DataType::kDouble: src = &doubles; field = "double_data"; break;
    case DataType::kInt64: src = &int64s; field = "int64_data"; break;
    case DataType::kUInt32:
    case DataType::kUInt64: src = &uint64s; field = "uint64_data"; break;
    default: src = &int32s; field = "int32_data";  // narrower types, int32, float16, bool
  }
  if (src->size() != n)
    return bad(std::string(field) + " holds " + std::to_string(src->size()) + " values, " +
               t.Describe() + " needs " + std::to_string(n));
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = (*src)[i];
    if (dt == DataType::kBool) v = v != 0;
    std::memcpy(dst + i * es, &v, es);  // little-endian truncation, as protobuf stores them
  }
  return t;
}

Expected<Tensor> ParseNpy(std::string_view b, const std::string& what) {
  auto bad = [&](const std::string& m) {
    return InvalidArgument("'" + what + "' is not a valid .npy file: " + m);
  };
  if (b.size() < 10 || b.substr(0, 6) != "\x93NUMPY") return bad("missing magic");
  const int major = static_cast<unsigned char>(b[6]);
  size_t hlen = 0, hstart = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) return bad("short header");
    for (int i = 0; i < 4; ++i)
      hlen |= static_cast<size_t>(static_cast<unsigned char>(b[8 + i])) << (8 * i);
    hstart = 12;
  } else {
    return bad("version " + std::to_string(major));
  }
  if (hstart + hlen > b.size()) return bad("header runs past the end");
  const std::string h(b.substr(hstart, hlen));
  auto field = [&](const std::string& key) -> std::string {
    size_t p = h.find("'" + key + "'");
    if (p == std::string::npos) return "";
    p = h.find(':', p);
    if (p == std::string::npos) return "";
    ++p;
    while (p < h.size() && h[p] == ' ') ++p;
    if (p >= h.size()) return "";
    if (h[p] == '\'') {
      size_t e = h.find('\'', p + 1);
      return e == std::string::npos ? "" : h.substr(p + 1, e - p - 1);
    }
    if (h[p] == '(') {
      size_t e = h.find(')', p);
      return e == std::string::npos ? "" : h.substr(p + 1, e - p - 1);
    }
    size_t e = h.find_first_of(",}", p);
    return h.substr(p, e == std::string::npos ? std::string::npos : e - p);
  };
  const std::string descr = field("descr"), fortran = field("fortran_order"), shp = field("shape");
  if (fortran.find("True") != std::string::npos)
    return Unsupported("'" + what + "': fortran_order arrays are not read");
  if (descr.size() < 3) return bad("no dtype");
  const std::string code = descr.substr(1);
  if (descr[0] == '>' && code != "u1" && code != "i1" && code != "b1")
    return Unsupported("'" + what + "': big-endian data is not read");
  static const std::pair<const char*, DataType> kCodes[] = {
      {"f4", DataType::kFloat}, {"f8", DataType::kDouble},  {"f2", DataType::kFloat16},
      {"i1", DataType::kInt8},  {"i2", DataType::kInt16},   {"i4", DataType::kInt32},
      {"i8", DataType::kInt64}, {"u1", DataType::kUInt8},   {"u2", DataType::kUInt16},
      {"u4", DataType::kUInt32}, {"u8", DataType::kUInt64}, {"b1", DataType::kBool}};
  DataType dt = DataType::kUndefined;
  for (const auto& [c, t] : kCodes)
    if (code == c) dt = t;
  if (dt == DataType::kUndefined)
    return Unsupported("'" + what + "': dtype '" + descr + "' is not read");
  std::vector<int64_t> dims;
  std::stringstream ss(shp);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    const size_t s = tok.find_first_not_of(' ');
    if (s == std::string::npos) continue;
    char* end = nullptr;
    const long long v = std::strtoll(tok.c_str() + s, &end, 10);
    if (end == tok.c_str() + s || v < 0) return bad("shape '" + shp + "'");
    dims.push_back(v);
  }
  OP_ASSIGN_OR_RETURN(Tensor t, AllocateChecked(dt, dims, "'" + what + "'"));
  const size_t start = hstart + hlen;
  if (b.size() - start != t.nbytes())
    return bad("data has " + std::to_string(b.size() - start) + " bytes, shape " +
               t.shape().ToString() + " needs " + std::to_string(t.nbytes()));
  if (t.nbytes()) std::memcpy(t.raw(), b.data() + start, t.nbytes());
  return t;
}

Expected<Tensor> ReadNpyOrTensorProto(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFound("tensor file '" + path + "' does not exist");
  const auto size = fs::file_size(path, ec);
  if (ec || size > (1ull << 32))
    return InvalidArgument("tensor file '" + path + "' is unreadable or too large");
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) return IoError("reading '" + path + "'");
  if (fs::path(path).extension() == ".npy") return ParseNpy(bytes, path);
  return ParseTensorProtoWire(bytes, "'" + path + "'");
}

}  // namespace outpost
