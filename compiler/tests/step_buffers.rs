//! The training-step compiler never over-fills a buffer: for random conv/linear layer shapes
//! and random machines (array dims and buffer sizes varied on the `tiny` preset), the compiled
//! step either is refused for want of a fitting tiling or runs timing-only on the simulator,
//! which refuses any instruction touching a buffer past its capacity; the compiler's own
//! buffer regions (the manifest's) stay inside every buffer.

use proptest::prelude::*;
use satkit_compiler::model::{Layer, LayerKind, Method, Model, Shape, SparsityPolicy, MODEL_INPUT};
use satkit_compiler::step::{self, StepOptions};
use satkit_compiler::Error;
use satkit_hw::arch::{ArrayConfig, BufferConfig, DramConfig};
use satkit_hw::isa::Buffer;
use satkit_hw::ArchConfig;
use satkit_sim::{Machine, Mode};

#[derive(Debug, Clone)]
struct Case {
    rows: u32,
    cols: u32,
    kib: [u32; 4],
    c_in: u64,
    hw: u64,
    c_out: u64,
    kernel: u64,
    stride: u64,
    hidden: u64,
    batch: u64,
    bdwp: bool,
    options: StepOptions,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (prop::sample::select(vec![2u32, 4, 8]), prop::sample::select(vec![2u32, 4, 8])),
        [8u32..=64, 4u32..=32, 8u32..=64, 8u32..=64],
        (1u64..=8, 3u64..=9, 1u64..=16, prop::sample::select(vec![1u64, 3]), 1u64..=2),
        (1u64..=24, 1u64..=4, any::<bool>()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|((rows, cols), kib, (c_in, hw, c_out, kernel, stride), (hidden, batch, bdwp), (il, pg, os))| {
            // N:M groups need reductions (and BP's C_out) that are multiples of M = 8.
            let g = if bdwp { 8 } else { 1 };
            let (c_in, c_out, hidden) = (c_in * g, c_out * g, hidden * g);
            Case {
                rows,
                cols,
                kib,
                c_in,
                hw,
                c_out,
                kernel,
                stride,
                hidden,
                batch,
                bdwp,
                options: StepOptions { interleave: il, pregen: pg, offline_schedule: os },
            }
        })
}

fn machine(c: &Case) -> ArchConfig {
    let base = ArchConfig::tiny();
    let [act_kib, wgt_kib, acc_kib, master_kib] = c.kib;
    // The property is about on-chip buffers: give DRAM room for every generated model
    // (tiny's 16 MiB cannot hold the largest random layers' training state).
    let dram = DramConfig { capacity_mib: 1024, ..base.dram.clone() };
    ArchConfig {
        array: ArrayConfig { rows: c.rows, cols: c.cols, ..base.array.clone() },
        buffers: BufferConfig { act_kib, wgt_kib, acc_kib, master_kib, ..base.buffers },
        dram,
        ..base
    }
}

fn model(c: &Case) -> Model {
    let layer =
        |name: &str, kind: LayerKind, input: &str| Layer { name: name.into(), kind, inputs: vec![input.into()], sparsity: None };
    let conv = LayerKind::Conv2d {
        out_channels: c.c_out,
        kernel: (c.kernel, c.kernel),
        stride: c.stride,
        padding: c.kernel / 2,
        groups: 1,
        bias: false,
        ceil_mode: false,
    };
    let layers = vec![
        layer("conv", conv, MODEL_INPUT),
        layer("bn", LayerKind::BatchNorm, "conv"),
        layer("relu", LayerKind::Relu, "bn"),
        layer("flatten", LayerKind::Flatten, "relu"),
        layer("fc1", LayerKind::Linear { out_features: c.hidden, bias: false }, "flatten"),
        layer("relu2", LayerKind::Relu, "fc1"),
        layer("fc2", LayerKind::Linear { out_features: 10, bias: false }, "relu2"),
        layer("loss", LayerKind::SoftmaxCrossEntropy, "fc2"),
    ];
    Model { name: "random".into(), input: Shape::Image { c: c.c_in, h: c.hw, w: c.hw }, classes: Some(10), layers }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_buffer_is_overfilled(c in case()) {
        let arch = machine(&c);
        prop_assume!(arch.validate().is_ok());
        let method = if c.bdwp { Method::Bdwp } else { Method::Dense };
        let policy = SparsityPolicy::new(method, "2:8".parse().unwrap());
        let compiled = match step::compile(&arch, &model(&c), c.batch, &policy, &c.options, &mut |_, _| {}) {
            Ok(compiled) => compiled,
            // An honest refusal: no tiling fits this machine's buffers.
            Err(Error::NoTiling { .. }) => return Ok(()),
            Err(e) => panic!("{c:?}: {e}"),
        };
        for b in &compiled.manifest.buffers {
            let buffer = match b.buffer {
                "act" => Buffer::Act,
                "wgt" => Buffer::Wgt,
                "acc" => Buffer::Acc,
                "master" => Buffer::Master,
                other => panic!("unknown buffer {other}"),
            };
            prop_assert!(b.base + b.size <= arch.buffer_elements(buffer), "{c:?}: region {b:?} past {} elements", arch.buffer_elements(buffer));
        }
        // Every field fits its width (the simulator runs decoded ops, so check the encoding).
        prop_assert!(compiled.program.to_binary().is_ok(), "{:?}: {}", c, compiled.program.to_binary().err().unwrap());
        let r = Machine::new(&arch, Mode::TimingOnly).run(&compiled.program);
        prop_assert!(r.is_ok(), "{:?}: the simulator refused the program: {}", c, r.err().unwrap());
    }
}
