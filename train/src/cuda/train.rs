//! The training loop on the GPU, step for step the CPU loop of [`crate::trainer::train`]:
//! the same initialization ([`Model::new`]), the same seeded shuffle, learning-rate schedule,
//! per-epoch evaluation (batches of 500) and [`TrainReport`]. The datasets are copied to the
//! GPU once; each epoch uploads only the shuffled order, and a step gathers its batch there.
//! Per-step losses stay on the GPU and are read back every [`SYNC_EVERY`] steps and at the
//! end of the epoch (which is when the epoch's time is taken), then reported through
//! [`Progress::Step`] in order, so the loop never waits for the GPU inside a window. A
//! non-finite loss ends the run with [`Error::Diverged`] naming the step where it appeared.

use super::device::CudaDevice;
use super::model::CudaModel;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::Sgd;
use crate::rng::Rng;
use crate::trainer::{EpochStats, Progress, TrainConfig, TrainReport};
use cudarc::driver::CudaSlice;
use std::time::Instant;

/// Steps between two reads of the per-step losses.
pub const SYNC_EVERY: usize = 100;

/// Evaluation batch size (as the CPU trainer).
const EVAL_BATCH: usize = 500;

/// A dataset (or its first `n` images) on the GPU.
struct DeviceData {
    pixels: CudaSlice<f32>,
    labels: CudaSlice<u8>,
    len: usize,
}

impl DeviceData {
    fn new(dev: &CudaDevice, d: &Dataset, n: usize) -> Result<Self> {
        let sz = d.rows * d.cols;
        Ok(Self { pixels: dev.upload(&d.pixels[..n * sz])?, labels: dev.upload(&d.labels[..n])?, len: n })
    }
}

/// Evaluates in evaluation mode over all of `data`: `(mean loss, accuracy)`.
fn evaluate(gm: &mut CudaModel, data: &DeviceData, order: &CudaSlice<u32>) -> Result<(f64, f64)> {
    let batches = data.len.div_ceil(EVAL_BATCH);
    let sgd = Sgd { momentum: 0.0, weight_decay: 0.0 };
    for j in 0..batches {
        let b = EVAL_BATCH.min(data.len - j * EVAL_BATCH);
        gm.gather(&data.pixels, &data.labels, order, j * EVAL_BATCH, b, false, batches)?;
        gm.run(b, false, &sgd, 0.0, j)?;
    }
    let (loss, correct) = gm.read_slots(batches)?;
    let n = data.len.max(1) as f64;
    Ok((loss.iter().sum::<f64>() / n, correct.iter().map(|&c| f64::from(c)).sum::<f64>() / n))
}

/// Trains a model per `cfg` on `dev`, evaluating on `test_set` after each epoch; returns the
/// trained model (parameters copied back to the host) and the same report as the CPU path.
pub fn train(
    dev: &CudaDevice,
    cfg: &TrainConfig,
    train_set: &Dataset,
    test_set: &Dataset,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Model, TrainReport)> {
    let start = Instant::now();
    let (mut model, n) = crate::trainer::prepare(cfg, train_set)?;
    let mut gm = CudaModel::new(dev, &model)?;
    let train_data = DeviceData::new(dev, train_set, n)?;
    let test_data = DeviceData::new(dev, test_set, test_set.len())?;
    let test_order = dev.upload(&(0..test_set.len() as u32).collect::<Vec<_>>())?;
    let steps_per_epoch = n.div_ceil(cfg.batch);
    let total = steps_per_epoch * cfg.epochs;
    let sgd = Sgd { momentum: cfg.momentum, weight_decay: cfg.weight_decay };
    let mut rng = Rng::derive(cfg.seed, "shuffle");
    let mut order: Vec<usize> = (0..n).collect();
    let mut order_dev = dev.zeros::<u32>(n)?;
    let (mut history, mut step, mut train_time) = (Vec::new(), 0usize, 0.0f64);
    progress(Progress::Start { total_steps: total });
    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let t0 = Instant::now();
        dev.write(&order.iter().map(|&i| i as u32).collect::<Vec<_>>(), &mut order_dev)?;
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut lr = cfg.lr;
        let (mut reported, epoch_start) = (0usize, step);
        for (j, chunk) in order.chunks(cfg.batch).enumerate() {
            lr = cfg.schedule.rate(cfg.lr, step, total);
            gm.gather(&train_data.pixels, &train_data.labels, &order_dev, j * cfg.batch, chunk.len(), true, steps_per_epoch)?;
            gm.run(chunk.len(), true, &sgd, lr, j)?;
            step += 1;
            if (j + 1) % SYNC_EVERY == 0 || j + 1 == steps_per_epoch {
                let (losses, corrects) = gm.read_slots(j + 1)?;
                for s in reported..=j {
                    let b = cfg.batch.min(n - s * cfg.batch);
                    let loss = losses[s] / b as f64;
                    if !loss.is_finite() {
                        return Err(Error::Diverged { epoch, step: epoch_start + s + 1, loss });
                    }
                    loss_sum += loss * b as f64;
                    correct += corrects[s] as usize;
                    progress(Progress::Step { epoch, step: epoch_start + s + 1, loss });
                }
                reported = j + 1;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        train_time += secs;
        let (test_loss, test_accuracy) = evaluate(&mut gm, &test_data, &test_order)?;
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
    gm.download(&mut model)?;
    let report = TrainReport::new(cfg, &model, history, start.elapsed().as_secs_f64(), n, train_time);
    Ok((model, report))
}
