/* CPU-style depthwise 2-D convolution (one input channel per group, mg outputs per group, mch
   output channels). The geometry is compile-time: H, W, OH, OW, KH, KW, SH, SW, DH, DWL
   (dilations), PT, PL (leading pads), R (output rows per work-item), VW (vector width), NB
   (vectors per output row), TR x TW (the private tile: input rows x padded row width).
   With POOL_MAX it is a max pool instead (w and bias unused, padding is -inf), whose data may
   also be int8 / uint8 (DT; computed in float, exact for 8-bit values; the lo / hi clamp to the
   type's range then only maps a window made of padding to the type's lowest value).
   A work-item computes R output rows of one output channel: it first copies the input rows they
   need into a zero-padded private tile, so that every tap is an unconditional vector load, then
   accumulates NB vectors per row with the KH x KW weights held in registers.
   Global: (ceil(OH / R), N * M), local size 1. */
typedef FLOATV floatv; /* float##VW, with VLOADV / VSTOREV its vload / vstore (host defines) */
/* DT: the element type of in and out; LOADT / STORET: vload / vstore of VW of them, TO_F / TO_T:
   conversions between DT##VW and floatv (empty for float). */
#if POOL_MAX
#define PADV (-INFINITY)
#else
#define PADV 0.0f
#endif

/* VW inputs at p, p + SW, p + 2 * SW, ... */
floatv tap(const float* p) {
#if SW == 1
  return VLOADV(0, p);
#elif SW == 2
  return (floatv)(VLOADV(0, p).even, VLOADV(0, p + VW).even);
#else
  float t[VW];
#pragma unroll
  for (int j = 0; j < VW; ++j) t[j] = p[j * SW];
  return VLOADV(0, t);
#endif
}

__kernel void conv_dw(__global DT* out, int out_off, __global const DT* in, int in_off,
                      __global const float* w, int w_off, __global const float* bias, int bias_off,
                      int mch, int mg, float lo, float hi) {
  const int oy0 = get_global_id(0) * R, m = get_global_id(1); /* m = image * M + channel */
  __global const DT* src = in + in_off + (size_t)(m / mg) * H * W;
  float tile[TR * TW];
  for (int t = 0; t < TR; ++t) {
    const int iy = oy0 * SH - PT + t;
    float* tr = tile + t * TW;
    if (iy < 0 || iy >= H) {
      for (int u = 0; u < TW; ++u) tr[u] = PADV;
      continue;
    }
    __global const DT* s = src + iy * W;
    for (int u = 0; u < PL; ++u) tr[u] = PADV;
    int u = 0;
    for (; u + VW <= W; u += VW) VSTOREV(TO_F(LOADT(0, s + u)), 0, tr + PL + u);
    for (; u < W; ++u) tr[PL + u] = s[u];
    for (u = PL + W; u < TW; ++u) tr[u] = PADV;
  }
#if POOL_MAX
  const float b0 = -INFINITY;
#else
  __global const float* wm = w + w_off + (size_t)(m % mch) * KH * KW;
  float wk[KH * KW];
#pragma unroll
  for (int i = 0; i < KH * KW; ++i) wk[i] = wm[i];
#if HAS_BIAS
  const float b0 = bias[bias_off + m % mch];
#else
  const float b0 = 0.0f;
#endif
#endif
  __global DT* dst = out + out_off + (size_t)m * OH * OW;
  for (int r = 0; r < R; ++r) {
    const int oy = oy0 + r;
    if (oy >= OH) break;
    floatv acc[NB];
#pragma unroll
    for (int b = 0; b < NB; ++b) acc[b] = (floatv)(b0);
#pragma unroll
    for (int ky = 0; ky < KH; ++ky) {
      const float* tr = tile + (r * SH + ky * DH) * TW;
#pragma unroll
      for (int kx = 0; kx < KW; ++kx)
#pragma unroll
        for (int b = 0; b < NB; ++b)
#if POOL_MAX
          acc[b] = fmax(acc[b], tap(tr + b * VW * SW + kx * DWL));
#else
          acc[b] = fma(tap(tr + b * VW * SW + kx * DWL), (floatv)(wk[ky * KW + kx]), acc[b]);
#endif
    }
    __global DT* row = dst + oy * OW;
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      floatv o = acc[b];
      o = select(o, (floatv)(lo), o < lo);
      o = select(o, (floatv)(hi), o > hi);
      if ((b + 1) * VW <= OW) {
        STORET(TO_T(o), 0, row + b * VW);
      } else {
        float t[VW];
        VSTOREV(o, 0, t);
        for (int j = 0; j < OW - b * VW; ++j) row[b * VW + j] = (DT)t[j];
      }
    }
  }
}
