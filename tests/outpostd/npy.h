// Reads the little-endian float32 .npy files of tests/models/golden (NumPy format 1.0/2.0:
// magic, version, header length, a Python dict literal with descr, fortran_order and shape).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace outpost::testing {

struct NpyFloat {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  int64_t row_elems() const { return shape.empty() || shape[0] == 0 ? 0 : data.size() / shape[0]; }
};

inline std::optional<NpyFloat> ReadNpyFloat(const std::string& path, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string b = ss.str();
  auto fail = [&](const std::string& m) -> std::optional<NpyFloat> {
    *error = path + ": " + m;
    return std::nullopt;
  };
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) return fail("not a .npy file");
  size_t hlen, hstart;
  if (b[6] == 1) {
    hlen = static_cast<uint8_t>(b[8]) | static_cast<uint8_t>(b[9]) << 8;
    hstart = 10;
  } else {
    if (b.size() < 12) return fail("short header");
    hlen = 0;
    for (int i = 0; i < 4; ++i)
      hlen |= static_cast<size_t>(static_cast<uint8_t>(b[8 + i])) << (8 * i);
    hstart = 12;
  }
  if (hstart + hlen > b.size()) return fail("short header");
  const std::string h = b.substr(hstart, hlen);
  if (h.find("'descr': '<f4'") == std::string::npos) return fail("not little-endian float32");
  if (h.find("'fortran_order': False") == std::string::npos) return fail("fortran order");
  const size_t sp = h.find("'shape': (");
  if (sp == std::string::npos) return fail("no shape");
  NpyFloat out;
  size_t i = sp + 10;
  int64_t numel = 1;
  while (i < h.size() && h[i] != ')') {
    if (h[i] >= '0' && h[i] <= '9') {
      int64_t d = 0;
      while (i < h.size() && h[i] >= '0' && h[i] <= '9') d = d * 10 + (h[i++] - '0');
      out.shape.push_back(d);
      numel *= d;
    } else {
      ++i;
    }
  }
  const size_t data_start = hstart + hlen;
  if (b.size() - data_start != static_cast<size_t>(numel) * 4) return fail("size mismatch");
  out.data.resize(static_cast<size_t>(numel));
  std::memcpy(out.data.data(), b.data() + data_start, out.data.size() * 4);  // x86: little-endian
  return out;
}

}  // namespace outpost::testing
