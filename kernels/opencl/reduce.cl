/* Reductions: one work-item per output element. The host collapses the input into kept dims
   (RK) and reduced dims (RR); p holds kdims[RK], kstride[RK], rdims[RR], rstride[RR].
   T input type, TO output type, ACC accumulator type, OPK: 0 sum, 1 mean, 2 max, 3 min, 4 prod,
   5 l1, 6 l2, 7 sum_square, 8 log_sum, 9 log_sum_exp, 10 argmax, 11 argmin. */

#ifdef REDUCE
int red_off(int j, __global const int* p) {
  int off = 0;
#pragma unroll
  for (int d = RR - 1; d >= 0; --d) {
    const int x = j % p[2 * RK + d];
    j /= p[2 * RK + d];
    off += x * p[2 * RK + RR + d];
  }
  return off;
}
#define ELEM(j, v) v = in[base + red_off(j, p)]

__kernel void reduce_nd(__global TO* out, int out_off, __global const T* in, int in_off,
                        __global const int* p, int rcount) {
  const int i = get_global_id(0);
  int rem = i, base = in_off;
#pragma unroll
  for (int d = RK - 1; d >= 0; --d) {
    const int x = rem % p[d];
    rem /= p[d];
    base += x * p[RK + d];
  }
#if OPK == 2 || OPK == 3 || OPK == 10 || OPK == 11
  T best = 0;
  int best_j = 0;
  for (int j = 0; j < rcount; ++j) {
    T v;
    ELEM(j, v);
#if OPK == 2 || OPK == 10
    const int better = j == 0 || v > best || (LAST && v == best) || isnan((float)v);
#else
    const int better = j == 0 || v < best || (LAST && v == best) || isnan((float)v);
#endif
    if (better && !(j > 0 && isnan((float)best))) { best = v; best_j = j; }
  }
#if OPK == 10 || OPK == 11
  out[out_off + i] = (TO)best_j;
#else
  out[out_off + i] = rcount == 0 ? (TO)(OPK == 2 ? EMPTY_MAX : EMPTY_MIN) : (TO)best;
#endif
#else
#if OPK == 9
  ACC m = -INFINITY;
  for (int j = 0; j < rcount; ++j) {
    T v;
    ELEM(j, v);
    m = fmax(m, (ACC)v);
  }
  if (isinf(m)) m = 0;
#endif
  ACC acc = OPK == 4 ? 1 : 0;
  for (int j = 0; j < rcount; ++j) {
    T tv;
    ELEM(j, tv);
    const ACC v = (ACC)tv;
#if OPK == 4
    acc *= v;
#elif OPK == 5
    acc += v < 0 ? -v : v;
#elif OPK == 6 || OPK == 7
    acc += v * v;
#elif OPK == 9
    acc += exp(v - m);
#else
    acc += v;
#endif
  }
#if OPK == 1
  acc = rcount ? acc / (ACC)rcount : (ACC)EMPTY_MEAN;
#elif OPK == 6
  acc = sqrt((float)acc);
#elif OPK == 8
  acc = log((float)acc);
#elif OPK == 9
  acc = log(acc) + m;
#endif
  out[out_off + i] = (TO)acc;
#endif
}
#endif

#ifdef SOFTMAX
/* x viewed as [outer][n][inner]; one work-item per (outer, inner). MODE 0 softmax, 1 log-softmax,
   2 hardmax. */
__kernel void softmax(__global T* out, int out_off, __global const T* in, int in_off, int n,
                      int inner) {
  const int g = get_global_id(0);
  const int o = g / inner, k = g % inner;
  const int base = o * n * inner + k;
  __global const T* x = in + in_off + base;
  __global T* y = out + out_off + base;
  float m = -INFINITY;
  int arg = 0;
  for (int j = 0; j < n; ++j) {
    const float v = x[j * inner];
    if (v > m) { m = v; arg = j; }
  }
#if MODE == 2
  for (int j = 0; j < n; ++j) y[j * inner] = j == arg ? 1 : 0;
#else
  float s = 0.0f;
  for (int j = 0; j < n; ++j) s += exp((float)x[j * inner] - m);
#if MODE == 0
  const float inv = 1.0f / s;
  for (int j = 0; j < n; ++j) y[j * inner] = exp((float)x[j * inner] - m) * inv;
#else
  const float ls = log(s);
  for (int j = 0; j < n; ++j) y[j * inner] = (float)x[j * inner] - m - ls;
#endif
#endif
}
#endif
