/* GEMM for MatMul, Gemm and Conv: C(m, n) = alpha * sum_k A(m, k) * B(k, n) + beta * bias(m, n).
   A(m, k) = A[a + m * sam + k * sak]. B is packed as Bp[panel][K][NR] (NR = VW * NV columns per
   panel, zero-padded past N), the layout a register-blocked CPU kernel streams through.
   bt[4 * b + 0..3]: offsets of A, Bp, C and bias for batch b = get_global_id(2). */

#ifndef VW
#define VW 8
#endif
#ifndef NV
#define NV 2
#endif
#ifndef MR
#define MR 4
#endif
#define NR (VW * NV)
#define VEC_(n) float##n
#define VEC(n) VEC_(n)
#define VLOAD_(n) vload##n
#define VLOAD(n) VLOAD_(n)
#define VSTORE_(n) vstore##n
#define VSTORE(n) VSTORE_(n)
typedef VEC(VW) floatv;

/* Packs B(k, n) = B[b + k * sbk + n * sbn] per batch (pt[2 * b] = source, pt[2 * b + 1] = packed
   offset). Global: (panels * NR, K, batches). */
__kernel void pack_b(__global float* Bp, int bp_off, __global const float* B, int b_off,
                     __global const int* pt, int N, int K, int sbk, int sbn) {
  const int n = get_global_id(0), k = get_global_id(1), b = get_global_id(2);
  const int jb = n / NR, c = n % NR;
  Bp[bp_off + pt[2 * b + 1] + (jb * K + k) * NR + c] =
      n < N ? B[b_off + pt[2 * b] + k * sbk + n * sbn] : 0.0f;
}

/* im2col straight into the packed layout for a 2-D convolution: batch b = image * G + group,
   column n = output pixel, row k = (ci, ky, kx); columns past P up to the panel end are zeroed.
   One work-item fills row k of every panel, a run of output pixels at a time: each run lies in
   one output row and one panel, so it is a (strided) copy between zero-filled edges.
   q: C, H, W, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, G. Global: (K, batches). */
__kernel void im2col_pack(__global float* Bp, int bp_off, __global const float* in, int in_off,
                          __global const int* q, int K) {
  const int k = get_global_id(0), b = get_global_id(1);
  const int C = q[0], H = q[1], W = q[2], OH = q[3], OW = q[4], KH = q[5], KW = q[6];
  const int sh = q[7], sw = q[8], G = q[13], Cg = C / G, P = OH * OW;
  const int panels = (P + NR - 1) / NR;
  const int img = b / G, g = b % G;
  const int kx = k % KW, ky = (k / KW) % KH, ci = k / (KW * KH);
  __global const float* src = in + in_off + (size_t)(img * C + g * Cg + ci) * H * W;
  __global float* dst = Bp + bp_off + (size_t)b * panels * K * NR + (size_t)k * NR;
  const int ix0 = kx * q[10] - q[12];
  /* Output columns ox with 0 <= ix0 + ox * sw < W: [oxa, oxb). */
  const int oxa = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
  const int oxb = W - ix0 <= 0 ? 0 : min(OW, (W - ix0 + sw - 1) / sw);
  int n = 0;
  for (int oy = 0; oy < OH; ++oy) {
    const int iy = oy * sh - q[11] + ky * q[9];
    const int row_ok = iy >= 0 && iy < H;
    __global const float* s = src + (size_t)iy * W + ix0;
    for (int ox = 0; ox < OW;) {
      const int len = min(OW - ox, NR - n % NR);
      __global float* d = dst + (size_t)(n / NR) * K * NR + n % NR - ox;
      const int a = row_ok ? clamp(oxa, ox, ox + len) : ox + len;
      const int e = row_ok ? clamp(oxb, a, ox + len) : ox + len;
      int j = ox;
      for (; j < a; ++j) d[j] = 0.0f;
      if (sw == 1) {
        for (; j + VW <= e; j += VW) VSTORE(VW)(VLOAD(VW)(0, s + j), 0, d + j);
        for (; j < e; ++j) d[j] = s[j];
      } else if (sw == 2) { /* the even elements of 2 * VW; j + VW < e keeps the loads in row */
        for (; j + VW < e; j += VW)
          VSTORE(VW)((floatv)(VLOAD(VW)(0, s + 2 * j).even, VLOAD(VW)(0, s + 2 * j + VW).even), 0,
                     d + j);
        for (; j < e; ++j) d[j] = s[j * 2];
      } else {
        for (; j < e; ++j) d[j] = s[j * sw];
      }
      for (; j < ox + len; ++j) d[j] = 0.0f;
      ox += len;
      n += len;
    }
  }
  for (; n < panels * NR; ++n) dst[(size_t)(n / NR) * K * NR + n % NR] = 0.0f;
}

/* B(k, v-th vector of the panel): packed, or with B_DIRECT read in place from a row-major
   B[k * ldb + n] (a 1x1 convolution's input), where a partial last panel over-reads into the
   following rows (lanes never stored). The last rows, whose over-read would pass the end of B
   ((K - 1) * ldb + N floats; with N < NR that can be several rows), are loaded lane by lane. */
#if B_DIRECT
#define LOAD_B(k, v) VLOAD(VW)(0, b + (size_t)(k) * ldb + (v) * VW)
#else
#define LOAD_B(k, v) b[(k) * NV + (v)]
#endif
#define FMA_ROWS(k, bv)                                                        \
  _Pragma("unroll") for (int r = 0; r < MR; r++) {                             \
    const floatv av = (floatv)(ar[r][(k) * sak]);                              \
    _Pragma("unroll") for (int v = 0; v < NV; v++) acc[r][v] = fma(av, bv[v], acc[r][v]); \
  }

/* CPU-style register blocking: each work-item computes an MR x NR block with vector FMAs.
   Each work-item does jp consecutive panels (fewer work-groups when K is small).
   Global: (ceil(M / MR), ceil(panels / jp), batches), local size 1. */
__kernel void gemm_rb(__global float* C, int c_off, __global const float* A, int a_off,
                      __global const float* Bp, int bp_off, __global const float* bias,
                      int bias_off, __global const int* bt, int M, int N, int K, int sam, int sak,
                      int ldc, int sbm, int sbn, float alpha, float beta, int ldb, float lo,
                      float hi, int jp) {
  const int ib = get_global_id(0), bi = get_global_id(2);
  const int jb_end = min((N + NR - 1) / NR, (int)(get_global_id(1) + 1) * jp);
  __global const float* ar[MR];
#pragma unroll
  for (int r = 0; r < MR; r++)
    ar[r] = A + a_off + bt[4 * bi] + (size_t)min(ib * MR + r, M - 1) * sam;
  for (int jb = get_global_id(1) * jp; jb < jb_end; ++jb) {
    const int n0 = jb * NR;
#if B_DIRECT
    __global const float* b = Bp + bp_off + bt[4 * bi + 1] + n0;
    const int spill = n0 + NR - N;  // lanes past N in this panel
    const int kend = spill <= 0 ? K : max(0, K - (spill + ldb - 1) / ldb);
#else
    __global const floatv* b =
        (__global const floatv*)(Bp + bp_off + bt[4 * bi + 1] + (size_t)jb * K * NR);
    const int kend = K;
#endif
    floatv acc[MR][NV];
#pragma unroll
    for (int r = 0; r < MR; r++)
#pragma unroll
      for (int v = 0; v < NV; v++) acc[r][v] = (floatv)(0.0f);
    for (int k = 0; k < kend; k++) {
      floatv bv[NV];
#pragma unroll
      for (int v = 0; v < NV; v++) bv[v] = LOAD_B(k, v);
      FMA_ROWS(k, bv)
    }
#if B_DIRECT
    for (int k = kend; k < K; k++) {
      float t[NR];
      for (int j = 0; j < NR; j++) t[j] = n0 + j < N ? b[(size_t)k * ldb + j] : 0.0f;
      floatv bv[NV];
#pragma unroll
      for (int v = 0; v < NV; v++) bv[v] = VLOAD(VW)(0, t + v * VW);
      FMA_ROWS(k, bv)
    }
#endif
    __global float* cb = C + c_off + bt[4 * bi + 2];
#pragma unroll
    for (int r = 0; r < MR; r++) {
      const int m = ib * MR + r;
      if (m >= M) break;
#pragma unroll
      for (int v = 0; v < NV; v++) {
        floatv o = acc[r][v] * alpha;
#if HAS_BIAS
        __global const float* bb = bias + bias_off + bt[4 * bi + 3] + m * sbm;
        if (n0 + NR <= N && sbn == 1) {
          o += beta * VLOAD(VW)(0, bb + n0 + v * VW);
        } else {
          float tmp[VW];
          for (int j = 0; j < VW; j++)
            tmp[j] = n0 + v * VW + j < N ? bb[(n0 + v * VW + j) * sbn] : 0.0f;
          o += beta * VLOAD(VW)(0, tmp);
        }
#endif
        o = select(o, (floatv)(lo), o < lo); /* the fused activation: NaN stays NaN */
        o = select(o, (floatv)(hi), o > hi);
        if (n0 + NR <= N) {
          VSTORE(VW)(o, 0, cb + (size_t)m * ldc + n0 + v * VW);
        } else {
          float tmp[VW];
          VSTORE(VW)(o, 0, tmp);
          for (int j = 0; j < VW; j++)
            if (n0 + v * VW + j < N) cb[(size_t)m * ldc + n0 + v * VW + j] = tmp[j];
        }
      }
    }
  }
}

/* GPU-style tiling over the same packed B (requires NR == 16): a 16 x 16 work-group computes a
   16 x 16 tile of C through local memory; dim 0 = column, dim 1 = row. */
#define TS 16
__kernel void gemm_tile(__global float* C, int c_off, __global const float* A, int a_off,
                        __global const float* Bp, int bp_off, __global const float* bias,
                        int bias_off, __global const int* bt, int M, int N, int K, int sam,
                        int sak, int ldc, int sbm, int sbn, float alpha, float beta, int ldb,
                        float lo, float hi, int jp) {
  const int lx = get_local_id(0), ly = get_local_id(1);
  const int n = get_global_id(0), m = get_global_id(1), bi = get_global_id(2);
  const int m0 = get_group_id(1) * TS;
  __local float As[TS][TS + 1];
  __local float Bs[TS][TS];
  __global const float* a = A + a_off + bt[4 * bi];
  __global const float* b = Bp + bp_off + bt[4 * bi + 1] + (size_t)(n / NR) * K * NR + n % NR;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TS) {
    const int ar = m0 + ly, ak = k0 + lx;
    As[ly][lx] = (ar < M && ak < K) ? a[(size_t)ar * sam + (size_t)ak * sak] : 0.0f;
    Bs[ly][lx] = (k0 + ly < K) ? b[(size_t)(k0 + ly) * NR] : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < TS; kk++) acc = fma(As[ly][kk], Bs[kk][lx], acc);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (m < M && n < N) {
    float o = alpha * acc;
#if HAS_BIAS
    o += beta * bias[bias_off + bt[4 * bi + 3] + m * sbm + n * sbn];
#endif
    C[c_off + bt[4 * bi + 2] + (size_t)m * ldc + n] = o < lo ? lo : o > hi ? hi : o;
  }
}
