/* Normalizations (float32). */

/* BatchNormalization (inference): x viewed as [N][C][inner]. */
__kernel void batchnorm(__global float* out, int out_off, __global const float* x, int x_off,
                        __global const float* scale, int s_off, __global const float* bias,
                        int b_off, __global const float* mean, int m_off,
                        __global const float* var, int v_off, int C, int inner, float eps) {
  const int i = get_global_id(0);
  const int c = (i / inner) % C;
  const float k = scale[s_off + c] / sqrt(var[v_off + c] + eps);
  out[out_off + i] = (x[x_off + i] - mean[m_off + c]) * k + bias[b_off + c];
}

/* Layer / RMS / instance normalization over rows of n elements; one work-item per row.
   Row r's affine parameters: scale[(r % cmod) * scs + j * sjs] (same for bias), which covers
   LayerNorm (cmod 1, per-element) and InstanceNorm (per channel: cmod C, scs 1, sjs 0).
   RMS: no mean subtraction. Optional mean / inverse std outputs per row (WITH_STATS). */
__kernel void rownorm(__global float* out, int out_off, __global const float* x, int x_off,
                      __global const float* scale, int s_off, __global const float* bias,
                      int b_off,
#if WITH_STATS
                      __global float* mean_out, int mo_off, __global float* inv_out, int io_off,
#endif
                      int n, int cmod, int scs, int sjs, int bcs, int bjs, float eps) {
  const int r = get_global_id(0);
  __global const float* xr = x + x_off + (size_t)r * n;
  __global float* yr = out + out_off + (size_t)r * n;
  float mean = 0.0f;
#if !RMS
  for (int j = 0; j < n; ++j) mean += xr[j];
  mean /= (float)n;
#endif
  float var = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float d = xr[j] - mean;
    var += d * d;
  }
  var /= (float)n;
  const float inv = 1.0f / sqrt(var + eps);
  const int c = r % cmod;
  __global const float* sc = scale + s_off + c * scs;
  for (int j = 0; j < n; ++j) {
    float v = (xr[j] - mean) * inv * sc[j * sjs];
#if HAS_BIAS
    v += bias[b_off + c * bcs + j * bjs];
#endif
    yr[j] = v;
  }
#if WITH_STATS
  if (mean_out) mean_out[mo_off + r] = mean;
  if (inv_out) inv_out[io_off + r] = inv;
#endif
}
