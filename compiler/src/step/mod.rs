//! The training-step compiler: one iteration of a model (forward, backward-data,
//! backward-weight, WUVE update, N:M pre-generation) as one static SAT program.
//!
//! **DRAM layout.** Activations and their gradients are FP16 `P x C` row-major matrices (NHWC;
//! `P` = batch x pixels). Each weight layer owns its FP32 master weights `C_out x K` (K ordered
//! kernel row, kernel column, input channel, so N:M groups of the FF copy run along input
//! channels), FP32 momentum and gradient, a one-byte FF mask, the FF copy (`C_out` rows of
//! stored K: N:M values + indices, or dense FP16), the BP copy (`K` rows of stored `C_out`,
//! N:M only) and, when BP is dense, a dense FP16 copy read with `weight_t`. Every tensor is
//! contiguous and 4 KiB aligned, so FF-order and BP-order copies stream.
//!
//! **Timeline.** FF over layers (GEMM layers as tiled GEMMs whose FP32 outputs an epilogue
//! `copy` converts to FP16, the others as vector passes), the loss (softmax cross-entropy on
//! the vector unit; the FP16 mean loss is stored at the manifest's `loss` address), then for
//! each layer in reverse: BP and WU. A "same" stride-1 conv (3x3, padding 1) computes BP as the
//! transposed conv of `dY` (`lower::Conv::transposed`: flipped kernel, reduction over kernel
//! position and `C_out`, so BP's N:M groups stay along `C_out`), which writes `dX` directly;
//! its BP copies are stored in the matching flipped layout. Other layers compute BP as the
//! im2col-space GEMM `dY . W_bp` (fused with WU into one fragment by interleave mapping), and
//! a strided or shrinking conv then needs a col2im scatter-add (a vector `add` pass over the
//! im2col-space gradient: its timing is one add per im2col element, its functional result is
//! not col2im). the sum of gradients of a tensor with several consumers
//! (vector `add` passes), the vector backward of non-GEMM layers, the WUVE update, and the
//! pre-generation of the next step's FF/BP weight copies (SORE prune for N:M copies, vector
//! FP32->FP16 conversion for dense ones). The first layer computes no input gradient.
//!
//! **Optimizations and their switches** ([`StepOptions`]):
//! - interleave mapping: (a) OS accumulator interleave, (b) the fused BP+WU fragment that
//!   loads each `dY` chunk once for both GEMMs (layers whose BP is an im2col-space GEMM);
//!   off: neither;
//! - pre-generation: on, each layer's prune runs on its own semaphores and buffer regions,
//!   its chunks spread over the following backward work, so it hides under it (what it cannot
//!   hide shows as the program's tail); off, every layer's prune runs fenced right before its
//!   FF, on the critical path;
//! - offline scheduling: on, the tiling and dataflow search of [`lower`], and the backward's
//!   side pipeline (below); off, a fixed schedule: WS for every GEMM with the maximal tile
//!   that streams the most rows per stationary weight tile (the same fusion decisions), and
//!   every fragment in one fenced order.
//!
//! **Pipelines.** Fragments of the main pipeline are fenced in program order (see [`engine`]).
//! With offline scheduling, the backward also runs a side pipeline (its own semaphores and
//! half of the act, wgt and acc buffers): a weight layer's WU (unless fused with its BP), WUVE
//! update and dense BP copy start when the layer's BP is done (`BP_DONE`) and are spliced into
//! program order over the main pipeline's following vector work (batch-norm and ReLU
//! backward, col2im, gradient sums), which so runs while the tensor unit does WU instead of
//! after it; the next layer's BP queues behind the WU on the tensor unit. Pre-generation
//! waits on each layer's update (`UPDATED`). Pooling's functional semantics
//! assume planes, so with NHWC only its timing is claimed (pooling streams horizontal bands of
//! each image when a whole image does not fit, see `PoolBands`), and batch-norm statistics are
//! computed per streamed chunk (the backward recomputes them).
//!
//! **Transformers** (DeiT): `to_tokens` is the NHWC patch grid itself (no pass); `class_token`
//! is a vector `add` of the patch tokens and the positional-embedding row (broadcast over the
//! batch), its backward a strided copy; `take_class_token` a strided gather and its backward a
//! copy into the class row. Attention runs as grouped GEMMs, one per image and head
//! (`Groups`): `S = Q K^T`, then `softmax` on the vector unit, then `C = P V`, and in the
//! backward `dQ = dS K`, `dK = dS^T Q`, `dP = dC V^T`, `dV = P^T dC`, all dense (activations).
//! Only the timing of token layers and attention is claimed (the `1/sqrt(d_head)` scale and
//! the class-token row placement are not modelled functionally).
//!
//! **Grouped and depthwise convs** run their GEMMs once per group (`Groups`), each group a
//! column block of the tensors (`lower::Conv::ld`); their BP is the im2col-space GEMM plus
//! col2im (the transposed-conv BP is for ungrouped convs).
//!
//! Not lowered: biases, and the class token's and positional embedding's own gradient and update (0.7 % of DeiT-Ti's
//! parameters).

mod dram_image;
pub mod engine;
pub mod lower;
mod report;

pub use dram_image::{dram_image, DramImage};
pub use engine::{check_sync, Owner};
pub use lower::WeightMap;
pub use report::{simulate, LayerPhaseStats, PhaseCycles, StepReport};

use crate::model::{resolve, LayerInfo, LayerKind, Model, Shape, SparsityPolicy};
use crate::{Error, Result};
use engine::{Emitted, Sems};
use lower::{
    Budget, Conv, Ctx, FusedJob, GemmJob, Groups, InSrc, Loc, OutDst, Region, Stream, StreamJob, VecSpec, WSrc, WeightJob,
};
use satkit_hw::isa::{Buffer, Instruction, Phase, Program, VecOp, WeightFormat};
use satkit_hw::ArchConfig;
use serde::Serialize;

/// The three optimizations of SAT.md section 4, each with its own switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepOptions {
    /// Interleave mapping (OS accumulator interleave and fused BP+WU).
    pub interleave: bool,
    /// Pre-generation of the next step's sparse weights off the critical path.
    pub pregen: bool,
    /// Offline scheduling (tiling search).
    pub offline_schedule: bool,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions { interleave: true, pregen: true, offline_schedule: true }
    }
}

/// One entry of the manifest: a layer with its formats and the phases it runs.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestLayer {
    /// Index in the model.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Kind keyword.
    pub kind: &'static str,
    /// FF weight format (weight layers).
    pub ff: Option<String>,
    /// BP weight format (weight layers).
    pub bp: Option<String>,
    /// Dense MACs per phase: ff, bp (0 when no input gradient is needed), wu.
    pub macs: [u64; 3],
    /// DRAM address of its output activation.
    pub output: u64,
    /// DRAM address of its output gradient.
    pub grad: u64,
    /// Weight state addresses (weight layers).
    pub weights: Option<WeightMap>,
}

/// A buffer region of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestBuffer {
    /// Pipeline.
    pub pipeline: &'static str,
    /// Buffer name.
    pub buffer: &'static str,
    /// First element.
    pub base: u64,
    /// Elements.
    pub size: u64,
}

/// What `satkit compile` writes next to the program.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Model name.
    pub model: String,
    /// Batch.
    pub batch: u64,
    /// Method and N:M.
    pub method: String,
    /// Options.
    pub options: StepOptions,
    /// Instructions.
    pub instructions: usize,
    /// DRAM bytes used.
    pub dram_bytes: u64,
    /// DRAM address of the FP16 input, `P x C` row-major (NHWC).
    pub input: u64,
    /// DRAM address of the labels, one FP32 class index per sample.
    pub labels: u64,
    /// DRAM address of the FP32 hyperparameters `[lr, momentum, weight decay, SR-STE lambda]`.
    pub hyper: u64,
    /// DRAM address of the FP16 mean loss the step writes.
    pub loss: u64,
    /// Layers.
    pub layers: Vec<ManifestLayer>,
    /// Buffer regions.
    pub buffers: Vec<ManifestBuffer>,
}

/// A compiled training step.
#[derive(Debug, Clone)]
pub struct CompiledStep {
    /// The program.
    pub program: Program,
    /// Owner of every instruction, by index.
    pub owners: Vec<Owner>,
    /// Layer names by index.
    pub layer_names: Vec<String>,
    /// Per layer: whether its weights are dense in FF (for gap analysis).
    pub dense_weight_layers: Vec<usize>,
    /// The manifest.
    pub manifest: Manifest,
}

struct Dram {
    next: u64,
}

impl Dram {
    fn alloc(&mut self, bytes: u64) -> u64 {
        let at = self.next;
        self.next = (self.next + bytes.max(1)).div_ceil(4096) * 4096;
        at
    }
}

fn region(buf: Buffer, arch: &ArchConfig, from: f64, to: f64) -> Region {
    let n = arch.buffer_elements(buf);
    let (a, b) = ((n as f64 * from) as u64, (n as f64 * to) as u64);
    Region { base: a, size: b - a }
}

fn conv_of(info: &LayerInfo, kind: &LayerKind) -> Conv {
    match (kind, info.input_shapes[0], info.output) {
        (
            &LayerKind::Conv2d { kernel: (kh, kw), stride, padding, groups, .. },
            Shape::Image { c, h, w },
            Shape::Image { h: oh, w: ow, .. },
        ) => Conv { images: info.batch, h, w, c_in: c / groups, oh, ow, kh, kw, stride, pad: padding, ld: c },
        (_, s, _) => {
            let ff = info.gemms.as_ref().expect("weight layer").ff;
            let _ = s;
            Conv::matrix(ff.m, ff.k)
        }
    }
}

/// The groups of a grouped conv's GEMMs, offset by `per_group` elements (input, weight, output).
fn conv_groups(groups: u64, per_group: [u64; 3]) -> Groups {
    if groups == 1 {
        Groups::ONE
    } else {
        Groups { images: 1, heads: groups, per_image: [0; 3], per_head: per_group }
    }
}

/// Rows and row length of a tensor as a `P x C` matrix.
fn matrix(shape: Shape, batch: u64) -> (u64, u64) {
    match shape {
        Shape::Image { c, h, w } => (batch * h * w, c),
        Shape::Tokens { t, d } => (batch * t, d),
        Shape::Flat(f) => (batch, f),
        Shape::Scores { heads, t_q, t_k } => (batch * heads * t_q, t_k),
    }
}

/// The instructions of one fragment step.
type Block = Vec<(Instruction, Owner)>;

/// One backward weight layer's work on the side pipeline (WU unless fused with BP, the WUVE
/// update, the dense BP copy), placed in program order over its window of main blocks: from
/// the end of the layer's BP (`anchor`) to the start of the next layer's BP (`end`). The main
/// pipeline meanwhile runs the vector work between the two BPs, so that work overlaps the
/// tensor unit's WU instead of waiting for it.
struct SideGroup {
    anchor: usize,
    end: Option<usize>,
    blocks: Vec<Block>,
}

/// Where a layer's update ends: after main block `n - 1`, or after the first `n` blocks of a
/// side group.
#[derive(Debug, Clone, Copy)]
enum UpdateAt {
    Main(usize),
    Side(usize, usize),
}

/// Compiles one training step of `model` at `batch` under `policy` for `arch`.
/// `progress` is called with (done, total) layer counts as lowering proceeds.
pub fn compile(
    arch: &ArchConfig,
    model: &Model,
    batch: u64,
    policy: &SparsityPolicy,
    options: &StepOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CompiledStep> {
    let infos = model.infer(batch)?;
    let formats = resolve(model, policy)?;
    let layers = &model.layers;
    for (l, info) in layers.iter().zip(&infos) {
        let unsupported = match &l.kind {
            LayerKind::Input { .. } => Some("independent input layers"),
            LayerKind::SoftmaxCrossEntropy if info.inputs[0].is_none() => Some("a loss on the model input (nothing to train)"),
            _ => None,
        };
        if let Some(what) = unsupported {
            return Err(Error::Unsupported(format!(
                "model `{}`: layer #{} `{}`: the training-step compiler does not lower {what} yet",
                model.name, info.index, l.name
            )));
        }
    }
    let ctx = Ctx { arch, search: options.offline_schedule, interleave: options.interleave, searched: Default::default() };
    let full = |b| region(b, arch, 0.0, 1.0);
    let (main_budget, pregen_budget) = if options.pregen {
        (
            Budget {
                act: full(Buffer::Act),
                wgt: region(Buffer::Wgt, arch, 0.0, 0.75),
                acc: full(Buffer::Acc),
                master: region(Buffer::Master, arch, 0.0, 0.5),
            },
            Budget {
                act: full(Buffer::Act),
                wgt: region(Buffer::Wgt, arch, 0.75, 1.0),
                acc: full(Buffer::Acc),
                master: region(Buffer::Master, arch, 0.5, 1.0),
            },
        )
    } else {
        let b = Budget { act: full(Buffer::Act), wgt: full(Buffer::Wgt), acc: full(Buffer::Acc), master: full(Buffer::Master) };
        (b, b)
    };
    // Vector passes keep a scratch tail of acc free for statistics: give them their own budget.
    let stream_budget = Budget { acc: region(Buffer::Acc, arch, 0.0, 1.0), ..main_budget };
    // The backward splits the main pipeline's regions between its BP and vector work and the
    // side pipeline's WU, update and dense copies, which run at the same time.
    let (bwd_budget, side_budget) = if options.offline_schedule {
        let wgt_end = if options.pregen { 0.75 } else { 1.0 };
        let master = if options.pregen { region(Buffer::Master, arch, 0.0, 0.5) } else { full(Buffer::Master) };
        (
            Budget {
                act: region(Buffer::Act, arch, 0.0, 0.5),
                wgt: region(Buffer::Wgt, arch, 0.0, wgt_end / 2.0),
                acc: region(Buffer::Acc, arch, 0.0, 0.5),
                master: Region { base: master.base, size: 0 },
            },
            Budget {
                act: region(Buffer::Act, arch, 0.5, 1.0),
                wgt: region(Buffer::Wgt, arch, wgt_end / 2.0, wgt_end),
                acc: region(Buffer::Acc, arch, 0.5, 1.0),
                master,
            },
        )
    } else {
        (stream_budget, main_budget)
    };

    // ---- DRAM map.
    let mut dram = Dram { next: 0 };
    let (in_rows, in_cols) = matrix(model.input, batch);
    let input = dram.alloc(in_rows * in_cols * 2);
    let labels = dram.alloc(batch * 4);
    let hyper = dram.alloc(16);
    let loss = dram.alloc(2);
    let n = layers.len();
    let mut out_addr = vec![0u64; n];
    let mut grad_addr = vec![0u64; n];
    let consumers = {
        let mut c = vec![Vec::new(); n];
        for info in &infos {
            for p in info.inputs.iter().flatten() {
                c[*p].push(info.index);
            }
        }
        c
    };
    for (i, info) in infos.iter().enumerate() {
        let (r, c) = matrix(info.output, batch);
        let bytes = r * c * 2;
        match layers[i].kind {
            LayerKind::Flatten | LayerKind::ToTokens => {
                out_addr[i] = info.inputs[0].map_or(input, |p| out_addr[p]);
            }
            _ => out_addr[i] = dram.alloc(bytes),
        }
    }
    // The class token and positional embedding of a `class_token` layer: one FP16 row of
    // `(T+1) x D` (the class token's row 0 already added to its position).
    let token_params: Vec<u64> = infos
        .iter()
        .map(|info| match (&layers[info.index].kind, info.output) {
            (LayerKind::ClassToken, Shape::Tokens { t, d }) => dram.alloc(t * d * 2),
            _ => 0,
        })
        .collect();
    // Gradient tensors: a tensor with one consumer takes that consumer's contribution; an
    // `add` or `flatten` passes its output gradient through; several consumers each write
    // their own and vector adds sum them.
    let mut contrib: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    for i in (0..n).rev() {
        let (r, c) = matrix(infos[i].output, batch);
        let bytes = r * c * 2;
        grad_addr[i] = match consumers[i].len() {
            0 => dram.alloc(bytes),
            1 => contrib[i].first().map(|&(_, a)| a).unwrap_or_else(|| dram.alloc(bytes)),
            _ => dram.alloc(bytes),
        };
        let _ = c;
        for (j, p) in infos[i].inputs.iter().enumerate() {
            let Some(p) = *p else { continue };
            let addr = match layers[i].kind {
                LayerKind::Add | LayerKind::Flatten | LayerKind::ToTokens => grad_addr[i],
                _ => {
                    let (pr, pc) = matrix(infos[i].input_shapes[j], batch);
                    dram.alloc(pr * pc * 2)
                }
            };
            contrib[p].push((i, addr));
        }
    }
    // Fix single-consumer tensors whose gradient was allocated before the contribution existed.
    for i in 0..n {
        if consumers[i].len() == 1 {
            grad_addr[i] = contrib[i][0].1;
        }
    }
    let contribution = |tensor: usize, consumer: usize| -> u64 {
        contrib[tensor].iter().find(|&&(c, _)| c == consumer).map(|&(_, a)| a).expect("every consumer contributes")
    };
    let mut weights: Vec<Option<WeightJob>> = vec![None; n];
    let mut dcol_bytes = 0u64;
    for f in &formats {
        let info = &infos[f.index];
        let g = info.gemms.as_ref().expect("weight layer").ff;
        let (c_out, k) = (g.n * g.groups, g.k);
        let count = c_out * k;
        let so_ff = f.ff.stored_len(k as usize) as u64;
        let so_bp = f.bp.stored_len(c_out as usize) as u64;
        let map = WeightMap {
            master: dram.alloc(count * 4),
            momentum: dram.alloc(count * 4),
            grad: dram.alloc(count * 4),
            mask: dram.alloc(count),
            ff_vals: dram.alloc(c_out * so_ff * 2),
            ff_idx: dram.alloc(c_out * so_ff),
            bp_vals: if f.bp.ratio().is_some() { dram.alloc(k * so_bp * 2) } else { 0 },
            bp_idx: if f.bp.ratio().is_some() { dram.alloc(k * so_bp) } else { 0 },
            dense: 0,
        };
        let conv = conv_of(info, &layers[f.index].kind);
        let bp_flip = (info.inputs[0].is_some() && g.groups == 1 && conv.transposed(c_out).is_some())
            .then_some((conv.kh * conv.kw, conv.c_in));
        let mut job = WeightJob {
            c_out,
            k,
            ff: f.ff,
            bp: f.bp,
            map,
            hyper,
            bp_flip,
            update_owner: Owner { layer: f.index as u32, phase: Phase::Update },
            prune_owner: Owner { layer: f.index as u32, phase: Phase::Prune },
        };
        job.map.dense = if job.needs_dense_copy() {
            if f.ff.ratio().is_none() && bp_flip.is_none() {
                job.map.ff_vals
            } else {
                dram.alloc(count * 2)
            }
        } else {
            0
        };
        if !conv.is_identity() && bp_flip.is_none() && info.inputs[0].is_some() {
            dcol_bytes = dcol_bytes.max(g.m * k * g.groups * 2);
        }
        weights[f.index] = Some(job);
    }
    let dcol = dram.alloc(dcol_bytes);
    let dram_bytes = dram.next;
    let limit = arch.dram_bytes().min(1u64 << 40);
    if dram_bytes > limit {
        return Err(Error::Unsupported(format!(
            "model `{}` at batch {batch} needs {:.2} GiB of DRAM for its training step, beyond the {:.2} GiB the machine's DRAM \
             (and the DMA's 40-bit `dram` address) reach; use a smaller batch",
            model.name,
            dram_bytes as f64 / (1u64 << 30) as f64,
            limit as f64 / (1u64 << 30) as f64
        )));
    }

    // ---- Fragments, in program order.
    let mut blocks: Vec<Vec<(Instruction, Owner)>> = Vec::new();
    let mut fenced = false;
    let push = |e: Emitted, blocks: &mut Vec<Vec<(Instruction, Owner)>>, fenced: &mut bool| {
        *fenced = true;
        blocks.extend(e);
    };
    let mut manifest_layers = Vec::new();
    let total_work = 2 * n;
    let mut done = 0;
    // Pre-generation (ON): prune steps of every layer, in backward order, one stream.
    let mut pregen_steps: Vec<(usize, Vec<engine::Step>)> = Vec::new();
    let mut pregen_decl = None;
    // Where each pre-generated layer's update ends: its prune chunks are placed after it in
    // program order (and wait on `UPDATED` from its last store).
    let mut pregen_after: Vec<UpdateAt> = Vec::new();
    // The backward's side pipeline (offline scheduling): see `SideGroup`.
    let overlap = options.offline_schedule;
    let mut side: Vec<SideGroup> = Vec::new();
    let mut side_fenced = false;

    // Forward.
    for (i, info) in infos.iter().enumerate() {
        let layer = &layers[i];
        let owner = |phase| Owner { layer: i as u32, phase };
        let x_addr = info.inputs.first().copied().flatten().map_or(input, |p| out_addr[p]);
        if let (Some(w), false) = (weights[i].filter(|w| w.ff.ratio().is_some()), options.pregen) {
            let (ins, outs, steps) = lower::prune_steps(&main_budget, &w, i as u64)?;
            push(lower::emit_prune(&ins, &outs, &steps, &Sems::main(), fenced, true), &mut blocks, &mut fenced);
        }
        let (rows, cols) = matrix(info.output, batch);
        let (irows, icols) = matrix(info.input_shapes.first().copied().unwrap_or(model.input), batch);
        let vec_job = |inputs: Vec<Stream>, out_len: u64, rows: u64, ops: Vec<VecSpec>, scratch: (u64, u64), out_base: u64| {
            vector_job(inputs, out_len, rows, ops, scratch, out_base, owner(Phase::Vector))
        };
        let act = |base: u64, row_len: u64| Stream::rows(Buffer::Act, base, row_len);
        let spec = |op, per_row, dst, a, b, p| VecSpec { op, per_row, dst, a, b, p };
        match &layer.kind {
            LayerKind::Conv2d { .. } | LayerKind::Linear { .. } => {
                let w = weights[i].as_ref().expect("weight layer");
                let g = info.gemms.as_ref().expect("weight layer").ff;
                let conv = conv_of(info, &layer.kind);
                let row_len = w.ff.stored_len(g.k as usize) as u64;
                let weight = WSrc::Stored { vals: w.map.ff_vals, idx: w.map.ff_idx, row_len };
                let job = GemmJob {
                    m: g.m,
                    n: g.n,
                    k: g.k,
                    weights: w.ff,
                    input: InSrc::Im2col { conv, base: x_addr },
                    weight,
                    out: OutDst::Fp16 { base: out_addr[i], ld: g.n * g.groups },
                    groups: conv_groups(g.groups, [conv.c_in, g.n * row_len, g.n]),
                    owner: owner(Phase::Ff),
                };
                let (e, _) = lower::lower_gemm(&ctx, &main_budget, &job, fenced)?;
                push(e, &mut blocks, &mut fenced);
            }
            LayerKind::Relu | LayerKind::Gelu => {
                let op = if layer.kind == LayerKind::Relu { VecOp::Relu } else { VecOp::Gelu };
                let j = vec_job(
                    vec![act(x_addr, cols)],
                    cols,
                    rows,
                    vec![spec(op, cols, Loc::Out, Loc::In(0), Loc::In(0), [0; 4])],
                    (0, 0),
                    out_addr[i],
                );
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::BatchNorm | LayerKind::LayerNorm => {
                let axis = u64::from(layer.kind == LayerKind::LayerNorm);
                let scratch = if axis == 1 { (2, 0) } else { (0, 2 * cols) };
                let ops = vec![
                    spec(VecOp::NormStats, 1, Loc::Scratch(0), Loc::In(0), Loc::In(0), [cols, axis, 0, 0]),
                    spec(VecOp::NormApply, 1, Loc::Out, Loc::In(0), Loc::Scratch(0), [cols, axis, 0, 0]),
                ];
                let j = vec_job(vec![act(x_addr, cols)], cols, rows, ops, scratch, out_addr[i]);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::MaxPool { kernel, stride, .. } | LayerKind::AvgPool { kernel, stride } => {
                let (Shape::Image { c, h, w }, Shape::Image { h: oh, w: ow, .. }) = (info.input_shapes[0], info.output) else {
                    unreachable!("pooling on images")
                };
                let op = if matches!(layer.kind, LayerKind::MaxPool { .. }) { VecOp::MaxPool } else { VecOp::AvgPool };
                let (k, s) = ((*kernel).min(h).min(w), *stride);
                let b = PoolBands::pick(stream_budget.act.size, [h, w, c], [oh, ow], k, s, false)?;
                let ops = vec![spec(op, c, Loc::Out, Loc::In(0), Loc::In(0), [b.plane_rows(), w, k, s])];
                let x = Stream { halo: b.halo * w * c, ..act(x_addr, b.rows_in * w * c) };
                let mut j = vec_job(vec![x], b.rows_out * ow * c, batch * b.bands, ops, (0, 0), out_addr[i]);
                j.out_slot_row = b.out_slot(w, c, ow);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::GlobalAvgPool => {
                let Shape::Image { c, h, w } = info.input_shapes[0] else { unreachable!("pooling on images") };
                let ops = vec![spec(VecOp::AvgPool, c, Loc::Out, Loc::In(0), Loc::In(0), [h, w, h.min(w), h.min(w)])];
                let j = vec_job(vec![act(x_addr, h * w * c)], c, batch, ops, (0, 0), out_addr[i]);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::Add => {
                let b_addr = info.inputs[1].map_or(input, |p| out_addr[p]);
                let ops = vec![spec(VecOp::Add, cols, Loc::Out, Loc::In(0), Loc::In(1), [0; 4])];
                let j = vec_job(vec![act(x_addr, cols), act(b_addr, cols)], cols, rows, ops, (0, 0), out_addr[i]);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::Flatten | LayerKind::ToTokens => {}
            LayerKind::ClassToken => {
                // Per image: the T patch tokens (placed after the class token's row) plus the
                // positional embedding row, broadcast over the batch.
                let Shape::Tokens { t, d } = info.output else { unreachable!("class_token makes tokens") };
                let x = Stream { halo: d, ..act(x_addr, (t - 1) * d) };
                let pos = Stream { row_stride: 0, ..act(token_params[i], t * d) };
                let ops = vec![spec(VecOp::Add, t * d, Loc::Out, Loc::In(0), Loc::In(1), [0; 4])];
                let j = vec_job(vec![x, pos], t * d, batch, ops, (0, 0), out_addr[i]);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::TakeClassToken => {
                // Gather each image's first token row.
                let Shape::Tokens { t, d } = info.input_shapes[0] else { unreachable!("take_class_token reads tokens") };
                let x = Stream { row_stride: t * d, ..act(x_addr, d) };
                let ops = vec![spec(VecOp::Copy, d, Loc::Out, Loc::In(0), Loc::In(0), [0; 4])];
                let j = vec_job(vec![x], d, batch, ops, (0, 0), out_addr[i]);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::AttentionScores { .. } | LayerKind::AttentionValues => {
                let b_addr = info.inputs[1].map_or(input, |p| out_addr[p]);
                let job = attention_gemms(info, batch, x_addr, b_addr, out_addr[i], 0, 0)[0];
                push(lower::lower_gemm(&ctx, &main_budget, &job, fenced)?.0, &mut blocks, &mut fenced);
            }
            LayerKind::AttentionSoftmax => {
                let ops = vec![spec(VecOp::Softmax, 1, Loc::Out, Loc::In(0), Loc::In(0), [cols, 0, 0, 0])];
                let j = vec_job(vec![act(x_addr, cols)], cols, rows, ops, (0, 0), out_addr[i]);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::SoftmaxCrossEntropy => {
                let classes = icols;
                let inputs = vec![act(x_addr, classes), Stream::rows(Buffer::Acc, labels, 1)];
                let ops = vec![spec(VecOp::SoftmaxXent, 1, Loc::Out, Loc::In(0), Loc::In(1), [classes, 0, 0, 0])];
                let pid = info.inputs[0].expect("refused above: the loss follows a layer");
                let mut j = vec_job(inputs, classes, irows, ops, (0, 0), contribution(pid, i));
                // The whole batch in one chunk: the loss is a mean over it. The op writes the
                // `rows x classes` logit gradient densely, then the loss, stored to `loss`.
                j.out_slot_row = classes + 1;
                j.tail_store = Some(loss);
                push(lower::lower_stream(&stream_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            _ => unreachable!("refused above"),
        }
        let macs = info.gemms.as_ref().map(|g| g.macs());
        let f = formats.iter().find(|f| f.index == i);
        manifest_layers.push(ManifestLayer {
            index: i,
            name: layer.name.clone(),
            kind: layer.kind.keyword(),
            ff: f.map(|f| fmt_format(f.ff)),
            bp: f.map(|f| fmt_format(f.bp)),
            macs: macs.map_or([0; 3], |m| [m.ff, if info.inputs[0].is_some() { m.bp } else { 0 }, m.wu]),
            output: out_addr[i],
            grad: grad_addr[i],
            weights: weights[i].map(|w| w.map),
        });
        done += 1;
        progress(done, total_work);
    }

    // Backward.
    let mut remaining: Vec<usize> = consumers.iter().map(Vec::len).collect();
    for i in (0..n).rev() {
        let info = &infos[i];
        let layer = &layers[i];
        let owner = |phase| Owner { layer: i as u32, phase };
        let x_addr = info.inputs.first().copied().flatten().map_or(input, |p| out_addr[p]);
        let dy = grad_addr[i];
        let (rows, cols) = matrix(info.output, batch);
        let needs_dx = info.inputs.first().copied().flatten().is_some();
        let dx = info.inputs.first().copied().flatten().map(|p| contribution(p, i));
        let act = |base: u64, row_len: u64| Stream::rows(Buffer::Act, base, row_len);
        let spec = |op, per_row, dst, a, b, p| VecSpec { op, per_row, dst, a, b, p };
        let vjob = |inputs: Vec<Stream>, out_len: u64, rows: u64, ops: Vec<VecSpec>, scratch: (u64, u64), out_base: u64| {
            vector_job(inputs, out_len, rows, ops, scratch, out_base, owner(Phase::Vector))
        };
        match &layer.kind {
            LayerKind::Conv2d { .. } | LayerKind::Linear { .. } => {
                let w = weights[i].expect("weight layer");
                let gm = info.gemms.as_ref().expect("weight layer");
                // Per conv group: `n_g` output channels, reduction `k`; `c_out` in all.
                let (p, n_g, k, groups) = (gm.ff.m, gm.ff.n, gm.ff.k, gm.ff.groups);
                let c_out = n_g * groups;
                let conv = conv_of(info, &layer.kind);
                let x = InSrc::Im2col { conv, base: x_addr };
                let dw_out = OutDst::Fp32 { base: w.map.grad, ld: k };
                let wu_job = GemmJob {
                    m: n_g,
                    n: k,
                    k: p,
                    weights: WeightFormat::Dense,
                    input: InSrc::Transposed { base: dy, ld: c_out },
                    weight: WSrc::Im2colT { conv, base: x_addr },
                    out: dw_out,
                    groups: conv_groups(groups, [n_g, conv.c_in, n_g * k]),
                    owner: owner(Phase::Wu),
                };
                // This layer's window for side work ends where its own BP starts.
                if let Some(g) = side.last_mut() {
                    g.end.get_or_insert(blocks.len());
                }
                let mut wu_on_side = true;
                let transposed_bp = dx.is_some() && conv.transposed(c_out).is_some() && w.bp_flip.is_some();
                if let (Some(dx), Some(tconv), Some((positions, c_in))) = (dx, conv.transposed(c_out), w.bp_flip) {
                    // A stride-1 conv: BP is the transposed conv, writing dX directly.
                    let row_len = positions * w.bp.stored_len(c_out as usize) as u64;
                    let weight = match w.bp {
                        WeightFormat::Sparse(_) => WSrc::Stored { vals: w.map.bp_vals, idx: w.map.bp_idx, row_len },
                        WeightFormat::Dense => WSrc::DenseT { base: w.map.dense, ld: c_in },
                    };
                    let job = GemmJob {
                        m: tconv.images * tconv.oh * tconv.ow,
                        n: c_in,
                        k: positions * c_out,
                        weights: w.bp,
                        input: InSrc::Im2col { conv: tconv, base: dy },
                        weight,
                        out: OutDst::Fp16 { base: dx, ld: c_in },
                        groups: Groups::ONE,
                        owner: owner(Phase::Bp),
                    };
                    push(lower::lower_gemm(&ctx, &bwd_budget, &job, fenced)?.0, &mut blocks, &mut fenced);
                } else {
                    let w_bp = match w.bp {
                        WeightFormat::Sparse(_) => WSrc::Stored {
                            vals: w.map.bp_vals,
                            idx: w.map.bp_idx,
                            row_len: w.bp.stored_len(c_out as usize) as u64,
                        },
                        WeightFormat::Dense => WSrc::DenseT { base: w.map.dense, ld: k },
                    };
                    // The im2col-space gradient (the input gradient itself for a 1x1 conv),
                    // one block of `k` columns per conv group.
                    let dx_dst = if conv.is_identity() { dx.unwrap_or(0) } else { dcol };
                    let dx_out = OutDst::Fp16 { base: dx_dst, ld: groups * k };
                    if needs_dx && options.interleave && groups == 1 {
                        let job = FusedJob {
                            p,
                            c_out,
                            k,
                            bp_weights: w.bp,
                            dy,
                            w_bp,
                            x,
                            dx: dx_out,
                            dw: dw_out,
                            bp_owner: owner(Phase::Bp),
                            wu_owner: owner(Phase::Wu),
                        };
                        if let Some(e) = lower::lower_fused(&ctx, &bwd_budget, &job, fenced)? {
                            push(e, &mut blocks, &mut fenced);
                            wu_on_side = false;
                        }
                    }
                    if wu_on_side && needs_dx {
                        let w_step = match w.bp {
                            WeightFormat::Sparse(_) => w.bp.stored_len(n_g as usize) as u64,
                            WeightFormat::Dense => n_g * k,
                        };
                        let job = GemmJob {
                            m: p,
                            n: k,
                            k: n_g,
                            weights: w.bp,
                            input: InSrc::Im2col { conv: Conv::columns(p, n_g, c_out), base: dy },
                            weight: w_bp,
                            out: dx_out,
                            groups: conv_groups(groups, [n_g, w_step, k]),
                            owner: owner(Phase::Bp),
                        };
                        push(lower::lower_gemm(&ctx, &bwd_budget, &job, fenced)?.0, &mut blocks, &mut fenced);
                    }
                }
                // The side work starts once the main pipeline's latest fragment (this BP, or
                // what produced dY) is done; the vector work that follows overlaps it.
                let mut group = SideGroup { anchor: blocks.len(), end: None, blocks: Vec::new() };
                if overlap {
                    engine::signal_on_last_store(&mut blocks, engine::BP_DONE);
                }
                // (fragment, is the update); a side fragment waits on the side fence unless it
                // is the side pipeline's first (the main pipeline is fenced throughout the backward).
                let mut side_work: Vec<(Emitted, bool)> = Vec::new();
                let lane_fenced = |side_fenced: bool, count: usize| !overlap || side_fenced || count > 0;
                if wu_on_side {
                    let f = lane_fenced(side_fenced, side_work.len());
                    side_work.push((lower::lower_gemm(&ctx, &side_budget, &wu_job, f)?.0, false));
                }
                let f = lane_fenced(side_fenced, side_work.len());
                side_work.push((lower::lower_update(&side_budget, &w, f)?, true));
                if w.needs_dense_copy() {
                    // The dense FP16 copy of the updated weights, on the vector unit.
                    let ops = vec![spec(VecOp::Copy, k, Loc::Out, Loc::In(0), Loc::In(0), [0; 4])];
                    let rows_to = if w.ff.ratio().is_none() { w.map.ff_vals } else { w.map.dense };
                    let mut j = vjob(vec![Stream::rows(Buffer::Master, w.map.master, k)], k, c_out, ops, (0, 0), rows_to);
                    j.flipped_store = w.bp_flip.map(|(positions, c_in)| lower::FlippedStore {
                        positions,
                        c_in,
                        c_out,
                        base: w.map.dense,
                        rows_too: w.ff.ratio().is_none(),
                    });
                    j.owner = owner(Phase::Prune);
                    let f = lane_fenced(side_fenced, side_work.len());
                    side_work.push((lower::lower_stream(&side_budget, &j, f)?, false));
                }
                let pregen = options.pregen && w.ff.ratio().is_some();
                let mut updated_at = None;
                for (k_frag, (mut e, is_update)) in side_work.into_iter().enumerate() {
                    if is_update && pregen {
                        engine::signal_on_last_store(&mut e, engine::UPDATED);
                    }
                    if overlap {
                        let mut e = engine::to_side(e);
                        if k_frag == 0 {
                            engine::wait_on_first_load(&mut e, engine::BP_DONE);
                        }
                        side_fenced = true;
                        group.blocks.extend(e);
                        if is_update {
                            updated_at = Some(UpdateAt::Side(side.len(), group.blocks.len()));
                        }
                    } else {
                        push(e, &mut blocks, &mut fenced);
                        if is_update {
                            updated_at = Some(UpdateAt::Main(blocks.len()));
                        }
                    }
                }
                if pregen {
                    let (ins, outs, steps) = lower::prune_steps(&pregen_budget, &w, i as u64)?;
                    pregen_decl = Some((ins, outs));
                    pregen_steps.push((i, steps));
                    pregen_after.push(updated_at.expect("every weight layer updates"));
                }
                if overlap {
                    side.push(group);
                }
                if let (Some(dx), false, false) = (dx, conv.is_identity(), transposed_bp) {
                    // col2im of a strided conv: one add per im2col element, into the input gradient.
                    let (ir, ic) = matrix(info.input_shapes[0], batch);
                    let out_len = (ir * ic).div_ceil(p);
                    let width = groups * k;
                    let ops = vec![spec(VecOp::Add, width, Loc::Out, Loc::In(0), Loc::In(0), [0; 4])];
                    let mut j = vjob(vec![act(dcol, width)], out_len, p, ops, (0, 0), dx);
                    j.out_slot_row = width.max(out_len);
                    push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
                }
            }
            LayerKind::Relu | LayerKind::Gelu if needs_dx => {
                let op = if layer.kind == LayerKind::Relu { VecOp::ReluGrad } else { VecOp::GeluGrad };
                let ops = vec![spec(op, cols, Loc::Out, Loc::In(0), Loc::In(1), [0; 4])];
                let j = vjob(vec![act(x_addr, cols), act(dy, cols)], cols, rows, ops, (0, 0), dx.expect("needs_dx"));
                push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::BatchNorm | LayerKind::LayerNorm if needs_dx => {
                let axis = u64::from(layer.kind == LayerKind::LayerNorm);
                let scratch = if axis == 1 { (4, 0) } else { (0, 4 * cols) };
                let stats = if axis == 1 { 2 } else { 2 * cols };
                let ops = vec![
                    spec(VecOp::NormStats, 1, Loc::Scratch(0), Loc::In(0), Loc::In(0), [cols, axis, 0, 0]),
                    spec(VecOp::NormGradStats, 1, Loc::Scratch(stats), Loc::In(1), Loc::In(0), [cols, axis, 0, 0]),
                    spec(VecOp::Copy, cols, Loc::Out, Loc::In(0), Loc::In(0), [0; 4]),
                    spec(VecOp::NormGradApply, 1, Loc::Out, Loc::In(1), Loc::Scratch(0), [cols, axis, 0, 0]),
                ];
                let j = vjob(vec![act(x_addr, cols), act(dy, cols)], cols, rows, ops, scratch, dx.expect("needs_dx"));
                push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::MaxPool { kernel, stride, .. } | LayerKind::AvgPool { kernel, stride } if needs_dx => {
                let (Shape::Image { c, h, w }, Shape::Image { h: oh, w: ow, .. }) = (info.input_shapes[0], info.output) else {
                    unreachable!("pooling on images")
                };
                let (k, s) = ((*kernel).min(h).min(w), *stride);
                let max = matches!(layer.kind, LayerKind::MaxPool { .. });
                let (op, a) = if max { (VecOp::MaxPoolGrad, Loc::In(0)) } else { (VecOp::AvgPoolGrad, Loc::In(1)) };
                let b = PoolBands::pick(bwd_budget.act.size, [h, w, c], [oh, ow], k, s, true)?;
                let ops = vec![spec(op, c, Loc::Out, a, Loc::In(1), [b.plane_rows(), w, k, s])];
                let x = Stream { halo: b.halo * w * c, ..act(x_addr, b.rows_in * w * c) };
                let dy = Stream { halo: b.out_slot(w, c, ow) - b.rows_out * ow * c, ..act(dy, b.rows_out * ow * c) };
                let mut j = vjob(vec![x, dy], b.rows_in * w * c, batch * b.bands, ops, (0, 0), dx.expect("needs_dx"));
                j.out_slot_row = b.plane_rows() * w * c;
                push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::GlobalAvgPool if needs_dx => {
                let Shape::Image { c, h, w } = info.input_shapes[0] else { unreachable!("pooling on images") };
                let ops = vec![spec(VecOp::AvgPoolGrad, c, Loc::Out, Loc::In(1), Loc::In(1), [h, w, h.min(w), h.min(w)])];
                let j = vjob(vec![act(x_addr, h * w * c), act(dy, c)], h * w * c, batch, ops, (0, 0), dx.expect("needs_dx"));
                push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::ClassToken if needs_dx => {
                // The patch tokens' gradient: each image's rows after the class token.
                let Shape::Tokens { t, d } = info.output else { unreachable!("class_token makes tokens") };
                let g = Stream { row_stride: t * d, ..act(dy + d * 2, (t - 1) * d) };
                let ops = vec![spec(VecOp::Copy, (t - 1) * d, Loc::Out, Loc::In(0), Loc::In(0), [0; 4])];
                let j = vjob(vec![g], (t - 1) * d, batch, ops, (0, 0), dx.expect("needs_dx"));
                push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::TakeClassToken if needs_dx => {
                // Each image's token rows: dY in the class token's row (the rest receive no gradient).
                let Shape::Tokens { t, d } = info.input_shapes[0] else { unreachable!("take_class_token reads tokens") };
                let ops = vec![spec(VecOp::Copy, d, Loc::Out, Loc::In(0), Loc::In(0), [0; 4])];
                let j = vjob(vec![act(dy, d)], t * d, batch, ops, (0, 0), dx.expect("needs_dx"));
                push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            LayerKind::AttentionScores { .. } | LayerKind::AttentionValues => {
                // An operand that is the model input needs no gradient.
                let addr = |j: usize| info.inputs[j].map_or(input, |p| out_addr[p]);
                let grad = |j: usize| info.inputs[j].map_or(0, |p| contribution(p, i));
                let jobs = attention_gemms(info, batch, addr(0), addr(1), dy, grad(0), grad(1));
                for (job, operand) in jobs[1..].iter().zip(&info.inputs) {
                    if operand.is_some() {
                        push(lower::lower_gemm(&ctx, &bwd_budget, job, fenced)?.0, &mut blocks, &mut fenced);
                    }
                }
            }
            LayerKind::AttentionSoftmax if needs_dx => {
                let ops = vec![spec(VecOp::SoftmaxGrad, 1, Loc::Out, Loc::In(0), Loc::In(1), [cols, 0, 0, 0])];
                let j = vjob(vec![act(out_addr[i], cols), act(dy, cols)], cols, rows, ops, (0, 0), dx.expect("needs_dx"));
                push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
            }
            _ => {}
        }
        // Sum the gradients of tensors whose last consumer (in backward order) this was.
        for p in info.inputs.iter().flatten().copied() {
            remaining[p] -= 1;
            if remaining[p] == 0 && consumers[p].len() > 1 {
                let (r, c) = matrix(infos[p].output, batch);
                let parts: Vec<u64> = consumers[p].iter().map(|&cn| contribution(p, cn)).collect();
                let mut acc = parts[0];
                for &part in &parts[1..] {
                    let ops = vec![spec(VecOp::Add, c, Loc::Out, Loc::In(0), Loc::In(1), [0; 4])];
                    let mut j = vjob(vec![act(acc, c), act(part, c)], c, r, ops, (0, 0), grad_addr[p]);
                    j.owner = Owner { layer: p as u32, phase: Phase::Vector };
                    push(lower::lower_stream(&bwd_budget, &j, fenced)?, &mut blocks, &mut fenced);
                    acc = grad_addr[p];
                }
            }
        }
        done += 1;
        progress(done, total_work);
    }

    // ---- Splice the side pipeline into the main blocks: each layer's side blocks spread evenly
    // over its window of main blocks (after the window's first block), the rest at its end.
    if let Some(g) = side.last_mut() {
        g.end.get_or_insert(blocks.len());
    }
    let mut placed: Vec<Vec<(usize, usize, Block)>> = vec![Vec::new(); blocks.len() + 1];
    for (g, group) in side.iter_mut().enumerate() {
        let (anchor, end) = (group.anchor, group.end.expect("closed above").max(group.anchor));
        let (count, window) = (group.blocks.len(), end - anchor);
        for (s, block) in std::mem::take(&mut group.blocks).into_iter().enumerate() {
            let at = if window == 0 { anchor } else { anchor + 1 + s * window / count };
            placed[at.min(blocks.len())].push((g, s + 1, block));
        }
    }
    let mut merged: Vec<Block> = Vec::new();
    // Where each side group's first `n` blocks end in `merged`, keyed by (group, n).
    let mut side_ends = std::collections::HashMap::new();
    let mut main_ends = vec![0usize; blocks.len() + 1];
    for (b, block) in blocks.into_iter().map(Some).chain(std::iter::once(None)).enumerate() {
        for (g, n, side_block) in std::mem::take(&mut placed[b]) {
            merged.push(side_block);
            side_ends.insert((g, n), merged.len());
        }
        if let Some(block) = block {
            merged.push(block);
        }
        main_ends[b] = merged.len();
    }

    // ---- Splice the pre-generation stream: each layer's prune chunks spread from the end of
    // its update to the next pre-generated layer's.
    let mut insns: Vec<(Instruction, Owner)> = Vec::new();
    if let Some((ins, outs)) = pregen_decl {
        let total = merged.len();
        let per_layer: Vec<(usize, usize)> = pregen_after
            .iter()
            .zip(&pregen_steps)
            .map(|(at, (_, steps))| {
                let at = match *at {
                    UpdateAt::Main(b) => {
                        if b == 0 {
                            0
                        } else {
                            main_ends[b - 1]
                        }
                    }
                    UpdateAt::Side(g, n) => side_ends[&(g, n)],
                };
                (at.min(total), steps.len())
            })
            .collect();
        let all: Vec<engine::Step> = pregen_steps.into_iter().flat_map(|(_, s)| s).collect();
        let mut emitted = lower::emit_prune(&ins, &outs, &all, &Sems::pregen(), false, false);
        let mut first = 0;
        for &(_, count) in &per_layer {
            engine::wait_on_first_load(&mut emitted[first..first + count], engine::UPDATED);
            first += count;
        }
        let mut queue = emitted.into_iter();
        let mut schedule: Vec<Vec<Block>> = vec![Vec::new(); total + 1];
        for (j, &(at, count)) in per_layer.iter().enumerate() {
            let end = per_layer.get(j + 1).map_or(total, |&(a, _)| a).max(at + 1).min(total);
            let window = end.saturating_sub(at).max(1);
            for c in 0..count {
                let slot = (at + c * window / count.max(1)).min(total);
                schedule[slot].push(queue.next().expect("counted"));
            }
        }
        for (b, block) in merged.into_iter().enumerate() {
            for p in std::mem::take(&mut schedule[b]) {
                insns.extend(p);
            }
            insns.extend(block);
        }
        for p in schedule.pop().into_iter().flatten() {
            insns.extend(p);
        }
    } else {
        insns = merged.into_iter().flatten().collect();
    }
    let (mut program, owners): (Vec<Instruction>, Vec<Owner>) = insns.into_iter().unzip();
    // The last fragment of each pipeline fences nothing: drop its fence signal so every token
    // is consumed.
    for fence in [Sems::main().fence.expect("the main pipeline fences"), engine::SIDE_FENCE] {
        if let Some(last) = program.iter_mut().rev().find(|i| i.header.signal.contains(&fence)) {
            for s in last.header.signal.iter_mut().filter(|s| **s == fence) {
                *s = 0;
            }
        }
    }
    let program = Program { insns: program };
    let mut buffers = Vec::new();
    let mut pipelines = vec![("main", main_budget)];
    if options.pregen {
        pipelines.push(("pregen", pregen_budget));
    }
    if overlap {
        pipelines.extend([("backward main", bwd_budget), ("backward side", side_budget)]);
    }
    for (pipeline, b) in pipelines {
        for (name, r) in [("act", b.act), ("wgt", b.wgt), ("acc", b.acc), ("master", b.master)] {
            if r.size == 0 || (pipeline == "pregen" && (name == "act" || name == "acc")) {
                continue;
            }
            buffers.push(ManifestBuffer { pipeline, buffer: name, base: r.base, size: r.size });
        }
    }
    let manifest = Manifest {
        model: model.name.clone(),
        batch,
        method: format!("{} {}", policy.method, policy.nm),
        options: *options,
        instructions: program.insns.len(),
        dram_bytes,
        input,
        labels,
        hyper,
        loss,
        layers: manifest_layers,
        buffers,
    };
    let dense_weight_layers = formats.iter().filter(|f| f.ff.ratio().is_none()).map(|f| f.index).collect();
    Ok(CompiledStep {
        program,
        owners,
        layer_names: layers.iter().map(|l| l.name.clone()).collect(),
        dense_weight_layers,
        manifest,
    })
}

/// The GEMMs of an attention layer, one per image and head (see [`Groups`]): `[FF, dA, dB]`
/// for inputs `a` (queries, or the softmax output) and `b` (keys, or values) at `a`, `b`,
/// with output (FF) or output gradient (BP) at `y`, and the inputs' gradients at `da`, `db`.
/// Scores are `Q K^T` per head (the `1/sqrt(d_head)` scale is folded into nothing: timing is
/// the same, and attention's functional result is not claimed); context is `P V`.
fn attention_gemms(info: &LayerInfo, batch: u64, a: u64, b: u64, y: u64, da: u64, db: u64) -> [GemmJob; 3] {
    let gm = info.gemms.as_ref().expect("attention layers have GEMMs");
    let (Shape::Scores { heads, t_q, t_k }, Shape::Tokens { d, .. }) = (
        match info.output {
            s @ Shape::Scores { .. } => s,
            _ => info.input_shapes[0],
        },
        match info.input_shapes[1] {
            s @ Shape::Tokens { .. } => s,
            _ => unreachable!("attention's second input is tokens"),
        },
    ) else {
        unreachable!("attention shapes")
    };
    let dh = d / heads;
    let (tokens_q, tokens_k, scores) = (t_q * d, t_k * d, heads * t_q * t_k);
    let (head_cols, head_scores) = (dh, t_q * t_k);
    let groups = |per_image, per_head| Groups { images: batch, heads, per_image, per_head };
    let job = |m, n, k, input, weight, out, groups, phase| GemmJob {
        m,
        n,
        k,
        weights: WeightFormat::Dense,
        input,
        weight,
        out,
        groups,
        owner: Owner { layer: info.index as u32, phase },
    };
    let rows = |rows: u64, cols: u64, ld: u64, base: u64| InSrc::Im2col { conv: Conv::columns(rows, cols, ld), base };
    let fp16 = |base, ld| OutDst::Fp16 { base, ld };
    let stored = |vals, row_len| WSrc::Stored { vals, idx: 0, row_len };
    let dense_t = |base, ld| WSrc::DenseT { base, ld };
    let transposed = |base, ld| InSrc::Transposed { base, ld };
    let qk = [tokens_q, tokens_k, scores];
    let qk_head = [head_cols, head_cols, head_scores];
    let pv = [scores, tokens_k, tokens_q];
    let pv_head = [head_scores, head_cols, head_cols];
    let (ff, bp) = (Phase::Ff, Phase::Bp);
    if matches!(info.output, Shape::Scores { .. }) {
        // S = Q K^T; dQ = dS K; dK = dS^T Q.
        debug_assert_eq!((gm.ff.m, gm.ff.n, gm.ff.k), (t_q, t_k, dh));
        [
            job(t_q, t_k, dh, rows(t_q, dh, d, a), stored(b, d), fp16(y, t_k), groups(qk, qk_head), ff),
            job(t_q, dh, t_k, rows(t_q, t_k, t_k, y), dense_t(b, d), fp16(da, d), groups(pv, pv_head), bp),
            job(t_k, dh, t_q, transposed(y, t_k), dense_t(a, d), fp16(db, d), groups([scores, tokens_q, tokens_k], pv_head), bp),
        ]
    } else {
        // C = P V; dP = dC V^T; dV = P^T dC.
        debug_assert_eq!((gm.ff.m, gm.ff.n, gm.ff.k), (t_q, dh, t_k));
        [
            job(t_q, dh, t_k, rows(t_q, t_k, t_k, a), dense_t(b, d), fp16(y, d), groups(pv, pv_head), ff),
            job(t_q, t_k, dh, rows(t_q, dh, d, y), stored(b, d), fp16(da, t_k), groups(qk, qk_head), bp),
            job(t_k, dh, t_q, transposed(a, t_k), dense_t(y, d), fp16(db, d), groups([scores, tokens_q, tokens_k], pv_head), bp),
        ]
    }
}

fn fmt_format(w: WeightFormat) -> String {
    match w.ratio() {
        None => "dense".into(),
        Some(r) => r.to_string(),
    }
}

/// How a pooling pass is split into horizontal bands of each image so that its streamed rows
/// fit the activation buffer's double-buffered regions (resnet50's stem max-pool holds 1.8 M
/// elements per image with its gradient). Band `j` of an image reads input rows
/// `j * rows_in ..` and produces output rows `j * rows_out ..`; its windows also read `halo`
/// rows below the band, which the line buffer keeps from the previous band's load (so they
/// are held in the slot but not loaded twice). Only timing is claimed for pooling (see the
/// module docs), and the halo rows' contents are not functional.
#[derive(Debug, Clone, Copy)]
struct PoolBands {
    bands: u64,
    rows_in: u64,
    rows_out: u64,
    halo: u64,
    k: u64,
    s: u64,
}

impl PoolBands {
    /// The fewest bands (a common divisor of `h` and `oh`) whose slots fit `act` elements
    /// double-buffered; `grad` sizes the backward pass (input, output gradient, input gradient).
    fn pick(act: u64, [h, w, c]: [u64; 3], [oh, ow]: [u64; 2], k: u64, s: u64, grad: bool) -> Result<PoolBands> {
        for bands in (1..=oh.min(h)).filter(|d| h % d == 0 && oh % d == 0) {
            let (rows_in, rows_out) = (h / bands, oh / bands);
            let halo = ((rows_out - 1) * s + k).saturating_sub(rows_in);
            let b = PoolBands { bands, rows_in, rows_out, halo, k, s };
            let per_row = if grad {
                2 * b.plane_rows() * w * c + b.out_slot(w, c, ow)
            } else {
                b.plane_rows() * w * c + b.out_slot(w, c, ow)
            };
            if 2 * per_row <= act {
                return Ok(b);
            }
        }
        Err(Error::NoTiling {
            what: format!("a pooling pass over {h} x {w} x {c} images"),
            arch: "this machine".into(),
            reason: "not even one band of rows fits the activation buffer's double-buffered regions".into(),
        })
    }

    /// Rows of the plane the pool op sees: the band plus its halo.
    fn plane_rows(&self) -> u64 {
        self.rows_in + self.halo
    }

    /// Output elements per band the op writes (at least the stored `rows_out x ow x c`).
    fn out_slot(&self, w: u64, c: u64, ow: u64) -> u64 {
        let op_rows = (self.plane_rows() - self.k) / self.s + 1;
        let op_cols = (w - self.k.min(w)) / self.s + 1;
        (op_rows * op_cols * c).max(self.rows_out * ow * c)
    }
}

/// A vector pass over `rows` rows of `inputs` producing FP16 rows of `out_len` elements at
/// `out_base` in DRAM, through `ops` with `scratch` (as used by the forward and backward passes).
fn vector_job(
    inputs: Vec<Stream>,
    out_len: u64,
    rows: u64,
    ops: Vec<VecSpec>,
    scratch: (u64, u64),
    out_base: u64,
    owner: Owner,
) -> StreamJob {
    StreamJob {
        rows,
        inputs,
        output: Stream::rows(Buffer::Act, out_base, out_len),
        scratch,
        out_slot_row: out_len,
        tail_store: None,
        flipped_store: None,
        ops,
        owner,
    }
}
