//! N:M mask kernels (SAT.md section 2): in each group of M, keep the N entries of largest
//! |w|; ties go to the earlier index (the rule of `satkit_hw::nm::keep_in_group`); NaN
//! magnitudes rank below every number, so they are pruned first.
//! FF masks group M consecutive elements of a row (along K); BP masks group M consecutive
//! rows of a column (along C_out). One thread per group.

#define NM_MAX_M 32

// Mask of one group: `src` ranks, `w` supplies the kept values, `and_mask` (when `use_and`)
// is intersected with the selection (BDWP's forward_masked BP source).
extern "C" __global__ void nm_mask(const float* src, const float* w, const unsigned char* and_mask, int use_and,
                                   unsigned char* mask, float* w_out, int rows, int cols, int n, int m,
                                   int along_cols) {
    int groups = along_cols ? (rows / m) * cols : rows * (cols / m);
    int gi = blockIdx.x * blockDim.x + threadIdx.x;
    if (gi >= groups) return;
    long base;
    long stride;
    if (along_cols) {
        int gr = gi / cols;
        int c = gi % cols;
        base = (long)gr * m * cols + c;
        stride = cols;
    } else {
        int r = gi / (cols / m);
        int g = gi % (cols / m);
        base = (long)r * cols + (long)g * m;
        stride = 1;
    }
    float mag[NM_MAX_M];
    for (int i = 0; i < m; ++i) {
        float v = fabsf(src[base + i * stride]);
        mag[i] = isnan(v) ? -1.0f : v;
    }
    for (int i = 0; i < m; ++i) {
        int rank = 0;
        for (int j = 0; j < m; ++j) {
            rank += (mag[j] > mag[i]) || (j < i && mag[j] == mag[i]);
        }
        long e = base + i * stride;
        unsigned char keep = rank < n ? 1 : 0;
        if (use_and) keep &= and_mask[e];
        mask[e] = keep;
        w_out[e] = keep ? w[e] : 0.0f;
    }
}
