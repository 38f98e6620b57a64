//! The accuracy sweep: dense, SR-STE and BDWP at several N:M ratios over several seeds on the
//! same model and data, summarized as mean and spread of the final test accuracy per
//! (method, ratio). Dense training does not depend on the ratio, so it runs once per seed.

use crate::data::Dataset;
use crate::error::Result;
use crate::output::{csv_bytes, json_bytes, write_atomic};
use crate::sparse::Method;
use crate::trainer::{train, Progress, TrainConfig};
use satkit_hw::nm::NmRatio;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What to sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    /// Settings shared by all runs (its method, ratio and seed are overridden).
    pub base: TrainConfig,
    /// Methods to run.
    pub methods: Vec<Method>,
    /// Ratios for the sparse methods.
    pub ratios: Vec<NmRatio>,
    /// Seeds; every (method, ratio) runs once per seed.
    pub seeds: Vec<u64>,
}

impl SweepConfig {
    /// The default sweep around `base`: dense, SR-STE and BDWP at 2:4, 2:8 and 1:8, seeds
    /// `0..seeds`.
    pub fn standard(base: TrainConfig, seeds: u64) -> Self {
        let r = |n, m| NmRatio { n, m };
        Self {
            base,
            methods: vec![Method::Dense, Method::Srste, Method::Bdwp],
            ratios: vec![r(2, 4), r(2, 8), r(1, 8)],
            seeds: (0..seeds).collect(),
        }
    }

    /// The run configurations in execution order, each with its `(method, ratio label)`.
    pub fn runs(&self) -> Vec<(Method, String, TrainConfig)> {
        let mut out = Vec::new();
        for &method in &self.methods {
            let ratios: Vec<Option<NmRatio>> =
                if method == Method::Dense { vec![None] } else { self.ratios.iter().copied().map(Some).collect() };
            for ratio in ratios {
                for &seed in &self.seeds {
                    let mut cfg = self.base.clone();
                    cfg.seed = seed;
                    cfg.sparsity.method = method;
                    if let Some(r) = ratio {
                        cfg.sparsity.ratio = r;
                    }
                    out.push((method, ratio.map_or_else(|| "-".to_string(), |r| r.to_string()), cfg));
                }
            }
        }
        out
    }
}

/// One finished run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    /// Method.
    pub method: Method,
    /// Ratio, `-` for dense.
    pub nm: String,
    /// Seed.
    pub seed: u64,
    /// Final test accuracy (fraction).
    pub test_accuracy: f64,
    /// Final epoch's training loss.
    pub train_loss: f64,
    /// Wall time of the run.
    pub seconds: f64,
}

/// Summary of one (method, ratio) over its seeds; accuracies in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Method.
    pub method: Method,
    /// Ratio, `-` for dense.
    pub nm: String,
    /// Number of seeds.
    pub runs: usize,
    /// Mean test accuracy, percent.
    pub mean_accuracy: f64,
    /// Sample standard deviation over seeds, percentage points (0 for one seed).
    pub std_accuracy: f64,
    /// Lowest run, percent.
    pub min_accuracy: f64,
    /// Highest run, percent.
    pub max_accuracy: f64,
    /// Mean minus the dense mean, percentage points (absent without dense runs).
    pub delta_vs_dense: Option<f64>,
}

/// The whole sweep result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// What was swept.
    pub config: SweepConfig,
    /// One row per (method, ratio).
    pub rows: Vec<SweepRow>,
    /// Every run.
    pub runs: Vec<SweepRun>,
}

/// Progress notifications from [`run_sweep`].
#[derive(Debug, Clone)]
pub enum SweepProgress<'a> {
    /// A run starts.
    RunStart {
        /// 0-based index.
        index: usize,
        /// Number of runs.
        total: usize,
        /// `method nm seed` in words.
        label: String,
    },
    /// Progress inside the current run.
    Train(Progress<'a>),
    /// A run finished.
    RunEnd(&'a SweepRun),
}

/// Runs every configuration of `cfg` and summarizes them.
pub fn run_sweep(
    cfg: &SweepConfig,
    train_set: &Dataset,
    test_set: &Dataset,
    progress: &mut dyn FnMut(SweepProgress),
) -> Result<SweepReport> {
    let plan = cfg.runs();
    for (_, _, c) in &plan {
        c.validate()?;
    }
    let mut runs = Vec::new();
    for (index, (method, nm, c)) in plan.iter().enumerate() {
        progress(SweepProgress::RunStart { index, total: plan.len(), label: format!("{method} {nm} seed {}", c.seed) });
        let (_, report) = train(c, train_set, test_set, &mut |p| progress(SweepProgress::Train(p)))?;
        let run = SweepRun {
            method: *method,
            nm: nm.clone(),
            seed: c.seed,
            test_accuracy: report.test_accuracy,
            train_loss: report.train_loss,
            seconds: report.seconds,
        };
        progress(SweepProgress::RunEnd(&run));
        runs.push(run);
    }
    Ok(SweepReport { config: cfg.clone(), rows: summarize(&runs), runs })
}

/// Groups runs by (method, ratio) in first-seen order and computes mean and spread.
pub fn summarize(runs: &[SweepRun]) -> Vec<SweepRow> {
    let mut keys: Vec<(Method, String)> = Vec::new();
    for r in runs {
        if !keys.iter().any(|(m, n)| *m == r.method && *n == r.nm) {
            keys.push((r.method, r.nm.clone()));
        }
    }
    let mut rows: Vec<SweepRow> = keys
        .into_iter()
        .map(|(method, nm)| {
            let acc: Vec<f64> =
                runs.iter().filter(|r| r.method == method && r.nm == nm).map(|r| 100.0 * r.test_accuracy).collect();
            let k = acc.len() as f64;
            let mean = acc.iter().sum::<f64>() / k;
            let std = if acc.len() > 1 { (acc.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt() } else { 0.0 };
            SweepRow {
                method,
                nm,
                runs: acc.len(),
                mean_accuracy: mean,
                std_accuracy: std,
                min_accuracy: acc.iter().copied().fold(f64::INFINITY, f64::min),
                max_accuracy: acc.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                delta_vs_dense: None,
            }
        })
        .collect();
    if let Some(dense) = rows.iter().find(|r| r.method == Method::Dense).map(|r| r.mean_accuracy) {
        for r in &mut rows {
            r.delta_vs_dense = Some(r.mean_accuracy - dense);
        }
    }
    rows
}

impl SweepReport {
    /// The summary as a markdown table.
    pub fn to_markdown(&self) -> String {
        let b = &self.config.base;
        let mut s = format!(
            "Model `{}`, {} epochs, batch {}, lr {} ({}), seeds {:?}; test accuracy in %, mean ± sample std over seeds.\n\n",
            b.model, b.epochs, b.batch, b.lr, b.schedule, self.config.seeds
        );
        s.push_str("| method | N:M | runs | mean ± std | min | max | vs dense |\n|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let delta = r.delta_vs_dense.map_or_else(|| "-".to_string(), |d| format!("{d:+.2}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} ± {:.2} | {:.2} | {:.2} | {} |",
                r.method, r.nm, r.runs, r.mean_accuracy, r.std_accuracy, r.min_accuracy, r.max_accuracy, delta
            );
        }
        s
    }

    /// Writes `sweep.csv` (summary rows), `sweep_runs.csv`, `sweep.json` and `sweep.md` into
    /// `dir`; returns the paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let files = [
            (dir.join("sweep.csv"), csv_bytes(&self.rows)?),
            (dir.join("sweep_runs.csv"), csv_bytes(&self.runs)?),
            (dir.join("sweep.json"), json_bytes(self)?),
            (dir.join("sweep.md"), self.to_markdown().into_bytes()),
        ];
        let mut out = Vec::new();
        for (p, bytes) in files {
            write_atomic(&p, &bytes)?;
            out.push(p);
        }
        Ok(out)
    }
}
