//! The training-step compiler: synchronization is balanced and deadlock-free by construction
//! (every wait covered by earlier signals, no token left over), every phase's MACs equal the
//! analytical counts, and the zoo's CNNs compile and simulate.

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
                // Every phase's dense-equivalent MACs equal the model's analytical count.
                for l in &c.manifest.layers {
                    for (phase, want) in ["ff", "bp", "wu"].iter().zip(l.macs) {
                        let got: u64 =
                            r.layers.iter().filter(|s| s.layer == l.index && s.phase == *phase).map(|s| s.macs_dense).sum();
                        assert_eq!(got, want, "{name} {method}: layer {} phase {phase}", l.name);
                    }
                }
            }
        }
    }
}
