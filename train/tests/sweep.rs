//! The sweep plan and its summary statistics: dense runs once per seed, the sparse methods
//! once per ratio and seed; rows hold mean, sample deviation, extremes and the gap to dense.

use satkit_train::sweep::{summarize, SweepConfig, SweepRun};
use satkit_train::trainer::TrainConfig;
use satkit_train::Method;

#[test]
fn plan_runs_dense_once_per_seed() {
    let cfg = SweepConfig::standard(TrainConfig::default(), 3);
    let runs = cfg.runs();
    assert_eq!(runs.len(), 3 + 2 * 3 * 3);
    assert_eq!(runs.iter().filter(|(m, _, _)| *m == Method::Dense).count(), 3);
    for (method, nm, c) in &runs {
        assert_eq!(c.sparsity.method, *method);
        if *method != Method::Dense {
            assert_eq!(c.sparsity.ratio.to_string(), *nm);
        }
        c.validate().unwrap();
    }
}

#[test]
fn summary_statistics() {
    let run =
        |method, nm: &str, seed, acc| SweepRun { method, nm: nm.into(), seed, test_accuracy: acc, train_loss: 0.0, seconds: 0.0 };
    let runs = [
        run(Method::Dense, "-", 0, 0.90),
        run(Method::Dense, "-", 1, 0.92),
        run(Method::Bdwp, "2:8", 0, 0.89),
        run(Method::Bdwp, "2:8", 1, 0.89),
    ];
    let rows = summarize(&runs);
    assert_eq!(rows.len(), 2);
    assert!((rows[0].mean_accuracy - 91.0).abs() < 1e-9);
    assert!((rows[0].std_accuracy - 2f64.sqrt()).abs() < 1e-9);
    assert_eq!((rows[0].min_accuracy, rows[0].max_accuracy), (90.0, 92.0));
    assert!((rows[1].delta_vs_dense.unwrap() + 2.0).abs() < 1e-9);
    assert_eq!(rows[1].std_accuracy, 0.0);
}
