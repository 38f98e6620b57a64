//! Convolution data movement: im2col / col2im with K in the order (kh, kw, c_in) (a group of
//! M consecutive K elements is M input channels at one kernel position), and the layout
//! changes between NCHW activations and the GEMM's [C_out, batch*P] matrices.
//! col2im gathers (one thread per input element, contributions summed in (kh, kw) order),
//! so it needs no atomics and its result does not depend on scheduling.

// cols[k, b*P + p], k = (i*kw + j)*c_in + c; x is [batch, c_in, h, w].
extern "C" __global__ void im2col(const float* x, float* cols, int batch, int c_in, int h, int w, int kh, int kw,
                                  int stride, int pad, int oh, int ow) {
    long p_all = (long)batch * oh * ow;
    long total = (long)c_in * kh * kw * p_all;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    long col = idx % p_all;
    int k = (int)(idx / p_all);
    int c = k % c_in;
    int ij = k / c_in;
    int j = ij % kw;
    int i = ij / kw;
    int P = oh * ow;
    int b = (int)(col / P);
    int p = (int)(col % P);
    int oy = p / ow, ox = p % ow;
    int iy = oy * stride + i - pad;
    int ix = ox * stride + j - pad;
    float v = 0.0f;
    if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = x[(((long)b * c_in + c) * h + iy) * w + ix];
    cols[idx] = v;
}

// dx[b, c, y, x] = sum over kernel positions (i, j) that read it of dcols[k, b*P + p].
extern "C" __global__ void col2im(const float* dcols, float* dx, int batch, int c_in, int h, int w, int kh, int kw,
                                  int stride, int pad, int oh, int ow) {
    long total = (long)batch * c_in * h * w;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int xx = (int)(idx % w);
    int yy = (int)((idx / w) % h);
    int c = (int)((idx / ((long)w * h)) % c_in);
    int b = (int)(idx / ((long)w * h * c_in));
    int P = oh * ow;
    long p_all = (long)batch * P;
    float s = 0.0f;
    for (int i = 0; i < kh; ++i) {
        int ty = yy + pad - i;
        if (ty < 0 || ty % stride != 0) continue;
        int oy = ty / stride;
        if (oy >= oh) continue;
        for (int j = 0; j < kw; ++j) {
            int tx = xx + pad - j;
            if (tx < 0 || tx % stride != 0) continue;
            int ox = tx / stride;
            if (ox >= ow) continue;
            int k = (i * kw + j) * c_in + c;
            s += dcols[(long)k * p_all + (long)b * P + oy * ow + ox];
        }
    }
    dx[idx] = s;
}

// y[b, c, p] = t[c, b*P + p] + bias[c].
extern "C" __global__ void cm_to_nchw_bias(const float* t, const float* bias, float* y, int c_out, int batch, int P) {
    long total = (long)batch * c_out * P;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int p = (int)(idx % P);
    int c = (int)((idx / P) % c_out);
    int b = (int)(idx / ((long)P * c_out));
    y[idx] = t[(long)c * batch * P + (long)b * P + p] + bias[c];
}

// t[c, b*P + p] = y[b, c, p].
extern "C" __global__ void nchw_to_cm(const float* y, float* t, int c_out, int batch, int P) {
    long total = (long)batch * c_out * P;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int p = (int)(idx % P);
    int c = (int)((idx / P) % c_out);
    int b = (int)(idx / ((long)P * c_out));
    t[(long)c * batch * P + (long)b * P + p] = y[idx];
}
