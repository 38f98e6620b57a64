//! `satkit train`: trains a zoo model on Fashion-MNIST with dense, SR-STE or BDWP N:M
//! training on the CPU (crate `satkit-train`) or, with `--device cuda`, on the GPU
//! (`satkit_train::cuda`), or with `--sweep` runs the accuracy table over methods, ratios
//! and seeds (CPU only). Arguments are parsed raw, validated into a
//! [`satkit_train::TrainConfig`] before anything runs, and every output is written whole or
//! not at all. Progress goes to stderr; `--json` prints the report on stdout.

use crate::plot::{line_chart, LineChart, Series};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use satkit_train::data::{Dataset, Split, DEFAULT_DATASET_DIR};
use satkit_train::model::{parse_ratio, DEFAULT_LAMBDA};
use satkit_train::sweep::{run_sweep, SweepConfig, SweepProgress, SweepReport};
use satkit_train::trainer::{EpochStats, Progress, TrainConfig};
use satkit_train::{Method, SparsityConfig};
use std::path::{Path, PathBuf};

/// Arguments of `satkit train`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model: mlp, lenet5 or vgg-small.
    #[arg(long, default_value_t = TrainConfig::default().model)]
    pub model: String,
    /// Training method: dense, srste or bdwp.
    #[arg(long, default_value_t = TrainConfig::default().sparsity.method.to_string())]
    pub method: String,
    /// N:M ratio of the sparse layers, e.g. 2:8.
    #[arg(long, default_value_t = TrainConfig::default().sparsity.ratio.to_string())]
    pub nm: String,
    /// Passes over the training set.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    pub batch: usize,
    /// Seed of initialization and shuffling.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Output directory (created if missing).
    #[arg(long, default_value = "out/train")]
    pub out: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Base learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f32,
    /// Learning-rate schedule: cosine or constant.
    #[arg(long, default_value_t = TrainConfig::default().schedule.to_string())]
    pub lr_schedule: String,
    /// SGD momentum.
    #[arg(long, default_value_t = TrainConfig::default().momentum)]
    pub momentum: f32,
    /// Weight decay on conv and linear weights.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f32,
    /// SR-STE decay strength lambda on pruned weights.
    #[arg(long, default_value_t = DEFAULT_LAMBDA)]
    pub lambda: f32,
    /// Where BDWP ranks its backward mask: dense (W) or forward_masked (W * mask_ff).
    #[arg(long, default_value = "dense")]
    pub bp_mask_source: String,
    /// Comma-separated weight layers kept dense (default: the first and the last weight
    /// layer; `none` keeps none dense).
    #[arg(long, value_delimiter = ',')]
    pub dense_layers: Option<Vec<String>>,
    /// Directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
    #[arg(long, default_value = DEFAULT_DATASET_DIR)]
    pub dataset_dir: PathBuf,
    /// Train on only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Run dense, SR-STE and BDWP at each of --ratios over --seeds seeds instead of one run.
    #[arg(long)]
    pub sweep: bool,
    /// Sweep: number of seeds (0, 1, ... seeds-1).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Sweep: comma-separated N:M ratios of the sparse methods.
    #[arg(long, value_delimiter = ',', default_value = "2:4,2:8,1:8")]
    pub ratios: Vec<String>,
    /// Where to train: cpu (the reference) or cuda (GPU 0; needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub device: String,
}

impl TrainArgs {
    /// Validates the raw arguments into a run configuration.
    fn config(&self) -> Result<TrainConfig> {
        let dense_layers =
            self.dense_layers.as_ref().map(|v| v.iter().filter(|s| s.as_str() != "none" && !s.is_empty()).cloned().collect());
        let cfg = TrainConfig {
            model: self.model.clone(),
            sparsity: SparsityConfig {
                method: self.method.parse()?,
                ratio: parse_ratio(&self.nm)?,
                lambda: self.lambda,
                bp_mask_source: self.bp_mask_source.parse()?,
                dense_layers,
            },
            epochs: self.epochs,
            batch: self.batch,
            seed: self.seed,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.lr_schedule.parse()?,
            train_limit: self.train_limit,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs `satkit train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let cfg = args.config()?;
    // The GPU is checked once, here, by opening it; there is no CPU fallback.
    let cuda = if args.device == "cuda" {
        anyhow::ensure!(!args.sweep, "--sweep runs on the CPU only; drop --device cuda or --sweep");
        let dev = satkit_train::cuda::CudaDevice::open(0)?;
        eprintln!("training on {}", dev.describe());
        Some(dev)
    } else {
        None
    };
    let sweep = if args.sweep {
        anyhow::ensure!(args.seeds >= 1, "--seeds = 0: the sweep needs at least one seed");
        let mut s = SweepConfig::standard(cfg.clone(), args.seeds);
        s.ratios = args.ratios.iter().map(|r| parse_ratio(r)).collect::<Result<_, _>>()?;
        for (_, _, c) in s.runs() {
            c.validate()?;
        }
        Some(s)
    } else {
        None
    };
    let train_set = Dataset::load(&args.dataset_dir, Split::Train)?;
    let test_set = Dataset::load(&args.dataset_dir, Split::Test)?;
    match sweep {
        Some(s) => run_sweep_cmd(args, &s, &train_set, &test_set),
        None => run_one(args, &cfg, cuda.as_ref(), &train_set, &test_set),
    }
}

fn bar(total: usize, prefix: String) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} steps {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_prefix(prefix);
    pb
}

/// Per-step losses averaged over tenths of an epoch, as `(epoch, loss)` points.
struct LossTrace {
    steps_per_epoch: f64,
    window: Vec<f64>,
    points: Vec<(f64, f64)>,
}

impl LossTrace {
    fn push(&mut self, step: usize, loss: f64) {
        self.window.push(loss);
        let per = (self.steps_per_epoch / 10.0).ceil().max(1.0) as usize;
        if self.window.len() >= per {
            self.points.push((step as f64 / self.steps_per_epoch, self.window.iter().sum::<f64>() / self.window.len() as f64));
            self.window.clear();
        }
    }
}

fn run_one(
    args: &TrainArgs,
    cfg: &TrainConfig,
    cuda: Option<&satkit_train::cuda::CudaDevice>,
    train_set: &Dataset,
    test_set: &Dataset,
) -> Result<()> {
    let n = cfg.train_limit.map_or(train_set.len(), |l| l.min(train_set.len()));
    let mut trace = LossTrace { steps_per_epoch: n.div_ceil(cfg.batch) as f64, window: Vec::new(), points: Vec::new() };
    let label = format!("{} {} {}", cfg.model, cfg.sparsity.method, cfg.sparsity.ratio);
    let mut pb = None;
    let mut on_progress = |p: Progress| match p {
        Progress::Start { total_steps } => pb = Some(bar(total_steps, label.clone())),
        Progress::Step { epoch, step, loss } => {
            trace.push(step, loss);
            if let Some(pb) = &pb {
                pb.set_position(step as u64);
                pb.set_message(format!("epoch {epoch} loss {loss:.3}"));
            }
        }
        Progress::Epoch(s) => {
            let line =
                format!("epoch {}: train loss {:.4}, test accuracy {:.2} %", s.epoch, s.train_loss, 100.0 * s.test_accuracy);
            match &pb {
                Some(pb) if !pb.is_hidden() => pb.println(line),
                _ => eprintln!("{line}"),
            }
        }
    };
    let (model, report) = match cuda {
        Some(dev) => satkit_train::cuda::train(dev, cfg, train_set, test_set, &mut on_progress)?,
        None => satkit_train::train(cfg, train_set, test_set, &mut on_progress)?,
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let mut files = satkit_train::output::write_run(&args.out, &model, &report)?;
    files.extend(plot_curves(&args.out, &report.history, &trace.points, &label)?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{label}: test accuracy {:.2} %, train loss {:.4}, {} epochs in {:.1} s ({:.0} training images/s)",
            100.0 * report.test_accuracy,
            report.train_loss,
            report.epochs,
            report.seconds,
            report.images_per_second
        );
        for f in files {
            println!("wrote {}", f.display());
        }
    }
    Ok(())
}

fn plot_curves(dir: &Path, history: &[EpochStats], trace: &[(f64, f64)], label: &str) -> Result<Vec<PathBuf>> {
    let epoch_points = |f: fn(&EpochStats) -> f64| history.iter().map(|s| (s.epoch as f64, f(s))).collect::<Vec<_>>();
    let loss = dir.join("loss.png");
    line_chart(
        &loss,
        &LineChart {
            title: format!("{label}: loss"),
            x_label: "epoch".into(),
            y_label: "cross-entropy".into(),
            series: vec![
                Series::new("train (per tenth of an epoch)", trace.to_vec()),
                Series::new("train (epoch mean)", epoch_points(|s| s.train_loss)),
                Series::new("test", epoch_points(|s| s.test_loss)),
            ],
        },
    )?;
    let acc = dir.join("accuracy.png");
    line_chart(
        &acc,
        &LineChart {
            title: format!("{label}: accuracy"),
            x_label: "epoch".into(),
            y_label: "accuracy (%)".into(),
            series: vec![
                Series::new("train", epoch_points(|s| 100.0 * s.train_accuracy)),
                Series::new("test", epoch_points(|s| 100.0 * s.test_accuracy)),
            ],
        },
    )?;
    Ok(vec![loss, acc])
}

fn run_sweep_cmd(args: &TrainArgs, cfg: &SweepConfig, train_set: &Dataset, test_set: &Dataset) -> Result<()> {
    let mut pb: Option<ProgressBar> = None;
    let mut prefix = String::new();
    let report = run_sweep(cfg, train_set, test_set, &mut |p| match p {
        SweepProgress::RunStart { index, total, label } => prefix = format!("[{}/{total}] {label}", index + 1),
        SweepProgress::Train(Progress::Start { total_steps }) => pb = Some(bar(total_steps, prefix.clone())),
        SweepProgress::Train(Progress::Step { step, loss, .. }) => {
            if let Some(pb) = &pb {
                pb.set_position(step as u64);
                pb.set_message(format!("loss {loss:.3}"));
            }
        }
        SweepProgress::Train(Progress::Epoch(_)) => {}
        SweepProgress::RunEnd(run) => {
            if let Some(pb) = pb.take() {
                pb.finish_and_clear();
            }
            eprintln!("{prefix}: test accuracy {:.2} % ({:.0} s)", 100.0 * run.test_accuracy, run.seconds);
        }
    })?;
    let mut files = report.write(&args.out)?;
    files.push(plot_sweep(&args.out, &report)?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_markdown());
        for f in files {
            println!("wrote {}", f.display());
        }
    }
    Ok(())
}

/// Mean test accuracy against density `N/M` per method; dense is drawn flat across.
fn plot_sweep(dir: &Path, report: &SweepReport) -> Result<PathBuf> {
    let densities: Vec<f64> = report.config.ratios.iter().map(|r| r.density()).collect();
    let (lo, hi) = densities.iter().fold((1.0f64, 0.0f64), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    let mut series = Vec::new();
    for method in &report.config.methods {
        let rows = report.rows.iter().filter(|r| r.method == *method);
        let points: Vec<(f64, f64)> = if *method == Method::Dense {
            rows.flat_map(|r| [(lo, r.mean_accuracy), (hi, r.mean_accuracy)]).collect()
        } else {
            rows.filter_map(|r| Some((parse_ratio(&r.nm).ok()?.density(), r.mean_accuracy))).collect()
        };
        series.push(Series::new(method.to_string(), points));
    }
    let b = &report.config.base;
    let path = dir.join("sweep.png");
    line_chart(
        &path,
        &LineChart {
            title: format!("{}: test accuracy, mean of {} seeds, {} epochs", b.model, report.config.seeds.len(), b.epochs),
            x_label: "density N/M".into(),
            y_label: "test accuracy (%)".into(),
            series,
        },
    )
    .context("drawing the sweep plot")?;
    Ok(path)
}
