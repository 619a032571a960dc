/* Elementwise ops with numpy broadcasting: one work-item per output element.
   The host prepends: R (rank after collapsing dims), NIN (1..3), T0/T1/T2 input types, TO output
   type, OP(a, b, c) the expression, FLAT when every operand is contiguous with the output.
   p holds dims[R] then the element strides of each input over those dims (0 = broadcast). */
#ifndef T1
#define T1 T0
#endif
#ifndef T2
#define T2 T0
#endif

__kernel void ew(__global TO* out, int out_off, __global const T0* a, int a_off
#if NIN > 1
                 , __global const T1* b, int b_off
#endif
#if NIN > 2
                 , __global const T2* c, int c_off
#endif
                 , __global const int* p, float alpha, float beta) {
  const int i = get_global_id(0);
  int ia = a_off;
#if NIN > 1
  int ib = b_off;
#endif
#if NIN > 2
  int ic = c_off;
#endif
#ifdef FLAT
  ia += i;
#if NIN > 1
  ib += i;
#endif
#if NIN > 2
  ic += i;
#endif
#else
  int rem = i;
#pragma unroll
  for (int d = R - 1; d >= 0; --d) {
    const int x = rem % p[d];
    rem /= p[d];
    ia += x * p[R + d];
#if NIN > 1
    ib += x * p[2 * R + d];
#endif
#if NIN > 2
    ic += x * p[3 * R + d];
#endif
  }
#endif
  const T0 va = a[ia];
#if NIN > 1
  const T1 vb = b[ib];
#else
  const T0 vb = va;
#endif
#if NIN > 2
  const T2 vc = c[ic];
#else
  const T0 vc = va;
#endif
  out[out_off + i] = (TO)(OP(va, vb, vc));
}
