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
   column n = output pixel, row k = (ci, ky, kx). q: C, H, W, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, G */
__kernel void im2col_pack(__global float* Bp, int bp_off, __global const float* in, int in_off,
                          __global const int* q, int K) {
  const int jb = get_global_id(0), k = get_global_id(1), b = get_global_id(2);
  const int C = q[0], H = q[1], W = q[2], OH = q[3], OW = q[4], KH = q[5], KW = q[6];
  const int G = q[13], Cg = C / G, P = OH * OW;
  const int panels = (P + NR - 1) / NR;
  const int img = b / G, g = b % G;
  const int kx = k % KW, ky = (k / KW) % KH, ci = k / (KW * KH);
  __global const float* src = in + in_off + (size_t)(img * C + g * Cg + ci) * H * W;
  __global float* dst = Bp + bp_off + (size_t)b * panels * K * NR + ((size_t)jb * K + k) * NR;
  /* One work-item fills the NR columns of one (panel, k) row. */
  for (int c = 0; c < NR; ++c) {
    const int n = jb * NR + c;
    float v = 0.0f;
    if (n < P) {
      const int oy = n / OW, ox = n % OW;
      const int iy = oy * q[7] - q[11] + ky * q[9], ix = ox * q[8] - q[12] + kx * q[10];
      if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = src[iy * W + ix];
    }
    dst[c] = v;
  }
}

/* CPU-style register blocking: each work-item computes an MR x NR block with vector FMAs.
   Global: (ceil(M / MR), panels, batches), local size 1. */
__kernel void gemm_rb(__global float* C, int c_off, __global const float* A, int a_off,
                      __global const float* Bp, int bp_off, __global const float* bias,
                      int bias_off, __global const int* bt, int M, int N, int K, int sam, int sak,
                      int ldc, int sbm, int sbn, float alpha, float beta) {
  const int ib = get_global_id(0), jb = get_global_id(1), bi = get_global_id(2);
  __global const float* ar[MR];
#pragma unroll
  for (int r = 0; r < MR; r++)
    ar[r] = A + a_off + bt[4 * bi] + (size_t)min(ib * MR + r, M - 1) * sam;
  __global const floatv* b = (__global const floatv*)(Bp + bp_off + bt[4 * bi + 1] + (size_t)jb * K * NR);
  floatv acc[MR][NV];
#pragma unroll
  for (int r = 0; r < MR; r++)
#pragma unroll
    for (int v = 0; v < NV; v++) acc[r][v] = (floatv)(0.0f);
  for (int k = 0; k < K; k++) {
    floatv bv[NV];
#pragma unroll
    for (int v = 0; v < NV; v++) bv[v] = b[k * NV + v];
#pragma unroll
    for (int r = 0; r < MR; r++) {
      const floatv av = (floatv)(ar[r][k * sak]);
#pragma unroll
      for (int v = 0; v < NV; v++) acc[r][v] = fma(av, bv[v], acc[r][v]);
    }
  }
  __global float* cb = C + c_off + bt[4 * bi + 2];
  const int n0 = jb * NR;
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
        for (int j = 0; j < VW; j++) tmp[j] = n0 + v * VW + j < N ? bb[(n0 + v * VW + j) * sbn] : 0.0f;
        o += beta * VLOAD(VW)(0, tmp);
      }
#endif
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

/* GPU-style tiling over the same packed B (requires NR == 16): a 16 x 16 work-group computes a
   16 x 16 tile of C through local memory; dim 0 = column, dim 1 = row. */
#define TS 16
__kernel void gemm_tile(__global float* C, int c_off, __global const float* A, int a_off,
                        __global const float* Bp, int bp_off, __global const float* bias,
                        int bias_off, __global const int* bt, int M, int N, int K, int sam,
                        int sak, int ldc, int sbm, int sbn, float alpha, float beta) {
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
    C[c_off + bt[4 * bi + 2] + (size_t)m * ldc + n] = o;
  }
}
