/* Quantized ops: QuantizeLinear, DequantizeLinear and the integer GEMM behind QLinearMatMul,
   MatMulInteger, QLinearConv and ConvInteger. Bit-exact with the CPU reference
   (kernels/cpu/quant.h): int32 accumulation, requantization in double (acc * multiplier + zp,
   round half to even, saturate), the multiplier rounded step by step in the scales' type.
   Needs cl_khr_fp64 (the host refuses devices without it). No contraction into FMA: the
   reference multiplies and adds in two roundings. */
#pragma OPENCL FP_CONTRACT OFF
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

/* Scales: float, or float16 (SCALE_HALF) read with vload_half and rounded back to half after
   each step, as numpy computes in the scales' type. */
#if SCALE_HALF
#define SCALE_T ushort
#define LOAD_S(p, i) vload_half((i), (__global const half*)(p))
float round_s(float v) {
  ushort h; /* a half variable needs cl_khr_fp16; its bits do not */
  vstore_half_rte(v, 0, (__private half*)&h);
  return vload_half(0, (__private const half*)&h);
}
#else
#define SCALE_T float
#define LOAD_S(p, i) ((p)[i])
#define round_s(v) (v)
#endif

#if defined(QUANTIZE) || defined(DEQUANTIZE)
/* The scale / zero point of element i: MODE 0 per tensor, 1 per axis, 2 blocked. */
inline int scale_index(int i, int inner, int axis_dim, int block, int nblocks) {
#if MODE == 1
  return (i / inner) % axis_dim;
#elif MODE == 2
  const int a = (i / inner) % axis_dim;
  return ((i / (inner * axis_dim)) * nblocks + a / block) * inner + i % inner;
#else
  return 0;
#endif
}
#endif

#ifdef QUANTIZE
/* y = saturate(rint(x / s) + z). x / s is the float quotient: computed in double and rounded to
   float, which is the correctly rounded float quotient (53 >= 2 * 24 + 2), whatever the device's
   float division accuracy. MODE 0 per tensor, 1 per axis, 2 blocked. */
__kernel void quantize_linear(__global TY* y, int y_off, __global const float* x, int x_off,
                              __global const SCALE_T* s, int s_off, __global const TY* z,
                              int z_off, int inner, int axis_dim, int block, int nblocks) {
  const int i = get_global_id(0);
  const int si = scale_index(i, inner, axis_dim, block, nblocks);
  const float f = (float)((double)x[x_off + i] / (double)LOAD_S(s, s_off + si));
  /* |rint(f)| > 1024 saturates whatever the zero point; NaN (undefined in the reference) -> lo */
  const float r = fmin(fmax(rint(f), -1024.0f), 1024.0f);
  int q = (int)r;
#if HAS_Z
  q += (int)z[z_off + si];
#endif
  y[y_off + i] = (TY)clamp(q, QMIN, QMAX);
}
#endif

#ifdef DEQUANTIZE
/* y = (float(x) - float(z)) * s in float. */
__kernel void dequantize_linear(__global float* y, int y_off, __global const TX* x, int x_off,
                                __global const SCALE_T* s, int s_off, __global const TX* z,
                                int z_off, int inner, int axis_dim, int block, int nblocks) {
  const int i = get_global_id(0);
  const int si = scale_index(i, inner, axis_dim, block, nblocks);
  float v = (float)x[x_off + i];
#if HAS_Z
  v = v - (float)z[z_off + si];
#endif
  y[y_off + i] = v * LOAD_S(s, s_off + si);
}
#endif

#ifdef QBINARY
/* com.microsoft QLinearAdd / QLinearMul (OP + or *) without broadcasting, as the CPU kernel: float
   steps in the order of the DequantizeLinear -> op -> QuantizeLinear graph, r / c_scale as the
   correctly rounded float quotient (through double), round half to even, saturation. */
__kernel void qlinear_binary(__global TY* c, int c_off, __global const TY* a, int a_off,
                             __global const TY* b, int b_off, float as, float az, float bs,
                             float bz, float cs, float cz) {
  const int i = get_global_id(0);
  const float x = ((float)a[a_off + i] - az) * as, y = ((float)b[b_off + i] - bz) * bs;
  const float r = (float)((double)(x OP y) / (double)cs);
  /* |r| beyond 2^20 saturates whatever the zero point; NaN (undefined in the reference) -> lo */
  const double m = 6755399441055744.0; /* 1.5 * 2^52: round half to even by the FPU */
  const double v = fmin(fmax((double)r, -0x1p20), 0x1p20);
  c[c_off + i] = (TY)clamp((int)((v + m) - m + (double)cz), QMIN, QMAX);
}
#endif

#ifdef QGEMM
/* ---- the integer GEMM: C(r, n) = epilogue(sum_k (A(r, k) - za) * (B(k, n) - zb)).
   bt[BT * b + 0..4] for batch b = get_global_id(2): offsets of A, B (or packed B), C, the
   channel offset co (the group's first output channel) and the packed column data (fast path).
   Per-output parameters j (ZA, ZB, BIAS, SA, SB, SY, ZY) are read at
   co * ps[3j] + r * ps[3j + 1] + n * ps[3j + 2]. C(r, n) is C[c + r * scr + n * scn]. */
#define BT 5
#define PIDX(j) (co * ps[3 * (j)] + r * ps[3 * (j) + 1] + n * ps[3 * (j) + 2])

/* The multiplier a * b / c rounded step by step in the scales' type, as the reference does; the
   division through double is the correctly rounded float quotient. */
/* Round half to even of |x| < 2^51 through the FPU's own rounding (the default mode, and no
   contraction), where the rint of PoCL's library is slow; inputs are first clamped to +-2^40,
   far outside every 8-bit range, so that the clamp cannot change a saturated result. */
#define RNE_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */
#define RNE(x, T) ((clamp((x), (T)(-0x1p40), (T)(0x1p40)) + (T)(RNE_MAGIC)) - (T)(RNE_MAGIC))

double multiplier(float a, float b, float c) {
  const float t = round_s(a * b);
  return (double)round_s((float)((double)t / (double)c));
}

#define EPI_PARAMS                                                                             \
  __global const int *bias, int bias_off, __global const SCALE_T *sa, int sa_off,              \
      __global const SCALE_T *sb, int sb_off, __global const SCALE_T *sy, int sy_off,          \
      __global const TC *zy, int zy_off, __global const double *mt, int mt_off
#define EPI_ARGS bias, bias_off, sa, sa_off, sb, sb_off, sy, sy_off, zy, zy_off, mt, mt_off
/* ps: 3 strides per slot, then (mc, mr, mn) of the multiplier table (MULT_TABLE: multipliers
   computed at Prepare from constant scales, at mc * co + r * mr + n * mn). Kernels copy ps to
   private memory: byte stores to C may alias any global int. */
#define NPS 24
#define LOAD_PS()                                   \
  int ps[NPS];                                      \
  for (int i = 0; i < NPS; i++) ps[i] = psg[i];

/* Stores one output: int32 as is, or requantized: rint(double(acc + bias) * m + zy), saturated
   to [qlo, qhi] (the type's range, narrowed by a fused clamp). */
void store_out(__global TC* restrict C, size_t ci, int acc, int co, int r, int n, const int* ps,
               int qlo, int qhi, EPI_PARAMS) {
#if REQUANT
  double v = (double)acc;
#if HAS_BIAS
  v += (double)bias[bias_off + PIDX(2)];
#endif
#if MULT_TABLE
  const double m = mt[mt_off + co * ps[21] + r * ps[22] + n * ps[23]];
#else
  const double m = multiplier(LOAD_S(sa, sa_off + PIDX(3)), LOAD_S(sb, sb_off + PIDX(4)),
                              LOAD_S(sy, sy_off + PIDX(5)));
#endif
#if HAS_ZY
  const double z = (double)zy[zy_off + PIDX(6)];
#else
  const double z = 0.0;
#endif
  double q = RNE(v * m + z, double);
  q = q < (double)QMIN ? (double)QMIN : (q > (double)QMAX ? (double)QMAX : q);
  q = fmin(fmax(q, (double)qlo), (double)qhi);
  C[ci] = (TC)(int)q;
#else
  C[ci] = acc;
#endif
}

/* 16 outputs of one output channel at once: as store_out lane by lane, with the channel's bias,
   multiplier and output zero point given; the first n lanes are stored at dst[0 .. n). Always
   inlined: LLVM does not inline it by itself into the VNNI function (other target features),
   and a call per 16 outputs cost more than the arithmetic. */
__attribute__((always_inline)) void store_out16(__global TC* restrict dst, int16 acc, int n, int bias, double m, double z,
                 int qlo, int qhi) {
#if REQUANT
  /* [qlo, qhi] lies within the type's range (OutputBounds), so one clamp does both. Clamping
     to [qlo - 1, qhi + 1] before rounding keeps |x| small for the magic-number rounding and
     cannot change the result; comparisons rather than fmin / fmax, which PoCL does not inline
     on double vectors (a NaN goes to qlo, as with fmax). */
  const double16 x = (convert_double16(acc) + (double)bias) * m + z;
  const double16 lo = (double16)((double)(qlo - 1)), hi = (double16)((double)(qhi + 1));
  double16 c = x > lo ? x : lo;
  c = c < hi ? c : hi;
  const int16 qi = clamp(convert_int16((c + (double16)(RNE_MAGIC)) - (double16)(RNE_MAGIC)), qlo,
                         qhi);
  if (n == 16) {
    vstore16(CONVERT_TC16(qi), 0, dst);
  } else {
    int d[16];
    vstore16(qi, 0, d);
    for (int j = 0; j < n; j++) dst[j] = (TC)d[j];
  }
#else
  if (n == 16) {
    vstore16(acc, 0, dst);
  } else {
    int d[16];
    vstore16(acc, 0, d);
    for (int j = 0; j < n; j++) dst[j] = d[j];
  }
#endif
}

/* The per-channel epilogue parameters of output channel r (group offset co): bias, multiplier,
   output zero point, through the slots of store_out. */
void channel_params(int co, int r, const int* ps, EPI_PARAMS, int* b, double* m, double* z) {
  const int n = 0;
#if HAS_BIAS
  *b = bias[bias_off + PIDX(2)];
#else
  *b = 0;
#endif
#if MULT_TABLE
  *m = mt[mt_off + co * ps[21] + r * ps[22] + n * ps[23]];
#elif REQUANT
  *m = multiplier(LOAD_S(sa, sa_off + PIDX(3)), LOAD_S(sb, sb_off + PIDX(4)),
                  LOAD_S(sy, sy_off + PIDX(5)));
#else
  *m = 0.0;
#endif
#if HAS_ZY
  *z = (double)zy[zy_off + PIDX(6)];
#else
  *z = 0.0;
#endif
}

/* Portable kernel: each work-item an RB x CB block of scalar int32 accumulators, A and B read
   in place with strides. Global: (ceil(N / CB), ceil(M / RB), batches). */
#define RB 4
#define CB 4
__kernel void qgemm_portable(__global TC* restrict C, int c_off, __global const TA* A, int a_off,
                             __global const TB* B, int b_off, __global const TA* za, int za_off,
                             __global const TB* zb, int zb_off, EPI_PARAMS,
                             __global const int* bt, __global const int* psg, int M, int N,
                             int K, int sam, int sak, int sbk, int sbn, int scr, int scn, int qlo,
                             int qhi) {
  LOAD_PS()
  const int n0 = get_global_id(0) * CB, r0 = get_global_id(1) * RB, bi = get_global_id(2);
  const int co = bt[BT * bi + 3];
  __global const TA* a = A + a_off + bt[BT * bi];
  __global const TB* b = B + b_off + bt[BT * bi + 1];
  int rows[RB], cols[CB], zr[RB], zc[CB];
  for (int i = 0; i < RB; i++) {
    const int r = min(r0 + i, M - 1), n = 0;
    rows[i] = r;
#if HAS_ZA
    zr[i] = (int)za[za_off + PIDX(0)];
#else
    zr[i] = 0;
#endif
  }
  for (int j = 0; j < CB; j++) {
    const int n = min(n0 + j, N - 1), r = 0;
    cols[j] = n;
#if HAS_ZB
    zc[j] = (int)zb[zb_off + PIDX(1)];
#else
    zc[j] = 0;
#endif
  }
  int acc[RB][CB];
  for (int i = 0; i < RB; i++)
    for (int j = 0; j < CB; j++) acc[i][j] = 0;
  for (int k = 0; k < K; k++) {
    int av[RB], bv[CB];
    for (int i = 0; i < RB; i++) av[i] = (int)a[rows[i] * sam + k * sak] - zr[i];
    for (int j = 0; j < CB; j++) bv[j] = (int)b[k * sbk + cols[j] * sbn] - zc[j];
    for (int i = 0; i < RB; i++)
      for (int j = 0; j < CB; j++) acc[i][j] += av[i] * bv[j];
  }
  __global TC* cb = C + c_off + bt[BT * bi + 2];
  for (int i = 0; i < RB; i++) {
    const int r = r0 + i;
    if (r >= M) break;
    for (int j = 0; j < CB; j++) {
      const int n = n0 + j;
      if (n >= N) break;
      store_out(cb, (size_t)r * scr + (size_t)n * scn, acc[i][j], co, r, n, ps, qlo, qhi,
                EPI_ARGS);
    }
  }
}

#ifdef QDW
/* Direct convolution with one input channel per group (depthwise, any channel multiplier
   Mg = M / C): each work-item one output row of one output channel of one image; products of
   zero-point-centred values, so that padding (skipped) contributes zero as in the reference.
   q as for qim2col. Global: (planes rounded up, OH); C(r = channel, n = 0). */
__kernel void qconv_dw(__global TC* restrict C, int c_off, __global const XT* x, int x_off,
                       __global const WT* w, int w_off, __global const XT* xz, int xz_off,
                       __global const WT* wz, int wz_off, EPI_PARAMS, __global const int* psg,
                       __global const int* q, int M, int planes, int qlo, int qhi) {
  LOAD_PS()
  const int plane = get_global_id(0), oy = get_global_id(1);
  if (plane >= planes) return;
  const int Cin = q[0], H = q[1], W = q[2], OW = q[4], KH = q[5], KW = q[6];
  const int img = plane / M, r = plane % M, ci = r / (M / Cin), co = 0;
  const int zx = HAS_XZ ? xz[xz_off] : 0, zw = HAS_WZ ? wz[wz_off + (WZ_PC ? r : 0)] : 0;
  __global const XT* src = x + x_off + (size_t)(img * Cin + ci) * H * W;
  __global const WT* wk = w + w_off + (size_t)r * KH * KW;
  __global TC* dst = C + c_off + ((size_t)plane * q[3] + oy) * OW;
  for (int ox = 0; ox < OW; ox++) {
    int acc = 0;
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * q[7] - q[11] + ky * q[9];
      if (iy < 0 || iy >= H) continue;
      for (int kx = 0; kx < KW; kx++) {
        const int ix = ox * q[8] - q[12] + kx * q[10];
        if (ix >= 0 && ix < W)
          acc += ((int)src[iy * W + ix] - zx) * ((int)wk[ky * KW + kx] - zw);
      }
    }
    store_out(dst, ox, acc, co, r, 0, ps, qlo, qhi, EPI_ARGS);
  }
}
#endif

/* The same convolution for CPU devices, after dwconv.cl: compile-time geometry GH, GW, GOH,
   GOW, GKH, GKW, GSH, GSW, GDH, GDWL (dilations), GPT, GPL (leading pads), GR (output rows per
   work-item), GNB (vectors of 16 outputs per row), GTR x GTW (the private tile). A work-item
   computes GR output rows of one output channel: it copies the input rows they need into a
   private tile of zero-point-centred ints, padded with zeros (the centred zero point), so that
   every tap is an unconditional vector load; weights are centred and held in registers.
   Global: (ceil(GOH / GR), planes), local size 1. */
#ifdef QDWT
int16 qtap(const int* p) {
#if GSW == 1
  return vload16(0, p);
#elif GSW == 2
  return (int16)(vload16(0, p).even, vload16(0, p + 16).even);
#else
  int t[16];
#pragma unroll
  for (int j = 0; j < 16; ++j) t[j] = p[j * GSW];
  return vload16(0, t);
#endif
}

__kernel void qconv_dwt(__global TC* restrict C, int c_off, __global const XT* x, int x_off,
                        __global const WT* w, int w_off, __global const XT* xz, int xz_off,
                        __global const WT* wz, int wz_off, EPI_PARAMS, __global const int* psg,
                        int M, int Cin, int qlo, int qhi) {
  LOAD_PS()
  const int oy0 = get_global_id(0) * GR, plane = get_global_id(1);
  const int img = plane / M, r = plane % M, ci = r / (M / Cin);
  const int zx = HAS_XZ ? xz[xz_off] : 0, zw = HAS_WZ ? wz[wz_off + (WZ_PC ? r : 0)] : 0;
  __global const XT* src = x + x_off + (size_t)(img * Cin + ci) * GH * GW;
  int tile[GTR * GTW];
  for (int t = 0; t < GTR; ++t) {
    const int iy = oy0 * GSH - GPT + t;
    int* tr = tile + t * GTW;
    if (iy < 0 || iy >= GH) {
      for (int u = 0; u < GTW; ++u) tr[u] = 0;
      continue;
    }
    __global const XT* s = src + iy * GW;
    for (int u = 0; u < GPL; ++u) tr[u] = 0;
    int u = 0;
    for (; u + 16 <= GW; u += 16)
      vstore16(convert_int16(vload16(0, s + u)) - zx, 0, tr + GPL + u);
    for (; u < GW; ++u) tr[GPL + u] = (int)s[u] - zx;
    for (u = GPL + GW; u < GTW; ++u) tr[u] = 0;
  }
  __global const WT* wm = w + w_off + (size_t)r * GKH * GKW;
  int wk[GKH * GKW];
#pragma unroll
  for (int i = 0; i < GKH * GKW; ++i) wk[i] = (int)wm[i] - zw;
  int bias_r;
  double m, z;
  channel_params(0, r, ps, EPI_ARGS, &bias_r, &m, &z);
  __global TC* dst = C + c_off + (size_t)plane * GOH * GOW;
  for (int rr = 0; rr < GR; ++rr) {
    const int oy = oy0 + rr;
    if (oy >= GOH) break;
    int16 acc[GNB];
#pragma unroll
    for (int b = 0; b < GNB; ++b) acc[b] = (int16)(0);
#pragma unroll
    for (int ky = 0; ky < GKH; ++ky) {
      const int* tr = tile + (rr * GSH + ky * GDH) * GTW;
#pragma unroll
      for (int kx = 0; kx < GKW; ++kx)
#pragma unroll
        for (int b = 0; b < GNB; ++b)
          acc[b] += qtap(tr + b * 16 * GSW + kx * GDWL) * wk[ky * GKW + kx];
    }
#pragma unroll
    for (int b = 0; b < GNB; ++b)
      store_out16(dst + oy * GOW + b * 16, acc[b], min(16, GOW - b * 16), bias_r, m, z, qlo, qhi);
  }
}
#endif

/* Row sums of A' (A as unsigned bytes: int8 A offset by 128), for the fast kernel's zero-point
   correction. Global: (M, batches); rs[b * M + r]. */
__kernel void qrowsum(__global int* rs, int rs_off, __global const uchar* A, int a_off,
                      __global const int* bt, int M, int K, int sam, uchar axor) {
  const int r = get_global_id(0), bi = get_global_id(1);
  __global const uchar* a = A + a_off + bt[BT * bi] + (size_t)r * sam;
  int s = 0;
  for (int k = 0; k < K; k++) s += a[k] ^ axor;
  rs[rs_off + bi * M + r] = s;
}

/* Fast kernel for x86 CPU devices (PoCL): u8 x s8 with clang's AVX2 builtins, vpmaddubsw (two
   u8 * s8 products summed into a saturating int16) then vpmaddwd into int32 lanes.
   A' = A ^ AXOR (unsigned), B' packed on the host as s8: Bp[panel][ceil(K / 4)][S][NV] of int8
   vectors, lane j of vector v holding 4 consecutive k of column panel * NR + v * 8 + j.
   Exactness against the 16-bit saturation: a pair sum a0 * b0 + a1 * b1 is at most
   2 * 255 * 64 = 32640 in magnitude when B' is in [-64, 63] (S = 1). Otherwise (SPLIT, S = 2)
   B' = 2 * h + l with h = B' >> 1 in [-64, 63] and l = B' & 1, and the int16 pair sums of both
   parts are exact; h enters with weight 2 through vpmaddwd.
   The zero points are applied in int32 afterwards (two's complement wrap, exact result):
     sum (A' - za')(B' - zb') = dot + za' * (K * zb' - colsum B') - zb' * rowsum A'.
   cp[bt[BT * b + 4] + n] = K * zb'_n - colsum_n, zbp[same] = zb'_n.
   Each work-item does rp row blocks x jp column panels (a work-group costs about a microsecond
   on PoCL). Global: (ceil(M / MR / rp), ceil(panels / jp), batches), local size 1. */
#if FAST && defined(__AVX2__)
#define NR (8 * NV)
typedef char v32qi __attribute__((vector_size(32)));
typedef short v16hi __attribute__((vector_size(32)));
typedef int v8si __attribute__((vector_size(32)));
#if SPLIT
#define S 2
#else
#define S 1
#endif
/* store_out for the 8 columns n0 .. n0 + 7 of row r at once, in double8 arithmetic (the same
   operations lane by lane); C(r, n0 + j) at C[ci + j * scn]. */
#define GATHER8(p, base, st)                                                                  \
  ((p)[(base)], (p)[(base) + (st)], (p)[(base) + 2 * (st)], (p)[(base) + 3 * (st)],           \
   (p)[(base) + 4 * (st)], (p)[(base) + 5 * (st)], (p)[(base) + 6 * (st)], (p)[(base) + 7 * (st)])
void store_out8(__global TC* restrict C, size_t ci, int scn, int8 acc, int co, int r, int n0,
                const int* ps, int qlo, int qhi, EPI_PARAMS) {
#if REQUANT
  const int n = n0;
  double8 v = convert_double8(acc);
#if HAS_BIAS
  v += convert_double8((int8)GATHER8(bias, bias_off + PIDX(2), ps[3 * 2 + 2]));
#endif
#if MULT_TABLE
  const double8 m = (double8)GATHER8(mt, mt_off + co * ps[21] + r * ps[22] + n0 * ps[23], ps[23]);
#else
  double md[8];
  for (int j = 0; j < 8; j++) {
    const int n = n0 + j;
    md[j] = multiplier(LOAD_S(sa, sa_off + PIDX(3)), LOAD_S(sb, sb_off + PIDX(4)),
                       LOAD_S(sy, sy_off + PIDX(5)));
  }
  const double8 m = vload8(0, md);
#endif
#if HAS_ZY
  const double8 z = convert_double8(convert_int8((TC8)GATHER8(zy, zy_off + PIDX(6), ps[3 * 6 + 2])));
#else
  const double8 z = (double8)(0.0);
#endif
  double8 q = RNE(v * m + z, double8); /* finite: no NaN reaches the clamps */
  q = fmin(fmax(q, (double8)((double)QMIN)), (double8)((double)QMAX));
  q = fmin(fmax(q, (double8)((double)qlo)), (double8)((double)qhi));
  const int8 qi = convert_int8(q);
  if (scn == 1) {
    vstore8(CONVERT_TC8(qi), 0, C + ci);
  } else {
    int d[8];
    vstore8(qi, 0, d);
    for (int j = 0; j < 8; j++) C[ci + (size_t)j * scn] = (TC)d[j];
  }
#else
  if (scn == 1) {
    vstore8(acc, 0, C + ci);
  } else {
    int d[8];
    vstore8(acc, 0, d);
    for (int j = 0; j < 8; j++) C[ci + (size_t)j * scn] = d[j];
  }
#endif
}

__kernel void qgemm_u8s8(__global TC* restrict C, int c_off, __global const uchar* A, int a_off,
                         __global const int* Bp, int bp_off, __global const TA* za, int za_off,
                         __global const int* cp, int cp_off, __global const int* zbp,
                         int zbp_off, __global const int* rs, int rs_off, EPI_PARAMS,
                         __global const int* bt, __global const int* psg, int M, int N, int K,
                         int sam, int scr, int scn, int qlo, int qhi, int rp, int jp) {
  LOAD_PS()
  const int bi = get_global_id(2);
  const int co = bt[BT * bi + 3];
  const int ib_end = min((M + MR - 1) / MR, (int)(get_global_id(0) + 1) * rp);
  const int jb_end = min((N + NR - 1) / NR, (int)(get_global_id(1) + 1) * jp);
  for (int ib = get_global_id(0) * rp; ib < ib_end; ib++)
  for (int jb = get_global_id(1) * jp; jb < jb_end; jb++) {
  __global const uchar* ar[MR];
  for (int i = 0; i < MR; i++)
    ar[i] = A + a_off + bt[BT * bi] + (size_t)min(ib * MR + i, M - 1) * sam;
  const int K4 = (K + 3) / 4, Kf = K / 4;
  __global const int8* b =
      (__global const int8*)(Bp + bp_off + bt[BT * bi + 1]) + (size_t)jb * K4 * S * NV;
  const v16hi ones = __builtin_astype((short16)(1), v16hi);
#if SPLIT
  const v16hi twos = __builtin_astype((short16)(2), v16hi);
#endif
  v8si acc[MR][NV];
#pragma unroll
  for (int i = 0; i < MR; i++)
#pragma unroll
    for (int v = 0; v < NV; v++) acc[i][v] = __builtin_astype((int8)(0), v8si);
  for (int k4 = 0; k4 < K4; k4++) {
    v32qi bv[S][NV];
#pragma unroll
    for (int s = 0; s < S; s++)
#pragma unroll
      for (int v = 0; v < NV; v++) bv[s][v] = __builtin_astype(b[(k4 * S + s) * NV + v], v32qi);
#pragma unroll
    for (int i = 0; i < MR; i++) {
      uchar4 a4;
      if (k4 < Kf) {
        a4 = vload4(0, ar[i] + 4 * k4);
      } else { /* the last partial group: B' is zero past K, A is not read there */
        a4 = (uchar4)(0);
        a4.x = ar[i][4 * k4];
        if (4 * k4 + 1 < K) a4.y = ar[i][4 * k4 + 1];
        if (4 * k4 + 2 < K) a4.z = ar[i][4 * k4 + 2];
      }
      a4 ^= (uchar4)(AXOR);
      const v32qi av = __builtin_astype((int8)(as_int(a4)), v32qi);
#pragma unroll
      for (int v = 0; v < NV; v++) {
#if SPLIT
        acc[i][v] += __builtin_ia32_pmaddwd256(__builtin_ia32_pmaddubsw256(av, bv[0][v]), twos) +
                     __builtin_ia32_pmaddwd256(__builtin_ia32_pmaddubsw256(av, bv[1][v]), ones);
#else
        acc[i][v] += __builtin_ia32_pmaddwd256(__builtin_ia32_pmaddubsw256(av, bv[0][v]), ones);
#endif
      }
    }
  }
  __global TC* cb = C + c_off + bt[BT * bi + 2];
  const int cpo = bt[BT * bi + 4];
  for (int i = 0; i < MR; i++) {
    const int r = ib * MR + i;
    if (r >= M) break;
    const int n = 0;
#if HAS_ZA
    const uint zap = (uint)((int)za[za_off + PIDX(0)] + DA);
#else
    const uint zap = DA;
#endif
#if NEED_RS
    const uint rsum = (uint)rs[rs_off + bi * M + r];
#else
    const uint rsum = 0;
#endif
#pragma unroll
    for (int v = 0; v < NV; v++) {
      const int n0 = jb * NR + v * 8;
      const uint8 t = as_uint8(__builtin_astype(acc[i][v], int8)) +
                      zap * as_uint8(vload8(0, cp + cp_off + cpo + n0)) -
                      as_uint8(vload8(0, zbp + zbp_off + cpo + n0)) * rsum;
      if (n0 + 8 <= N) {
        store_out8(cb, (size_t)r * scr + (size_t)n0 * scn, scn, as_int8(t), co, r, n0, ps, qlo,
                   qhi, EPI_ARGS);
      } else {
        int d[8];
        vstore8(as_int8(t), 0, d);
        for (int j = 0; j < 8 && n0 + j < N; j++) {
          const int n = n0 + j;
          store_out(cb, (size_t)r * scr + (size_t)n * scn, d[j], co, r, n, ps, qlo, qhi,
                    EPI_ARGS);
        }
      }
    }
  }
  }
}
#endif


/* ---- the convolution for x86 CPU devices with AVX-512 VNNI (PoCL): vpdpbusd sums four u8 x s8
   products into each int32 lane with no intermediate saturation, so that 8-bit weights need no
   split. Lanes are 16 output pixels: Y(m, p) stays contiguous (vector stores).
   K runs over (tap = ky * KW + kx, ci) with Cg padded to CQ * 4 channels: K4 = KH * KW * CQ
   groups of 4 bytes. Activations x' = x ^ AXOR (u8) are packed by qpack as col[b][K4][Pp]
   (uint: 4 bytes of one pixel); weights w' = w - 128 (uint8) or w (int8) as s8, packed on the
   host as wp[g][mb][K4][MR] (uint: 4 bytes of one channel, zero past Mg and Cg). Padding
   (spatial, channels past Cg) holds x's zero point, so it is zero once centred;
   the zero points are applied in int32 afterwards (two's complement wrap, exact result):
     sum (x' - zx')(w' - zw') = dot + zx' * (4 * K4 * zw' - colsum w') - zw' * rowsum x'
   with cw[oc] = 4 * K4 * zw'_oc - colsum_oc, zwp[oc] = zw'_oc; the row sums (only when some
   zw' is not zero) come from one more vpdpbusd with bytes of 1. */
#ifdef QPACK
/* Unaligned 16-byte loads as plain dereferences: PoCL's vload16 of bytes from private memory
   becomes byte-by-byte code. */
typedef uchar16 uchar16_u __attribute__((aligned(1)));
#define LD16P(p) (*(const __private uchar16_u*)(p))
#define LD16G(p) (*(__global const uchar16_u*)(p))
#define ST16P(v, p) (*(__private uchar16_u*)(p) = (v))
/* The first min(n, 16) lanes of w at dst. */
void store_words(__global uint* dst, uint16 w, int n) {
  if (n >= 16) {
    vstore16(w, 0, dst);
  } else {
    uint t[16];
    vstore16(w, 0, t);
    for (int j = 0; j < n; j++) dst[j] = t[j];
  }
}

/* One output row oy of batch b for channel groups cq0 .. cq0 + cqp: for each (group, ky) the 4
   input rows are copied as x' into private rows padded with zx' (u = ix + pw), from which every
   (kx, 16 output pixels) is an unconditional vector load (the even lanes of 32 at stride 2).
   Pixels past P in the last block are never stored by qconv_vnni and are left as they are.
   PRW: the private row width (host define). Global: (OH, ceil(CQ / cqp), batches), local 1. */
__kernel void qpack(__global uint* col, int col_off, __global const XT* x, int x_off,
                    __global const XT* zp, int zp_off, __global const int* q, int CQ, int Pp,
                    int cqp) {
  const int oy = get_global_id(0), cq0 = get_global_id(1) * cqp, b = get_global_id(2);
  const int C = q[0], H = q[1], W = q[2], OW = q[4], KH = q[5], KW = q[6], G = q[13];
  const int sh = q[7], sw = q[8], dh = q[9], dw = q[10], ph = q[11], pw = q[12];
  const int img = b / G, g = b % G, Cg = C / G;
#if HAS_XZ
  const uchar z = (uchar)zp[zp_off] ^ (uchar)AXOR;
#else
  const uchar z = (uchar)AXOR;
#endif
  __global const XT* src = x + x_off + (size_t)(img * C + g * Cg) * H * W;
  if (KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0) {
    /* 1x1, stride 1, no padding: x's rows are the packed rows; interleave them directly. */
    for (int cq = cq0; cq < min(CQ, cq0 + cqp); cq++) {
      __global uint* dst = col + col_off + ((size_t)b * CQ + cq) * Pp + oy * OW;
      for (int ox0 = 0; ox0 < OW; ox0 += 16) {
        uint16 word = (uint16)(0);
        for (int c = 0; c < 4; c++) {
          const int ci = cq * 4 + c;
          __global const XT* s = src + ((size_t)ci * H + oy) * W + ox0;
          uchar16 v = (uchar16)(z);
          if (ci < Cg && ox0 + 16 <= OW) {
            v = LD16G(s) ^ (uchar16)(AXOR);
          } else if (ci < Cg) {
            uchar t[16];
            for (int j = 0; j < 16; j++) t[j] = ox0 + j < OW ? (uchar)s[j] ^ (uchar)AXOR : z;
            v = vload16(0, t);
          }
          word |= convert_uint16(v) << (uint)(8 * c);
        }
        store_words(dst + ox0, word, OW - ox0);
      }
    }
    return;
  }
  uchar rows[4][PRW];
  for (int cq = cq0; cq < min(CQ, cq0 + cqp); cq++)
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * sh - ph + ky * dh;
      for (int c = 0; c < 4; c++) {
        const int ci = cq * 4 + c;
        uchar* row = rows[c];
        if (ci >= Cg || iy < 0 || iy >= H) {
          for (int u = 0; u + 16 <= PRW; u += 16) ST16P((uchar16)(z), row + u);
          continue;
        }
        __global const XT* s = src + ((size_t)ci * H + iy) * W;
        for (int u = 0; u + 16 <= PRW; u += 16) ST16P((uchar16)(z), row + u);
        int u = 0;
        for (; u + 16 <= W; u += 16) ST16P(LD16G(s + u) ^ (uchar16)(AXOR), row + pw + u);
        for (; u < W; u++) row[pw + u] = (uchar)s[u] ^ (uchar)AXOR;
      }
      for (int kx = 0; kx < KW; kx++) {
        __global uint* dst =
            col + col_off + ((size_t)(b * KH * KW + ky * KW + kx) * CQ + cq) * Pp + oy * OW;
        for (int ox0 = 0; ox0 < OW; ox0 += 16) {
          const int u0 = ox0 * sw + kx * dw;
          uint16 word = (uint16)(0);
#pragma unroll
          for (int c = 0; c < 4; c++) {
            uchar16 v;
            if (sw == 1) {
              v = LD16P(rows[c] + u0);
            } else if (sw == 2) {
              v = (uchar16)(LD16P(rows[c] + u0).even, LD16P(rows[c] + u0 + 16).even);
            } else {
              uchar t[16];
              for (int j = 0; j < 16; j++) t[j] = rows[c][u0 + j * sw];
              v = vload16(0, t);
            }
            word |= convert_uint16(v) << (uint)(8 * c);
          }
          store_words(dst + ox0, word, OW - ox0);
        }
      }
    }
}
#endif

#if QVNNI
typedef int v16si __attribute__((vector_size(64)));
/* Pixel blocks pb0 .. pb1 (16 * NP pixels each) x channel blocks mb0 .. mb1 (MR channels) of
   batch b = img * G + g. A function of its own: the target attribute enables VNNI here only
   (PoCL builds for the host CPU model that LLVM knows, which may predate VNNI). */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void qconv_vnni_body(
    __global TC* restrict C, __global const uint* col, __global const int* wp,
    __global const int* cw, __global const int* zwp, uint zxp, const int* ps, EPI_PARAMS, int M,
    int Mg, int MB, int K4, int P, int Pp, int b, int G, int pb0, int pb1, int mb0, int mb1,
    int qlo, int qhi) {
  const int img = b / G, g = b % G;
#if NEED_RS
  const v16si ones = __builtin_astype((int16)(0x01010101), v16si);
#endif
  for (int pb = pb0; pb < pb1; pb++) {
    const int p0 = pb * 16 * NP;
    __global const uint* a = col + (size_t)b * K4 * Pp + p0;
    v16si rs[NP];
#pragma unroll
    for (int j = 0; j < NP; j++) rs[j] = __builtin_astype((int16)(0), v16si);
#if NEED_RS
    for (int kb = 0; kb < K4; kb++)
#pragma unroll
      for (int j = 0; j < NP; j++)
        rs[j] = __builtin_ia32_vpdpbusd512(
            rs[j], __builtin_astype(vload16(0, a + (size_t)kb * Pp + 16 * j), v16si), ones);
#endif
    for (int mb = mb0; mb < mb1; mb++) {
      __global const int* w = wp + (size_t)(g * MB + mb) * K4 * MR;
      v16si acc[MR][NP];
#pragma unroll
      for (int i = 0; i < MR; i++)
#pragma unroll
        for (int j = 0; j < NP; j++) acc[i][j] = __builtin_astype((int16)(0), v16si);
      for (int kb = 0; kb < K4; kb++) {
        v16si av[NP];
#pragma unroll
        for (int j = 0; j < NP; j++)
          av[j] = __builtin_astype(vload16(0, a + (size_t)kb * Pp + 16 * j), v16si);
#pragma unroll
        for (int i = 0; i < MR; i++) {
          const v16si wv = __builtin_astype((int16)(w[kb * MR + i]), v16si);
#pragma unroll
          for (int j = 0; j < NP; j++) acc[i][j] = __builtin_ia32_vpdpbusd512(acc[i][j], av[j], wv);
        }
      }
      for (int i = 0; i < MR; i++) {
        const int m = mb * MR + i;
        if (m >= Mg) break;
        const int oc = g * Mg + m;
        int bias_r;
        double mm, z;
        channel_params(g * Mg, m, ps, EPI_ARGS, &bias_r, &mm, &z);
        const uint corr = (uint)cw[oc] * zxp, zw = (uint)zwp[oc];
#pragma unroll
        for (int j = 0; j < NP; j++) {
          const int pj = p0 + 16 * j;
          if (pj >= P) break;
          const uint16 t = as_uint16(__builtin_astype(acc[i][j], int16)) + corr -
                           zw * as_uint16(__builtin_astype(rs[j], int16));
          store_out16(C + (size_t)(img * M + oc) * P + pj, as_int16(t), min(16, P - pj), bias_r,
                      mm, z, qlo, qhi);
        }
      }
    }
  }
}

/* Global: (ceil(Pp / 16 / NP / pp), ceil(MB / mp), batches), local size 1. */
__kernel void qconv_vnni(__global TC* restrict C, int c_off, __global const uint* col,
                         int col_off, __global const int* wp, int wp_off,
                         __global const XT* xz, int xz_off, __global const int* cw, int cw_off,
                         __global const int* zwp, int zwp_off, EPI_PARAMS,
                         __global const int* psg, int M, int Mg, int MB, int K4, int P, int Pp,
                         int G, int pp, int mp, int qlo, int qhi) {
  LOAD_PS()
  const int PB = Pp / (16 * NP);
  const int pb0 = get_global_id(0) * pp, mb0 = get_global_id(1) * mp, b = get_global_id(2);
#if HAS_XZ
  const uint zxp = (uint)((int)xz[xz_off] + DA);
#else
  const uint zxp = DA;
#endif
  qconv_vnni_body(C + c_off, col + col_off, wp + wp_off, cw + cw_off, zwp + zwp_off, zxp, ps,
                  EPI_ARGS, M, Mg, MB, K4, P, Pp, b, G, pb0, min(PB, pb0 + pp), mb0,
                  min(MB, mb0 + mp), qlo, qhi);
}
#endif
#endif

#ifdef QIM2COL
/* im2col of a quantized 2-D input (1-D as H = 1) per (image, group) batch b: column p = output
   pixel, row k = (ci, ky, kx); padding reads the input zero point, so that it is zero once
   centred. TRANS: col[b][p][k] (rows of the fast kernel's A), else col[b][k][p].
   q: C, H, W, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, G. Global: (P rounded up, batches). */
__kernel void qim2col(__global XT* col, int col_off, __global const XT* x, int x_off,
                      __global const XT* zp, int zp_off, __global const int* q, int K, int P) {
  const int p = get_global_id(0), b = get_global_id(1);
  if (p >= P) return;
  const int C = q[0], H = q[1], W = q[2], OW = q[4], KH = q[5], KW = q[6], G = q[13];
  const int img = b / G, g = b % G, Cg = C / G;
  const int oy = p / OW, ox = p % OW;
#if HAS_XZ
  const XT z = zp[zp_off];
#else
  const XT z = 0;
#endif
  __global const XT* src = x + x_off + (size_t)(img * C + g * Cg) * H * W;
#if TRANS
  __global XT* dst = col + col_off + ((size_t)b * P + p) * K;
#define COL(k) dst[k]
#else
  __global XT* dst = col + col_off + (size_t)b * K * P + p;
#define COL(k) dst[(size_t)(k) * P]
#endif
  int k = 0;
  for (int ci = 0; ci < Cg; ci++)
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * q[7] - q[11] + ky * q[9];
      const int row_ok = iy >= 0 && iy < H;
      for (int kx = 0; kx < KW; kx++, k++) {
        const int ix = ox * q[8] - q[12] + kx * q[10];
        COL(k) = row_ok && ix >= 0 && ix < W ? src[((size_t)ci * H + iy) * W + ix] : z;
      }
    }
}
#endif
