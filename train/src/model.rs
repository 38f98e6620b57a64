//! A trainable model built from a [`ModelSpec`] and a [`SparsityConfig`]: which weight layers
//! are sparse (default: all but the first and the last weight layer), He-normal
//! initialization from a seed, forward, backward and the optimizer step.

use crate::error::{Error, Result};
use crate::layers::{BatchNorm, Conv2d, ConvGeom, Flatten, Layer, Linear, Pool2d, PoolKind, Relu};
use crate::optim::Sgd;
use crate::rng::Rng;
use crate::sparse::{BpMaskSource, LayerSparsity, Method, NmWeight};
use crate::tensor::Tensor;
use crate::zoo::{LayerKind, ModelSpec};
use satkit_hw::nm::NmRatio;
use serde::{Deserialize, Serialize};

/// Default SR-STE decay strength (SAT.md section 2).
pub const DEFAULT_LAMBDA: f32 = 2e-4;

/// The sparsity settings of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparsityConfig {
    /// Training method of the sparse layers.
    pub method: Method,
    /// N:M ratio.
    pub ratio: NmRatio,
    /// SR-STE decay strength.
    pub lambda: f32,
    /// Where BDWP ranks its BP mask.
    pub bp_mask_source: BpMaskSource,
    /// Weight layers kept dense; `None` means the first and the last weight layer.
    pub dense_layers: Option<Vec<String>>,
}

impl SparsityConfig {
    /// Settings for `method` at `ratio` with the defaults for everything else.
    pub fn new(method: Method, ratio: NmRatio) -> Self {
        Self { method, ratio, lambda: DEFAULT_LAMBDA, bp_mask_source: BpMaskSource::Dense, dense_layers: None }
    }

    /// The sparsity of each weight layer of `spec`, in order, as `(name, sparsity)`. Refuses
    /// unknown names in `dense_layers` and sparse layers whose dimensions do not split into
    /// groups of `M`.
    pub fn plan(&self, spec: &ModelSpec) -> Result<Vec<(String, LayerSparsity)>> {
        let names: Vec<&str> = spec.weight_layers().map(|l| l.name.as_str()).collect();
        let dense: Vec<String> = match &self.dense_layers {
            Some(list) => {
                for n in list {
                    if !names.contains(&n.as_str()) {
                        return Err(Error::UnknownLayer { model: spec.name.clone(), layer: n.clone(), known: names.join(", ") });
                    }
                }
                list.clone()
            }
            None => [names.first(), names.last()].into_iter().flatten().map(|s| s.to_string()).collect(),
        };
        let sparse =
            LayerSparsity { method: self.method, ratio: self.ratio, lambda: self.lambda, bp_mask_source: self.bp_mask_source };
        spec.weight_layers()
            .map(|l| {
                let s = if dense.contains(&l.name) { LayerSparsity::dense() } else { sparse };
                let g = l.gemm().expect("weight layers have a GEMM shape");
                crate::sparse::check_groupable(&spec.name, &l.name, g.c_out, g.k, &s)?;
                Ok((l.name.clone(), s))
            })
            .collect()
    }
}

/// A model ready to train.
#[derive(Debug, Clone)]
pub struct Model {
    /// The layer list it was built from.
    pub spec: ModelSpec,
    /// The layers, in the order of `spec.layers`.
    pub layers: Vec<Layer>,
}

impl Model {
    /// Builds `spec` with per-layer sparsity from `sparsity`, weights He-normal
    /// (`std = sqrt(2 / K)`) drawn from a stream derived from `seed` and the layer name.
    pub fn new(spec: &ModelSpec, sparsity: &SparsityConfig, seed: u64) -> Result<Self> {
        let plan = sparsity.plan(spec)?;
        let mut layers = Vec::with_capacity(spec.layers.len());
        for l in &spec.layers {
            let name = l.name.as_str();
            let weight = |c_out: usize, k: usize| {
                let s = plan.iter().find(|(n, _)| n == name).map(|(_, s)| *s).unwrap_or_else(LayerSparsity::dense);
                let mut rng = Rng::derive(seed, name);
                let std = (2.0 / k as f64).sqrt();
                let values = (0..c_out * k).map(|_| (rng.normal() * std) as f32).collect();
                NmWeight::new(&spec.name, name, c_out, k, values, s)
            };
            layers.push(match l.kind {
                LayerKind::Conv2d { c_in, c_out, kernel, stride, pad } => {
                    let geom = ConvGeom { c_in, kh: kernel, kw: kernel, stride, pad };
                    Layer::Conv2d(Conv2d::new(name, geom, weight(c_out, geom.k())?))
                }
                LayerKind::Linear { k, c_out } => Layer::Linear(Linear::new(name, weight(c_out, k)?)),
                LayerKind::BatchNorm { channels } => Layer::BatchNorm(BatchNorm::new(name, channels)),
                LayerKind::Relu => Layer::Relu(Relu::new(name)),
                LayerKind::MaxPool { kernel, stride } => Layer::Pool(Pool2d::new(name, PoolKind::Max, kernel, stride)),
                LayerKind::AvgPool { kernel, stride } => Layer::Pool(Pool2d::new(name, PoolKind::Avg, kernel, stride)),
                LayerKind::Flatten => Layer::Flatten(Flatten::new(name)),
            });
        }
        Ok(Self { spec: spec.clone(), layers })
    }

    /// Runs all layers on `x` (`[batch, C, H, W]`) and returns the logits.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &mut self.layers {
            h = l.forward(&h, train)?;
        }
        Ok(h)
    }

    /// Back-propagates the gradient of the logits through all layers, accumulating parameter
    /// gradients; returns the gradient with respect to the input.
    pub fn backward(&mut self, dlogits: &Tensor) -> Result<Tensor> {
        let mut g = dlogits.clone();
        for l in self.layers.iter_mut().rev() {
            g = l.backward(&g)?;
        }
        Ok(g)
    }

    /// One optimizer step on every layer; masks are recomputed from the updated weights.
    pub fn step(&mut self, sgd: &Sgd, lr: f32) {
        for l in &mut self.layers {
            l.step(sgd, lr);
        }
    }

    /// The weight layers with their sparsity, for reports: `(name, sparsity)`.
    pub fn sparsity(&self) -> Vec<(String, LayerSparsity)> {
        self.layers.iter().filter_map(|l| l.weight().map(|w| (l.name().to_string(), *w.sparsity()))).collect()
    }
}

/// Parses a ratio for use in configurations (the rule lives in [`satkit_hw::nm`]).
pub fn parse_ratio(s: &str) -> Result<NmRatio> {
    s.parse().map_err(|e: satkit_hw::nm::NmParseError| Error::BadSetting { name: "nm", value: s.to_string(), rule: e.reason })
}
