//! Opening the CUDA device once (driver, context, NVRTC compilation of `kernels/*.cu`,
//! cuBLAS handle) and the few primitives the training step is written in: row-major FP32
//! GEMM on cuBLAS, kernel launch configurations, allocation and copies. Every failure
//! becomes an [`Error`]: [`Error::CudaUnavailable`] while opening, [`Error::Cuda`] after.

use crate::error::{Error, Result};
use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig,
    ValidAsZeroBits,
};
use cudarc::nvrtc::CompileOptions;
use std::sync::Arc;

/// The kernel sources, one program compiled by NVRTC when a device is opened.
const SOURCES: [(&str, &str); 4] = [
    ("nm.cu", include_str!("kernels/nm.cu")),
    ("conv.cu", include_str!("kernels/conv.cu")),
    ("elementwise.cu", include_str!("kernels/elementwise.cu")),
    ("norm_loss.cu", include_str!("kernels/norm_loss.cu")),
];

/// Declares the kernels once: a field per kernel in [`Kernels`], loaded by its own name, so
/// call sites name a field, never a string.
macro_rules! kernels {
    ($($name:ident),* $(,)?) => {
        /// The loaded kernels of `kernels/*.cu`, one field per `extern "C" __global__` function.
        pub(crate) struct Kernels {
            $(pub(crate) $name: CudaFunction,)*
        }

        impl Kernels {
            fn load(module: &Arc<CudaModule>, ordinal: usize) -> Result<Self> {
                Ok(Self {
                    $($name: module.load_function(stringify!($name)).map_err(|e| Error::CudaUnavailable {
                        ordinal,
                        reason: format!("kernel `{}` missing from the compiled module: {e}", stringify!($name)),
                    })?,)*
                })
            }
        }
    };
}

kernels!(
    nm_mask,
    im2col,
    col2im,
    cm_to_nchw_bias,
    nchw_to_cm,
    gather_batch,
    bias_rows,
    col_sum,
    row_sum,
    relu_fwd,
    relu_bwd,
    pool_fwd,
    pool_bwd,
    sgd_update,
    bn_stats,
    bn_apply,
    bn_bwd_reduce,
    bn_bwd_apply,
    softmax_xent,
);

/// Threads per block of the element-wise kernels.
pub(crate) const BLOCK: u32 = 256;
/// Threads per block of the one-block-per-row reductions (`RED_THREADS` in the `.cu` files).
pub(crate) const RED_BLOCK: u32 = 256;

/// Whether a row-major GEMM operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// An opened CUDA device: context, stream, compiled kernels and a cuBLAS handle. Cloning
/// shares the one device.
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<DeviceInner>,
}

impl std::ops::Deref for CudaDevice {
    type Target = DeviceInner;
    fn deref(&self) -> &DeviceInner {
        &self.inner
    }
}

/// What an opened device holds; reached through [`CudaDevice`].
pub struct DeviceInner {
    ordinal: usize,
    name: String,
    capability: (i32, i32),
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    pub(crate) k: Kernels,
    _ctx: Arc<CudaContext>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Maps a driver, cuBLAS or copy failure to [`Error::Cuda`].
pub(crate) fn cuda_err(op: impl Into<String>) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    let op = op.into();
    move |e| Error::Cuda { op, reason: e.to_string() }
}

impl CudaDevice {
    /// Opens device `ordinal`: checks that the driver, NVRTC and cuBLAS libraries load,
    /// creates the context, compiles the kernels for the device's architecture and creates
    /// the cuBLAS handle. Any failure is [`Error::CudaUnavailable`] saying what is missing.
    pub fn open(ordinal: usize) -> Result<Self> {
        let unavailable = |reason: String| Error::CudaUnavailable { ordinal, reason };
        // SAFETY: these only try to dlopen the libraries; cudarc would panic on first use if
        // they were absent, which is what the checks prevent.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable("the CUDA driver library (libcuda.so) was not found: no NVIDIA driver installed".into()));
        }
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(unavailable(
                "the NVRTC library (libnvrtc.so) was not found: put the CUDA toolkit's lib directory on LD_LIBRARY_PATH".into(),
            ));
        }
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(unavailable(
                "the cuBLAS library (libcublas.so) was not found: put the CUDA toolkit's lib directory on LD_LIBRARY_PATH".into(),
            ));
        }
        let count = CudaContext::device_count().map_err(|e| {
            let hint = if format!("{e:?}").contains("STUB_LIBRARY") {
                " (a CUDA toolkit's stub libcuda.so was loaded instead of the driver's libcuda.so.1: put the driver's \
                 folder first on LD_LIBRARY_PATH, or source train/scripts/gpu/cuda_env.sh)"
            } else {
                ""
            };
            unavailable(format!("the driver failed to start: {e}{hint}"))
        })?;
        if ordinal >= count.max(0) as usize {
            return Err(unavailable(format!("the driver sees {count} device(s)")));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| unavailable(e.to_string()))?;
        let name = ctx.name().map_err(|e| unavailable(e.to_string()))?;
        let capability = ctx.compute_capability().map_err(|e| unavailable(e.to_string()))?;
        let stream = ctx.default_stream();
        let src: String = SOURCES.iter().map(|(_, s)| *s).collect::<Vec<_>>().join("\n");
        let opts = CompileOptions {
            // No fused multiply-add: the update and element-wise kernels then round like the
            // CPU reference, operation by operation.
            fmad: Some(false),
            options: vec![format!("--gpu-architecture=compute_{}{}", capability.0, capability.1)],
            name: Some("satkit_train.cu".into()),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(src, opts)
            .map_err(|e| unavailable(format!("NVRTC could not compile the kernels: {e}")))?;
        let module = ctx.load_module(ptx).map_err(|e| unavailable(format!("loading the compiled kernels: {e}")))?;
        let k = Kernels::load(&module, ordinal)?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| unavailable(format!("cuBLAS: {e}")))?;
        Ok(Self { inner: Arc::new(DeviceInner { ordinal, name, capability, stream, blas, k, _ctx: ctx }) })
    }
}

impl DeviceInner {
    /// A one-line description: ordinal, name and compute capability.
    pub fn describe(&self) -> String {
        format!("CUDA device {}: {} (sm_{}{})", self.ordinal, self.name, self.capability.0, self.capability.1)
    }

    /// A zeroed device buffer of `n` elements.
    pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(n.max(1)).map_err(cuda_err(format!("allocating {n} elements")))
    }

    /// A device copy of `host` (one zero element when `host` is empty).
    pub(crate) fn upload<T: DeviceRepr + ValidAsZeroBits>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        if host.is_empty() {
            return self.zeros(1);
        }
        self.stream.clone_htod(host).map_err(cuda_err(format!("copying {} elements to the GPU", host.len())))
    }

    /// Copies `host` into the start of `dst`.
    pub(crate) fn write<T: DeviceRepr>(&self, host: &[T], dst: &mut CudaSlice<T>) -> Result<()> {
        let mut view = dst.slice_mut(0..host.len());
        self.stream.memcpy_htod(host, &mut view).map_err(cuda_err(format!("copying {} elements to the GPU", host.len())))
    }

    /// The first `n` elements of `src` on the host (waits for the stream).
    pub(crate) fn read<T: DeviceRepr + Default + Clone>(&self, src: &CudaSlice<T>, n: usize) -> Result<Vec<T>> {
        let mut out = vec![T::default(); n];
        if n > 0 {
            self.stream
                .memcpy_dtoh(&src.slice(0..n), &mut out)
                .map_err(cuda_err(format!("copying {n} elements from the GPU")))?;
        }
        Ok(out)
    }

    /// Row-major `C = op(A) . op(B) + beta * C` with `op(A)` `m x k`, `op(B)` `k x n`, `C`
    /// `m x n` (the CPU [`crate::gemm::sgemm`] contract), on cuBLAS: cuBLAS is
    /// column-major, so it computes `C^T = op(B)^T . op(A)^T`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: &A,
        op_a: Op,
        b: &B,
        op_b: Op,
        beta: f32,
        c: &mut C,
    ) -> Result<()> {
        if m == 0 || n == 0 {
            return Ok(());
        }
        let trans = |op| if op == Op::N { cublasOperation_t::CUBLAS_OP_N } else { cublasOperation_t::CUBLAS_OP_T };
        let cfg = GemmConfig {
            transa: trans(op_b),
            transb: trans(op_a),
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0f32,
            lda: (if op_b == Op::N { n } else { k }).max(1) as i32,
            ldb: (if op_a == Op::N { k } else { m }).max(1) as i32,
            beta,
            ldc: n as i32,
        };
        // SAFETY: callers pass buffers of at least m*k, k*n and m*n elements (shapes are
        // checked when the model is built); cuBLAS reads and writes only those.
        unsafe { self.blas.gemm(cfg, b, a, c) }
            .map_err(|e| Error::Cuda { op: format!("cuBLAS SGEMM {m}x{k}x{n}"), reason: e.to_string() })
    }
}

/// A launch configuration of one thread per element for `n` elements.
pub(crate) fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).max(1) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// A launch configuration of one block of [`RED_BLOCK`] threads per row, `rows` rows.
pub(crate) fn per_row(rows: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (rows.max(1) as u32, 1, 1), block_dim: (RED_BLOCK, 1, 1), shared_mem_bytes: 0 }
}
