//! Element-wise and small reduction kernels of the training step: batch gather from the
//! dataset held on the GPU, bias rows and bias gradients, ReLU, max and average pooling
//! (square window, no padding; max routes the gradient to the first maximum in row-major
//! order), and the SGD update with momentum, weight decay and the SR-STE term.

// x[b, :] = pixels[order[off + b], :], y[b] = labels[order[off + b]].
extern "C" __global__ void gather_batch(const float* pixels, const unsigned char* labels, const unsigned int* order,
                                        int off, int batch, int sz, float* x, int* y) {
    long total = (long)batch * sz;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int b = (int)(idx / sz);
    int j = (int)(idx % sz);
    long src = (long)order[off + b];
    x[idx] = pixels[src * sz + j];
    if (j == 0) y[b] = (int)labels[src];
}

// y[r, c] = bias[c] for a [rows, cols] matrix.
extern "C" __global__ void bias_rows(float* y, const float* bias, int rows, int cols) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)rows * cols) return;
    y[idx] = bias[idx % cols];
}

// out[c] = sum over r of m[r, c] (rows summed in order).
extern "C" __global__ void col_sum(const float* m, float* out, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; ++r) s += m[(long)r * cols + c];
    out[c] = s;
}

// out[r] = sum of row r of a [rows, cols] matrix; one block per row.
extern "C" __global__ void row_sum(const float* m, float* out, int rows, int cols) {
    __shared__ float part[256];
    int r = blockIdx.x;
    float s = 0.0f;
    for (long c = threadIdx.x; c < cols; c += blockDim.x) s += m[(long)r * cols + c];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[r] = part[0];
}

extern "C" __global__ void relu_fwd(const float* x, float* y, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// dx = dy where the forward input was positive, else 0.
extern "C" __global__ void relu_bwd(const float* x, const float* dy, float* dx, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// Max (is_max = 1) or average pooling over planes of h x w; argmax holds the index inside
// the plane of the first maximum.
extern "C" __global__ void pool_fwd(const float* x, float* y, unsigned int* argmax, int is_max, int planes, int h,
                                    int w, int k, int stride, int oh, int ow) {
    long total = (long)planes * oh * ow;
    long o = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= total) return;
    int ox = (int)(o % ow);
    int oy = (int)((o / ow) % oh);
    long plane = o / ((long)ow * oh);
    const float* src = x + plane * h * w;
    int y0 = oy * stride, x0 = ox * stride;
    if (is_max) {
        float best = __int_as_float(0xff800000);
        int at = y0 * w + x0;
        for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
                int id = (y0 + i) * w + x0 + j;
                if (src[id] > best) {
                    best = src[id];
                    at = id;
                }
            }
        y[o] = best;
        argmax[o] = (unsigned int)at;
    } else {
        float s = 0.0f;
        for (int i = 0; i < k; ++i) {
            float r = 0.0f;
            for (int j = 0; j < k; ++j) r += src[(y0 + i) * w + x0 + j];
            s += r;
        }
        y[o] = s * (1.0f / (float)(k * k));
    }
}

// Gradient of pooling, gathered per input element over the windows that contain it, in
// output order.
extern "C" __global__ void pool_bwd(const float* dy, const unsigned int* argmax, float* dx, int is_max, int planes,
                                    int h, int w, int k, int stride, int oh, int ow) {
    long total = (long)planes * h * w;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int xx = (int)(idx % w);
    int yy = (int)((idx / w) % h);
    long plane = idx / ((long)w * h);
    int here = yy * w + xx;
    float inv = 1.0f / (float)(k * k);
    int oy_lo = yy >= k ? (yy - k) / stride + 1 : 0;
    int ox_lo = xx >= k ? (xx - k) / stride + 1 : 0;
    int oy_hi = min(yy / stride, oh - 1);
    int ox_hi = min(xx / stride, ow - 1);
    float s = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; ++oy)
        for (int ox = ox_lo; ox <= ox_hi; ++ox) {
            long o = plane * oh * ow + oy * ow + ox;
            if (is_max) {
                if (argmax[o] == (unsigned int)here) s += dy[o];
            } else {
                s += dy[o] * inv;
            }
        }
    dx[idx] = s;
}

// SGD with momentum and weight decay (PyTorch convention); where `has_mask`, pruned weights
// (mask_ff = 0) first receive the SR-STE term lambda * w.
extern "C" __global__ void sgd_update(float* w, const float* g, float* v, const unsigned char* mask_ff, int has_mask,
                                      float lambda, float wd, float momentum, float lr, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float wi = w[i];
    float gi = g[i];
    if (has_mask && mask_ff[i] == 0) gi += lambda * wi;
    float d = gi + wd * wi;
    float vi = momentum * v[i] + d;
    v[i] = vi;
    w[i] = wi - lr * vi;
}
