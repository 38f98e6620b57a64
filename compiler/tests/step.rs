//! The training-step compiler: synchronization is balanced and deadlock-free by construction
//! (every wait covered by earlier signals, no token left over), every phase's MACs equal the
//! analytical counts, the zoo's CNNs compile and simulate, and the generated `vcu1525` RTL runs
//! every instruction of the zoo's steps.

use satkit_compiler::model::{zoo, Method, SparsityPolicy};
use satkit_compiler::step::{self, check_sync, StepOptions};
use satkit_hw::ArchConfig;

fn policy(method: Method) -> SparsityPolicy {
    SparsityPolicy::new(method, "2:8".parse().unwrap())
}

fn all_options() -> Vec<StepOptions> {
    let on = StepOptions::default();
    vec![
        on,
        StepOptions { interleave: false, ..on },
        StepOptions { pregen: false, ..on },
        StepOptions { offline_schedule: false, ..on },
    ]
}

/// Every phase's simulated dense-equivalent MACs equal the model's analytical count.
fn assert_analytical_macs(c: &step::CompiledStep, r: &step::StepReport, what: &str) {
    for l in &c.manifest.layers {
        for (phase, want) in ["ff", "bp", "wu"].iter().zip(l.macs) {
            let got: u64 = r.layers.iter().filter(|s| s.layer == l.index && s.phase == *phase).map(|s| s.macs_dense).sum();
            assert_eq!(got, want, "{what}: layer {} phase {phase}", l.name);
        }
    }
}

#[test]
fn synchronization_balances_and_macs_match_the_analytical_counts() {
    let arch = ArchConfig::vcu1525();
    for (name, batch) in [("mlp", 64), ("lenet5", 32), ("vgg-small", 16), ("resnet18-cifar10", 8), ("deit-tiny", 2)] {
        let model = zoo::get(name).unwrap();
        for method in [Method::Dense, Method::Bdwp] {
            for options in all_options() {
                let c = step::compile(&arch, &model, batch, &policy(method), &options, &mut |_, _| {}).unwrap();
                if let Err(e) = check_sync(&c.program, &[]) {
                    std::fs::write(format!("/tmp/{name}.s"), c.program.to_text()).unwrap();
                    panic!("{name} {method} {options:?}: {e}");
                }
                c.program.to_binary().unwrap_or_else(|e| panic!("{name} {method} {options:?}: {e}"));
                let r = step::simulate(&arch, &c).unwrap_or_else(|e| panic!("{name} {method} {options:?}: {e}"));
                assert_analytical_macs(&c, &r, &format!("{name} {method}"));
            }
        }
    }
}

/// A MobileNet-style block: a grouped 3x3 conv (2 groups, N:M per group) and a depthwise 3x3
/// conv (always dense), each with batch norm and ReLU, then a pointwise conv.
const GROUPED: &str = r#"
input = [16, 8, 8]
classes = 10

[[layers]]
name = "stem"
kind = "conv2d"
out_channels = 32
kernel = 3
padding = 1

[[layers]]
name = "grouped"
kind = "conv2d"
out_channels = 32
kernel = 3
padding = 1
groups = 2

[[layers]]
name = "bn1"
kind = "batch_norm"

[[layers]]
name = "relu1"
kind = "relu"

[[layers]]
name = "depthwise"
kind = "conv2d"
out_channels = 32
kernel = 3
stride = 2
padding = 1
groups = 32

[[layers]]
name = "pointwise"
kind = "conv2d"
out_channels = 64
kernel = 1

[[layers]]
name = "pool"
kind = "global_avg_pool"

[[layers]]
name = "flat"
kind = "flatten"

[[layers]]
name = "fc"
kind = "linear"
out_features = 10

[[layers]]
name = "loss"
kind = "softmax_cross_entropy"
"#;

#[test]
fn grouped_and_depthwise_convs_lower_with_the_analytical_macs() {
    let arch = ArchConfig::vcu1525();
    let model = satkit_compiler::model::parse(GROUPED, satkit_compiler::model::ModelFormat::Toml, "grouped.toml").unwrap();
    for method in [Method::Dense, Method::Bdwp] {
        for options in all_options() {
            let c = step::compile(&arch, &model, 4, &policy(method), &options, &mut |_, _| {}).unwrap();
            check_sync(&c.program, &[]).unwrap_or_else(|e| panic!("{method} {options:?}: {e}"));
            let r = step::simulate(&arch, &c).unwrap();
            assert_analytical_macs(&c, &r, &format!("{method} {options:?}"));
            let grouped = c.manifest.layers.iter().find(|l| l.name == "grouped").unwrap();
            assert_eq!(grouped.ff.as_deref(), Some(if method == Method::Bdwp { "2:8" } else { "dense" }));
        }
    }
}

#[test]
fn a_loss_on_the_model_input_is_refused_with_a_clear_error() {
    let text = "input = [10]\nclasses = 10\n[[layers]]\nname = \"loss\"\nkind = \"softmax_cross_entropy\"\n";
    let model = satkit_compiler::model::parse(text, satkit_compiler::model::ModelFormat::Toml, "loss.toml").unwrap();
    let e = step::compile(&ArchConfig::tiny(), &model, 4, &policy(Method::Dense), &StepOptions::default(), &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("loss") && e.contains("model input"), "{e}");
}

/// The generated RTL of `vcu1525` runs every instruction of every zoo model's compiled BDWP
/// step: nothing is on `satkit_hw::rtl::unsupported`'s list, the ImageNet ResNets' 3x3/2 stem
/// max-pool gradient (planes 112 wide) included.
#[test]
fn the_vcu1525_rtl_runs_every_instruction_of_the_zoos_steps() {
    let arch = ArchConfig::vcu1525();
    for name in zoo::NAMES {
        let model = zoo::get(name).unwrap();
        let c = step::compile(&arch, &model, 2, &policy(Method::Bdwp), &StepOptions::default(), &mut |_, _| {}).unwrap();
        for (i, insn) in c.program.insns.iter().enumerate() {
            if let Some(why) = satkit_hw::rtl::unsupported(&arch, &insn.op) {
                panic!("{name}: instruction {i} ({}): {why}", insn.op.mnemonic());
            }
        }
    }
}
