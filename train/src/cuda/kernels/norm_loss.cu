//! Batch normalization over channels (batch statistics with biased variance in training,
//! running estimates updated with momentum and unbiased variance, as PyTorch; running
//! estimates in evaluation) with sums in double, and softmax cross-entropy with its gradient
//! (softmax - onehot) / batch, loss summed in double.

#define RED_THREADS 256

// One block per channel: mean and 1/sqrt(var + eps) of x ([batch, C, S]); in training also
// updates the running estimates.
extern "C" __global__ void bn_stats(const float* x, float* mean_out, float* inv_out, float* run_mean, float* run_var,
                                    int batch, int c, int s, float eps, float momentum, int train) {
    __shared__ double part[RED_THREADS];
    int ch = blockIdx.x;
    if (!train) {
        if (threadIdx.x == 0) {
            mean_out[ch] = run_mean[ch];
            inv_out[ch] = 1.0f / sqrtf(run_var[ch] + eps);
        }
        return;
    }
    long count = (long)batch * s;
    double sum = 0.0;
    for (long t = threadIdx.x; t < count; t += blockDim.x) {
        long b = t / s, i = t % s;
        sum += (double)x[(b * c + ch) * s + i];
    }
    part[threadIdx.x] = sum;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    double mean = part[0] / (double)count;
    __syncthreads();
    double sq = 0.0;
    for (long t = threadIdx.x; t < count; t += blockDim.x) {
        long b = t / s, i = t % s;
        double d = (double)x[(b * c + ch) * s + i] - mean;
        sq += d * d;
    }
    part[threadIdx.x] = sq;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        double var = part[0] / (double)count;
        double unbiased = count > 1 ? part[0] / (double)(count - 1) : var;
        double mo = (double)momentum;
        run_mean[ch] = (float)((1.0 - mo) * (double)run_mean[ch] + mo * mean);
        run_var[ch] = (float)((1.0 - mo) * (double)run_var[ch] + mo * unbiased);
        float vf = (float)var;
        mean_out[ch] = (float)mean;
        inv_out[ch] = 1.0f / sqrtf(vf + eps);
    }
}

// xhat = (x - mean) * inv (stored when `xhat` is used), y = xhat * gamma + beta.
extern "C" __global__ void bn_apply(const float* x, const float* mean, const float* inv, const float* gamma,
                                    const float* beta, float* xhat, int store_xhat, float* y, int batch, int c, int s) {
    long total = (long)batch * c * s;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int ch = (int)((idx / s) % c);
    float xh = (x[idx] - mean[ch]) * inv[ch];
    if (store_xhat) xhat[idx] = xh;
    y[idx] = xh * gamma[ch] + beta[ch];
}

// One block per channel: dgamma = sum dy*xhat, dbeta = sum dy; mdy and mdyx are their means.
extern "C" __global__ void bn_bwd_reduce(const float* dy, const float* xhat, float* dgamma, float* dbeta, float* mdy,
                                         float* mdyx, int batch, int c, int s) {
    __shared__ double p0[RED_THREADS];
    __shared__ double p1[RED_THREADS];
    int ch = blockIdx.x;
    long count = (long)batch * s;
    double a = 0.0, b2 = 0.0;
    for (long t = threadIdx.x; t < count; t += blockDim.x) {
        long b = t / s, i = t % s;
        long e = (b * c + ch) * s + i;
        double d = (double)dy[e];
        a += d;
        b2 += d * (double)xhat[e];
    }
    p0[threadIdx.x] = a;
    p1[threadIdx.x] = b2;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) {
            p0[threadIdx.x] += p0[threadIdx.x + h];
            p1[threadIdx.x] += p1[threadIdx.x + h];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        dgamma[ch] = (float)p1[0];
        dbeta[ch] = (float)p0[0];
        mdy[ch] = (float)(p0[0] / (double)count);
        mdyx[ch] = (float)(p1[0] / (double)count);
    }
}

// dx = gamma * inv * (dy - mdy - xhat * mdyx).
extern "C" __global__ void bn_bwd_apply(const float* dy, const float* xhat, const float* gamma, const float* inv,
                                        const float* mdy, const float* mdyx, float* dx, int batch, int c, int s) {
    long total = (long)batch * c * s;
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int ch = (int)((idx / s) % c);
    float scale = gamma[ch] * inv[ch];
    dx[idx] = scale * (dy[idx] - mdy[ch] - xhat[idx] * mdyx[ch]);
}

// One block: softmax cross-entropy of logits [batch, classes] against labels. Writes the
// summed loss to loss_out[slot], the count of rows whose first largest logit is the label to
// correct_out[slot], and (when write_grad) the gradient (softmax - onehot) / batch.
extern "C" __global__ void softmax_xent(const float* logits, const int* labels, float* grad, int write_grad,
                                        double* loss_out, int* correct_out, int slot, int batch, int classes) {
    __shared__ double lp[RED_THREADS];
    __shared__ int cp[RED_THREADS];
    double loss = 0.0;
    int correct = 0;
    for (int r = threadIdx.x; r < batch; r += blockDim.x) {
        const float* row = logits + (long)r * classes;
        int label = labels[r];
        int arg = 0;
        float mx = __int_as_float(0xff800000);
        for (int i = 0; i < classes; ++i)
            if (row[i] > mx) {
                mx = row[i];
                arg = i;
            }
        correct += arg == label;
        double sum = 0.0;
        for (int i = 0; i < classes; ++i) sum += exp((double)row[i] - (double)mx);
        double log_sum = log(sum) + (double)mx;
        loss += log_sum - (double)row[label];
        if (write_grad) {
            for (int i = 0; i < classes; ++i) {
                double p = exp((double)row[i] - log_sum);
                double t = i == label ? 1.0 : 0.0;
                grad[(long)r * classes + i] = (float)((p - t) / (double)batch);
            }
        }
    }
    lp[threadIdx.x] = loss;
    cp[threadIdx.x] = correct;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) {
            lp[threadIdx.x] += lp[threadIdx.x + h];
            cp[threadIdx.x] += cp[threadIdx.x + h];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        loss_out[slot] = lp[0];
        correct_out[slot] = cp[0];
    }
}
