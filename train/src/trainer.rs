//! The training loop: shuffled mini-batches (seeded), forward, softmax cross-entropy,
//! backward, SGD step (which recomputes the N:M masks), and an evaluation on the test set
//! after every epoch. A run is a pure function of its [`TrainConfig`] and data.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::layers::softmax_cross_entropy;
use crate::model::{Model, SparsityConfig};
use crate::optim::{LrSchedule, Sgd};
use crate::rng::Rng;
use crate::sparse::{LayerSparsity, Method};
use crate::zoo::model_spec;
use satkit_hw::nm::NmRatio;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Everything that determines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Zoo model name.
    pub model: String,
    /// Method, ratio and per-layer overrides.
    pub sparsity: SparsityConfig,
    /// Passes over the training set.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Seed of initialization and shuffling.
    pub seed: u64,
    /// Base learning rate.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// Weight decay on conv and linear weights.
    pub weight_decay: f32,
    /// Learning-rate schedule over all steps.
    pub schedule: LrSchedule,
    /// Use only the first this many training images.
    pub train_limit: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: "lenet5".into(),
            sparsity: SparsityConfig::new(Method::Bdwp, NmRatio { n: 2, m: 8 }),
            epochs: 5,
            batch: 64,
            seed: 0,
            lr: 0.02,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: LrSchedule::Cosine,
            train_limit: None,
        }
    }
}

impl TrainConfig {
    /// Checks the numeric settings and that the model and its sparsity plan are valid.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: String, rule| Err(Error::BadSetting { name, value, rule });
        if self.epochs == 0 {
            return bad("epochs", self.epochs.to_string(), "must be at least 1");
        }
        if self.batch == 0 {
            return bad("batch", self.batch.to_string(), "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr.to_string(), "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", self.momentum.to_string(), "must lie in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight-decay", self.weight_decay.to_string(), "must be zero or positive");
        }
        if !(self.sparsity.lambda.is_finite() && self.sparsity.lambda >= 0.0) {
            return bad("lambda", self.sparsity.lambda.to_string(), "must be zero or positive");
        }
        if self.train_limit == Some(0) {
            return bad("train-limit", "0".into(), "must be at least 1");
        }
        self.sparsity.plan(&model_spec(&self.model)?)?;
        Ok(())
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch (fraction, measured in training mode).
    pub train_accuracy: f64,
    /// Mean test loss (evaluation mode).
    pub test_loss: f64,
    /// Test accuracy (fraction).
    pub test_accuracy: f64,
    /// Seconds spent in training steps this epoch (evaluation excluded).
    pub train_seconds: f64,
}

/// A weight layer's sparsity as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    /// Layer name.
    pub name: String,
    /// Method (`dense` for layers kept dense).
    pub method: Method,
    /// N:M ratio, absent for dense layers.
    pub nm: Option<String>,
}

/// The result of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The configuration that produced it.
    pub config: TrainConfig,
    /// Final test accuracy (fraction).
    pub test_accuracy: f64,
    /// Final epoch's mean training loss.
    pub train_loss: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Wall time of the whole run, evaluation included.
    pub seconds: f64,
    /// Training images processed per second of training-step time.
    pub images_per_second: f64,
    /// Per-layer sparsity.
    pub layers: Vec<LayerReport>,
    /// Per-epoch curves.
    pub history: Vec<EpochStats>,
}

impl TrainReport {
    /// The report of a finished run (CPU or CUDA): `history` holds every epoch (at least one),
    /// `seconds` the whole run, `train_time` the seconds spent training on `n` images per epoch.
    pub fn new(cfg: &TrainConfig, model: &Model, history: Vec<EpochStats>, seconds: f64, n: usize, train_time: f64) -> Self {
        let last = history.last().cloned().expect("epochs >= 1 was validated");
        let layers = model
            .sparsity()
            .into_iter()
            .map(|(name, s): (String, LayerSparsity)| LayerReport {
                name,
                method: if s.is_dense() { Method::Dense } else { s.method },
                nm: (!s.is_dense()).then(|| s.ratio.to_string()),
            })
            .collect();
        TrainReport {
            config: cfg.clone(),
            test_accuracy: last.test_accuracy,
            train_loss: last.train_loss,
            epochs: cfg.epochs,
            seconds,
            images_per_second: (n * cfg.epochs) as f64 / train_time.max(1e-9),
            layers,
            history,
        }
    }
}

/// Progress notifications from [`train`].
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// Sent once before the first step.
    Start {
        /// Steps of the whole run.
        total_steps: usize,
    },
    /// After every training step.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// Steps done so far in the run.
        step: usize,
        /// Loss of this batch.
        loss: f64,
    },
    /// After each epoch's evaluation.
    Epoch(&'a EpochStats),
}

/// Evaluates `model` on `data` in evaluation mode: `(mean loss, accuracy)`.
pub fn evaluate(model: &mut Model, data: &Dataset, batch: usize) -> Result<(f64, f64)> {
    let (mut loss, mut correct) = (0.0, 0usize);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, y) = data.batch(chunk);
        let out = softmax_cross_entropy(&model.forward(&x, false)?, &y)?;
        loss += out.loss * chunk.len() as f64;
        correct += out.correct;
    }
    let n = data.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Validates `cfg` and builds its freshly initialized model; returns it with the number of
/// training images used per epoch (at least one). Shared by the CPU and CUDA trainers.
pub fn prepare(cfg: &TrainConfig, train_set: &Dataset) -> Result<(Model, usize)> {
    cfg.validate()?;
    let model = Model::new(&model_spec(&cfg.model)?, &cfg.sparsity, cfg.seed)?;
    let n = cfg.train_limit.map_or(train_set.len(), |l| l.min(train_set.len()));
    if n == 0 {
        return Err(Error::BadSetting { name: "training set", value: "0 images".into(), rule: "needs at least one image" });
    }
    Ok((model, n))
}

/// Trains a model per `cfg` on `train_set`, evaluating on `test_set` after each epoch.
pub fn train(
    cfg: &TrainConfig,
    train_set: &Dataset,
    test_set: &Dataset,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Model, TrainReport)> {
    let start = Instant::now();
    let (mut model, n) = prepare(cfg, train_set)?;
    let steps_per_epoch = n.div_ceil(cfg.batch);
    let total = steps_per_epoch * cfg.epochs;
    let sgd = Sgd { momentum: cfg.momentum, weight_decay: cfg.weight_decay };
    let mut rng = Rng::derive(cfg.seed, "shuffle");
    let mut order: Vec<usize> = (0..n).collect();
    let (mut history, mut step, mut train_time) = (Vec::new(), 0usize, 0.0f64);
    progress(Progress::Start { total_steps: total });
    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let t0 = Instant::now();
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut lr = cfg.lr;
        for chunk in order.chunks(cfg.batch) {
            let (x, y) = train_set.batch(chunk);
            let logits = model.forward(&x, true)?;
            let out = softmax_cross_entropy(&logits, &y)?;
            if !out.loss.is_finite() {
                return Err(Error::Diverged { epoch, step: step + 1, loss: out.loss });
            }
            model.backward(&out.grad)?;
            lr = cfg.schedule.rate(cfg.lr, step, total);
            model.step(&sgd, lr);
            step += 1;
            loss_sum += out.loss * chunk.len() as f64;
            correct += out.correct;
            progress(Progress::Step { epoch, step, loss: out.loss });
        }
        let secs = t0.elapsed().as_secs_f64();
        train_time += secs;
        let (test_loss, test_accuracy) = evaluate(&mut model, test_set, 500)?;
        let stats = EpochStats {
            epoch,
            lr,
            train_loss: loss_sum / n as f64,
            train_accuracy: correct as f64 / n as f64,
            test_loss,
            test_accuracy,
            train_seconds: secs,
        };
        progress(Progress::Epoch(&stats));
        history.push(stats);
    }
    let report = TrainReport::new(cfg, &model, history, start.elapsed().as_secs_f64(), n, train_time);
    Ok((model, report))
}
