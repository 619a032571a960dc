/* Data movement: strided N-d copy (Transpose, Concat, Split, Slice, Expand, Tile, DepthToSpace),
   Pad, Gather, GatherElements, Resize. T is the element type (a same-size unsigned type for pure
   copies), R the rank after collapsing dims. One work-item per output element. */

#ifdef COPY_ND
/* p: dims[R], in_stride[R], out_stride[R] */
__kernel void copy_nd(__global T* out, int out_off, __global const T* in, int in_off,
                      __global const int* p, int in_base, int out_base) {
  int rem = get_global_id(0), ii = in_off + in_base, oi = out_off + out_base;
#pragma unroll
  for (int d = R - 1; d > 0; --d) {
    const int x = rem % p[d];
    rem /= p[d];
    ii += x * p[R + d];
    oi += x * p[2 * R + d];
  }
  out[oi + rem * p[2 * R]] = in[ii + rem * p[R]]; /* the outermost index needs no division */
}
#endif

#ifdef PAD_ND
/* MODE 0 constant, 1 reflect, 2 edge, 3 wrap. p: out_dims[R], in_dims[R], in_stride[R], begin[R] */
__kernel void pad_nd(__global T* out, int out_off, __global const T* in, int in_off,
                     __global const int* p, T value) {
  const int i = get_global_id(0);
  int rem = i, ii = in_off, inside = 1;
#pragma unroll
  for (int d = R - 1; d >= 0; --d) {
    const int x = rem % p[d];
    rem /= p[d];
    const int n = p[R + d];
    int s = x - p[3 * R + d];
#if MODE == 0
    inside = inside && s >= 0 && s < n;
#elif MODE == 1
    if (n == 1) {
      s = 0;
    } else {
      const int period = 2 * (n - 1);
      s = s % period;
      if (s < 0) s += period;
      if (s >= n) s = period - s;
    }
#elif MODE == 2
    s = clamp(s, 0, n - 1);
#else
    s = s % n;
    if (s < 0) s += n;
#endif
    ii += s * p[2 * R + d];
  }
  out[out_off + i] = inside ? in[ii] : value;
}
#endif

#ifdef GATHER
/* TI: index type. out = data[outer][idx[j]][inner] */
__kernel void gather(__global T* out, int out_off, __global const T* data, int d_off,
                     __global const TI* idx, int i_off, int nidx, int inner, int axis_len) {
  const int i = get_global_id(0);
  const int k = i % inner, t = i / inner, j = t % nidx, o = t / nidx;
  long id = idx[i_off + j];
  if (id < 0) id += axis_len;
  out[out_off + i] = (id >= 0 && id < axis_len) ? data[d_off + (o * axis_len + (int)id) * inner + k]
                                                 : (T)0;
}

/* GatherElements: p: idx_dims[R], data_stride[R]; AXIS compile-time. */
__kernel void gather_elements(__global T* out, int out_off, __global const T* data, int d_off,
                              __global const TI* idx, int i_off, __global const int* p,
                              int axis_len) {
  const int i = get_global_id(0);
  int rem = i, di = d_off;
  long id = idx[i_off + i];
  if (id < 0) id += axis_len;
  const int ok = id >= 0 && id < axis_len;
#pragma unroll
  for (int d = R - 1; d >= 0; --d) {
    const int x = rem % p[d];
    rem /= p[d];
    di += (d == AXIS ? (ok ? (int)id : 0) : x) * p[R + d];
  }
  out[out_off + i] = ok ? data[di] : (T)0;
}
#endif

#ifdef RESIZE
/* CTM: 0 half_pixel, 1 asymmetric, 2 align_corners, 3 pytorch_half_pixel, 4 half_pixel_symmetric.
   LINEAR 0: nearest with NM 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil.
   p: in_dims[R], out_dims[R], in_stride[R]; f: scale[R] */
float src_coord(int x, int in_len, int out_len, float scale) {
#if CTM == 0
  return ((float)x + 0.5f) / scale - 0.5f;
#elif CTM == 1
  return (float)x / scale;
#elif CTM == 2
  return out_len == 1 ? 0.0f : (float)x * (float)(in_len - 1) / (float)(out_len - 1);
#elif CTM == 3
  return out_len > 1 ? ((float)x + 0.5f) / scale - 0.5f : 0.0f;
#else
  const float adj = (float)out_len / (scale * (float)in_len);
  const float center = (float)in_len / 2.0f;
  return center * (1.0f - adj) + ((float)x + 0.5f) / scale - 0.5f;
#endif
}

__kernel void resize(__global T* out, int out_off, __global const T* in, int in_off,
                     __global const int* p, __global const float* f) {
  const int i = get_global_id(0);
  int rem = i;
#if LINEAR
  int lo[R], hi[R];
  float w[R];
#else
  int ii = in_off;
#endif
#pragma unroll
  for (int d = R - 1; d >= 0; --d) {
    const int n = p[d], on = p[R + d];
    const int x = rem % on;
    rem /= on;
    float s = (n == on && f[d] == 1.0f) ? (float)x : src_coord(x, n, on, f[d]);
#if LINEAR
    s = clamp(s, 0.0f, (float)(n - 1));
    const float fl = floor(s);
    lo[d] = (int)fl;
    hi[d] = min(lo[d] + 1, n - 1);
    w[d] = s - fl;
#else
#if NM == 0
    float r = (s - floor(s) == 0.5f) ? floor(s) : round(s);
#elif NM == 1
    float r = floor(s + 0.5f);
#elif NM == 2
    float r = floor(s);
#else
    float r = ceil(s);
#endif
    const int k = clamp((int)r, 0, n - 1);
    ii += k * p[2 * R + d];
#endif
  }
#if LINEAR
  float acc = 0.0f;
  for (int corner = 0; corner < (1 << R); ++corner) {
    float wt = 1.0f;
    int ii = in_off;
#pragma unroll
    for (int d = 0; d < R; ++d) {
      const int up = (corner >> d) & 1;
      wt *= up ? w[d] : 1.0f - w[d];
      ii += (up ? hi[d] : lo[d]) * p[2 * R + d];
    }
    if (wt != 0.0f) acc += wt * (float)in[ii];
  }
  out[out_off + i] = (T)acc;
#else
  out[out_off + i] = in[ii];
#endif
}
#endif
