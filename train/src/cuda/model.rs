//! A [`Model`] on the GPU: its parameters, optimizer state and N:M masks as device buffers,
//! and the training step (forward, softmax cross-entropy, backward, SGD/SR-STE update, mask
//! refresh) as a sequence of cuBLAS GEMMs and kernels that never leaves the GPU. It computes
//! what the CPU layers compute ([`crate::layers`]), layer by layer:
//!
//! - convolution: `cols = im2col(x)` for the whole batch (`K x batch*P`, `K` in
//!   `(kh, kw, c_in)` order), `Y = W_ff . cols + b`; backward `dW = dY . cols^T`,
//!   `dcols = W_bp^T . dY`, `dX = col2im(dcols)` (skipped for the first layer, whose input
//!   gradient nothing uses);
//! - linear: `Y = X . W_ff^T + b`; backward `dW = dY^T . X`, `dX = dY . W_bp`;
//! - ReLU, max/average pooling, batch norm, flatten (a view: no copy);
//! - after the update, `mask_ff` (groups along `K`) and, for BDWP, `mask_bp` (groups along
//!   `C_out`, ranked on `W` or on `W_ff`) are recomputed from the FP32 master weights, with
//!   `W_ff = W * mask_ff` and `W_bp = W * mask_bp`.
//!
//! Buffers for a batch size are allocated once (a [`Workspace`]) and reused every step.

use super::device::{cuda_err, grid, per_row, CudaDevice, Op, RED_BLOCK};
use crate::error::{Error, Result};
use crate::layers::{ConvGeom, Layer, PoolKind};
use crate::model::Model;
use crate::optim::{Param, Sgd};
use crate::sparse::{BpMaskSource, LayerSparsity, Method};
use crate::tensor::Tensor;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// The largest `M` the mask kernel handles (`NM_MAX_M` in `kernels/nm.cu`).
pub const MAX_M: u32 = 32;

/// Enqueues one kernel: `launch!(dev, kernel, config, (args...))`. Every argument is bound
/// with `let` first, so temporaries (`&(n as i32)`) live until the launch.
macro_rules! launch {
    ($dev:expr, $f:ident, $cfg:expr, ($($arg:expr),* $(,)?)) => {{
        let dev: &CudaDevice = $dev;
        let mut b = dev.stream.launch_builder(&dev.k.$f);
        $( let a = $arg; b.arg(a); )*
        // SAFETY: the kernels index only below the element counts passed with them, and every
        // buffer is allocated for the workspace's capacity, which bounds those counts.
        unsafe { b.launch($cfg) }.map(|_| ()).map_err(cuda_err(concat!("kernel ", stringify!($f))))
    }};
}

/// The masks of one weight layer as read back from the GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightMasks {
    /// Layer name.
    pub name: String,
    /// FF mask (`C_out x K`, groups along `K`), `None` for a dense layer.
    pub ff: Option<Vec<u8>>,
    /// BP mask (groups along `C_out`), `Some` for BDWP layers.
    pub bp: Option<Vec<u8>>,
}

/// A parameter with its gradient and momentum on the GPU.
struct GParam {
    value: CudaSlice<f32>,
    grad: CudaSlice<f32>,
    vel: CudaSlice<f32>,
    len: usize,
    decay: bool,
}

impl GParam {
    fn new(dev: &CudaDevice, p: &Param) -> Result<Self> {
        Ok(Self {
            value: dev.upload(&p.value)?,
            grad: dev.zeros(p.value.len())?,
            vel: dev.upload(&p.velocity)?,
            len: p.value.len(),
            decay: p.decay,
        })
    }

    fn download(&self, dev: &CudaDevice, p: &mut Param) -> Result<()> {
        p.value = dev.read(&self.value, self.len)?;
        p.velocity = dev.read(&self.vel, self.len)?;
        p.grad.iter_mut().for_each(|g| *g = 0.0);
        Ok(())
    }

    /// SGD step; `mask` adds the SR-STE term `lambda * w` where `mask_ff` is 0.
    fn update(
        &mut self,
        dev: &CudaDevice,
        sgd: &Sgd,
        lr: f32,
        mask: Option<(&CudaSlice<u8>, f32)>,
        dummy: &CudaSlice<u8>,
    ) -> Result<()> {
        let wd = if self.decay { sgd.weight_decay } else { 0.0 };
        let (m, has, lambda) = match mask {
            Some((m, l)) => (m, 1i32, l),
            None => (dummy, 0i32, 0.0f32),
        };
        launch!(
            dev,
            sgd_update,
            grid(self.len),
            (&mut self.value, &self.grad, &mut self.vel, m, &has, &lambda, &wd, &sgd.momentum, &lr, &(self.len as i32))
        )
    }
}

/// A `C_out x K` weight with its masks and pruned operands.
struct GWeight {
    p: GParam,
    c_out: usize,
    k: usize,
    s: LayerSparsity,
    mask_ff: Option<CudaSlice<u8>>,
    mask_bp: Option<CudaSlice<u8>>,
    w_ff: Option<CudaSlice<f32>>,
    w_bp: Option<CudaSlice<f32>>,
}

impl GWeight {
    fn new(dev: &CudaDevice, layer: &str, w: &crate::sparse::NmWeight, dummy: &CudaSlice<u8>) -> Result<Self> {
        let s = *w.sparsity();
        let n = w.c_out * w.k;
        let sparse = !s.is_dense();
        if sparse && s.ratio.m > MAX_M {
            return Err(Error::Cuda {
                op: format!("N:M masks of layer `{layer}`"),
                reason: format!("M = {} exceeds the GPU mask kernel's limit of {MAX_M}", s.ratio.m),
            });
        }
        let bdwp = sparse && s.method == Method::Bdwp;
        let opt = |on: bool| -> Result<Option<CudaSlice<f32>>> {
            if on {
                dev.zeros(n).map(Some)
            } else {
                Ok(None)
            }
        };
        let optm = |on: bool| -> Result<Option<CudaSlice<u8>>> {
            if on {
                dev.zeros(n).map(Some)
            } else {
                Ok(None)
            }
        };
        let mut g = Self {
            p: GParam::new(dev, &w.param)?,
            c_out: w.c_out,
            k: w.k,
            s,
            mask_ff: optm(sparse)?,
            mask_bp: optm(bdwp)?,
            w_ff: opt(sparse)?,
            w_bp: opt(bdwp)?,
        };
        g.refresh(dev, dummy)?;
        Ok(g)
    }

    /// Recomputes the masks and pruned operands from the master weights.
    fn refresh(&mut self, dev: &CudaDevice, dummy: &CudaSlice<u8>) -> Result<()> {
        let (Some(mff), Some(wff)) = (self.mask_ff.as_mut(), self.w_ff.as_mut()) else { return Ok(()) };
        let (rows, cols, n, m) = (self.c_out as i32, self.k as i32, self.s.ratio.n as i32, self.s.ratio.m as i32);
        let groups = self.c_out * self.k / self.s.ratio.m as usize;
        let w = &self.p.value;
        launch!(dev, nm_mask, grid(groups), (w, w, dummy, &0i32, &mut *mff, &mut *wff, &rows, &cols, &n, &m, &0i32))?;
        if let (Some(mbp), Some(wbp)) = (self.mask_bp.as_mut(), self.w_bp.as_mut()) {
            match self.s.bp_mask_source {
                BpMaskSource::Dense => {
                    launch!(dev, nm_mask, grid(groups), (w, w, dummy, &0i32, mbp, wbp, &rows, &cols, &n, &m, &1i32))?
                }
                BpMaskSource::ForwardMasked => {
                    launch!(dev, nm_mask, grid(groups), (&*wff, w, &*mff, &1i32, mbp, wbp, &rows, &cols, &n, &m, &1i32))?
                }
            }
        }
        Ok(())
    }

    fn ff(&self) -> &CudaSlice<f32> {
        self.w_ff.as_ref().unwrap_or(&self.p.value)
    }

    fn bp(&self) -> &CudaSlice<f32> {
        self.w_bp.as_ref().unwrap_or(&self.p.value)
    }
}

/// What a layer computes, with its per-image geometry.
enum Kind {
    Linear {
        w: GWeight,
        b: GParam,
    },
    Conv {
        w: GWeight,
        b: GParam,
        g: ConvGeom,
        h: usize,
        wd: usize,
        oh: usize,
        ow: usize,
    },
    Relu,
    Pool {
        max: bool,
        k: usize,
        stride: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
    },
    Bn {
        gamma: GParam,
        beta: GParam,
        run_mean: CudaSlice<f32>,
        run_var: CudaSlice<f32>,
        c: usize,
        s: usize,
        eps: f32,
        momentum: f32,
    },
    Flatten,
}

struct GLayer {
    name: String,
    kind: Kind,
    /// Elements per image of the output.
    out_len: usize,
}

/// Per-layer buffers of a workspace.
struct Aux {
    cols: Option<usize>,
    argmax: Option<CudaSlice<u32>>,
    xhat: Option<CudaSlice<f32>>,
    /// Batch-norm mean, 1/std, mean(dy), mean(dy * xhat) per channel.
    bn: Option<[CudaSlice<f32>; 4]>,
}

/// The activation and scratch buffers for batches of up to `cap` images.
struct Workspace {
    cap: usize,
    acts: Vec<CudaSlice<f32>>,
    /// Buffer of activation `i` (`0` is the input; `i + 1` the output of layer `i`).
    act_buf: Vec<usize>,
    cols: Vec<CudaSlice<f32>>,
    aux: Vec<Aux>,
    t: CudaSlice<f32>,
    dcols: CudaSlice<f32>,
    grads: [CudaSlice<f32>; 2],
    pub(crate) labels: CudaSlice<i32>,
}

/// A model's parameters and state on the GPU, ready to train.
pub struct CudaModel {
    dev: CudaDevice,
    layers: Vec<GLayer>,
    in_len: usize,
    classes: usize,
    train_ws: Option<Workspace>,
    eval_ws: Option<Workspace>,
    dummy_u8: CudaSlice<u8>,
    dummy_u32: CudaSlice<u32>,
    dummy_f32: CudaSlice<f32>,
    /// Per-slot summed loss and correct count written by the loss kernel.
    losses: CudaSlice<f64>,
    corrects: CudaSlice<i32>,
    slots: usize,
}

impl std::fmt::Debug for CudaModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaModel({} layers on {})", self.layers.len(), self.dev.describe())
    }
}

fn two<T>(v: &mut [T], r: usize, w: usize) -> (&T, &mut T) {
    assert_ne!(r, w, "a layer reads and writes the same buffer");
    if r < w {
        let (a, b) = v.split_at_mut(w);
        (&a[r], &mut b[0])
    } else {
        let (a, b) = v.split_at_mut(r);
        (&b[0], &mut a[w])
    }
}

impl CudaModel {
    /// Uploads `model` (weights, biases, batch-norm state, momentum) to `dev` and computes
    /// the masks there.
    pub fn new(dev: &CudaDevice, model: &Model) -> Result<Self> {
        let dev = dev.clone();
        let dummy_u8 = dev.zeros::<u8>(1)?;
        let mut layers = Vec::with_capacity(model.layers.len());
        for (l, spec) in model.layers.iter().zip(&model.spec.layers) {
            let out_len = spec.output.iter().product();
            let kind = match l {
                Layer::Linear(x) => {
                    Kind::Linear { w: GWeight::new(&dev, &x.name, &x.weight, &dummy_u8)?, b: GParam::new(&dev, &x.bias)? }
                }
                Layer::Conv2d(x) => {
                    let (h, wd) = (spec.input[1], spec.input[2]);
                    let (oh, ow) = x.geom.out_hw(h, wd).ok_or_else(|| Error::Shape {
                        layer: x.name.clone(),
                        got: spec.input.clone(),
                        expected: "an input at least as large as the kernel".into(),
                    })?;
                    Kind::Conv {
                        w: GWeight::new(&dev, &x.name, &x.weight, &dummy_u8)?,
                        b: GParam::new(&dev, &x.bias)?,
                        g: x.geom,
                        h,
                        wd,
                        oh,
                        ow,
                    }
                }
                Layer::Relu(_) => Kind::Relu,
                Layer::Pool(p) => Kind::Pool {
                    max: p.kind == PoolKind::Max,
                    k: p.k,
                    stride: p.stride,
                    c: spec.input[0],
                    h: spec.input[1],
                    w: spec.input[2],
                    oh: spec.output[1],
                    ow: spec.output[2],
                },
                Layer::BatchNorm(bn) => Kind::Bn {
                    gamma: GParam::new(&dev, &bn.gamma)?,
                    beta: GParam::new(&dev, &bn.beta)?,
                    run_mean: dev.upload(&bn.running_mean)?,
                    run_var: dev.upload(&bn.running_var)?,
                    c: bn.channels,
                    s: spec.input[1..].iter().product(),
                    eps: bn.eps,
                    momentum: bn.momentum,
                },
                Layer::Flatten(_) => Kind::Flatten,
            };
            layers.push(GLayer { name: l.name().to_string(), kind, out_len });
        }
        Ok(Self {
            in_len: model.spec.input.iter().product(),
            classes: model.spec.classes,
            layers,
            train_ws: None,
            eval_ws: None,
            dummy_u32: dev.zeros(1)?,
            dummy_f32: dev.zeros(1)?,
            losses: dev.zeros(1)?,
            corrects: dev.zeros(1)?,
            slots: 1,
            dummy_u8,
            dev,
        })
    }

    /// The device the model lives on.
    pub fn device(&self) -> &CudaDevice {
        &self.dev
    }

    fn workspace(&self, cap: usize, train: bool) -> Result<Workspace> {
        let dev = &self.dev;
        let mut sizes = vec![cap * self.in_len];
        let mut act_buf = vec![0usize];
        for l in &self.layers {
            let cur = *act_buf.last().expect("starts with the input");
            if matches!(l.kind, Kind::Flatten) {
                act_buf.push(cur);
            } else if train {
                sizes.push(cap * l.out_len);
                act_buf.push(sizes.len() - 1);
            } else {
                // Evaluation keeps no activation for backward: two buffers alternate.
                if sizes.len() < 2 {
                    sizes.push(0);
                }
                let next = 1 - cur;
                sizes[next] = sizes[next].max(cap * l.out_len);
                act_buf.push(next);
            }
        }
        if !train {
            let m = sizes.iter().copied().max().unwrap_or(1);
            sizes.iter_mut().for_each(|s| *s = m);
        }
        let acts = sizes.iter().map(|&n| dev.zeros(n)).collect::<Result<Vec<_>>>()?;
        let (mut cols_sizes, mut aux, mut t, mut dcols, mut gmax) =
            (Vec::<usize>::new(), Vec::new(), 1usize, 1usize, cap * self.in_len);
        for l in &self.layers {
            gmax = gmax.max(cap * l.out_len);
            let mut a = Aux { cols: None, argmax: None, xhat: None, bn: None };
            match &l.kind {
                Kind::Conv { w, g, oh, ow, .. } => {
                    let n = g.k() * oh * ow * cap;
                    if train || cols_sizes.is_empty() {
                        cols_sizes.push(n);
                    }
                    let i = cols_sizes.len() - 1;
                    cols_sizes[i] = cols_sizes[i].max(n);
                    a.cols = Some(i);
                    t = t.max(w.c_out * oh * ow * cap);
                    if train {
                        dcols = dcols.max(n);
                    }
                }
                Kind::Pool { max: true, .. } => a.argmax = Some(dev.zeros(cap * l.out_len)?),
                Kind::Bn { c, .. } => {
                    if train {
                        a.xhat = Some(dev.zeros(cap * l.out_len)?);
                    }
                    a.bn = Some([dev.zeros(*c)?, dev.zeros(*c)?, dev.zeros(*c)?, dev.zeros(*c)?]);
                }
                _ => {}
            }
            aux.push(a);
        }
        let cols = cols_sizes.iter().map(|&n| dev.zeros(n)).collect::<Result<Vec<_>>>()?;
        let g = if train { gmax } else { cap * self.classes };
        Ok(Workspace {
            cap,
            acts,
            act_buf,
            cols,
            aux,
            t: dev.zeros(t)?,
            dcols: dev.zeros(if train { dcols } else { 1 })?,
            grads: [dev.zeros(g)?, dev.zeros(if train { g } else { 1 })?],
            labels: dev.zeros(cap)?,
        })
    }

    /// Makes sure the workspace of the mode holds `b` images and there are `slots` loss slots.
    fn ensure(&mut self, b: usize, train: bool, slots: usize) -> Result<()> {
        let ws = if train { &self.train_ws } else { &self.eval_ws };
        if ws.as_ref().is_none_or(|w| w.cap < b) {
            let new = Some(self.workspace(b, train)?);
            if train {
                self.train_ws = new;
            } else {
                self.eval_ws = new;
            }
        }
        if self.slots < slots {
            self.losses = self.dev.zeros(slots)?;
            self.corrects = self.dev.zeros(slots)?;
            self.slots = slots;
        }
        Ok(())
    }

    /// Gathers images `order[off..off + b]` of `pixels`/`labels` (on the GPU) into the input
    /// of the workspace for `train`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gather(
        &mut self,
        pixels: &CudaSlice<f32>,
        labels: &CudaSlice<u8>,
        order: &CudaSlice<u32>,
        off: usize,
        b: usize,
        train: bool,
        slots: usize,
    ) -> Result<()> {
        self.ensure(b, train, slots)?;
        let ws = if train { self.train_ws.as_mut() } else { self.eval_ws.as_mut() }.expect("ensured");
        let sz = self.in_len;
        let x = &mut ws.acts[ws.act_buf[0]];
        launch!(
            &self.dev,
            gather_batch,
            grid(b * sz),
            (pixels, labels, order, &(off as i32), &(b as i32), &(sz as i32), x, &mut ws.labels)
        )
    }

    /// Runs forward in the mode's workspace on its `b` gathered images, then the loss into
    /// `slot`; in training also backward, the update at rate `lr` and the mask refresh.
    pub(crate) fn run(&mut self, b: usize, train: bool, sgd: &Sgd, lr: f32, slot: usize) -> Result<()> {
        let mut ws = if train { self.train_ws.take() } else { self.eval_ws.take() }.expect("gather or upload first");
        let r = self.run_in(&mut ws, b, train, sgd, lr, slot);
        if train {
            self.train_ws = Some(ws);
        } else {
            self.eval_ws = Some(ws);
        }
        r
    }

    fn run_in(&mut self, ws: &mut Workspace, b: usize, train: bool, sgd: &Sgd, lr: f32, slot: usize) -> Result<()> {
        for i in 0..self.layers.len() {
            self.forward_layer(ws, i, b, train)?;
        }
        let last = ws.act_buf[self.layers.len()];
        let (bi, ci) = (b as i32, self.classes as i32);
        let cfg = cudarc::driver::LaunchConfig { grid_dim: (1, 1, 1), block_dim: (RED_BLOCK, 1, 1), shared_mem_bytes: 0 };
        let [g0, _] = &mut ws.grads;
        launch!(
            &self.dev,
            softmax_xent,
            cfg,
            (&ws.acts[last], &ws.labels, g0, &i32::from(train), &mut self.losses, &mut self.corrects, &(slot as i32), &bi, &ci)
        )?;
        if !train {
            return Ok(());
        }
        let mut cur = 0usize;
        for i in (0..self.layers.len()).rev() {
            if self.backward_layer(ws, i, b, cur)? {
                cur = 1 - cur;
            }
        }
        let dummy = &self.dummy_u8;
        for l in &mut self.layers {
            match &mut l.kind {
                Kind::Linear { w, b } | Kind::Conv { w, b, .. } => {
                    let lambda = w.s.lambda;
                    w.p.update(&self.dev, sgd, lr, w.mask_ff.as_ref().map(|m| (m, lambda)), dummy)?;
                    b.update(&self.dev, sgd, lr, None, dummy)?;
                    w.refresh(&self.dev, dummy)?;
                }
                Kind::Bn { gamma, beta, .. } => {
                    gamma.update(&self.dev, sgd, lr, None, dummy)?;
                    beta.update(&self.dev, sgd, lr, None, dummy)?;
                }
                Kind::Relu | Kind::Pool { .. } | Kind::Flatten => {}
            }
        }
        Ok(())
    }

    fn forward_layer(&mut self, ws: &mut Workspace, i: usize, b: usize, train: bool) -> Result<()> {
        let (ri, wi) = (ws.act_buf[i], ws.act_buf[i + 1]);
        if ri == wi {
            return Ok(()); // flatten
        }
        let dev = &self.dev;
        let l = &mut self.layers[i];
        let n_out = b * l.out_len;
        let (x, y) = two(&mut ws.acts, ri, wi);
        let aux = &mut ws.aux[i];
        let bi = b as i32;
        match &mut l.kind {
            Kind::Linear { w, b: bias } => {
                launch!(dev, bias_rows, grid(n_out), (&mut *y, &bias.value, &bi, &(w.c_out as i32)))?;
                dev.gemm(b, w.k, w.c_out, x, Op::N, w.ff(), Op::T, 1.0, y)
            }
            Kind::Conv { w, b: bias, g, h, wd, oh, ow } => {
                let p = *oh * *ow;
                let cols = &mut ws.cols[aux.cols.expect("conv has cols")];
                launch!(
                    dev,
                    im2col,
                    grid(g.k() * b * p),
                    (
                        x,
                        &mut *cols,
                        &bi,
                        &(g.c_in as i32),
                        &(*h as i32),
                        &(*wd as i32),
                        &(g.kh as i32),
                        &(g.kw as i32),
                        &(g.stride as i32),
                        &(g.pad as i32),
                        &(*oh as i32),
                        &(*ow as i32)
                    )
                )?;
                dev.gemm(w.c_out, g.k(), b * p, w.ff(), Op::N, &*cols, Op::N, 0.0, &mut ws.t)?;
                launch!(dev, cm_to_nchw_bias, grid(n_out), (&ws.t, &bias.value, y, &(w.c_out as i32), &bi, &(p as i32)))
            }
            Kind::Relu => launch!(dev, relu_fwd, grid(n_out), (x, y, &(n_out as i64))),
            Kind::Pool { max, k, stride, c, h, w, oh, ow } => {
                let am = aux.argmax.as_mut().unwrap_or(&mut self.dummy_u32);
                launch!(
                    dev,
                    pool_fwd,
                    grid(n_out),
                    (
                        x,
                        y,
                        am,
                        &i32::from(*max),
                        &((b * *c) as i32),
                        &(*h as i32),
                        &(*w as i32),
                        &(*k as i32),
                        &(*stride as i32),
                        &(*oh as i32),
                        &(*ow as i32)
                    )
                )
            }
            Kind::Bn { gamma, beta, run_mean, run_var, c, s, eps, momentum } => {
                let [mean, inv, _, _] = aux.bn.as_mut().expect("bn buffers");
                let (ci, si) = (*c as i32, *s as i32);
                launch!(
                    dev,
                    bn_stats,
                    per_row(*c),
                    (x, &mut *mean, &mut *inv, run_mean, run_var, &bi, &ci, &si, &*eps, &*momentum, &i32::from(train))
                )?;
                let xhat = aux.xhat.as_mut().unwrap_or(&mut self.dummy_f32);
                launch!(
                    dev,
                    bn_apply,
                    grid(n_out),
                    (x, &*mean, &*inv, &gamma.value, &beta.value, xhat, &i32::from(train), y, &bi, &ci, &si)
                )
            }
            Kind::Flatten => Ok(()),
        }
    }

    /// Backward of layer `i` with `dy` in `grads[cur]`; returns whether `dx` went to the other
    /// buffer (false for flatten, which passes the gradient through).
    fn backward_layer(&mut self, ws: &mut Workspace, i: usize, b: usize, cur: usize) -> Result<bool> {
        let (ri, wi) = (ws.act_buf[i], ws.act_buf[i + 1]);
        if ri == wi {
            return Ok(false);
        }
        let need_dx = i > 0;
        let n_in = if i == 0 { b * self.in_len } else { b * self.layers[i - 1].out_len };
        let dev = &self.dev;
        let l = &mut self.layers[i];
        let x = &ws.acts[ri];
        let (g0, g1) = ws.grads.split_at_mut(1);
        let (dy, dx) = if cur == 0 { (&g0[0], &mut g1[0]) } else { (&g1[0], &mut g0[0]) };
        let aux = &mut ws.aux[i];
        let bi = b as i32;
        match &mut l.kind {
            Kind::Linear { w, b: bias } => {
                dev.gemm(w.c_out, b, w.k, dy, Op::T, x, Op::N, 0.0, &mut w.p.grad)?;
                launch!(dev, col_sum, grid(w.c_out), (dy, &mut bias.grad, &bi, &(w.c_out as i32)))?;
                if need_dx {
                    dev.gemm(b, w.c_out, w.k, dy, Op::N, w.bp(), Op::N, 0.0, dx)?;
                }
            }
            Kind::Conv { w, b: bias, g, h, wd, oh, ow } => {
                let p = *oh * *ow;
                let (co, bp) = (w.c_out as i32, (b * p) as i32);
                launch!(dev, nchw_to_cm, grid(b * w.c_out * p), (dy, &mut ws.t, &co, &bi, &(p as i32)))?;
                launch!(dev, row_sum, per_row(w.c_out), (&ws.t, &mut bias.grad, &co, &bp))?;
                let cols = &ws.cols[aux.cols.expect("conv has cols")];
                dev.gemm(w.c_out, b * p, g.k(), &ws.t, Op::N, cols, Op::T, 0.0, &mut w.p.grad)?;
                if need_dx {
                    dev.gemm(g.k(), w.c_out, b * p, w.bp(), Op::T, &ws.t, Op::N, 0.0, &mut ws.dcols)?;
                    launch!(
                        dev,
                        col2im,
                        grid(n_in),
                        (
                            &ws.dcols,
                            dx,
                            &bi,
                            &(g.c_in as i32),
                            &(*h as i32),
                            &(*wd as i32),
                            &(g.kh as i32),
                            &(g.kw as i32),
                            &(g.stride as i32),
                            &(g.pad as i32),
                            &(*oh as i32),
                            &(*ow as i32)
                        )
                    )?;
                }
            }
            Kind::Relu => launch!(dev, relu_bwd, grid(n_in), (x, dy, dx, &(n_in as i64)))?,
            Kind::Pool { max, k, stride, c, h, w, oh, ow } => {
                let am = aux.argmax.as_ref().unwrap_or(&self.dummy_u32);
                launch!(
                    dev,
                    pool_bwd,
                    grid(n_in),
                    (
                        dy,
                        am,
                        dx,
                        &i32::from(*max),
                        &((b * *c) as i32),
                        &(*h as i32),
                        &(*w as i32),
                        &(*k as i32),
                        &(*stride as i32),
                        &(*oh as i32),
                        &(*ow as i32)
                    )
                )?
            }
            Kind::Bn { gamma, beta, c, s, .. } => {
                let [_, inv, mdy, mdyx] = aux.bn.as_mut().expect("bn buffers");
                let xhat = aux.xhat.as_ref().expect("training workspace stores xhat");
                let (ci, si) = (*c as i32, *s as i32);
                launch!(
                    dev,
                    bn_bwd_reduce,
                    per_row(*c),
                    (dy, xhat, &mut gamma.grad, &mut beta.grad, &mut *mdy, &mut *mdyx, &bi, &ci, &si)
                )?;
                launch!(dev, bn_bwd_apply, grid(n_in), (dy, xhat, &gamma.value, &*inv, &*mdy, &*mdyx, dx, &bi, &ci, &si))?
            }
            Kind::Flatten => return Ok(false),
        }
        Ok(true)
    }

    /// The summed loss and correct count of slots `0..n` (waits for the GPU).
    pub(crate) fn read_slots(&self, n: usize) -> Result<(Vec<f64>, Vec<i32>)> {
        Ok((self.dev.read(&self.losses, n)?, self.dev.read(&self.corrects, n)?))
    }

    /// One training step on a batch from the host: `x` (`[batch, C, H, W]`) and its labels,
    /// learning rate `lr`. Returns the batch's mean loss (this waits for the GPU).
    pub fn train_step(&mut self, x: &Tensor, labels: &[u8], sgd: &Sgd, lr: f32) -> Result<f64> {
        let b = x.batch();
        if b == 0 || x.len() != b * self.in_len || labels.len() != b {
            return Err(Error::Shape {
                layer: "input".into(),
                got: x.shape.clone(),
                expected: format!("[{}, {} values per image] with one label each", labels.len(), self.in_len),
            });
        }
        self.ensure(b, true, 1)?;
        let ws = self.train_ws.as_mut().expect("ensured");
        let i0 = ws.act_buf[0];
        self.dev.write(&x.data, &mut ws.acts[i0])?;
        let l32: Vec<i32> = labels.iter().map(|&l| i32::from(l)).collect();
        self.dev.write(&l32, &mut ws.labels)?;
        self.run(b, true, sgd, lr, 0)?;
        let (loss, _) = self.read_slots(1)?;
        Ok(loss[0] / b as f64)
    }

    /// Copies parameters, momentum and batch-norm state back into `model` (built from the
    /// same spec) and recomputes its masks there.
    pub fn download(&self, model: &mut Model) -> Result<()> {
        let dev = &self.dev;
        for (g, l) in self.layers.iter().zip(model.layers.iter_mut()) {
            match (&g.kind, l) {
                (Kind::Linear { w, b }, Layer::Linear(x)) => {
                    w.p.download(dev, &mut x.weight.param)?;
                    b.download(dev, &mut x.bias)?;
                    x.weight.refresh();
                }
                (Kind::Conv { w, b, .. }, Layer::Conv2d(x)) => {
                    w.p.download(dev, &mut x.weight.param)?;
                    b.download(dev, &mut x.bias)?;
                    x.weight.refresh();
                }
                (Kind::Bn { gamma, beta, run_mean, run_var, c, .. }, Layer::BatchNorm(x)) => {
                    gamma.download(dev, &mut x.gamma)?;
                    beta.download(dev, &mut x.beta)?;
                    x.running_mean = dev.read(run_mean, *c)?;
                    x.running_var = dev.read(run_var, *c)?;
                }
                (_, l) => {
                    if l.weight().is_some() || matches!(l, Layer::BatchNorm(_)) {
                        return Err(Error::Shape {
                            layer: g.name.clone(),
                            got: vec![],
                            expected: format!("the same layer kind as `{}` on the GPU", l.name()),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The masks of every weight layer, as computed on the GPU.
    pub fn masks(&self) -> Result<Vec<WeightMasks>> {
        let dev = &self.dev;
        let mut out = Vec::new();
        for l in &self.layers {
            if let Kind::Linear { w, .. } | Kind::Conv { w, .. } = &l.kind {
                let n = w.c_out * w.k;
                let read = |m: &Option<CudaSlice<u8>>| m.as_ref().map(|m| dev.read(m, n)).transpose();
                out.push(WeightMasks { name: l.name.clone(), ff: read(&w.mask_ff)?, bp: read(&w.mask_bp)? });
            }
        }
        Ok(out)
    }
}
