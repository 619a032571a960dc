/* Direct convolution, transposed convolution and pooling over SD spatial dims (1..3):
   one work-item per output element. p: in_sp[SD], out_sp[SD], kernel[SD], stride[SD],
   dilation[SD], pad_begin[SD], pad_end[SD]. */

/* Splits flat index i into output spatial coords (o[]), channel and image. */
#define SPLIT_OUT(i, CH)                         \
  int o[SD];                                     \
  int rem = (i);                                 \
  _Pragma("unroll") for (int d = SD - 1; d >= 0; --d) { \
    o[d] = rem % p[SD + d];                      \
    rem /= p[SD + d];                            \
  }                                              \
  const int ch = rem % (CH), img = rem / (CH);

int sp_size(__global const int* p, int base) {
  int s = 1;
#pragma unroll
  for (int d = 0; d < SD; ++d) s *= p[base + d];
  return s;
}

#ifdef CONV
/* in [N][C][in_sp], w [M][C/G][k], out [N][M][out_sp] */
__kernel void conv_direct(__global float* out, int out_off, __global const float* in, int in_off,
                          __global const float* w, int w_off, __global const float* bias,
                          int bias_off, __global const int* p, int C, int M, int G, float lo,
                          float hi) {
  const int i = get_global_id(0);
  SPLIT_OUT(i, M)
  const int Cg = C / G, Mg = M / G, g = ch / Mg;
  const int isz = sp_size(p, 0), ksz = sp_size(p, 2 * SD);
#if HAS_BIAS
  float acc = bias[bias_off + ch];
#else
  float acc = 0.0f;
#endif
  __global const float* wb = w + w_off + (size_t)ch * Cg * ksz;
  for (int kk = 0; kk < ksz; ++kk) {
    int r = kk, off = 0, inside = 1, mul = 1;
#pragma unroll
    for (int d = SD - 1; d >= 0; --d) {
      const int kd = r % p[2 * SD + d];
      r /= p[2 * SD + d];
      const int x = o[d] * p[3 * SD + d] - p[5 * SD + d] + kd * p[4 * SD + d];
      inside = inside && x >= 0 && x < p[d];
      off += x * mul;
      mul *= p[d];
    }
    if (!inside) continue;
    __global const float* ib = in + in_off + ((size_t)img * C + g * Cg) * isz + off;
    for (int ci = 0; ci < Cg; ++ci) acc = fma(ib[(size_t)ci * isz], wb[ci * ksz + kk], acc);
  }
  out[out_off + i] = acc < lo ? lo : acc > hi ? hi : acc; /* the fused activation */
}

/* in [N][C][in_sp], w [C][M/G][k], out [N][M][out_sp] (p's in/out are the conv's x/y) */
__kernel void conv_transpose(__global float* out, int out_off, __global const float* in,
                             int in_off, __global const float* w, int w_off,
                             __global const float* bias, int bias_off, __global const int* p,
                             int C, int M, int G, float lo, float hi) {
  const int i = get_global_id(0);
  SPLIT_OUT(i, M)
  const int Cg = C / G, Mg = M / G, g = ch / Mg, mm = ch % Mg;
  const int isz = sp_size(p, 0), ksz = sp_size(p, 2 * SD);
#if HAS_BIAS
  float acc = bias[bias_off + ch];
#else
  float acc = 0.0f;
#endif
  for (int kk = 0; kk < ksz; ++kk) {
    int r = kk, off = 0, inside = 1, mul = 1;
#pragma unroll
    for (int d = SD - 1; d >= 0; --d) {
      const int kd = r % p[2 * SD + d];
      r /= p[2 * SD + d];
      const int t = o[d] + p[5 * SD + d] - kd * p[4 * SD + d];
      const int s = p[3 * SD + d];
      const int x = t >= 0 ? t / s : -1;
      inside = inside && t >= 0 && x * s == t && x < p[d];
      off += x * mul;
      mul *= p[d];
    }
    if (!inside) continue;
    for (int ci = 0; ci < Cg; ++ci) {
      const int cig = g * Cg + ci;
      acc = fma(in[in_off + ((size_t)img * C + cig) * isz + off],
                w[w_off + ((size_t)cig * Mg + mm) * ksz + kk], acc);
    }
  }
  out[out_off + i] = acc < lo ? lo : acc > hi ? hi : acc; /* the fused activation */
}
#endif

#ifdef POOL
/* MODE 0 max, 1 average, 2 Lp (power PP). Indices (max only): flat input offset. */
__kernel void pool(__global T* out, int out_off, __global const T* in, int in_off,
#if WITH_INDEX
                   __global long* idx, int idx_off,
#endif
                   __global const int* p, int Cn, int count_pad, float lp) {
  const int i = get_global_id(0);
  SPLIT_OUT(i, Cn)
  const int isz = sp_size(p, 0), ksz = sp_size(p, 2 * SD);
  const int plane = img * Cn + ch;
  __global const T* ib = in + in_off + (size_t)plane * isz;
  float acc = MODE == 0 ? -INFINITY : 0.0f;
  int best = -1, count = 0, count_all = 0;
  for (int kk = 0; kk < ksz; ++kk) {
    int r = kk, off = 0, inside = 1, in_pad = 1, mul = 1;
#pragma unroll
    for (int d = SD - 1; d >= 0; --d) {
      const int kd = r % p[2 * SD + d];
      r /= p[2 * SD + d];
      const int x = o[d] * p[3 * SD + d] - p[5 * SD + d] + kd * p[4 * SD + d];
      inside = inside && x >= 0 && x < p[d];
      in_pad = in_pad && x < p[d] + p[6 * SD + d];
      off += x * mul;
      mul *= p[d];
    }
    count_all += in_pad;
    if (!inside) continue;
    const float v = ib[off];
    count++;
#if MODE == 0
    if (v > acc || best < 0) { acc = v; best = off; }
#elif MODE == 1
    acc += v;
#else
    acc += pow(fabs(v), lp);
#endif
  }
#if MODE == 1
  acc /= (float)(count_pad ? count_all : count);
#elif MODE == 2
  acc = pow(acc, 1.0f / lp);
#endif
  out[out_off + i] = (T)acc;
#if WITH_INDEX
  int fidx = best;
#if COLMAJOR
  {  /* storage_order = 1: column-major spatial index */
    int r = best, cm = 0, mul = 1;
    for (int d = SD - 1; d >= 0; --d) { const int x = r % p[d]; r /= p[d]; (void)x; }
    r = best;
    int coords[SD];
    for (int d = SD - 1; d >= 0; --d) { coords[d] = r % p[d]; r /= p[d]; }
    for (int d = 0; d < SD; ++d) { cm += coords[d] * mul; mul *= p[d]; }
    fidx = cm;
  }
#endif
  idx[idx_off + i] = (long)plane * isz + fidx;
#endif
}
#endif
